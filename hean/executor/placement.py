"""Placement: journal -> gate -> request -> outcome, and resolution of unknown outcomes.

Exactly-once rests on three facts: the journal row is committed before the request, the
orderLinkId is a pure function of the intent id, and an unknown outcome is only ever
settled by asking the exchange for that orderLinkId. An order that the exchange does
not know may be sent again with the same orderLinkId; if an earlier copy lands after
all, the exchange answers 110072 (duplicate) and that is read as "placed".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from hean import topics
from hean.exchange.bybit import BybitRestClient, ExchangeUnavailable, Outcome, decimal_str
from hean.executor import journal as j
from hean.executor.gate import (
    DuplicateOrderError,
    FingerprintGuard,
    Intent,
    InvalidIntent,
    RiskView,
    fingerprint,
    parse_intent,
    risk_gate,
)
from hean.executor.metrics import ExecutorMetrics
from hean.ids import order_link_id, valid_intent_id

log = logging.getLogger("hean.executor")
T = topics.EventType
Publish = Callable[[str, str, dict[str, Any]], Awaitable[bool]]


def _text(value: Any) -> Any:
    """Echo a raw intent field into an event: JSON-safe, floats and odd types turned to text."""
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) else value[:64]
    return str(value)[:64]


def outcome(topic: str, type_: T, raw: dict[str, Any], *, qty: Decimal | None, link: str | None,
            risk_state: str, order_id: str | None = None, reason: str | None = None,
            ret_code: int | None = None, ret_msg: str | None = None) -> dict[str, Any]:
    """An outcome event (topic, type, data) as published and as stored in the journal."""
    data = {k: _text(raw.get(k)) for k in ("intent_id", "strategy_id", "symbol", "side", "order_type", "price")}
    data.update(qty=decimal_str(qty) if qty is not None else _text(raw.get("qty")),
                reduce_only=raw.get("reduce_only") is True, order_link_id=link, order_id=order_id,
                reason=reason, ret_code=ret_code, ret_msg=ret_msg, risk_state=risk_state)
    return {"topic": topic, "type": type_.value, "data": data}


class Placer:
    """Owns the journal, the guard and the in-flight requests of one executor."""

    def __init__(self, client: BybitRestClient, journal: j.Journal, guard: FingerprintGuard,
                 metrics: ExecutorMetrics, publish: Publish, view: Callable[[], RiskView],
                 soft_brake_factor: float, symbols: tuple[str, ...], settle_ms: int = 6000,
                 max_age_s: float = 30.0) -> None:
        self.client = client
        self.max_age_s = max_age_s
        # How long after the last request an order absent from the exchange is really absent:
        # recv_window plus a second of clock skew.
        self.settle_ms = settle_ms
        # Only configured symbols are tradable: an intent for anything else is an unknown symbol.
        self.instruments = {s: f for s, f in client.instruments.items() if s in symbols}
        self.journal = journal
        self.guard = guard
        self.m = metrics
        self._publish = publish
        self._view = view
        self._factor = Decimal(str(soft_brake_factor))
        self.busy: set[str] = set()                                # intent ids with a task acting on them
        self.inflight: set[asyncio.Task[None]] = set()
        self.unresolved: dict[str, tuple[str, Decimal]] = {}       # intent id -> (symbol, qty)
        self.ambiguous: dict[str, str] = {}                        # intent id -> symbol, outcome unknown
        self._exported: set[str] = set()
        self.resolve_now = asyncio.Event()

    # --- bookkeeping ---------------------------------------------------------------------
    def _track(self, intent_id: str, symbol: str, qty: Decimal) -> None:
        self.unresolved[intent_id] = (symbol, qty)
        self._export()

    def _untrack(self, intent_id: str) -> None:
        self.unresolved.pop(intent_id, None)
        self._export()

    def _export(self) -> None:
        self.m.unresolved.set(len(self.unresolved))
        self._exported.update(s for s, _ in self.unresolved.values())
        for symbol in self._exported:  # symbols that went back to zero are exported as 0, not left stale
            self.m.exposure.labels(symbol).set(float(self.exposure(symbol)))

    def exposure(self, symbol: str) -> Decimal:
        """Quantity of orders on `symbol` in flight or of unknown outcome (at full size)."""
        return sum((q for s, q in self.unresolved.values() if s == symbol), Decimal(0))

    @property
    def ambiguous_symbols(self) -> frozenset[str]:
        """Symbols with an order whose outcome is unknown: no new opening orders there until resolved."""
        return frozenset(self.ambiguous.values())

    async def _finish(self, intent_id: str, state: str, event: dict[str, Any]) -> None:
        """Store the final outcome first, then announce it (a crash in between re-publishes on re-delivery)."""
        self.journal.update(intent_id, state, outcome=event)
        self.ambiguous.pop(intent_id, None)
        self._untrack(intent_id)
        self.busy.discard(intent_id)
        await self._publish(event["topic"], event["type"], event["data"])

    # --- intake --------------------------------------------------------------------------
    async def on_intent(self, data: Any) -> None:
        """Handle one ORDER_INTENT payload; never raises for a bad intent."""
        self.m.intents.inc()
        raw = data if isinstance(data, dict) else {}
        intent_id = raw.get("intent_id")
        known = valid_intent_id(intent_id)
        if known:
            row = self.journal.get(intent_id)
            if row is not None:
                self.m.duplicates.labels("same_intent").inc()
                if row.final and row.outcome is not None:  # answer from the journal; in flight: outcome follows
                    await self._publish(row.outcome["topic"], row.outcome["type"], row.outcome["data"])
                return
        try:
            intent = parse_intent(data, self.instruments)
        except InvalidIntent as exc:
            link = order_link_id(intent_id) if known else None
            event = outcome(topics.order("rejected"), T.ORDER_REJECTED, raw, qty=None, link=link,
                            risk_state=self._view().effective, reason=f"invalid_intent: {exc}")
            self.m.rejected.labels("invalid_intent").inc()
            log.warning("intent rejected", extra={"intent_id": _text(intent_id), "reason": str(exc)})
            if known:
                self.journal.insert(intent_id, link or "", str(raw.get("symbol"))[:32], j.REJECTED, raw, event)
            await self._publish(event["topic"], event["type"], event["data"])
            return
        link = order_link_id(intent.intent_id)
        if not self.journal.insert(intent.intent_id, link, intent.symbol, j.PENDING, raw):
            return
        self.busy.add(intent.intent_id)
        await self.admit(intent, raw, resend=False)

    async def admit(self, intent: Intent, raw: dict[str, Any], *, resend: bool) -> None:
        """Gate and send an intent whose row is PENDING (fresh, or known to be absent from the exchange)."""
        view = self._view()
        link = order_link_id(intent.intent_id)
        created_ns = raw.get("created_ns")
        if type(created_ns) is int and (time.time_ns() - created_ns) / 1e9 > self.max_age_s:
            # An old intent (redelivered late, or left open across a long outage) is no longer what its
            # sender wants: the strategy runner has given up on it and may have sent a replacement.
            self.m.rejected.labels("expired").inc()
            log.warning("intent expired before it could be sent", extra={
                "intent_id": intent.intent_id, "age_s": round((time.time_ns() - created_ns) / 1e9, 1)})
            await self._finish(intent.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, raw, qty=intent.qty, link=link,
                risk_state=view.effective, reason="expired"))
            return
        filt = self.instruments[intent.symbol]
        decision = risk_gate(intent, view, self._factor, filt)
        if not decision.allowed:
            reason = decision.reason or view.effective
            self.m.risk_blocked.labels(reason).inc()
            log.info("intent blocked by risk", extra={"intent_id": intent.intent_id, "reason": reason})
            await self._finish(intent.intent_id, j.BLOCKED, outcome(
                topics.order("blocked"), T.ORDER_BLOCKED_RISK, raw, qty=intent.qty, link=link,
                risk_state=view.effective, reason=reason))
            return
        key = fingerprint(intent.symbol, intent.side, decision.qty, intent.price)
        if not resend:  # a resend of the same intent is not a duplicate of itself
            try:
                self.guard.check(key)
            except DuplicateOrderError as exc:
                self.m.duplicates.labels("fingerprint").inc()
                await self._finish(intent.intent_id, j.BLOCKED, outcome(
                    topics.order("blocked"), T.ORDER_BLOCKED_DUPLICATE, raw, qty=decision.qty, link=link,
                    risk_state=view.effective, reason="fingerprint", ret_msg=str(exc)))
                return
        self.guard.record(key)  # at send time: a timeout and a retry under a new id is blocked too
        self._track(intent.intent_id, intent.symbol, decision.qty)
        task = asyncio.create_task(self._send(intent, raw, decision.qty, view.effective), name=f"send:{link}")
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    # --- the request ---------------------------------------------------------------------
    async def _send(self, intent: Intent, raw: dict[str, Any], qty: Decimal, risk_state: str) -> None:
        link = order_link_id(intent.intent_id)
        started = time.perf_counter()
        try:
            resp = await self.client.place_order(
                symbol=intent.symbol, side=intent.side, order_type=intent.order_type, qty=qty, price=intent.price,
                order_link_id=link, reduce_only=intent.reduce_only, time_in_force=intent.time_in_force,
                take_profit=intent.take_profit, stop_loss=intent.stop_loss)
        except (ValueError, TypeError) as exc:  # refused by the client before anything was sent
            self.m.rejected.labels("invalid_intent").inc()
            await self._finish(intent.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, raw, qty=qty, link=link, risk_state=risk_state,
                reason=f"invalid_intent: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. closed session at shutdown: the outcome is unknown
            log.warning("order request failed locally; resolving", extra={"intent_id": intent.intent_id,
                                                                          "error": repr(exc)[:200]})
            await self._unknown(intent.intent_id, intent.symbol)
            return
        self.m.request_seconds.observe(time.perf_counter() - started)
        common: dict[str, Any] = dict(qty=qty, link=link, risk_state=risk_state, ret_code=resp.ret_code,
                                      ret_msg=resp.ret_msg or None)
        if resp.outcome is Outcome.OK:
            self.m.placed.inc()
            await self._finish(intent.intent_id, j.PLACED, outcome(
                topics.order("placed"), T.ORDER_PLACED, raw, order_id=resp.result.get("orderId"), **common))
        elif resp.outcome is Outcome.REJECTED:
            self.m.rejected.labels("exchange_rejected").inc()
            await self._finish(intent.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, raw, reason="exchange_rejected", **common))
        else:
            if resp.outcome is not Outcome.DUPLICATE:  # DUPLICATE is known-placed; only the orderId is missing
                log.warning("order outcome unknown; resolving by orderLinkId", extra={
                    "intent_id": intent.intent_id, "order_link_id": link, "outcome": resp.outcome.value,
                    "ret_code": resp.ret_code, "http_status": resp.http_status, "error": resp.error})
            await self._unknown(intent.intent_id, intent.symbol, count=resp.outcome is not Outcome.DUPLICATE)

    async def _unknown(self, intent_id: str, symbol: str, *, count: bool = True) -> None:
        if count:
            self.m.ambiguous.inc()
        self.journal.update(intent_id, j.UNKNOWN)
        self.ambiguous[intent_id] = symbol
        row = self.journal.get(intent_id)
        # First lookup at once; if the exchange cannot answer, the resolve loop owns the row from now on.
        if row is None or not await self.resolve(row):
            self.busy.discard(intent_id)

    # --- resolution ----------------------------------------------------------------------
    async def resolve(self, row: j.JournalRow, *, may_resend: bool = True) -> bool:
        """Settle an open row by asking the exchange for its orderLinkId; True when settled."""
        try:
            found = await self.client.query_order(order_link_id=row.order_link_id)
        except ExchangeUnavailable as exc:
            self.m.resolve_failures.inc()
            log.warning("order lookup failed; will retry", extra={"intent_id": row.intent_id, "error": str(exc)})
            return False
        if found is None and not may_resend:
            return False
        if found is None and j.now_ms() < row.updated_ms + self.settle_ms:
            # A request signed just now may still be on its way to the matching engine. Bybit refuses a
            # request older than its recv_window, so "absent" is only final once that window has passed.
            return False
        current = self.journal.get(row.intent_id)
        if current is None or current.final:
            return True     # settled meanwhile by another path: never send a finished intent again
        view = self._view()
        if found is not None:
            self.m.resolved.labels("placed").inc()
            self.m.placed.inc()
            log.info("unresolved order found on the exchange", extra={
                "intent_id": row.intent_id, "order_link_id": row.order_link_id, "order_id": found.get("orderId")})
            qty = Decimal(str(found.get("qty") or "0")) or None
            await self._finish(row.intent_id, j.PLACED, outcome(
                topics.order("placed"), T.ORDER_PLACED, row.intent, qty=qty, link=row.order_link_id,
                risk_state=view.effective, order_id=found.get("orderId")))
            return True
        self.m.resolved.labels("absent").inc()
        log.info("unresolved order absent from the exchange; sending it", extra={"intent_id": row.intent_id})
        self.journal.update(row.intent_id, j.PENDING)
        self.ambiguous.pop(row.intent_id, None)
        self._untrack(row.intent_id)
        self.busy.add(row.intent_id)
        try:
            intent = parse_intent(row.intent, self.instruments)
        except InvalidIntent as exc:
            self.m.rejected.labels("invalid_intent").inc()
            await self._finish(row.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, row.intent, qty=None, link=row.order_link_id,
                risk_state=view.effective, reason=f"invalid_intent: {exc}"))
            return True
        await self.admit(intent, row.intent, resend=True)
        return True

    async def resolve_open(self, *, may_resend: bool) -> int:
        """One pass over every open row nobody is working on; returns how many are still open.

        may_resend=False (start-up, before risk is known) only settles rows found on the exchange.
        """
        left = 0
        for listed in self.journal.open_rows():
            if listed.intent_id in self.busy:
                continue
            # The list was read before earlier lookups awaited: re-read, the row may be final by now.
            row = self.journal.get(listed.intent_id)
            if row is None or row.final:
                continue
            self.busy.add(row.intent_id)
            # Until it is settled, the order counts as existing, at full size.
            self.ambiguous[row.intent_id] = row.symbol
            try:
                qty = Decimal(str(row.intent.get("qty") or "0"))
            except ArithmeticError:
                qty = Decimal(0)
            self._track(row.intent_id, row.symbol, qty if qty.is_finite() else Decimal(0))
            settled = False
            try:
                settled = await self.resolve(row, may_resend=may_resend)
            finally:
                if not settled:
                    self.busy.discard(row.intent_id)
                    left += 1
        return left
