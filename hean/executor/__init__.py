"""The executor process: order intents reach Bybit exactly once, behind risk gating."""

from hean.executor.gate import (
    DuplicateOrderError,
    FingerprintGuard,
    GateDecision,
    Intent,
    InvalidIntent,
    RiskView,
    fingerprint,
    parse_intent,
    risk_gate,
)
from hean.executor.journal import Journal

__all__ = [
    "DuplicateOrderError", "FingerprintGuard", "GateDecision", "Intent", "InvalidIntent", "Journal",
    "RiskView", "fingerprint", "parse_intent", "risk_gate",
]
