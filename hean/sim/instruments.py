"""Instrument filters (SPEC §2.9) and the rounding helpers that enforce them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from hean.sim.envelope import fmt


@dataclass(frozen=True)
class Instrument:
    """Exchange filters for one linear perpetual."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    default_price: Decimal
    price_limit_x: Decimal = Decimal("0.01")   # riskParameters.priceLimitRatioX
    price_limit_y: Decimal = Decimal("0.02")

    @property
    def max_mkt_qty(self) -> Decimal:
        """lotSizeFilter.maxMktOrderQty: a tenth of maxOrderQty (BTCUSDT live: 1190 / 119)."""
        return self.max_qty / 10

    def band(self, mark: Decimal) -> tuple[Decimal, Decimal]:
        """(minimum sell, maximum buy) price of the futures price limit (set-price-limit.mdx).

        With index = mark and no order-book premium the formula reduces to mark × (1 ∓ X).
        """
        return (self.round_price(mark * (1 - self.price_limit_x), up=True),
                self.round_price(mark * (1 + self.price_limit_x)))

    @property
    def base_coin(self) -> str:
        return self.symbol[: -len("USDT")] if self.symbol.endswith("USDT") else self.symbol

    @property
    def price_scale(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    def round_price(self, price: Decimal, *, up: bool = False) -> Decimal:
        """Snap to the tick grid (down unless ``up``)."""
        steps = (price / self.tick_size).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)
        return max(steps * self.tick_size, self.tick_size)

    def on_tick(self, price: Decimal) -> bool:
        return price % self.tick_size == 0

    def on_step(self, qty: Decimal) -> bool:
        return qty % self.qty_step == 0


KNOWN = {
    "BTCUSDT": Instrument("BTCUSDT", Decimal("0.10"), Decimal("0.001"), Decimal("0.001"),
                          Decimal("1190"), Decimal("5"), Decimal("50000")),
    "ETHUSDT": Instrument("ETHUSDT", Decimal("0.01"), Decimal("0.01"), Decimal("0.01"),
                          Decimal("7240"), Decimal("5"), Decimal("3000")),
}


def instrument_for(symbol: str, price: Decimal | None = None) -> Instrument:
    """Known filters for BTC/ETH; for other symbols derive sensible ones from the price."""
    if symbol in KNOWN:
        base = KNOWN[symbol]
        return base if price is None else Instrument(**{**base.__dict__, "default_price": price})
    start = price if price is not None else Decimal("100")
    tick = Decimal(1).scaleb(max(-6, start.adjusted() - 5))
    step = Decimal(1).scaleb(min(3, max(-3, 1 - start.adjusted())))
    return Instrument(symbol, tick, step, step, step * 1_000_000, Decimal("5"), start)


def instrument_row(inst: Instrument) -> dict[str, Any]:
    """The linear instruments-info row."""
    return {
        "symbol": inst.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": inst.base_coin,
        "quoteCoin": "USDT",
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(inst.price_scale),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {
            "minPrice": str(inst.tick_size),
            "maxPrice": fmt(inst.tick_size * 19_999_999),
            "tickSize": str(inst.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": fmt(inst.max_qty),
            "minOrderQty": str(inst.min_qty),
            "qtyStep": str(inst.qty_step),
            "postOnlyMaxOrderQty": fmt(inst.max_qty),
            "maxMktOrderQty": fmt(inst.max_mkt_qty),
            "minNotionalValue": fmt(inst.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": "USDT",
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": fmt(inst.price_limit_x), "priceLimitRatioY": fmt(inst.price_limit_y)},
        "displayName": "",
    }
