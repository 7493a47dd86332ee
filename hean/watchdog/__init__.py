"""Stale-position watchdog: pure age rule and close-order builder (`core`), the opening rule (`opening`)."""

from hean.watchdog.core import (
    LINK_ID_PREFIX,
    AgeUnknown,
    CloseOrder,
    Decision,
    DecisionKind,
    InvalidPosition,
    PositionAge,
    close_link_id,
    close_order_for,
    close_qty,
    evaluate,
    parse_position,
)
from hean.watchdog.opening import Opening

__all__ = [
    "LINK_ID_PREFIX",
    "AgeUnknown",
    "CloseOrder",
    "Decision",
    "DecisionKind",
    "InvalidPosition",
    "Opening",
    "PositionAge",
    "close_link_id",
    "close_order_for",
    "close_qty",
    "evaluate",
    "parse_position",
]
