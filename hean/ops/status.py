"""`hean status [--json] [--state-dir D] [--listen S] [--env-file F]`: one table of the whole system.

Works against `hean up` and the systemd deployment. Process facts come from
each process's /metrics (up/down, ready, uptime, bus utilisation, drops,
gaps); restarts from `hean up`'s own metrics, else `systemctl show -p
NRestarts <stack>@<svc>` (the stack named after its runtime dir), else "-". Trading state comes from listening on the
bus for `--listen` seconds (state topics are re-published every second):
risk state and drawdown, equity, open positions and their age, time since the
last successful reconcile. Against `hean up`, ports and the runtime dir are
read from `<state dir>/up.json` (state dir: `--state-dir`, else the one the
running `hean up` recorded in the temp dir); otherwise from the settings.
Exit 0 when every process is up, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from hean.bus import BusStats, Subscriber
from hean.config import env_file_path, settings_or_exit
from hean.credentials import deployed_credentials
from hean.ops.account import read_account
from hean.ops.locate import EX_FAILED, EX_OK, EX_USAGE, EXIT_CODES_EPILOG, NoSuchSystem, find_system
from hean.ops.observer import Observer
from hean.ops.output import emit, error, money, pct, quiet_pipe

MONEY_KEYS = ("realised_pnl", "fees", "funding", "unrealised_pnl")
SERVICES = ("risk", "reconciler", "executor", "watchdog", "feed", "strategy")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hean status", description="Status of every HEAN process, the money "
                                "and the open orders.", epilog=EXIT_CODES_EPILOG)
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.add_argument("--state-dir", help="the state dir of a `hean up` (default: the running one, if any)")
    p.add_argument("--listen", type=float, default=2.0, help="seconds to listen to the bus (default 2)")
    p.add_argument("--env-file", help="settings file (default: $HEAN_ENV_FILE or /etc/hean/hean.env)")
    return p


async def _scrape(session: aiohttp.ClientSession, port: int | None) -> dict[str, float] | None:
    if not port:
        return None
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    samples: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            samples[key] = samples.get(key, 0.0) + s.value
    return samples


async def _health(session: aiohttp.ClientSession, port: int | None) -> dict[str, Any] | None:
    """The process's own GET /healthz answer (ready, live, reason), None if it does not answer."""
    if not port:
        return None
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            doc = await resp.json()
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _sum(samples: dict[str, float], name: str, **labels: str) -> float:
    want = [f"|{k}={v}" for k, v in labels.items()]
    return sum(v for k, v in samples.items() if k.split("|", 1)[0] == name and all(w in k for w in want))


def _systemd_restarts(stack: str, svc: str) -> int | None:
    """NRestarts of `<stack>@<svc>`; the stack is named after its runtime dir (/run/hean-b -> hean-b@)."""
    if shutil.which("systemctl") is None:
        return None
    try:
        out = subprocess.run(["systemctl", "show", "-p", "NRestarts", "--value", f"{stack}@{svc}"],
                             capture_output=True, text=True, timeout=3).stdout.strip()
        return int(out) if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _service_row(svc: str, samples: dict[str, float] | None, restarts: int | None, now: float) -> dict[str, Any]:
    if samples is None:
        return {"up": False, "ready": False, "uptime_s": None, "restarts": restarts, "bus": None}
    start = _sum(samples, "hean_start_time_seconds")
    return {"up": True, "ready": _sum(samples, "hean_ready") == 1, "restarts": restarts,
            "uptime_s": round(now - start, 1) if start else None,
            "bus": {"utilization": round(_sum(samples, "hean_bus_queue_utilization"), 4),
                    "dropped": int(_sum(samples, "hean_bus_dropped_total") + _sum(samples, "hean_bus_queue_dropped_total")),
                    "lost": int(_sum(samples, "hean_bus_lost_total")),
                    "send_failed": int(_sum(samples, "hean_bus_send_failed_total"))}}


async def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything `hean status` shows; raises NoSuchSystem for a named state dir that is not there."""
    # Outside systemd, on a deployed host: the stack's own credentials (root can read them), so the
    # exchange account is read with the key the stack trades with, not the simulator's default one.
    deployed, why_not = ({}, None) if os.environ.get("CREDENTIALS_DIRECTORY") else deployed_credentials(env_file_path(args.env_file))
    settings = settings_or_exit(args.env_file, "status", service="status", **({"bybit": deployed} if deployed else {}))
    system = find_system(settings, args.state_dir, SERVICES)
    doc = system.doc
    runtime_dir = system.runtime_dir
    listed = doc.get("services", {}) if doc else {}
    names = [s for s in SERVICES if not doc or s in listed]
    # A stack split across hosts: a process placed on another host has its /metrics there (on its loopback),
    # so this host cannot see it; it is shown as elsewhere, not as down.
    bus = settings.bus
    elsewhere = {s: bus.hosts[s] for s in names if bus.transport == "tcp" and bus.hosts.get(s, bus.tcp_host) != bus.tcp_host}
    account_task = asyncio.create_task(read_account(settings, doc.get("sim_url") if doc else None))
    stats = BusStats()
    sub = Subscriber(settings.bus, runtime_dir, stats)
    observer = Observer(sub)
    stop = asyncio.Event()
    reader = asyncio.create_task(sub.run(stop))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        ports = {s: system.ports.get(s) for s in names}
        scraped = dict(zip(names, await asyncio.gather(*(_scrape(session, ports[s]) for s in names)), strict=True))
        up_samples = await _scrape(session, doc.get("up_metrics_port")) if doc else None
        health = dict(zip(names, await asyncio.gather(*(_health(session, ports[s]) for s in names)), strict=True))
    await asyncio.sleep(args.listen)
    stop.set()
    await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 5)
    sub.close()
    now = time.time()
    services: dict[str, Any] = {}
    for s in names:
        if s in elsewhere:
            services[s] = {"up": None, "ready": None, "uptime_s": None, "restarts": None, "bus": None,
                           "metrics_port": ports[s], "health": None, "host": elsewhere[s]}
            continue
        if up_samples is not None:
            restarts: int | None = int(_sum(up_samples, "hean_up_restarts_total", service=s))
        elif doc:
            restarts = listed.get(s, {}).get("restarts")
        else:
            restarts = _systemd_restarts(system.runtime_dir.name or "hean", s)
        services[s] = {**_service_row(s, scraped[s], restarts, now), "metrics_port": ports[s],
                       "health": health[s]}
    o = observer.obs
    risk = o.risk or {}
    positions = []
    for sym, p in sorted(o.positions.items()):
        if str(p.get("size", "0")) in ("0", "", "0.0") or not p.get("side"):
            continue
        created = p.get("created_time_ms")
        age = round(now - int(created) / 1000, 1) if created not in (None, "", "0", 0) else None
        positions.append({"symbol": sym, "side": p.get("side"), "size": p.get("size"),
                          "avg_price": p.get("avg_price"), "unrealised_pnl": p.get("unrealised_pnl"), "age_s": age})
    last_ok = (o.reconcile or {}).get("last_success_ms")
    account = await account_task
    acct_money = account.get("money") or {}
    # The exchange's reading is newer than the last bus event: its unrealised PnL wins.
    upnl = {p["symbol"]: p.get("unrealised_pnl") for p in account.get("positions") or []}
    for p in positions:
        p["unrealised_pnl"] = upnl.get(p["symbol"], p["unrealised_pnl"])
    return {
        "mode": "up" if doc else "systemd", "all_up": all(v["up"] for v in services.values() if "host" not in v),
        "services": services,
        "risk": {"state": risk.get("state"), "drawdown_pct": risk.get("drawdown_pct")},
        "equity": acct_money.get("equity", (o.equity or {}).get("equity")), "positions": positions,
        **{k: acct_money.get(k) for k in MONEY_KEYS},
        "by_symbol": acct_money.get("by_symbol", {}), "open_orders": account.get("open_orders", []),
        "account_error": account.get("error") and (f"{account['error']}; {why_not}" if why_not else account["error"]),
        "reconciling": (o.reconcile or {}).get("reconciling"),
        "last_reconcile_s": round(now - int(last_ok) / 1000, 1) if last_ok else None,
    }


def _table(st: dict[str, Any]) -> str:
    out = [f"{'SERVICE':<11} {'STATE':<6} {'READY':<6} {'UPTIME':>9} {'RESTARTS':>8} {'BUS UTIL':>8} "
           f"{'DROPS':>6} {'GAPS':>5}"]
    for name, s in st["services"].items():
        bus = s["bus"] or {}
        up = s["uptime_s"]
        uptime = f"{int(up) // 3600}:{int(up) % 3600 // 60:02d}:{int(up) % 60:02d}" if up is not None else "-"
        restarts = "-" if s["restarts"] is None else str(s["restarts"])
        if "host" in s:
            out.append(f"{name:<11} {'remote':<6} {'-':<6} {'-':>9} {'-':>8} {'-':>8} {'-':>6} {'-':>5}  on {s['host']}")
            continue
        out.append(f"{name:<11} {'up' if s['up'] else 'DOWN':<6} {'yes' if s['ready'] else 'no':<6} {uptime:>9} "
                   f"{restarts:>8} {str(bus.get('utilization', '-')):>8} {str(bus.get('dropped', '-')):>6} "
                   f"{str(bus.get('lost', '-')):>5}"
                   + (f"  {s['health']['reason']}" if (s.get("health") or {}).get("reason") else ""))
    risk = st["risk"]
    dd = risk["drawdown_pct"]
    out.append(f"risk: {risk['state'] or 'unknown (no RISK_STATE heard)'}"
               + (f"  drawdown {pct(dd)}%" if dd is not None else "")
               + f"  equity {money(st['equity'])}")
    for p in st["positions"] or []:
        out.append(f"position: {p['symbol']} {p['side']} {p['size']} @ {p['avg_price']} "
                   f"upnl {money(p['unrealised_pnl'])} age {p['age_s']} s")
    if not st["positions"]:
        out.append("positions: none open")
    out += _money_table(st) + _orders_table(st)
    last = st["last_reconcile_s"]
    out.append(f"last reconcile: {f'{last} s ago' if last is not None else 'unknown'}"
               + (" (reconciling now)" if st["reconciling"] else ""))
    return "\n".join(out)


def _money_table(st: dict[str, Any]) -> list[str]:
    if st.get("account_error"):
        return [f"money: unknown ({st['account_error']})"]
    out = [f"{'MONEY (USDT)':<12} {'REALISED':>10} {'FEES':>9} {'FUNDING':>9} {'UNREALISED':>11}"]
    rows = [*st.get("by_symbol", {}).items(), ("total", {k: st.get(k) for k in MONEY_KEYS})]
    for sym, r in rows:
        out.append(f"{sym:<12} {money(r['realised_pnl']):>10} {money(r['fees']):>9} {money(r['funding']):>9} "
                   f"{money(r['unrealised_pnl']):>11}")
    return out


def _orders_table(st: dict[str, Any]) -> list[str]:
    orders = st.get("open_orders") or []
    if not orders:
        return [] if st.get("account_error") else ["open orders: none"]
    out = [f"{'OPEN ORDER':<10} {'SIDE':<4} {'QTY':>8} {'PRICE':>10} {'AGE':>7} {'STRATEGY':<12} LINK ID"]
    for o in orders:
        age = f"{o['age_s']:.0f} s" if o.get("age_s") is not None else "-"
        out.append(f"{o['symbol']:<10} {o['side']:<4} {o['qty']:>8} {o['price']:>10} {age:>7} "
                   f"{o['strategy']:<12} {o['order_link_id'] or '-'}")
    return out


@quiet_pipe
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        st = asyncio.run(collect(args))
    except NoSuchSystem as exc:
        return error("status", str(exc), EX_USAGE)
    emit(_table(st), st, args.json)
    return EX_OK if st["all_up"] else EX_FAILED
