"""Request signing (SPEC §1.3, §4.2) and the query-string builder it depends on — pure.

The signed payload must be byte-for-byte what goes on the wire, so the same functions
that build the query/body are the ones whose output gets signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

from hean.exchange.bybit.filters import decimal_str

# Characters we send unencoded. '%' is kept so a cursor Bybit already percent-encoded
# is passed back exactly as received (the server decodes it once, as it expects).
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.~%:,\-]*$")


def wire_value(value: Any) -> str:
    """Text form of a parameter value: Decimal in plain notation, bools lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, float):
        raise TypeError("float parameter: pass Decimal or str so no precision is lost")
    return str(value)


def build_query(params: Mapping[str, Any]) -> str:
    """`k=v&k=v` with keys sorted, None dropped, our safe values not URL-encoded."""
    parts = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        text = wire_value(value)
        if not _SAFE_VALUE.match(text):
            text = quote(text, safe="")
        parts.append(f"{key}={text}")
    return "&".join(parts)


def build_body(params: Mapping[str, Any]) -> bytes:
    """JSON body; Decimals become strings (never floats), None values are dropped."""
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, float):
            raise TypeError(f"float parameter {key!r}: pass Decimal or str")
        clean[key] = decimal_str(value) if isinstance(value, Decimal) else value
    return orjson.dumps(clean)


def _hmac_hex(secret: str, message: str | bytes) -> str:
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def sign_rest(secret: str, ts_ms: int, api_key: str, recv_window: int, payload: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256 of timestamp + key + recv_window + payload.

    payload is the query string as sent (GET) or the raw body bytes (POST).
    """
    prefix = f"{ts_ms}{api_key}{recv_window}".encode()
    body = payload.encode() if isinstance(payload, str) else payload
    return _hmac_hex(secret, prefix + body)


def sign_ws(secret: str, expires_ms: int) -> str:
    """Signature for the private WS `auth` op: HMAC of "GET/realtime" + expires."""
    return _hmac_hex(secret, f"GET/realtime{expires_ms}")
