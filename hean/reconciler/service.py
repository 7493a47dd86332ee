"""`hean run reconciler`: the account as the exchange sees it, on the bus, with no fill missed or doubled.

Inputs: the private WS (order, execution, position, wallet), a wallet+positions poll every
`reconciler.account_poll_s` while any position is open (hean.reconciler.account), and REST catch-ups (open orders,
executions since the last one seen minus `margin_s`, positions, wallet) on start, on every WS
(re)connect, every `reconciler.interval_s`, on a sequence gap in the executor's `order.*` stream,
and on doubt (an order whose cumExecQty the ledger cannot account for). Every execution goes into
the SQLite ledger (`<data_dir>/reconciler.sqlite`) keyed by execId; only `Trade` rows are published
as fills, each once (see hean.reconciler.ledger for the exact guarantee across kill -9). The
ledger is bound to the exchange account (hean.statefile) before it opens: another account's
file refuses the start (exit 78). Transfers go out as `account.transfer` before the equity.

While a catch-up triggered by a gap (start, reconnect, bus gap, doubt) runs, `reconcile.status`
says reconciling=true (the executor then sends only reduce-only orders); periodic catch-ups do not.

Metrics (hean_reconciler_*): catchups_total{trigger}, catchup_failures_total{trigger},
fills_total{source=ws|rest}, executions_total{exec_type}, last_catchup_duration_seconds,
last_success_timestamp_seconds, seconds_since_last_success, reconciling, mismatches,
foreign_total{kind=order|position}, alerts_total{kind}, replayed_total, stale_reports_total{kind}
(older or repeated position/order/equity reports not published), account_polls_total{result},
transfers_total{direction}, transfer_check_failures_total. WS reconnects:
hean_ws_reconnects_total{name="private"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from hean import topics
from hean.bus.envelope import Event
from hean.bus.latejoin import LateJoinResend
from hean.config import HeanSettings
from hean.exchange.bybit import BybitRestClient, BybitWebSocket, ExchangeUnavailable
from hean.exchange.account import fetch_identity
from hean.exchange.connect import rest_client, websocket
from hean.ids import is_hean_link_id
from hean.lifecycle import Service
from hean.reconciler.account import AccountMixin
from hean.reconciler.catchup import CatchupMixin
from hean.reconciler.fills import ONCE_ONLY_TOPICS, FillsMixin
from hean.reconciler.diff import ForeignSeen, MismatchTracker
from hean.reconciler.events import flat_position, order_event
from hean.reconciler.ledger import Ledger
from hean.reconciler.metrics import ReconcilerMetrics
from hean.reconciler.ordering import OrderVersion, OrderVersions, PositionVersion
from hean.statefile import bind_state
from hean.reconciler.money import MoneyMetrics

log = logging.getLogger("hean.reconciler")
ET = topics.EventType
PRIVATE_TOPICS = ["order", "execution", "position", "wallet"]
LISTENER_WAIT_S = 3.0     # at start, hold fills this long for a first subscriber (PUB drops with none)
DOUBT_DELAY_S = 1.0       # an order update may overtake its execution message; look again after this
RETRY_S = 2.0             # a failed catch-up is retried this soon (capped by interval_s)
CLOCK_WATCH_S = 0.1
CLOCK_RESYNC_S = 1.0
GAP_TRIGGERS = frozenset({"start", "reconnect", "bus_gap", "doubt"})


class ReconcilerService(CatchupMixin, AccountMixin, FillsMixin, Service):
    name = "reconciler"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(settings, registry)
        self.cfg = settings.reconciler
        self.m = ReconcilerMetrics(registry)
        self.money = MoneyMetrics(registry)
        self.ledger: Ledger | None = None
        self.client: BybitRestClient | None = None
        self.ws: BybitWebSocket | None = None
        self._ws_stop = asyncio.Event()
        self._loops: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()
        self._triggers: list[str] = []
        self._inflight: set[str] = set()
        self.late_join = LateJoinResend(ONCE_ONLY_TOPICS)
        self._doubts: set[str] = set()
        self.positions: dict[str, dict[str, Any]] = {}
        self.foreign_positions: set[str] = set()
        self.equity: dict[str, Any] | None = None
        self.position_versions: dict[str, PositionVersion] = {}
        self.order_versions = OrderVersions()
        self.account_lock = asyncio.Lock()
        self.last_balance: Decimal | None = None
        self.executions_recorded = 0            # new executions this run (explains a wallet move)
        self.executions_at_last_balance = 0
        self.reconciling = True
        self.status_trigger = "start"
        self.last_success_ms: int | None = None
        self.tracker = MismatchTracker(self.cfg.mismatch_escalate_after)
        self.foreign_seen = ForeignSeen()
        self.connections = 0
        self.last_connected_at: float | None = None   # monotonic; read by the benchmark

    # --- lifecycle --------------------------------------------------------------------------
    async def startup(self) -> None:
        self.client = rest_client(self.settings, self.registry)
        await self.client.start()
        # The ledger and its watermark describe one account: never read another's (contract 2).
        path = self.settings.data_dir / "reconciler.sqlite"
        bind_state(path, await fetch_identity(self.client), archive_foreign=self.settings.archive_foreign_state)
        self.ledger = Ledger(path)
        self.make_publisher().on_subscribe(self.late_join.on_subscribe)
        self.make_subscriber().connect("executor").on(topics.order(""), self._on_executor_order)
        self.ws = websocket(self.settings, private=True, topics=PRIVATE_TOPICS, on_message=self._on_ws,
                            on_connected=self._on_ws_connected, name="private", registry=self.registry,
                            clock_ms=self.client.server_time_ms)
        self.m.reconciling.set(1)
        log.info("reconciler ledger open", extra={"path": str(self.ledger.path), "executions": self.ledger.count(),
                                                  "pending": len(self.ledger.pending())})

    async def main_loop(self) -> None:
        await self._await_listener()
        self.late_join.served()     # those who subscribed by now get the start-up replay itself
        await self.replay_tail()
        await self.publish_pending(replay=True)
        self.request("start")
        assert self.ws is not None
        self._loops = [self.spawn(self.ws.run(self._ws_stop), "private_ws"),
                       self.spawn(self._republish_loop(), "state_republish"),
                       self.spawn(self._periodic_loop(), "periodic_catchup"),
                       self.spawn(self._clock_watch(), "clock_watch"),
                       self.spawn(self.account_poll_loop(), "account_poll"),
                       self.spawn(self.late_join.run(self.publish, self.m.republished.inc), "late_joiners")]
        await self._catchup_loop()

    async def shutdown(self) -> None:
        # 1. Stop the WS and the helper loops, so nothing new touches the client or the ledger.
        self._ws_stop.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        # 2. Release the client and the ledger. (A catch-up in progress has finished: it runs in the
        #    main loop, which the shell lets return before calling shutdown().)
        if self.client is not None:
            await self.client.close()
        if self.ledger is not None:
            self.ledger.close()

    async def _await_listener(self) -> None:
        """PUB/SUB drops what is sent before anyone subscribed: give a restarting peer a moment."""
        deadline = time.monotonic() + LISTENER_WAIT_S
        while self.stats.subscribers["critical"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # --- triggers ---------------------------------------------------------------------------
    def request(self, trigger: str) -> None:
        """Ask for a catch-up; requests made while one runs are merged into the next."""
        self._triggers.append(trigger)
        self._wake.set()

    def on_bus_gap(self, event: Event, lost: int) -> None:
        log.warning("bus gap on an inbound stream: catching up", extra={"source": event.source,
                                                                       "topic": event.topic, "lost": lost})
        self.request("bus_gap")

    async def _on_ws_connected(self) -> None:
        # Every subscription, the first included, is followed by a catch-up that starts after it:
        # the start-up catch-up may have read the exchange before the WS was listening, and a fill
        # in between would otherwise wait for the periodic catch-up.
        self.connections += 1
        self.last_connected_at = time.monotonic()
        self.request("reconnect" if self.connections > 1 else "start")

    async def _clock_watch(self) -> None:
        """While the WS is down, keep the exchange clock offset fresh: WS auth `expires` depends on it."""
        assert self.client is not None and self.ws is not None
        last = time.monotonic()
        while True:
            await asyncio.sleep(CLOCK_WATCH_S)
            if not self.ws.connected.is_set() and time.monotonic() - last >= CLOCK_RESYNC_S:
                last = time.monotonic()
                with contextlib.suppress(ExchangeUnavailable):
                    await self.client.sync_time()

    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.interval_s)
            self.request("periodic")

    async def _catchup_loop(self) -> None:
        while not self.should_exit.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(self.should_exit.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for f in (waiter, stopper):
                f.cancel()
            if self.should_exit.is_set():
                return
            self._wake.clear()
            pending, self._triggers = self._triggers, []
            gaps = [t for t in pending if t in GAP_TRIGGERS]
            trigger = gaps[0] if gaps else (pending[0] if pending else "periodic")
            if not await self.catchup(trigger, gap=bool(gaps)):
                self._later(min(RETRY_S, self.cfg.interval_s), trigger)
            elif self.tracker.pending():
                self._later(min(RETRY_S, self.cfg.interval_s), "mismatch")

    def _later(self, delay: float, trigger: str) -> None:
        asyncio.get_running_loop().call_later(delay, self.request, trigger)

    # --- publishing -------------------------------------------------------------------------
    async def publish_status(self) -> None:
        await self.publish(topics.reconcile("status"), ET.RECONCILE_STATUS.value,
                           {"reconciling": self.reconciling, "trigger": self.status_trigger,
                            "last_success_ms": self.last_success_ms})

    async def set_reconciling(self, value: bool, trigger: str) -> None:
        self.reconciling, self.status_trigger = value, trigger
        self.m.reconciling.set(1 if value else 0)
        await self.publish_status()

    async def publish_position(self, data: dict[str, Any]) -> None:
        self.positions[data["symbol"]] = data
        await self.publish(topics.position(data["symbol"]), ET.POSITION_UPDATE.value, data)

    async def _republish_loop(self) -> None:
        """State-like topics again and again, so a restarted peer learns them within a period."""
        while True:
            await asyncio.sleep(self.cfg.state_republish_s)
            for symbol in sorted(set(self.settings.symbols) | set(self.positions)):
                await self.publish(topics.position(symbol), ET.POSITION_UPDATE.value,
                                   self.positions.get(symbol) or flat_position(symbol))
            if self.equity is not None and self.client is not None:
                # The same reading again: its ts_ms stays the exchange's, only published_ms moves.
                await self.publish(topics.equity(), ET.EQUITY_UPDATE.value,
                                   dict(self.equity, published_ms=self.client.server_time_ms()))
            await self.publish_status()

    # --- inbound ----------------------------------------------------------------------------
    async def _on_ws(self, msg: dict[str, Any]) -> None:
        topic = str(msg.get("topic", ""))
        if topic.startswith("execution.fast"):
            # Short items (no execType, no fee): never into the ledger, whose first row per execId wins.
            return
        kind = topic.split(".")[0]
        items = msg.get("data")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            log.warning("private ws message without a data list skipped", extra={"topic": msg.get("topic")})
            self.request("doubt")
            return
        if kind == "execution":
            await self.record(items, "ws")
        elif kind == "order":
            for row in items:
                await self.order_seen(row)
        elif kind == "position":
            for row in items:
                await self.offer_position(row, _creation_ms(msg))
        elif kind == "wallet":
            for account in items:
                await self.offer_equity(account, _creation_ms(msg), "ws")

    async def order_seen(self, row: dict[str, Any]) -> None:
        """Publish the order's state; flag it if HEAN did not create it; doubt unexplained fills."""
        data = order_event(row)
        if data["order_id"] and not self.order_versions.offer(data["order_id"], OrderVersion.of(row)):
            self.m.stale.labels("order").inc()      # older, or a repeat (double Filled, duplicate push)
            return
        await self.publish(topics.order("update"), ET.ORDER_UPDATE.value, data)
        if not is_hean_link_id(data["order_link_id"]) and data["order_id"]:
            await self.flag_foreign("order", data["order_id"], data)
        cum = Decimal(data["cum_exec_qty"])
        if cum > 0 and data["order_id"] not in self._doubts:
            self._doubts.add(data["order_id"])
            asyncio.get_running_loop().call_later(DOUBT_DELAY_S, self._check_doubt, data["order_id"], cum,
                                                  data.get("symbol"), data.get("order_link_id"))

    def _check_doubt(self, order_id: str, cum: Decimal, symbol: str | None = None, link: str | None = None) -> None:
        self._doubts.discard(order_id)
        if self.ledger is not None and not self.should_exit.is_set() and self.ledger.exec_qty_for_order(order_id) < cum:
            log.warning("order filled more than the ledger knows: catching up",
                        extra={"order_id": order_id, "order_link_id": link, "symbol": symbol,
                               "cum_exec_qty": str(cum)})
            self.request("doubt")

    async def flag_foreign(self, kind: str, key: str, detail: dict[str, Any]) -> None:
        if not self.foreign_seen.first_time(kind, key):
            return
        self.m.foreign.labels(kind).inc()
        log.warning("activity HEAN did not create", extra={"kind": kind, "key": key})
        await self.publish(topics.reconcile("foreign"), ET.FOREIGN_ACTIVITY.value, {"kind": kind, **detail})

    async def _on_executor_order(self, ev: Event) -> None:
        """Listened to for its sequence (a gap triggers a catch-up); a placed order is a hint to look."""
        if ev.type == ET.ORDER_PLACED.value and self.ws is not None and not self.ws.connected.is_set():
            self.request("doubt")

    async def publish(self, topic: str, type_: str, data: dict[str, Any]) -> bool:
        """Every publication also feeds the money gauges (hean.reconciler.money)."""
        self.money.observe(type_, data)
        return await super().publish(topic, type_, data)


def _creation_ms(msg: dict[str, Any]) -> int | None:
    value = msg.get("creationTime")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = ["ExchangeUnavailable", "ReconcilerService"]
