"""Pure-state tests of matching, netting and PnL: no server, no sockets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.sim.envelope import SimError
from hean.sim.exchange import Exchange
from hean.sim.instruments import instrument_for
from hean.sim.pricepath import PricePath
from hean.sim.validate import OrderRequest, parse_order


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def make(max_fill: Decimal | None = None) -> tuple[Exchange, FakeClock]:
    instruments = {"BTCUSDT": instrument_for("BTCUSDT")}
    prices = PricePath(instruments, seed=1, volatility=0.0)
    prices.set_price("BTCUSDT", Decimal("50000"))
    clock = FakeClock()
    ex = Exchange(instruments, prices, clock, seed=1, initial_balance=Decimal("100000"),
                  taker_fee=Decimal("0.00055"), maker_fee=Decimal("0.0002"), slippage_bps=Decimal("0"),
                  leverage=Decimal("10"), max_fill_qty_per_tick=max_fill)
    return ex, clock


def req(side: str, qty: str, order_type: str = "Market", price: str | None = None, link: str = "") -> OrderRequest:
    return OrderRequest("BTCUSDT", side, order_type, Decimal(qty), Decimal(price) if price else None,
                        "GTC" if order_type == "Limit" else "IOC", link, False, False)


def test_round_trip_realises_pnl_minus_fees() -> None:
    ex, _ = make()
    ex.place_order(req("Buy", "1"))          # fills at ask 50000.1
    ex.prices.set_price("BTCUSDT", Decimal("51000"))
    ex.place_order(req("Sell", "1"))         # fills at bid 51000
    fees = sum(e.exec_fee for e in ex.executions)
    assert ex.wallet_balance == Decimal("100000") + Decimal("999.9") - fees
    assert ex.positions["BTCUSDT"].size == 0


def test_created_time_kept_open_time_reset_through_zero() -> None:
    ex, clock = make()
    ex.place_order(req("Buy", "1"))
    opened = ex.positions["BTCUSDT"].created_ms
    clock.now += 1000
    ex.place_order(req("Sell", "0.5"))
    assert ex.positions["BTCUSDT"].created_ms == opened
    clock.now += 1000
    ex.place_order(req("Sell", "1"))
    pos = ex.positions["BTCUSDT"]
    assert pos.size == Decimal("-0.5") and pos.created_ms == opened and pos.avg_price == Decimal("50000")
    assert pos.open_ms == opened + 2000


def test_partial_fills_per_tick() -> None:
    ex, _ = make(max_fill=Decimal("0.3"))
    order = ex.place_order(req("Buy", "1", "Limit", "49000"))
    ex.prices.set_price("BTCUSDT", Decimal("48900"))
    ex.step()
    assert order.status == "PartiallyFilled" and order.cum_qty == Decimal("0.3")
    for _ in range(3):
        ex.step()
    assert order.status == "Filled" and order.cum_qty == 1 and len(ex.executions) == 4


def test_post_only_crossing_is_cancelled_and_ioc_remainder_cancelled() -> None:
    ex, _ = make()
    post = ex.place_order(OrderRequest("BTCUSDT", "Buy", "Limit", Decimal("0.1"), Decimal("60000"), "PostOnly",
                                       "", False, False))
    assert post.status == "Cancelled" and post.reject_reason == "EC_PostOnlyWillTakeLiquidity"
    ioc = ex.place_order(OrderRequest("BTCUSDT", "Buy", "Limit", Decimal("0.1"), Decimal("40000"), "IOC",
                                      "", False, False))
    assert ioc.status == "Cancelled" and ioc.cum_qty == 0


def test_events_emitted_in_order() -> None:
    ex, _ = make()
    topics: list[str] = []
    ex.listeners.append(lambda topic, items: topics.append(topic))
    ex.place_order(req("Buy", "0.1"))
    assert topics == ["execution.fast", "order", "execution", "position", "wallet"]


def test_parse_order_rejects_hedge_position_idx() -> None:
    instruments = {"BTCUSDT": instrument_for("BTCUSDT")}
    body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.1",
            "positionIdx": 1}
    with pytest.raises(SimError) as info:
        parse_order(body, instruments)
    assert info.value.code == 10001


def test_other_symbols_get_sensible_filters() -> None:
    inst = instrument_for("SOLUSDT", Decimal("150"))
    assert inst.tick_size == Decimal("0.001") and inst.qty_step == Decimal("0.1")
    assert inst.round_price(Decimal("150.12345")) == Decimal("150.123")


def test_gbm_path_is_deterministic_per_seed() -> None:
    instruments = {"BTCUSDT": instrument_for("BTCUSDT")}
    runs = []
    for _ in range(2):
        path = PricePath(instruments, seed=7, volatility=0.01)
        runs.append([path.step(0.1).get("BTCUSDT") for _ in range(20)])
    assert runs[0] == runs[1] and len(set(runs[0])) > 5
