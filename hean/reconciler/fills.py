"""Fills: record in the ledger, publish each once, replay what a killed run may not have sent (a mixin).

Fills and transfers are also kept for a late joiner (hean.bus.latejoin): a consumer that reconnects
after this process restarted gets the last seconds of them again, flagged `replay: true`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hean import topics
from hean.ids import is_hean_link_id
from hean.reconciler.diff import is_fill
from hean.reconciler.events import fill_event, order_from_execution

if TYPE_CHECKING:
    from hean.reconciler.service import ReconcilerService

log = logging.getLogger("hean.reconciler")
ET = topics.EventType
REPLAY_WINDOW_S = 5.0     # at start, re-publish fills the previous run marked in its last seconds
ONCE_ONLY_TOPICS = (topics.fill(""), topics.transfer())   # re-sent to a late joiner (hean.bus.latejoin)


class FillsMixin:
    """Exactly-once fill publication on top of hean.reconciler.ledger (see its docstring)."""

    async def publish_fill(self: ReconcilerService, row: dict[str, Any], source: str, *, replay: bool = False) -> None:
        """Publish one recorded Trade row, then mark it; a row already on its way is skipped."""
        assert self.ledger is not None
        exec_id = str(row["execId"])
        if exec_id in self._inflight:
            return
        self._inflight.add(exec_id)
        try:
            topic, data = topics.fill(str(row.get("symbol"))), fill_event(row, source, replay=replay)
            await self.publish(topic, ET.ORDER_FILLED.value, data)
            self.ledger.mark_published([exec_id])
            self.late_join.remember(topic, ET.ORDER_FILLED.value, data)
            self.m.fills.labels(source).inc()
        finally:
            self._inflight.discard(exec_id)

    async def publish_pending(self: ReconcilerService, *, replay: bool = False) -> None:
        """Publish rows recorded but never marked (kill -9 after insert, or a failed publish).

        At start-up (`replay=True`) such a row may already have gone out just before the kill, so
        it is flagged as a replay.
        """
        assert self.ledger is not None
        for row, source in self.ledger.pending():
            if str(row.get("execId")) in self._inflight:
                continue
            await self.publish_fill(row, source, replay=replay)
            if replay:
                self.m.republished.inc()

    async def replay_tail(self: ReconcilerService) -> None:
        """Re-publish the previous run's last few seconds of fills: its socket may have died holding them."""
        assert self.ledger is not None
        rows = self.ledger.recent_published(REPLAY_WINDOW_S)
        for row, source in rows:
            topic, data = topics.fill(str(row.get("symbol"))), fill_event(row, source, replay=True)
            await self.publish(topic, ET.ORDER_FILLED.value, data)
            self.late_join.remember(topic, ET.ORDER_FILLED.value, data)
            self.m.republished.inc()
        if rows:
            log.info("re-published the tail of the previous run's fills", extra={"fills": len(rows),
                                                                                "window_s": REPLAY_WINDOW_S})

    async def record(self: ReconcilerService, rows: list[dict[str, Any]], source: str) -> None:
        assert self.ledger is not None
        for row in self.ledger.insert_many(rows, source):
            self.executions_recorded += 1
            self.m.executions.labels(str(row.get("execType"))).inc()
            self.m.observe_execution(row)
            if is_fill(row):
                await self.publish_fill(row, source)
                # A foreign order filled while the WS was down is seen only here, never as an open order.
                if row.get("orderId") and not is_hean_link_id(str(row.get("orderLinkId") or "")):
                    await self.flag_foreign("order", str(row["orderId"]), order_from_execution(row))

