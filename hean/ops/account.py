"""The account as the exchange reports it, read-only: money per symbol and in total, and open orders.

Why REST and not HEAN's own bookkeeping: the operator asks "what does the exchange say I made?", so
every figure is the exchange's own number — positions' unrealisedPnl / cumRealisedPnl, executions'
execFee and funding rows (execType Funding, fee sign as the exchange reports it), the wallet's
totalEquity — summed as Decimal, never recomputed from prices. Only GET endpoints are called.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hean.config import HeanSettings
from hean.exchange.bybit import BybitRestClient
from hean.ids import INTENT_PREFIX, WATCHDOG_PREFIX

ZERO = Decimal(0)
EXECUTION_LOOKBACK_MS = 7 * 24 * 3600 * 1000   # the longest window /v5/execution/list answers at once


def _d(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else ZERO
    except ArithmeticError:
        return ZERO


def client_for(settings: HeanSettings, rest_url: str | None) -> BybitRestClient:
    key, secret = settings.credentials()
    return BybitRestClient(rest_url=rest_url or settings.bybit.rest_url, api_key=key, api_secret=secret,
                           dry_run=settings.dry_run, is_live=settings.is_live, timeout_s=3.0, max_retries=1)


def money(positions: list[dict[str, Any]], executions: list[dict[str, Any]],
          wallet: dict[str, Any] | None) -> dict[str, Any]:
    """Per-symbol and total realised PnL, fees, funding, unrealised PnL; equity from the wallet.

    realised_pnl = the position rows' cumRealisedPnl (the exchange's closed PnL net of its fees and
    funding); fees = sum of Trade execFee; funding = minus the sum of Funding execFee (a paid
    funding fee is a negative amount for the account)."""
    per: dict[str, dict[str, Decimal]] = {}

    def row(sym: str) -> dict[str, Decimal]:
        return per.setdefault(sym, {"realised_pnl": ZERO, "fees": ZERO, "funding": ZERO, "unrealised_pnl": ZERO})

    for p in positions:
        r = row(str(p.get("symbol")))
        r["realised_pnl"] += _d(p.get("cumRealisedPnl"))
        r["unrealised_pnl"] += _d(p.get("unrealisedPnl"))
    for e in executions:
        r = row(str(e.get("symbol")))
        if e.get("execType") == "Funding":
            r["funding"] -= _d(e.get("execFee"))
        elif e.get("execType", "Trade") == "Trade":
            r["fees"] += _d(e.get("execFee"))
    total = {k: sum((r[k] for r in per.values()), ZERO) for k in ("realised_pnl", "fees", "funding", "unrealised_pnl")}
    equity = wallet.get("totalEquity") if wallet else None
    return {**{k: format(v, "f") for k, v in total.items()}, "equity": equity,
            "by_symbol": {s: {k: format(v, "f") for k, v in r.items()} for s, r in sorted(per.items())}}


def strategy_of_link(link: str) -> str:
    """The strategy tag HEAN put into an orderLinkId (see hean.ids.new_intent_id); "-" if foreign."""
    if link.startswith(WATCHDOG_PREFIX):
        return "watchdog"
    if link.startswith(INTENT_PREFIX) and "-" in link[len(INTENT_PREFIX):]:
        return link[len(INTENT_PREFIX):].split("-", 1)[0]
    return "-"


def open_order_row(o: dict[str, Any], now_ms: int) -> dict[str, Any]:
    link = str(o.get("orderLinkId") or "")
    created = int(o.get("createdTime") or 0)
    return {"symbol": o.get("symbol"), "side": o.get("side"), "qty": o.get("qty"),
            "leaves_qty": o.get("leavesQty"), "price": o.get("price"), "order_type": o.get("orderType"),
            "reduce_only": bool(o.get("reduceOnly")), "status": o.get("orderStatus"),
            "age_s": round((now_ms - created) / 1000, 1) if created else None,
            "order_link_id": link, "order_id": o.get("orderId"), "strategy": strategy_of_link(link)}


async def read_account(settings: HeanSettings, rest_url: str | None) -> dict[str, Any]:
    """{"money": ..., "open_orders": [...]} or {"error": "..."} when the exchange cannot be read."""
    client = client_for(settings, rest_url)
    try:
        await client.start()
        base = {"category": "linear", "settleCoin": "USDT"}
        # By symbol, not by settleCoin: a settleCoin query leaves out flat rows, and a flat symbol's
        # cumRealisedPnl is still money made.
        pos_rows: list[dict[str, Any]] = []
        for sym in settings.symbols:
            pos_rows += await client.paged("/v5/position/list", {"category": "linear", "symbol": sym})
        orders = await client.call("GET", "/v5/order/realtime", {**base, "openOnly": 0, "limit": 50})
        wallet = await client.call("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
        now_ms = client.server_time_ms()
        execs: list[dict[str, Any]] = []
        for sym in settings.symbols:
            execs += await client.paged("/v5/execution/list", {
                "category": "linear", "symbol": sym, "limit": 100,
                "startTime": now_ms - EXECUTION_LOOKBACK_MS + 1000, "endTime": now_ms})
        for name, resp in (("open orders", orders), ("wallet", wallet)):
            if not resp.ok:
                return {"error": f"exchange refused the {name} query: {resp.ret_code} {resp.error or resp.ret_msg}"}
        accounts = wallet.result.get("list") or [{}]
        rows = [r for r in orders.result.get("list", []) if r.get("orderStatus") in ("New", "PartiallyFilled", "Untriggered")]
        held = [{"symbol": p.get("symbol"), "side": p.get("side"), "size": p.get("size"),
                 "avg_price": p.get("avgPrice"), "unrealised_pnl": p.get("unrealisedPnl")}
                for p in pos_rows if _d(p.get("size")) != 0]
        return {"money": money(pos_rows, execs, accounts[0]), "positions": held,
                "open_orders": [open_order_row(o, now_ms) for o in rows]}
    except Exception as exc:  # noqa: BLE001 - status must still print the processes' table
        return {"error": f"exchange not readable at {rest_url or settings.bybit.rest_url}: {exc}"}
    finally:
        await client.close()


def left_open_text(account: dict[str, Any]) -> str:
    """What `hean up` says at stop: the positions and orders it leaves on the exchange."""
    if account.get("error"):
        return f"left open: unknown ({account['error']})"
    pos, orders = account.get("positions") or [], account.get("open_orders") or []
    if not pos and not orders:
        return "left open: nothing (no position, no resting order)"
    lines = [f"left open on the exchange: {len(pos)} position(s), {len(orders)} order(s)"]
    lines += [f"  position {p['symbol']} {p['side']} {p['size']} @ {p['avg_price']}" for p in pos]
    lines += [f"  order    {o['symbol']} {o['side']} {o['qty']} @ {o['price']} {o['order_link_id']}" for o in orders]
    lines.append("  (next time: hean up --flatten-on-exit, or hean order cancel --all / hean order close SYMBOL)")
    return "\n".join(lines)
