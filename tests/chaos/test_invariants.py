"""The chaos invariants catch what they name (synthetic exchange records and bus events)."""

from __future__ import annotations

from decimal import Decimal

from hean.chaos import invariants as inv
from hean.chaos import schedule

B = inv.Bounds(max_hold_s=20, check_interval_s=1)


def order(link: str, created: int, reduce_only: bool = False, symbol: str = "BTCUSDT") -> dict:
    return {"orderLinkId": link, "orderId": link + "-id", "createdTime": str(created), "reduceOnly": reduce_only,
            "orderStatus": "Filled", "symbol": symbol}


def exe(exec_id: str, t: int, side: str, qty: str = "1", symbol: str = "BTCUSDT") -> dict:
    return {"execId": exec_id, "execType": "Trade", "symbol": symbol, "side": side, "execQty": qty,
            "execTime": str(t)}


def risk(t: int, state: str, at: float | None = None) -> inv.Rec:
    tr = {"at": at} if at is not None else None
    return inv.Rec(t, "risk.state", "RISK_STATE", {"state": state, "transition": tr, "initial_capital": "10000"})


def test_duplicate_orders_for_one_link_id_are_counted() -> None:
    assert inv.duplicate_orders([order("h-a", 1), order("h-b", 2)])[0] == 0
    assert inv.duplicate_orders([order("h-a", 1), order("h-a", 2), order("h-a", 3)])[0] == 2


def test_intent_without_outcome() -> None:
    events = [inv.Rec(1, "intent.order", "ORDER_INTENT", {"intent_id": "i1"}),
              inv.Rec(2, "intent.order", "ORDER_INTENT", {"intent_id": "i2"}),
              inv.Rec(3, "order.placed", "ORDER_PLACED", {"intent_id": "i1"})]
    assert inv.intents_without_outcome(events) == (1, ["i2"])


def test_fills_missing_and_doubled_replays_excepted() -> None:
    execs = [exe("e1", 1, "Buy"), exe("e2", 2, "Sell")]
    assert inv.executions_missing(execs, {"e1"})[0] == 1
    fills = [inv.Rec(1, "fill.BTCUSDT", "ORDER_FILLED", {"exec_id": "e1"}),
             inv.Rec(2, "fill.BTCUSDT", "ORDER_FILLED", {"exec_id": "e1", "replay": True}),
             inv.Rec(3, "fill.BTCUSDT", "ORDER_FILLED", {"exec_id": "e2"})]
    assert inv.fills_published_twice(fills)[0] == 0
    assert inv.fills_not_published(execs, fills)[0] == 0
    fills.append(inv.Rec(4, "fill.BTCUSDT", "ORDER_FILLED", {"exec_id": "e2"}))
    assert inv.fills_published_twice(fills)[0] == 1


def test_opening_accepted_under_hard_stop_counts_after_the_margin_only() -> None:
    events = [risk(0, "NORMAL"), risk(10_000, "HARD_STOP", at=10.0), risk(11_000, "HARD_STOP"),
              risk(12_000, "HARD_STOP"), risk(13_000, "HARD_STOP")]
    in_flight = order("h-a", 10_500)            # sent just before the transition: within the margin
    late = order("h-b", 12_000)                 # HARD_STOP in force for 2 s
    close = order("h-c", 12_000, reduce_only=True)
    assert inv.openings_while_forbidden([in_flight, close], events, B)[0] == 0
    assert inv.openings_while_forbidden([late], events, B)[0] == 1


def test_opening_accepted_while_risk_silent_counts() -> None:
    events = [risk(0, "NORMAL"), risk(1_000, "NORMAL")]
    assert inv.openings_while_forbidden([order("h-a", 5_000)], events, B)[0] == 0
    assert inv.openings_while_forbidden([order("h-a", 9_000)], events, B)[0] == 1


def test_positions_held_too_long_and_closed_early() -> None:
    limit_ms = int((B.max_hold_s + B.check_interval_s + B.hold_margin_s) * 1000)
    ok = [exe("a", 0, "Buy"), exe("b", 20_500, "Sell")]
    long = [exe("a", 0, "Buy"), exe("b", limit_ms + 1, "Sell")]
    assert inv.held_too_long(ok, 10**9, B)[0] == 0
    assert inv.held_too_long(long, 10**9, B)[0] == 1
    assert inv.held_too_long([exe("a", 0, "Buy")], limit_ms + 5, B)[0] == 1    # still open at the end
    early = [order("hwd-x", 19_000, reduce_only=True)]
    assert inv.force_closed_early(early, ok, 10**9, B)[0] == 1
    assert inv.force_closed_early([order("hwd-x", 20_100, reduce_only=True)], ok, 10**9, B)[0] == 0


def test_a_flip_through_zero_ends_one_position_and_starts_another() -> None:
    spans = inv.position_spans([exe("a", 0, "Buy"), exe("b", 5, "Sell", "2"), exe("c", 9, "Buy")], 100)
    assert spans == [("BTCUSDT", 0, 5), ("BTCUSDT", 5, 9)]


def test_transition_late_against_exchange_equity() -> None:
    equity = [(1_000, Decimal("9400"))]          # 6 % down: HARD_STOP (4 %) + 1 pp margin
    on_time = [risk(0, "NORMAL"), risk(3_000, "HARD_STOP", at=3.0)]
    late = [risk(0, "NORMAL"), risk(7_000, "HARD_STOP", at=7.0)]
    assert inv.transitions_late(equity, on_time, B)[0] == 0
    assert inv.transitions_late(equity, late, B)[0] == 1
    # already in force when the reading was taken (a latched HARD_STOP before a reset)
    assert inv.transitions_late([(8_000, Decimal("9000"))], late + [risk(8_500, "NORMAL", at=8.5)], B)[0] == 0


def test_schedule_is_seeded_and_covers_every_fault() -> None:
    a, b = schedule.build(7, 120), schedule.build(7, 120)
    assert a == b and [f.params for f in a] == [f.params for f in b]
    assert schedule.build(8, 120) != a
    kinds = {f.kind for f in a}
    assert set(schedule.EXCHANGE_FAULTS) | {"kill9", "sigstop", "crash", "transfer_in", "transfer_out"} <= kinds
    assert {f.params["service"] for f in a if f.kind == "kill9"} == set(schedule.SERVICES)
    crash = next(f.at_s for f in a if f.kind == "crash")
    assert not [f for f in a if f.kind in ("kill9", "sigstop") and crash - 3 <= f.at_s <= crash + 30]


def test_a_fill_counts_as_published_only_if_the_recorder_received_it() -> None:
    execs = [exe("e1", 1, "Buy"), exe("e2", 2, "Sell"), {**exe("f1", 3, "Buy"), "execType": "Funding"}]
    seen = [inv.Rec(1, "fill.BTCUSDT", "ORDER_FILLED", {"exec_id": "e1"})]
    assert inv.fills_not_published(execs, seen) == (1, ["e2"])
    replayed = [*seen, inv.Rec(2, "fill.BTCUSDT", "ORDER_FILLED", {"exec_id": "e2", "replay": True})]
    assert inv.fills_not_published(execs, replayed) == (0, [])
