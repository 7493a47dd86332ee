"""Closing one stale position by REST: reduce-only market orders until it is flat.

Each order is one attempt with its own link id (derived from the position's
opening and the attempt number, see core.close_link_id). An order is sent only
once the previous one is known final and a re-read shows the SAME position still
open (a position that went flat and re-opened meanwhile has its own age): a close larger than ``maxMktOrderQty`` goes
out as several orders in turn, a partly filled one (thin book: ``Cancelled`` with
``cumExecQty`` > 0) is progress and the remainder follows at once (one that
filled nothing waits for the next check), and 110017 on a reduce-only order means
"already flat or smaller": the position is re-read, not escalated. Only an
attempt that ended with nothing filled while the position is still open counts
as a failure for the escalation ladder, and any fill starts the count again (a
thin book emptied by our own last order is not a broken close): after
`close_attempts_before_escalation` failures in a row the symbol's open orders are
cancelled (a resting reduce-only order can block a close); one more failure raises
WATCHDOG_ALERT and asks the risk governor for QUARANTINE. After a restart, the
attempts already on the exchange are found by their link ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hean import topics
from hean.exchange.bybit import BybitRestClient
from hean.exchange.bybit.constants import RET_QTY_TRUNCATED_TO_ZERO
from hean.exchange.bybit.errors import ExchangeUnavailable, Outcome
from hean.watchdog.core import MAX_ATTEMPT, PositionAge, close_order_for, close_qty

log = logging.getLogger("hean.watchdog")

REASON = "max_hold_seconds_exceeded"
MAX_ORDERS_PER_CHECK = 50  # a bound on one check's work; the next check carries on
SETTLE_POLLS, SETTLE_POLL_S = 20, 0.05  # a market order is final within moments
_OPEN_STATUSES = {"New", "PartiallyFilled", "Untriggered", "Created", "Triggered"}

Publish = Callable[[str, str, dict[str, Any]], Awaitable[None]]
CurrentSize = Callable[[PositionAge], Awaitable[Decimal]]
Identity = tuple[str, str, str, int]


@dataclass
class _Tracked:
    """What the watchdog knows about closing one position (keyed by its identity)."""

    attempt: int = 0  # last attempt number sent; 0 = none
    pending: int | None = None  # attempt sent whose final state is not known yet
    recovered: bool = False  # attempts already on the exchange were looked up
    failed: set[int] = field(default_factory=set)
    cancelled_at: int | None = None  # len(failed) when the symbol's orders were cancelled
    escalated: bool = False

    def progress(self) -> None:
        """Something filled: the escalation ladder counts failures since the last progress only."""
        self.failed.clear()
        self.cancelled_at = None


def identity(pos: PositionAge) -> Identity:
    return pos.symbol, pos.side, pos.opening.key, pos.position_idx


def direction(pos: PositionAge) -> str:
    return "long" if pos.side == "Buy" else "short"


def age_facts(pos: PositionAge) -> dict[str, Any]:
    """What the watchdog knows about a position's age, for events and logs."""
    o = pos.opening
    return {"age_s": round(pos.age_s, 3), "age_source": o.source, "opened_ms": o.time_ms,
            "opening_exec_id": o.exec_id, "open_time_ms": o.time_ms if o.source == "open_time" else None,
            "age_lower_bound": o.lower_bound, "created_time_ms": pos.created_ms or None}


class Closer:
    def __init__(self, client: BybitRestClient, metrics: Any, *, escalate_after: int, max_hold_s: float,
                 publish: Publish, current_size: CurrentSize) -> None:
        self.client, self.metrics, self.publish, self.current_size = client, metrics, publish, current_size
        self.escalate_after, self.max_hold_s = escalate_after, max_hold_s
        self._tracked: dict[Identity, _Tracked] = {}

    def forget_except(self, keep: set[Identity]) -> None:
        self._tracked = {k: v for k, v in self._tracked.items() if k in keep}

    async def close(self, pos: PositionAge, row: Any) -> bool:
        """Work on closing `pos` until flat, or until an order must be waited for; False on failure."""
        st = self._tracked.setdefault(identity(pos), _Tracked())
        fields = {"symbol": pos.symbol, "side": direction(pos), "size": format(pos.size, "f"),
                  "max_hold_s": self.max_hold_s} | age_facts(pos)
        log.warning(f"STALE POSITION DETECTED: {pos.symbol} {direction(pos)} size={pos.size} held for "
                    f"{pos.age_s:.0f}s (max: {self.max_hold_s}s). Force closing...", extra=fields)
        size = pos.size
        try:
            if not st.recovered:
                st.attempt = await self._attempts_on_exchange(pos)
                st.pending, st.recovered = st.attempt or None, True
            for _ in range(MAX_ORDERS_PER_CHECK):
                if st.pending is not None:
                    attempt = st.pending
                    verdict = await self._settle(pos, st)
                    if verdict == "open":
                        return True
                    size = await self._current_size(pos)
                    if size == 0:
                        log.info("force-closed position is flat", extra=fields | {"size": "0"})
                        return True
                    if verdict != "unfilled":
                        st.progress()
                    else:  # nothing filled: try again next check, do not hammer
                        st.failed.add(attempt)
                        await self._after_failure(pos, row, st)
                        return False
                if st.attempt >= MAX_ATTEMPT:
                    await self._error(pos, row, "Force close gave up: attempt numbers exhausted", None)
                    return False
                outcome = await self._send(pos, row, st, size, fields)
                if outcome == "sent":
                    continue
                if outcome == "smaller":
                    size = await self._current_size(pos)
                    if size == 0:
                        return True
                    continue
                return False
        except ExchangeUnavailable as exc:
            await self._error(pos, row, f"Force close lookup failed: {exc}", None)
            return False
        return True

    async def _send(self, pos: PositionAge, row: Any, st: _Tracked, size: Decimal,
                    fields: dict[str, Any]) -> str:
        """Send the next attempt for (at most) `size`: 'sent', 'smaller' (110017 but shrunk) or 'failed'."""
        f = self.client.instruments.get(pos.symbol)
        qty = close_qty(size, f.max_mkt_qty if f else None, f.qty_step if f else None)
        attempt = st.attempt + 1
        order = close_order_for(pos, attempt, qty=qty)
        link = order.order_link_id
        log.warning(f"FORCE CLOSING POSITION: {pos.symbol} {direction(pos)} size={size} via {order.side} "
                    f"market order qty={qty}", extra=fields | {"order_link_id": link, "qty": format(qty, "f")})
        resp = await self.client.place_order(symbol=order.symbol, side=order.side, order_type="Market",
                                             qty=qty, price=None, order_link_id=link, reduce_only=True)
        st.attempt = attempt
        if resp.outcome in (Outcome.OK, Outcome.DUPLICATE):
            st.pending = attempt
            order_id = resp.result.get("orderId")
            self.metrics.closes.labels("placed" if resp.ok else "duplicate").inc()
            log.info(f"Force close order placed: {order_id} {pos.symbol} {order.side} {qty}",
                     extra=fields | {"order_id": order_id, "order_link_id": link, "attempt": attempt})
            await self.publish(topics.watchdog("force_closed"), topics.EventType.POSITION_FORCE_CLOSED.value,
                               {"position": row, "reason": REASON, "order_id": order_id, "order_link_id": link,
                                "symbol": pos.symbol, "side": direction(pos), "size": format(size, "f"),
                                "qty": format(qty, "f"), "attempt": attempt} | age_facts(pos))
            return "sent"
        if resp.ret_code == RET_QTY_TRUNCATED_TO_ZERO:
            current = await self._current_size(pos)
            log.info("reduce-only close refused (110017): re-reading the position",
                     extra=fields | {"order_link_id": link, "current_size": format(current, "f")})
            if current < size:
                self.metrics.closes.labels("already_smaller").inc()
                return "smaller"
        self.metrics.closes.labels("ambiguous" if resp.outcome is Outcome.AMBIGUOUS else "failed").inc()
        detail = f"{resp.outcome.value} retCode={resp.ret_code} {resp.error or resp.ret_msg}"
        await self._error(pos, row, f"Force close failed: {detail}", link)
        if resp.outcome is Outcome.AMBIGUOUS:
            st.pending = attempt  # judged by its lookup next time
        else:
            st.failed.add(attempt)
            await self._after_failure(pos, row, st)
        return "failed"

    async def _settle(self, pos: PositionAge, st: _Tracked) -> str:
        """Wait briefly for attempt `st.pending` to be final: 'open', 'filled', 'partial' or 'unfilled'."""
        assert st.pending is not None
        link = close_order_for(pos, st.pending).order_link_id
        for poll in range(SETTLE_POLLS):
            found = await self.client.query_order(order_link_id=link)
            status = None if found is None else found.get("orderStatus")
            if status not in _OPEN_STATUSES:
                break
            await asyncio.sleep(SETTLE_POLL_S)
        else:
            log.info("previous force close still open; waiting",
                     extra={"symbol": pos.symbol, "order_link_id": link, "status": status})
            return "open"
        st.pending = None
        filled = Decimal(str((found or {}).get("cumExecQty") or "0"))
        verdict = "filled" if status == "Filled" else ("partial" if filled > 0 else "unfilled")
        self.metrics.close_results.labels(verdict).inc()
        log.info(f"force close order final: {status}", extra={"symbol": pos.symbol, "order_link_id": link,
                                                             "status": status, "cum_exec_qty": format(filled, "f"),
                                                             "verdict": verdict})
        return verdict

    async def _current_size(self, pos: PositionAge) -> Decimal:
        """The position's size now; 0 once it is flat or another position (own opening, own age)."""
        return await self.current_size(pos)

    async def _attempts_on_exchange(self, pos: PositionAge) -> int:
        """Highest attempt number already on the exchange for this position (after a restart)."""
        attempt = 0
        while attempt < MAX_ATTEMPT:
            link = close_order_for(pos, attempt + 1).order_link_id
            if await self.client.query_order(order_link_id=link) is None:
                return attempt
            attempt += 1
        return attempt

    async def _after_failure(self, pos: PositionAge, row: Any, st: _Tracked) -> None:
        """Escalation ladder: cancel the symbol's orders, then alert and ask for QUARANTINE."""
        failures = len(st.failed)
        if st.cancelled_at is None and failures >= self.escalate_after:
            resp = await self.client.cancel_all(symbol=pos.symbol)
            st.cancelled_at = failures
            log.warning("force close keeps failing; cancelled the symbol's open orders before retrying",
                        extra={"symbol": pos.symbol, "failures": failures, "cancel_outcome": resp.outcome.value})
        elif st.cancelled_at is not None and failures > st.cancelled_at and not st.escalated:
            st.escalated = True
            self.metrics.alerts.inc()
            detail = {"symbol": pos.symbol, "side": direction(pos), "size": format(pos.size, "f"),
                      "failed_attempts": failures} | age_facts(pos)
            log.critical("force close failed even after cancelling open orders; asking risk for QUARANTINE",
                         extra=detail)
            await self.publish(topics.watchdog("alert"), topics.EventType.WATCHDOG_ALERT.value,
                               {"kind": "close_failed", "position": row, **detail})
            await self.publish(topics.risk_control("request"), topics.EventType.RISK_REQUEST.value,
                               {"state": "QUARANTINE", "reason": "WATCHDOG_CLOSE_FAILED", "source": "watchdog",
                                "detail": detail})

    async def _error(self, pos: PositionAge, row: Any, error: str, link: str | None) -> None:
        self.metrics.errors.inc()
        log.error(f"Failed to force close position {pos.symbol} {direction(pos)}",
                  extra={"error": error[:300], "symbol": pos.symbol, "order_link_id": link})
        await self.publish(topics.watchdog("error"), topics.EventType.ERROR.value,
                           {"error": error[:300], "position": row, "symbol": pos.symbol, "order_link_id": link})
