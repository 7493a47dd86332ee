"""Property: the risk level only drops through the two legal doors (recovery after
cool-down, operator reset), whatever sequence of inputs arrives."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hean.risk import InvalidEquity, ResetRefused, RiskGovernorCore, RiskState, RiskThresholds

THRESHOLDS = RiskThresholds.default(cooldown_s=50)

equity_values = st.one_of(
    st.decimals(min_value=0, max_value=2000, places=2),
    st.sampled_from([Decimal("NaN"), float("inf"), -1.0, float("nan")]),
)
ops = st.one_of(
    st.tuples(st.just("eq"), equity_values),
    st.tuples(st.just("stale"), st.none()),
    st.tuples(st.just("ext"), st.sampled_from(list(RiskState))),
    st.tuples(st.just("reset"), st.sampled_from([None, None, Decimal("800"), Decimal("1000")])),
)
steps = st.lists(st.tuples(st.floats(min_value=0, max_value=120), ops), max_size=60)


def implied_level(drawdown: Decimal) -> int:
    limits = [THRESHOLDS.soft_pct, THRESHOLDS.quarantine_pct, THRESHOLDS.hard_pct]
    return sum(1 for limit in limits if drawdown >= Decimal(repr(limit)))


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_level_drops_only_through_legal_paths(steps: list[tuple[float, tuple[str, Any]]]) -> None:
    core = RiskGovernorCore(THRESHOLDS, initial_capital=1000)
    now = 0.0
    for delta, (op, arg) in steps:
        now += delta
        old_state, old_since = core.state, core.state_since
        try:
            if op == "eq":
                transition = core.on_equity(arg, now)
            elif op == "stale":
                transition = core.on_equity_stale(now)
            elif op == "ext":
                transition = core.on_external(arg, "TEST_REQUEST", now)
            else:
                transition = core.reset(now, "prop", new_initial_capital=arg)
        except ResetRefused as refused:
            # Refused only when the next reading would re-trip from the base in force after the reset.
            assert op == "reset" and (core.state, core.state_since) == (old_state, old_since)
            base = arg if arg is not None else core.initial_capital
            if core.equity is None:
                assert arg is None
            else:
                assert implied_level((base - core.equity) / base * 100) >= 1 and refused.would_be.level >= 1
            continue
        except InvalidEquity:
            assert op == "eq" and (core.state, core.state_since) == (old_state, old_since)
            continue

        if transition is None:
            assert (core.state, core.state_since) == (old_state, old_since)
        else:
            assert (transition.from_state, transition.to_state) == (old_state, core.state)
            assert core.state_since == now == transition.at

        if core.state.level < old_state.level:
            assert transition is not None
            if op == "reset":
                assert core.state is RiskState.NORMAL
                assert transition.reason_codes[0] == "OPERATOR_RESET"
            else:
                assert op == "eq" and old_state is not RiskState.HARD_STOP
                assert core.state is RiskState.NORMAL
                assert transition.reason_codes == ("DRAWDOWN_RECOVERED",)
                assert Decimal(repr(core.drawdown_pct)) < Decimal(repr(THRESHOLDS.recover_pct))
                assert now - old_since >= THRESHOLDS.cooldown_s
        if old_state is RiskState.HARD_STOP and op != "reset":
            assert core.state is RiskState.HARD_STOP

        if op == "eq" and core.initial_capital is not None and core.equity is not None:
            drawdown = (core.initial_capital - core.equity) / core.initial_capital * 100
            assert core.state.level >= implied_level(drawdown), "escalation must be immediate"
