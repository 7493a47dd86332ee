"""Bus benchmark: HEAN's bus against the baselines a Python developer would compare it with.

All four throughput figures are measured in this run, between two OS processes
on this machine, over ipc, for ~2 s each:
  (a) raw pyzmq, 200-byte single frames, blocking send/recv   -> the wire limit
  (b) blocking pyzmq sending the same event dicts via orjson   -> the Python limit
  (c) the HEAN bus: Publisher -> Subscriber -> handler, real envelope, critical class (lossless)
  (d) multiprocessing.Queue with the same dicts                -> what one would otherwise pick
Then the HEAN bus's one-hop latency (publish call -> handler) at 1,000 and 10,000 events/s.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
import zmq

RUN_S = 2.0
END = b"END"


def make_event(seq: int) -> dict[str, Any]:
    """A realistic ~11-field trade event (~200 bytes as JSON)."""
    return {"type": "trade", "topic": "tick.trade.BTCUSDT", "seq": seq, "ts_ns": time.perf_counter_ns(),
            "symbol": "BTCUSDT", "price": "64123.5", "qty": "0.0125", "side": "Buy" if seq & 1 else "Sell",
            "venue": "bybit", "trade_id": 8812345678 + seq, "src": "feed"}


# --- (a) and (b): plain pyzmq, blocking ------------------------------------------------------
def _zmq_pub(ep: str, codec: str) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.XPUB)
    s.setsockopt(zmq.SNDHWM, 0)
    s.bind(ep)
    s.recv()  # the subscription: the peer is connected, nothing sent from here on is lost
    raw = b"x" * 200
    deadline = time.monotonic() + RUN_S
    n = 0
    while True:
        for _ in range(1000):
            s.send(raw if codec == "raw" else orjson.dumps(make_event(n)))
            n += 1
        if time.monotonic() > deadline:
            break
    s.send(END)
    s.close(linger=-1)
    ctx.term()


def _zmq_sub(ep: str, codec: str, out: Any) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(ep)
    first = None
    n = 0
    while True:
        msg = s.recv()
        if msg == END:
            break
        if codec != "raw":
            orjson.loads(msg)
        if first is None:
            first = time.perf_counter()
        n += 1
    out.put(n / (time.perf_counter() - (first or time.perf_counter())))
    s.close()
    ctx.term()


# --- (c): the HEAN bus ------------------------------------------------------------------------
def _bus_settings() -> Any:
    from hean.config import BusSettings
    return BusSettings(sndhwm=10_000, rcvhwm=10_000, queue_size=10_000)


def _hean_pub(runtime: str, rate: float, duration: float) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(_hean_pub_async(Path(runtime), rate, duration))


async def _hean_pub_async(runtime: Path, rate: float, duration: float) -> None:
    from hean.bus import BusStats, Publisher
    # Flat out, backpressure is the point of the exercise: its WARNING lines would only be noise here.
    logging.getLogger("hean.bus").setLevel(logging.ERROR)
    pub = Publisher(_bus_settings(), runtime, "bench", BusStats()).bind()
    assert await pub.wait_for_subscribers("critical", 30), "no subscriber"
    await asyncio.sleep(0.2)  # let the subscriber's reader start
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < duration:
        if rate:
            # Open loop at `rate`: send what is due, then sleep (uvloop timers have ~1 ms resolution).
            due = int((time.monotonic() - start) * rate)
            while n < due:
                await pub.publish("order.bench", "BENCH", {"t": time.perf_counter_ns(), "ev": make_event(n)})
                n += 1
            await asyncio.sleep(0.0005)
        else:
            for _ in range(200):
                await pub.publish("order.bench", "BENCH", make_event(n))
                n += 1
    await pub.publish("order.bench", "END", {"n": n})
    await asyncio.sleep(0.5)
    pub.close()


def _hean_sub(runtime: str, latency: bool, out: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(_hean_sub_async(Path(runtime), latency, out))


async def _hean_sub_async(runtime: Path, latency: bool, out: Any) -> None:
    from hean.bus import BusStats, Subscriber
    from hean.bus.envelope import Event
    stop = asyncio.Event()
    state: dict[str, Any] = {"n": 0, "first": None, "lat": []}

    async def on_event(ev: Event) -> None:
        if ev.type == "END":
            state["end"] = time.perf_counter()
            stop.set()
            return
        if latency:
            state["lat"].append((time.perf_counter_ns() - ev.data["t"]) / 1000)
        if state["first"] is None:
            state["first"] = time.perf_counter()
        state["n"] += 1

    sub = Subscriber(_bus_settings(), runtime, BusStats()).connect("bench").on("order.", on_event)
    await sub.run(stop)
    sub.close()
    if latency:
        lat = state["lat"][len(state["lat"]) // 6:]  # drop the warm-up sixth
        out.put(lat)
    else:
        out.put(state["n"] / (state["end"] - state["first"]))


# --- (d): multiprocessing.Queue ------------------------------------------------------------
def _mpq_put(q: Any) -> None:
    deadline = time.monotonic() + RUN_S
    n = 0
    while time.monotonic() < deadline:
        for _ in range(500):
            q.put(make_event(n))
            n += 1
    q.put(None)


def _mpq_get(q: Any, out: Any) -> None:
    first = None
    n = 0
    while True:
        ev = q.get()
        if ev is None:
            break
        if first is None:
            first = time.perf_counter()
        n += 1
    out.put(n / (time.perf_counter() - (first or time.perf_counter())))


def _pair(ctx: Any, producer: Any, pargs: tuple[Any, ...], consumer: Any, cargs: tuple[Any, ...]) -> Any:
    out = ctx.Queue()
    c = ctx.Process(target=consumer, args=(*cargs, out))
    c.start()
    p = ctx.Process(target=producer, args=pargs)
    p.start()
    result = out.get(timeout=120)
    p.join(30)
    c.join(30)
    return result


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))] if s else float("nan")


async def run(json_out: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="hean-bench-")
    loop = asyncio.get_running_loop()

    def measure() -> dict[str, Any]:
        res: dict[str, Any] = {}
        for name, codec in (("raw_pyzmq_eps", "raw"), ("orjson_pyzmq_eps", "orjson")):
            ep = f"ipc://{tmp}/{codec}.sock"
            res[name] = _pair(ctx, _zmq_pub, (ep, codec), _zmq_sub, (ep, codec))
        res["hean_bus_eps"] = _pair(ctx, _hean_pub, (tmp, 0.0, RUN_S), _hean_sub, (tmp, False))
        q = ctx.Queue(maxsize=10_000)
        res["mp_queue_eps"] = _pair(ctx, _mpq_put, (q,), _mpq_get, (q,))
        for rate in (1000, 10_000):
            lat = _pair(ctx, _hean_pub, (tmp, float(rate), 3.0), _hean_sub, (tmp, True))
            suffix = "" if rate == 10_000 else "_1k"
            res[f"p50_us{suffix}"] = statistics.median(lat)
            res[f"p99_us{suffix}"] = _pct(lat, 99)
            res[f"p999_us{suffix}"] = _pct(lat, 99.9)
            res[f"latency_samples{suffix}"] = len(lat)
        return res

    res = await loop.run_in_executor(None, measure)
    res["hean_vs_orjson_pyzmq"] = res["hean_bus_eps"] / res["orjson_pyzmq_eps"]
    res["hean_vs_mp_queue"] = res["hean_bus_eps"] / res["mp_queue_eps"]
    res["cpus"] = os.cpu_count()
    _print_table(res)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}


def _print_table(r: dict[str, Any]) -> None:
    rows = [
        ("(a) raw pyzmq, 200 B frames", r["raw_pyzmq_eps"]),
        ("(b) blocking pyzmq + orjson dicts", r["orjson_pyzmq_eps"]),
        ("(c) HEAN bus (envelope, seq check, queue, handler)", r["hean_bus_eps"]),
        ("(d) multiprocessing.Queue, same dicts", r["mp_queue_eps"]),
    ]
    print("throughput between two processes (events/s):")
    for label, eps in rows:
        print(f"  {label:<52} {eps:>12,.0f}")
    print(f"  (c)/(b) = {r['hean_vs_orjson_pyzmq']:.2f}   (target >= 0.50)")
    print(f"  (c)/(d) = {r['hean_vs_mp_queue']:.2f}   (target >= 3)")
    print("HEAN bus one-hop latency, publish() -> handler (us):")
    print(f"  at  1,000 ev/s: p50 {r['p50_us_1k']:8.1f}  p99 {r['p99_us_1k']:8.1f}  p99.9 {r['p999_us_1k']:8.1f}")
    print(f"  at 10,000 ev/s: p50 {r['p50_us']:8.1f}  p99 {r['p99_us']:8.1f}  p99.9 {r['p999_us']:8.1f}"
          "   (target p99 < 500)")
