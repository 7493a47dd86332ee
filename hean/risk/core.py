"""Pure risk-governor state machine (seed fix #4), with no I/O and no clock.

Why pure: the `hean run risk` shell owns SQLite, the bus and the clock; this
module only decides. Every input carries its own time (`now`, unix seconds),
so the same sequence of calls always yields the same states, and tests can
replay equity paths as tables.

Ladder (thresholds configurable, defaults in brackets): drawdown >= soft
[10 %] -> SOFT_BRAKE, >= quarantine [15 %] -> QUARANTINE, >= hard [20 %] ->
HARD_STOP. Drawdown is measured from INITIAL capital, never from a daily high:
``drawdown % = (initial - equity) / initial * 100`` (negative while in gain).

Escalation is immediate and only upward; a level may be skipped (5 % -> 21 %
goes straight to HARD_STOP). A milder reading never lowers the state. The only
automatic way down is straight to NORMAL, when drawdown < recover [5 %] AND the
current state has lasted >= cooldown_s [300 s]. HARD_STOP latches: only the
operator's ``reset`` leaves it. Stale equity raises to QUARANTINE
(``EQUITY_STALE``) and external requests (e.g. the watchdog's
``WATCHDOG_CLOSE_FAILED``) can only raise.

Profit mode, and how it differs from the seed: the seed enters "profit mode"
when the *current* equity is above initial x 1.05 and then checks drawdown
from initial capital -- but in that branch equity > initial, so the drawdown is
negative and the PROFIT_ERODED_* codes can never fire. Here profit mode is a
tracked fact about the account: it is on once the PEAK equity has exceeded
initial x profit_mode_factor (strictly greater), and stays on until the capital
is re-based. The drawdown rule and thresholds are identical in both modes
(still measured from initial capital, so gains are never "taxed" by a
trailing stop); what changes is the report: a later fall is emitted with
PROFIT_ERODED_{SOFT,QUARANTINE,HARD} and metric ``drawdown_from_initial``,
meaning "the account had banked over 5 % profit and has now given it all back
plus N % of its starting capital". Without profit mode the codes are
MAX_DRAWDOWN_{SOFT,QUARANTINE,HARD} with metric ``drawdown_pct``.

Money is Decimal inside; floats appear only in emitted event values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from hean.risk.thresholds import RiskThresholds, finite_number

__all__ = ["InvalidEquity", "ResetRefused", "RiskGovernorCore", "RiskState", "RiskThresholds", "RiskTransition"]

_LEVELS = {"NORMAL": 0, "SOFT_BRAKE": 1, "QUARANTINE": 2, "HARD_STOP": 3}


class RiskState(str, Enum):
    """Risk ladder; `level` orders states so "only upward" is a comparison."""

    NORMAL = "NORMAL"
    SOFT_BRAKE = "SOFT_BRAKE"
    QUARANTINE = "QUARANTINE"
    HARD_STOP = "HARD_STOP"

    @property
    def level(self) -> int:
        return _LEVELS[self.value]


class InvalidEquity(ValueError):
    """Equity or capital that must not move the state machine (NaN, inf, < 0, ...)."""


class ResetRefused(ValueError):
    """A reset without a re-base that the next equity reading would undo (issue 12).

    NORMAL then HARD_STOP half a second later is a window for opening orders; refusing
    is the safe answer. `drawdown_pct` is None when no equity is known yet.
    """

    def __init__(self, message: str, *, would_be: RiskState, drawdown_pct: float | None, threshold_pct: float,
                 equity: Decimal | None) -> None:
        super().__init__(message)
        self.would_be, self.drawdown_pct, self.threshold_pct, self.equity = would_be, drawdown_pct, threshold_pct, equity


def _to_decimal(value: Any, what: str) -> Decimal:
    """Convert an equity-like number to Decimal or raise InvalidEquity.

    Floats go through repr (shortest round-trip text) so 899.9 means 899.9,
    not its binary expansion.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise InvalidEquity(f"{what} must be a number, got {type(value).__name__}")
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidEquity(f"{what} is not a number: {value!r}") from exc
    if not dec.is_finite():
        raise InvalidEquity(f"{what} must be finite, got {value!r}")
    if dec < 0:
        raise InvalidEquity(f"{what} must not be negative, got {value!r}")
    return dec


def _capital(value: Any) -> Decimal:
    dec = _to_decimal(value, "initial capital")
    if dec <= 0:
        raise InvalidEquity(f"initial capital must be > 0, got {value!r}")
    return dec


@dataclass(frozen=True)
class RiskTransition:
    """One state change, carrying everything the shell logs, publishes and stores."""

    from_state: RiskState
    to_state: RiskState
    reason_codes: tuple[str, ...]
    metric: str
    value: float
    threshold: float
    at: float
    operator: str | None = None

    def to_event(self) -> dict[str, Any]:
        """JSON-safe payload: the seed's fields plus from/to/at."""
        event: dict[str, Any] = {
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "reason_codes": list(self.reason_codes),
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "at": self.at,
        }
        if self.operator is not None:
            event["operator"] = self.operator
        return event


_LADDER = (
    (RiskState.HARD_STOP, "hard_pct", "HARD"),
    (RiskState.QUARANTINE, "quarantine_pct", "QUARANTINE"),
    (RiskState.SOFT_BRAKE, "soft_pct", "SOFT"),
)


class RiskGovernorCore:
    """Deterministic risk ladder; persist `snapshot()` after every change."""

    def __init__(
        self,
        thresholds: RiskThresholds | None = None,
        *,
        state: RiskState = RiskState.NORMAL,
        state_since: float = 0.0,
        initial_capital: Decimal | int | float | None = None,
        peak_equity: Decimal | int | float | None = None,
    ) -> None:
        self._thresholds = thresholds or RiskThresholds.default()
        self._state = RiskState(state)
        self._state_since = finite_number("state_since", state_since)
        self._initial: Decimal | None = None if initial_capital is None else _capital(initial_capital)
        self._peak: Decimal | None = None if peak_equity is None else _to_decimal(peak_equity, "peak equity")
        self._equity: Decimal | None = None

    # ---- persistence -------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-safe state; money as strings so no precision is lost in storage."""
        return {
            "state": self._state.value,
            "state_since": self._state_since,
            "initial_capital": None if self._initial is None else str(self._initial),
            "peak_equity": None if self._peak is None else str(self._peak),
        }

    @classmethod
    def from_snapshot(
        cls, thresholds: RiskThresholds | None, snapshot: Mapping[str, Any]
    ) -> RiskGovernorCore:
        """Rebuild from `snapshot()`; a malformed snapshot raises ValueError (fail loudly)."""

        def money(key: str) -> Decimal | None:
            raw = snapshot.get(key)
            if raw is None:
                return None
            if not isinstance(raw, str):
                raise ValueError(f"snapshot {key} must be a decimal string or null")
            try:
                return Decimal(raw)
            except InvalidOperation as exc:
                raise ValueError(f"snapshot {key} is not a decimal: {raw!r}") from exc

        try:
            state = RiskState(snapshot["state"])
            since = snapshot["state_since"]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"bad risk snapshot: {exc}") from exc
        return cls(thresholds, state=state, state_since=since,
                   initial_capital=money("initial_capital"), peak_equity=money("peak_equity"))

    # ---- read-only view ----------------------------------------------
    @property
    def thresholds(self) -> RiskThresholds:
        return self._thresholds

    @property
    def state(self) -> RiskState:
        return self._state

    @property
    def state_since(self) -> float:
        """Unix seconds of the last transition; the cool-down counts from here."""
        return self._state_since

    @property
    def equity(self) -> Decimal | None:
        """Last accepted equity in this process (not persisted: after a restart it is stale)."""
        return self._equity

    @property
    def initial_capital(self) -> Decimal | None:
        return self._initial

    @property
    def peak_equity(self) -> Decimal | None:
        return self._peak

    @property
    def profit_mode(self) -> bool:
        """True once the peak has exceeded initial x factor; latched until re-base."""
        if self._initial is None or self._peak is None:
            return False
        return self._peak > self._initial * self._thresholds.pct("profit_mode_factor")

    @property
    def drawdown_pct(self) -> float:
        """Drawdown from initial capital in percent; negative in gain, 0.0 when unknown."""
        if self._initial is None or self._equity is None:
            return 0.0
        return float(self._drawdown(self._equity, self._initial))

    # ---- inputs ------------------------------------------------------
    def on_equity(self, equity: Decimal | int | float, now: float) -> RiskTransition | None:
        """Feed one equity reading; returns the transition it caused, if any."""
        at = finite_number("now", now)
        value = _to_decimal(equity, "equity")
        initial = self._initial if self._initial is not None else _capital(equity)
        # Validation done: mutate from here on.
        self._initial = initial
        self._equity = value
        self._peak = value if self._peak is None else max(self._peak, value)
        drawdown = self._drawdown(value, initial)
        profit = self.profit_mode
        metric = "drawdown_from_initial" if profit else "drawdown_pct"
        prefix = "PROFIT_ERODED" if profit else "MAX_DRAWDOWN"

        for target, threshold_name, suffix in _LADDER:
            limit = self._thresholds.pct(threshold_name)
            if drawdown >= limit:
                if target.level <= self._state.level:
                    return None
                return self._move(target, (f"{prefix}_{suffix}",), metric, drawdown, limit, at)

        recover = self._thresholds.pct("recover_pct")
        if (
            self._state not in (RiskState.NORMAL, RiskState.HARD_STOP)
            and drawdown < recover
            and at - self._state_since >= self._thresholds.cooldown_s
        ):
            return self._move(RiskState.NORMAL, ("DRAWDOWN_RECOVERED",), metric, drawdown, recover, at)
        return None

    def on_equity_stale(
        self, now: float, *, age_s: float = 0.0, max_age_s: float = 0.0
    ) -> RiskTransition | None:
        """No fresh equity: raise to QUARANTINE. `age_s`/`max_age_s` only fill the event."""
        at = finite_number("now", now)
        age = finite_number("age_s", age_s)
        limit = finite_number("max_age_s", max_age_s)
        if self._state.level >= RiskState.QUARANTINE.level:
            return None
        return self._move(RiskState.QUARANTINE, ("EQUITY_STALE",), "equity_age_s", age, limit, at)

    def on_external(self, requested: RiskState, reason: str, now: float) -> RiskTransition | None:
        """Another component asks for a stricter state; milder requests are ignored."""
        at = finite_number("now", now)
        target = RiskState(requested)
        if not isinstance(reason, str) or not reason:
            raise ValueError("external reason must be a non-empty string")
        if target.level <= self._state.level:
            return None
        level = float(target.level)
        return self._move(target, (reason,), "external_request", level, level, at)

    def reset(
        self,
        now: float,
        operator: str,
        new_initial_capital: Decimal | int | float | None = None,
        *,
        equity_age_s: float | None = None,
        max_equity_age_s: float | None = None,
    ) -> RiskTransition | None:
        """Operator reset to NORMAL (the only exit from HARD_STOP), optionally re-basing capital.

        Refused (ResetRefused) when it would re-trip at once: a drawdown still beyond a limit, or an
        equity older than `max_equity_age_s` (EQUITY_STALE would bring QUARANTINE straight back,
        re-base or not).

        Without a re-base the next equity reading is still judged against the old
        capital (and old peak), so a deep drawdown escalates again at once.
        Returns None only when nothing changed (already NORMAL, no re-base).
        """
        at = finite_number("now", now)
        if not isinstance(operator, str) or not operator:
            raise ValueError("operator must be a non-empty string")
        capital = None if new_initial_capital is None else _capital(new_initial_capital)
        if capital is None and self._state is RiskState.NORMAL:
            return None
        if equity_age_s is not None and max_equity_age_s is not None and equity_age_s > max_equity_age_s:
            raise ResetRefused(f"the equity is stale ({equity_age_s:.0f} s old, limit {max_equity_age_s:g} s): a "
                               "reset would re-trip to QUARANTINE (EQUITY_STALE) at once",
                               would_be=RiskState.QUARANTINE, drawdown_pct=None,
                               threshold_pct=float(self._thresholds.soft_pct), equity=self._equity)
        if capital is None:
            self._refuse_unsafe_reset(self._initial)
        elif self._equity is not None:
            self._refuse_unsafe_reset(capital)  # a new base the current equity is already 10 % under
        codes: tuple[str, ...] = ("OPERATOR_RESET",)
        if capital is not None:
            codes += ("CAPITAL_REBASED",)
            self._initial = capital
            # The old peak belonged to the old base; tracking restarts with the next reading.
            self._peak = None
        # The event reports the base now in force (persisted, so identical after a restart).
        base = 0.0 if self._initial is None else float(self._initial)
        transition = self._move(RiskState.NORMAL, codes, "initial_capital", base, 0.0, at)
        return replace(transition, operator=operator)

    def on_transfer(self, amount: Decimal) -> None:
        """Money moved in (+) or out (-): shift the drawdown base with it; never a transition.

        Initial capital and peak move by the amount, so drawdown and profit mode mean
        the same before and after. Before any equity is known there is no base to move.
        """
        value = Decimal(amount)
        if not value.is_finite():
            raise InvalidEquity(f"transfer amount must be finite, got {amount!r}")
        if self._initial is None:
            return
        if self._initial + value <= 0:
            raise InvalidEquity(f"a transfer of {value} would leave initial capital {self._initial} at <= 0")
        self._initial += value
        if self._peak is not None:
            self._peak = max(Decimal(0), self._peak + value)
        if self._equity is not None:
            self._equity = max(Decimal(0), self._equity + value)

    # ---- helpers -----------------------------------------------------
    def _refuse_unsafe_reset(self, base: Decimal | None) -> None:
        """Raise ResetRefused when the current equity, judged from `base`, would re-trip the ladder at once."""
        if self._equity is None or base is None:
            raise ResetRefused("no equity reading since the risk process started: a reset now could re-trip "
                               "at the first one", would_be=self._state, drawdown_pct=None,
                               threshold_pct=float(self._thresholds.soft_pct), equity=None)
        drawdown = self._drawdown(self._equity, base)
        for target, threshold_name, _ in _LADDER:
            limit = self._thresholds.pct(threshold_name)
            if drawdown >= limit:
                raise ResetRefused(f"drawdown {float(drawdown):.2f} % from {base} is at or beyond the "
                                   f"{threshold_name} limit {float(limit):g} %: a reset would re-trip to "
                                   f"{target.value} at the next reading",
                                   would_be=target, drawdown_pct=float(drawdown), threshold_pct=float(limit),
                                   equity=self._equity)

    @staticmethod
    def _drawdown(equity: Decimal, initial: Decimal) -> Decimal:
        return (initial - equity) / initial * 100

    def _move(
        self,
        target: RiskState,
        codes: tuple[str, ...],
        metric: str,
        value: Decimal | float,
        threshold: Decimal | float,
        at: float,
    ) -> RiskTransition:
        transition = RiskTransition(
            from_state=self._state,
            to_state=target,
            reason_codes=codes,
            metric=metric,
            value=float(value),
            threshold=float(threshold),
            at=at,
        )
        self._state = target
        self._state_since = at
        return transition
