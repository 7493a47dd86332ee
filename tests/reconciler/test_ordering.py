"""An older report never replaces a newer one: positions by seq/updatedTime, orders by progress."""

from __future__ import annotations

from decimal import Decimal

from hean.reconciler.ordering import OrderVersion, OrderVersions, PositionVersion
from hean.sim.validate import OrderRequest
from tests.executor.harness import sim_control
from tests.reconciler.helpers import BusListener, async_scrape, ready_port, reconciler_env, running_sim
from tests.utils import async_wait_for, hean


def _pos(seq, updated):
    return PositionVersion.of({"seq": seq, "updatedTime": str(updated)})


def test_position_versions_order_by_seq_then_updated_time():
    assert _pos(5, 50).older_than(_pos(6, 100))           # seq decides
    assert not _pos(7, 50).older_than(_pos(6, 100))       # a higher seq is never older
    assert _pos(6, 100).older_than(_pos(6, 200))          # same seq (funding moved updatedTime)
    assert _pos(5, 100).older_than(_pos(6, 100))
    assert not _pos(6, 200).older_than(_pos(6, 200))      # the same report again is not older
    assert _pos("9", 1).older_than(_pos(10, 1))           # seq as a string (SPEC §7.3)
    assert _pos(-1, 100).older_than(_pos(3, 200))         # -1 (never traded): only the time is compared
    assert not _pos(None, 100).older_than(None)
    # A lower seq that is also later in time is a reset counter (a restarted venue), not an old report.
    assert not _pos(3, 500).older_than(_pos(900, 400))
    assert _pos(3, 400).older_than(_pos(900, 400))


def _order(status, cum, updated):
    return OrderVersion.of({"orderStatus": status, "cumExecQty": cum, "updatedTime": str(updated)})


def test_an_order_never_goes_back_and_a_repeat_has_no_second_effect():
    book = OrderVersions()
    assert book.offer("o1", _order("New", "0", 100))
    assert not book.offer("o1", _order("New", "0", 100))                 # duplicated push
    assert book.offer("o1", _order("PartiallyFilled", "0.5", 110))
    assert not book.offer("o1", _order("New", "0", 100))                 # an older REST snapshot
    assert book.offer("o1", _order("Filled", "1", 120))
    assert not book.offer("o1", _order("Filled", "1", 130))              # the documented second Filled
    assert not book.offer("o1", _order("Cancelled", "1", 140))           # the cancel that lost the race
    assert not book.offer("o1", _order("PartiallyFilled", "0.5", 110))   # never back to an open state
    # Fills before New: the first report is already Filled; the late New is older.
    assert book.offer("o2", _order("Filled", "2", 200))
    assert not book.offer("o2", _order("New", "0", 190))
    # Same status, newer state (an amend) is news.
    assert book.offer("o3", _order("New", "0", 300)) and book.offer("o3", _order("New", "0", 301))


def test_order_versions_stay_bounded_and_forget_finished_orders_first():
    book = OrderVersions(capacity=3)
    book.offer("open", _order("New", "0", 1))
    for i in range(5):
        book.offer(f"done{i}", _order("Filled", "1", 1))
    assert not book.offer("open", _order("New", "0", 1))                 # still remembered
    assert book.offer("done0", _order("Filled", "1", 1))                 # forgotten: reported again
    assert Decimal(0) == _order("New", "", 1).cum_exec_qty


def _trade(sim, side: str, link: str) -> None:
    inst = sim.exchange.instruments["BTCUSDT"]
    sim.exchange.place_order(OrderRequest(symbol="BTCUSDT", side=side, order_type="Market", qty=inst.min_qty,
                                          price=None, time_in_force="IOC", order_link_id=link, reduce_only=False,
                                          close_on_trigger=False))


async def test_a_position_snapshot_answered_after_the_ws_never_rolls_the_position_back(tmp_path):
    """Read long by REST, closed meanwhile (the WS says flat), REST answers long: flat must stand."""
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, reconciler__interval_s="1"))
        listener = BusListener(tmp_path, prefixes=("position.BTCUSDT", "reconcile."))

        def sizes() -> list[str]:
            return [e.data["size"] for e in listener.of_type("POSITION_UPDATE")]
        try:
            port = await ready_port(proc)
            await async_wait_for(lambda: any("position" in c.topics for c in sim.private_hub.connections), 20,
                                 "private WS subscribed")
            await async_wait_for(lambda: any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS")),
                                 20, "the start-up catch-up")
            _trade(sim, "Buy", "h-open-1")
            await async_wait_for(lambda: "0" != (sizes() or ["0"])[-1], 20, "the long position on the bus")
            await sim_control(sim, "faults/delay-reply", {"path": "/v5/position/list", "ms": 1500, "count": 1})
            await async_wait_for(lambda: not sim.faults.delay_replies, 20, "a position read (long) being held")
            _trade(sim, "Sell", "h-close-1")                     # flat at the exchange; the WS says so at once
            await async_wait_for(lambda: sizes()[-1] == "0", 20, "the flat position on the bus")
            flat_at = len(sizes()) - 1

            async def held_reply_handled() -> bool:
                samples = await async_scrape(port)
                return (samples.get('hean_reconciler_stale_reports_total{kind="position"}', 0) >= 1
                        or any(s != "0" for s in sizes()[flat_at:]))
            await async_wait_for(held_reply_handled, 20, "the held snapshot to reach the reconciler")
            republished = len(sizes())
            await async_wait_for(lambda: len(sizes()) >= republished + 2, 10, "two more re-publications")
            assert all(s == "0" for s in sizes()[flat_at:]), f"position went back in time: {sizes()[flat_at:]}"
        finally:
            proc.kill()
            await listener.close()
