"""`hean preflight --place-test-order`: one real order through the processes' client, then gone.

A PostOnly limit buy at 10 % under the mark, the smallest size the instrument accepts: a buy
below the market is inside Bybit's futures price band (the band caps buys from above,
SPEC §7.2), and PostOnly means it can only rest, never take. It is placed, found by its
orderLinkId (realtime, then history: `query_order`), cancelled, and seen cancelled. If
anything goes wrong after placing, the cancel is still attempted and the line says what
was left behind.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_CEILING, Decimal

from hean.exchange.bybit import BybitRestClient
from hean.exchange.bybit import constants as c
from hean.exchange.bybit.errors import ExchangeUnavailable
from hean.exchange.bybit.filters import InstrumentFilter, decimal_str, round_price

NAME = "test order"
DISCOUNT = Decimal("0.9")
RESTING = ("New", "Untriggered")


def order_terms(mark: Decimal, f: InstrumentFilter) -> tuple[Decimal, Decimal]:
    """(price, qty): 10 % under the mark, the smallest qty that meets minOrderQty and minNotional."""
    price = round_price(max(mark * DISCOUNT, f.tick_size), f, "Buy")
    steps = (f.min_notional / price / f.qty_step).to_integral_value(rounding=ROUND_CEILING)
    return price, max(f.min_qty, (steps * f.qty_step).quantize(f.qty_step))


async def _mark(client: BybitRestClient, symbol: str) -> Decimal:
    resp = await client.call("GET", c.PATH_TICKERS, {"category": c.CATEGORY, "symbol": symbol}, private=False)
    rows = resp.result.get("list") or [] if resp.ok else []
    if not rows or not rows[0].get("markPrice"):
        raise ExchangeUnavailable(f"no mark price for {symbol}: retCode={resp.ret_code} {resp.error or resp.ret_msg}")
    return Decimal(str(rows[0]["markPrice"]))


async def place_and_cancel(client: BybitRestClient, symbol: str) -> tuple[str, str, str]:
    """(name, status, detail) of the test-order check."""
    f = client.instruments.get(symbol)
    if f is None:
        return NAME, "FAIL", f"{symbol} is not listed: no test order"
    try:
        price, qty = order_terms(await _mark(client, symbol), f)
    except ExchangeUnavailable as exc:
        return NAME, "FAIL", str(exc)
    link = f"preflight-{uuid.uuid4().hex[:20]}"
    what = f"Buy {decimal_str(qty)} {symbol} @ {decimal_str(price)} PostOnly ({link})"
    placed = await client.place_order(symbol=symbol, side="Buy", order_type="Limit", qty=qty, price=price,
                                      order_link_id=link, time_in_force="PostOnly")
    if not placed.ok and placed.outcome.value != "ambiguous":
        return NAME, "FAIL", f"{what} refused: retCode={placed.ret_code} {placed.ret_msg or placed.error}"
    try:
        found = await client.query_order(order_link_id=link)
    except ExchangeUnavailable as exc:
        found, lookup_error = None, str(exc)
    else:
        lookup_error = ""
    if found is None and not placed.ok:
        return NAME, "FAIL", f"{what}: no answer and not found by orderLinkId {lookup_error}".strip()
    status = str(found.get("orderStatus")) if found else "not found"
    cancel = await client.cancel_order(symbol=symbol, order_link_id=link)
    try:
        after = await client.query_order(order_link_id=link)
    except ExchangeUnavailable as exc:
        return NAME, "FAIL", f"{what}: cancel not confirmed ({exc}); CHECK FOR AN OPEN ORDER {link}"
    final = str(after.get("orderStatus")) if after else "not found"
    filled = Decimal(str((after or {}).get("cumExecQty") or "0"))
    if filled > 0:
        return NAME, "FAIL", f"{what} FILLED {filled}: a position is open, close it"
    if final != "Cancelled":
        return NAME, "FAIL", (f"{what}: after cancel (retCode={cancel.ret_code} {cancel.ret_msg}) it is {final}; "
                              f"CHECK FOR AN OPEN ORDER {link}")
    if status not in RESTING:
        return NAME, "FAIL", f"{what}: found by orderLinkId as {status} instead of resting"
    return NAME, "PASS", f"{what} placed, found by orderLinkId, cancelled"
