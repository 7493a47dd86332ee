"""The executor's cancel command: the operator cancels resting orders THROUGH the executor.

Why here and not in the CLI: the executor is the one process that sends orders, so it is the one
that withdraws them (one rate limiter, one log of what was sent). A command (topic
`intent.cancel`, ORDER_CANCEL_INTENT) names a `cancel_id` and what to cancel: one orderLinkId,
every open order of a symbol, or every open order (`all`). The sender re-sends the same command
until it hears the answer; a repeated `cancel_id` is answered again with the same result, never
cancelled twice. Answer: ORDER_CANCELLED (`order.cancelled`: what was cancelled, what was
already gone) or ORDER_CANCEL_REJECTED (`order.cancel_rejected`: nothing matched, or the exchange
refused, with its retCode and retMsg). Cancels are allowed in every risk state: they only reduce risk.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from hean import topics
from hean.exchange.bybit import ExchangeUnavailable

log = logging.getLogger("hean.executor.cancel")
T = topics.EventType
GONE = (110001,)          # Bybit: order does not exist or is too late to cancel (already closed)
REMEMBER = 1000           # answered cancel ids kept for re-sent commands

Publish = Callable[[str, str, dict[str, Any]], Awaitable[Any]]


class CancelHandler:
    def __init__(self, client: Any, symbols: tuple[str, ...], publish: Publish) -> None:
        self.client, self.symbols, self.publish = client, tuple(symbols), publish
        self.answers: OrderedDict[str, tuple[str, str, dict[str, Any]]] = OrderedDict()
        self.working: dict[str, asyncio.Task[None]] = {}

    async def on_command(self, ev: Any) -> None:
        data = ev.data if isinstance(ev.data, dict) else {}
        if ev.type != T.ORDER_CANCEL_INTENT.value or not isinstance(data.get("cancel_id"), str):
            return
        cid = data["cancel_id"]
        if cid in self.answers:
            await self.publish(*self.answers[cid])
        elif cid not in self.working:
            self.working[cid] = asyncio.create_task(self._work(cid, data), name=f"cancel-{cid}")

    async def close(self) -> None:
        for task in self.working.values():
            task.cancel()
        await asyncio.gather(*self.working.values(), return_exceptions=True)

    async def _work(self, cid: str, data: dict[str, Any]) -> None:
        try:
            answer = await self._cancel(cid, data)
        except ExchangeUnavailable as exc:
            # Not remembered: the next re-send tries again.
            answer = self._rejected(cid, data, f"exchange unavailable: {exc}")
            self.working.pop(cid, None)
            await self.publish(*answer)
            return
        self.answers[cid] = answer
        while len(self.answers) > REMEMBER:
            self.answers.popitem(last=False)
        self.working.pop(cid, None)
        await self.publish(*answer)

    def _rejected(self, cid: str, data: dict[str, Any], reason: str, **more: Any) -> tuple[str, str, dict[str, Any]]:
        return (topics.order("cancel_rejected"), T.ORDER_CANCEL_REJECTED.value,
                {"cancel_id": cid, "request": _request(data), "reason": reason, **more})

    async def _cancel(self, cid: str, data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        symbol, link = data.get("symbol"), data.get("order_link_id")
        if symbol is not None and symbol not in self.symbols:
            return self._rejected(cid, data, f"{symbol} is not a traded symbol")
        if not (data.get("all") is True or symbol or link):
            return self._rejected(cid, data, "name an order link id, a symbol, or all")
        targets = [o for o in await self.client.open_orders(symbol=symbol)
                   if o.get("symbol") in self.symbols and (not link or o.get("orderLinkId") == link)]
        if not targets:
            return self._rejected(cid, data, "no open order matches" + (f" order link id {link}" if link else ""))
        cancelled, gone, failed = [], [], []
        for o in targets:
            resp = await self.client.cancel_order(symbol=o["symbol"], order_id=o.get("orderId"))
            row = {"symbol": o.get("symbol"), "side": o.get("side"), "qty": o.get("qty"), "price": o.get("price"),
                   "order_id": o.get("orderId"), "order_link_id": o.get("orderLinkId") or ""}
            if resp.ok:
                cancelled.append(row)
            elif resp.ret_code in GONE:
                gone.append(row)
            else:
                failed.append({**row, "ret_code": resp.ret_code, "ret_msg": resp.error or resp.ret_msg})
        log.warning("operator cancel", extra={"cancel_id": cid, "operator": data.get("operator"),
                                              "cancelled": len(cancelled), "gone": len(gone), "failed": len(failed)})
        if failed and not cancelled:
            first = failed[0]
            return self._rejected(cid, data, "the exchange refused the cancel", failed=failed, gone=gone,
                                  ret_code=first["ret_code"], ret_msg=first["ret_msg"])
        return (topics.order("cancelled"), T.ORDER_CANCELLED.value,
                {"cancel_id": cid, "request": _request(data), "cancelled": cancelled, "already_gone": gone,
                 "failed": failed, "operator": data.get("operator")})


def _request(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("symbol", "order_link_id", "all")}
