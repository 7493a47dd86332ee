"""Request authentication per SPEC §1.2-1.4: HMAC over the raw query or raw body.

The signature is checked against the bytes as sent, never a re-serialisation,
so clients with any key order, spacing or encoding verify.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from hean.sim.envelope import INVALID_KEY, SIGN_ERROR, TIMESTAMP_ERROR, SimError, param_error

DEFAULT_RECV_WINDOW = 5000
FUTURE_TOLERANCE_MS = 1000


def sign(secret: str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256, the form Bybit expects."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_request(
    headers: Mapping[str, str], signed_part: str, *, api_key: str, api_secret: str, now_ms: int
) -> None:
    """Raise SimError unless the request carries a valid key, fresh timestamp and signature.

    Missing auth headers are reported as 10003 (Bybit answers an absent key with
    "API key is invalid"), a malformed timestamp/recv_window as 10001.
    """
    key = headers.get("X-BAPI-API-KEY")
    if not key:
        raise SimError(INVALID_KEY, "API key is invalid.")
    if not hmac.compare_digest(key.encode(), api_key.encode()):
        raise SimError(INVALID_KEY)
    ts_text = headers.get("X-BAPI-TIMESTAMP", "")
    window_text = headers.get("X-BAPI-RECV-WINDOW") or str(DEFAULT_RECV_WINDOW)
    if not ts_text.isdigit() or not window_text.isdigit():
        raise param_error("invalid X-BAPI-TIMESTAMP or X-BAPI-RECV-WINDOW header")
    timestamp, recv_window = int(ts_text), int(window_text)
    if not (now_ms - recv_window <= timestamp < now_ms + FUTURE_TOLERANCE_MS):
        raise SimError(
            TIMESTAMP_ERROR,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{now_ms}],recv_window[{recv_window}]",
        )
    signature = headers.get("X-BAPI-SIGN", "")
    expected = sign(api_secret, f"{ts_text}{key}{window_text}{signed_part}")
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        # Bybit echoes the origin string; it holds no secret, but we keep it short.
        raise SimError(SIGN_ERROR, "error sign! origin_string[" + f"{ts_text}{key}{window_text}" + "...]")


def check_ws_auth(args: object, *, api_key: str, api_secret: str, now_ms: int) -> str | None:
    """Validate a private WS auth op; return None when OK, else the failure reason."""
    if not isinstance(args, list) or len(args) != 3:
        return "Params Error"
    key, expires, signature = args
    if key != api_key:
        return "Invalid apikey"
    if isinstance(expires, bool) or not isinstance(expires, (int, str)) or not str(expires).isdigit():
        return "Params Error"
    if int(expires) <= now_ms:
        return "Request expired"
    expected = sign(api_secret, f"GET/realtime{expires}")
    if not isinstance(signature, str) or not hmac.compare_digest(signature.encode(), expected.encode()):
        return "Invalid sign"
    return None
