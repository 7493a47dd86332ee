"""Fixtures: a simulator on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hean.sim.server import SimServer
from tests.executor.harness import sim_settings


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(sim_settings())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
