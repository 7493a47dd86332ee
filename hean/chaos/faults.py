"""Injecting one scheduled fault: process signals through `hean up`'s pids, the rest via /sim."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hean.chaos.schedule import Fault

if TYPE_CHECKING:
    from hean.chaos.run import Soak

CRASH_LOSS = Decimal("0.07")   # of equity: beyond HARD_STOP (4 %) plus the invariant's margin
CRASH_WAIT_S = 20.0            # for the strategy to hold an exposure big enough (it re-opens every few s)

SIM_ROUTES = {
    "ws_drop_public": "faults/ws-drop", "ws_drop_private": "faults/ws-drop",
    "timeout_after_accept": "faults/timeout-after-accept", "http_error_before": "faults/http-error",
    "http_error_after": "faults/http-error", "rate_limit_10006": "faults/rate-limit",
    "delay_reply_position": "faults/delay-reply", "double_filled": "faults/double-filled",
    "execution_first": "faults/execution-first", "realtime_cache_clear": "faults/realtime-cache-clear",
}


async def inject(soak: Soak, f: Fault) -> bool:
    """Start one fault; True when it was injected (a kill of a process already down is not)."""
    sim = soak.sim
    if f.kind == "kill9":
        service = f.params["service"]
        ready = soak.up.ready_count(service)
        if not soak.up.signal(service, signal.SIGKILL):
            return False
        soak.spawn(_mttr(soak, service, ready, time.monotonic()))
        return True
    if f.kind == "sigstop":
        service = f.params["service"]
        if not soak.up.signal(service, signal.SIGSTOP):
            return False
        soak.spawn(_later(f.params["seconds"], lambda: soak.up.signal(service, signal.SIGCONT)))
        return True
    if f.kind in SIM_ROUTES:
        await sim.control(SIM_ROUTES[f.kind], dict(f.params))
        return True
    if f.kind == "latency":
        await sim.control("faults/latency", {"ms": f.params["ms"]})
        soak.spawn(_later_async(f.params["seconds"], sim.control("faults/latency", {"ms": 0})))
        return True
    if f.kind == "thin_book":
        await sim.control("book", {"symbol": f.params["symbol"], "depth": f.params["depth"]})
        soak.spawn(_later_async(f.params["seconds"], sim.control("book", {"symbol": f.params["symbol"],
                                                                          "depth": None})))
        return True
    if f.kind in ("transfer_in", "transfer_out"):
        await sim.control("wallet", {"amount": f.params["amount"]})
        return True
    if f.kind == "crash":
        soak.spawn(crash(soak, float(f.params["move_pct"])))
        return True
    raise ValueError(f"unknown fault {f.kind}")


async def _later(seconds: float, fn: Any) -> None:
    await asyncio.sleep(seconds)
    fn()


async def _later_async(seconds: float, coro: Any) -> None:
    await asyncio.sleep(seconds)
    await coro


async def _mttr(soak: Soak, service: str, ready_before: int, killed: float) -> None:
    """kill -9 -> the restarted process logged "service ready" again (its supervisor restarts it)."""
    deadline = killed + 120
    while time.monotonic() < deadline:
        if soak.up.ready_count(service) > ready_before:
            soak.mttr.setdefault(service, []).append(time.monotonic() - killed)
            return
        await asyncio.sleep(0.05)


async def crash(soak: Soak, move_pct: float) -> None:
    """A price move against the biggest open exposure, deep enough for HARD_STOP; then recover and reset."""
    sim = soak.sim
    # Wait for an exposure that a move of at most move_pct * 3 turns into a CRASH_LOSS of equity.
    deadline = time.monotonic() + CRASH_WAIT_S
    symbol, size, big_enough = "", Decimal(0), False
    while time.monotonic() < deadline and not big_enough:
        state = await sim.control("state")
        sizes = {s: Decimal(v) * Decimal(state["prices"][s]) for s, v in state["positions"].items()}
        if sizes:
            symbol = max(sizes, key=lambda s: abs(sizes[s]))
            size = sizes[symbol]
            big_enough = abs(size) * Decimal(move_pct * 3) / 100 >= Decimal(state["equity"]) * CRASH_LOSS
        if not big_enough:
            await asyncio.sleep(0.1)
    if not symbol or not size:
        soak.notes.append("crash: no open exposure to crash against")
        return
    if not big_enough:
        soak.notes.append(f"crash: the largest exposure in {CRASH_WAIT_S:.0f} s ({size:.0f} USDT) is too small"
                          " to reach HARD_STOP")
    state = await sim.control("state")
    before = Decimal(state["prices"][symbol])
    equity = Decimal(state["equity"])
    # Enough to lose CRASH_LOSS of equity (HARD_STOP is 4 %), within move_pct * 3.
    frac = min(Decimal(move_pct * 3) / 100, equity * CRASH_LOSS / abs(size))
    crashed = before * (1 - frac if size > 0 else 1 + frac)
    soak.crash_at_ms = int(time.time() * 1000)
    await sim.control("price", {"symbol": symbol, "price": format(crashed.quantize(Decimal("0.1")), "f"),
                                "hold": True})
    soak.notes.append(f"crash: {symbol} {before} -> {crashed:.1f} against {size:.0f} USDT of exposure")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10 and soak.state_level() < 3:
        await asyncio.sleep(0.02)
    if soak.state_level() >= 3:
        soak.figures["crash_to_hard_stop_ms"] = round((time.monotonic() - t0) * 1000, 1)
    await asyncio.sleep(3)
    await sim.control("price", {"symbol": symbol, "price": format(before, "f"), "hold": True})
    await asyncio.sleep(3)
    await soak.operator_reset()
    await sim.control("resume", {"symbol": symbol})
