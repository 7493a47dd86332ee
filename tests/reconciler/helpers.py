"""Shared pieces for reconciler process tests: an in-test simulator, a bus listener, fill makers."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from hean.bus import BusStats, Event, Subscriber
from hean.config import BusSettings
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings
from hean.sim.validate import OrderRequest
from tests.utils import Proc, async_wait_for, hean_env, scrape

_links = itertools.count(1)


def sim_settings(**overrides: Any) -> SimSettings:
    base: dict[str, Any] = {"rate_limit_scale": 1000.0, "tick_interval_s": 0.05, "volatility": 0.0,
                            "initial_balance": Decimal("10000000")}
    base.update(overrides)
    return SimSettings(**base)


@asynccontextmanager
async def running_sim(**overrides: Any) -> AsyncIterator[SimServer]:
    server = SimServer(sim_settings(**overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def reconciler_env(tmp_path: Path, sim: SimServer, **settings: Any) -> dict[str, str]:
    """Env for `hean run reconciler` against the in-test simulator, with short WS backoff."""
    base: dict[str, Any] = {
        "bybit__rest_url": sim.rest_url, "bybit__ws_public_url": sim.ws_public_url,
        "bybit__ws_private_url": sim.ws_private_url, "ws__backoff_initial_s": "0.3",
        "ws__backoff_max_s": "1", "ws__jitter": "0", "symbols": "BTCUSDT,ETHUSDT",
        "reconciler__state_republish_s": "0.5",
    }
    base.update(settings)
    return hean_env(tmp_path, **base)


class BusListener:
    """Collects what the reconciler publishes, as a real bus subscriber in the test process."""

    def __init__(self, tmp_path: Path, prefixes: tuple[str, ...] = ("fill.", "reconcile.")) -> None:
        self.events: list[Event] = []
        self.sub = Subscriber(BusSettings(), tmp_path / "run", BusStats()).connect("reconciler")
        for prefix in prefixes:
            self.sub.on(prefix, self._got)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.sub.run(self._stop))

    async def _got(self, ev: Event) -> None:
        self.events.append(ev)

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    def fill_ids(self) -> list[str]:
        return [e.data["exec_id"] for e in self.events if e.type == "ORDER_FILLED"]

    def duplicates(self) -> dict[str, int]:
        """exec_ids published more than once *without* the replay flag (a replay is a declared re-delivery)."""
        first = [e.data["exec_id"] for e in self.events if e.type == "ORDER_FILLED" and not e.data.get("replay")]
        return {k: n for k, n in Counter(first).items() if n > 1}

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, 5)
        finally:
            self.sub.close()


def make_fills(sim: SimServer, n: int, *, symbol: str = "BTCUSDT", link_prefix: str = "h-t") -> None:
    """n market orders (each one fill) straight into the simulator's matching engine, alternating sides."""
    inst = sim.exchange.instruments[symbol]
    for i in range(n):
        sim.exchange.place_order(OrderRequest(
            symbol=symbol, side="Buy" if i % 2 == 0 else "Sell", order_type="Market", qty=inst.min_qty,
            price=None, time_in_force="IOC", order_link_id=f"{link_prefix}{next(_links)}", reduce_only=False,
            close_on_trigger=False))


def sim_trade_ids(sim: SimServer) -> set[str]:
    return {e.exec_id for e in sim.exchange.executions if e.exec_type == "Trade"}


async def ready_port(proc: Proc, timeout: float = 30.0) -> int:
    """Like Proc.wait_ready, but lets the in-test simulator keep serving while we wait."""
    rec = await async_record(proc, "service ready", timeout)
    return int(rec["metrics_port"])


async def async_record(proc: Proc, message: str, timeout: float = 30.0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        if proc.p.poll() is not None and proc.find(message) is None:
            raise AssertionError(f"{proc.name} exited rc={proc.p.returncode} before logging {message!r}:\n"
                                 + proc.output()[-3000:])
        return proc.find(message)
    return await async_wait_for(found, timeout, f"{proc.name} to log {message!r}")


async def async_scrape(port: int) -> dict[str, float]:
    """tests.utils.scrape in a thread, so the simulator in this loop is not blocked meanwhile."""
    return await asyncio.to_thread(scrape, port)
