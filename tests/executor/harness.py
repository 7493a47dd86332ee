"""An in-process executor against an in-process simulator, driven over the real bus.

The test publishes intents as `ctl` and risk heartbeats as `risk` (real ipc sockets) and
listens to the executor's `order.*` events, the way the real peers do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from hean import topics
from hean.bus import BusStats, Publisher, Subscriber
from hean.bus.envelope import Event
from hean.config import HeanSettings
from hean.executor.gate import FingerprintGuard
from hean.executor.service import ExecutorService
from hean.ids import new_intent_id
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings

T = topics.EventType


def sim_settings(**kw: Any) -> SimSettings:
    base: dict[str, Any] = dict(port=0, rate_limit_scale=100.0, tick_interval_s=0.05, seed=11)
    base.update(kw)
    return SimSettings(**base)


def executor_settings(tmp_path: Path, sim: SimServer, *, timeout_s: float = 1.0, recv_window_ms: int = 5000,
                      **executor: Any) -> HeanSettings:
    cfg: dict[str, Any] = dict(risk_stale_s=1.0, resolve_interval_s=0.2)
    cfg.update(executor)
    ports = {name: 0 for name in ("sim", "feed", "executor", "reconciler", "risk", "watchdog", "strategy",
                                  "echo", "up")}
    return HeanSettings(
        data_dir=tmp_path / "data", runtime_dir=tmp_path / "run", metrics_ports=ports,
        bybit={"rest_url": sim.rest_url, "ws_public_url": sim.ws_public_url, "ws_private_url": sim.ws_private_url,
               "timeout_s": timeout_s, "recv_window_ms": recv_window_ms},
        executor=cfg, symbols=("BTCUSDT", "ETHUSDT"))


def intent(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = dict(intent_id=new_intent_id("test"), strategy_id="test", symbol="BTCUSDT", side="Buy",
                                qty="0.01", order_type="Market", price=None, reduce_only=False, take_profit=None,
                                stop_loss=None, time_in_force=None, created_ns=time.time_ns())
    data.update(fields)
    return data


async def sim_control(sim: SimServer, route: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as session:
        if body is None:
            async with session.get(f"{sim.control_url}/{route}") as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()
        async with session.post(f"{sim.control_url}/{route}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def sim_orders(sim: SimServer, link_id: str) -> list[dict[str, Any]]:
    """Orders the simulator holds for an orderLinkId (its own view, not the client's)."""
    body = await sim_control(sim, f"orders?orderLinkId={link_id}")
    return list(body["list"] if isinstance(body, dict) else body)


class Peers:
    """The executor's bus peers, played by the test: `ctl` (intents) and `risk` (heartbeat)."""

    def __init__(self, settings: HeanSettings) -> None:
        self.settings = settings
        self.ctl = Publisher(settings.bus, settings.runtime_dir, "ctl", BusStats()).bind()
        self.risk_pub = Publisher(settings.bus, settings.runtime_dir, "risk", BusStats()).bind()
        self.recon_pub = Publisher(settings.bus, settings.runtime_dir, "reconciler", BusStats()).bind()
        self.risk: str | None = "NORMAL"
        self.reconciling: bool | None = None
        self.events: list[Event] = []
        self.sub = Subscriber(settings.bus, settings.runtime_dir, BusStats()).connect("executor")
        self.sub.on("order.", self._record)
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self.sub.run(self._stop)), asyncio.create_task(self._heartbeat())]

    async def _record(self, ev: Event) -> None:
        self.events.append(ev)

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            if self.risk is not None:
                await self.risk_pub.publish(topics.risk_state(), T.RISK_STATE.value, {"state": self.risk})
            if self.reconciling is not None:
                await self.recon_pub.publish(topics.reconcile("status"), T.RECONCILE_STATUS.value,
                                             {"reconciling": self.reconciling, "trigger": "test",
                                              "last_success_ms": None})
            await asyncio.sleep(0.05)

    def outcomes(self, intent_id: str) -> list[Event]:
        return [e for e in self.events if e.data.get("intent_id") == intent_id]

    async def submit(self, data: dict[str, Any], timeout: float = 15.0, resend_s: float = 0.3) -> Event:
        """Publish an intent (re-sent with the same id, like the strategy runner) until its outcome arrives."""
        deadline = time.monotonic() + timeout
        last_sent = -1e9
        while True:
            found = self.outcomes(str(data.get("intent_id")))
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no outcome for intent {data.get('intent_id')} within {timeout}s")
            if time.monotonic() - last_sent >= resend_s:
                await self.ctl.publish(topics.intent(), T.ORDER_INTENT.value, data)
                last_sent = time.monotonic()
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sub.close()
        for pub in (self.ctl, self.risk_pub, self.recon_pub):
            pub.close()


@asynccontextmanager
async def running(settings: HeanSettings, peers: Peers | None = None, *, guard_clock: Any = None
                  ) -> AsyncIterator[tuple[ExecutorService, Peers]]:
    """Start peers (unless given) and an ExecutorService; always stop both."""
    own = peers is None
    peers = peers or Peers(settings)
    svc = ExecutorService(settings, registry=CollectorRegistry())
    if guard_clock is not None:
        cfg = settings.executor
        svc.guard = FingerprintGuard(cfg.dedup_window_s, cfg.dedup_cleanup_interval_s, clock=guard_clock)
    task = asyncio.create_task(svc.serve())
    try:
        deadline = time.monotonic() + 20
        while not svc.is_ready:
            if task.done():
                raise AssertionError(f"executor exited during start-up: rc={task.result()}")
            assert time.monotonic() < deadline, "executor did not become ready"
            await asyncio.sleep(0.02)
        if peers.risk is not None:
            await wait_view(svc, lambda v: not v.stale and v.state == peers.risk, f"risk state {peers.risk}")
        yield svc, peers
    finally:
        svc.should_exit.set()
        await asyncio.wait_for(task, 30)
        if own:
            await peers.close()


async def wait_view(svc: ExecutorService, cond: Any, what: str, timeout: float = 10.0) -> None:
    """Wait until the executor's risk view satisfies `cond` (it hears the heartbeat on the bus)."""
    deadline = time.monotonic() + timeout
    while not cond(svc.view()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for the executor to see {what}")
        await asyncio.sleep(0.02)


def sample(svc: ExecutorService, name: str, **labels: str) -> float:
    value = svc.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def wait_sample(svc: ExecutorService, name: str, value: float, timeout: float = 10.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while sample(svc, name, **labels) != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {name}{labels} == {value} "
                                 f"(is {sample(svc, name, **labels)})")
        await asyncio.sleep(0.02)
