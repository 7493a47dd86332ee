"""The risk process asks the exchange whose account it judges (contract 2): its tests run a simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hean.sim.server import SimServer
from hean.sim.settings import SimSettings


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimSettings(rate_limit_scale=100.0, tick_interval_s=0.05))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
