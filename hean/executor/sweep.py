"""While QUARANTINE or HARD_STOP holds, no opening order rests on the exchange.

One cancel-all is not enough: Bybit acknowledges it before it is done (asynchronous;
`success` "0" on failure; for futures at most 500 orders per call), and an order whose
request was already on the wire lands after it. So the sweep lists the open orders of
every configured symbol (`order/realtime`), cancels the opening ones, and lists again
until none is left; then, while the state holds, it keeps sweeping slowly for late
landings (and at once when the executor hears of a placement). Reduce-only and
close-on-trigger orders stay: they can only shrink exposure and may be the way out.
A symbol without any of those is cleared with one cancel-all, otherwise order by order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hean import topics
from hean.exchange.bybit import BybitRestClient, ExchangeUnavailable
from hean.exchange.bybit import constants as c
from hean.executor import journal as j
from hean.executor.gate import REDUCE_ONLY_STATES
from hean.executor.metrics import ExecutorMetrics
from hean.executor.outcomes import outcome

log = logging.getLogger("hean.executor")
T = topics.EventType
Publish = Callable[[str, str, dict[str, Any]], Awaitable[bool]]
SLOW_SWEEP_S = 2.0          # while the state holds and nothing rests: look again this often
RETRY_MAX_S = 5.0           # after a failed or unverified sweep: back off up to this
# order/cancel answers for an order that is already gone (filled, cancelled, unknown).
_GONE = frozenset({c.RET_ORDER_NOT_EXISTS, c.RET_ORDER_FINISHED, c.RET_ORDER_CANCELLED})


def closes_only(order: dict[str, Any]) -> bool:
    """An order that can only reduce the position (it may stay through QUARANTINE/HARD_STOP)."""
    return order.get("reduceOnly") is True or order.get("closeOnTrigger") is True


class OpeningOrderSweep:
    """Runs while `state()` is QUARANTINE or HARD_STOP; `kick()` asks for a sweep now."""

    def __init__(self, client: BybitRestClient, journal: j.Journal, symbols: tuple[str, ...],
                 publish: Publish, metrics: ExecutorMetrics, state: Callable[[], str | None]) -> None:
        self.client = client
        self.journal = journal
        self.symbols = symbols
        self._publish = publish
        self.m = metrics
        self._state = state
        self._wake = asyncio.Event()
        self._announced: set[str] = set()     # orderIds announced ORDER_CANCELLED

    def kick(self) -> None:
        self._wake.set()

    def holds(self) -> bool:
        return self._state() in REDUCE_ONLY_STATES

    async def run(self) -> None:
        failures = 0
        while self.holds():
            try:
                clean = await self.sweep_once()
            except ExchangeUnavailable as exc:
                clean = False
                log.error("open-order sweep could not list orders; retrying", extra={"error": str(exc)})
            failures = 0 if clean else failures + 1
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), SLOW_SWEEP_S if clean else min(0.2 * failures, RETRY_MAX_S))
            except TimeoutError:
                pass

    async def sweep_once(self) -> bool:
        """True when every symbol was listed with no opening order resting (nothing had to be cancelled)."""
        clean = True
        for symbol in self.symbols:
            resting = await self.client.open_orders(symbol=symbol)
            opening = [o for o in resting if not closes_only(o)]
            self.m.resting_opening.labels(symbol).set(len(opening))
            if not opening:
                continue
            clean = False
            state = str(self._state())
            log.warning("opening orders resting under a reduce-only risk state: cancelling", extra={
                "symbol": symbol, "count": len(opening), "risk_state": state})
            if len(opening) == len(resting):
                await self._cancel_all(symbol, state)
            else:
                for order in opening:
                    await self._cancel_one(symbol, order, state)
        return clean

    async def _cancel_all(self, symbol: str, state: str) -> None:
        resp = await self.client.cancel_all(symbol=symbol)
        items = resp.result.get("list") if resp.ok else None
        if resp.ok and str(resp.result.get("success")) == "1" and isinstance(items, list):
            self.m.cancel_all.labels("ok").inc()
            for item in items:
                if isinstance(item, dict):
                    await self._announce(item, state)
            return
        self.m.cancel_all.labels("failed").inc()
        log.error("cancel-all failed; will verify and retry", extra={
            "symbol": symbol, "ret_code": resp.ret_code, "ret_msg": resp.ret_msg, "error": resp.error,
            "success": resp.result.get("success")})

    async def _cancel_one(self, symbol: str, order: dict[str, Any], state: str) -> None:
        resp = await self.client.cancel_order(symbol=symbol, order_id=str(order.get("orderId") or ""),
                                              order_link_id=str(order.get("orderLinkId") or "") or None)
        if resp.ok:
            self.m.cancels.labels("ok").inc()
            await self._announce(order, state)
        elif resp.ret_code in _GONE:
            self.m.cancels.labels("gone").inc()
        else:
            self.m.cancels.labels("failed").inc()
            log.error("order cancel failed; will verify and retry", extra={
                "symbol": symbol, "order_id": order.get("orderId"), "ret_code": resp.ret_code,
                "ret_msg": resp.ret_msg, "error": resp.error})

    async def _announce(self, item: dict[str, Any], state: str) -> None:
        """ORDER_CANCELLED once per order, for HEAN's own orders (found in the journal by orderLinkId)."""
        order_id = str(item.get("orderId") or "")
        link = str(item.get("orderLinkId") or "")
        row = self.journal.by_link_id(link) if link else None
        if row is None or order_id in self._announced:
            return
        self._announced.add(order_id)
        event = outcome(topics.order("cancelled"), T.ORDER_CANCELLED, row.intent, qty=None, link=link,
                        risk_state=state, order_id=order_id or None, reason=state)
        await self._publish(event["topic"], event["type"], event["data"])
