"""`hean bench tick`: a tick at the feed's WS -> the executor's order request at the exchange.

Real processes (reconciler, risk, executor, feed, strategy) against an in-process simulator
for REST and private WS; the public WS is this bench's own server, sending `tickers.BTCUSDT`
frames at 100 and 1,000 ticks/s whose lastPrice encodes the tick's index. The strategy
(hean.bench.tickstrategy:EveryNth) answers every Nth tick with a resting limit order whose
qty encodes the index; the simulator stamps each order/create's arrival. Latency = arrival -
frame sent, both stamped in this process (one clock). N keeps orders at ~5/s so the
executor's rate limiter never queues them: the figure is the pipeline, not the limiter.

Baseline, same run, same rates: hean.bench.tickbase, a bare three-hop pipeline (WS client ->
ZeroMQ -> filter -> ZeroMQ -> aiohttp POST) in three uvloop + orjson processes.
Footprint: RSS and CPU% of every process, idle and during the 1,000 ticks/s phase.
Journal: the executor's journal insert, NORMAL vs FULL, timed alone (hean.bench.journal).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from hean.bench.journal import compare
from hean.bench.executor import _StampingSim
from hean.sim.settings import SimSettings

SYMBOL = "BTCUSDT"
BASE = Decimal("40000")
PHASES = ((100, 20, 16.0), (1000, 200, 16.0))     # (ticks/s, answer every Nth, seconds)
PROCS = ("reconciler", "risk", "executor", "feed", "strategy")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class TickServer:
    """A public WS that sends tickers frames on demand, and a POST endpoint for the baseline's last hop."""

    def __init__(self) -> None:
        self.clients: list[web.WebSocketResponse] = []
        self.sent: dict[int, int] = {}
        self.base_arrivals: dict[int, int] = {}
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v5/public/linear", self._ws)
        app.router.add_post("/order", self._order)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            data = orjson.loads(msg.data)
            if data.get("op") in ("subscribe", "ping", "unsubscribe"):
                await ws.send_str(orjson.dumps({"success": True, "op": data["op"], "ret_msg": "",
                                                "req_id": data.get("req_id"), "conn_id": "b"}).decode())
                if data["op"] == "subscribe" and ws not in self.clients:
                    self.clients.append(ws)
        if ws in self.clients:
            self.clients.remove(ws)
        return ws

    async def _order(self, request: web.Request) -> web.Response:
        arrived = time.time_ns()
        body = orjson.loads(await request.read())
        self.base_arrivals[int(body["i"])] = arrived
        return web.json_response({"ok": True})

    async def send(self, i: int) -> None:
        price = format(BASE + Decimal(i) / 10, "f")
        frame = orjson.dumps({"topic": f"tickers.{SYMBOL}", "type": "snapshot", "ts": time.time_ns() // 10**6,
                              "cs": i, "data": {"symbol": SYMBOL, "lastPrice": price, "markPrice": price,
                                               "bid1Price": price, "ask1Price": price}}).decode()
        self.sent[i] = time.time_ns()
        for ws in list(self.clients):
            await ws.send_str(frame)

    async def stream(self, rate: int, seconds: float, start: int) -> int:
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for k in range(n):
            await asyncio.sleep(max(0.0, t0 + k / rate - time.perf_counter()))
            await self.send(start + k)
        return start + n


def _proc_sample(pid: int) -> tuple[int, float]:
    """(RSS kB, CPU seconds so far) of one process."""
    try:
        rss = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS")).split()[1])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError):
        return 0, 0.0


async def footprint(pids: dict[str, int], seconds: float) -> dict[str, tuple[int, float]]:
    before = {n: _proc_sample(p) for n, p in pids.items()}
    await asyncio.sleep(seconds)
    after = {n: _proc_sample(p) for n, p in pids.items()}
    return {n: (after[n][0] // 1024, 100 * (after[n][1] - before[n][1]) / seconds) for n in pids}


def _env(tmp: Path, sim: _StampingSim, ws_port: int, n: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}
    env |= {"HEAN_RUNTIME_DIR": str(tmp / "run"), "HEAN_DATA_DIR": str(tmp / "data"), "HEAN_LOG_LEVEL": "WARNING",
            "HEAN_BYBIT__REST_URL": sim.rest_url, "HEAN_BYBIT__WS_PUBLIC_URL": f"ws://127.0.0.1:{ws_port}/v5/public/linear",
            "HEAN_BYBIT__WS_PRIVATE_URL": sim.ws_private_url, "HEAN_SYMBOLS": f'["{SYMBOL}"]',
            "HEAN_STRATEGY__PATHS": f"hean.bench.tickstrategy:EveryNth?n={n}&id=tick", "HEAN_RISK__MARK_MAX_AGE_S": "60"}
    for service in PROCS:
        env[f"HEAN_METRICS_PORTS__{service.upper()}"] = "0"
    return env


async def _spawn(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with open(log, "wb") as out:
        return await asyncio.create_subprocess_exec(sys.executable, *args, env=env, stdout=out, stderr=out)


async def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench tick: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _hean_phase(rate: int, n: int, seconds: float, ticks: TickServer, sim: _StampingSim,
                      start: int) -> tuple[list[float], int]:
    first_order = len(sim.exchange.orders)
    end = await ticks.stream(rate, seconds, start)
    await asyncio.sleep(2)
    lat = []
    for order in list(sim.exchange.orders.values())[first_order:]:
        i = int((order.qty / Decimal("0.001")) - 1) * n
        arrived = sim.arrivals.get(order.order_link_id)
        if arrived and i in ticks.sent:
            lat.append((arrived - ticks.sent[i]) / 1e3)
    return lat, end


async def _base_phase(rate: int, n: int, seconds: float, ticks: TickServer, start: int) -> tuple[list[float], int]:
    ticks.base_arrivals.clear()
    end = await ticks.stream(rate, seconds, start)
    await asyncio.sleep(1)
    return [(t - ticks.sent[i]) / 1e3 for i, t in ticks.base_arrivals.items() if i in ticks.sent], end


async def run(json_out: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hean-bench-tick-"))
    sim = _StampingSim(SimSettings(rate_limit_scale=100.0, volatility=0.0, rest_delay_ms=0, ws_delay_ms=0,
                                   initial_balance=Decimal("1000000000"), symbols=(SYMBOL,), tick_interval_s=5.0))
    await sim.start()
    ticks = TickServer()
    await ticks.start()
    result: dict[str, Any] = {"cpus": os.cpu_count()}
    procs: list[asyncio.subprocess.Process] = []
    i = 0
    try:
        for rate, n, seconds in PHASES:
            base = [await _spawn(["-m", "hean.bench.tickbase", role, str(tmp / "base.ipc"), str(ticks.port), str(n)],
                                 dict(os.environ), tmp / f"base-{role}.log") for role in ("post", "filter", "ws")]
            await _wait(lambda: len(ticks.clients) >= 1, 30, "the baseline's WS client")
            await asyncio.sleep(1)
            lat, i = await _base_phase(rate, n, 1.0, ticks, i)   # warm-up
            lat, i = await _base_phase(rate, n, seconds, ticks, i)
            result[f"base_{rate}_p50_us"], result[f"base_{rate}_p99_us"] = pct(lat, 50), pct(lat, 99)
            for p in base:
                p.terminate()
            await asyncio.gather(*(p.wait() for p in base))
            await _wait(lambda: not ticks.clients, 10, "the baseline to disconnect")
            result[f"base_{rate}_n"] = len(lat)
        env = _env(tmp, sim, ticks.port, PHASES[0][1])
        for rate, n, seconds in PHASES:
            env["HEAN_STRATEGY__PATHS"] = f"hean.bench.tickstrategy:EveryNth?n={n}&id=tick"
            for service in PROCS:
                procs.append(await _spawn(["-m", "hean.cli", "run", service], env, tmp / f"{service}-{rate}.log"))
            await _wait(lambda: len(ticks.clients) >= 1, 60, "the feed's WS connection")
            await asyncio.sleep(5)   # every process up and subscribed
            pids = dict(zip(PROCS, (p.pid for p in procs)))
            if rate == PHASES[-1][0]:
                result["idle"] = await footprint(pids, 3.0)
            _, i = await _hean_phase(rate, n, 1.0, ticks, sim, i)   # warm-up
            task = asyncio.create_task(_hean_phase(rate, n, seconds, ticks, sim, i))
            if rate == PHASES[-1][0]:
                result["busy"] = await footprint(pids, seconds * 0.8)
            lat, i = await task
            for key, p in (("p50", 50), ("p99", 99), ("p99.9", 99.9)):
                result[f"hean_{rate}_{key}_us"] = pct(lat, p)
            result[f"hean_{rate}_n"] = len(lat)
            for p in procs:
                p.terminate()
            await asyncio.gather(*(p.wait() for p in procs))
            procs.clear()
            await _wait(lambda: not ticks.clients, 20, "the feed to disconnect")
        (result["journal_full_p50_us"], result["journal_full_p99_us"]), \
            (result["journal_normal_p50_us"], result["journal_normal_p99_us"]) = compare(tmp / "journal-bench")
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
        await ticks.runner.cleanup()
        await sim.stop()
    if not json_out:
        for key, value in result.items():
            print(f"{key:30s} {value}")
    return result


