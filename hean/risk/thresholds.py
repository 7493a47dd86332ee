"""The risk ladder's thresholds, validated; their one set of defaults is `RiskSettings` (hean/config.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hean.config import RiskSettings

__all__ = ["RiskThresholds", "finite_number"]


def finite_number(name: str, value: Any) -> float:
    """Validate a config/time number; bools are rejected because True == 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    as_float = float(value)
    if not math.isfinite(as_float):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return as_float


@dataclass(frozen=True)
class RiskThresholds:
    """Percent thresholds of the ladder; validated so a typo cannot invert it.

    No defaults here on purpose: the one set of defaults is `RiskSettings` in
    hean/config.py (`default()` reads it), so the two can never drift apart.
    """

    soft_pct: float
    quarantine_pct: float
    hard_pct: float
    recover_pct: float
    profit_mode_factor: float
    cooldown_s: float

    @classmethod
    def from_settings(cls, risk: RiskSettings, **overrides: float) -> RiskThresholds:
        values = {name: getattr(risk, name) for name in cls.__dataclass_fields__}
        return cls(**(values | overrides))

    @classmethod
    def default(cls, **overrides: float) -> RiskThresholds:
        """RiskSettings' defaults (static field defaults, no environment), with `overrides`."""
        from hean.config import RiskSettings

        return cls.from_settings(RiskSettings(), **overrides)

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            finite_number(name, getattr(self, name))
        if not self.soft_pct > 0:
            raise ValueError(f"soft_pct must be > 0, got {self.soft_pct}")
        if not self.quarantine_pct > self.soft_pct:
            raise ValueError("quarantine_pct must be > soft_pct")
        if not self.hard_pct > self.quarantine_pct:
            raise ValueError("hard_pct must be > quarantine_pct")
        if not self.hard_pct <= 100:
            raise ValueError(f"hard_pct must be <= 100, got {self.hard_pct}")
        if not 0 <= self.recover_pct < self.soft_pct:
            raise ValueError("recover_pct must be >= 0 and < soft_pct")
        if not self.profit_mode_factor >= 1:
            raise ValueError("profit_mode_factor must be >= 1")
        if not self.cooldown_s >= 0:
            raise ValueError("cooldown_s must be >= 0")

    def pct(self, name: str) -> Decimal:
        """Threshold as Decimal, for exact comparisons against drawdown."""
        return Decimal(repr(float(getattr(self, name))))
