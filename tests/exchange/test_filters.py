"""Instrument filters and rounding: Decimal only, size never rounded up."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.exchange.bybit.filters import InstrumentFilter, decimal_str, round_price, round_qty
from hean.exchange.bybit.paging import time_windows, unique_executions

BTC_ROW = {
    "symbol": "BTCUSDT",
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                      "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "119.000", "minNotionalValue": "5"},
}
ETH_ROW = {
    "symbol": "ETHUSDT",
    "priceFilter": {"tickSize": "0.01"},
    "lotSizeFilter": {"maxOrderQty": "7240.00", "minOrderQty": "0.01", "qtyStep": "0.01",
                      "maxMktOrderQty": "724.00", "minNotionalValue": "5"},
}
BTC = InstrumentFilter.from_bybit(BTC_ROW)
ETH = InstrumentFilter.from_bybit(ETH_ROW)


def test_from_bybit_parses_strings_to_decimal() -> None:
    assert BTC == InstrumentFilter("BTCUSDT", Decimal("0.10"), Decimal("0.001"), Decimal("0.001"),
                                   Decimal("1190"), Decimal("119"), Decimal("5"))
    with pytest.raises(TypeError):
        InstrumentFilter.from_bybit({**BTC_ROW, "priceFilter": {"tickSize": 0.1}})


@pytest.mark.parametrize(("qty", "f", "expected"), [
    ("0.0019", BTC, "0.001"), ("1.2345", BTC, "1.234"), ("0.001", BTC, "0.001"), ("0.0009", BTC, "0.000"),
    ("1.239", ETH, "1.23"), ("0.019999", ETH, "0.01"), ("5", ETH, "5.00"),
])
def test_round_qty_rounds_down_to_step(qty: str, f: InstrumentFilter, expected: str) -> None:
    got = round_qty(Decimal(qty), f)
    assert got == Decimal(expected) and got <= Decimal(qty)
    assert got % f.qty_step == 0


@pytest.mark.parametrize(("price", "side", "expected"), [
    ("65000.17", "Buy", "65000.10"), ("65000.17", "Sell", "65000.20"),
    ("65000.10", "Buy", "65000.10"), ("65000.10", "Sell", "65000.10"), ("0.15", "Sell", "0.20"),
])
def test_round_price_buy_down_sell_up(price: str, side: str, expected: str) -> None:
    assert round_price(Decimal(price), BTC, side) == Decimal(expected)
    assert decimal_str(round_price(Decimal(price), BTC, side)) == decimal_str(Decimal(expected))


def test_rounding_rejects_float_and_bad_side() -> None:
    with pytest.raises(TypeError):
        round_qty(0.1, BTC)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        round_price(65000.1, BTC, "Buy")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        round_price(Decimal("1"), BTC, "buy")


@pytest.mark.parametrize(("value", "expected"), [
    ("1E+2", "100"), ("1E-7", "0.0000001"), ("0.100", "0.1"), ("65000.10", "65000.1"), ("-0", "0"),
    ("0E-8", "0"), ("123456789.000000001", "123456789.000000001"),
])
def test_decimal_str_plain_notation(value: str, expected: str) -> None:
    assert decimal_str(Decimal(value)) == expected


def test_decimal_str_rejects_float_and_nan() -> None:
    with pytest.raises(TypeError):
        decimal_str(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decimal_str(Decimal("NaN"))


def test_time_windows_cover_range_once_with_max_span() -> None:
    day = 24 * 3600 * 1000
    windows = time_windows(0, 20 * day)
    assert windows[0][0] == 0 and windows[-1][1] == 20 * day
    assert all(hi - lo <= 7 * day for lo, hi in windows)
    assert all(nxt[0] == cur[1] + 1 for cur, nxt in zip(windows, windows[1:]))
    assert time_windows(5, 5) == [(5, 5)]
    with pytest.raises(ValueError):
        time_windows(10, 5)


def test_unique_executions_dedups_and_sorts() -> None:
    rows = [{"execId": "b", "execTime": "2"}, {"execId": "a", "execTime": "3"}, {"execId": "b", "execTime": "2"}]
    assert [r["execId"] for r in unique_executions(rows)] == ["b", "a"]
