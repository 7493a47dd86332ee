"""Bybit v5 URLs, endpoint paths, per-endpoint rate limits and the retCode table.

Facts come from /work/shared/bybit-v5/SPEC.md (section numbers cited inline), so the
rest of the client never hard-codes a magic string or number.
"""

from __future__ import annotations

from typing import Final

# §1.1 / §4.1 — live and paper use the same client; only these differ.
REST_MAINNET: Final = "https://api.bybit.com"
REST_TESTNET: Final = "https://api-testnet.bybit.com"
REST_DEMO: Final = "https://api-demo.bybit.com"
WS_PUBLIC_LINEAR_MAINNET: Final = "wss://stream.bybit.com/v5/public/linear"
WS_PUBLIC_LINEAR_TESTNET: Final = "wss://stream-testnet.bybit.com/v5/public/linear"
WS_PRIVATE_MAINNET: Final = "wss://stream.bybit.com/v5/private"
WS_PRIVATE_TESTNET: Final = "wss://stream-testnet.bybit.com/v5/private"
WS_PRIVATE_DEMO: Final = "wss://stream-demo.bybit.com/v5/private"

CATEGORY: Final = "linear"
SETTLE_COIN: Final = "USDT"
ACCOUNT_TYPE: Final = "UNIFIED"

# Endpoint paths (§2).
PATH_ORDER_CREATE: Final = "/v5/order/create"
PATH_ORDER_AMEND: Final = "/v5/order/amend"
PATH_ORDER_CANCEL: Final = "/v5/order/cancel"
PATH_ORDER_CANCEL_ALL: Final = "/v5/order/cancel-all"
PATH_ORDER_REALTIME: Final = "/v5/order/realtime"
PATH_ORDER_HISTORY: Final = "/v5/order/history"
PATH_EXECUTION_LIST: Final = "/v5/execution/list"
PATH_POSITION_LIST: Final = "/v5/position/list"
PATH_WALLET_BALANCE: Final = "/v5/account/wallet-balance"
PATH_INSTRUMENTS: Final = "/v5/market/instruments-info"
PATH_MARKET_TIME: Final = "/v5/market/time"
PATH_TICKERS: Final = "/v5/market/tickers"

# §1.6 per-UID per-endpoint limits (requests per rolling second). Updated at run time
# from X-Bapi-Limit headers; these are only the starting point.
DEFAULT_LIMIT_PER_S: Final[dict[str, int]] = {
    PATH_ORDER_CREATE: 10,
    PATH_ORDER_AMEND: 10,
    PATH_ORDER_CANCEL: 10,
    PATH_ORDER_CANCEL_ALL: 10,
    PATH_ORDER_REALTIME: 50,
    PATH_ORDER_HISTORY: 50,
    PATH_EXECUTION_LIST: 50,
    PATH_POSITION_LIST: 50,
    PATH_WALLET_BALANCE: 50,
}
# Public endpoints have no per-UID limit, only the IP limit (600 / 5 s): stay well under.
DEFAULT_PUBLIC_LIMIT_PER_S: Final = 50
RATE_LIMIT_FALLBACK_WAIT_S: Final = 2.0  # §1.6: pybit's fallback when the reset header is absent
RATE_LIMIT_MAX_WAIT_S: Final = 60.0  # never trust a reset header further out than this

HEADER_LIMIT: Final = "X-Bapi-Limit"
HEADER_LIMIT_STATUS: Final = "X-Bapi-Limit-Status"
HEADER_LIMIT_RESET: Final = "X-Bapi-Limit-Reset-Timestamp"

# Windows and page sizes (§2.5 / §2.6).
SEVEN_DAYS_MS: Final = 7 * 24 * 3600 * 1000
EXECUTION_PAGE_LIMIT: Final = 100
ORDER_PAGE_LIMIT: Final = 50
POSITION_PAGE_LIMIT: Final = 200
INSTRUMENT_PAGE_LIMIT: Final = 1000
MAX_PAGES: Final = 10_000  # guards against a server that never ends its cursor chain

ORDER_LINK_ID_MAX_LEN: Final = 36  # §2.1
WS_AUTH_EXPIRES_MS: Final = 10_000  # how far in the future a WS auth signature stays valid

# §3 retCodes.
RET_OK: Final = 0
RET_SERVER_TIMEOUT: Final = 10000
RET_PARAM_ERROR: Final = 10001
RET_TIMESTAMP: Final = 10002
RET_INVALID_KEY: Final = 10003
RET_SIGN_ERROR: Final = 10004
RET_PERMISSION: Final = 10005
RET_RATE_LIMIT: Final = 10006
RET_IP_NOT_WHITELISTED: Final = 10010
RET_DUPLICATE_REQUEST: Final = 10014
RET_INTERNAL_ERROR: Final = 10016
RET_ROUTE_NOT_FOUND: Final = 10017
RET_ORDER_NOT_EXISTS: Final = 110001
RET_PRICE_OUT_OF_RANGE: Final = 110003
RET_WALLET_INSUFFICIENT: Final = 110004
RET_AVAILABLE_INSUFFICIENT: Final = 110007
RET_ORDER_FINISHED: Final = 110008
RET_ORDER_CANCELLED: Final = 110010
RET_BALANCE_INSUFFICIENT: Final = 110012
RET_QTY_TRUNCATED_TO_ZERO: Final = 110017
RET_TOO_MANY_ORDERS: Final = 110020
RET_DUPLICATE_ORDER_LINK_ID: Final = 110072
RET_BELOW_MIN_NOTIONAL: Final = 110094
RET_SERVICE_OVERLOADED: Final = 429

# Codes meaning "the exchange did not process the request and it is safe to send again".
RETRYABLE_RET_CODES: Final = frozenset({RET_TIMESTAMP, RET_RATE_LIMIT, RET_SERVICE_OVERLOADED})
# Codes meaning "the exchange may or may not have applied it" (server-side failure).
UNCERTAIN_RET_CODES: Final = frozenset({RET_SERVER_TIMEOUT, RET_INTERNAL_ERROR})
# Definitive refusals (§3 "retry? no").
REJECT_RET_CODES: Final = frozenset({
    RET_PARAM_ERROR, RET_INVALID_KEY, RET_SIGN_ERROR, RET_PERMISSION, RET_IP_NOT_WHITELISTED,
    RET_DUPLICATE_REQUEST, RET_ROUTE_NOT_FOUND,
})
