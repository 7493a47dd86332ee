"""The bus across hosts: CURVE with the stack's own keys (run on loopback with curve=on)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
import zmq
import zmq.auth

from hean.bus import BusStats, Publisher, PUBLISHERS, Subscriber
from hean.bus.envelope import Event
from hean.bus.security import curve_enabled, write_keys
from hean.config import BusSettings, ConfigError
from tests.bus.test_transport import free_run
from tests.utils import PYTHON, ROOT, async_wait_for, hean, hean_env


def _tcp(tmp_path, **kw) -> dict:
    # the echo's and the bench's sockets: four adjacent ports, all of them checked free
    assert PUBLISHERS.index("bench") == PUBLISHERS.index("echo") + 1
    base = free_run(4) - 2 * PUBLISHERS.index("echo")
    return {"transport": "tcp", "tcp_base_port": base, "curve": "on", "curve_keys_dir": tmp_path / "keys", **kw}


def test_a_non_loopback_endpoint_without_keys_is_a_config_error(tmp_path):
    for host in ("0.0.0.0", "10.1.2.3", "bus.example.internal"):
        with pytest.raises(ConfigError, match="CURVE_KEYS_DIR"):
            Publisher(BusSettings(transport="tcp", tcp_host=host), tmp_path, "bench", BusStats())
        with pytest.raises(ConfigError, match="CURVE_KEYS_DIR"):
            Subscriber(BusSettings(transport="tcp", tcp_host=host), tmp_path, BusStats())
        with pytest.raises(ConfigError, match="off is refused"):
            curve_enabled(BusSettings(transport="tcp", tcp_host=host, curve="off"))
    assert not curve_enabled(BusSettings(transport="tcp", tcp_host="127.0.0.1"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no public keys"):
        curve_enabled(BusSettings(transport="tcp", tcp_host="10.1.2.3", curve_keys_dir=tmp_path / "empty"))


def test_a_process_exits_78_on_a_non_loopback_bus_without_keys(tmp_path):
    env = hean_env(tmp_path, bus__transport="tcp", bus__tcp_host="10.1.2.3", echo__sources="bench")
    proc = hean(["run", "echo"], env)
    rc = proc.p.wait(30)
    proc.kill()
    assert rc == 78, proc.output()
    assert len(proc.err) == 1 and "CURVE_KEYS_DIR" in proc.err[0], proc.err


def test_hean_bus_keys_writes_the_stack_keypairs(tmp_path):
    out = subprocess.run([PYTHON, "-m", "hean.cli", "bus", "keys", "--dir", str(tmp_path), "--services",
                          "feed,executor"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    public, secret = zmq.auth.load_certificate(tmp_path / "feed.key_secret")
    assert secret and zmq.auth.load_certificate(tmp_path / "feed.key")[0] == public
    assert (tmp_path / "executor.key_secret").stat().st_mode & 0o077 == 0


def test_hean_bus_keys_json_reports_the_files_and_a_rerun_writes_nothing(tmp_path):
    def keys(*extra: str) -> dict:
        out = subprocess.run([PYTHON, "-m", "hean.cli", "bus", "keys", "--dir", str(tmp_path / "k"), "--services",
                              "feed,ctl", "--json", *extra], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert keys("--no-create") == {"written": 0, "files": {}} and not (tmp_path / "k").exists()
    first = keys()
    assert first["written"] == 2 and sorted(first["files"]) == ["ctl.key", "feed.key"], "only public keys leave"
    assert (tmp_path / "k").stat().st_mode & 0o077 == 0, "a new keys directory is not private"
    assert zmq.auth.load_certificate(tmp_path / "k" / "feed.key_secret")[1] is not None
    assert not any("secret-key" in text for text in first["files"].values())
    again = keys()
    assert again == {"written": 0, "files": first["files"]}, "a re-run changed the keys"
    bad = subprocess.run([PYTHON, "-m", "hean.cli", "bus", "keys", "--dir", str(tmp_path / "k"), "--services", "fed"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "fed not a bus publisher" in bad.stderr


def test_a_process_takes_its_secret_key_from_its_systemd_credentials(tmp_path, monkeypatch):
    """The role hands each process its own secret through LoadCredential=; the shared keys directory
    then holds only public keys, and the process must still find its keypair."""
    from hean.bus.security import secret_key
    write_keys(tmp_path / "all", ["feed"])
    shared, creds = tmp_path / "shared", tmp_path / "creds"
    shared.mkdir()
    creds.mkdir()
    (shared / "feed.key").write_text((tmp_path / "all" / "feed.key").read_text())
    (creds / "feed.key_secret").write_text((tmp_path / "all" / "feed.key_secret").read_text())
    bus = BusSettings(transport="tcp", curve="on", curve_keys_dir=shared)
    with pytest.raises(ConfigError, match="cannot read"):
        secret_key(bus, "feed")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert secret_key(bus, "feed") == zmq.auth.load_certificate(tmp_path / "all" / "feed.key_secret")


@pytest.mark.parametrize("placement", ["one host", "two hosts"])
async def test_processes_trade_events_over_curve_tcp(tmp_path, placement):
    """"two hosts": the echo process on 127.0.0.2, this test's publisher and subscriber on 127.0.0.3,
    each finding the other through `bus.hosts` (a stack split across an inventory, on loopback)."""
    write_keys(tmp_path / "keys", ["bench", "echo", "ctl"])
    bus = _tcp(tmp_path)
    echo_bus, here = dict(bus), dict(bus)
    if placement == "two hosts":
        echo_bus |= {"tcp_host": "127.0.0.2", "hosts": json.dumps({"bench": "127.0.0.3"})}
        here |= {"tcp_host": "127.0.0.3", "hosts": {"echo": "127.0.0.2"}}
    env = hean_env(tmp_path, echo__sources="bench", echo__prefixes="order.",
                   **{f"bus__{k}": str(v) for k, v in echo_bus.items()})
    proc = hean(["run", "echo"], env)
    proc.wait_ready()
    settings = BusSettings(**here)
    pub = Publisher(settings, tmp_path / "run", "bench", BusStats()).bind()
    seen: list[Event] = []

    async def record(ev: Event) -> None:
        seen.append(ev)

    sub = Subscriber(settings, tmp_path / "run", BusStats(), service="ctl").connect("echo").on("echo.", record)
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    try:
        assert await pub.wait_for_subscribers("critical", 20), "echo never subscribed over CURVE"
        # The echo's own publisher, with our subscriber on it: wait until a probe makes it through.
        for i in range(200):
            assert await pub.publish("order.placed", "ORDER_PLACED", {"i": i})
        await async_wait_for(lambda: len(seen) >= 1, 20, "echoes over CURVE")
        first = seen[0].data["data"]["i"]
        await async_wait_for(lambda: len(seen) == 200 - first, 20, "every later event echoed")
        assert [e.data["data"]["i"] for e in seen] == list(range(first, 200))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        sub.close()
        pub.close()
    assert proc.stop() == 0


@pytest.mark.parametrize("keys", ["none", "foreign"])
async def test_a_peer_without_the_stack_keys_gets_nothing_and_stalls_nothing(tmp_path, keys):
    write_keys(tmp_path / "keys", ["bench"])
    settings = BusSettings(**_tcp(tmp_path), sndhwm=50, critical_timeout_s=0.5)
    stats = BusStats()
    pub = Publisher(settings, tmp_path / "run", "bench", stats).bind()
    ctx = zmq.Context()
    intruder = ctx.socket(zmq.SUB)
    intruder.setsockopt(zmq.RCVHWM, 10)
    intruder.setsockopt(zmq.LINGER, 0)
    if keys == "foreign":
        public, secret = zmq.curve_keypair()
        intruder.curve_publickey, intruder.curve_secretkey = public, secret
        intruder.curve_serverkey = zmq.auth.load_certificate(tmp_path / "keys" / "bench.key")[0]
    intruder.setsockopt(zmq.SUBSCRIBE, b"")
    intruder.connect(pub.endpoints["critical"])
    try:
        # Time for the handshake to be tried (and refused); then the intruder never reads.
        assert not await pub.wait_for_subscribers("critical", 1.0)
        for i in range(5000):        # 100 x sndhwm: a reading-never pipe would saturate at once
            assert await pub.publish("order.placed", "ORDER_PLACED", {"i": i})
        assert stats.delayed["critical"] == 0 and stats.send_failed["critical"] == 0
        assert intruder.poll(200) == 0, "an unauthenticated peer received an event"
    finally:
        intruder.close()
        ctx.term()
        pub.close()
