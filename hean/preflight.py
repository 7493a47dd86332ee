"""`hean preflight`: check the exchange account before trading on it.

    hean preflight [--env-file F] [--json] [--place-test-order]

Run against testnet or mainnet before going live (the deploy runs it before it
starts live mode). It uses the processes' own settings and client code
(`hean.exchange.connect`), so it talks to exactly what they would: the live URLs
in live mode, the simulator in paper mode. One line per check, PASS / WARN / FAIL
and a detail; no secret is ever printed (the key info answer is read, never shown).

Checks: live mode points at a real exchange (not loopback); the exchange answers; local clock against the recv window; the API key is
read-write with ContractTrade Order+Position, bound to IPs, not about to expire;
a unified trading account; one-way position mode on every symbol; instrument
filters of every configured symbol; X-Bapi-Limit* headers on private answers; the
private WebSocket authenticates and subscribes; with --place-test-order, a tiny
PostOnly buy far below the market (a buy below the market is inside Bybit's price
band, which bounds buys from above) is placed, found by orderLinkId, cancelled.

Exit status: 0 when nothing FAILed (WARN allowed), 1 when any check FAILed,
78 for bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from hean.config import ConfigError, HeanSettings, print_config_error, settings_or_exit
from hean.exchange import connect
from hean.exchange.account import api_key_info
from hean.exchange.bybit import BybitRestClient
from hean.exchange.bybit import constants as c
from hean.exchange.bybit.errors import ExchangeUnavailable, is_loopback_host
from hean.exchange.bybit.filters import InstrumentFilter
from hean.preflight_order import place_and_cancel

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
DAY_MS = 86_400_000
EXPIRY_WARN_DAYS = 14
WS_TIMEOUT_S = 15.0
UNIFIED_STATUSES = {3, 4, 5, 6}   # account/info unifiedMarginStatus: 1 = classic account
# retCodes that refuse the key itself, and which check they answer (SPEC §5, §7.4).
KEY_REFUSALS = {
    "33004": ("key expiry", "the key has expired"),
    "10010": ("key ip binding", "this machine's IP is not among the key's bound IPs"),
    "10003": ("", "the exchange does not know this API key (testnet key on mainnet, or the reverse?)"),
    "10004": ("", "signature refused: wrong API secret"),
}
LIMIT_HEADERS = (c.HEADER_LIMIT, c.HEADER_LIMIT_STATUS, c.HEADER_LIMIT_RESET)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


class ObservedClient(BybitRestClient):
    """The processes' REST client, remembering which X-Bapi-Limit* headers each path answered with."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit_headers: dict[str, dict[str, bool]] = {}

    def _apply_limit_headers(self, path: str, headers: Any) -> float | None:
        self.limit_headers[path] = {h: headers is not None and headers.get(h) is not None for h in LIMIT_HEADERS}
        return super()._apply_limit_headers(path, headers)


class Preflight:
    def __init__(self, settings: HeanSettings, client: ObservedClient) -> None:
        self.settings, self.client = settings, client
        self.checks: list[Check] = []
        self.private_paths: list[str] = []

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    async def private(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        self.private_paths.append(path)
        resp = await self.client.call("GET", path, params)
        if not resp.ok:
            raise ExchangeUnavailable(f"{path}: retCode={resp.ret_code} {resp.error or resp.ret_msg}".strip())
        return resp.result

    async def run(self, place_test_order: bool) -> list[Check]:
        s = self.settings
        self.endpoints()
        try:
            await self.client.start()   # clock sync + instruments, as every process does at start
        except (ExchangeUnavailable, OSError) as exc:
            self.add("exchange", FAIL, f"{self.client.base_url} did not answer: {exc}")
            return self.checks
        self.add("exchange", PASS, f"{self.client.base_url} answers ({s.mode} mode)")
        self.clock()
        await self.api_key()
        await self.unified()
        await self.position_mode()
        for symbol in s.symbols:
            self.instrument(symbol)
        self.rate_limit_headers()
        await self.private_ws()
        if place_test_order:
            name, status, detail = await place_and_cancel(self.client, s.symbols[0])
            self.add(name, status, detail)
        return self.checks

    def endpoints(self) -> None:
        b = self.settings.bybit
        urls = (b.rest_url, b.ws_public_url, b.ws_private_url)
        local = [u for u in urls if is_loopback_host(urlsplit(u).hostname)]
        if self.settings.mode == "live" and local:
            self.add("endpoints", FAIL, f"live mode on loopback URLs ({', '.join(local)}): set HEAN_BYBIT__REST_URL, "
                     "__WS_PUBLIC_URL and __WS_PRIVATE_URL to Bybit's (mainnet or testnet)")
        elif self.settings.mode == "live":
            self.add("endpoints", PASS, f"live: {', '.join(urls)}")
        else:
            self.add("endpoints", PASS, f"paper: {', '.join(urls)}")

    def clock(self) -> None:
        offset = self.client.server_time_ms() - int(time.time() * 1000)
        window = self.settings.bybit.recv_window_ms
        detail = f"local clock {-offset:+d} ms from the exchange's (recv window {window} ms)"
        # Bybit accepts server_time - recv_window <= timestamp < server_time + 1000. HEAN signs with
        # the measured offset, but a clock this far off drifts out again between measurements.
        if abs(offset) >= window:
            self.add("clock", FAIL, detail + ": fix NTP on this machine")
        elif offset <= -1000 or abs(offset) >= window / 2:
            self.add("clock", WARN, detail + ": close to the window, check NTP")
        else:
            self.add("clock", PASS, detail)

    async def api_key(self) -> None:
        self.private_paths.append("/v5/user/query-api")
        try:
            info = await api_key_info(self.client)
        except ExchangeUnavailable as exc:
            owner, why = next(((n, w) for code, (n, w) in KEY_REFUSALS.items() if f"retCode={code}" in str(exc)),
                              ("", "the exchange refused the key"))
            for name in ("key permissions", "key ip binding", "key expiry"):
                self.add(name, FAIL, f"{why}: {exc}" if name == owner or not owner else f"not readable: {why}")
            return
        perms = info.get("permissions") or {}
        contract = list(perms.get("ContractTrade") or [])
        if info.get("readOnly") not in (0, "0", False):
            self.add("key permissions", FAIL, "read-only key: HEAN needs read-write")
        elif not {"Order", "Position"} <= set(contract):
            self.add("key permissions", FAIL, f"ContractTrade needs Order and Position (has {contract or 'none'})")
        elif perms.get("Wallet"):
            self.add("key permissions", WARN, f"read-write, ContractTrade {contract}; also Wallet {perms['Wallet']}: "
                     "a trading key should not move money")
        else:
            self.add("key permissions", PASS, f"read-write, ContractTrade {contract}")
        ips = [str(ip) for ip in info.get("ips") or []]
        if not ips or "*" in ips:
            self.add("key ip binding", FAIL, "not bound to IP addresses: anyone with the secret can trade, and "
                     "Bybit expires unbound keys after 90 days; bind it to this server's IP")
        else:
            self.add("key ip binding", PASS, f"bound to {', '.join(ips)}")
        self.expiry(info)

    def expiry(self, info: dict[str, Any]) -> None:
        text = str(info.get("expiredAt") or "")
        try:
            expiry_ms = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            self.add("key expiry", WARN, f"expiry not readable ({text!r})")
            return
        if expiry_ms <= 0:   # 1970-01-01: a key that does not expire
            self.add("key expiry", PASS, "does not expire")
            return
        days = (expiry_ms - self.client.server_time_ms()) / DAY_MS
        if days <= 0:
            self.add("key expiry", FAIL, f"expired at {text}")
        elif days < EXPIRY_WARN_DAYS:
            self.add("key expiry", WARN, f"expires in {days:.1f} days ({text}): renew it")
        else:
            self.add("key expiry", PASS, f"expires in {days:.0f} days ({text})")

    async def unified(self) -> None:
        try:
            info = await self.private("/v5/account/info", {})
        except ExchangeUnavailable as exc:
            self.add("unified account", FAIL, str(exc))
            return
        status = info.get("unifiedMarginStatus")
        if status in UNIFIED_STATUSES:
            self.add("unified account", PASS, f"unified trading account (unifiedMarginStatus {status})")
        else:
            self.add("unified account", FAIL, f"not a unified trading account (unifiedMarginStatus {status}): "
                     "HEAN trades the UNIFIED wallet; upgrade the account")

    async def position_mode(self) -> None:
        hedged, failed = [], []
        for symbol in self.settings.symbols:
            try:
                rows = (await self.private(c.PATH_POSITION_LIST, {"category": c.CATEGORY, "symbol": symbol})
                        ).get("list") or []
            except ExchangeUnavailable as exc:
                failed.append(f"{symbol}: {exc}")
                continue
            if any(str(row.get("positionIdx", 0)) != "0" for row in rows):
                hedged.append(symbol)
        if failed:
            self.add("position mode", FAIL, "; ".join(failed))
        elif hedged:
            self.add("position mode", FAIL, f"hedge mode on {', '.join(hedged)}: HEAN sends positionIdx 0, switch "
                     "to one-way (POST /v5/position/switch-mode, with no position or order open)")
        else:
            self.add("position mode", PASS, f"one-way on {', '.join(self.settings.symbols)}")

    def instrument(self, symbol: str) -> None:
        f: InstrumentFilter | None = self.client.instruments.get(symbol)
        if f is None:
            self.add(f"instrument {symbol}", FAIL, "not listed as a linear instrument on this exchange")
            return
        self.add(f"instrument {symbol}", PASS,
                 f"tick {f.tick_size}, qty step {f.qty_step}, min qty {f.min_qty}, max market qty {f.max_mkt_qty}, "
                 f"min notional {f.min_notional}")

    def rate_limit_headers(self) -> None:
        seen = self.client.limit_headers
        missing = sorted({p for p in self.private_paths if p in seen and not all(seen[p].values())})
        answered = [p for p in self.private_paths if p in seen]
        if not answered:
            self.add("rate-limit headers", FAIL, "no private request was answered")
        elif missing:
            self.add("rate-limit headers", FAIL, f"no {'/'.join(LIMIT_HEADERS)} on {', '.join(missing)}: HEAN "
                     "cannot follow the exchange's limits (a proxy stripping headers?)")
        else:
            self.add("rate-limit headers", PASS, f"present on {len(set(answered))} private endpoints")

    async def private_ws(self) -> None:
        failure: list[str] = []
        connected = asyncio.Event()

        class Catch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage() == "ws connection failed" and getattr(record, "ws", "") == "preflight":
                    failure.append(str(getattr(record, "error", "connection failed")))
                    connected.set()

        async def ignore(_: dict[str, Any]) -> None:
            return None

        ws_log = logging.getLogger("hean.exchange.ws")
        catch = Catch()
        ws_log.addHandler(catch)
        stop = asyncio.Event()
        try:
            ws = connect.websocket(self.settings, private=True, topics=["order", "execution", "position", "wallet"],
                                   on_message=ignore, name="preflight", clock_ms=self.client.server_time_ms)
        except ConfigError as exc:
            self.add("private ws", FAIL, str(exc))
            return
        runner = asyncio.create_task(ws.run(stop))
        waiter = asyncio.create_task(ws.connected.wait())
        failed = asyncio.create_task(connected.wait())
        try:
            await asyncio.wait({waiter, failed}, timeout=WS_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            for task in (waiter, failed):
                task.cancel()
            await asyncio.gather(runner, waiter, failed, return_exceptions=True)
            ws_log.removeHandler(catch)
        url = self.settings.bybit.ws_private_url
        if ws.connected.is_set() or (waiter.done() and not waiter.cancelled()):
            self.add("private ws", PASS, f"{url}: authenticated, subscribed to order, execution, position, wallet")
        elif failure:
            self.add("private ws", FAIL, f"{url}: {failure[0]}")
        else:
            self.add("private ws", FAIL, f"{url}: no answer within {WS_TIMEOUT_S:.0f} s")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hean preflight", description="Check the exchange account before trading.")
    p.add_argument("--env-file", help="settings file (default: $HEAN_ENV_FILE or /etc/hean/hean.env)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the lines")
    p.add_argument("--place-test-order", action="store_true",
                   help="also place, find and cancel a tiny PostOnly buy far below the market")
    return p


async def _run(settings: HeanSettings, place_test_order: bool) -> list[Check]:
    client = connect.rest_client(settings, client_cls=ObservedClient)
    assert isinstance(client, ObservedClient)
    try:
        return await Preflight(settings, client).run(place_test_order)
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_or_exit(args.env_file, "preflight", service="preflight")
    from hean.logging import setup_logging
    setup_logging("preflight", "WARNING", settings.secrets(), stream=sys.stderr)
    try:
        checks = asyncio.run(_run(settings, args.place_test_order))
    except ConfigError as exc:
        print_config_error("preflight", exc)
        return 78
    ok = not any(ch.status == FAIL for ch in checks)
    if args.json:
        print(json.dumps({"ok": ok, "mode": settings.mode, "rest_url": settings.bybit.rest_url,
                          "checks": [asdict(ch) for ch in checks]}))
    else:
        for ch in checks:
            print(f"{ch.status}  {ch.name:<22} {ch.detail}")
        print(f"preflight: {'ok' if ok else 'FAILED'} ({sum(ch.status == FAIL for ch in checks)} failed, "
              f"{sum(ch.status == WARN for ch in checks)} warnings)")
    return 0 if ok else 1
