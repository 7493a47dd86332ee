"""The executor's cancel command (intent.cancel): cancels on the exchange, answers, and a re-sent
command is answered again without a second cancel; it works in HARD_STOP too."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hean import topics
from hean.sim.server import SimServer
from tests.executor.harness import executor_settings, intent, running, sim_orders

T = topics.EventType


async def _answer(peers, cancel_id: str, data: dict, timeout: float = 15.0, resend_s: float = 0.3):
    deadline = time.monotonic() + timeout
    last = -1e9
    while True:
        found = [e for e in peers.events if e.data.get("cancel_id") == cancel_id]
        if found:
            return found
        assert time.monotonic() < deadline, f"no answer to cancel {cancel_id}"
        if time.monotonic() - last >= resend_s:
            await peers.ctl.publish(topics.cancel_intent(), T.ORDER_CANCEL_INTENT.value, data)
            last = time.monotonic()
        await asyncio.sleep(0.02)


async def test_cancel_by_link_id_then_by_symbol_then_nothing_left(tmp_path: Path, sim: SimServer) -> None:
    settings = executor_settings(tmp_path, sim)
    async with running(settings) as (svc, peers):
        a = intent(order_type="Limit", price="20000", qty="0.01")
        b = intent(order_type="Limit", price="21000", qty="0.01")
        placed_a, placed_b = await peers.submit(a), await peers.submit(b)
        assert placed_a.type == placed_b.type == T.ORDER_PLACED.value
        link_a = placed_a.data["order_link_id"]

        one = await _answer(peers, "c-one", {"cancel_id": "c-one", "order_link_id": link_a, "operator": "t"})
        assert one[0].type == T.ORDER_CANCELLED.value
        assert [o["order_link_id"] for o in one[0].data["cancelled"]] == [link_a]
        assert (await sim_orders(sim, link_a))[0]["orderStatus"] == "Cancelled"
        assert (await sim_orders(sim, placed_b.data["order_link_id"]))[0]["orderStatus"] == "New"

        # The same command again (a sender that did not hear the answer): the same answer, no new cancel.
        n = len(peers.events)
        await peers.ctl.publish(topics.cancel_intent(), T.ORDER_CANCEL_INTENT.value,
                                {"cancel_id": "c-one", "order_link_id": link_a})
        deadline = time.monotonic() + 10
        while len([e for e in peers.events[n:] if e.data.get("cancel_id") == "c-one"]) == 0:
            assert time.monotonic() < deadline, "a repeated command is answered again"
            await asyncio.sleep(0.02)
        again = [e for e in peers.events[n:] if e.data.get("cancel_id") == "c-one"][0]
        assert again.data == one[0].data

        # In HARD_STOP cancels still go out (they only reduce risk).
        peers.risk = "HARD_STOP"
        sym = await _answer(peers, "c-sym", {"cancel_id": "c-sym", "symbol": "BTCUSDT"})
        assert sym[0].type == T.ORDER_CANCELLED.value
        assert (await sim_orders(sim, placed_b.data["order_link_id"]))[0]["orderStatus"] == "Cancelled"

        none = await _answer(peers, "c-none", {"cancel_id": "c-none", "all": True})
        assert none[0].type == T.ORDER_CANCEL_REJECTED.value and "no open order" in none[0].data["reason"]
