"""`hean run strategy`: hosts user strategies and turns what they return into order intents.

Events in: ticks (feed), executor outcomes (`order.*`), fills and positions
(reconciler), risk state (risk). Events out: `intent.order` ORDER_INTENT.

PUB/SUB loses what is sent while the executor is down, so an intent is
re-sent with the SAME intent_id every `strategy.resend_interval_s` until an
outcome event for it arrives (the executor's journal makes re-delivery
harmless); after GIVE_UP_S without an answer it is dropped with an ERROR.

Isolation: a hook that raises is logged and counted; after
`strategy.max_failures` raises its strategy is disabled (ERROR log, gauge),
the others keep running. Returned garbage is logged, counted and dropped.

Metrics: hean_strategy_intents_total{strategy}, hean_strategy_resends_total,
hean_strategy_outcomes_total{type}, hean_strategy_errors_total{strategy},
hean_strategy_invalid_intents_total{strategy}, hean_strategy_disabled{strategy},
hean_strategy_gave_up_total{strategy}, hean_strategy_pending_intents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from hean import topics
from hean.bus.envelope import Event
from hean.config import ConfigError, HeanSettings
from hean.ids import new_intent_id
from hean.lifecycle import Service
from hean.strategy import events
from hean.strategy.api import Context, InvalidIntent, OrderEvent, OrderIntent, Strategy, validate
from hean.strategy.loader import load_all

log = logging.getLogger("hean.strategy")
ET = topics.EventType
OUTCOME_TYPES = frozenset({ET.ORDER_PLACED.value, ET.ORDER_REJECTED.value, ET.ORDER_BLOCKED_DUPLICATE.value,
                           ET.ORDER_BLOCKED_RISK.value, ET.ORDER_CANCELLED.value})
GIVE_UP_S = 60.0            # an intent unanswered this long is dropped (ERROR): the executor is not coming back
MAX_INTENTS_PER_CALL = 20   # a runaway strategy cannot flood the executor from one hook call
OWNER_MEMORY = 50_000       # intent_id -> strategy, for routing fills that arrive long after placement
TIMER_INTERVAL_S = 1.0


@dataclass
class _Hosted:
    strategy: Strategy
    failures: int = 0
    disabled: bool = False

    @property
    def sid(self) -> str:
        return self.strategy.strategy_id


@dataclass
class _Pending:
    data: dict[str, Any]
    sid: str
    first: float
    last: float


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.intents = Counter("hean_strategy_intents", "Intents published (first send)", ["strategy"],
                               registry=registry)
        self.resends = Counter("hean_strategy_resends", "Intents re-sent because no outcome arrived yet",
                               registry=registry)
        self.outcomes = Counter("hean_strategy_outcomes", "Executor outcome events for our intents", ["type"],
                                registry=registry)
        self.errors = Counter("hean_strategy_errors", "Strategy hooks that raised", ["strategy"], registry=registry)
        self.invalid = Counter("hean_strategy_invalid_intents", "Returned intents dropped as invalid",
                               ["strategy"], registry=registry)
        self.disabled = Gauge("hean_strategy_disabled", "1 when the strategy was disabled after repeated errors",
                              ["strategy"], registry=registry)
        self.gave_up = Counter("hean_strategy_gave_up", "Intents dropped after GIVE_UP_S without an outcome",
                               ["strategy"], registry=registry)
        self.pending = Gauge("hean_strategy_pending_intents", "Intents waiting for their outcome", registry=registry)


class StrategyService(Service):
    name = "strategy"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(settings, registry)
        self.symbols = tuple(settings.symbols)
        self.hosted = [_Hosted(s) for s in load_all(settings.strategy.paths)]
        self.m = _Metrics(registry)
        shared = Context(self.symbols)
        for h in self.hosted:
            ctx = Context(self.symbols)
            ctx.positions, ctx.last_price = shared.positions, shared.last_price
            h.strategy.ctx = ctx
            self.m.disabled.labels(h.sid).set(0)
            for metric in (self.m.intents, self.m.errors, self.m.invalid, self.m.gave_up):
                metric.labels(h.sid)
            try:
                h.strategy.on_start()
            except Exception as exc:  # noqa: BLE001 - user code: refuse to start, loudly
                raise ConfigError(f"HEAN_STRATEGY__PATHS: strategy {h.sid!r} failed in on_start: {exc}") from None
        self.by_id = {h.sid: h for h in self.hosted}
        self.pending: dict[str, _Pending] = {}
        self.owner: OrderedDict[str, str] = OrderedDict()
        # exec_ids already handed to a strategy: the reconciler may re-deliver a fill after a restart.
        self.seen_fills: OrderedDict[str, None] = OrderedDict()

    async def startup(self) -> None:
        self.make_publisher()
        sub = self.make_subscriber()
        for source in ("feed", "executor", "reconciler", "risk"):
            sub.connect(source)
        sub.on("tick.", self._on_tick)
        sub.on("order.", self._on_order)
        sub.on("fill.", self._on_fill)
        sub.on("position.", self._on_position)
        sub.on(topics.risk_state(), self._on_risk, fast=True)
        self.spawn(self._timer(), "strategy_timer")
        log.info("strategies loaded", extra={"strategies": [h.sid for h in self.hosted]})

    async def shutdown(self) -> None:
        if self.pending:
            log.warning("stopping with intents still unanswered", extra={"count": len(self.pending),
                                                                        "intent_ids": list(self.pending)[:20]})

    # --- calling user code ---------------------------------------------------------------
    def _call(self, h: _Hosted, hook: str, *args: Any) -> Any:
        if h.disabled:
            return None
        try:
            return getattr(h.strategy, hook)(*args)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            h.failures += 1
            self.m.errors.labels(h.sid).inc()
            log.warning("strategy hook raised", exc_info=True,
                        extra={"strategy": h.sid, "hook": hook, "error": repr(exc), "failures": h.failures})
            if h.failures >= self.settings.strategy.max_failures:
                h.disabled = True
                self.m.disabled.labels(h.sid).set(1)
                log.error("strategy disabled after repeated errors; the others keep running",
                          extra={"strategy": h.sid, "failures": h.failures})
            return None

    def _collect(self, h: _Hosted, result: Any) -> list[OrderIntent]:
        if result is None:
            return []
        if not isinstance(result, (list, tuple)):
            self._invalid(h, f"hook returned {type(result).__name__}, expected a list of OrderIntent")
            return []
        good: list[OrderIntent] = []
        for i, item in enumerate(result):
            if i >= MAX_INTENTS_PER_CALL:
                self._invalid(h, f"more than {MAX_INTENTS_PER_CALL} intents from one call; rest dropped")
                break
            try:
                good.append(validate(item, self.symbols))
            except InvalidIntent as exc:
                self._invalid(h, str(exc))
        return good

    def _invalid(self, h: _Hosted, why: str) -> None:
        self.m.invalid.labels(h.sid).inc()
        log.warning("invalid intent dropped", extra={"strategy": h.sid, "reason": why})

    async def _produce(self, hook: str, *args: Any) -> None:
        for h in self.hosted:
            intents = self._collect(h, self._call(h, hook, *args))
            for intent in intents:
                await self._submit(h, intent)

    # --- intents out ----------------------------------------------------------------------
    async def _submit(self, h: _Hosted, intent: OrderIntent) -> None:
        intent_id = new_intent_id(h.sid)
        data = events.intent_data(intent_id, h.sid, intent)
        now = time.monotonic()
        self.pending[intent_id] = _Pending(data, h.sid, now, now)
        self.owner[intent_id] = h.sid
        while len(self.owner) > OWNER_MEMORY:
            self.owner.popitem(last=False)
        h.strategy.ctx._add_pending(intent.symbol, 1)
        self.m.intents.labels(h.sid).inc()
        self.m.pending.set(len(self.pending))
        log.info("intent", extra={"strategy": h.sid, "intent_id": intent_id, "symbol": intent.symbol,
                                  "side": intent.side, "qty": data["qty"], "reduce_only": intent.reduce_only})
        await self.publish(topics.intent(), ET.ORDER_INTENT.value, data)

    async def _resend_due(self) -> None:
        now = time.monotonic()
        every = self.settings.strategy.resend_interval_s
        for intent_id, p in list(self.pending.items()):
            if now - p.first >= GIVE_UP_S:
                self._resolve(intent_id)
                self.m.gave_up.labels(p.sid).inc()
                log.error("no outcome for intent; giving up (is the executor running?)",
                          extra={"strategy": p.sid, "intent_id": intent_id, "waited_s": round(now - p.first, 1)})
                h = self.by_id.get(p.sid)
                if h is not None:
                    self._call(h, "on_order_event", OrderEvent("NO_OUTCOME", intent_id, p.data["symbol"],
                                                               "no_outcome", dict(p.data)))
            elif now - p.last >= every:
                p.last = now
                self.m.resends.inc()
                await self.publish(topics.intent(), ET.ORDER_INTENT.value, p.data)

    def _resolve(self, intent_id: str) -> _Pending | None:
        p = self.pending.pop(intent_id, None)
        if p is not None:
            h = self.by_id.get(p.sid)
            if h is not None:
                h.strategy.ctx._add_pending(p.data["symbol"], -1)
            self.m.pending.set(len(self.pending))
        return p

    async def _timer(self) -> None:
        while not self.should_exit.is_set():
            now = time.time()
            for h in self.hosted:
                h.strategy.ctx.now = now
            await self._produce("on_timer", now)
            await self._resend_due()
            await asyncio.sleep(TIMER_INTERVAL_S - (time.time() - now) % TIMER_INTERVAL_S)

    # --- events in ------------------------------------------------------------------------
    def _stamp(self, ev: Event) -> None:
        now = ev.ts_ns / 1e9
        for h in self.hosted:
            h.strategy.ctx.now = now

    async def _on_tick(self, ev: Event) -> None:
        tick = events.parse_tick(ev.topic, ev.data)
        if tick is None:
            return
        if tick.price is not None:
            self.hosted[0].strategy.ctx.last_price[tick.symbol] = tick.price
        self._stamp(ev)
        await self._produce("on_tick", tick)

    async def _on_order(self, ev: Event) -> None:
        intent_id = ev.data.get("intent_id")
        if not isinstance(intent_id, str):
            return
        if ev.type in OUTCOME_TYPES:
            if self._resolve(intent_id) is None:
                return  # a re-published outcome for an intent already answered (or not ours)
            self.m.outcomes.labels(ev.type).inc()
            log.info("intent outcome", extra={"intent_id": intent_id, "type": ev.type,
                                              "reason": ev.data.get("reason")})
        owner = self.by_id.get(self.owner.get(intent_id, ""))
        if owner is not None:
            self._stamp(ev)
            self._call(owner, "on_order_event", events.parse_order_event(ev.type, ev.data))

    async def _on_fill(self, ev: Event) -> None:
        exec_id = str(ev.data.get("exec_id", ""))
        if exec_id in self.seen_fills:
            return
        self.seen_fills[exec_id] = None
        while len(self.seen_fills) > OWNER_MEMORY:
            self.seen_fills.popitem(last=False)
        owner = self.by_id.get(self.owner.get(str(ev.data.get("intent_id")), ""))
        fill = events.parse_fill(ev.data) if owner is not None else None
        if owner is not None and fill is not None:
            self._stamp(ev)
            self._call(owner, "on_fill", fill)

    async def _on_position(self, ev: Event) -> None:
        pos = events.parse_position(ev.data)
        if pos is None:
            return
        self.hosted[0].strategy.ctx.positions[pos.symbol] = pos
        self._stamp(ev)
        for h in self.hosted:
            self._call(h, "on_position", pos)

    async def _on_risk(self, ev: Event) -> None:
        risk = events.parse_risk(ev.data)
        if risk is None:
            return
        for h in self.hosted:
            h.strategy.ctx.risk = risk
            self._call(h, "on_risk", risk)
