"""Table tests for the watchdog's pure age rule and close-order builder (seed fix #5)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.watchdog import (
    AgeUnknown,
    CloseOrder,
    DecisionKind,
    InvalidPosition,
    Opening,
    PositionAge,
    close_link_id,
    close_order_for,
    close_qty,
    evaluate,
    parse_position,
)

CREATED = 1_746_270_000_000  # openTime of the current position
FIRST_EVER = CREATED - 2 * 365 * 86_400_000  # Bybit's createdTime: the first-ever position on the symbol
HOLD_S = 3600


def row(**overrides: Any) -> dict[str, Any]:
    """A REST /v5/position/list row (SPEC 2.7) with the fields the rule reads."""
    base: dict[str, Any] = {
        "positionIdx": 0, "symbol": "BTCUSDT", "side": "Buy", "size": "0.5", "avgPrice": "95900.1",
        "markPrice": "95901.48", "positionStatus": "Normal", "createdTime": str(FIRST_EVER),
        "updatedTime": str(CREATED + 5000), "seq": 1, "isReduceOnly": False, "openTime": CREATED,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(("age_ms", "kind"), [
    (0, DecisionKind.OK),
    ((HOLD_S - 180) * 1000, DecisionKind.OK),  # remaining == warn_before_s: not yet a warning
    ((HOLD_S - 180) * 1000 + 1, DecisionKind.WARN),
    (HOLD_S * 1000 - 1, DecisionKind.WARN),
    (HOLD_S * 1000, DecisionKind.WARN),  # exactly at max_hold: not older than it
    (HOLD_S * 1000 + 1, DecisionKind.CLOSE),
    (10 * HOLD_S * 1000, DecisionKind.CLOSE),
    (-60_000, DecisionKind.OK),  # createdTime after now (clock skew) never closes
])
def test_age_comes_from_open_time_never_created_time(age_ms: int, kind: DecisionKind) -> None:
    [decision] = evaluate([row()], CREATED + age_ms, HOLD_S)
    assert decision.kind is kind, decision.reason
    assert decision.position is not None
    assert decision.position.age_s == age_ms / 1000
    assert decision.position.remaining_s == (HOLD_S * 1000 - age_ms) / 1000
    assert decision.position.opened_ms == CREATED and decision.position.opening.source == "open_time"
    assert decision.position.created_ms == FIRST_EVER  # kept for information only


FILL_OPENING = Opening("executions", CREATED - 10_000, "eabc", exec_id="abc")


@pytest.mark.parametrize(("open_time", "opening", "expected"), [
    (CREATED, None, "open_time"),
    (0, FILL_OPENING, "executions"),  # openTime 0: the opening learnt from executions
    (None, FILL_OPENING, "executions"),  # no openTime field at all (older API)
    (CREATED, FILL_OPENING, "executions"),  # the caller's opening wins (the shell only passes one when needed)
    (0, None, None),
    ("1746270000000", None, None),  # openTime is an integer on the wire; a string is not trusted
    (True, None, None),
    (-5, None, None),
])
def test_opening_source(open_time: Any, opening: Opening | None, expected: str | None) -> None:
    r = row(openTime=open_time)
    if open_time is None:
        del r["openTime"]
    now = CREATED + 1000
    [decision] = evaluate([r], now, HOLD_S, openings={"BTCUSDT": opening} if opening else None)
    if expected is None:
        assert decision.kind is DecisionKind.AGE_UNKNOWN and decision.position is None
        assert "age unknown" in decision.reason
        with pytest.raises(AgeUnknown):
            parse_position(r, now, HOLD_S)
    else:
        assert decision.position is not None and decision.position.opening.source == expected


def test_first_ever_created_time_does_not_close_a_fresh_position() -> None:
    """The defect: createdTime two years old, position opened a second ago -> OK, not CLOSE."""
    [decision] = evaluate([row()], CREATED + 1000, HOLD_S)
    assert decision.kind is DecisionKind.OK


def test_warn_window_is_configurable() -> None:
    now = CREATED + (HOLD_S - 500) * 1000
    assert evaluate([row()], now, HOLD_S)[0].kind is DecisionKind.OK
    assert evaluate([row()], now, HOLD_S, warn_before_s=600)[0].kind is DecisionKind.WARN
    assert evaluate([row()], now, HOLD_S, warn_before_s=0)[0].kind is DecisionKind.OK


def test_flat_rows_are_left_out() -> None:
    rows = [row(symbol="ETHUSDT", side="", size="0", createdTime="0"), row(size="0.000"), row()]
    decisions = evaluate(rows, CREATED + (HOLD_S + 1) * 1000, HOLD_S)
    assert [(d.kind, d.symbol) for d in decisions] == [(DecisionKind.CLOSE, "BTCUSDT")]


@pytest.mark.parametrize(("bad", "reason"), [
    ("not a dict", "not an object"),
    (None, "not an object"),
    (row(symbol=None), "symbol"),
    (row(symbol=""), "symbol"),
    (row(symbol="BTC/USDT"), "symbol"),
    (row(side="Long"), "side"),
    (row(side=""), "side"),  # side "" but size > 0 contradicts itself: surfaced, not ignored
    (row(size="abc"), "size"),
    (row(size="-0.5"), "size"),
    (row(size="NaN"), "size"),
    (row(size=None), "size"),
    (row(size=0.5), "size"),  # float sizes are refused: money is never float
    (row(positionIdx=7), "positionIdx"),
])
def test_invalid_rows_become_skip_invalid(bad: Any, reason: str) -> None:
    decisions = evaluate([bad, row()], CREATED + (HOLD_S + 1) * 1000, HOLD_S)
    assert [d.kind for d in decisions] == [DecisionKind.SKIP_INVALID, DecisionKind.CLOSE]
    assert reason in decisions[0].reason
    assert decisions[0].position is None and decisions[0].row is bad


def test_ws_rows_with_entry_price_and_int_created_time() -> None:
    ws_row = row(category="linear", createdTime=FIRST_EVER, size="2")
    del ws_row["avgPrice"]
    ws_row["entryPrice"] = "101.5"
    [decision] = evaluate([ws_row], CREATED + 1000, HOLD_S)
    assert decision.kind is DecisionKind.OK and decision.position is not None
    assert decision.position.entry_price == Decimal("101.5")
    assert decision.position.size == Decimal("2")


def test_foreign_positions_can_be_excluded() -> None:
    rows = [row(), row(symbol="SOLUSDT")]
    now = CREATED + (HOLD_S + 1) * 1000
    assert [d.kind for d in evaluate(rows, now, HOLD_S)] == [DecisionKind.CLOSE] * 2
    mine_only = evaluate(rows, now, HOLD_S, include_foreign=False, hean_symbols={"BTCUSDT"})
    assert [(d.kind, d.symbol) for d in mine_only] == [
        (DecisionKind.CLOSE, "BTCUSDT"), (DecisionKind.SKIP_FOREIGN, "SOLUSDT"),
    ]
    with pytest.raises(ValueError, match="hean_symbols"):
        evaluate(rows, now, HOLD_S, include_foreign=False)


@pytest.mark.parametrize("kwargs", [{"max_hold_s": 0}, {"max_hold_s": -1}, {"max_hold_s": float("nan")},
                                    {"warn_before_s": -1}, {"now_ms": 1.5}])
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"now_ms": CREATED, "max_hold_s": HOLD_S} | kwargs
    with pytest.raises(ValueError):
        evaluate([row()], **args)


def pos(**overrides: Any) -> PositionAge:
    return parse_position(row(**overrides), CREATED, HOLD_S)


@pytest.mark.parametrize(("side", "close_side"), [("Buy", "Sell"), ("Sell", "Buy")])
def test_close_order_takes_opposite_side_full_size_reduce_only(side: str, close_side: str) -> None:
    order = close_order_for(pos(side=side, size="0.010"))
    assert isinstance(order, CloseOrder)
    assert (order.side, order.qty, order.order_type, order.reduce_only) == (
        close_side, Decimal("0.010"), "Market", True,
    )
    body = order.to_request()
    assert body == {
        "category": "linear", "symbol": "BTCUSDT", "side": close_side, "orderType": "Market",
        "qty": "0.010", "reduceOnly": True, "positionIdx": 0, "orderLinkId": order.order_link_id,
    }
    assert close_order_for(pos(side=side, size="0.010"), qty=Decimal("0.004")).qty == Decimal("0.004")


def test_close_order_from_decision_matches_close_order_from_row() -> None:
    [decision] = evaluate([row(side="Sell")], CREATED + (HOLD_S + 1) * 1000, HOLD_S)
    assert isinstance(decision.position, PositionAge)
    assert close_order_for(decision.position, 2) == close_order_for(pos(side="Sell"), 2)


def test_close_order_qty_never_in_exponent_form() -> None:
    assert close_order_for(pos(size="1E+1")).to_request()["qty"] == "10"


def test_close_order_refuses_bad_attempts() -> None:
    with pytest.raises(InvalidPosition):
        pos(side="", size="0")
    with pytest.raises(ValueError, match="attempt"):
        close_order_for(pos(), attempt=0)


@pytest.mark.parametrize(("size", "max_mkt", "step", "qty"), [
    ("0.5", "1", "0.001", "0.5"),  # fits: one order for the whole size
    ("1", "1", "0.001", "1"),
    ("2.5", "1", "0.001", "1"),  # larger than maxMktOrderQty: at most that per order
    ("2.5", "1.0005", "0.001", "1.000"),  # a cap off the step grid is rounded down onto it
    ("2.5", "0.0005", "0.001", "2.5"),  # a cap below one step cannot be obeyed: send the size (exchange decides)
    ("2.5", None, "0.001", "2.5"),
])
def test_close_qty_respects_max_market_qty(size: str, max_mkt: str | None, step: str, qty: str) -> None:
    assert close_qty(Decimal(size), Decimal(max_mkt) if max_mkt else None, Decimal(step)) == Decimal(qty)


def test_link_id_identity() -> None:
    first = close_order_for(pos()).order_link_id
    assert first.startswith("hwd-")
    assert close_order_for(pos(size="0.7", avgPrice="1")).order_link_id == first  # same position
    assert close_order_for(pos(), attempt=2).order_link_id != first
    assert close_order_for(pos(openTime=CREATED + 1)).order_link_id != first  # a new position
    assert close_order_for(pos(createdTime=str(FIRST_EVER + 1))).order_link_id == first  # createdTime: no say
    assert close_order_for(pos(symbol="BTCUSDC")).order_link_id != first
    assert close_order_for(pos(side="Sell")).order_link_id != first
    by_fill = parse_position(row(openTime=0), CREATED, HOLD_S, FILL_OPENING)
    other_fill = parse_position(row(openTime=0), CREATED, HOLD_S, Opening("executions", CREATED, "edef", "def"))
    assert close_order_for(by_fill).order_link_id != close_order_for(other_fill).order_link_id


LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


@settings(max_examples=300, deadline=None)
@given(
    symbol=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=40),
    key=st.text(min_size=1, max_size=80),
    side=st.sampled_from(["Buy", "Sell"]),
    idx=st.sampled_from([0, 1, 2]),
    attempt=st.integers(min_value=1, max_value=9999),
)
def test_link_id_length_charset_determinism(symbol: str, key: str, side: str, idx: int, attempt: int) -> None:
    link_id = close_link_id(symbol, key, side, idx, attempt)
    assert LINK_ID_RE.match(link_id), link_id
    assert link_id.startswith("hwd-")
    assert link_id == close_link_id(symbol, key, side, idx, attempt)
    if attempt < 9999:
        assert close_link_id(symbol, key, side, idx, attempt + 1) != link_id


@pytest.mark.parametrize(("open_time_ms", "kind"), [
    (CREATED, DecisionKind.OK),
    (CREATED - (HOLD_S + 1) * 1000, DecisionKind.CLOSE),
    (0, DecisionKind.AGE_UNKNOWN),  # the shell then walks the executions for it
    (None, DecisionKind.AGE_UNKNOWN),  # a reconciler without contract 3's field
])
def test_reconciler_position_event_is_aged_by_open_time_ms_never_created_time(
        open_time_ms: int | None, kind: DecisionKind) -> None:
    from hean.watchdog.service import _row_from_event
    data = {"symbol": "BTCUSDT", "side": "Buy", "size": "0.5", "avg_price": "95900", "created_time_ms": FIRST_EVER,
            "updated_time_ms": CREATED, "open_time_ms": open_time_ms, "foreign": False}
    [decision] = evaluate([_row_from_event(data)], CREATED + 1000, HOLD_S)
    assert decision.kind is kind, decision.reason
