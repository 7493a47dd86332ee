"""The soak itself: start everything, inject the schedule, stop trading, settle, read the records."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hean.bus import BusStats, Event, Subscriber
from hean.chaos import faults as faultmod
from hean.chaos import invariants as inv
from hean.chaos import procs, schedule
from hean.config import BusSettings
from hean.exchange.bybit import BybitRestClient
from hean.logging import HeanJsonFormatter

RECORDED = ("intent.", "order.", "fill.", "position.", "account.", "risk.", "watchdog.", "reconcile.")
SETTLE_TIMEOUT_S = 90.0


class Soak:
    def __init__(self, duration_s: float, seed: int, state: Path | None = None) -> None:
        self.duration_s, self.seed = duration_s, seed
        self.state = state or Path(tempfile.mkdtemp(prefix="hean-chaos-"))
        self.sim = procs.Sim(self.state, seed)
        self.stop_file = self.state / "stop-trading"
        self.up: procs.Up
        self.events: list[inv.Rec] = []
        self.equity: list[tuple[int, Decimal]] = []
        self.mttr: dict[str, list[float]] = {}
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        self.injected: dict[str, int] = {}
        self.crash_at_ms: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.client: BybitRestClient

    def spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    def state_level(self) -> int:
        for e in reversed(self.events):
            if e.type == "RISK_STATE":
                return inv.LEVEL.get(str(e.data.get("state")), 0)
        return 0

    async def _on_event(self, ev: Event) -> None:
        self.events.append(inv.Rec(int(time.time() * 1000), ev.topic, ev.type, dict(ev.data)))

    async def operator_reset(self) -> None:
        """`hean risk reset`, as the operator types it; re-based on today's equity if refused."""
        for extra in ([], None):
            if extra is None:
                equity = (await self.sim.control("state"))["equity"]
                extra = ["--initial-capital", str(Decimal(equity).quantize(Decimal("0.01")))]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hean.cli", "risk", "reset", "--operator", "chaos", *extra,
                env=self.up.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            if await proc.wait() == 0 and self.state_level() == 0:
                self.injected["operator_reset"] = self.injected.get("operator_reset", 0) + 1
                return
        self.notes.append("operator reset: refused twice")

    async def _poll_equity(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            resp = await self.client.call("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
            if resp.ok:
                rows = resp.result.get("list") or []
                if rows and rows[0].get("totalEquity"):
                    self.equity.append((int(time.time() * 1000), Decimal(str(rows[0]["totalEquity"]))))
            await asyncio.sleep(0.25)

    async def run(self) -> dict[str, Any]:
        (self.state / "data").mkdir(parents=True, exist_ok=True)
        # The recorder's own bus warnings (a gap it saw) go to a file next to the children's logs.
        handler = logging.FileHandler(self.state / "chaos.log")
        handler.setFormatter(HeanJsonFormatter("chaos"))
        logging.getLogger().addHandler(handler)
        url = await self.sim.start()
        self.client = BybitRestClient(rest_url=url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                                      dry_run=False, is_live=False, registry=CollectorRegistry())
        await self.client.start()
        self.up = procs.Up(self.state, procs.hean_env(self.state, url, self.seed, self.stop_file))
        self.bus_stats = BusStats()
        sub = Subscriber(BusSettings(), self.state / "run", self.bus_stats)
        for source in procs.SERVICES:
            if source != "feed":
                sub.connect(source, lossy=False)
        for prefix in RECORDED:
            sub.on(prefix, self._on_event)
        stop_bus, stop_poll = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(sub.run(stop_bus))
        try:
            await self.up.start()
            poller = asyncio.create_task(self._poll_equity(stop_poll))
            plan = schedule.build(self.seed, self.duration_s)
            started = time.monotonic()
            for f in plan:
                await asyncio.sleep(max(0.0, started + f.at_s - time.monotonic()))
                if await faultmod.inject(self, f):
                    key = f"{f.kind}:{f.params['service']}" if f.kind in ("kill9", "sigstop") else f.kind
                    self.injected[key] = self.injected.get(key, 0) + 1
            await asyncio.sleep(max(0.0, started + self.duration_s - time.monotonic()))
            await asyncio.gather(*self._tasks, return_exceptions=True)
            dead = [s for s in procs.SERVICES if not self.up.doc().get("services", {}).get(s, {}).get("running")]
            result = await self._settle_and_check()
            stop_poll.set()
            await poller
        finally:
            rc = await self.up.stop()
            stop_bus.set()
            await asyncio.gather(reader, return_exceptions=True)
            sub.close()
            await self.client.close()
            await self.sim.stop()
        orphans = self.up.orphans()
        result["invariants"]["processes_dead_at_end"] = len(dead)
        result["invariants"]["orphan_processes"] = len(orphans)
        result["examples"]["processes_dead_at_end"] = dead
        result["examples"]["orphan_processes"] = [str(p) for p in orphans]
        result["figures"]["hean_up_exit_code"] = rc
        # Events sent before this recorder (re)subscribed to a restarted publisher: seq gaps, a figure.
        # What matters of them is re-sent (fills, transfers) and checked by the invariants above.
        result["figures"]["recorder_critical_events_lost"] = sum(
            n for (_, klass), n in self.bus_stats.lost.items() if klass == "critical")
        return result

    async def _settle_and_check(self) -> dict[str, Any]:
        """Stop trading, cancel what rests, let HEAN flatten and reconcile, then read the exchange."""
        self.stop_file.write_text("stop\n")
        await self.sim.control("faults/reset", {})
        t0 = time.monotonic()
        await asyncio.sleep(3)
        while time.monotonic() - t0 < SETTLE_TIMEOUT_S:
            for symbol in procs.SYMBOLS:
                await self.client.call("POST", "/v5/order/cancel-all", {"category": "linear", "symbol": symbol})
            state = await self.sim.control("state")
            flat = all(Decimal(v) == 0 for v in state["positions"].values())
            execs = await self._executions()
            settled = (flat and state["open_orders"] == 0 and len(self._ledger_ids()) >= len(execs)
                       and inv.intents_without_outcome(self.events)[0] == 0)
            if settled:
                break
            await asyncio.sleep(1.0)
        self.figures["settle_s"] = round(time.monotonic() - t0, 1)
        await asyncio.sleep(2)   # the last publications reach the bus
        with open(self.state / "events.jsonl", "w", encoding="utf-8") as out:   # for a post-mortem
            for e in self.events:
                out.write(json.dumps([e.t_ms, e.topic, e.type, e.data], default=str) + "\n")
        end_ms = int(time.time() * 1000)
        orders, execs, ledger = await self._orders(), await self._executions(), self._ledger_ids()
        b = inv.Bounds(max_hold_s=procs.MAX_HOLD_S, check_interval_s=procs.CHECK_INTERVAL_S,
                       thresholds=procs.THRESHOLDS)
        checks = {
            "duplicate_orders_per_intent": inv.duplicate_orders(orders),
            "intents_without_outcome": inv.intents_without_outcome(self.events),
            "executions_missing_from_ledger": inv.executions_missing(execs, ledger),
            "fills_not_published": inv.fills_not_published(execs, self.events),
            "fills_published_twice": inv.fills_published_twice(self.events),
            "openings_accepted_while_forbidden_or_stale": inv.openings_while_forbidden(orders, self.events, b),
            "positions_held_too_long": inv.held_too_long(execs, end_ms, b),
            "positions_force_closed_early": inv.force_closed_early(orders, execs, end_ms, b),
            "risk_transitions_late": inv.transitions_late(self.equity, self.events, b),
        }
        spans = inv.position_spans(execs, end_ms)
        self._crash_figures(orders)
        self.figures |= {
            "intents": sum(1 for e in self.events if e.type == "ORDER_INTENT"),
            "orders_at_exchange": len(orders), "executions_at_exchange": len(execs),
            "fills_published": sum(1 for e in self.events if e.type == "ORDER_FILLED"),
            "force_closes": sum(1 for o in orders if str(o.get("orderLinkId", "")).startswith("hwd-")),
            "risk_transitions": sum(1 for e in self.events if e.type == "RISK_STATE" and e.data.get("transition")),
            "positions": len(spans), "longest_position_s": max(((c - o) / 1000 for _, o, c in spans), default=0),
            "mttr_s": {k: round(max(v), 2) for k, v in sorted(self.mttr.items())},
        }
        return {"invariants": {k: v[0] for k, v in checks.items()},
                "examples": {k: v[1] for k, v in checks.items()},
                "faults": dict(sorted(self.injected.items())), "figures": self.figures, "notes": self.notes,
                "bounds": b.__dict__, "state_dir": str(self.state)}

    def _crash_figures(self, orders: list[dict[str, Any]]) -> None:
        """crash -> last opening order the exchange accepted before HARD_STOP blocked them (ms)."""
        if self.crash_at_ms is None:
            return
        timeline = inv.risk_timeline(self.events)
        hard = next((t for t, lv in timeline if t >= self.crash_at_ms and lv >= 3), None)
        after = next((t for t, lv in timeline if hard is not None and t > hard and lv < 2), 2**62)
        opens = [int(o["createdTime"]) for o in orders if str(o.get("orderLinkId", "")).startswith("h-")
                 and not o.get("reduceOnly") and self.crash_at_ms <= int(o["createdTime"]) < after]
        self.figures["crash_to_last_opening_accepted_ms"] = max(opens) - self.crash_at_ms if opens else 0
        self.figures["openings_accepted_after_crash"] = len(opens)

    async def _orders(self) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for path, extra in (("/v5/order/history", {}), ("/v5/order/realtime", {"settleCoin": "USDT"})):
            for r in await self.client.paged(path, {"category": "linear", "limit": 50} | extra):
                rows[r["orderId"]] = r
        return list(rows.values())

    async def _executions(self) -> list[dict[str, Any]]:
        return await self.client.paged("/v5/execution/list", {"category": "linear", "limit": 100})

    def _ledger_ids(self) -> set[str]:
        """Exec ids in the reconciler's ledger."""
        path = self.state / "data" / "reconciler.sqlite"
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                return {r[0] for r in db.execute("SELECT exec_id FROM executions")}
        except sqlite3.Error:
            return set()
