"""The risk decision holds when the request leaves, not only when the intent was admitted.

Order/create is 10/s at Bybit; a burst of intents waits in the client's rate limiter for
seconds. A HARD_STOP heard meanwhile must stop every opening order still waiting.
"""

from __future__ import annotations

import time

import pytest

from hean import topics
from hean.sim.server import SimServer
from tests.executor.harness import executor_settings, intent, running, sim_control, sim_settings, wait_view
from tests.utils import async_wait_for

T = topics.EventType
BURST = 30
# An order that passed the send-time check just before HARD_STOP was heard may still be on the wire
# (one loop hop); anything created later than this after HARD_STOP was seen was sent under it.
IN_FLIGHT_MARGIN_MS = 500


async def _all_orders(sim: SimServer) -> list[dict]:
    return list((await sim_control(sim, "orders"))["list"])


@pytest.mark.parametrize("new_state", ["HARD_STOP", "QUARANTINE", "SOFT_BRAKE"])
async def test_a_stricter_risk_state_stops_opening_orders_waiting_in_the_rate_limiter(tmp_path, new_state):
    """HARD_STOP/QUARANTINE forbid them; SOFT_BRAKE allows only half of the size they were admitted at."""
    sim = SimServer(sim_settings(rate_limit_scale=1.0))  # Bybit's own 10 order/create per second
    await sim.start()
    try:
        async with running(executor_settings(tmp_path, sim, timeout_s=5.0)) as (svc, peers):
            await sim_control(sim, "price", {"symbol": "BTCUSDT", "price": "50000", "hold": True})
            # Our subscription to the executor is live once one outcome came back (an invalid intent: no request).
            assert (await peers.submit(intent(qty="not-a-number"))).type == "ORDER_REJECTED"
            burst = [intent(order_type="Limit", price=str(40000 + i), qty="0.002") for i in range(BURST)]
            for data in burst:
                await peers.ctl.publish(topics.intent(), T.ORDER_INTENT.value, data)
            await async_wait_for(lambda: sum(e.type == "ORDER_PLACED" for e in peers.events) >= 3, 20,
                                 "the first orders of the burst to be placed")
            peers.risk = new_state
            await wait_view(svc, lambda v: v.state == new_state, new_state)
            seen_ms = int(time.time() * 1000)
            ids = {d["intent_id"] for d in burst}
            await async_wait_for(lambda: ids <= {e.data.get("intent_id") for e in peers.events}, 30,
                                 "an outcome for every intent of the burst")
            outcomes = {e.data["intent_id"]: e for e in peers.events
                        if e.data.get("intent_id") in ids and e.type != "ORDER_CANCELLED"}
            orders = await _all_orders(sim)
            late = [o for o in orders if int(o["createdTime"]) > seen_ms + IN_FLIGHT_MARGIN_MS]
            assert late == [], f"{len(late)} full-size opening orders were created at the exchange after {new_state}"
            placed = [e for e in outcomes.values() if e.type == "ORDER_PLACED"]
            withdrawn = [e for e in outcomes.values() if e.type == "ORDER_BLOCKED_RISK"]
            assert len(placed) == len(orders) and len(placed) + len(withdrawn) == BURST
            assert len(withdrawn) >= BURST // 3, "the scenario did not catch orders in the limiter"
            assert {e.data["reason"] for e in withdrawn} == {"risk_changed"}
            assert {e.data["risk_state"] for e in withdrawn} == {new_state}
            assert {e.data["risk_state"] for e in placed} == {"NORMAL"}
    finally:
        await sim.stop()
