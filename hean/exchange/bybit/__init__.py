"""HEAN's Bybit v5 client (REST + WebSocket), USDT linear perpetuals.

Independent of hean.sim by design: the simulator and this client are two separate
implementations of one wire protocol, so each checks the other.
"""

from hean.exchange.bybit.errors import (
    ExchangeUnavailable,
    HostGuardError,
    Outcome,
    check_host_allowed,
    classify,
    is_duplicate_link_id,
)
from hean.exchange.bybit.filters import InstrumentFilter, decimal_str, round_price, round_qty
from hean.exchange.bybit.ratelimit import Priority
from hean.exchange.bybit.rest import BybitRestClient, RestResponse
from hean.exchange.bybit.ws import BybitWebSocket

__all__ = [
    "BybitRestClient", "BybitWebSocket", "ExchangeUnavailable", "HostGuardError", "InstrumentFilter",
    "Outcome", "Priority", "RestResponse", "check_host_allowed", "classify", "decimal_str",
    "is_duplicate_link_id", "round_price", "round_qty",
]
