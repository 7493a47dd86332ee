"""Pure exchange state: orders, matching, one-way positions, wallet, executions.

No asyncio/aiohttp here: the server drives it (``step`` per tick) and listens
for change events through ``listeners`` (topic, items) to feed the private WS.
"""

from __future__ import annotations

import random
import uuid
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

from hean.sim import views
from hean.sim.book import Book, Leg, market_limit_price
from hean.sim.envelope import (
    DUPLICATE_LINK_ID, INSUFFICIENT_AVAILABLE, NOTIONAL_TOO_SMALL, ORDER_NOT_FOUND,
    REDUCE_ONLY_ZERO, SimError,
)
from hean.sim.faults import PushFaults
from hean.sim.instruments import Instrument
from hean.sim.models import ZERO, Execution, Order, Position
from hean.sim.pricepath import PricePath
from hean.sim.validate import OrderRequest

FEE_QUANTUM = Decimal("0.00000001")
REALTIME_CLOSED_KEEP = 500   # open-order.mdx: "recent 500 closed status records ... under each account"
Listener = Callable[[str, list[dict]], None]


class Exchange:
    """The whole simulated account and market, advanced by explicit calls."""

    def __init__(
        self, instruments: dict[str, Instrument], prices: PricePath, clock: Callable[[], int], *,
        seed: int, initial_balance: Decimal, taker_fee: Decimal, maker_fee: Decimal,
        slippage_bps: Decimal | None, leverage: Decimal, max_fill_qty_per_tick: Decimal | None = None,
        created_time_resets: bool = False, report_open_time: bool = True, book: Book | None = None,
        push_faults: PushFaults | None = None,
    ) -> None:
        self.instruments = instruments
        self.prices = prices
        self.clock = clock
        self.taker_fee, self.maker_fee = taker_fee, maker_fee
        self.slippage_bps = slippage_bps
        self.book = book if book is not None else Book(instruments, default_notional=Decimal("250000"))
        self.leverage = leverage
        self.max_fill_qty_per_tick = max_fill_qty_per_tick
        self.created_time_resets, self.report_open_time = created_time_resets, report_open_time
        self.wallet_balance = initial_balance
        self.cum_realised = ZERO
        self.orders: dict[str, Order] = {}
        self.by_link_id: dict[str, Order] = {}
        self.executions: list[Execution] = []
        self.positions = {s: Position(s) for s in instruments}
        # order/realtime's closed-order cache: ids in closing order; a Bybit restart empties it.
        self.realtime_closed: OrderedDict[str, None] = OrderedDict()
        self.listeners: list[Listener] = []
        self._rng = random.Random(seed * 7919 + 17)
        self._seq = 0
        self._exec_ordinal = 0
        self.push_faults = push_faults if push_faults is not None else PushFaults()

    # ---- market view -------------------------------------------------
    def last(self, symbol: str) -> Decimal:
        return self.prices.prices[symbol]

    def bid(self, symbol: str) -> Decimal:
        return self.last(symbol)

    def ask(self, symbol: str) -> Decimal:
        return self.last(symbol) + self.instruments[symbol].tick_size

    def unrealised(self, pos: Position) -> Decimal:
        return (self.last(pos.symbol) - pos.avg_price) * pos.size if pos.size else ZERO

    def position_im(self) -> Decimal:
        return sum((abs(p.size) * self.last(p.symbol) / self.leverage for p in self.positions.values()), ZERO)

    def order_im(self) -> Decimal:
        return sum((o.leaves_qty * o.price / self.leverage for o in self.orders.values()
                    if o.is_open and not o.reduce_only), ZERO)

    def equity(self) -> Decimal:
        return self.wallet_balance + sum((self.unrealised(p) for p in self.positions.values()), ZERO)

    def available(self) -> Decimal:
        return self.equity() - self.position_im() - self.order_im()

    # ---- ids / events --------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_ordinal(self) -> int:
        self._exec_ordinal += 1
        return self._exec_ordinal

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _emit(self, topic: str, items: list[dict]) -> None:
        for listener in list(self.listeners):
            listener(topic, items)

    # ---- order entry ---------------------------------------------------
    def place_order(self, req: OrderRequest) -> Order:
        """Validate business rules, book the order and match it immediately if it crosses."""
        if req.order_link_id and req.order_link_id in self.by_link_id:
            raise SimError(DUPLICATE_LINK_ID)
        inst = self.instruments[req.symbol]
        touch = self.ask(req.symbol) if req.side == "Buy" else self.bid(req.symbol)
        limit_price = self._within_band(inst, req.side, req.price) if req.price is not None else None
        ref_price = limit_price if limit_price is not None else touch
        if req.qty * ref_price < inst.min_notional:
            raise SimError(NOTIONAL_TOO_SMALL)
        qty = req.qty
        pos = self.positions[req.symbol]
        if req.reduce_only:
            if pos.size == 0:
                raise SimError(REDUCE_ONLY_ZERO)
            if (pos.size > 0) == (req.side == "Buy"):
                raise SimError(REDUCE_ONLY_ZERO, "Reduce-only rule not satisfied")
            qty = min(qty, abs(pos.size))
        else:
            opening = self._opening_qty(pos, req.side, qty)
            needed = opening * ref_price / self.leverage + qty * ref_price * self.taker_fee
            if needed > self.available():
                raise SimError(INSUFFICIENT_AVAILABLE)
        now = self.clock()
        if req.order_type == "Market":
            price = market_limit_price(inst, req.side, touch, self.last(req.symbol), slippage_bps=self.slippage_bps,
                                       tolerance_type=req.slippage_type, tolerance=req.slippage)
        else:
            assert limit_price is not None
            price = limit_price
        order = Order(
            order_id=self._new_id(), order_link_id=req.order_link_id, symbol=req.symbol, side=req.side,
            order_type=req.order_type, price=price, qty=qty, time_in_force=req.time_in_force,
            reduce_only=req.reduce_only, close_on_trigger=req.close_on_trigger, created_ms=now,
            ordinal=self._next_seq(), last_price_on_created=self.last(req.symbol), updated_ms=now,
        )
        order.skip_new = self.push_faults.take("execution_first")
        self.orders[order.order_id] = order
        if order.order_link_id:
            self.by_link_id[order.order_link_id] = order
        self._match_new(order, touch)
        return order

    def _within_band(self, inst: Instrument, side: str, price: Decimal) -> Decimal:
        """Futures default (modifyEnable=true, set-price-limit.mdx): a price beyond the band moves to its edge."""
        low, high = inst.band(self.last(inst.symbol))
        return min(price, high) if side == "Buy" else max(price, low)

    @staticmethod
    def _opening_qty(pos: Position, side: str, qty: Decimal) -> Decimal:
        signed = qty if side == "Buy" else -qty
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            return qty
        return max(ZERO, qty - abs(pos.size))

    def _match_new(self, order: Order, touch: Decimal) -> None:
        """Take what the book holds between the touch and the order's price; IOC/FOK/Market drop the rest."""
        crosses = order.price >= touch if order.side == "Buy" else order.price <= touch
        if crosses and order.time_in_force == "PostOnly":
            self._finish(order, "Cancelled", "UNKNOWN", reject="EC_PostOnlyWillTakeLiquidity")
            return
        if crosses:
            wanted = order.qty - order.cum_qty
            fok_short = order.time_in_force == "FOK" and sum(
                q for q, _ in self.book.sweep(order.symbol, order.side, touch, order.price, wanted, take=False)
            ) < wanted
            if not fok_short:
                legs = self.book.sweep(order.symbol, order.side, touch, order.price, wanted)
                if legs:
                    self._fill(order, legs, is_maker=False)
        if order.is_open and order.time_in_force in ("IOC", "FOK"):
            # A market order is an IOC limit: thin liquidity leaves Cancelled with cumExecQty > 0 (faq.mdx).
            reject = "EC_CancelForNoFullFill" if order.cum_qty else "EC_NoImmediateQtyToFill"
            self._finish(order, "Cancelled", "UNKNOWN", reject=reject)
        elif order.status == "New" and order.skip_new:
            self._emit_position(self.positions[order.symbol])
        elif order.status == "New":
            self._emit_order(order)

    def cancel_order(self, symbol: str, order_id: str, link_id: str) -> Order:
        """Cancel one open order; orderId wins over orderLinkId."""
        order = self.orders.get(order_id) if order_id else self.by_link_id.get(link_id)
        if order is None or order.symbol != symbol or not order.is_open:
            raise SimError(ORDER_NOT_FOUND)
        self._finish(order, "Cancelled", "CancelByUser")
        return order

    def cancel_all(self, symbol: str | None) -> list[Order]:
        victims = [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]
        for order in victims:
            self._finish(order, "Cancelled", "CancelByUser")
        return victims

    def _finish(self, order: Order, status: str, cancel_type: str, reject: str = "EC_NoError") -> None:
        order.status, order.cancel_type, order.reject_reason = status, cancel_type, reject
        order.updated_ms = self.clock()
        self._remember_closed(order)
        self._emit_order(order)

    def _remember_closed(self, order: Order) -> None:
        self.realtime_closed[order.order_id] = None
        while len(self.realtime_closed) > REALTIME_CLOSED_KEEP:
            self.realtime_closed.popitem(last=False)

    def clear_realtime_cache(self) -> int:
        """A Bybit service restart: closed orders are then found only through order/history."""
        dropped = len(self.realtime_closed)
        self.realtime_closed.clear()
        return dropped

    def _emit_order(self, order: Order) -> None:
        self._emit("order", [views.ws_order(order)])
        self._emit_position(self.positions[order.symbol])

    def _emit_position(self, pos: Position) -> None:
        # Bybit pushes (and re-stamps) the position on every order change, even without a real change.
        pos.updated_ms = self.clock()
        self._emit("position", [views.ws_position(self, pos)])

    # ---- matching --------------------------------------------------------
    def step(self) -> None:
        """Replenish the book and match resting limit orders against the last price (each tick)."""
        self.book.replenish()
        for order in sorted((o for o in self.orders.values() if o.is_open), key=lambda o: o.ordinal):
            last = self.last(order.symbol)
            if (order.side == "Buy" and last <= order.price) or (order.side == "Sell" and last >= order.price):
                qty = order.qty - order.cum_qty
                if self.max_fill_qty_per_tick is not None:
                    qty = min(qty, self.max_fill_qty_per_tick)
                self._fill(order, [(qty, order.price)], is_maker=True)

    def _fill(self, order: Order, legs: list[Leg], *, is_maker: bool) -> None:
        """Book one match event: one execution per price level, sharing one seq (fast-execution.mdx)."""
        pos = self.positions[order.symbol]
        now = self.clock()
        seq = self._next_seq()
        fee_rate = self.maker_fee if is_maker else self.taker_fee
        executions: list[Execution] = []
        for qty, price in legs:
            if order.reduce_only:
                reducing = pos.size != 0 and (pos.size > 0) != (order.side == "Buy")
                qty = min(qty, abs(pos.size)) if reducing else ZERO
                if qty == 0:
                    break
            value = qty * price
            fee = (value * fee_rate).quantize(FEE_QUANTUM)
            closed, pnl = self._apply_to_position(pos, order.side, qty, price, now, seq)
            self.wallet_balance += pnl - fee
            self.cum_realised += pnl - fee
            pos.cur_realised += pnl - fee
            pos.cum_realised += pnl - fee
            order.cum_qty += qty
            order.cum_value += value
            order.cum_fee += fee
            order.closed_pnl += pnl - fee
            executions.append(Execution(
                exec_id=self._new_id(), symbol=order.symbol, order_id=order.order_id,
                order_link_id=order.order_link_id, side=order.side, order_type=order.order_type,
                order_price=order.price, order_qty=order.qty, leaves_qty=order.qty - order.cum_qty,
                exec_type="Trade", exec_price=price, exec_qty=qty, exec_value=value, exec_fee=fee,
                fee_rate=fee_rate, exec_time_ms=now, is_maker=is_maker, mark_price=self.last(order.symbol),
                closed_size=closed, exec_pnl=pnl, seq=seq, ordinal=self._next_ordinal(),
            ))
        if not executions:
            self._finish(order, "Cancelled", "CancelByReduceOnly")
            return
        order.updated_ms = now
        order.status = "Filled" if order.cum_qty >= order.qty else "PartiallyFilled"
        if order.status == "Filled":
            self._remember_closed(order)
        self.executions.extend(executions)
        self._emit_fill(order, executions)

    def _emit_fill(self, order: Order, executions: list[Execution]) -> None:
        """execution.fast first (its point), then order and execution (swapped by the fault), position, wallet."""
        self._emit("execution.fast", [views.ws_fast_execution(e) for e in executions])
        rows = [views.ws_execution(e) for e in executions]
        if order.skip_new:
            order.skip_new = False
            self._emit("execution", rows)
            self._emit("order", [views.ws_order(order)])
        else:
            self._emit("order", [views.ws_order(order)])
            self._emit("execution", rows)
        if order.status == "Filled" and self.push_faults.take("double_filled"):
            # order.mdx: the second Filled carries cancelType CancelByUser, EC_OrigClOrdIDDoesNotExist
            echo = views.ws_order(order)
            echo.update(cancelType="CancelByUser", rejectReason="EC_OrigClOrdIDDoesNotExist")
            self._emit("order", [echo])
        self._emit_position(self.positions[order.symbol])
        self._emit("wallet", [views.wallet_account(self)])

    def _apply_to_position(self, pos: Position, side: str, qty: Decimal, price: Decimal, now: int, seq: int
                           ) -> tuple[Decimal, Decimal]:
        """Net a fill into the one-way position; return (closed size, realised PnL)."""
        signed = qty if side == "Buy" else -qty
        pos.updated_ms, pos.seq = now, seq
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            if pos.size == 0:
                self._opened(pos, now)
            total = abs(pos.size) + qty
            pos.avg_price = (abs(pos.size) * pos.avg_price + qty * price) / total
            pos.size += signed
            return ZERO, ZERO
        closed = min(qty, abs(pos.size))
        pnl = closed * (price - pos.avg_price) * (1 if pos.size > 0 else -1)
        remainder = qty - closed
        pos.size += signed
        if pos.size == 0:
            pos.avg_price, pos.open_ms = ZERO, 0
            if self.created_time_resets:
                pos.created_ms = now
        elif remainder > 0:
            pos.avg_price = price
            self._opened(pos, now)
        return closed, pnl

    def _opened(self, pos: Position, now: int) -> None:
        """A new position (from flat or through zero): openTime moves, createdTime only the first time."""
        pos.open_ms, pos.cur_realised = now, ZERO
        if self.created_time_resets or not pos.created_ms:
            pos.created_ms = now

    # ---- account adjustments -------------------------------------------
    def adjust_wallet(self, amount: Decimal) -> Decimal:
        """Credit (positive) or debit (negative) the USDT wallet."""
        self.wallet_balance += amount
        self._emit("wallet", [views.wallet_account(self)])
        return self.wallet_balance

    def funding(self, symbol: str, rate: Decimal) -> Execution:
        """Settle funding on an open position: a Funding execution, not an order fill."""
        pos = self.positions[symbol]
        if pos.size == 0:
            raise SimError(ORDER_NOT_FOUND, "no open position to fund")
        mark = self.last(symbol)
        value = abs(pos.size) * mark
        fee = (value * rate * (1 if pos.size > 0 else -1)).quantize(FEE_QUANTUM)
        self.wallet_balance -= fee
        pos.cum_realised -= fee
        pos.cur_realised -= fee
        pos.updated_ms = self.clock()
        execution = Execution(
            # Bybit's Funding rows carry execQty = position size, its side and a non-empty orderId (SPEC §7.3).
            exec_id=self._new_id(), symbol=symbol, order_id=self._new_id(), order_link_id="", side=pos.side,
            order_type="UNKNOWN", order_price=ZERO, order_qty=ZERO, leaves_qty=ZERO, exec_type="Funding",
            exec_price=mark, exec_qty=abs(pos.size), exec_value=value, exec_fee=fee, fee_rate=rate,
            exec_time_ms=self.clock(), is_maker=False, mark_price=mark, closed_size=ZERO, exec_pnl=ZERO,
            seq=self._next_seq(), ordinal=self._next_ordinal(),
        )
        self.executions.append(execution)
        self._emit("execution", [views.ws_execution(execution)])
        self._emit_position(pos)
        self._emit("wallet", [views.wallet_account(self)])
        return execution
