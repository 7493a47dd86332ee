"""`hean bench crash`: price crash at the exchange -> HARD_STOP published by the risk process.

Real processes (`hean run reconciler`, `feed`, `risk`) against an in-process simulator on
loopback, with an open 4x long (a 6 % price fall is a 24 % drawdown). Each trial: the price
is restored, the risk process is reset (a RISK_RESET from `ctl`, as `hean risk reset` sends
it; retried until the recovered equity lets it through), then the simulator's price is set
to the crash level (`POST /sim/price`) and the clock runs until a RISK_STATE with HARD_STOP
reaches a bus subscriber. Nothing in between is polled by the bench.

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
import secrets
import statistics
import sys
import tempfile
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from hean import topics
from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import BusSettings
from hean.exchange.bybit import BybitRestClient
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings

TRIALS = 30
TRIAL_TIMEOUT_S = 10.0
SYMBOL = "BTCUSDT"
PRICE = Decimal("50000")
CRASH = Decimal("47000")  # -6 %
WALLET = Decimal("10000")
T = topics.EventType


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


class _Bus:
    """The bench's bus ends: hears risk.state (fast path) and the feed's ticker; sends resets as `ctl`."""

    def __init__(self, runtime: Path) -> None:
        bus = BusSettings()
        self.ctl = Publisher(bus, runtime, "ctl", BusStats()).bind()
        self.states: list[tuple[float, Event]] = []
        self.tickers: list[tuple[float, Event]] = []
        self.sub = Subscriber(bus, runtime, BusStats()).connect("risk").connect("feed")
        self.sub.on(topics.risk_state(), self._state, fast=True).on(topics.tick("ticker", SYMBOL), self._ticker)
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self.sub.run(self._stop)),
                       asyncio.create_task(self.ctl.track_subscriptions(self._stop))]

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


async def _trial(bus: _Bus, http: aiohttp.ClientSession, sim: SimServer) -> tuple[float | None, float | None]:
    """(crash -> HARD_STOP, crash -> first ticker with the crash mark), seconds; None on timeout."""
    states, ticks = len(bus.states), len(bus.tickers)
    started = time.monotonic()
    await _set_price(http, sim, CRASH)

    def hard() -> float | None:
        return next((t for t, ev in bus.states[states:] if ev.data.get("state") == "HARD_STOP"), None)

    def tick() -> float | None:
        return next((t for t, ev in bus.tickers[ticks:] if Decimal(str(ev.data.get("mark_price"))) == CRASH), None)

    try:
        await _until(lambda: hard() is not None, TRIAL_TIMEOUT_S, "HARD_STOP")
    except TimeoutError:
        pass
    h, k = hard(), tick()
    return (None if h is None else h - started), (None if k is None else k - started)


def _env(tmp: Path, sim: SimServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}
    env.update({"HEAN_RUNTIME_DIR": str(tmp / "run"), "HEAN_DATA_DIR": str(tmp / "data"), "HEAN_LOG_LEVEL": "WARNING",
                "HEAN_BYBIT__REST_URL": sim.rest_url, "HEAN_BYBIT__WS_PUBLIC_URL": sim.ws_public_url,
                "HEAN_BYBIT__WS_PRIVATE_URL": sim.ws_private_url, "HEAN_SYMBOLS": f'["{SYMBOL}"]',
                "HEAN_RISK__INITIAL_CAPITAL": str(WALLET), "HEAN_RISK__HEARTBEAT_S": "1"})
    for service in ("feed", "reconciler", "risk"):
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
    timeouts = 0
    try:
        async with aiohttp.ClientSession() as http:
            await _set_price(http, sim, PRICE)
            await _open_long(sim)
            for service in ("reconciler", "feed", "risk"):
                with open(tmp / f"{service}.log", "wb") as log:  # kept for a failed run's post-mortem
                    procs.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "hean.cli", "run", service, env=_env(tmp, sim),
                        stdout=log, stderr=log))
            await _until(lambda: bus.latest().get("equity") is not None, 60, "equity at the risk process")
            for _ in range(TRIALS):
                await _normal_again(bus, http, sim)
                h, k = await _trial(bus, http, sim)
                if h is None:
                    timeouts += 1
                    if timeouts >= 2 and not hard:
                        print("bench crash: no HARD_STOP within the trial timeout twice; stopping (does the "
                              "reconciler publish mark_price on POSITION_UPDATE?)", file=sys.stderr)
                        break
                else:
                    hard.append(h * 1000)
                if k is not None:
                    first_tick.append(k * 1000)
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
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    if not json_out:
        for key, value in result.items():
            print(f"{key:36s} {value}")
    return result
