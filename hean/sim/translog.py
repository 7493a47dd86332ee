"""The UTA transaction log (`GET /v5/account/transaction-log`): every cash change of the wallet.

Transfers are recorded when the control API credits or debits the wallet; TRADE and
SETTLEMENT rows are derived from the exchange's executions in order, so the running
`cashBalance` is a replay of the wallet (initial balance + pnl - fees - funding +
transfers) and does not depend on when listeners run. Newest first, opaque cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hean.sim.envelope import fmt, param_error
from hean.sim.queries import paginate
from hean.sim.validate import as_int, as_str

if TYPE_CHECKING:
    from hean.sim.exchange import Exchange
    from hean.sim.models import Execution

DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS
CATEGORIES = ("spot", "linear", "option", "inverse")


@dataclass(frozen=True)
class LogRow:
    """One transaction-log item, already in wire form, plus its sort key."""

    time_ms: int
    seq: int
    symbol: str
    category: str
    type: str
    currency: str
    item: dict[str, Any]

    def key(self) -> tuple[int, int]:
        return self.time_ms, self.seq


class TransactionLog:
    """Rows in the order the wallet changed; executions are folded in lazily by ``sync``."""

    def __init__(self, initial_balance: Decimal) -> None:
        self.rows: list[LogRow] = []
        self.cash = Decimal(initial_balance)
        self._sizes: dict[str, Decimal] = {}
        self._synced = 0
        self._seq = 0

    def sync(self, ex: Exchange, uid: int) -> None:
        """Append rows for executions not seen yet (they are appended in time order)."""
        executions = ex.executions
        for execution in executions[self._synced:]:
            self._add_execution(execution, uid)
        self._synced = len(executions)

    def transfer(self, ex: Exchange, uid: int, amount: Decimal, now_ms: int) -> dict[str, Any]:
        """Record a credit (+) / debit (-) of USDT; call before the wallet moves, so the
        row exists by the time any client can see the new balance."""
        self.sync(ex, uid)
        self.cash += amount
        kind = "TRANSFER_IN" if amount >= 0 else "TRANSFER_OUT"
        item = self._item(uid, "USDT", now_ms, kind, symbol="", category="", side="None",
                          cash_flow=amount, change=amount)
        self._append(now_ms, "", "", kind, item)
        return item

    def _add_execution(self, e: Execution, uid: int) -> None:
        if e.exec_type == "Funding":
            # Bybit's `funding` is the opposite sign of execFee (+ = received).
            funding = -e.exec_fee
            self.cash += funding
            rate = e.fee_rate if e.side == "Buy" else -e.fee_rate
            item = self._item(uid, e.symbol, e.exec_time_ms, "SETTLEMENT", symbol=e.symbol, category="linear",
                              side=e.side, cash_flow=Decimal(0), change=funding, execution=e)
            item.update(funding=fmt(funding), fee="0", feeRate=fmt(rate),
                        size=fmt(self._sizes.get(e.symbol, Decimal(0))))
            self._append(e.exec_time_ms, e.symbol, "linear", "SETTLEMENT", item)
            return
        if e.exec_type != "Trade":
            return
        size = self._sizes.get(e.symbol, Decimal(0)) + (e.exec_qty if e.side == "Buy" else -e.exec_qty)
        self._sizes[e.symbol] = size
        change = e.exec_pnl - e.exec_fee
        self.cash += change
        item = self._item(uid, e.symbol, e.exec_time_ms, "TRADE", symbol=e.symbol, category="linear",
                          side=e.side, cash_flow=e.exec_pnl, change=change, execution=e)
        item.update(fee=fmt(e.exec_fee), feeRate=fmt(e.fee_rate), size=fmt(size))
        self._append(e.exec_time_ms, e.symbol, "linear", "TRADE", item)

    def _item(self, uid: int, id_part: str, time_ms: int, kind: str, *, symbol: str, category: str,
              side: str, cash_flow: Decimal, change: Decimal, execution: Execution | None = None
              ) -> dict[str, Any]:
        self._seq += 1
        e = execution
        return {
            "id": f"{uid}_{id_part}_{self._seq}", "symbol": symbol, "category": category, "side": side,
            "transactionTime": str(time_ms), "type": kind, "transSubType": "",
            "qty": fmt(e.exec_qty) if e else "0", "size": "0", "currency": "USDT",
            "tradePrice": fmt(e.exec_price) if e else "0", "funding": "", "fee": "0",
            "cashFlow": fmt(cash_flow), "change": fmt(change), "cashBalance": fmt(self.cash),
            "feeRate": "0", "bonusChange": "", "tradeId": e.exec_id if e else "",
            "orderId": e.order_id if e else "", "orderLinkId": e.order_link_id if e else "", "extraFees": "",
        }

    def _append(self, time_ms: int, symbol: str, category: str, kind: str, item: dict[str, Any]) -> None:
        self.rows.append(LogRow(time_ms, self._seq, symbol, category, kind, "USDT", item))

    def query(self, ex: Exchange, params: dict[str, Any], now_ms: int, uid: int) -> dict[str, Any]:
        """Filters and paging of transaction-log.mdx (24 h default window, at most 7 days)."""
        self.sync(ex, uid)
        account_type = as_str(params, "accountType")
        if account_type and account_type != "UNIFIED":
            raise param_error(f"params error: accountType[{account_type}] not supported")
        category = as_str(params, "category")
        if category and category not in CATEGORIES:
            raise param_error(f"params error: category[{category}] invalid")
        currency, base = as_str(params, "currency"), as_str(params, "baseCoin")
        kind, sub_type = as_str(params, "type"), as_str(params, "transSubType")
        start, end = window(params, now_ms)
        rows = [r for r in self.rows if start <= r.time_ms <= end
                and (not category or r.category == category)
                and (not currency or r.currency == currency)
                and (not base or (r.symbol.startswith(base) and r.category != ""))
                and (not kind or r.type == kind)
                and not sub_type]   # no Move Position in the sim: the filter matches nothing
        page, cursor = paginate(rows, LogRow.key, params, 20, 50)
        return {"list": [r.item for r in page], "nextPageCursor": cursor}


def window(params: dict[str, Any], now_ms: int) -> tuple[int, int]:
    """24 h by default or from one bound; both bounds: at most 7 days apart."""
    start = as_int(params, "startTime", -1, 0, 2**62)
    end = as_int(params, "endTime", -1, 0, 2**62)
    if start < 0 and end < 0:
        return now_ms - DAY_MS, now_ms
    if end < 0:
        return start, start + DAY_MS
    if start < 0:
        return end - DAY_MS, end
    if end < start:
        raise param_error("params error: endTime must be greater than startTime")
    if end - start > WEEK_MS:
        raise param_error("params error: The time range between startTime and endTime cannot exceed 7 days")
    return start, end
