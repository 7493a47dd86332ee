"""One stack split across two hosts of one inventory: the feed and strategy on the session's VPS, the
executor, reconciler, risk, watchdog (and the paper simulator) on a second VPS booted from the same
image. Both containers share this machine's network, so each host gets its own loopback address as
its bus address (127.0.0.2, 127.0.0.3): the bus between them is tcp with CURVE and the keys the
playbook made and distributed. What a split deploy must show: each host runs exactly its processes,
trading crosses the hosts both ways, each host holds only its own secrets, a peer without the keys
reads nothing while a holder of the stack's keys does, and a re-run changes nothing."""

from __future__ import annotations

import json
import re
import time

import pytest
import vps as vpsmod
import zmq
import zmq.auth
from deployment import metrics, port_of, ready, recap, recaps, sample, timing

from tests.utils import wait_for

pytestmark = pytest.mark.slow

# bus_base_port given: the default (10000 + 2 x 19340) would lie in the ephemeral range, which preflight refuses
STACK_C = {"name": "hean-c", "metrics_base_port": 19340, "sim_port": 18940, "bus_base_port": 19400}
FRONT = ("feed", "strategy")
BACK = ("risk", "reconciler", "executor", "watchdog")
FRONT_ADDRESS, BACK_ADDRESS = "127.0.0.2", "127.0.0.3"
BUS_BASE = STACK_C["bus_base_port"]
PUBLISHERS = ("feed", "executor", "reconciler", "risk", "watchdog", "strategy", "ctl")


@pytest.fixture(scope="module")
def split(deployed):
    back = vpsmod.Vps("hean-vps2", vpsmod.SSH_PORT + 1)
    timing("second VPS: boot to running + sshd", back.boot())
    inventory = split_inventory(deployed, back, FRONT, BACK)

    def run(*args: str):
        return deployed.playbook("deploy.yml", "rel-a", *args, inventory=inventory, stacks=[STACK_C])

    try:
        out, took = run()
        timing("split deploy (one stack, two hosts)", took)
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        yield deployed, back, run
    finally:
        deployed.vps.exec("systemctl", "disable", "--now", "hean-c.target", check=False)
        deployed.vps.exec("systemctl", "stop", "hean-c@*", check=False)
        back.shutdown()


def split_inventory(deployed, back: vpsmod.Vps, front_services: tuple[str, ...], back_services: tuple[str, ...]):
    inventory = deployed.work / "split.ini"
    inventory.write_text(
        "[hean]\n"
        + deployed.vps.inventory_line(f"hean_services='{json.dumps(front_services)}' hean_bus_address={FRONT_ADDRESS}")
        + back.inventory_line(f"hean_services='{json.dumps(back_services)}' hean_bus_address={BACK_ADDRESS}"))
    return inventory


def show(vps: vpsmod.Vps, unit: str, *props: str) -> dict[str, str]:
    out = vps.exec("systemctl", "show", unit, *(f"-p{p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class _On:
    """`ready()` of test_vps for a VPS other than the session's."""

    def __init__(self, vps: vpsmod.Vps) -> None:
        self.vps = vps

    def show(self, unit: str, *props: str) -> dict[str, str]:
        return show(self.vps, unit, *props)


def test_each_host_runs_exactly_its_processes_and_trading_crosses_the_hosts(split):
    deployed, back, _ = split
    front = _On(deployed.vps)
    for host, here, elsewhere in ((front, FRONT, BACK + ("sim",)), (_On(back), BACK + ("sim",), FRONT)):
        for svc in here:
            wait_for(lambda h=host, v=svc: ready(h, STACK_C, v), 90, f"hean-c@{svc} active and ready on {host.vps.name}")
        for svc in elsewhere:
            assert host.show(f"hean-c@{svc}.service", "ActiveState")["ActiveState"] == "inactive", (host.vps.name, svc)
        assert host.vps.exec("systemctl", "is-active", "hean-c.target").stdout.strip() == "active"
    # strategy (front) -> executor (back) and the outcomes back to the strategy: both directions, over CURVE.
    wait_for(lambda: (sample(port_of(STACK_C, "executor"), "hean_executor_orders_placed_total") or 0) > 0, 120,
             "orders placed by the back host's executor for the front host's strategy")
    wait_for(lambda: (sample(port_of(STACK_C, "strategy"), "hean_strategy_outcomes_total") or 0) > 0, 60,
             "outcomes back at the front host's strategy")
    env = back.sh("cat /etc/hean-c/hean.env")
    assert f'HEAN_BUS__TCP_HOST="{BACK_ADDRESS}"' in env and 'HEAN_BUS__CURVE="on"' in env, env


def test_hean_status_on_risks_host_reports_its_processes_and_where_the_others_run(split):
    _, back, _ = split
    out = back.exec("env", "HEAN_ENV_FILE=/etc/hean-c/hean.env", "/opt/hean/current/venv/bin/hean", "status", "--json",
                    check=False)
    doc = json.loads(out.stdout)
    assert out.returncode == 0 and doc["all_up"], out.stdout + out.stderr
    assert {s: v.get("host") for s, v in doc["services"].items()} == {**dict.fromkeys(BACK), **dict.fromkeys(FRONT, FRONT_ADDRESS)}
    assert all(doc["services"][s]["ready"] for s in BACK)
    assert doc["risk"]["state"] is not None, "status heard nothing on the CURVE bus (it uses the operator's key)"


def test_each_host_holds_only_its_own_secrets(split):
    deployed, back, _ = split

    def listing(vps: vpsmod.Vps, d: str) -> set[str]:
        return set(vps.sh(f"ls {d} 2>/dev/null || true").split())

    def secrets(vps: vpsmod.Vps) -> set[str]:
        return set(vps.sh("find /etc /var /opt /root /home /tmp -name '*.key_secret'").split())

    # each keypair was made where its process runs, and no secret key exists anywhere else
    assert secrets(deployed.vps) == {f"/etc/hean-c/credentials/{s}.key_secret" for s in FRONT}
    assert secrets(back) == {f"/etc/hean-c/credentials/{s}.key_secret" for s in BACK} | {"/etc/hean-c/bus/ctl.key_secret"}, \
        "the operator's key is where risk runs"
    assert "bybit_api_secret" not in listing(deployed.vps, "/etc/hean-c/credentials"), \
        "the front host runs no signing process: no Bybit credentials"
    assert {"bybit_api_key", "bybit_api_secret"} <= listing(back, "/etc/hean-c/credentials")
    public = {f"{svc}.key" for svc in PUBLISHERS}
    assert listing(deployed.vps, "/etc/hean-c/bus") == public
    assert listing(back, "/etc/hean-c/bus") == public | {"ctl.key_secret"}
    assert deployed.vps.sh("cat /etc/hean-c/bus/*.key") == back.sh("cat /etc/hean-c/bus/*.key")
    assert "HEAN_SIM__API_SECRET" not in deployed.vps.sh("cat /etc/hean-c/sim.env")
    assert back.sh("stat -c '%a %U:%G' /etc/hean-c/bus/ctl.key_secret /etc/hean-c/credentials/executor.key_secret").split("\n")[:2] \
        == ["640 root:hean", "600 root:root"]
    # a process gets its own secret as a credential, and cannot read the operator's key (it could act as the operator)
    assert listing(back, "/run/credentials/hean-c@executor.service") == {"executor.key_secret", "bybit_api_key", "bybit_api_secret"}
    assert listing(deployed.vps, "/run/credentials/hean-c@feed.service") == {"feed.key_secret"}
    risk_pid = show(back, "hean-c@risk.service", "MainPID")["MainPID"]
    seen = back.exec("nsenter", "-t", risk_pid, "-m", "cat", "/etc/hean-c/bus/ctl.key_secret", check=False)
    assert "secret-key" not in seen.stdout, "a service process can read the operator's bus key"
    assert "secret-key" in back.sh("cat /etc/hean-c/bus/ctl.key_secret")


def test_a_peer_without_the_keys_reads_nothing_while_a_key_holder_does(split):
    _, back, _ = split
    ctl_public, ctl_secret = _keypair(back.sh("cat /etc/hean-c/bus/ctl.key_secret"))
    risk_public = _keypair(back.sh("cat /etc/hean-c/bus/risk.key"))[0]
    # risk's critical publisher: its state is re-published every second
    critical = f"tcp://{BACK_ADDRESS}:{BUS_BASE + 2 * PUBLISHERS.index('risk') + 1}"
    ctx = zmq.Context()
    plain, foreign, holder = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    try:
        for sock in (plain, foreign, holder):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        # foreign: speaks CURVE and knows risk's public key (world-readable), but its own key is on no allow-list
        foreign.curve_publickey, foreign.curve_secretkey = zmq.curve_keypair()
        foreign.curve_serverkey = risk_public
        holder.curve_publickey, holder.curve_secretkey, holder.curve_serverkey = ctl_public, ctl_secret, risk_public
        for sock in (plain, foreign, holder):
            sock.connect(critical)
        got, deadline = 0, time.monotonic() + 60
        while got < 3 and time.monotonic() < deadline:
            if holder.poll(500):
                holder.recv_multipart()
                got += 1
        assert got >= 3, "a holder of the stack's keys received nothing from risk"
        assert plain.poll(0) == 0, "a peer without CURVE received risk's events"
        assert foreign.poll(0) == 0, "a peer with a key off the allow-list received risk's events"
    finally:
        for sock in (plain, foreign, holder):
            sock.close()
        ctx.term()


def _keypair(text: str) -> tuple[bytes, bytes | None]:
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "k").write_text(text)
        return zmq.auth.load_certificate(Path(d) / "k")


def test_a_second_split_run_changes_nothing_and_check_mode_works(split):
    _, _, run = split
    out, took = run()
    timing("split re-deploy (nothing changed)", took)
    assert out.returncode == 0, out.stdout[-5000:]
    assert {host: r["changed"] for host, r in recaps(out).items()} == {vpsmod.NAME: 0, "hean-vps2": 0}, out.stdout[-5000:]
    out, took = run("--check")
    timing("split re-deploy --check", took)
    assert out.returncode == 0, out.stdout[-5000:]
    assert {host: r["changed"] for host, r in recaps(out).items()} == {vpsmod.NAME: 0, "hean-vps2": 0}, out.stdout[-5000:]


def test_a_limit_that_leaves_out_a_host_of_the_split_is_refused_before_any_change(split):
    _, _, run = split
    out, _ = run("--limit", vpsmod.NAME)
    assert out.returncode != 0, out.stdout[-3000:]
    assert "must run each process on exactly one of them" in out.stdout and "risk, reconciler, executor, watchdog" in out.stdout, \
        out.stdout[-3000:]
    assert recap(out)["changed"] == 0


def test_paper_mode_across_real_hosts_is_refused_before_any_change(split, tmp_path):
    """The dry-run guard keeps paper-mode processes off any non-loopback exchange address, so a paper
    stack split across real addresses could never trade: preflight says so instead."""
    deployed, back, _ = split
    inventory = tmp_path / "real.ini"
    inventory.write_text(
        "[hean]\n"
        + deployed.vps.inventory_line(f"hean_services='{json.dumps(FRONT)}' hean_bus_address=10.0.0.1")
        + back.inventory_line(f"hean_services='{json.dumps(BACK)}' hean_bus_address=10.0.0.2"))
    out, _ = deployed.playbook("deploy.yml", "rel-a", inventory=inventory, stacks=[STACK_C])
    assert out.returncode != 0 and "paper mode keeps every process on loopback" in out.stdout, out.stdout[-3000:]
    assert all(r["changed"] == 0 for r in recaps(out).values())


def test_moving_a_process_to_the_other_host_stops_it_there_and_rekeys(split):
    """Last (it changes the placement): the watchdog moves from the back host to the front one."""
    deployed, back, run = split
    front_services, back_services = FRONT + ("watchdog",), tuple(s for s in BACK if s != "watchdog")
    split_inventory(deployed, back, front_services, back_services)
    out, took = run()
    timing("split re-deploy moving the watchdog to the other host", took)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert show(back, "hean-c@watchdog.service", "ActiveState")["ActiveState"] == "inactive", "left running on the old host"
    wait_for(lambda: ready(_On(deployed.vps), STACK_C, "watchdog"), 90, "the watchdog ready on its new host")
    assert "watchdog.key_secret" in deployed.vps.sh("ls /etc/hean-c/credentials")
    assert "watchdog.key_secret" not in back.sh("ls /etc/hean-c/credentials"), "the old host kept the moved process's secret"
    assert deployed.vps.sh("cat /etc/hean-c/bus/*.key") == back.sh("cat /etc/hean-c/bus/*.key")
    # its new keypair is on the back host's allow-list: the reconciler's positions (every second) reach it over CURVE
    received = lambda: critical_received(port_of(STACK_C, "watchdog"))  # noqa: E731
    first = wait_for(received, 60, "the moved watchdog receiving critical events")
    wait_for(lambda: received() > first, 30, "the moved watchdog still receiving")


def critical_received(port: int) -> float:
    try:
        text = metrics(port)
    except OSError:
        return 0.0
    m = re.search(r'(?m)^hean_bus_received_total\{class="critical"\} (\S+)$', text)
    return float(m.group(1)) if m else 0.0
