"""State records of the simulated account: orders, executions, positions.

Plain dataclasses with Decimal money; views.py turns them into Bybit wire shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})
ZERO = Decimal(0)


@dataclass
class Order:
    """One order and its running fill totals."""

    order_id: str
    order_link_id: str
    symbol: str
    side: str
    order_type: str
    price: Decimal
    qty: Decimal
    time_in_force: str
    reduce_only: bool
    close_on_trigger: bool
    created_ms: int
    ordinal: int
    last_price_on_created: Decimal
    status: str = "New"
    updated_ms: int = 0
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    closed_pnl: Decimal = ZERO
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    skip_new: bool = False   # fault: no New push, its first execution is pushed before the order

    @property
    def leaves_qty(self) -> Decimal:
        return ZERO if self.status not in OPEN_STATUSES else self.qty - self.cum_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> Decimal:
        return self.cum_value / self.cum_qty if self.cum_qty else ZERO


@dataclass
class Execution:
    """One fill or funding settlement."""

    exec_id: str
    symbol: str
    order_id: str
    order_link_id: str
    side: str
    order_type: str
    order_price: Decimal
    order_qty: Decimal
    leaves_qty: Decimal
    exec_type: str
    exec_price: Decimal
    exec_qty: Decimal
    exec_value: Decimal
    exec_fee: Decimal
    fee_rate: Decimal
    exec_time_ms: int
    is_maker: bool
    mark_price: Decimal
    closed_size: Decimal
    exec_pnl: Decimal
    seq: int
    ordinal: int = 0   # internal total order (paging key): one match event's fills share ``seq``


@dataclass
class Position:
    """One-way (positionIdx 0) netting position; ``size`` is signed here, positive on the wire.

    ``created_ms`` is Bybit's createdTime: the first-ever creation on the symbol, never reset;
    ``open_ms`` is openTime: when the current position opened (0 while flat).
    ``seq`` is -1 until the symbol first trades (position.mdx).
    """

    symbol: str
    size: Decimal = ZERO
    avg_price: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0
    cur_realised: Decimal = ZERO
    cum_realised: Decimal = ZERO
    seq: int = -1
    open_ms: int = 0

    @property
    def side(self) -> str:
        return "" if self.size == 0 else ("Buy" if self.size > 0 else "Sell")
