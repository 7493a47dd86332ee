"""Event payloads built from Bybit rows: numbers stay Decimal strings, missing stays missing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.reconciler.events import equity_event
from hean.risk.core import InvalidEquity, RiskGovernorCore


def test_equity_is_a_decimal_string():
    ev = equity_event({"totalEquity": "10000.5", "totalWalletBalance": "9999", "totalAvailableBalance": "9000",
                       "totalPerpUPL": "1.5"}, 1)
    assert ev["equity"] == "10000.5" and ev["unrealised_pnl"] == "1.5"


@pytest.mark.parametrize("value", [None, "", "n/a", "NaN", "Infinity"])
def test_missing_or_garbage_equity_is_none_not_zero(value):
    """Zero equity is a 100 % drawdown (HARD_STOP, latched): a missing field must never become 0."""
    ev = equity_event({"totalEquity": value}, 1)
    assert ev["equity"] is None
    core = RiskGovernorCore(initial_capital=None)
    core.on_equity(Decimal("1000"), 0.0)
    with pytest.raises(InvalidEquity):
        core.on_equity(ev["equity"], 1.0)
    assert core.state.value == "NORMAL"
