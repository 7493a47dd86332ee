"""Stale-position watchdog: pure age rule and close-order builder (`core`)."""

from hean.watchdog.core import (
    LINK_ID_PREFIX,
    CloseOrder,
    Decision,
    DecisionKind,
    InvalidPosition,
    PositionAge,
    close_link_id,
    close_order_for,
    evaluate,
    parse_position,
)

__all__ = [
    "LINK_ID_PREFIX",
    "CloseOrder",
    "Decision",
    "DecisionKind",
    "InvalidPosition",
    "PositionAge",
    "close_link_id",
    "close_order_for",
    "evaluate",
    "parse_position",
]
