"""Fixtures: a simulator on an ephemeral loopback port and a client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from hean.exchange.bybit.rest import BybitRestClient
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings

SIM_KEY = "hean-sim-key"
SIM_SECRET = "hean-sim-secret"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimSettings(port=0, rate_limit_scale=100.0, tick_interval_s=0.05, seed=7))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def make_client(sim: SimServer, **kw: Any) -> BybitRestClient:
    options: dict[str, Any] = dict(rest_url=sim.rest_url, api_key=SIM_KEY, api_secret=SIM_SECRET,
                                   dry_run=True, is_live=False, timeout_s=5.0, registry=CollectorRegistry())
    options.update(kw)
    return BybitRestClient(**options)


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[BybitRestClient]:
    rest = make_client(sim)
    await rest.start()
    try:
        yield rest
    finally:
        await rest.close()


async def control(sim: SimServer, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST (or GET when body is None) to the simulator's /sim control API."""
    async with aiohttp.ClientSession() as session:
        if body is None:
            async with session.get(f"{sim.control_url}/{route}") as resp:
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())
        async with session.post(f"{sim.control_url}/{route}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())


def sim_requests(sim: SimServer, path: str) -> float:
    """REST requests the simulator received on `path` (its own counter)."""
    return sim.registry.get_sample_value("hean_sim_rest_requests_total", {"path": path}) or 0.0


def sim_rejects(sim: SimServer, code: int) -> float:
    return sim.registry.get_sample_value("hean_sim_rejects_total", {"ret_code": str(code)}) or 0.0
