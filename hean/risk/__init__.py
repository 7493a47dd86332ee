"""Risk governor: pure state machine (`core`); the process shell lives elsewhere."""

from hean.risk.core import (
    InvalidEquity,
    ResetRefused,
    RiskGovernorCore,
    RiskState,
    RiskThresholds,
    RiskTransition,
)

__all__ = ["InvalidEquity", "ResetRefused", "RiskGovernorCore", "RiskState", "RiskThresholds", "RiskTransition"]
