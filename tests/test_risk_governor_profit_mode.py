"""Table tests for the risk ladder (seed fix #4): each case is an equity path with the
expected state and reason codes after every step."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from hean.config import HeanSettings, RiskSettings
from hean.risk import InvalidEquity, ResetRefused, RiskGovernorCore, RiskState, RiskThresholds
from hean.risk.service import thresholds_from

N, S, Q, H = RiskState.NORMAL, RiskState.SOFT_BRAKE, RiskState.QUARANTINE, RiskState.HARD_STOP

# A step is (op, t, arg, expected_state, expected_codes); () codes = no transition, REFUSED = reset refused.
# ops: "eq" (arg = equity), "stale", "ext" (arg = (state, reason)), "reset" (arg = new capital or None).
Step = tuple[str, float, Any, RiskState, tuple[str, ...]]
REFUSED = ("REFUSED",)

PATHS: dict[str, dict[str, Any]] = {
    "loss_ladder_10_15_20": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 950, N, ()),
        ("eq", 2, 900, S, ("MAX_DRAWDOWN_SOFT",)),
        ("eq", 3, 850, Q, ("MAX_DRAWDOWN_QUARANTINE",)),
        ("eq", 4, 800, H, ("MAX_DRAWDOWN_HARD",)),
    ]},
    "just_below_each_threshold": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, Decimal("900.01"), N, ()),
        ("eq", 2, Decimal("850.01"), S, ("MAX_DRAWDOWN_SOFT",)),
        ("eq", 3, Decimal("800.01"), Q, ("MAX_DRAWDOWN_QUARANTINE",)),
    ]},
    "skip_5_to_21_straight_to_hard": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 950, N, ()),
        ("eq", 2, 790, H, ("MAX_DRAWDOWN_HARD",)),
    ]},
    "skip_normal_to_quarantine": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 840, Q, ("MAX_DRAWDOWN_QUARANTINE",)),
    ]},
    "milder_reading_never_lowers_and_band_holds": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 850, Q, ("MAX_DRAWDOWN_QUARANTINE",)),
        ("eq", 2, 880, Q, ()),  # 12 % while in QUARANTINE stays QUARANTINE
        ("eq", 400, 930, Q, ()),  # 7 %: the 5-10 % band holds even after cool-down
        ("eq", 401, Decimal("950.5"), N, ("DRAWDOWN_RECOVERED",)),  # 4.95 % after cool-down
    ]},
    "no_deescalation_before_cooldown_then_after": {"steps": [
        ("eq", 0, 900, S, ("MAX_DRAWDOWN_SOFT",)),
        ("eq", 100, 1000, S, ()),
        ("eq", 299.9, 1000, S, ()),
        ("eq", 300, 1000, N, ("DRAWDOWN_RECOVERED",)),  # exactly cooldown_s is enough
    ], "initial": 1000},
    "recover_needs_strictly_below_recover_pct": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 900, S, ("MAX_DRAWDOWN_SOFT",)),
        ("eq", 1000, 950, S, ()),  # exactly 5 % is not < 5 %
        ("eq", 1001, Decimal("950.01"), N, ("DRAWDOWN_RECOVERED",)),
    ]},
    "escalation_restarts_cooldown_clock": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 10, 900, S, ("MAX_DRAWDOWN_SOFT",)),
        ("eq", 200, 850, Q, ("MAX_DRAWDOWN_QUARANTINE",)),
        ("eq", 400, 1000, Q, ()),  # 390 s since SOFT but only 200 s in QUARANTINE
        ("eq", 500, 1000, N, ("DRAWDOWN_RECOVERED",)),
    ]},
    "hard_stop_latches": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 800, H, ("MAX_DRAWDOWN_HARD",)),
        ("eq", 10_000, 1000, H, ()),
        ("eq", 20_000, 1500, H, ()),
        ("stale", 20_001, None, H, ()),
        ("ext", 20_002, (Q, "WATCHDOG_CLOSE_FAILED"), H, ()),
    ]},
    "profit_mode_then_erosion": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 1060, N, ()),  # peak > 1000 x 1.05: profit mode on
        ("eq", 2, 1000, N, ()),
        ("eq", 3, 900, S, ("PROFIT_ERODED_SOFT",)),
        ("eq", 4, 850, Q, ("PROFIT_ERODED_QUARANTINE",)),
        ("eq", 5, 800, H, ("PROFIT_ERODED_HARD",)),
    ]},
    "profit_mode_needs_peak_strictly_above_factor": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 1050, N, ()),  # exactly 1.05 x initial: not profit mode
        ("eq", 2, 900, S, ("MAX_DRAWDOWN_SOFT",)),
    ]},
    "profit_mode_skip_to_hard": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 1200, N, ()),
        ("eq", 2, 790, H, ("PROFIT_ERODED_HARD",)),
    ]},
    "profit_mode_recovers_after_cooldown": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 1100, N, ()),
        ("eq", 2, 880, S, ("PROFIT_ERODED_SOFT",)),
        ("eq", 302, 1100, N, ("DRAWDOWN_RECOVERED",)),
        ("eq", 303, 899, S, ("PROFIT_ERODED_SOFT",)),  # profit mode stays latched
    ]},
    "stale_equity_quarantines_then_recovers": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("stale", 10, None, Q, ("EQUITY_STALE",)),
        ("stale", 11, None, Q, ()),
        ("eq", 100, 1000, Q, ()),
        ("eq", 310, 1000, N, ("DRAWDOWN_RECOVERED",)),
    ]},
    "stale_raises_soft_to_quarantine": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 890, S, ("MAX_DRAWDOWN_SOFT",)),
        ("stale", 2, None, Q, ("EQUITY_STALE",)),
    ]},
    "external_request_only_raises": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("ext", 1, (Q, "WATCHDOG_CLOSE_FAILED"), Q, ("WATCHDOG_CLOSE_FAILED",)),
        ("ext", 2, (S, "SOMETHING_MILDER"), Q, ()),
        ("ext", 3, (N, "ALL_CLEAR"), Q, ()),
        ("eq", 4, 880, Q, ()),
        ("ext", 5, (H, "MANUAL_KILL"), H, ("MANUAL_KILL",)),
    ]},
    "operator_reset_and_rebase": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 800, H, ("MAX_DRAWDOWN_HARD",)),
        # No re-base while still 20 % down: NORMAL would last until the next reading (issue 12).
        ("reset", 2, None, H, REFUSED),
        ("eq", 3, 800, H, ()),
        ("reset", 4, Decimal("800"), N, ("OPERATOR_RESET", "CAPITAL_REBASED")),
        ("eq", 5, 800, N, ()),
        ("eq", 6, 720, S, ("MAX_DRAWDOWN_SOFT",)),  # 10 % of the new base
        ("reset", 7, None, S, REFUSED),  # SOFT_BRAKE would come straight back
        ("eq", 8, 790, S, ()),  # recovered, but inside the cool-down
        ("reset", 9, None, N, ("OPERATOR_RESET",)),  # nothing left to re-trip: allowed
        ("reset", 10, None, N, ()),  # already NORMAL, nothing to do
    ]},
    "reset_from_hard_stop_after_recovery": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 750, H, ("MAX_DRAWDOWN_HARD",)),
        ("eq", 2, 990, H, ()),  # latched although recovered
        ("reset", 3, None, N, ("OPERATOR_RESET",)),
        ("eq", 4, 990, N, ()),
    ]},
    "rebase_the_equity_is_already_under_is_refused": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 750, H, ("MAX_DRAWDOWN_HARD",)),
        ("reset", 2, Decimal("1000"), H, REFUSED),  # the same base again: HARD_STOP at the next reading
        ("reset", 3, Decimal("840"), H, REFUSED),  # 10.7 % under the new base: SOFT_BRAKE at once
        ("reset", 4, Decimal("750"), N, ("OPERATOR_RESET", "CAPITAL_REBASED")),
        ("eq", 5, 750, N, ()),
    ]},
    "configured_initial_capital_is_the_base": {"initial": 2000, "steps": [
        ("eq", 0, 1800, S, ("MAX_DRAWDOWN_SOFT",)),
    ]},
    "zero_equity_is_a_full_loss": {"steps": [
        ("eq", 0, 1000, N, ()),
        ("eq", 1, 0, H, ("MAX_DRAWDOWN_HARD",)),
    ]},
    "custom_thresholds_zero_cooldown": {
        "thresholds": RiskThresholds.default(soft_pct=2, quarantine_pct=4, hard_pct=6, recover_pct=1, cooldown_s=0),
        "steps": [
            ("eq", 0, 1000, N, ()),
            ("eq", 0, 980, S, ("MAX_DRAWDOWN_SOFT",)),
            ("eq", 0, 995, N, ("DRAWDOWN_RECOVERED",)),
            ("eq", 1, 940, H, ("MAX_DRAWDOWN_HARD",)),
        ],
    },
}


def make_core(case: dict[str, Any]) -> RiskGovernorCore:
    return RiskGovernorCore(case.get("thresholds"), initial_capital=case.get("initial"))


def apply(core: RiskGovernorCore, step: Step):
    op, t, arg, _, _ = step
    if op == "eq":
        return core.on_equity(arg, t)
    if op == "stale":
        return core.on_equity_stale(t, age_s=12.0, max_age_s=10.0)
    if op == "ext":
        return core.on_external(arg[0], arg[1], t)
    if op == "reset":
        try:
            return core.reset(t, "alice", new_initial_capital=arg)
        except ResetRefused:
            return REFUSED
    raise AssertionError(op)


@pytest.mark.parametrize("name", sorted(PATHS))
def test_equity_path(name: str) -> None:
    case = PATHS[name]
    core = make_core(case)
    for i, step in enumerate(case["steps"]):
        before = core.state
        transition = apply(core, step)
        _, t, _, want_state, want_codes = step
        assert core.state is want_state, f"{name} step {i}: {core.state} != {want_state}"
        if want_codes == REFUSED:
            assert transition == REFUSED and core.state is before, f"{name} step {i}: reset not refused"
        elif want_codes:
            assert transition is not None, f"{name} step {i}: expected {want_codes}"
            assert transition.reason_codes == want_codes
            assert (transition.from_state, transition.to_state, transition.at) == (before, want_state, t)
            assert core.state_since == t
            json.dumps(transition.to_event(), allow_nan=False)
        else:
            assert transition is None, f"{name} step {i}: unexpected {transition}"


def test_transition_event_carries_seed_fields() -> None:
    core = RiskGovernorCore(initial_capital=1000)
    t = core.on_equity(Decimal("880"), 7.5)
    assert t is not None
    event = json.loads(json.dumps(t.to_event(), allow_nan=False))
    assert event == {
        "from_state": "NORMAL", "to_state": "SOFT_BRAKE", "reason_codes": ["MAX_DRAWDOWN_SOFT"],
        "metric": "drawdown_pct", "value": 12.0, "threshold": 10.0, "at": 7.5,
    }
    assert core.drawdown_pct == 12.0


def test_profit_mode_reports_drawdown_from_initial_metric() -> None:
    core = RiskGovernorCore(initial_capital=1000)
    core.on_equity(1100, 0)
    assert core.profit_mode and core.peak_equity == Decimal("1100")
    t = core.on_equity(840, 1)
    assert t is not None
    assert (t.metric, t.value, t.threshold) == ("drawdown_from_initial", 16.0, 15.0)


def test_reset_event_names_operator() -> None:
    core = RiskGovernorCore(initial_capital=1000)
    core.on_equity(700, 0)
    core.on_equity(1000, 1)  # back at the base: a plain reset is safe
    t = core.reset(5, "bob")
    assert t is not None and t.to_event()["operator"] == "bob"
    assert t.from_state is H and t.to_state is N
    assert (t.metric, t.value) == ("initial_capital", 1000.0)
    core.on_equity(1200, 6)
    assert core.profit_mode
    rebased = core.reset(7, "bob", new_initial_capital=Decimal("1200"))
    assert rebased is not None and rebased.value == 1200.0
    assert not core.profit_mode and core.peak_equity is None  # old peak belonged to the old base


def test_stale_event_carries_age_and_limit() -> None:
    core = RiskGovernorCore(initial_capital=1000)
    t = core.on_equity_stale(3, age_s=12.5, max_age_s=10)
    assert t is not None and (t.metric, t.value, t.threshold) == ("equity_age_s", 12.5, 10.0)


BAD_EQUITY = [math.nan, math.inf, -math.inf, -1, -0.01, Decimal("NaN"), Decimal("sNaN"),
              Decimal("Infinity"), Decimal("-5"), "1000", None, True, [1000]]


@pytest.mark.parametrize("bad", BAD_EQUITY, ids=repr)
def test_invalid_equity_rejected_without_state_change(bad: Any) -> None:
    core = RiskGovernorCore(initial_capital=1000)
    core.on_equity(880, 0)
    before = (core.snapshot(), core.equity, core.drawdown_pct)
    with pytest.raises(InvalidEquity):
        core.on_equity(bad, 1000)
    assert (core.snapshot(), core.equity, core.drawdown_pct) == before
    # A genuine recovery afterwards still works: the rejection did not touch the clock.
    assert core.on_equity(1000, 1000) is not None and core.state is N


@pytest.mark.parametrize("bad", [0, Decimal("0"), -100, 0.0])
def test_zero_or_negative_initial_capital_rejected(bad: Any) -> None:
    with pytest.raises(InvalidEquity):
        RiskGovernorCore(initial_capital=bad)
    fresh = RiskGovernorCore()
    with pytest.raises(InvalidEquity):
        fresh.on_equity(bad, 0)  # would become the base
    assert fresh.initial_capital is None and fresh.equity is None
    assert fresh.on_equity(500, 1) is None and fresh.initial_capital == Decimal("500")
    fresh.on_equity(400, 2)
    with pytest.raises(InvalidEquity):
        fresh.reset(3, "alice", new_initial_capital=bad)
    assert fresh.state is H and fresh.initial_capital == Decimal("500")


@pytest.mark.parametrize("name", ["profit_mode_then_erosion", "profit_mode_recovers_after_cooldown",
                                  "escalation_restarts_cooldown_clock", "operator_reset_and_rebase"])
def test_snapshot_round_trip_mid_path(name: str) -> None:
    steps = PATHS[name]["steps"]
    for cut in range(1, len(steps)):
        original = make_core(PATHS[name])
        for step in steps[:cut]:
            apply(original, step)
        stored = json.loads(json.dumps(original.snapshot(), allow_nan=False))
        restored = RiskGovernorCore.from_snapshot(PATHS[name].get("thresholds"), stored)
        assert restored.snapshot() == original.snapshot()
        if original.equity is not None:  # a restarted process hears the reconciler's reading again
            restored.on_equity(original.equity, steps[cut - 1][1])
        assert restored.profit_mode == original.profit_mode
        for step in steps[cut:]:
            a, b = apply(original, step), apply(restored, step)
            assert a == b, f"{name} cut {cut}: {a} != {b}"
            assert restored.state is step[3]


@pytest.mark.parametrize("bad", [{}, {"state": "PANIC", "state_since": 0}, {"state": "NORMAL"},
                                 {"state": "NORMAL", "state_since": 0, "initial_capital": 1000.5},
                                 {"state": "NORMAL", "state_since": 0, "initial_capital": "abc"},
                                 {"state": "NORMAL", "state_since": math.nan}])
def test_malformed_snapshot_fails_loudly(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RiskGovernorCore.from_snapshot(None, bad)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"soft_pct": 0}, "soft_pct"),
    ({"soft_pct": -1}, "soft_pct"),
    ({"quarantine_pct": 10}, "quarantine_pct"),
    ({"hard_pct": 15}, "hard_pct"),
    ({"hard_pct": 100.5}, "hard_pct"),
    ({"recover_pct": 10}, "recover_pct"),
    ({"recover_pct": -0.1}, "recover_pct"),
    ({"profit_mode_factor": 0.99}, "profit_mode_factor"),
    ({"cooldown_s": -1}, "cooldown_s"),
    ({"cooldown_s": math.nan}, "cooldown_s"),
    ({"soft_pct": math.inf}, "soft_pct"),
    ({"hard_pct": True}, "hard_pct"),
])
def test_threshold_validation_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RiskThresholds.default(**kwargs)


def test_threshold_edges_accepted() -> None:
    t = RiskThresholds(soft_pct=1, quarantine_pct=2, hard_pct=100, recover_pct=0,
                       profit_mode_factor=1, cooldown_s=0)
    assert t.hard_pct == 100 and RiskThresholds.default().soft_pct == 10


def test_thresholds_have_one_source_of_truth() -> None:
    """RiskSettings holds the only defaults: RiskThresholds has none of its own to drift."""
    fields = dataclasses.fields(RiskThresholds)
    assert all(f.default is dataclasses.MISSING for f in fields), "RiskThresholds grew its own defaults"
    settings = RiskSettings()
    assert {f.name: getattr(settings, f.name) for f in fields} == dataclasses.asdict(RiskThresholds.default())
    assert RiskGovernorCore().thresholds == RiskThresholds.default()


def test_every_risk_setting_reaches_the_thresholds() -> None:
    """A setting the service forgot to pass on would leave the core on a silent default."""
    changed = {"soft_pct": 11.0, "quarantine_pct": 16.0, "hard_pct": 21.0, "recover_pct": 4.0,
               "profit_mode_factor": 1.2, "cooldown_s": 7.0}
    assert set(changed) == {f.name for f in dataclasses.fields(RiskThresholds)}
    env = {f"HEAN_RISK__{k.upper()}": str(v) for k, v in changed.items()}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        thresholds = thresholds_from(HeanSettings())
    assert dataclasses.asdict(thresholds) == changed


def test_state_levels_are_ordered() -> None:
    assert [s.level for s in (N, S, Q, H)] == [0, 1, 2, 3]


def test_reset_on_stale_equity_is_refused_even_with_a_rebase() -> None:
    """EQUITY_STALE would bring QUARANTINE straight back: no reset (re-base or not) until equity is fresh."""
    core = RiskGovernorCore(RiskThresholds.default(), initial_capital=Decimal("1000"))
    core.on_equity(Decimal("1000"), 1.0)
    core.on_equity_stale(40.0, age_s=35.0, max_age_s=30.0)
    assert core.state is RiskState.QUARANTINE
    for capital in (None, Decimal("1000")):
        with pytest.raises(ResetRefused, match="stale"):
            core.reset(41.0, "alice", capital, equity_age_s=36.0, max_equity_age_s=30.0)
        assert core.state is RiskState.QUARANTINE
    transition = core.reset(42.0, "alice", None, equity_age_s=0.5, max_equity_age_s=30.0)
    assert transition is not None and core.state is RiskState.NORMAL
