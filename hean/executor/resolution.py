"""Resolution of orders whose outcome is unknown, by asking the exchange for their orderLinkId.

Evidence, in order: the order found (`query_order` reads `order/realtime`, then
`order/history`, because the realtime cache of closed orders is emptied when Bybit
restarts a service — an empty realtime answer alone never means "absent"); a 110072
answer, which proves an order with that id exists, so the row is never sent again and
waits to be found; only a row that both endpoints miss for longer than the recv window
is absent and may be sent (again, under the same orderLinkId).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hean import topics
from hean.exchange.bybit import ExchangeUnavailable
from hean.executor import journal as j
from hean.executor.gate import InvalidIntent, parse_intent
from hean.executor.outcomes import found_order_outcome, outcome

if TYPE_CHECKING:
    from hean.executor.placement import Placer

log = logging.getLogger("hean.executor")
T = topics.EventType


async def settle_unknown(p: Placer, intent_id: str, symbol: str, sent_state: str | None, *,
                         exists: bool) -> None:
    """The request's outcome is unknown (or 110072: exists, id unknown): record it and look it up once."""
    if not exists:
        p.m.ambiguous.inc()
    p.journal.update(intent_id, j.EXISTS if exists else j.UNKNOWN, sent_risk_state=sent_state)
    p.ambiguous[intent_id] = symbol
    row = p.journal.get(intent_id)
    # First lookup at once; if the exchange cannot answer, the resolve loop owns the row from now on.
    if row is None or not await resolve(p, row):
        p.busy.discard(intent_id)


async def resolve(p: Placer, row: j.JournalRow, *, may_resend: bool = True) -> bool:
    """Settle an open row by asking the exchange for its orderLinkId; True when settled."""
    try:
        found = await p.client.query_order(order_link_id=row.order_link_id)
    except ExchangeUnavailable as exc:
        p.m.resolve_failures.inc()
        log.warning("order lookup failed; will retry", extra={"intent_id": row.intent_id, "error": str(exc)})
        return False
    current = p.journal.get(row.intent_id)
    if current is None or current.final:
        return True     # settled meanwhile by another path: never send a finished intent again
    if found is not None:
        return await _found(p, current, found)
    if current.state == j.EXISTS:
        return await _exists_not_found(p, current)
    if not may_resend:
        return False
    if j.now_ms() < row.updated_ms + p.settle_ms:
        # A request signed just now may still be on its way to the matching engine. Bybit refuses a
        # request older than its recv_window, so "absent" is only final once that window has passed.
        return False
    p.m.resolved.labels("absent").inc()
    log.info("unresolved order absent from the exchange; sending it", extra={"intent_id": row.intent_id})
    p.journal.update(row.intent_id, j.PENDING)
    p.ambiguous.pop(row.intent_id, None)
    p.untrack(row.intent_id)
    p.busy.add(row.intent_id)
    raw = _with_receipt_time(current)
    try:
        intent = parse_intent(raw, p.instruments)
    except InvalidIntent as exc:
        p.m.rejected.labels("invalid_intent").inc()
        await p.finish(row.intent_id, j.REJECTED, outcome(
            topics.order("rejected"), T.ORDER_REJECTED, raw, qty=None, link=row.order_link_id,
            risk_state=p.view().effective, reason=f"invalid_intent: {exc}"))
        return True
    await p.admit(intent, raw, resend=True)
    return True


def _with_receipt_time(row: j.JournalRow) -> dict[str, Any]:
    """The intent as journaled; one from before receipt stamping gets its journal time as `created_ns`."""
    if type(row.intent.get("created_ns")) is int:
        return row.intent
    return dict(row.intent, created_ns=row.created_ms * 1_000_000)


async def _found(p: Placer, row: j.JournalRow, found: dict[str, Any]) -> bool:
    placed, event = found_order_outcome(found, row.intent, row.order_link_id, row.sent_risk_state)
    p.m.resolved.labels("placed" if placed else "rejected").inc()
    if placed:
        p.m.placed.inc()
    else:
        p.m.rejected.labels("exchange_rejected").inc()
    log.info("unresolved order found on the exchange", extra={
        "intent_id": row.intent_id, "order_link_id": row.order_link_id, "order_id": found.get("orderId"),
        "symbol": row.symbol, "order_status": found.get("orderStatus")})
    await p.finish(row.intent_id, j.PLACED if placed else j.REJECTED, event)
    return True


async def _exists_not_found(p: Placer, row: j.JournalRow) -> bool:
    """After 110072 the order exists but may not be found yet (`order/history` "may delay").

    Searched for `exists_search_s`; past that, absent from `order/realtime` (which lists every
    open order) it is not resting: reported placed, so its symbol is not blocked for ever.
    """
    waited_s = (j.now_ms() - row.updated_ms) / 1000
    if waited_s < p.exists_search_s:
        return False
    p.m.resolved.labels("exists_not_found").inc()
    p.m.placed.inc()
    log.error("order exists (110072) but neither order/realtime nor order/history shows it; reporting it "
              "placed without an orderId", extra={"intent_id": row.intent_id, "order_link_id": row.order_link_id,
                                                  "symbol": row.symbol,
                                                  "searched_s": round(waited_s, 1)})
    qty = row.intent.get("qty")
    await p.finish(row.intent_id, j.PLACED, outcome(
        topics.order("placed"), T.ORDER_PLACED, row.intent, qty=None if qty is None else Decimal(str(qty)),
        link=row.order_link_id, risk_state=row.sent_risk_state, reason="exists_not_found"))
    return True


async def resolve_open(p: Placer, *, may_resend: bool) -> int:
    """One pass over every open row nobody is working on; returns how many are still open.

    may_resend=False (start-up, before risk is known) only settles rows found on the exchange.
    """
    left = 0
    for listed in p.journal.open_rows():
        if listed.intent_id in p.busy:
            continue
        # The list was read before earlier lookups awaited: re-read, the row may be final by now.
        row = p.journal.get(listed.intent_id)
        if row is None or row.final:
            continue
        p.busy.add(row.intent_id)
        # Until it is settled, the order counts as existing, at full size.
        p.ambiguous[row.intent_id] = row.symbol
        try:
            qty = Decimal(str(row.intent.get("qty") or "0"))
        except ArithmeticError:
            qty = Decimal(0)
        p.track(row.intent_id, row.symbol, qty if qty.is_finite() else Decimal(0))
        settled = False
        try:
            settled = await resolve(p, row, may_resend=may_resend)
        finally:
            if not settled:
                p.busy.discard(row.intent_id)
                left += 1
    return left
