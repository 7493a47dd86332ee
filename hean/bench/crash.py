"""`hean bench crash`: price crash at the exchange -> HARD_STOP published -> last opening order blocked.

Real processes (`hean run reconciler`, `feed`, `risk`, `executor`) against an in-process simulator on
loopback, with an open 4x long (a 6 % price fall is a 24 % drawdown). Each trial: the price
is restored, the risk process is reset (a RISK_RESET from `ctl`, as `hean risk reset` sends
it; retried until the recovered equity lets it through), then the simulator's price is set
to the crash level (`POST /sim/price`) and the clock runs until a RISK_STATE with HARD_STOP
reaches a bus subscriber. Nothing in between is polled by the bench.

Openings: in each trial the bench plays a strategy publishing one small resting PostOnly buy
far below the price on `intent.order` every STREAM_INTERVAL_S, from just before the crash
(once one of the trial's is placed) until STREAM_AFTER_S after HARD_STOP; then the resting
ones are cancelled on the simulator. The crash falls at a random phase of the stream. From the
simulator's own order rows (createdTime, wall clock ms) and the envelopes' publish stamps:
crash -> last opening the exchange booked (negative when none got in after the crash); crash
-> first ORDER_BLOCKED_RISK published by the executor; openings booked after HARD_STOP was
published (only requests already past the executor's send-time gate may land; the baseline
is how many were sent after it). Each trial resolves the executor's cut-off only to
STREAM_INTERVAL_S: it lies between the trials' latest booking and earliest block.
The stream (20/s) is twice Bybit's default order/create budget (10/s), but the simulator's
rate_limit_scale=100 advertises 1,000/s in its X-Bapi-Limit headers and the executor's limiter
adopts that, so no opening waits in it.

Baseline figures from the same run: the feed's tick interval (the simulator ticks every
100 ms, as Bybit's linear ticker stream does), and crash -> first feed ticker carrying the
crash mark (the floor for anything that learns prices from the feed). Goal (issue 11):
HARD_STOP p99 < 500 ms. A trial that sees no HARD_STOP within TRIAL_TIMEOUT_S counts as
a timeout (for example a reconciler that does not publish `mark_price`: risk then waits for
the next wallet reading).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from hean import topics
from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import BusSettings
from hean.exchange.bybit import BybitRestClient
from hean.ids import new_intent_id, order_link_id
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings
from hean.strategy.api import OrderIntent
from hean.strategy.events import intent_data

TRIALS = 30
TRIAL_TIMEOUT_S = 10.0
SYMBOL = "BTCUSDT"
PRICE = Decimal("50000")
CRASH = Decimal("47000")  # -6 %
WALLET = Decimal("10000")
T = topics.EventType
STREAM_INTERVAL_S = 0.05
STREAM_AFTER_S = 0.3
OPENING_QTY = Decimal("0.001")
OPENING_BASE = PRICE * Decimal("0.9")   # far below every price of the run: never fills
TICK = Decimal("0.1")
ANSWERS = frozenset({T.ORDER_PLACED.value, T.ORDER_REJECTED.value, T.ORDER_BLOCKED_RISK.value,
                     T.ORDER_BLOCKED_DUPLICATE.value})


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


class _Bus:
    """The bench's bus ends: hears risk.state (fast path), the feed's ticker and the executor's answers;
    sends resets as `ctl` and opening intents as `strategy`."""

    def __init__(self, runtime: Path) -> None:
        bus = BusSettings()
        self.ctl = Publisher(bus, runtime, "ctl", BusStats()).bind()
        self.strategy = Publisher(bus, runtime, "strategy", BusStats()).bind()
        self.states: list[tuple[float, Event]] = []
        self.tickers: list[tuple[float, Event]] = []
        self.answers: dict[str, Event] = {}     # intent_id -> the executor's first answer
        self.sub = Subscriber(bus, runtime, BusStats()).connect("risk").connect("feed").connect("executor")
        self.sub.on(topics.risk_state(), self._state, fast=True).on(topics.tick("ticker", SYMBOL), self._ticker)
        self.sub.on("order.", self._answer)
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self.sub.run(self._stop)),
                       asyncio.create_task(self.ctl.track_subscriptions(self._stop)),
                       asyncio.create_task(self.strategy.track_subscriptions(self._stop))]
        self._openings = 0

    async def _answer(self, ev: Event) -> None:
        intent_id = ev.data.get("intent_id")
        if ev.type in ANSWERS and isinstance(intent_id, str):
            self.answers.setdefault(intent_id, ev)

    async def opening(self) -> tuple[str, int]:
        """Publish one opening intent as a strategy would; (intent_id, publish time ns)."""
        self._openings += 1
        # Each at its own price: the executor's fingerprint guard never takes one for a duplicate.
        intent = OrderIntent.limit(SYMBOL, "Buy", OPENING_QTY, OPENING_BASE + self._openings * TICK,
                                   time_in_force="PostOnly")
        intent_id = new_intent_id("bench")
        published = time.time_ns()
        await self.strategy.publish(topics.intent(), T.ORDER_INTENT.value, intent_data(intent_id, "bench", intent))
        return intent_id, published

    async def stream(self, done: Any, sent: list[tuple[str, int]]) -> None:
        """Openings every STREAM_INTERVAL_S (on a fixed schedule) until done() holds."""
        next_at = time.monotonic()
        while not done():
            sent.append(await self.opening())
            next_at += STREAM_INTERVAL_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _state(self, ev: Event) -> None:
        self.states.append((time.monotonic(), ev))

    async def _ticker(self, ev: Event) -> None:
        self.tickers.append((time.monotonic(), ev))

    def latest(self) -> dict[str, Any]:
        return self.states[-1][1].data if self.states else {}

    async def reset(self) -> bool:
        """One RISK_RESET; True once the risk process answered NORMAL for it."""
        request_id = secrets.token_hex(8)
        seen = len(self.states)
        await self.ctl.publish(topics.risk_control("reset"), T.RISK_RESET.value,
                               {"operator": "bench", "at": time.time(), "new_initial_capital": None,
                                "request_id": request_id})
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for _, ev in self.states[seen:]:
                tr, refused = ev.data.get("transition") or {}, ev.data.get("reset_refused") or {}
                if tr.get("request_id") == request_id:
                    return ev.data["state"] == "NORMAL"
                if refused.get("request_id") == request_id:
                    return False
            await asyncio.sleep(0.01)
        return False

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sub.close()
        self.ctl.close()
        self.strategy.close()


async def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _set_price(http: aiohttp.ClientSession, sim: SimServer, price: Decimal) -> None:
    async with http.post(f"{sim.control_url}/price", json={"symbol": SYMBOL, "price": str(price),
                                                           "hold": True}) as resp:
        resp.raise_for_status()


async def _open_long(sim: SimServer) -> None:
    client = BybitRestClient(rest_url=sim.rest_url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                             dry_run=True, is_live=False, registry=CollectorRegistry())
    await client.start()
    try:
        qty = (WALLET * 4 / PRICE).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
        resp = await client.place_order(symbol=SYMBOL, side="Buy", order_type="Market", qty=qty, price=None,
                                        order_link_id="bench-crash-open")
        if not resp.ok:
            raise RuntimeError(f"bench: could not open the position: {resp}")
    finally:
        await client.close()


async def _normal_again(bus: _Bus, http: aiohttp.ClientSession, sim: SimServer) -> None:
    """Restore the price and reset until the risk process is NORMAL on the recovered equity."""
    await _set_price(http, sim, PRICE)
    deadline = time.monotonic() + 90  # without marks the equity recovers only at a wallet reading
    while time.monotonic() < deadline:
        if bus.latest().get("state") == "NORMAL" or await bus.reset():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"bench: risk never came back to NORMAL: {bus.latest()}")


async def _settle(bus: _Bus, sim: SimServer, sent: list[tuple[str, int]]) -> int:
    """Wait for the executor's answer to every opening sent, then cancel what rests; returns the unanswered."""
    try:
        await _until(lambda: all(i in bus.answers for i, _ in sent), 10, "the executor's answers")
    except TimeoutError:
        pass
    sim.exchange.cancel_all(SYMBOL)  # so trials do not pile up resting orders (and their margin)
    return sum(1 for i, _ in sent if i not in bus.answers)


def _first_placed(bus: _Bus, sent: list[tuple[str, int]]) -> int | None:
    """Index of the first opening of `sent` the executor answered with ORDER_PLACED."""
    return next((n for n, (i, _) in enumerate(sent) if i in bus.answers
                 and bus.answers[i].type == T.ORDER_PLACED.value), None)


async def _warm_up(bus: _Bus, sim: SimServer) -> None:
    """Openings until the executor places one: it is up, subscribed and hears a NORMAL risk state."""
    sent: list[tuple[str, int]] = []
    await asyncio.wait_for(bus.stream(lambda: _first_placed(bus, sent) is not None, sent), 90)
    # Openings published before the executor subscribed are lost (PUB/SUB) and get no answer.
    first = _first_placed(bus, sent)
    await _settle(bus, sim, sent[first:])


@dataclass
class _Trial:
    """One trial's figures, in ms from the crash request; None where it did not happen."""

    hard: float | None = None           # HARD_STOP received by the bench
    tick: float | None = None           # first ticker with the crash mark received
    last_booked: float | None = None    # the last opening the exchange booked (its createdTime)
    first_blocked: float | None = None  # the first ORDER_BLOCKED_RISK published by the executor
    booked_after_hard: int = 0          # openings booked after HARD_STOP was published
    sent_after_hard: int = 0            # openings published after HARD_STOP was published
    sent_and_booked_after_hard: int = 0  # ... and booked all the same: must be 0
    unanswered: int = 0
    publish_to_booked: list[float] = field(default_factory=list)  # each opening: intent published -> booked
    block_reasons: Counter[str] = field(default_factory=Counter)


async def _trial(bus: _Bus, http: aiohttp.ClientSession, sim: SimServer, phase: random.Random) -> _Trial:
    states, ticks = len(bus.states), len(bus.tickers)
    sent: list[tuple[str, int]] = []
    crash_at: list[float] = []

    def hard() -> tuple[float, Event] | None:
        return next(((t, ev) for t, ev in bus.states[states:] if ev.data.get("state") == "HARD_STOP"), None)

    def tick() -> float | None:
        return next((t for t, ev in bus.tickers[ticks:] if Decimal(str(ev.data.get("mark_price"))) == CRASH), None)

    def done() -> bool:
        h, now = hard(), time.monotonic()
        if h is not None:
            return now >= h[0] + STREAM_AFTER_S
        return bool(crash_at) and now > crash_at[0] + TRIAL_TIMEOUT_S

    stream = asyncio.create_task(bus.stream(done, sent))
    try:
        # Shortly before the crash: once one of this trial's openings is placed, the executor takes them.
        await _until(lambda: _first_placed(bus, sent) is not None, 10, "an opening placed before the crash")
        # At a random phase of the stream: a fixed one would measure the bench's own schedule.
        await asyncio.sleep(phase.uniform(0, STREAM_INTERVAL_S))
        started, started_ms = time.monotonic(), time.time_ns() / 1e6
        crash_at.append(started)
        await _set_price(http, sim, CRASH)
        try:
            await _until(lambda: hard() is not None, TRIAL_TIMEOUT_S, "HARD_STOP")
        except TimeoutError:
            pass
        await stream
    finally:
        stream.cancel()
    trial = _Trial()
    trial.unanswered = await _settle(bus, sim, sent)
    h, k = hard(), tick()
    trial.tick = None if k is None else (k - started) * 1000
    rows = [(sim.exchange.by_link_id.get(order_link_id(i)), ns) for i, ns in sent]
    booked = [o.created_ms for o, _ in rows if o is not None]
    trial.publish_to_booked = [o.created_ms - ns / 1e6 for o, ns in rows if o is not None]
    if booked:
        trial.last_booked = max(booked) - started_ms
    blocks = [ev for ev in (bus.answers.get(i) for i, _ in sent)
              if ev is not None and ev.type == T.ORDER_BLOCKED_RISK.value and ev.ts_ns / 1e6 >= started_ms]
    trial.block_reasons = Counter(str(ev.data.get("reason")) for ev in blocks)
    blocked = [ev.ts_ns / 1e6 for ev in blocks]
    if blocked:
        trial.first_blocked = min(blocked) - started_ms
    if h is not None:
        trial.hard = (h[0] - started) * 1000
        hard_ms = h[1].ts_ns / 1e6
        trial.booked_after_hard = sum(1 for ms in booked if ms > hard_ms)
        trial.sent_after_hard = sum(1 for _, ns in sent if ns / 1e6 > hard_ms)
        trial.sent_and_booked_after_hard = sum(1 for o, ns in rows if o is not None and ns / 1e6 > hard_ms)
    return trial


def _opening_figures(trials: list[_Trial], hard: list[float]) -> dict[str, Any]:
    """The openings' figures over the trials, and their ratios to crash -> HARD_STOP of the same run."""
    booked = [t.last_booked for t in trials if t.last_booked is not None]
    blocked = [t.first_blocked for t in trials if t.first_blocked is not None]
    with_hard = [t for t in trials if t.hard is not None]
    result: dict[str, Any] = {
        "openings_booked_after_hard_stop": sum(t.booked_after_hard for t in with_hard),
        "openings_booked_after_hard_stop_max": max((t.booked_after_hard for t in with_hard), default=0),
        "openings_sent_after_hard_stop": sum(t.sent_after_hard for t in with_hard),
        "openings_sent_and_booked_after_hard_stop": sum(t.sent_and_booked_after_hard for t in with_hard),
        "openings_unanswered": sum(t.unanswered for t in trials),
        "openings_blocked_by_reason": dict(sum((t.block_reasons for t in trials), Counter()))}
    latency = [ms for t in trials for ms in t.publish_to_booked]
    if latency:  # how far behind its intents the executor runs: the floor of the figures below
        result |= {"opening_publish_to_booked_p50_ms": statistics.median(latency),
                   "opening_publish_to_booked_p99_ms": _pct(latency, 99)}
    for name, values in (("last_opening_booked", booked), ("first_blocked_risk", blocked)):
        if values:
            result |= {f"crash_to_{name}_p50_ms": statistics.median(values),
                       f"crash_to_{name}_p99_ms": _pct(values, 99)}
            if name == "last_opening_booked":  # the cut-off lies between these two
                result["crash_to_last_opening_booked_max_ms"] = max(values)
            else:
                result["crash_to_first_blocked_risk_min_ms"] = min(values)
            if hard:
                result |= {f"{name}_p50_vs_hard_stop_p50": statistics.median(values) / statistics.median(hard),
                           f"{name}_p99_vs_hard_stop_p99": _pct(values, 99) / _pct(hard, 99)}
    return result


def _env(tmp: Path, sim: SimServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}
    env.update({"HEAN_RUNTIME_DIR": str(tmp / "run"), "HEAN_DATA_DIR": str(tmp / "data"), "HEAN_LOG_LEVEL": "WARNING",
                "HEAN_BYBIT__REST_URL": sim.rest_url, "HEAN_BYBIT__WS_PUBLIC_URL": sim.ws_public_url,
                "HEAN_BYBIT__WS_PRIVATE_URL": sim.ws_private_url, "HEAN_SYMBOLS": f'["{SYMBOL}"]',
                "HEAN_RISK__INITIAL_CAPITAL": str(WALLET), "HEAN_RISK__HEARTBEAT_S": "1"})
    for service in ("feed", "reconciler", "risk", "executor"):
        env[f"HEAN_METRICS_PORTS__{service.upper()}"] = "0"
    return env


async def run(json_out: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hean-bench-crash-"))
    sim = SimServer(SimSettings(rate_limit_scale=100.0, tick_interval_s=0.1, volatility=0.0,
                                initial_balance=WALLET, initial_prices={SYMBOL: PRICE}, symbols=(SYMBOL,)))
    await sim.start()
    procs: list[asyncio.subprocess.Process] = []
    bus = _Bus(tmp / "run")
    hard: list[float] = []
    first_tick: list[float] = []
    trials: list[_Trial] = []
    phase = random.Random(1)
    timeouts = 0
    try:
        async with aiohttp.ClientSession() as http:
            await _set_price(http, sim, PRICE)
            await _open_long(sim)
            for service in ("reconciler", "feed", "risk", "executor"):
                with open(tmp / f"{service}.log", "wb") as log:  # kept for a failed run's post-mortem
                    procs.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "hean.cli", "run", service, env=_env(tmp, sim),
                        stdout=log, stderr=log))
            await _until(lambda: bus.latest().get("equity") is not None, 60, "equity at the risk process")
            await _normal_again(bus, http, sim)
            await _warm_up(bus, sim)
            for _ in range(TRIALS):
                await _normal_again(bus, http, sim)
                trial = await _trial(bus, http, sim, phase)
                trials.append(trial)
                h, k = trial.hard, trial.tick
                if h is None:
                    timeouts += 1
                    if timeouts >= 2 and not hard:
                        print("bench crash: no HARD_STOP within the trial timeout twice; stopping (does the "
                              "reconciler publish mark_price on POSITION_UPDATE?)", file=sys.stderr)
                        break
                else:
                    hard.append(h)
                if k is not None:
                    first_tick.append(k)
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        await asyncio.gather(*(p.wait() for p in procs), return_exceptions=True)
        await bus.close()
        await sim.stop()
    tick_ms = sim.settings.tick_interval_s * 1000
    result: dict[str, Any] = {"trials": len(hard) + timeouts, "timeouts": timeouts, "tick_interval_ms": tick_ms,
                              "tickers_seen": len(bus.tickers), "cpus": os.cpu_count()}
    if hard:
        result |= {"crash_to_hard_stop_p50_ms": statistics.median(hard), "crash_to_hard_stop_p99_ms": _pct(hard, 99),
                   "hard_stop_p50_vs_tick_interval": statistics.median(hard) / tick_ms,
                   "hard_stop_p99_vs_tick_interval": _pct(hard, 99) / tick_ms}
    if first_tick:
        result |= {"crash_to_feed_tick_p50_ms": statistics.median(first_tick),
                   "crash_to_feed_tick_p99_ms": _pct(first_tick, 99)}
    if hard and first_tick:
        result["hard_stop_p50_vs_feed_tick_p50"] = statistics.median(hard) / statistics.median(first_tick)
    result |= _opening_figures(trials, hard)
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    if not json_out:
        for key, value in result.items():
            print(f"{key:44s} {value}")
    return result
