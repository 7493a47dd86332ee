"""Bus benchmark: HEAN's bus against the baselines a Python developer would compare it with.

All throughput figures are measured in each of ROUNDS interleaved rounds, between two OS processes
on this machine, over ipc, for ~2 s each:
  (a) raw pyzmq, 200-byte single frames, blocking send/recv   -> the wire limit
  (b) blocking pyzmq sending the same event dicts via orjson   -> the Python limit
  (c) the HEAN bus: Publisher -> Subscriber -> handler, real envelope, critical class (lossless)
  (c') (c) over tcp on loopback with CURVE forced on             -> what security costs
  (d) multiprocessing.Queue with the same dicts                -> what one would otherwise pick
(b) and (c) also report the receiving process's CPU per event (`time.process_time`, its ZeroMQ I/O
thread included): events/s depend on how much of 2 vCPUs the subscriber gets while other work runs,
CPU per event much less, so (b)/(c) in CPU is the comparison that holds from one host to the next.
Then the one-hop latency (publish call -> handler) at 1,000 and 10,000 events/s, at 10,000 over CURVE,
and of blocking pyzmq + orjson at 10,000 (what this machine's scheduler allows any Python pair).
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
    first = cpu0 = None
    n = 0
    while True:
        msg = s.recv()
        if msg == END:
            break
        if codec != "raw":
            orjson.loads(msg)
        if first is None:
            first, cpu0 = time.perf_counter(), time.process_time()
        n += 1
    out.put((n / (time.perf_counter() - (first or time.perf_counter())),
             (time.process_time() - (cpu0 or 0.0)) / max(n, 1) * 1e6))
    s.close()
    ctx.term()


def _zmq_rate_pub(ep: str, rate: float) -> None:
    """The latency baseline: blocking pyzmq at `rate`, busy-waiting between sends (no timer in the way)."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.XPUB)
    s.bind(ep)
    s.recv()
    time.sleep(0.2)
    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < 3.0:
        if n < (now - start) * rate:
            s.send(orjson.dumps({"t": time.perf_counter_ns(), "ev": make_event(n)}))
            n += 1
        else:
            time.sleep(0.0001)
    s.send(END)
    s.close(linger=-1)
    ctx.term()


def _zmq_rate_sub(ep: str, rate: float, out: Any) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(ep)
    lat = []
    while (msg := s.recv()) != END:
        lat.append((time.perf_counter_ns() - orjson.loads(msg)["t"]) / 1000)
    out.put(lat[len(lat) // 6:])
    s.close()
    ctx.term()


# --- (c): the HEAN bus ------------------------------------------------------------------------
def _bus_settings(curve: str = "") -> Any:
    """ipc, or with `curve` (a keys directory:port) tcp on loopback with CURVE forced on."""
    from hean.config import BusSettings
    if not curve:
        return BusSettings(sndhwm=10_000, rcvhwm=10_000, queue_size=10_000)
    keys, _, base = curve.rpartition(":")
    return BusSettings(sndhwm=10_000, rcvhwm=10_000, queue_size=10_000, transport="tcp",
                       tcp_base_port=int(base), curve="on", curve_keys_dir=keys)


def _curve_spec(tmp: str) -> str:
    """Write a keypair and find two free adjacent loopback ports for the `bench` publisher."""
    import socket
    from hean.bus.endpoints import PUBLISHERS
    from hean.bus.security import write_keys
    write_keys(Path(tmp) / "keys", ["bench"])
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return f"{tmp}/keys:{port - 2 * PUBLISHERS.index('bench')}"
    raise RuntimeError("no two adjacent free ports")


def _hean_pub(runtime: str, rate: float, duration: float, curve: str = "") -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(_hean_pub_async(Path(runtime), rate, duration, curve))


async def _hean_pub_async(runtime: Path, rate: float, duration: float, curve: str) -> None:
    from hean.bus import BusStats, Publisher
    # Flat out, backpressure is the point of the exercise: its WARNING lines would only be noise here.
    logging.getLogger("hean.bus").setLevel(logging.ERROR)
    pub = Publisher(_bus_settings(curve), runtime, "bench", BusStats()).bind()
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


def _hean_sub(runtime: str, latency: bool, curve: str, out: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(_hean_sub_async(Path(runtime), latency, curve, out))


async def _hean_sub_async(runtime: Path, latency: bool, curve: str, out: Any) -> None:
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
            state["first"], state["cpu0"] = time.perf_counter(), time.process_time()
        state["n"] += 1

    sub = Subscriber(_bus_settings(curve), runtime, BusStats()).connect("bench").on("order.", on_event)
    await sub.run(stop)
    sub.close()
    if latency:
        lat = state["lat"][len(state["lat"]) // 6:]  # drop the warm-up sixth
        out.put(lat)
    else:
        # (events/s, CPU us per event of the whole subscriber process: its ZeroMQ I/O thread included)
        out.put((state["n"] / (state["end"] - state["first"]),
                 (time.process_time() - state["cpu0"]) / max(state["n"], 1) * 1e6))


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


ROUNDS = 3


def _one_round(ctx: Any, tmp: str, curve: str) -> dict[str, Any]:
    """Every figure once, baselines and HEAN back to back, so a load change hits all of them alike."""
    res: dict[str, Any] = {}
    for name, codec in (("raw_pyzmq", "raw"), ("orjson_pyzmq", "orjson")):
        ep = f"ipc://{tmp}/{codec}.sock"
        res[f"{name}_eps"], res[f"{name}_cpu_us"] = _pair(ctx, _zmq_pub, (ep, codec), _zmq_sub, (ep, codec))
    res["hean_bus_eps"], res["hean_bus_cpu_us"] = _pair(ctx, _hean_pub, (tmp, 0.0, RUN_S), _hean_sub,
                                                        (tmp, False, ""))
    res["hean_curve_eps"], res["hean_curve_cpu_us"] = _pair(ctx, _hean_pub, (tmp, 0.0, RUN_S, curve), _hean_sub,
                                                            (tmp, False, curve))
    q = ctx.Queue(maxsize=10_000)
    res["mp_queue_eps"] = _pair(ctx, _mpq_put, (q,), _mpq_get, (q,))
    for rate, suffix, spec in ((1000, "_1k", ""), (10_000, "", ""), (10_000, "_curve", curve)):
        lat = _pair(ctx, _hean_pub, (tmp, float(rate), 3.0, spec), _hean_sub, (tmp, True, spec))
        res[f"p50_us{suffix}"] = statistics.median(lat)
        res[f"p99_us{suffix}"] = _pct(lat, 99)
        res[f"p999_us{suffix}"] = _pct(lat, 99.9)
    lat = _pair(ctx, _zmq_rate_pub, (f"ipc://{tmp}/lat.sock", 10_000.0), _zmq_rate_sub,
                (f"ipc://{tmp}/lat.sock", 10_000.0))
    res["p50_us_pyzmq"], res["p99_us_pyzmq"], res["p999_us_pyzmq"] = (
        statistics.median(lat), _pct(lat, 99), _pct(lat, 99.9))
    res["hean_vs_orjson_pyzmq"] = res["hean_bus_eps"] / res["orjson_pyzmq_eps"]
    # The load-independent form of the same comparison: receiving CPU per event, (b) over (c).
    res["hean_vs_orjson_pyzmq_cpu"] = res["orjson_pyzmq_cpu_us"] / res["hean_bus_cpu_us"]
    res["hean_vs_mp_queue"] = res["hean_bus_eps"] / res["mp_queue_eps"]
    res["curve_vs_plain"] = res["hean_curve_eps"] / res["hean_bus_eps"]
    return res


async def run(json_out: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="hean-bench-")
    curve = _curve_spec(tmp)
    loop = asyncio.get_running_loop()
    load_before = os.getloadavg()[0]
    rounds = [await loop.run_in_executor(None, _one_round, ctx, tmp, curve) for _ in range(ROUNDS)]
    # Medians over interleaved rounds, with the spread, so one unlucky second on a shared box shows as spread.
    res: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    res["spread"] = {k: [min(r[k] for r in rounds), max(r[k] for r in rounds)] for k in rounds[0]}
    res["rounds"] = ROUNDS
    res["cpus"] = os.cpu_count()
    res["load_avg_1m"] = [load_before, os.getloadavg()[0]]
    _print_table(res)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}


def _print_table(r: dict[str, Any]) -> None:
    sp = r["spread"]

    def rng(key: str, fmt: str) -> str:
        return f"[{format(sp[key][0], fmt)} .. {format(sp[key][1], fmt)}]"

    rows = [
        ("(a) raw pyzmq, 200 B frames", "raw_pyzmq_eps"),
        ("(b) blocking pyzmq + orjson dicts", "orjson_pyzmq_eps"),
        ("(c) HEAN bus (envelope, seq check, queue, handler)", "hean_bus_eps"),
        ("(c') HEAN bus over CURVE tcp (loopback)", "hean_curve_eps"),
        ("(d) multiprocessing.Queue, same dicts", "mp_queue_eps"),
    ]
    print(f"median of {r['rounds']} interleaved rounds [min .. max]; load average {r['load_avg_1m'][0]:.1f}"
          f" -> {r['load_avg_1m'][1]:.1f} on {r['cpus']} cpus")
    print("throughput between two processes (events/s):")
    for label, key in rows:
        print(f"  {label:<52} {r[key]:>10,.0f}  {rng(key, ',.0f')}")
    print(f"  (c)/(b) = {r['hean_vs_orjson_pyzmq']:.2f} {rng('hean_vs_orjson_pyzmq', '.2f')}   (target >= 0.50)")
    print(f"  receiving CPU per event (us): (b) {r['orjson_pyzmq_cpu_us']:.2f} {rng('orjson_pyzmq_cpu_us', '.2f')},"
          f" (c) {r['hean_bus_cpu_us']:.2f} {rng('hean_bus_cpu_us', '.2f')};"
          f" (b)/(c) = {r['hean_vs_orjson_pyzmq_cpu']:.2f} {rng('hean_vs_orjson_pyzmq_cpu', '.2f')}"
          "   (the same comparison, independent of other load)")
    print(f"  (c)/(d) = {r['hean_vs_mp_queue']:.2f} {rng('hean_vs_mp_queue', '.2f')}   (target >= 3)")
    print(f"  CURVE cost: (c')/(c) = {r['curve_vs_plain']:.2f} {rng('curve_vs_plain', '.2f')}")
    print("HEAN bus one-hop latency, publish() -> handler (us):")
    for label, sfx in (("  1,000 ev/s", "_1k"), (" 10,000 ev/s", ""), (" 10k, CURVE ", "_curve"),
                       (" 10k, pyzmq ", "_pyzmq")):
        print(f"  at {label}: p50 {r['p50_us' + sfx]:8.1f}  p99 {r['p99_us' + sfx]:8.1f} {rng('p99_us' + sfx, '.0f')}"
              f"  p99.9 {r['p999_us' + sfx]:8.1f}")
