"""HEAN deployed by ansible-playbook over SSH onto a bare Debian 12 "VPS" (systemd as PID 1 in
systemd-nspawn), then operated the way a user would: systemctl, journalctl, kill, hean status.
Timings (deploy, re-deploy, rollback, MTTR per process) are printed, never asserted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from deployment import PROCESSES, STACK_A, STACK_B, UNITS, port_of, ready, recap, sample, timing

from hean.chaos import invariants as inv
from hean.exchange.bybit import BybitRestClient
from hean.ids import INTENT_PREFIX
from prometheus_client import CollectorRegistry
from tests.observability.stack import free_port, http_json
from tests.observability.tools import need, render
from tests.utils import wait_for

pytestmark = pytest.mark.slow


def test_every_unit_of_both_stacks_active_and_ready(deployed):
    for stack in (STACK_A, STACK_B):
        for svc in UNITS:
            wait_for(lambda s=stack, v=svc: ready(deployed, s, v), 90, f"{stack['name']}@{svc} active and ready")
        assert deployed.vps.exec("systemctl", "is-active", f"{stack['name']}.target").stdout.strip() == "active"
        assert deployed.vps.exec("systemctl", "is-enabled", f"{stack['name']}.target").stdout.strip() == "enabled"
    # the stacks are independent: own state, runtime and config directories
    out = deployed.vps.sh("ls /var/lib/hean /var/lib/hean-b /run/hean /run/hean-b /etc/hean /etc/hean-b")
    assert "executor.sqlite" in out and "executor-critical.sock" in out
    # trading happens (the signing processes got their credential: the simulator accepts only that key)
    wait_for(lambda: (sample(port_of(STACK_A, "executor"), "hean_executor_orders_placed_total") or 0) > 0, 90,
             "orders placed through the executor")


def test_prometheus_scrapes_every_process_of_both_stacks_up(deployed, tmp_path):
    # The host's Prometheus, with the shipped scrape config rendered from the deployed ports (the
    # container shares the host's loopback), must see every process of both stacks with up == 1.
    prometheus = need("prometheus")
    stacks = [{"name": st["name"], "metrics_ports": {svc: port_of(st, svc) for svc in UNITS}} for st in (STACK_A, STACK_B)]
    (tmp_path / "prometheus.yml").write_text(render("prometheus/prometheus.yml.j2", {
        "hean_prometheus_scrape_interval": "1s", "hean_prometheus_scrape_timeout": "1s",
        "hean_prometheus_evaluation_interval": "1s", "hean_prometheus_rule_files": [],
        "hean_alertmanager_targets": [], "hean_stacks": stacks}))
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wanted = {(st["name"], svc, f"127.0.0.1:{p}") for st in stacks for svc, p in st["metrics_ports"].items()}

        def up_targets() -> set[tuple[str, str, str]]:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                doc = http_json(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": "up == 1"}))
            except OSError:   # not listening yet
                return set()
            return {(r["metric"]["stack"], r["metric"]["service"], r["metric"]["instance"]) for r in doc["data"]["result"]}

        t0 = time.monotonic()
        wait_for(lambda: up_targets() >= wanted, 60, f"up == 1 for all {len(wanted)} targets", interval=0.5)
        timing("prometheus: start -> every target up == 1", time.monotonic() - t0)
        assert up_targets() == wanted   # and nothing else is scraped
    finally:
        proc.terminate()
        proc.wait(30)


def test_second_run_changes_nothing_and_check_mode_works(deployed):
    out, took = deployed.playbook("deploy.yml")
    timing("re-deploy (nothing changed)", took)
    assert out.returncode == 0 and recap(out)["changed"] == 0, out.stdout[-5000:]
    out, took = deployed.playbook("deploy.yml", "rel-a", "--check")
    timing("re-deploy --check", took)
    assert out.returncode == 0 and recap(out)["changed"] == 0, out.stdout[-5000:]


def test_memory_deny_write_execute_is_on_and_harmless(deployed):
    # The live processes run with it (they are ready, above); this shows it is really enforced and
    # that uvloop, pyzmq (with its I/O thread), orjson and aiohttp do real work under it.
    assert deployed.show("hean@executor.service", "MemoryDenyWriteExecute")["MemoryDenyWriteExecute"] == "yes"
    script = (
        "import asyncio, mmap, orjson, uvloop, zmq, zmq.asyncio, aiohttp\n"
        "async def main():\n"
        "    ctx = zmq.asyncio.Context(); a = ctx.socket(zmq.PAIR); b = ctx.socket(zmq.PAIR)\n"
        "    a.bind('inproc://x'); b.connect('inproc://x')\n"
        "    await a.send(orjson.dumps({'ok': 1})); assert orjson.loads(await b.recv()) == {'ok': 1}\n"
        "    async with aiohttp.ClientSession() as s: pass\n"
        "    a.close(); b.close(); ctx.term()\n"
        "uvloop.run(main())\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC); print('WX-ALLOWED')\n"
        "except OSError:\n"
        "    print('WX-DENIED')\n"
    )
    out = deployed.vps.exec(
        "systemd-run", "--wait", "--pipe", "--quiet", "--collect", "-p", "User=hean", "-p", "MemoryDenyWriteExecute=yes",
        "-p", "SystemCallFilter=@system-service", "-p", "SystemCallArchitectures=native",
        "/opt/hean/current/venv/bin/python", "-c", script, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "WX-DENIED", out.stdout


def test_kill_9_of_each_process_is_restarted_and_trading_resumes(deployed):
    # The simulator killed is stack B's: it stands in for the exchange, and a restarted one has
    # forgotten its positions, so stack A's reconciler would rightly see a position mismatch and risk
    # go (and stay) QUARANTINE whenever a position was open, which made trading resume only by luck.
    mttr = {}
    for stack, svc in [(STACK_A, p) for p in PROCESSES] + [(STACK_B, "sim")]:
        unit = f"{stack['name']}@{svc}.service"
        wait_for(lambda s=stack, v=svc: ready(deployed, s, v), 90, f"{unit} ready before the kill")
        before = deployed.show(unit, "MainPID", "NRestarts")
        t0 = time.monotonic()
        os.kill(host_pid(deployed, int(before["MainPID"])), signal.SIGKILL)
        wait_for(lambda u=unit, p=before["MainPID"]: deployed.show(u, "MainPID")["MainPID"] not in ("0", p), 30,
                 f"{unit} restarted")
        wait_for(lambda s=stack, v=svc: ready(deployed, s, v), 60, f"{unit} ready again")
        mttr[unit] = time.monotonic() - t0
        after = deployed.show(unit, "NRestarts")
        assert int(after["NRestarts"]) > int(before["NRestarts"]), (unit, before, after)
    for unit, took in mttr.items():
        print(f"[MTTR] kill -9 {unit}: {took:.2f} s (kill -> active and ready)")
    placed = sample(port_of(STACK_A, "executor"), "hean_executor_orders_placed_total") or 0
    wait_for(lambda: (sample(port_of(STACK_A, "executor"), "hean_executor_orders_placed_total") or 0) > placed,
             120, "orders placed again after the kills")


def host_pid(dep, pid_inside: int) -> int:
    """The container's PID namespace is private: find the host PID of a process inside by NSpid."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        m = re.search(r"(?m)^NSpid:\s+(\d+)\s+(\d+)$", text)
        if m and int(m.group(2)) == pid_inside and _in_container(dep, int(m.group(1))):
            return int(m.group(1))
    raise AssertionError(f"no host pid for {pid_inside}")


def _in_container(dep, host_pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{host_pid}/ns/pid") == os.readlink(f"/proc/{dep.vps.leader}/ns/pid")
    except OSError:
        return False


def test_sigstop_is_killed_by_the_watchdog_and_restarted(deployed):
    unit = "hean@watchdog.service"
    wait_for(lambda: ready(deployed, STACK_A, "watchdog"), 90, "watchdog ready")
    before = deployed.show(unit, "MainPID", "NRestarts", "WatchdogUSec")
    t0 = time.monotonic()
    os.kill(host_pid(deployed, int(before["MainPID"])), signal.SIGSTOP)
    wait_for(lambda: deployed.show(unit, "MainPID")["MainPID"] not in ("0", before["MainPID"]), 60, "restart after watchdog")
    wait_for(lambda: ready(deployed, STACK_A, "watchdog"), 60, "ready again")
    took = time.monotonic() - t0
    print(f"[MTTR] SIGSTOP watchdog process: {took:.2f} s (WatchdogSec={before['WatchdogUSec']} + restart)")
    assert int(deployed.show(unit, "NRestarts")["NRestarts"]) > int(before["NRestarts"])
    journal = deployed.vps.exec("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout
    assert "Watchdog timeout" in journal


def test_bad_setting_fails_once_with_one_clear_line_and_records_gave_up(deployed):
    unit = "hean@strategy.service"
    dropin = "/etc/systemd/system/hean@strategy.service.d/90-bad.conf"
    prom = "/var/lib/prometheus/node-exporter/hean_gave_up_hean@strategy.service.prom"
    deployed.vps.sh(f"printf '[Service]\\nEnvironment=HEAN_BUS__QUEUE_SIZE=0\\n' > {dropin}; systemctl daemon-reload")
    cursor = deployed.vps.sh("journalctl -n0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'").strip()
    try:
        deployed.vps.exec("systemctl", "restart", unit, check=False)
        wait_for(lambda: deployed.show(unit, "ActiveState")["ActiveState"] == "failed", 60, "strategy failed")
        p = deployed.show(unit, "NRestarts", "ExecMainStatus", "Result")
        assert p["ExecMainStatus"] == "78" and p["NRestarts"] == "0", p
        wait_for(lambda: deployed.vps.exec("test", "-f", prom, check=False).returncode == 0, 30, "gave-up metric")
        assert f'hean_unit_gave_up{{unit="{unit}"}} 1' in deployed.vps.exec("cat", prom).stdout
        lines = deployed.vps.exec("journalctl", "--after-cursor", cursor, "-u", unit, "-o", "cat", "--no-pager").stdout
        errors = [line for line in lines.splitlines() if "config error" in line]
        assert len(errors) == 1 and "HEAN_BUS__QUEUE_SIZE" in errors[0], lines
        wait_for(lambda: f"gave up on {unit}" in deployed.vps.exec(
            "journalctl", "--after-cursor", cursor, "-u", "hean-gave-up@*", "-o", "cat", "--no-pager").stdout,
            30, "the gave-up journal line")
        # no restart loop: still failed, still no restart, after the recorder has run
        assert deployed.show(unit, "ActiveState", "NRestarts") == {"ActiveState": "failed", "NRestarts": "0"}
    finally:
        deployed.vps.sh(f"rm -f {dropin}; systemctl daemon-reload; systemctl reset-failed {unit}; systemctl start {unit}")
    wait_for(lambda: ready(deployed, STACK_A, "strategy"), 60, "strategy back")
    assert deployed.vps.exec("test", "-f", prom, check=False).returncode != 0, "gave-up metric not cleared when ready"


def test_journal_has_json_fields(deployed):
    for svc in PROCESSES:
        rows = [json.loads(line) for line in deployed.vps.exec(
            "journalctl", "-u", f"hean@{svc}", "-o", "json", "-n", "200", "--no-pager").stdout.splitlines()]
        mine = [r for r in rows if r.get("SYSLOG_IDENTIFIER") == f"hean-{svc}"]
        assert mine, svc
        records = [json.loads(r["MESSAGE"]) for r in mine if str(r["MESSAGE"]).startswith("{")]
        assert records, f"{svc}: no JSON lines"
        for rec in records:
            assert {"time", "level", "logger", "service", "message"} <= rec.keys(), rec
        assert all(r["_SYSTEMD_UNIT"] == f"hean@{svc}.service" for r in mine)
        incomplete = [r for r in records if "order_link_id" in r and "symbol" not in r]
        assert incomplete == [], f"{svc}: order records without symbol, e.g. {incomplete[0].get('message')!r}"
        if svc == "executor":   # one line per outcome, with what traces an order across processes
            assert any(r.get("message") == "order outcome" and r.get("order_link_id") and r.get("risk_state")
                       for r in records), "no 'order outcome' line with order_link_id and risk_state"


def test_no_secret_in_journal_environment_or_cmdline(deployed):
    secret, key = deployed.secret, deployed.key
    journal = deployed.vps.exec("journalctl", "-o", "json", "--no-pager").stdout
    assert secret not in journal and key not in journal
    for stack in ("hean", "hean-b"):
        for svc in UNITS:
            env = deployed.vps.exec("systemctl", "show", "-p", "Environment", f"{stack}@{svc}.service").stdout
            assert secret not in env and key not in env
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):   # every process of the host, the VPS's included
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert secret not in text and key not in text, cmdline
    # only the signing processes hold the credential
    for svc in UNITS:
        # (systemctl show prints LoadCredential as "[unprintable]": look at the drop-ins instead)
        dropins = deployed.show(f"hean@{svc}.service", "DropInPaths")["DropInPaths"]
        assert ("20-credentials.conf" in dropins) == (svc in ("risk", "reconciler", "executor", "watchdog")), (svc, dropins)


def test_hean_status_inside_reports_every_process(deployed):
    # Three independent runs (each ~2.5 s here), at once.
    runs = {"deploy": ["runuser", "-u", "deploy", "--", "/opt/hean/current/venv/bin/hean", "status", "--json"],
            "root": ["/opt/hean/current/venv/bin/hean", "status", "--json"],
            "hean-b": ["env", "HEAN_ENV_FILE=/etc/hean-b/hean.env", "/opt/hean/current/venv/bin/hean", "status", "--json"]}
    with ThreadPoolExecutor(len(runs)) as pool:
        outs = dict(zip(runs, pool.map(lambda argv: deployed.vps.exec(*argv, check=False), runs.values()), strict=True))
    for who in ("deploy", "root"):
        doc = json.loads(outs[who].stdout)
        assert outs[who].returncode == 0 and doc["all_up"], who + outs[who].stdout + outs[who].stderr
        assert sorted(doc["services"]) == sorted(PROCESSES)
    # root reads the account with the stack's own key (the simulator accepts only that one); an operator
    # in group hean cannot read that key, and is told so instead of a bare "API key is invalid"
    root = json.loads(outs["root"].stdout)
    assert root["account_error"] is None and root["equity"] is not None, root
    assert "root-only: run this as root" in json.loads(outs["deploy"].stdout)["account_error"]
    doc = json.loads(outs["hean-b"].stdout)
    assert doc["all_up"] and doc["services"]["executor"]["metrics_port"] == port_of(STACK_B, "executor")
    # Restarts are the second stack's own units' (stack A's processes were killed above, B's were not).
    for svc in PROCESSES:
        want = int(deployed.show(f"hean-b@{svc}.service", "NRestarts")["NRestarts"])
        assert doc["services"][svc]["restarts"] == want, (svc, doc["services"][svc])


def test_new_release_then_rollback_returns_the_previous_one(deployed):
    out, took = deployed.playbook("deploy.yml", "rel-b")
    timing("deploy of a new release (rel-b, both stacks restarted)", took)
    assert out.returncode == 0, out.stdout[-5000:]
    assert deployed.vps.exec("readlink", "/opt/hean/current").stdout.strip() == "/opt/hean/releases/rel-b"
    wait_for(lambda: all(ready(deployed, STACK_A, s) for s in UNITS), 120, "all ready on rel-b")
    assert "/opt/hean/releases/rel-b/" in running_cmdline(deployed, "executor")
    out, took = deployed.playbook("rollback.yml", "rel-b")
    timing("rollback (playbook run)", took)
    assert out.returncode == 0, out.stdout[-5000:]
    t0 = time.monotonic()
    wait_for(lambda: all(ready(deployed, STACK_A, s) for s in UNITS), 120, "all ready after rollback")
    timing("rollback: playbook end -> every process ready", time.monotonic() - t0)
    assert deployed.vps.exec("readlink", "/opt/hean/current").stdout.strip() == "/opt/hean/releases/rel-a"
    assert deployed.vps.exec("readlink", "/opt/hean/previous").stdout.strip() == "/opt/hean/releases/rel-b"
    assert "/opt/hean/releases/rel-a/" in running_cmdline(deployed, "executor")
    placed = sample(port_of(STACK_A, "executor"), "hean_executor_orders_placed_total") or 0
    wait_for(lambda: (sample(port_of(STACK_A, "executor"), "hean_executor_orders_placed_total") or 0) > placed,
             120, "trading after the rollback")
    # It traded through the new release's deploy and the rollback (and the kills before them): the
    # executor's journal and the reconciler's ledger survived in StateDirectory, nothing lost or doubled.
    assert_nothing_lost_or_doubled(deployed, STACK_A)


def exchange_records(dep, stack: dict) -> tuple[list[dict], list[dict]]:
    """Every order and execution of the stack's simulator, read through its Bybit API (as chaos does)."""
    async def read() -> tuple[list[dict], list[dict]]:
        client = BybitRestClient(rest_url=f"http://127.0.0.1:{stack['sim_port']}", api_key=dep.key,
                                 api_secret=dep.secret, dry_run=True, is_live=False, registry=CollectorRegistry())
        await client.start()
        try:
            orders: dict[str, dict] = {}
            for path, extra in (("/v5/order/history", {}), ("/v5/order/realtime", {"settleCoin": "USDT"})):
                for row in await client.paged(path, {"category": "linear", "limit": 50} | extra):
                    orders[row["orderId"]] = row
            execs = await client.paged("/v5/execution/list", {"category": "linear", "limit": 100})
            return list(orders.values()), execs
        finally:
            await client.close()
    return asyncio.run(read())


def state_rows(dep, stack: dict, db: str, sql: str) -> list[list]:
    """Rows of one of the stack's SQLite state files, read inside the VPS with the release's Python."""
    script = ("import json, sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
              "print(json.dumps(c.execute(sys.argv[2]).fetchall()))")
    out = dep.vps.exec("/opt/hean/current/venv/bin/python", "-c", script, f"/var/lib/{stack['name']}/{db}", sql)
    return json.loads(out.stdout)


def assert_nothing_lost_or_doubled(dep, stack: dict) -> None:
    """From the exchange's own records: one order per intent, every HEAN order journaled, every fill ledgered."""
    orders, execs = exchange_records(dep, stack)
    hean_orders = [o for o in orders if str(o.get("orderLinkId", "")).startswith(INTENT_PREFIX)]
    assert hean_orders, "no order of HEAN's at the exchange"
    assert inv.duplicate_orders(orders) == (0, []), "an intent became two orders"
    journaled = {r[0] for r in state_rows(dep, stack, "executor.sqlite", "SELECT order_link_id FROM intents")}
    lost = [o["orderLinkId"] for o in hean_orders if o["orderLinkId"] not in journaled]
    assert lost == [], f"orders at the exchange the executor's journal does not know: {lost[:5]}"

    def ledger_has_all() -> bool:
        ledger = {r[0] for r in state_rows(dep, stack, "reconciler.sqlite", "SELECT exec_id FROM executions")}
        return inv.executions_missing(execs, ledger)[0] == 0
    wait_for(ledger_has_all, 60, "every execution at the exchange in the reconciler's ledger")


def running_cmdline(dep, svc: str) -> str:
    pid = dep.show(f"hean@{svc}.service", "MainPID")["MainPID"]
    return dep.vps.exec("cat", f"/proc/{pid}/cmdline").stdout.replace("\0", " ")
