"""A StrategyService running in-process on real ipc sockets, with the test playing its bus peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import HeanSettings, MetricsPorts, StrategySettings
from hean.strategy.runner import StrategyService
from tests.strategy import samples


@dataclass
class Peers:
    service: StrategyService
    registry: CollectorRegistry
    pubs: dict[str, Publisher]
    intents: list[Event] = field(default_factory=list)

    async def send(self, source: str, topic: str, type_: str, data: dict[str, Any]) -> None:
        await self.pubs[source].publish(topic, type_, data)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def intent_ids(self) -> list[str]:
        return [e.data["intent_id"] for e in self.intents]


def make_settings(tmp_path: Path, paths: tuple[str, ...], **strategy: Any) -> HeanSettings:
    return HeanSettings(
        runtime_dir=tmp_path / "run", data_dir=tmp_path / "data", metrics_ports=MetricsPorts(strategy=0),
        strategy=StrategySettings(paths=paths, **{"resend_interval_s": 0.1, "max_failures": 3, **strategy}),
    )


@asynccontextmanager
async def running(tmp_path: Path, paths: tuple[str, ...], **strategy: Any) -> AsyncIterator[Peers]:
    samples.SEEN.clear()
    settings = make_settings(tmp_path, paths, **strategy)
    registry = CollectorRegistry()
    pubs = {name: Publisher(settings.bus, settings.runtime_dir, name, BusStats()).bind()
            for name in ("feed", "executor", "reconciler", "risk")}
    service = StrategyService(settings, registry)
    peers = Peers(service, registry, pubs)

    async def on_intent(ev: Event) -> None:
        peers.intents.append(ev)

    listen = Subscriber(settings.bus, settings.runtime_dir, BusStats()).connect("strategy")
    listen.on("intent.", on_intent)
    stop = asyncio.Event()
    reader = asyncio.create_task(listen.run(stop))
    task = asyncio.create_task(service.serve())
    try:
        await wait(lambda: service.is_ready or task.done(), "the strategy service to be ready")
        assert not task.done(), f"service stopped early with {task.result()}"
        for pub in pubs.values():
            assert await pub.wait_for_subscribers("critical", 10), f"{pub.service}: strategy never subscribed"
        assert await pubs["feed"].wait_for_subscribers("lossy", 10), "strategy never subscribed to ticks"
        yield peers
    finally:
        service.should_exit.set()
        assert await asyncio.wait_for(task, 20) == 0
        stop.set()
        await asyncio.wait_for(reader, 10)
        listen.close()
        for pub in pubs.values():
            pub.close()


async def wait(cond: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    from tests.utils import async_wait_for
    return await async_wait_for(cond, timeout, what)


@pytest.fixture
def run_strategies(tmp_path: Path) -> Callable[..., Any]:
    return lambda *paths, **kw: running(tmp_path, tuple(paths), **kw)
