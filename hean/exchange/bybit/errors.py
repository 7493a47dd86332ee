"""Outcome classification and the host guard — pure, no I/O.

`classify` is the single place that decides what a Bybit answer means for the caller;
every retry/resolve decision elsewhere follows from its result.
"""

from __future__ import annotations

import enum
import ipaddress
from urllib.parse import urlsplit

from hean.exchange.bybit import constants as c


class Outcome(enum.Enum):
    """What a request's result means for the caller.

    OK          the exchange accepted it.
    REJECTED    the exchange refused it; nothing changed; do not resend as-is.
    RETRY_SAFE  nothing changed on the exchange; sending again is harmless.
    AMBIGUOUS   a state-changing request may or may not have been applied: resolve by
                querying (e.g. `query_order(order_link_id=...)`), never by blind resend.
    DUPLICATE   retCode 110072 on order/create: an order with this orderLinkId already
                exists, i.e. an earlier attempt was placed. Query it; do not treat as a failure.
    NOT_SENT    the caller's `before_send` check withdrew the request after the rate-limiter
                wait: nothing left this process (for this attempt or, after RETRY_SAFE ones, at all).
    """

    OK = "ok"
    REJECTED = "rejected"
    RETRY_SAFE = "retry_safe"
    AMBIGUOUS = "ambiguous"
    DUPLICATE = "duplicate"
    NOT_SENT = "not_sent"


class HostGuardError(RuntimeError):
    """A client was pointed at a real Bybit host without the settings that permit it."""


class ExchangeUnavailable(RuntimeError):
    """The exchange could not answer, so the caller must not assume anything about state."""


DRY_RUN_MESSAGE = (
    "CRITICAL: place_order() called in dry_run mode! "
    "This would place REAL orders. Route to PaperBroker instead."
)
NOT_LIVE_MESSAGE = (
    "CRITICAL: place_order() called without is_live=true! "
    "This is a safety check to prevent accidental real trading."
)


def is_state_changing(method: str) -> bool:
    """All Bybit v5 POST endpoints change state; GETs never do."""
    return method.upper() != "GET"


def is_duplicate_link_id(ret_code: int | None) -> bool:
    """True for 110072: the orderLinkId was already used, so the order already exists."""
    return ret_code == c.RET_DUPLICATE_ORDER_LINK_ID


def _failure(state_changing: bool) -> Outcome:
    # A failure we cannot attribute: a POST may have been applied, a GET changes nothing.
    return Outcome.AMBIGUOUS if state_changing else Outcome.RETRY_SAFE


def classify(*, method: str, path: str, http_status: int | None, ret_code: int | None,
             transport_error: bool) -> Outcome:
    """Decide the outcome of one request attempt.

    Order of evidence: transport failure, then HTTP status, then retCode. Unknown
    non-zero retCodes are REJECTED on GET but AMBIGUOUS on POST, because for an
    order a wrong "rejected" could leave a live order nobody tracks, while a wrong
    "ambiguous" only costs a query.
    """
    state_changing = is_state_changing(method)
    if transport_error:
        return _failure(state_changing)
    if http_status is not None and http_status != 200:
        if http_status >= 500:
            return _failure(state_changing)
        if http_status == 429:  # system-level protection: the request was turned away
            return Outcome.RETRY_SAFE
        return Outcome.REJECTED  # 400/401/403 (IP limit: wait >= 10 min)/404
    if ret_code is None:  # HTTP 200 without an envelope: we cannot know what happened
        return _failure(state_changing)
    if ret_code == c.RET_OK:
        return Outcome.OK
    if ret_code == c.RET_DUPLICATE_ORDER_LINK_ID and path == c.PATH_ORDER_CREATE:
        return Outcome.DUPLICATE
    if ret_code in c.RETRYABLE_RET_CODES:
        return Outcome.RETRY_SAFE
    if ret_code in c.UNCERTAIN_RET_CODES:
        return _failure(state_changing)
    if ret_code in c.REJECT_RET_CODES or 110000 <= ret_code <= 110999:
        return Outcome.REJECTED
    return Outcome.AMBIGUOUS if state_changing else Outcome.REJECTED


def is_loopback_host(host: str | None) -> bool:
    """Loopback only: 127.0.0.0/8, ::1, or the name `localhost`."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host_allowed(url: str, *, dry_run: bool, is_live: bool) -> None:
    """Refuse a real exchange host unless the process is explicitly live.

    dry_run: only the local simulator (loopback) is reachable. Not dry_run: a
    non-loopback host additionally needs is_live=True. The host is appended to the
    message; URLs never carry secrets (those travel in headers).
    """
    host = urlsplit(url).hostname
    if is_loopback_host(host):
        return
    if dry_run:
        raise HostGuardError(f"{DRY_RUN_MESSAGE} (host={host!s})")
    if not is_live:
        raise HostGuardError(f"{NOT_LIVE_MESSAGE} (host={host!s})")
