"""A read-only bus listener that counts what the system did (`hean up` summary) and keeps the latest state.

It connects to every publishing process and only listens, so it can run
inside the supervisor or `hean status` without changing anything. Counts are
by identity (intent_id, exec_id, ...) rather than by event, because intents
are re-sent and outcomes re-published by design.
"""

from __future__ import annotations

import time
from decimal import Decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hean import topics
from hean.bus import Event, Subscriber

ET = topics.EventType
SOURCES = ("feed", "executor", "reconciler", "risk", "watchdog", "strategy", "ctl")
OUTCOMES = {ET.ORDER_REJECTED.value: "rejected", ET.ORDER_BLOCKED_DUPLICATE.value: "blocked",
            ET.ORDER_BLOCKED_RISK.value: "blocked", ET.ORDER_CANCELLED.value: "cancelled",
            ET.ORDER_CANCEL_REJECTED.value: "cancel_refused"}


@dataclass
class Observation:
    """What has been seen on the bus so far."""

    ticks: int = 0
    intents: set[str] = field(default_factory=set)
    placed: set[str] = field(default_factory=set)
    other_outcomes: dict[str, int] = field(default_factory=dict)
    fills: dict[str, dict[str, Any]] = field(default_factory=dict)      # exec_id -> fill data
    transitions: list[dict[str, Any]] = field(default_factory=list)
    force_closes: dict[str, dict[str, Any]] = field(default_factory=dict)
    risk: dict[str, Any] | None = None
    equity: dict[str, Any] | None = None
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    reconcile: dict[str, Any] | None = None
    last_seen: dict[str, float] = field(default_factory=dict)            # source -> unix time
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)      # order id -> latest ORDER_UPDATE
    fees: Decimal = Decimal(0)                                            # sum of the fills' execFee

    def open_orders(self) -> list[dict[str, Any]]:
        return [d for d in self.orders.values() if d.get("order_status") in ("New", "PartiallyFilled", "Untriggered")]

    def counts(self) -> dict[str, int]:
        return {"ticks": self.ticks, "intents": len(self.intents), "orders": len(self.placed),
                "fills": len(self.fills), "risk_transitions": len(self.transitions),
                "force_closes": len(self.force_closes)}


Notify = Callable[[str, dict[str, Any]], None]


class Observer:
    """Subscribes to everything; `notify(kind, data)` is called once per new important event."""

    def __init__(self, subscriber: Subscriber, notify: Notify | None = None) -> None:
        self.obs = Observation()
        self._notify = notify or (lambda kind, data: None)
        self._seen_transitions: set[tuple[Any, ...]] = set()
        for source in SOURCES:
            subscriber.connect(source)
        subscriber.on("", self._on_event)
        subscriber.on(topics.risk_state(), self._on_event, fast=True)
        subscriber.on(topics.reconcile("status"), self._on_event, fast=True)

    async def _on_event(self, ev: Event) -> None:
        self.handle(ev)

    def handle(self, ev: Event) -> None:
        o, t, d = self.obs, ev.type, ev.data
        o.last_seen[ev.source] = time.time()
        if t == ET.TICK.value:
            o.ticks += 1
        elif t == ET.ORDER_INTENT.value:
            self._add(o.intents, d.get("intent_id"), "intent", d)
        elif t == ET.ORDER_PLACED.value:
            self._add(o.placed, d.get("intent_id"), "placed", d)
        elif t in OUTCOMES:
            key = f"{t}:{d.get('intent_id') or d.get('cancel_id')}"
            if key not in o.other_outcomes:
                o.other_outcomes[key] = 1
                self._notify(OUTCOMES[t], d)
        elif t == ET.ORDER_FILLED.value:
            exec_id = d.get("exec_id")
            if isinstance(exec_id, str) and exec_id not in o.fills:
                o.fills[exec_id] = d
                try:
                    o.fees += Decimal(str(d.get("exec_fee") or 0))
                except ArithmeticError:
                    pass
                self._notify("fill", d)
        elif t == ET.ORDER_UPDATE.value and d.get("order_id"):
            # The exchange's own order states: an order shows up (New) before its fills.
            before = o.orders.get(d["order_id"], {}).get("order_status")
            o.orders[d["order_id"]] = d
            if d.get("order_status") and d.get("order_status") != before:
                self._notify("order_update", d)
        elif t == ET.RISK_STATE.value:
            o.risk = d
            tr = d.get("transition")
            if isinstance(tr, dict):
                key = (tr.get("from_state"), tr.get("to_state"), tr.get("at"))
                if key not in self._seen_transitions:
                    self._seen_transitions.add(key)
                    o.transitions.append(tr)
                    self._notify("transition", {**tr, "drawdown_pct": d.get("drawdown_pct")})
        elif t == ET.POSITION_FORCE_CLOSED.value:
            key = str(d.get("order_link_id") or d.get("order_id") or len(o.force_closes))
            if key not in o.force_closes:
                o.force_closes[key] = d
                self._notify("force_closed", d)
        elif t == ET.POSITION_UPDATE.value and isinstance(d.get("symbol"), str):
            o.positions[d["symbol"]] = d
        elif t == ET.EQUITY_UPDATE.value:
            o.equity = d
        elif t == ET.RECONCILE_STATUS.value:
            o.reconcile = d
        elif t in (ET.ERROR.value, ET.RECONCILE_ALERT.value, ET.WATCHDOG_ALERT.value):
            self._notify("alert", {"type": t, "source": ev.source, **d})

    def _add(self, bucket: set[str], key: Any, kind: str, data: dict[str, Any]) -> None:
        if isinstance(key, str) and key not in bucket:
            bucket.add(key)
            self._notify(kind, data)
