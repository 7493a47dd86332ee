"""Signing and wire encoding: checked against SPEC §1.3's examples with stdlib hmac."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import orjson
import pytest

from hean.exchange.bybit.auth import build_body, build_query, sign_rest, sign_ws

SECRET = "test-secret-value"


def _expected(message: str) -> str:
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_sign_rest_get_matches_spec_example() -> None:
    query = "category=option&symbol=BTC-29JUL22-25000-C"
    got = sign_rest(SECRET, 1658384314791, "XXXXXXXXXX", 5000, query)
    assert got == _expected("1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C")
    assert got == got.lower() and len(got) == 64


def test_sign_rest_post_signs_body_bytes_exactly() -> None:
    body = b'{"category": "option"}'  # note the space: signed byte-for-byte as sent
    got = sign_rest(SECRET, 1658385579423, "XXXXXXXXXX", 5000, body)
    assert got == _expected('1658385579423XXXXXXXXXX5000{"category": "option"}')
    assert got != sign_rest(SECRET, 1658385579423, "XXXXXXXXXX", 5000, b'{"category":"option"}')


def test_sign_rest_empty_get_query() -> None:
    assert sign_rest(SECRET, 1, "k", 5000, "") == _expected("1k5000")


def test_sign_ws() -> None:
    assert sign_ws(SECRET, 1662350400000) == _expected("GET/realtime1662350400000")


def test_build_query_sorted_drops_none_and_keeps_cursor_escapes() -> None:
    query = build_query({"symbol": "BTCUSDT", "category": "linear", "orderId": None, "limit": 100,
                         "cursor": "132766%3A2%2C132766%3A2", "qty": Decimal("0.0010")})
    assert query == "category=linear&cursor=132766%3A2%2C132766%3A2&limit=100&qty=0.001&symbol=BTCUSDT"


def test_build_query_encodes_unsafe_characters() -> None:
    assert build_query({"a": "x y&z"}) == "a=x%20y%26z"


def test_build_body_decimal_as_string_and_rejects_float() -> None:
    body = build_body({"qty": Decimal("1E-3"), "price": Decimal("65000.10"), "reduceOnly": True,
                       "takeProfit": None})
    assert orjson.loads(body) == {"qty": "0.001", "price": "65000.1", "reduceOnly": True}
    with pytest.raises(TypeError):
        build_body({"qty": 0.1})
    with pytest.raises(TypeError):
        build_query({"qty": 0.1})
