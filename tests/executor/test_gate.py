"""Pure executor rules: intent validation and risk gating in every state."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hean.exchange.bybit.filters import InstrumentFilter
from hean.executor.gate import InvalidIntent, RiskView, parse_intent, risk_gate, withdraw_reason

BTC = InstrumentFilter(symbol="BTCUSDT", tick_size=Decimal("0.10"), qty_step=Decimal("0.001"),
                       min_qty=Decimal("0.001"), max_qty=Decimal("100"), max_mkt_qty=Decimal("50"),
                       min_notional=Decimal("5"))
INSTRUMENTS = {"BTCUSDT": BTC}
FACTOR = Decimal("0.5")


def raw(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = dict(intent_id="s-1-abc", strategy_id="s", symbol="BTCUSDT", side="Buy", qty="0.010",
                                order_type="Market", price=None, reduce_only=False)
    data.update(fields)
    return data


def test_valid_intent_is_rounded_to_the_instrument():
    intent = parse_intent(raw(qty="0.0129", order_type="Limit", price="50000.07"), INSTRUMENTS)
    assert intent.qty == Decimal("0.012")          # size rounds down, never up
    assert intent.price == Decimal("50000.0")      # a Buy never pays more than asked
    sell = parse_intent(raw(side="Sell", order_type="Limit", price="50000.01"), INSTRUMENTS)
    assert sell.price == Decimal("50000.1")


@pytest.mark.parametrize("fields, detail", [
    ({"symbol": "DOGEUSDT"}, "unknown symbol"),
    ({"qty": "0"}, "qty must be > 0"),
    ({"qty": "-1"}, "qty must be > 0"),
    ({"qty": "NaN"}, "not finite"),
    ({"qty": "inf"}, "not finite"),
    ({"qty": float("nan")}, "not finite"),
    ({"qty": 0.01}, "decimal string"),
    ({"qty": "abc"}, "not a number"),
    ({"qty": "0.0004"}, "below minOrderQty"),
    ({"qty": "60"}, "above max"),
    ({"price": "50000"}, "price given on a Market order"),
    ({"order_type": "Limit"}, "Limit order without price"),
    ({"side": "buy"}, "side must be"),
    ({"order_type": "Stop"}, "order_type must be"),
    ({"symbol": None}, "missing field symbol"),
    ({"intent_id": "has space"}, "intent_id"),
    ({"reduce_only": "yes"}, "reduce_only"),
    ({"time_in_force": "GTD"}, "time_in_force"),
])
def test_bad_intents_are_refused_with_a_reason(fields, detail):
    with pytest.raises(InvalidIntent, match=detail):
        parse_intent(raw(**fields), INSTRUMENTS)


def test_non_object_intent_is_refused():
    with pytest.raises(InvalidIntent):
        parse_intent(["not", "a", "dict"], INSTRUMENTS)


def view(state: str | None, *, stale: bool = False, reconciling: bool = False,
         unresolved: frozenset[str] = frozenset()) -> RiskView:
    return RiskView(state, stale, reconciling, unresolved)


OPEN = parse_intent(raw(qty="0.011"), INSTRUMENTS)
CLOSE = parse_intent(raw(side="Sell", qty="0.011", reduce_only=True), INSTRUMENTS)


@pytest.mark.parametrize("state, allowed, qty, reason", [
    ("NORMAL", True, "0.011", None),
    ("SOFT_BRAKE", True, "0.005", None),     # 0.0055 rounded DOWN to the qty step
    ("QUARANTINE", False, "0.011", "QUARANTINE"),
    ("HARD_STOP", False, "0.011", "HARD_STOP"),
    ("SOMETHING_NEW", False, "0.011", "unknown_risk_state"),
])
def test_opening_orders_by_state(state, allowed, qty, reason):
    decision = risk_gate(OPEN, view(state), FACTOR, BTC)
    assert (decision.allowed, decision.qty, decision.reason) == (allowed, Decimal(qty), reason)


@pytest.mark.parametrize("state", ["NORMAL", "SOFT_BRAKE", "QUARANTINE", "HARD_STOP", None])
def test_reduce_only_passes_every_state_at_full_size(state):
    for v in (view(state), view(state, stale=True), view(state, reconciling=True),
              view(state, unresolved=frozenset({"BTCUSDT"}))):
        decision = risk_gate(CLOSE, v, FACTOR, BTC)
        assert decision.allowed and decision.qty == Decimal("0.011")


def test_stale_or_missing_risk_state_fails_closed():
    assert risk_gate(OPEN, view("NORMAL", stale=True), FACTOR, BTC).reason == "risk_stale"
    assert view("NORMAL", stale=True).effective == "HARD_STOP"
    assert view(None, stale=True).effective == "HARD_STOP"  # start-up: nothing heard yet


def test_reconciling_allows_only_reduce_only():
    assert risk_gate(OPEN, view("NORMAL", reconciling=True), FACTOR, BTC).reason == "reconciling"


def test_unknown_outcome_on_symbol_blocks_new_opening_orders_there_only():
    blocked = risk_gate(OPEN, view("NORMAL", unresolved=frozenset({"BTCUSDT"})), FACTOR, BTC)
    assert blocked.reason == "unresolved_exposure"
    assert risk_gate(OPEN, view("NORMAL", unresolved=frozenset({"ETHUSDT"})), FACTOR, BTC).allowed


def test_soft_brake_that_rounds_below_min_qty_is_blocked():
    tiny = parse_intent(raw(qty="0.001"), INSTRUMENTS)
    decision = risk_gate(tiny, view("SOFT_BRAKE"), FACTOR, BTC)
    assert not decision.allowed and decision.reason == "SOFT_BRAKE"


def test_send_time_check_withdraws_what_the_gate_no_longer_allows_at_that_size():
    opening = parse_intent(raw(qty="0.010"), INSTRUMENTS)
    closing = parse_intent(raw(side="Sell", qty="0.010", reduce_only=True), INSTRUMENTS)
    normal, braked = RiskView("NORMAL", False, False), RiskView("SOFT_BRAKE", False, False)
    full, half = Decimal("0.010"), Decimal("0.005")
    assert withdraw_reason(opening, full, normal, FACTOR, BTC) is None
    assert withdraw_reason(opening, full, braked, FACTOR, BTC) == "size 0.005 < 0.01"   # admitted at full size
    assert withdraw_reason(opening, half, braked, FACTOR, BTC) is None                 # admitted braked
    assert withdraw_reason(opening, half, normal, FACTOR, BTC) is None                 # never enlarged
    for state in ("QUARANTINE", "HARD_STOP"):
        assert withdraw_reason(opening, half, RiskView(state, False, False), FACTOR, BTC) == state
        assert withdraw_reason(closing, full, RiskView(state, False, False), FACTOR, BTC) is None
    assert withdraw_reason(opening, full, RiskView("NORMAL", True, False), FACTOR, BTC) == "risk_stale"
    assert withdraw_reason(opening, full, RiskView("NORMAL", False, True), FACTOR, BTC) == "reconciling"
    ambiguous = RiskView("NORMAL", False, False, frozenset({"BTCUSDT"}))
    assert withdraw_reason(opening, full, ambiguous, FACTOR, BTC) == "unresolved_exposure"
