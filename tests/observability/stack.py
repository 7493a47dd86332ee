"""A real monitoring stack for the end-to-end test: `hean up`, Prometheus, Alertmanager and a receiver.

Everything on 127.0.0.1 with free ports and temp dirs, rendered from the shipped templates with
short intervals (1 s scrape / evaluation / grouping), started and stopped by the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.observability.tools import GRAFANA, ROOT, need, render

SERVICES = ("feed", "executor", "reconciler", "risk", "watchdog", "strategy")
STACK = "e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def wait_for(cond: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a server still starting; keep the last error for the message
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


@dataclass
class Notification:
    at: float                     # time.monotonic() when it arrived
    route: str                    # "webhook" | "telegram" | "heartbeat"
    status: str                   # firing | resolved
    alertnames: list[str]
    body: Any


class Receiver:
    """A webhook receiver and a Telegram Bot API stand-in in one aiohttp server (its own thread)."""

    def __init__(self) -> None:
        self.got: list[Notification] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self._webhook)
        app.router.add_post("/heartbeat", self._webhook)
        app.router.add_post("/{bot}/sendMessage", self._telegram)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _webhook(self, request: web.Request) -> web.Response:
        doc = await request.json()
        names = [a["labels"].get("alertname", "") for a in doc.get("alerts", [])]
        self._add(Notification(time.monotonic(), request.path.strip("/"), doc.get("status", ""), names, doc))
        return web.json_response({})

    async def _telegram(self, request: web.Request) -> web.Response:
        doc = await request.json() if request.content_type == "application/json" else dict(await request.post())
        text = str(doc.get("text", ""))
        status = "firing" if text.startswith("FIRING") else "resolved"
        name = text.split()[1] if len(text.split()) > 1 else ""
        self._add(Notification(time.monotonic(), "telegram:" + request.match_info["bot"], status, [name], doc))
        chat = int(doc.get("chat_id", 0) or 0)
        return web.json_response({"ok": True, "result": {"message_id": len(self.got), "date": int(time.time()),
                                                         "chat": {"id": chat, "type": "private"}, "text": text}})

    def _add(self, n: Notification) -> None:
        with self._lock:
            self.got.append(n)

    def find(self, alertname: str, status: str, route_prefix: str, after: float) -> Notification | None:
        with self._lock:
            for n in self.got:
                if n.at >= after and n.status == status and n.route.startswith(route_prefix) \
                        and alertname in n.alertnames:
                    return n
        return None

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class MonitoringStack:
    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    logs: list[Any] = field(default_factory=list)
    up: dict[str, Any] = field(default_factory=dict)
    receiver: Receiver = field(default_factory=Receiver)
    prom_port: int = 0
    am_port: int = 0

    # --- start-up ----------------------------------------------------------------------------
    def start(self) -> None:
        prometheus, alertmanager = need("prometheus"), need("prometheus-alertmanager")
        self.start_hean_up()
        self.receiver.start()
        self.am_port, self.prom_port = free_port(), free_port()
        self.render_configs()
        am_dir = self.tmp / "am"
        am_dir.mkdir()
        self._spawn("alertmanager", [alertmanager, f"--config.file={self.tmp / 'alertmanager.yml'}",
                                     f"--storage.path={am_dir}", f"--web.listen-address=127.0.0.1:{self.am_port}",
                                     "--cluster.listen-address=", "--log.level=warn"])
        wait_for(lambda: self._ok(f"http://127.0.0.1:{self.am_port}/-/ready"), 30, "alertmanager ready")
        self._spawn("prometheus", [prometheus, f"--config.file={self.tmp / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{self.prom_port}",
                                   "--rules.alert.resend-delay=1s", "--log.level=warn"])
        wait_for(lambda: self._ok(f"http://127.0.0.1:{self.prom_port}/-/ready"), 30, "prometheus ready")

    def start_hean_up(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}
        for svc in (*SERVICES, "up"):
            self.ports[svc] = free_port()
            env[f"HEAN_METRICS_PORTS__{svc.upper()}"] = str(self.ports[svc])
        self.ports["sim_api"] = free_port()
        env["HEAN_METRICS_PORTS__SIM"] = str(free_port())   # a sim that serves a metrics port of its own uses this
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env
        state = self.tmp / "state"
        self._spawn("hean-up", [sys.executable, "-m", "hean.cli", "up", "--duration", "900", "--json",
                                "--state-dir", str(state), "--sim-port", str(self.ports["sim_api"])],
                    env=env, stdout=open(self.tmp / "hean-up.out", "wb"))

        def ready() -> dict[str, Any] | None:
            assert self.procs["hean-up"].poll() is None, (self.tmp / "hean-up.out").read_text()[-3000:]
            doc = json.loads((state / "up.json").read_text())
            services = doc.get("services", {})
            return doc if all(services.get(s, {}).get("running") for s in ("sim", *SERVICES)) else None
        self.up = wait_for(ready, 180, "hean up: every process ready", interval=0.5)
        self.ready_at = time.monotonic()
        self.sim_url = self.up["sim_url"].rstrip("/")

    def render_configs(self) -> None:
        metrics_ports = {s: self.ports[s] for s in SERVICES}
        metrics_ports.update(sim=self.ports["sim_api"], up=self.ports["up"])
        stack = {"name": STACK, "host": "127.0.0.1", "metrics_ports": metrics_ports, "max_hold_seconds": 20,
                 "risk": {"soft_pct": 10, "quarantine_pct": 15, "hard_pct": 20, "equity_stale_s": 30}}
        rules = self.tmp / "hean_thresholds.yaml"
        rules.write_text(render("rules/hean_thresholds.yaml.j2", {"hean_stacks": [stack]}))
        variables = {
            "hean_prometheus_scrape_interval": "1s", "hean_prometheus_scrape_timeout": "1s",
            "hean_prometheus_evaluation_interval": "1s",
            "hean_prometheus_rule_files": [str(GRAFANA / "rules/hean_rules.yaml"), str(rules),
                                           str(GRAFANA / "alerts/hean_alerts.yaml")],
            "hean_alertmanager_targets": [f"127.0.0.1:{self.am_port}"], "hean_stacks": [stack],
            "hean_alertmanager_group_wait": "1s", "hean_alertmanager_group_wait_page": "1s",
            "hean_alertmanager_group_interval": "1s", "hean_alertmanager_repeat_interval": "1h",
            "hean_alertmanager_repeat_interval_page": "1h", "hean_alertmanager_resolve_timeout": "5m",
            "hean_alertmanager_telegram_enabled": True,
            "hean_alertmanager_telegram_api_url": f"http://127.0.0.1:{self.receiver.port}",
            "hean_alertmanager_telegram_bot_token": "e2e-test-token", "hean_alertmanager_telegram_chat_id": 42,
            "hean_alertmanager_webhook_enabled": True,
            "hean_alertmanager_webhook_url": f"http://127.0.0.1:{self.receiver.port}/webhook",
            "hean_alertmanager_heartbeat_url": f"http://127.0.0.1:{self.receiver.port}/heartbeat",
            "hean_alertmanager_heartbeat_interval": "2s",
        }
        (self.tmp / "prometheus.yml").write_text(render("prometheus/prometheus.yml.j2", variables))
        (self.tmp / "alertmanager.yml").write_text(render("alertmanager/alertmanager.yml.j2", variables))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, stdout: Any = None) -> None:
        log = stdout or open(self.tmp / f"{name}.log", "wb")
        self.logs.append(log)
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    @staticmethod
    def _ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200

    # --- reading ------------------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        doc = http_json(url)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def api(self, path: str) -> Any:
        return http_json(f"http://127.0.0.1:{self.prom_port}{path}")["data"]

    def pid(self, service: str) -> int:
        return int(self.up["services"][service]["pid"])

    # --- shutdown -----------------------------------------------------------------------------
    def stop(self) -> None:
        for name in ("prometheus", "alertmanager", "hean-up"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.receiver.stop()
        for f in self.logs:
            f.close()
