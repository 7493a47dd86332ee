"""A simulator process per test, the real `hean preflight` process, and a header-stripping proxy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from tests.utils import PYTHON, ROOT, Proc, hean, hean_env, wait_for

KEY = "preflight-key-4d1c"
SECRET = "preflight-secret-9b7e2f0a5c"
STRIPPED = ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp")


class Venue:
    """One `hean sim` process accepting KEY/SECRET (given through its environment)."""

    def __init__(self, tmp: Path, key: str = KEY, secret: str = SECRET, symbols: str = "BTCUSDT,ETHUSDT") -> None:
        env = hean_env(tmp)
        env.update({"HEAN_SIM__API_KEY": key, "HEAN_SIM__API_SECRET": secret})
        self.proc: Proc = hean(["sim", "--port", "0", "--symbols", symbols], env, "hean sim")
        line = wait_for(lambda: next((x for x in self.proc.lines if x.startswith("HEAN-SIM READY ")), None), 30,
                        "the HEAN-SIM READY line")
        self.rest_url = line.split()[-1]
        self.host = self.rest_url.removeprefix("http://")

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.rest_url}{path}", data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def settings_env(self, tmp: Path, rest_url: str | None = None, ws_private: str | None = None,
                     **extra: str) -> dict[str, str]:
        env = hean_env(tmp)
        env.update({"HEAN_BYBIT__REST_URL": rest_url or self.rest_url,
                    "HEAN_BYBIT__WS_PUBLIC_URL": f"ws://{self.host}/v5/public/linear",
                    "HEAN_BYBIT__WS_PRIVATE_URL": ws_private or f"ws://{self.host}/v5/private",
                    "HEAN_BYBIT__API_KEY": KEY, "HEAN_BYBIT__API_SECRET": SECRET})
        env.update(extra)
        return env

    def stop(self) -> None:
        self.proc.stop()


def preflight(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = subprocess.run([PYTHON, "-m", "hean.cli", "preflight", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def checks(stdout: str) -> dict[str, tuple[str, str]]:
    """{check name: (status, detail)} from the `--json` output."""
    doc = json.loads(stdout.strip().splitlines()[-1])
    return {c["name"]: (c["status"], c["detail"]) for c in doc["checks"]}


@contextmanager
def stripping_proxy(target: str) -> Iterator[str]:
    """A loopback HTTP proxy to `target` that drops the X-Bapi-Limit* headers (as a careless proxy
    or CDN in front of the exchange would); yields its base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def forward(request: web.Request) -> web.Response:
        session: ClientSession = state["session"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, f"{target}{request.path_qs}", headers=headers,
                                   data=await request.read()) as resp:
            body = await resp.read()
            kept = {k: v for k, v in resp.headers.items()
                    if k not in STRIPPED and k.lower() not in ("content-length", "transfer-encoding",
                                                               "content-encoding")}
            return web.Response(status=resp.status, body=body, headers=kept)

    async def start() -> None:
        state["session"] = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        state["runner"] = runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "proxy did not start"
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        async def stop() -> None:
            await state["session"].close()
            await state["runner"].cleanup()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
