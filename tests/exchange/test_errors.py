"""classify() table for every SPEC §3 code, HTTP/transport on GET vs POST, and the host guard."""

from __future__ import annotations

import pytest

from hean.exchange.bybit.errors import (
    DRY_RUN_MESSAGE,
    NOT_LIVE_MESSAGE,
    HostGuardError,
    Outcome,
    check_host_allowed,
    classify,
    is_duplicate_link_id,
)

CREATE = "/v5/order/create"
CANCEL = "/v5/order/cancel"
REALTIME = "/v5/order/realtime"

# code -> (outcome on POST order/create, outcome on GET order/realtime)
SPEC_CODES = {
    0: (Outcome.OK, Outcome.OK),
    10000: (Outcome.AMBIGUOUS, Outcome.RETRY_SAFE),
    10001: (Outcome.REJECTED, Outcome.REJECTED),
    10002: (Outcome.RETRY_SAFE, Outcome.RETRY_SAFE),
    10003: (Outcome.REJECTED, Outcome.REJECTED),
    10004: (Outcome.REJECTED, Outcome.REJECTED),
    10005: (Outcome.REJECTED, Outcome.REJECTED),
    10006: (Outcome.RETRY_SAFE, Outcome.RETRY_SAFE),
    10010: (Outcome.REJECTED, Outcome.REJECTED),
    10014: (Outcome.REJECTED, Outcome.REJECTED),
    10016: (Outcome.AMBIGUOUS, Outcome.RETRY_SAFE),
    10017: (Outcome.REJECTED, Outcome.REJECTED),
    110001: (Outcome.REJECTED, Outcome.REJECTED),
    110003: (Outcome.REJECTED, Outcome.REJECTED),
    110004: (Outcome.REJECTED, Outcome.REJECTED),
    110007: (Outcome.REJECTED, Outcome.REJECTED),
    110008: (Outcome.REJECTED, Outcome.REJECTED),
    110010: (Outcome.REJECTED, Outcome.REJECTED),
    110012: (Outcome.REJECTED, Outcome.REJECTED),
    110017: (Outcome.REJECTED, Outcome.REJECTED),
    110020: (Outcome.REJECTED, Outcome.REJECTED),
    110072: (Outcome.DUPLICATE, Outcome.REJECTED),
    110094: (Outcome.REJECTED, Outcome.REJECTED),
    429: (Outcome.RETRY_SAFE, Outcome.RETRY_SAFE),
}


@pytest.mark.parametrize("code", sorted(SPEC_CODES))
def test_classify_every_spec_code(code: int) -> None:
    on_post, on_get = SPEC_CODES[code]
    assert classify(method="POST", path=CREATE, http_status=200, ret_code=code, transport_error=False) is on_post
    assert classify(method="GET", path=REALTIME, http_status=200, ret_code=code, transport_error=False) is on_get


def test_duplicate_only_means_already_placed_on_create() -> None:
    assert classify(method="POST", path=CANCEL, http_status=200, ret_code=110072,
                    transport_error=False) is Outcome.REJECTED
    assert is_duplicate_link_id(110072) and not is_duplicate_link_id(110001) and not is_duplicate_link_id(None)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_5xx_ambiguous_on_post_retry_safe_on_get(status: int) -> None:
    assert classify(method="POST", path=CREATE, http_status=status, ret_code=None,
                    transport_error=False) is Outcome.AMBIGUOUS
    assert classify(method="GET", path=REALTIME, http_status=status, ret_code=None,
                    transport_error=False) is Outcome.RETRY_SAFE


def test_transport_error_ambiguous_on_post_retry_safe_on_get() -> None:
    for path in (CREATE, CANCEL, "/v5/order/cancel-all"):
        assert classify(method="POST", path=path, http_status=None, ret_code=None,
                        transport_error=True) is Outcome.AMBIGUOUS
    assert classify(method="GET", path=REALTIME, http_status=None, ret_code=None,
                    transport_error=True) is Outcome.RETRY_SAFE


@pytest.mark.parametrize(("status", "expected"), [
    (400, Outcome.REJECTED), (401, Outcome.REJECTED), (403, Outcome.REJECTED), (404, Outcome.REJECTED),
    (429, Outcome.RETRY_SAFE),
])
def test_http_4xx(status: int, expected: Outcome) -> None:
    assert classify(method="POST", path=CREATE, http_status=status, ret_code=None, transport_error=False) is expected


def test_unknown_code_and_missing_envelope() -> None:
    assert classify(method="POST", path=CREATE, http_status=200, ret_code=99999,
                    transport_error=False) is Outcome.AMBIGUOUS
    assert classify(method="GET", path=REALTIME, http_status=200, ret_code=99999,
                    transport_error=False) is Outcome.REJECTED
    assert classify(method="POST", path=CREATE, http_status=200, ret_code=None,
                    transport_error=False) is Outcome.AMBIGUOUS


@pytest.mark.parametrize("url", ["https://api.bybit.com", "wss://stream.bybit.com/v5/private",
                                 "https://api-testnet.bybit.com", "http://127.0.0.1.evil.example"])
def test_dry_run_refuses_real_hosts_with_seed_text(url: str) -> None:
    with pytest.raises(HostGuardError) as info:
        check_host_allowed(url, dry_run=True, is_live=True)
    assert str(info.value).startswith(DRY_RUN_MESSAGE)
    assert "CRITICAL: place_order() called in dry_run mode! This would place REAL orders. " \
           "Route to PaperBroker instead." in str(info.value)


def test_not_live_refuses_real_host_with_seed_text() -> None:
    with pytest.raises(HostGuardError) as info:
        check_host_allowed("https://api.bybit.com/v5", dry_run=False, is_live=False)
    assert "CRITICAL: place_order() called without is_live=true! This is a safety check to prevent " \
           "accidental real trading." in str(info.value)
    assert str(info.value).startswith(NOT_LIVE_MESSAGE)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "ws://127.0.0.5:1/v5/public/linear",
                                 "http://localhost:9000", "http://[::1]:9000/"])
@pytest.mark.parametrize(("dry_run", "is_live"), [(True, False), (False, False), (False, True), (True, True)])
def test_loopback_always_allowed(url: str, dry_run: bool, is_live: bool) -> None:
    check_host_allowed(url, dry_run=dry_run, is_live=is_live)


def test_live_real_host_allowed() -> None:
    check_host_allowed("https://api.bybit.com", dry_run=False, is_live=True)
