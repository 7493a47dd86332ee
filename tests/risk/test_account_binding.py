"""risk.sqlite belongs to one exchange account: another account's base never judges this one (issue 11 §5)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hean import topics
from hean.sim.server import SimServer
from tests.risk.test_service import EQ, BusProbe, equity, risk_env
from tests.test_position_monitor import control
from tests.utils import hean


async def test_risk_state_of_another_account_refuses_to_start(tmp_path: Path, sim: SimServer) -> None:
    env = risk_env(tmp_path, sim, risk__heartbeat_s="0.1")
    risk = hean(["run", "risk"], env)
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            await probe.publish(topics.equity(), EQ, equity("1000"))
            await probe.wait_event(lambda e: e.data["initial_capital"] == "1000", "initial capital 1000 stored")
    finally:
        risk.kill()

    await control(sim, "POST", "account", {"uid": 2})  # same exchange, another account's key
    other = hean(["run", "risk"], env)
    try:
        assert await asyncio.to_thread(other.p.wait, 30) == 78
        other.kill()
        said = [line for line in other.err if line.strip()]
        assert len(said) == 1 and "belongs to uid 1" in said[0] and "HEAN_ARCHIVE_FOREIGN_STATE" in said[0], said
    finally:
        other.kill()

    archived = hean(["run", "risk"], env | {"HEAN_ARCHIVE_FOREIGN_STATE": "true"})
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            await asyncio.to_thread(archived.wait_ready)
            first = await probe.wait_event(lambda e: e.type == "RISK_STATE", "the fresh risk state")
            assert first.data["initial_capital"] is None  # the other account's 1000 did not carry over
        assert archived.find("state file of another account archived; starting fresh") is not None
        assert list((tmp_path / "data").glob("risk.sqlite.*.archived"))
    finally:
        archived.kill()
