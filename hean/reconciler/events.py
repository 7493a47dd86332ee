"""Bybit rows -> HEAN event payloads (pure; see contracts: money/qty as Decimal strings)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from hean.ids import is_hean_link_id
from hean.reconciler.diff import intent_id_of


def dec(value: Any) -> str:
    """A Decimal string for a Bybit numeric field ("" and None mean 0); never via float."""
    if value is None or value == "":
        return "0"
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return "0"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def fill_event(row: dict[str, Any], source: str, *, replay: bool = False) -> dict[str, Any]:
    """ORDER_FILLED data; `replay` marks a deliberate re-delivery after a restart (dedupe by exec_id)."""
    link = str(row.get("orderLinkId") or "")
    return {
        "exec_id": str(row["execId"]), "order_id": str(row.get("orderId") or ""), "order_link_id": link,
        "intent_id": intent_id_of(link), "symbol": str(row.get("symbol") or ""), "side": str(row.get("side") or ""),
        "exec_qty": dec(row.get("execQty")), "exec_price": dec(row.get("execPrice")),
        "exec_fee": dec(row.get("execFee")), "exec_time_ms": _int(row.get("execTime")),
        "is_maker": bool(row.get("isMaker")), "source": source, "hean": is_hean_link_id(link), "replay": replay,
    }


def order_event(row: dict[str, Any]) -> dict[str, Any]:
    link = str(row.get("orderLinkId") or "")
    return {
        "order_id": str(row.get("orderId") or ""), "order_link_id": link, "intent_id": intent_id_of(link),
        "symbol": str(row.get("symbol") or ""), "side": str(row.get("side") or ""),
        "order_status": str(row.get("orderStatus") or ""), "qty": dec(row.get("qty")),
        "cum_exec_qty": dec(row.get("cumExecQty")), "avg_price": dec(row.get("avgPrice")),
        "reduce_only": bool(row.get("reduceOnly")), "updated_time_ms": _int(row.get("updatedTime")),
        # For the operator's view: the limit price and the exchange's own rejection text.
        "price": dec(row.get("price")), "reject_reason": str(row.get("rejectReason") or ""),
        "order_type": str(row.get("orderType") or ""),
    }


def order_from_execution(row: dict[str, Any]) -> dict[str, Any]:
    """An order's identity as an execution row tells it (for flagging an order seen only by its fills)."""
    link = str(row.get("orderLinkId") or "")
    return {
        "order_id": str(row.get("orderId") or ""), "order_link_id": link, "intent_id": intent_id_of(link),
        "symbol": str(row.get("symbol") or ""), "side": str(row.get("side") or ""), "order_status": "",
        "qty": dec(row.get("orderQty")), "cum_exec_qty": dec(row.get("execQty")), "avg_price": dec(row.get("execPrice")),
        "reduce_only": False, "updated_time_ms": _int(row.get("execTime")),
    }


def position_event(row: dict[str, Any], foreign: bool, ts_ms: int | None = None) -> dict[str, Any]:
    """REST rows carry `avgPrice`, WS rows `entryPrice` (SPEC §4.5).

    `ts_ms` is the exchange time of the message the row came in (WS `creationTime`, REST envelope
    `time`); `seq`/`updated_time_ms` order reports of the same position (hean.reconciler.ordering).
    """
    size = dec(row.get("size"))
    seq = _int(row.get("seq"))
    return {
        "symbol": str(row.get("symbol") or ""), "side": str(row.get("side") or "") if Decimal(size) else "",
        "size": size, "avg_price": dec(row.get("avgPrice", row.get("entryPrice"))),
        "unrealised_pnl": dec(row.get("unrealisedPnl")), "created_time_ms": _int(row.get("createdTime")),
        "updated_time_ms": _int(row.get("updatedTime")), "foreign": foreign,
        "mark_price": dec(row.get("markPrice")), "seq": seq if seq is None or seq >= 0 else None,
        "open_time_ms": _int(row.get("openTime")), "ts_ms": ts_ms,
    }


def flat_position(symbol: str) -> dict[str, Any]:
    """What is published for a symbol never seen open (no exchange report behind it yet)."""
    return {"symbol": symbol, "side": "", "size": "0", "avg_price": "0", "unrealised_pnl": "0",
            "created_time_ms": None, "updated_time_ms": None, "foreign": False,
            "mark_price": "0", "seq": None, "open_time_ms": None, "ts_ms": None}


def dec_or_none(value: Any) -> str | None:
    """A Decimal string, or None when the field is missing or not a finite number."""
    try:
        d = Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None
    return str(d) if d is not None and d.is_finite() else None


def equity_event(account: dict[str, Any], ts_ms: int, *, published_ms: int | None = None,
                 source: str = "rest") -> dict[str, Any]:
    """EQUITY_UPDATE data. `ts_ms` is when the exchange produced the reading, never when it is re-sent.

    A missing equity must reach the risk governor as missing (counted as invalid), never as 0:
    zero equity is a 100 % drawdown and would latch HARD_STOP.
    """
    return {
        "equity": dec_or_none(account.get("totalEquity")), "wallet_balance": dec(account.get("totalWalletBalance")),
        "available_balance": dec(account.get("totalAvailableBalance")),
        "unrealised_pnl": dec(account.get("totalPerpUPL")), "ts_ms": ts_ms,
        "published_ms": ts_ms if published_ms is None else published_ms, "source": source,
    }


def transfer_event(transfer_id: str, amount: str, currency: str, ts_ms: int) -> dict[str, Any]:
    """TRANSFER data: `amount` signed (+ = into the account), the transaction log's id and time."""
    return {"id": transfer_id, "amount": amount, "currency": currency, "ts_ms": ts_ms}
