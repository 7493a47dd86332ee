"""Placement: journal -> gate -> request -> outcome.

Exactly-once rests on three facts: the journal row is committed before the request, the
orderLinkId is a pure function of the intent id, and an unknown outcome is only ever
settled by asking the exchange for that orderLinkId (`resolution`). An order that the
exchange does not know may be sent again with the same orderLinkId; if an earlier copy
lands after all, the exchange answers 110072 (duplicate) and the order is looked up.

The gate is applied twice: when the intent is admitted, and again by the client's
`before_send` check right before each attempt leaves (after the rate-limiter wait and
before each internal retry). An opening order that no longer passes is withdrawn, never
sent: ORDER_BLOCKED_RISK with reason `risk_changed`. It passes only if the gate still
allows at least the size being sent (a SOFT_BRAKE heard meanwhile withdraws a full-size
order; a NORMAL heard meanwhile does not enlarge a braked one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from hean import topics
from hean.exchange.bybit import BybitRestClient, Outcome
from hean.executor import journal as j
from hean.executor import resolution
from hean.executor.gate import (
    DuplicateOrderError,
    FingerprintGuard,
    Intent,
    InvalidIntent,
    RiskView,
    fingerprint,
    parse_intent,
    risk_gate,
    withdraw_reason,
)
from hean.executor.metrics import ExecutorMetrics
from hean.executor.outcomes import RISK_CHANGED, echo, outcome
from hean.ids import order_link_id, valid_intent_id

OUTCOME_LOG_FIELDS = ("intent_id", "order_link_id", "order_id", "symbol", "side", "qty", "reduce_only", "risk_state",
                      "reason", "ret_code")
log = logging.getLogger("hean.executor")
T = topics.EventType
Publish = Callable[[str, str, dict[str, Any]], Awaitable[bool]]
OnPlaced = Callable[[str], None]


class Placer:
    """Owns the journal, the guard and the in-flight requests of one executor."""

    def __init__(self, client: BybitRestClient, journal: j.Journal, guard: FingerprintGuard,
                 metrics: ExecutorMetrics, publish: Publish, view: Callable[[], RiskView],
                 soft_brake_factor: float, symbols: tuple[str, ...], settle_ms: int = 6000,
                 max_age_s: float = 30.0, on_placed: OnPlaced | None = None, exists_search_s: float = 60.0) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self.exists_search_s = exists_search_s
        # How long after the last request an order absent from the exchange is really absent:
        # recv_window plus a second of clock skew.
        self.settle_ms = settle_ms
        # Only configured symbols are tradable: an intent for anything else is an unknown symbol.
        self.instruments = {s: f for s, f in client.instruments.items() if s in symbols}
        self.journal = journal
        self.guard = guard
        self.m = metrics
        self._publish = publish
        self.view = view
        self._on_placed = on_placed
        self._factor = Decimal(str(soft_brake_factor))
        self.busy: set[str] = set()                                # intent ids with a task acting on them
        self.inflight: set[asyncio.Task[None]] = set()
        self.unresolved: dict[str, tuple[str, Decimal]] = {}       # intent id -> (symbol, qty)
        self.ambiguous: dict[str, str] = {}                        # intent id -> symbol, outcome unknown
        self._exported: set[str] = set()

    # --- bookkeeping ---------------------------------------------------------------------
    def track(self, intent_id: str, symbol: str, qty: Decimal) -> None:
        self.unresolved[intent_id] = (symbol, qty)
        self._export()

    def untrack(self, intent_id: str) -> None:
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

    async def finish(self, intent_id: str, state: str, event: dict[str, Any]) -> None:
        """Store the final outcome first, then announce it (a crash in between re-publishes on re-delivery)."""
        self.journal.update(intent_id, state, outcome=event)
        self.ambiguous.pop(intent_id, None)
        self.untrack(intent_id)
        self.busy.discard(intent_id)
        if state == j.PLACED and self._on_placed is not None:
            self._on_placed(str(event["data"].get("symbol")))
        data = event["data"]
        # One line per outcome, with the fields `jq 'select(.order_link_id == "...")'` follows across processes.
        log.info("order outcome", extra={"outcome": event["type"], **{k: data.get(k) for k in OUTCOME_LOG_FIELDS}})
        await self._publish(event["topic"], event["type"], data)

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
                            risk_state=self.view().effective, reason=f"invalid_intent: {exc}")
            self.m.rejected.labels("invalid_intent").inc()
            log.warning("intent rejected", extra={"intent_id": echo(intent_id), "reason": str(exc)})
            if known:
                self.journal.insert(intent_id, link or "", str(raw.get("symbol"))[:32], j.REJECTED, raw, event)
            await self._publish(event["topic"], event["type"], event["data"])
            return
        if type(raw.get("created_ns")) is not int:
            # Stamped on receipt (and journaled with the intent), so it expires like the others.
            raw = dict(raw, created_ns=time.time_ns())
        link = order_link_id(intent.intent_id)
        if not self.journal.insert(intent.intent_id, link, intent.symbol, j.PENDING, raw,
                                   sent_risk_state=self.view().effective):
            return
        self.busy.add(intent.intent_id)
        await self.admit(intent, raw, resend=False)

    async def admit(self, intent: Intent, raw: dict[str, Any], *, resend: bool) -> None:
        """Gate and send an intent whose row is PENDING (fresh, or known to be absent from the exchange)."""
        view = self.view()
        link = order_link_id(intent.intent_id)
        created_ns = raw.get("created_ns")
        if type(created_ns) is int and (time.time_ns() - created_ns) / 1e9 > self.max_age_s:
            # An old intent (redelivered late, or left open across a long outage) is no longer what its
            # sender wants: the strategy runner has given up on it and may have sent a replacement.
            self.m.rejected.labels("expired").inc()
            log.warning("intent expired before it could be sent", extra={
                "intent_id": intent.intent_id, "order_link_id": link, "symbol": intent.symbol,
                "risk_state": view.effective, "age_s": round((time.time_ns() - created_ns) / 1e9, 1)})
            await self.finish(intent.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, raw, qty=intent.qty, link=link,
                risk_state=view.effective, reason="expired"))
            return
        filt = self.instruments[intent.symbol]
        decision = risk_gate(intent, view, self._factor, filt)
        if not decision.allowed:
            reason = decision.reason or view.effective
            self.m.risk_blocked.labels(reason).inc()
            log.info("intent blocked by risk", extra={"intent_id": intent.intent_id, "order_link_id": link,
                                                      "symbol": intent.symbol, "risk_state": view.effective,
                                                      "reason": reason})
            await self.finish(intent.intent_id, j.BLOCKED, outcome(
                topics.order("blocked"), T.ORDER_BLOCKED_RISK, raw, qty=intent.qty, link=link,
                risk_state=view.effective, reason=reason))
            return
        key = fingerprint(intent.symbol, intent.side, decision.qty, intent.price)
        if not resend:  # a resend of the same intent is not a duplicate of itself
            try:
                self.guard.check(key)
            except DuplicateOrderError as exc:
                self.m.duplicates.labels("fingerprint").inc()
                await self.finish(intent.intent_id, j.BLOCKED, outcome(
                    topics.order("blocked"), T.ORDER_BLOCKED_DUPLICATE, raw, qty=decision.qty, link=link,
                    risk_state=view.effective, reason="fingerprint", ret_msg=str(exc)))
                return
        self.guard.record(key)  # at send time: a timeout and a retry under a new id is blocked too
        self.track(intent.intent_id, intent.symbol, decision.qty)
        task = asyncio.create_task(self._send(intent, raw, decision.qty, key), name=f"send:{link}")
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    # --- the request ---------------------------------------------------------------------
    def _send_check(self, intent: Intent, qty: Decimal, state: list[str]) -> Callable[[], str | None]:
        """The client's before_send: the gate once more, as the request is about to leave."""
        filt = self.instruments[intent.symbol]

        def still_allowed() -> str | None:
            view = self.view()
            state[0] = view.effective
            return withdraw_reason(intent, qty, view, self._factor, filt)
        return still_allowed

    async def _send(self, intent: Intent, raw: dict[str, Any], qty: Decimal, key: str) -> None:
        link = order_link_id(intent.intent_id)
        started = time.perf_counter()
        state = [self.view().effective]     # the risk state at the last send-time check
        try:
            resp = await self.client.place_order(
                symbol=intent.symbol, side=intent.side, order_type=intent.order_type, qty=qty, price=intent.price,
                order_link_id=link, reduce_only=intent.reduce_only, time_in_force=intent.time_in_force,
                take_profit=intent.take_profit, stop_loss=intent.stop_loss,
                before_send=self._send_check(intent, qty, state))
        except (ValueError, TypeError) as exc:  # refused by the client before anything was sent
            self.m.rejected.labels("invalid_intent").inc()
            await self.finish(intent.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, raw, qty=qty, link=link, risk_state=state[0],
                reason=f"invalid_intent: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. closed session at shutdown: the outcome is unknown
            log.warning("order request failed locally; resolving", extra={
                "intent_id": intent.intent_id, "order_link_id": link, "symbol": intent.symbol,
                "risk_state": state[0], "error": repr(exc)[:200]})
            await resolution.settle_unknown(self, intent.intent_id, intent.symbol, state[0], exists=False)
            return
        self.m.request_seconds.observe(time.perf_counter() - started)
        common: dict[str, Any] = dict(qty=qty, link=link, risk_state=state[0], ret_code=resp.ret_code,
                                      ret_msg=resp.ret_msg or None)
        if resp.outcome is Outcome.OK:
            self.m.placed.inc()
            await self.finish(intent.intent_id, j.PLACED, outcome(
                topics.order("placed"), T.ORDER_PLACED, raw, order_id=resp.result.get("orderId"), **common))
        elif resp.outcome is Outcome.NOT_SENT:
            # Nothing reached the exchange (earlier attempts, if any, were RETRY_SAFE: not applied).
            self.guard.forget(key)
            self.m.risk_blocked.labels(RISK_CHANGED).inc()
            log.warning("order withdrawn before sending: risk changed", extra={
                "intent_id": intent.intent_id, "order_link_id": link, "symbol": intent.symbol,
                "risk_state": state[0], "gate": resp.ret_msg})
            await self.finish(intent.intent_id, j.BLOCKED, outcome(
                topics.order("blocked"), T.ORDER_BLOCKED_RISK, raw, qty=qty, link=link, risk_state=state[0],
                reason=RISK_CHANGED, ret_msg=resp.ret_msg or None))
        elif resp.outcome is Outcome.REJECTED:
            self.m.rejected.labels("exchange_rejected").inc()
            await self.finish(intent.intent_id, j.REJECTED, outcome(
                topics.order("rejected"), T.ORDER_REJECTED, raw, reason="exchange_rejected", **common))
        else:
            exists = resp.outcome is Outcome.DUPLICATE  # an order with this id exists; only the orderId is missing
            if not exists:
                log.warning("order outcome unknown; resolving by orderLinkId", extra={
                    "intent_id": intent.intent_id, "order_link_id": link, "symbol": intent.symbol,
                    "risk_state": state[0], "outcome": resp.outcome.value,
                    "ret_code": resp.ret_code, "http_status": resp.http_status, "error": resp.error})
            await resolution.settle_unknown(self, intent.intent_id, intent.symbol, state[0], exists=exists)

    # --- resolution (see `resolution`) ---------------------------------------------------
    async def resolve(self, row: j.JournalRow, *, may_resend: bool = True) -> bool:
        return await resolution.resolve(self, row, may_resend=may_resend)

    async def resolve_open(self, *, may_resend: bool) -> int:
        return await resolution.resolve_open(self, may_resend=may_resend)
