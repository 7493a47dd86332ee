"""`hean up`: every HEAN process on this machine, paper trading, supervised like systemd would.

    hean up [--duration S] [--json] [--no-demo | --demo] [--env-file F] [--state-dir D] [--data-dir D]
            [--sim-port P] [--flatten-on-exit]

Starts the simulator (unless HEAN_BYBIT__REST_URL names another exchange), then
risk, reconciler, executor, watchdog, feed and strategy as separate OS
processes (`python -m hean.cli run <svc>`), each after the previous one logged
"service ready". Children get a private runtime dir (`<state>/run`, ipc
sockets), the data dir (`<state>/data` when the simulator is ours, since its
exchange is new on every run; else `./.hean/data`), and log to
`<state>/logs/<svc>.log` (JSON lines).

Supervision: a child that exits unexpectedly is restarted after 1 s, doubling up
to 30 s (reset after 60 s of good running), logged and counted in
`hean_up_restarts_total{service}` on the `up` metrics port. A child that exits
78 (bad configuration) stops everything: restarting cannot fix a setting.
Ctrl-C / SIGTERM (or the end of `--duration`) stops children in reverse order:
SIGTERM to the child's process group, SIGKILL after STOP_TIMEOUT_S. Each child
runs in its own process group and has PR_SET_PDEATHSIG=SIGKILL, so even a
`kill -9` of this supervisor leaves no orphans. Before stopping it says which
positions and orders stay open on the exchange (read-only REST); with
`--flatten-on-exit` it first stops the strategies, cancels resting orders and
closes positions reduce-only through the executor. `--no-demo` without a
configured strategy (HEAN_STRATEGY__PATHS) starts no strategy runner.

Metrics (up port): hean_up_restarts_total{service}, hean_up_child_up{service}, plus the observer's hean_bus_*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge

from hean.bus import BusStats, Subscriber
from hean.config import EX_CONFIG, BybitSettings, HeanSettings, settings_or_exit
from hean.logging import setup_logging
from hean.metrics import MetricsServer
from hean.ops.account import left_open_text, read_account
from hean.ops.cancel import cancel_text, send_cancel
from hean.ops.locate import pointer_file
from hean.ops.order import send as send_order
from hean.ops.observer import Observer
from hean.sim.settings import SimSettings
from hean.up import demo
from hean.up.child import Child, ChildFailed, http_json
from hean.up.view import View

log = logging.getLogger("hean.up")
ORDER = ("risk", "reconciler", "executor", "watchdog", "feed", "strategy")
READY_TIMEOUT_S = 60.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hean up", description="Run every HEAN process locally (paper trading).")
    p.add_argument("--duration", type=float, default=None, help="run this many seconds after start-up, stop, print a summary")
    p.add_argument("--json", action="store_true", help="the last line printed at the end is a JSON summary")
    p.add_argument("--demo", dest="demo", action="store_true", default=None, help="force the demo defaults on")
    p.add_argument("--no-demo", dest="demo", action="store_false", help="no demo defaults (see hean/demo.py)")
    p.add_argument("--env-file", help="settings file for every process (implies --no-demo unless --demo)")
    p.add_argument("--state-dir", help="logs, ipc sockets and up.json (default: a new temp dir)")
    p.add_argument("--data-dir", help="SQLite files (default: <state>/data with our simulator, else ./.hean/data)")
    p.add_argument("--sim-port", type=int, default=None, help="simulator port (default: from bybit.rest_url; 0=any)")
    p.add_argument("--flatten-on-exit", action="store_true",
                   help="at stop: stop the strategies, cancel resting orders and close positions (reduce-only, "
                        "through the executor), then stop")
    p.add_argument("--skip", action="append", default=[], choices=ORDER, metavar="SERVICE",
                   help="do not start this process (repeatable; for development and tests)")
    return p


class Supervisor:
    def __init__(self, args: argparse.Namespace, settings: HeanSettings, base_env: dict[str, str]) -> None:
        self.args, self.settings = args, settings
        self.own_sim = settings.bybit.rest_url == BybitSettings().rest_url
        self.demo = args.demo if args.demo is not None else not args.env_file
        self.state = Path(args.state_dir or tempfile.mkdtemp(prefix="hean-up-")).resolve()
        default_data = self.state / "data" if self.own_sim else Path(".hean/data")
        self.data = Path(args.data_dir or default_data).resolve()
        env = dict(base_env)
        env.update({"HEAN_RUNTIME_DIR": str(self.state / "run"), "HEAN_DATA_DIR": str(self.data),
                    "PYTHONUNBUFFERED": "1"})
        if args.env_file:
            env["HEAN_ENV_FILE"] = str(Path(args.env_file).resolve())
        if self.demo:
            env.update(demo.settings_env(env))
        self.env = env
        self.registry = CollectorRegistry()
        self.restarts = Counter("hean_up_restarts", "Children restarted by hean up", ["service"],
                                registry=self.registry)
        self.child_up = Gauge("hean_up_child_up", "1 while the child process runs", ["service"],
                              registry=self.registry)
        self.stats = BusStats().register(self.registry)
        self.children: dict[str, Child] = {}
        self.stop_event = asyncio.Event()
        self.exit_code = 0
        self.started = time.time()
        self.up_port = 0
        self.sim_url: str | None = None
        self.view = View(json_mode=args.json, tty=sys.stdout.isatty() and not args.json)
        # Without the demo and without a configured strategy, no strategy runs (the settings' default
        # example strategy is for the demo, not for an operator who asked for none).
        self.no_strategy = not self.demo and "paths" not in settings.strategy.model_fields_set
        self.skip = set(args.skip) | ({"strategy"} if self.no_strategy else set())
        self.account: dict[str, Any] = {}
        self.sim_wallet = SimSettings().initial_balance   # `hean up` composes HEAN and the simulator

    # --- start ------------------------------------------------------------------------------
    def _child(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, self.env if env is None else env, self.state / "logs" / f"{name}.log",
                      self.view, self._on_restart)
        self.children[name] = child
        child.on_change = self.write_state
        # Read at scrape time: 1 exactly while the process runs (the simulator too), whatever restarted it.
        self.child_up.labels(name).set_function(lambda: float(child.running()))
        return child

    def _on_restart(self, name: str, rc: int, delay: float) -> None:
        self.restarts.labels(name).inc()
        self.view.event("restart", {"service": name, "rc": rc, "delay": delay})
        self.write_state()

    async def start_sim(self) -> None:
        port = self.args.sim_port
        if port is None:
            port = urlsplit(self.settings.bybit.rest_url).port or 8900
        argv = ["sim", "--port", str(port), "--symbols", ",".join(self.settings.symbols),
                "--metrics-port", str(self.settings.metrics_port("sim"))]
        # The simulator accepts the key the other processes will sign with. It travels in the
        # environment (private to the process), never on argv (/proc/<pid>/cmdline is world-readable).
        key, secret = self.settings.credentials()
        sim_env = dict(self.env, HEAN_SIM__API_KEY=key, HEAN_SIM__API_SECRET=secret)
        sim = self._child("sim", argv + (demo.SIM_ARGS if self.demo else []), sim_env)
        sim.restartable = False   # a restarted simulator is a different exchange: not a recovery
        await sim.start()
        url = await sim.wait_ready(READY_TIMEOUT_S)
        self.sim_url = str(url)
        host = urlsplit(self.sim_url).netloc
        self.env.update({"HEAN_BYBIT__REST_URL": f"http://{host}",
                         "HEAN_BYBIT__WS_PUBLIC_URL": f"ws://{host}/v5/public/linear",
                         "HEAN_BYBIT__WS_PRIVATE_URL": f"ws://{host}/v5/private"})

    async def run(self) -> int:
        (self.state / "logs").mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        metrics = MetricsServer(self.settings.metrics_host, self.settings.metrics_port("up"), self.registry)
        try:
            self.up_port = await metrics.start()
        except OSError as exc:
            self.view.line(f"hean up: cannot serve metrics on port {self.settings.metrics_port('up')}: "
                           f"{exc.strerror} (another hean up running? set HEAN_METRICS_PORTS__UP)")
            return 1
        sub = Subscriber(self.settings.bus, self.state / "run", self.stats)
        observer = Observer(sub, self.view.event)
        self.view.observation = observer.obs
        bus_stop = asyncio.Event()
        reader = asyncio.create_task(sub.run(bus_stop), name="observer")
        self.view.banner(self)
        try:
            await self._start_all()
            self.write_state()
            pointer_file().write_text(json.dumps({"state_dir": str(self.state), "pid": os.getpid()}))
            self.view.started(self)
            await self._wait_stop()
        except ChildFailed as exc:
            self.view.line(f"hean up: {exc}")
            self.exit_code = exc.exit_code
        finally:
            await self._before_stop()
            await self._stop_all()
            bus_stop.set()
            await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 10)
            sub.close()
            await metrics.stop()
            self._clear_pointer()
            self.write_state()
            self.view.summary(self)
        return self.exit_code

    async def _start_all(self) -> None:
        if self.own_sim:
            await self.start_sim()
        elif self.demo and urlsplit(self.settings.bybit.rest_url).hostname in ("127.0.0.1", "localhost"):
            self.sim_url = self.settings.bybit.rest_url.rstrip("/")   # a simulator we did not start: script it too
        for name in ORDER:
            if name in self.skip:
                continue
            if self.stop_event.is_set():
                return
            child = self._child(name, ["run", name])
            await child.start()
            await child.wait_ready(READY_TIMEOUT_S)
        for name, child in self.children.items():
            child.supervise(self.stop_event, self._fatal)
        if self.demo and self.sim_url:
            await self._script_dip()

    async def _script_dip(self) -> None:
        base = self.sim_url
        try:
            state = await http_json("GET", f"{base}/sim/state")
        except Exception as exc:  # noqa: BLE001 - not a simulator after all: no dip, say so
            self.view.line(f"demo: no simulator control API at {base} ({exc!r}); no scripted dip")
            return
        price = state["prices"].get(demo.DIP_SYMBOL)
        if price is None:
            return
        steps = demo.dip_steps(Decimal(price))
        await http_json("POST", f"{base}/sim/price-path", {"symbol": demo.DIP_SYMBOL, "steps": steps})
        self.view.line(f"demo: scripted a {demo.DIP_SYMBOL} dip to {steps[4][1]} in ~{demo.DIP_START_S + 4:.0f} s")

    def _fatal(self, name: str, rc: int, message: str) -> None:
        self.view.line(f"hean up: {name} exited {rc}: {message}")
        self.exit_code = EX_CONFIG if rc == EX_CONFIG else 1
        self.stop_event.set()

    def request_stop(self) -> None:
        if self.stop_event.is_set():
            for child in self.children.values():   # second Ctrl-C: no more patience
                child.kill()
        self.stop_event.set()

    async def _wait_stop(self) -> None:
        waiter = asyncio.create_task(self.stop_event.wait())
        tasks = {waiter}
        ticker = asyncio.create_task(self.view.live(self))
        if self.args.duration is not None:
            tasks.add(asyncio.create_task(asyncio.sleep(self.args.duration)))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        self.stop_event.set()
        for t in (*tasks, ticker):
            t.cancel()
        await asyncio.gather(*tasks, ticker, return_exceptions=True)

    async def _before_stop(self) -> None:
        """Flatten if asked, then say what stays open on the exchange (and read the money for the summary)."""
        if not self.children or any(not c.running() for n, c in self.children.items() if n in ("sim", "executor")):
            return
        if self.args.flatten_on_exit:
            await self._flatten()
        self.account = await read_account(self.settings, self.sim_url)
        self.view.line(left_open_text(self.account))

    async def _flatten(self) -> None:
        if "strategy" in self.children:
            await self.children["strategy"].stop()     # nothing opens while we close
        runtime = self.state / "run"
        rc, res = await send_cancel(self.settings, runtime, {"all": True}, "hean-up", 15.0)
        nothing = str(res.get("reason", "")).startswith("no open order")
        self.view.line("flatten: " + ("no resting order to cancel" if nothing
                                      else cancel_text(res) if "error" not in res else res["error"]))
        account = await read_account(self.settings, self.sim_url)
        for p in account.get("positions") or []:
            args = argparse.Namespace(action="close", symbol=p["symbol"], qty=None, limit=None, timeout=15.0)
            rc, res = await send_order(args, self.settings, runtime)
            self.view.line(f"flatten: close {p['symbol']} {p['size']}: {res.get('outcome') or res.get('error')}")
        # The reconciler must see the closes land before the final reading: wait for a flat book.
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            account = await read_account(self.settings, self.sim_url)
            if not account.get("positions") and not account.get("open_orders"):
                break
            await asyncio.sleep(0.5)

    async def _stop_all(self) -> None:
        self.stop_event.set()
        for name in reversed(list(self.children)):
            await self.children[name].stop()

    # --- state for `hean status` and tests --------------------------------------------------
    def write_state(self) -> None:
        doc = {"pid": os.getpid(), "started": self.started, "up_metrics_port": self.up_port,
               "runtime_dir": str(self.state / "run"), "data_dir": str(self.data), "sim_url": self.sim_url,
               "demo": self.demo,
               "services": {n: c.describe() for n, c in self.children.items()}}
        tmp = self.state / "up.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.state / "up.json")

    def _clear_pointer(self) -> None:
        try:
            if json.loads(pointer_file().read_text()).get("pid") == os.getpid():
                pointer_file().unlink()
        except (OSError, ValueError):
            pass


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_or_exit(args.env_file, "up", service="up")
    # The supervisor's own log records go to <state>/logs/up.log; the terminal gets the compact view.
    sup = Supervisor(args, settings, dict(os.environ))
    (sup.state / "logs").mkdir(parents=True, exist_ok=True)
    with open(sup.state / "logs" / "up.log", "a", encoding="utf-8") as handle:
        setup_logging("up", settings.log_level, settings.secrets(), stream=handle)
        return asyncio.run(sup.run())
