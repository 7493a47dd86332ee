"""`hean bench executor`: what the executor costs on top of a bare HTTP client.

A real `hean run executor` process places orders on an in-process simulator; the
simulator stamps the arrival of each order/create (keyed by orderLinkId). Measured:
  - latency: intent published on the bus -> order request arriving at the exchange,
    one intent at a time (p50/p99);
  - throughput: a burst of intents -> every ORDER_PLACED received.
The baseline, in the same run against the same simulator: a bare aiohttp client posting
the same signed order/create requests (signing included in its latency). The ratio is the
executor's overhead: bus hop, validation, gating, the journal write (executor.journal_sync), rate limiter.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hean import topics
from hean.bus import BusStats, Publisher, Subscriber
from hean.bus.envelope import Event
from hean.config import BusSettings
from hean.exchange.bybit import constants as c
from hean.exchange.bybit.auth import build_body, sign_rest
from hean.ids import new_intent_id, order_link_id
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings

LATENCY_N = 150
BURST_N = 300
KEY, SECRET = "hean-sim-key", "hean-sim-secret"
T = topics.EventType


class _StampingSim(SimServer):
    """The simulator, plus an arrival timestamp per order/create orderLinkId."""

    arrivals: dict[str, int]

    def _build_app(self) -> web.Application:
        self.arrivals = {}
        app = super()._build_app()

        @web.middleware
        async def stamp(request: web.Request, handler: Any) -> web.StreamResponse:
            # The body stream belongs to the handler; the answer carries the orderLinkId back.
            arrived = time.time_ns()
            response = await handler(request)
            if request.path == c.PATH_ORDER_CREATE and isinstance(response, web.Response) and response.text:
                result = orjson.loads(response.text).get("result") or {}
                if result.get("orderLinkId"):
                    self.arrivals[result["orderLinkId"]] = arrived
            return response

        app.middlewares.append(stamp)
        return app


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


PRICES = {"BTCUSDT": Decimal("50000"), "ETHUSDT": Decimal("3000")}


def _limit_order(i: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    # Resting limits below a held price, each at its own tick: nothing fills, no two share a fingerprint.
    tick, qty = (Decimal("0.1"), "0.001") if symbol == "BTCUSDT" else (Decimal("0.01"), "0.01")
    price = PRICES[symbol] * Decimal("0.9") + i * tick
    return {"symbol": symbol, "side": "Buy", "order_type": "Limit", "qty": qty, "price": str(price)}


async def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.005)


class _Driver:
    """Plays `ctl` (intents) and `risk` (NORMAL heartbeat); records the executor's outcomes."""

    def __init__(self, runtime: Path) -> None:
        bus = BusSettings()
        self.ctl = Publisher(bus, runtime, "ctl", BusStats()).bind()
        self.risk = Publisher(bus, runtime, "risk", BusStats()).bind()
        self.outcomes: dict[str, Event] = {}
        self.sub = Subscriber(bus, runtime, BusStats()).connect("executor").on("order.", self._record)
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self.sub.run(self._stop)), asyncio.create_task(self._heartbeat())]

    async def _record(self, ev: Event) -> None:
        self.outcomes[str(ev.data.get("intent_id"))] = ev

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            await self.risk.publish(topics.risk_state(), T.RISK_STATE.value, {"state": "NORMAL"})
            await asyncio.sleep(0.1)

    async def send(self, fields: dict[str, Any]) -> tuple[str, int]:
        intent_id = new_intent_id("bench")
        data: dict[str, Any] = dict(intent_id=intent_id, strategy_id="bench", price=None, reduce_only=False,
                                    take_profit=None, stop_loss=None, time_in_force=None, created_ns=time.time_ns())
        data.update(fields)
        published = time.time_ns()
        await self.ctl.publish(topics.intent(), T.ORDER_INTENT.value, data)
        return intent_id, published

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sub.close()
        self.ctl.close()
        self.risk.close()


async def _warm_up(driver: _Driver) -> None:
    """Until the executor hears risk and the bus is connected, intents get blocked or lost: retry."""
    deadline = time.monotonic() + 30
    i = 0
    while time.monotonic() < deadline:
        i += 1
        intent_id, _ = await driver.send(_limit_order(1000 + i, "ETHUSDT"))
        try:
            await _wait(lambda: intent_id in driver.outcomes, 1.0, "warm-up outcome")
        except RuntimeError:
            continue
        if driver.outcomes[intent_id].type == T.ORDER_PLACED.value:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"bench: the executor never placed a warm-up order: {list(driver.outcomes.values())[-1:]}")


async def _executor_figures(sim: _StampingSim, driver: _Driver) -> dict[str, float]:
    lat: list[float] = []
    for i in range(LATENCY_N):
        intent_id, published = await driver.send(_limit_order(i))
        link = order_link_id(intent_id)
        await _wait(lambda: link in sim.arrivals and intent_id in driver.outcomes, 10, "a placed order")
        lat.append((sim.arrivals[link] - published) / 1e3)
    started = time.perf_counter()
    ids = [(await driver.send(_limit_order(LATENCY_N + i)))[0] for i in range(BURST_N)]
    await _wait(lambda: all(i in driver.outcomes for i in ids), 60, "every burst outcome")
    elapsed = time.perf_counter() - started
    placed = sum(1 for i in ids if driver.outcomes[i].type == T.ORDER_PLACED.value)
    return {"p50_us": statistics.median(lat), "p99_us": _pct(lat, 99), "orders_per_s": placed / elapsed,
            "placed": placed}


async def _bare_figures(sim: _StampingSim) -> dict[str, float]:
    """The same signed order/create requests from a plain aiohttp session."""
    url = sim.rest_url + c.PATH_ORDER_CREATE

    async def post(session: aiohttp.ClientSession, i: int, link: str) -> None:
        order = _limit_order(i, "ETHUSDT")
        params = {"category": c.CATEGORY, "symbol": order["symbol"], "side": "Buy", "orderType": "Limit",
                  "qty": Decimal(order["qty"]), "price": Decimal(order["price"]), "orderLinkId": link,
                  "positionIdx": 0}
        body = build_body(params)
        ts = sim.clock()
        headers = {"Content-Type": "application/json", "X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": str(ts),
                   "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sign_rest(SECRET, ts, KEY, 5000, body),
                   "X-BAPI-SIGN-TYPE": "2"}
        async with session.post(url, data=body, headers=headers) as resp:
            envelope = await resp.json()
            if envelope.get("retCode") != 0:
                raise RuntimeError(f"bench: bare order refused: {envelope}")

    lat: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(LATENCY_N):
            link = f"bare-{i}"
            started = time.time_ns()
            await post(session, i, link)
            lat.append((sim.arrivals[link] - started) / 1e3)
        started_s = time.perf_counter()
        await asyncio.gather(*(post(session, LATENCY_N + i, f"bare-b{i}") for i in range(BURST_N)))
        elapsed = time.perf_counter() - started_s
    return {"p50_us": statistics.median(lat), "p99_us": _pct(lat, 99), "orders_per_s": BURST_N / elapsed}


async def run(json_out: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hean-bench-executor-"))
    # No simulated network delay: both sides would pay it alike and it would only hide the overhead.
    sim = _StampingSim(SimSettings(rate_limit_scale=1000.0, tick_interval_s=1.0, volatility=0.0,
                                   initial_balance=Decimal("10000000"), rest_delay_ms=0, ws_delay_ms=0))
    await sim.start()
    async with aiohttp.ClientSession() as session:
        for symbol, price in PRICES.items():
            async with session.post(f"{sim.control_url}/price",
                                    json={"symbol": symbol, "price": str(price), "hold": True}) as resp:
                resp.raise_for_status()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}
    env.update({"HEAN_RUNTIME_DIR": str(tmp / "run"), "HEAN_DATA_DIR": str(tmp / "data"),
                "HEAN_METRICS_PORTS__EXECUTOR": "0", "HEAN_LOG_LEVEL": "WARNING",
                "HEAN_BYBIT__REST_URL": sim.rest_url, "HEAN_BYBIT__WS_PUBLIC_URL": sim.ws_public_url,
                "HEAN_BYBIT__WS_PRIVATE_URL": sim.ws_private_url})
    driver = _Driver(tmp / "run")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hean.cli", "run", "executor", env=env,
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await _warm_up(driver)
        executor = await _executor_figures(sim, driver)
        bare = await _bare_figures(sim)
    finally:
        proc.terminate()
        await proc.wait()
        await driver.close()
        await sim.stop()
    result: dict[str, Any] = {
        "executor_p50_us": executor["p50_us"], "executor_p99_us": executor["p99_us"],
        "executor_orders_per_s": executor["orders_per_s"], "executor_placed": executor["placed"],
        "bare_p50_us": bare["p50_us"], "bare_p99_us": bare["p99_us"], "bare_orders_per_s": bare["orders_per_s"],
        "latency_p50_ratio": executor["p50_us"] / bare["p50_us"],
        "latency_p99_ratio": executor["p99_us"] / bare["p99_us"],
        "throughput_ratio": executor["orders_per_s"] / bare["orders_per_s"],
        "latency_samples": LATENCY_N, "burst": BURST_N, "cpus": os.cpu_count(),
    }
    if not json_out:
        print(f"{'':26}{'executor':>12}{'bare aiohttp':>14}{'ratio':>8}")
        for label, key, unit in (("latency p50 (us)", "p50_us", ""), ("latency p99 (us)", "p99_us", ""),
                                 ("throughput (orders/s)", "orders_per_s", "")):
            e, b = executor[key], bare[key]
            print(f"{label:26}{e:12.0f}{b:14.0f}{e / b:8.2f}{unit}")
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
