"""Cancel resting orders through the executor: one command on the bus, re-sent until answered.

Used by `hean order cancel SYMBOL|LINK_ID|--all` and by `hean up --flatten-on-exit`. The same
`cancel_id` goes out every second, so a command lost on the way is sent again and one already
handled is only answered again (the executor remembers it, see hean.executor.cancel).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

from hean import topics
from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import HeanSettings
from hean.ops.locate import EX_FAILED, EX_OK, EX_UNREACHABLE

T = topics.EventType
RESEND_INTERVAL_S = 1.0
FIND_TIMEOUT_S = 3.0


async def send_cancel(settings: HeanSettings, runtime_dir: Path, request: dict[str, Any], operator: str,
                      timeout: float) -> tuple[int, dict[str, Any]]:
    """(exit code, answer): ORDER_CANCELLED -> 0, ORDER_CANCEL_REJECTED -> 1, nobody there -> 3."""
    cancel_id = "c-" + secrets.token_hex(8)
    answers: dict[str, Event] = {}

    async def on_answer(ev: Event) -> None:
        if ev.type in (T.ORDER_CANCELLED.value, T.ORDER_CANCEL_REJECTED.value) and \
                isinstance(ev.data, dict) and ev.data.get("cancel_id") == cancel_id:
            answers.setdefault(cancel_id, ev)

    sub = Subscriber(settings.bus, runtime_dir, BusStats()).connect("executor")
    sub.on("order.cancel", on_answer)
    pub = Publisher(settings.bus, runtime_dir, "ctl", BusStats()).bind()
    stop = asyncio.Event()
    reader = asyncio.create_task(sub.run(stop))
    try:
        if not await pub.wait_for_subscribers("critical", min(timeout, FIND_TIMEOUT_S)):
            return EX_UNREACHABLE, {"error": f"nothing running is listening on the bus in {runtime_dir} "
                                    "(is `hean up` or the executor running?)"}
        data = {"cancel_id": cancel_id, "operator": operator, **request}
        deadline = time.monotonic() + timeout
        while cancel_id not in answers and time.monotonic() < deadline:
            await pub.publish(topics.cancel_intent(), T.ORDER_CANCEL_INTENT.value, data)
            resend_at = time.monotonic() + RESEND_INTERVAL_S
            while cancel_id not in answers and time.monotonic() < min(resend_at, deadline):
                await asyncio.sleep(0.02)
        ev = answers.get(cancel_id)
        if ev is None:
            return EX_FAILED, {"error": f"no answer from the executor within {timeout:.0f} s", "cancel_id": cancel_id}
        return (EX_OK if ev.type == T.ORDER_CANCELLED.value else EX_FAILED), {"outcome": ev.type, **ev.data}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 5)
        sub.close()
        pub.close()


def cancel_text(result: dict[str, Any]) -> str:
    if result.get("outcome") == T.ORDER_CANCEL_REJECTED.value:
        msg = f" (exchange: {result.get('ret_code')} {result.get('ret_msg')})" if result.get("ret_code") else ""
        return f"cancel refused: {result.get('reason')}{msg}"
    lines = [f"cancelled {len(result.get('cancelled') or [])} order(s)"
             + (f", {len(result['already_gone'])} already closed" if result.get("already_gone") else "")]
    for o in result.get("cancelled") or []:
        lines.append(f"  {o['symbol']} {o['side']} {o['qty']} @ {o['price']}  {o['order_link_id'] or o['order_id']}")
    for o in result.get("failed") or []:
        lines.append(f"  NOT cancelled: {o['symbol']} {o['order_link_id'] or o['order_id']}: "
                     f"{o['ret_code']} {o['ret_msg']}")
    return "\n".join(lines)
