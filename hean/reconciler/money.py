"""Money gauges from what the reconciler publishes: the exchange's own numbers, for dashboards.

Fed from the events themselves (fills' execFee, positions' unrealisedPnl, the wallet's equity), so the
metrics say exactly what the bus says. Floats here are for display only; the bus carries Decimal strings.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from hean import topics

ET = topics.EventType


def _f(value: Any) -> float | None:
    try:
        return float(Decimal(str(value))) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


class MoneyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # A Gauge, not a Counter: a maker rebate is a negative fee. Counts fills since this process started.
        self.fees = Gauge("hean_reconciler_fees_usdt", "Execution fees charged by the exchange since start "
                          "(execFee of each new fill), by symbol", ["symbol"], registry=registry)
        self.unrealised = Gauge("hean_reconciler_unrealised_pnl_usdt", "unrealisedPnl of the latest position "
                                "row, by symbol", ["symbol"], registry=registry)
        self.equity = Gauge("hean_reconciler_equity_usdt", "The wallet's totalEquity (latest reading)",
                            registry=registry)
        self.wallet = Gauge("hean_reconciler_wallet_balance_usdt", "The wallet's totalWalletBalance",
                            registry=registry)

    def observe(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == ET.ORDER_FILLED.value and not data.get("replay"):
            fee = _f(data.get("exec_fee"))
            if fee is not None and data.get("symbol"):
                self.fees.labels(data["symbol"]).inc(fee)
        elif type_ == ET.POSITION_UPDATE.value and data.get("symbol"):
            upnl = _f(data.get("unrealised_pnl"))
            if upnl is not None:
                self.unrealised.labels(data["symbol"]).set(upnl)
        elif type_ == ET.EQUITY_UPDATE.value:
            for gauge, key in ((self.equity, "equity"), (self.wallet, "wallet_balance")):
                value = _f(data.get(key))
                if value is not None:
                    gauge.set(value)
