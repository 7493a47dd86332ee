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


def position_event(row: dict[str, Any], foreign: bool) -> dict[str, Any]:
    """REST rows carry `avgPrice`, WS rows `entryPrice` (SPEC §4.5)."""
    size = dec(row.get("size"))
    return {
        "symbol": str(row.get("symbol") or ""), "side": str(row.get("side") or "") if Decimal(size) else "",
        "size": size, "avg_price": dec(row.get("avgPrice", row.get("entryPrice"))),
        "unrealised_pnl": dec(row.get("unrealisedPnl")), "created_time_ms": _int(row.get("createdTime")),
        "updated_time_ms": _int(row.get("updatedTime")), "foreign": foreign,
    }


def flat_position(symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": "", "size": "0", "avg_price": "0", "unrealised_pnl": "0",
            "created_time_ms": None, "updated_time_ms": None, "foreign": False}


def dec_or_none(value: Any) -> str | None:
    """A Decimal string, or None when the field is missing or not a finite number."""
    try:
        d = Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None
    return str(d) if d is not None and d.is_finite() else None


def equity_event(account: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    # A missing equity must reach the risk governor as missing (counted as invalid), never as 0:
    # zero equity is a 100 % drawdown and would latch HARD_STOP.
    return {
        "equity": dec_or_none(account.get("totalEquity")), "wallet_balance": dec(account.get("totalWalletBalance")),
        "available_balance": dec(account.get("totalAvailableBalance")),
        "unrealised_pnl": dec(account.get("totalPerpUPL")), "ts_ms": ts_ms,
    }
