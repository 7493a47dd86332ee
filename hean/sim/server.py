"""SimServer: one aiohttp app on one port serving /v5 REST, both WebSockets, /sim and /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hean.sim import control, livecontrol
from hean.sim.book import Book
from hean.sim.exchange import Exchange
from hean.sim.faults import Faults
from hean.sim.instruments import instrument_for
from hean.sim.latency import NetworkDelay
from hean.sim.metrics import SimMetrics
from hean.sim.pricepath import PricePath
from hean.sim.public import PublicFeed
from hean.sim.ratelimit import RateLimiter
from hean.sim.rest import RestApi
from hean.sim.settings import SimSettings
from hean.sim.ws import WsHub, private_hub, push_private

log = logging.getLogger("hean.sim")


class SimServer:
    """A complete simulated Bybit venue; ``start``/``stop`` bracket its life."""

    def __init__(self, settings: SimSettings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = SimMetrics(self.registry)
        self.clock_offset_ms = 0
        instruments = {s: instrument_for(s, settings.initial_prices.get(s)) for s in settings.symbols}
        prices = PricePath(instruments, seed=settings.seed, volatility=settings.volatility,
                           csv_path=settings.price_csv)
        self.faults = Faults(seed=settings.seed, ws_drop_every_s=settings.ws_drop_every_s)
        self.exchange = Exchange(
            instruments, prices, self.clock, seed=settings.seed, initial_balance=settings.initial_balance,
            taker_fee=settings.taker_fee, maker_fee=settings.maker_fee, slippage_bps=settings.slippage_bps,
            leverage=settings.leverage, max_fill_qty_per_tick=settings.max_fill_qty_per_tick,
            created_time_resets=settings.created_time_resets, report_open_time=settings.report_open_time,
            book=Book(instruments, default_notional=settings.book_level_notional, depth=settings.book_depth),
            push_faults=self.faults.push,
        )
        self.limiter = RateLimiter(settings.rate_limit_scale, settings.public_rate_limit)
        secret = settings.api_secret.get_secret_value()
        self.delay = NetworkDelay(rest_ms=settings.rest_delay_ms, ws_ms=settings.ws_delay_ms,
                                  jitter=settings.delay_jitter, seed=settings.seed)
        self.public_hub = WsHub("public", self.metrics, self.clock, self.delay.ws)
        self.private_hub = private_hub(self.metrics, self.clock, settings.api_key, secret, self.delay.ws)
        self.feed = PublicFeed(self.exchange, self.public_hub, settings.seed)
        self.exchange.listeners.append(self._on_exchange_event)
        self._stopping = asyncio.Event()
        self.rest = RestApi(self.exchange, self.clock, api_key=settings.api_key, api_secret=secret,
                            limiter=self.limiter, faults=self.faults, metrics=self.metrics,
                            stopping=self._stopping, delay=self.delay.rest)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.rest_url = self.ws_public_url = self.ws_private_url = self.control_url = self.metrics_url = ""

    def clock(self) -> int:
        """Server time in ms: wall clock plus the control API's offset."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def _on_exchange_event(self, topic: str, items: list[dict[str, Any]]) -> None:
        copies = 1
        if self.faults.push.take_duplicate(topic):
            self.metrics.faults.labels(kind="duplicate_push").inc()
            copies = 2
        push_private(self.private_hub, topic, items, copies)
        if topic == "execution":
            for item in items:
                self.metrics.executions.labels(symbol=item["symbol"], exec_type=item["execType"]).inc()
                if item["execType"] == "Trade":
                    self.feed.trade(item["symbol"], item["side"], Decimal(item["execQty"]),
                                    Decimal(item["execPrice"]))

    def on_prices_changed(self) -> None:
        """Match and publish right away after a forced price, so tests need not wait a tick."""
        self.exchange.step()
        self.feed.tick()

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/v5/public/linear", self.public_hub.handle)
        app.router.add_get("/v5/private", self.private_hub.handle)
        app.router.add_get("/metrics", self._metrics)
        control.add_routes(app, self, extra=livecontrol.ROUTES)
        app.router.add_route("*", "/v5/{tail:.*}", self.rest.dispatch)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        """Bind the socket, start the tick and fault loops, fill in the URLs."""
        self._runner = web.AppRunner(self._build_app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = site._server  # aiohttp exposes bound sockets only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"{self.settings.host}:{self.port}"
        self.rest_url = f"http://{base}"
        self.ws_public_url = f"ws://{base}/v5/public/linear"
        self.ws_private_url = f"ws://{base}/v5/private"
        self.control_url = f"http://{base}/sim"
        self.metrics_url = f"http://{base}/metrics"
        self._tasks = [asyncio.create_task(self._tick_loop()), asyncio.create_task(self._drop_loop())]

    async def stop(self) -> None:
        """Release held requests, close WebSockets, stop loops and the site."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.drop_ws("all", count_fault=False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drop_ws(self, stream: str, *, count_fault: bool = True) -> int:
        hubs = [h for h in (self.public_hub, self.private_hub) if stream in ("all", h.stream)]
        dropped = sum([await hub.drop_all() for hub in hubs])
        if count_fault:
            self.metrics.faults.labels(kind=f"ws_drop_{stream}").inc()
        return dropped

    async def _tick_loop(self) -> None:
        interval = self.settings.tick_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                self.exchange.prices.step(interval)
                self.on_prices_changed()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the market
                log.exception("simulator tick failed")

    async def _drop_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            period = self.faults.ws_drop_every_s
            if period is None:
                last = time.monotonic()
            elif time.monotonic() - last >= period:
                last = time.monotonic()
                await self.drop_ws("all")
