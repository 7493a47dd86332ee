"""`hean run executor`: order intents -> Bybit REST, exactly once, behind risk gating.

Its journal (`executor.sqlite`) belongs to one exchange account (base URL and UID, asked
at start-up before the file is opened): a journal of another account refuses the start
(exit 78) unless HEAN_ARCHIVE_FOREIGN_STATE=true archives it.

A thin shell around `placement.Placer` (journal, guard, requests) and the pure
`gate` module. It listens to intents (strategy, ctl), the risk state and the
reconciler's status, and it owns the background loops: resolution of unknown
outcomes, fingerprint clean-up and the risk-staleness watch.

Decisions: no RISK_STATE for `executor.risk_stale_s` (also at start-up) gates like
HARD_STOP but does not cancel resting orders — only an announced QUARANTINE or HARD_STOP
does (`sweep`: opening orders only, verified, repeated while the state holds), since a
lost heartbeat is not a loss. "Reconciling" is only what the reconciler says
(reconciling=true until it says false); a silent reconciler does not block, because
the risk state, not the reconciler, is the executor's fail-closed signal.
Metrics: see `hean.executor.metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from hean import topics
from hean.bus.envelope import Event
from hean.bus.latejoin import LateJoinResend
from hean.config import ConfigError, HeanSettings
from hean.exchange.account import AccountIdentity, fetch_identity
from hean.exchange.bybit import ExchangeUnavailable
from hean.exchange.connect import rest_client
from hean.executor import journal as j
from hean.executor.cancel import CancelHandler
from hean.executor.gate import REDUCE_ONLY_STATES, FingerprintGuard, RiskView
from hean.executor.metrics import ExecutorMetrics
from hean.executor.placement import Placer
from hean.executor.sweep import OpeningOrderSweep
from hean.lifecycle import Service
from hean.statefile import bind_state

log = logging.getLogger("hean.executor")
T = topics.EventType
_LEVELS = {"NORMAL": 0, "SOFT_BRAKE": 1, "QUARANTINE": 2, "HARD_STOP": 3}
INTENT_SOURCES = ("strategy", "ctl")


class ExecutorService(Service):
    name = "executor"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(settings, registry)
        cfg = settings.executor
        self.shutdown_timeout = cfg.shutdown_timeout_s
        self.m = ExecutorMetrics(registry)
        self.m.risk_state.set(3)  # nothing heard yet: fail closed, and say so
        self.client = rest_client(settings, registry)  # a forbidden host is a ConfigError: exit 78
        self.guard = FingerprintGuard(cfg.dedup_window_s, cfg.dedup_cleanup_interval_s)
        self.journal: j.Journal | None = None
        self.late_join = LateJoinResend((topics.order(""),))   # outcomes, for a peer back after our restart
        self.placer: Placer | None = None
        self.sweep: OpeningOrderSweep | None = None
        self.risk_state: str | None = None
        self._risk_heard: float | None = None
        self._started = time.monotonic()
        self.reconciling = False
        self._loops: list[asyncio.Task[Any]] = []

    # --- risk view -----------------------------------------------------------------------
    def view(self) -> RiskView:
        heard = self._risk_heard
        stale = heard is None or time.monotonic() - heard > self.settings.executor.risk_stale_s
        ambiguous = self.placer.ambiguous_symbols if self.placer is not None else frozenset()
        return RiskView(self.risk_state, stale, self.reconciling, ambiguous)

    async def _on_risk(self, ev: Event) -> None:
        state = ev.data.get("state")
        self.risk_state = state if isinstance(state, str) else None
        self._risk_heard = time.monotonic()
        self.m.risk_state.set(_LEVELS.get(self.view().effective, 3))
        if self.risk_state in REDUCE_ONLY_STATES and self.sweep is not None and not any(
                t.get_name() == "sweep" and not t.done() for t in self._loops):
            log.warning("reduce-only risk state: cancelling resting opening orders", extra={
                "risk_state": self.risk_state, "symbols": list(self.settings.symbols)})
            # Tracked with the loops, so shutdown stops it before the client closes.
            self._loops = [t for t in self._loops if not (t.get_name() == "sweep" and t.done())]
            self._loops.append(self.spawn(self.sweep.run(), "sweep"))

    def _placed(self, symbol: str) -> None:
        """An order was placed (or found placed): under a reduce-only state it is a late landing."""
        if self.sweep is not None and self.sweep.holds():
            self.sweep.kick()

    async def _on_reconcile(self, ev: Event) -> None:
        reconciling = bool(ev.data.get("reconciling"))
        if reconciling != self.reconciling:
            log.info("reconciler status changed", extra={"reconciling": reconciling,
                                                         "trigger": ev.data.get("trigger")})
        self.reconciling = reconciling

    async def _on_intent(self, ev: Event) -> None:
        if ev.type == T.ORDER_INTENT.value and self.placer is not None:
            await self.placer.on_intent(ev.data)

    # --- lifecycle -----------------------------------------------------------------------
    async def startup(self) -> None:
        s = self.settings
        identity = await self._connect_exchange()
        # The journal's orderLinkIds and open rows describe one account: never resolve them against
        # another (contract 2). A journal of another account is a ConfigError: exit 78, one line.
        path = s.data_dir / "executor.sqlite"
        try:
            bind_state(path, identity, archive_foreign=s.archive_foreign_state)
        except ConfigError:
            await self.client.close()   # the shell exits 78 without calling shutdown
            raise
        self.journal = j.Journal(path, s.executor.journal_sync)
        self.make_publisher().on_subscribe(self.late_join.on_subscribe)
        self.placer = Placer(self.client, self.journal, self.guard, self.m, self.publish, self.view,
                             s.executor.soft_brake_factor, s.symbols, settle_ms=s.bybit.recv_window_ms + 1000,
                             max_age_s=s.executor.intent_max_age_s, on_placed=self._placed,
                             exists_search_s=s.executor.exists_search_s)
        self.sweep = OpeningOrderSweep(self.client, self.journal, s.symbols, self.publish, self.m,
                                       lambda: self.risk_state)
        sub = self.make_subscriber()
        for source in (*INTENT_SOURCES, "risk", "reconciler"):
            sub.connect(source)
        sub.on(topics.intent(), self._on_intent)
        self.cancels = CancelHandler(self.client, s.symbols, self.publish)
        sub.on(topics.cancel_intent(), self.cancels.on_command)
        sub.on(topics.risk_state(), self._on_risk, fast=True)
        sub.on(topics.reconcile("status"), self._on_reconcile, fast=True)
        # Orders a previous run may have sent: settle what the exchange knows before taking new intents.
        left = await self.placer.resolve_open(may_resend=False)
        log.info("journal recovered", extra={"open_rows": left, "counts": self.journal.counts()})
        self._loops = [self.spawn(self._resolve_loop(), "resolve"), self.spawn(self._cleanup_loop(), "dedup_cleanup"),
                       self.spawn(self._risk_watch(), "risk_watch"),
                       self.spawn(self.late_join.run(super().publish), "late_joiners")]

    async def publish(self, topic: str, type_: str, data: dict[str, Any]) -> bool:
        """Every order outcome is also kept for a late joiner (hean.bus.latejoin)."""
        sent = await super().publish(topic, type_, data)
        if topic.startswith(topics.order("")):
            self.late_join.remember(topic, type_, data)
        return sent

    async def _connect_exchange(self) -> AccountIdentity:
        """Start the client and ask whose key it trades with, retrying while the exchange cannot answer."""
        delay = 0.5
        while True:
            try:
                await self.client.start()
                return await fetch_identity(self.client)
            except ExchangeUnavailable as exc:
                log.warning("exchange not reachable at start-up; retrying", extra={"error": str(exc),
                                                                                   "retry_s": delay})
            if self.should_exit.is_set():
                raise RuntimeError("stopped before the exchange was reachable")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _resolve_loop(self) -> None:
        assert self.placer is not None
        interval = self.settings.executor.resolve_interval_s
        while True:
            # Resending an absent order needs the risk state; wait for it (or for it to count as stale).
            settled_risk = not self.view().stale or time.monotonic() - self._started > \
                self.settings.executor.risk_stale_s
            await self.placer.resolve_open(may_resend=settled_risk)
            await asyncio.sleep(interval)

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.guard.cleanup_interval_s)
            self.guard.cleanup()

    async def _risk_watch(self) -> None:
        was_stale = False
        while True:
            view = self.view()
            self.m.risk_state.set(_LEVELS.get(view.effective, 3))
            if view.stale and not was_stale:
                log.warning("risk state stale: only reduce-only orders go out",
                            extra={"risk_stale_s": self.settings.executor.risk_stale_s})
            was_stale = view.stale
            await asyncio.sleep(0.25)

    async def shutdown(self) -> None:
        # 1. No new intents: the shell has stopped the bus reader; let it hand over what was queued.
        if self._bus_task is not None:
            await asyncio.gather(asyncio.shield(self._bus_task), return_exceptions=True)
        # 2. Background loops stop; in-flight order requests finish (their outcome is journaled).
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if getattr(self, "cancels", None) is not None:
            await self.cancels.close()
        if self.placer is not None and self.placer.inflight:
            log.info("waiting for in-flight orders", extra={"count": len(self.placer.inflight)})
            await asyncio.gather(*list(self.placer.inflight), return_exceptions=True)
        # 3. Close the client and the journal.
        await self.client.close()
        if self.journal is not None:
            self.journal.close()
