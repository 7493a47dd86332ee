"""Bybit v5 response envelope and retCodes (SPEC §1.5, §3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

OK = 0
PARAM_ERROR = 10001
TIMESTAMP_ERROR = 10002
INVALID_KEY = 10003
SIGN_ERROR = 10004
RATE_LIMITED = 10006
ORDER_NOT_FOUND = 110001
INSUFFICIENT_AVAILABLE = 110007
REDUCE_ONLY_ZERO = 110017
DUPLICATE_LINK_ID = 110072
NOTIONAL_TOO_SMALL = 110094

MESSAGES = {
    TIMESTAMP_ERROR: "invalid request, please check your server timestamp or recv_window param",
    INVALID_KEY: "API key is invalid.",
    SIGN_ERROR: "error sign! origin_string[{}]",
    RATE_LIMITED: "Too many visits!",
    ORDER_NOT_FOUND: "Order does not exist.",
    INSUFFICIENT_AVAILABLE: "ab not enough for new order",
    REDUCE_ONLY_ZERO: "current position is zero, cannot fix reduce-only order qty",
    DUPLICATE_LINK_ID: "OrderLinkedID is duplicate",
    NOTIONAL_TOO_SMALL: "The order value must be at least the minimum notional value",
}


class SimError(Exception):
    """A business error that becomes a non-zero retCode in an HTTP 200 envelope."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or MESSAGES.get(code, "params error"))
        self.code = code
        self.message = message or MESSAGES.get(code, "params error")


def param_error(message: str) -> SimError:
    """Shortcut for retCode 10001 with Bybit-like wording."""
    return SimError(PARAM_ERROR, message)


def envelope(now_ms: int, result: Any = None, code: int = OK, message: str = "OK") -> dict[str, Any]:
    """Build the five-field envelope every /v5 response carries."""
    return {
        "retCode": code,
        "retMsg": message,
        "result": result if result is not None else {},
        "retExtInfo": {},
        "time": now_ms,
    }


def fmt(value: Decimal) -> str:
    """Decimal -> plain string without exponent or trailing zeros ("0" for zero)."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text
