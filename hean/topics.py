"""Every bus topic and event type, built in one place.

Topics are dotted, general to specific (`tick.trade.BTCUSDT`, `order.placed`).
SUB sockets filter by prefix, so the first segment decides who hears what.
Only `tick.*` is lossy; everything else is critical and is never dropped
silently (see `hean.bus`).
"""

from __future__ import annotations

from enum import Enum

LOSSY_PREFIX = "tick."


class EventType(str, Enum):
    """The `type` field of an envelope (the seed's EventType names where it had one)."""

    TICK = "TICK"
    ORDER_INTENT = "ORDER_INTENT"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_BLOCKED_DUPLICATE = "ORDER_BLOCKED_DUPLICATE"
    ORDER_BLOCKED_RISK = "ORDER_BLOCKED_RISK"
    ORDER_UPDATE = "ORDER_UPDATE"
    ORDER_FILLED = "ORDER_FILLED"
    POSITION_UPDATE = "POSITION_UPDATE"
    EQUITY_UPDATE = "EQUITY_UPDATE"
    RISK_STATE = "RISK_STATE"
    RISK_RESET = "RISK_RESET"
    RISK_REQUEST = "RISK_REQUEST"
    RECONCILE_STATUS = "RECONCILE_STATUS"
    RECONCILE_ALERT = "RECONCILE_ALERT"
    FOREIGN_ACTIVITY = "FOREIGN_ACTIVITY"
    POSITION_FORCE_CLOSED = "POSITION_FORCE_CLOSED"
    WATCHDOG_ALERT = "WATCHDOG_ALERT"
    ERROR = "ERROR"
    ECHO = "ECHO"
    TRANSFER = "TRANSFER"
    ORDER_CANCEL_INTENT = "ORDER_CANCEL_INTENT"
    ORDER_CANCEL_REJECTED = "ORDER_CANCEL_REJECTED"


# Events a process handles inline on the socket reader, ahead of its queue:
# a stale risk state or a "reconciling" flag must never wait behind ticks.
FAST_PATH_TYPES = frozenset({EventType.RISK_STATE.value, EventType.RECONCILE_STATUS.value})


def is_lossy(topic: str) -> bool:
    """True for topics that may be dropped (and counted) under saturation."""
    return topic.startswith(LOSSY_PREFIX)


def topic_class(topic: str) -> str:
    return "lossy" if is_lossy(topic) else "critical"


def tick(kind: str, symbol: str) -> str:
    """Market data: kind is `ticker`, `trade` or `book`."""
    return f"tick.{kind}.{symbol}"


def intent() -> str:
    """Order intents from strategies and the operator CLI to the executor."""
    return "intent.order"


def order(event: str) -> str:
    """Executor outcomes (`placed`, `rejected`, `cancelled`, `blocked`) and reconciler `update`s."""
    return f"order.{event}"


def fill(symbol: str) -> str:
    return f"fill.{symbol}"


def position(symbol: str) -> str:
    return f"position.{symbol}"


def equity() -> str:
    return "account.equity"


def risk_state() -> str:
    return "risk.state"


def risk_control(kind: str) -> str:
    """Commands to the risk governor: `reset` (operator) and `request` (e.g. watchdog asks QUARANTINE)."""
    return f"risk.{kind}"


def reconcile(kind: str) -> str:
    """Reconciler status (`status`: catching up or not) and alerts (`alert`, `foreign`)."""
    return f"reconcile.{kind}"


def watchdog(kind: str) -> str:
    """`force_closed`, `error`, `alert`."""
    return f"watchdog.{kind}"


def echo(topic: str) -> str:
    return f"echo.{topic}"


def transfer() -> str:
    """Money moved into or out of the account (the exchange's transaction log), before the equity that has it."""
    return "account.transfer"


def cancel_intent() -> str:
    """Cancel commands (operator CLI, `hean up --flatten-on-exit`) to the executor, which cancels on the
    exchange and answers ORDER_CANCELLED (`order.cancelled`) or ORDER_CANCEL_REJECTED (`order.cancel_rejected`)."""
    return "intent.cancel"
