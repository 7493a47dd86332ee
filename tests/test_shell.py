"""The process shell: settings errors exit 78 with one line, JSON logs, /metrics, graceful SIGTERM."""

from __future__ import annotations

import io
import os
import json
import logging
import subprocess
import sys

import pytest

from hean.config import ConfigError, load_settings
from hean.logging import setup_logging
from tests.utils import hean, hean_env, metric, scrape, wait_for

BAD = [
    ({"HEAN_RISK__SOFT_PCT": "-1"}, "HEAN_RISK__SOFT_PCT"),
    ({"HEAN_BUS__SNDHWM": "lots"}, "HEAN_BUS__SNDHWM"),
    ({"HEAN_MODE": "yolo"}, "HEAN_MODE"),
    ({"HEAN_MAX_HOLD_SECOND": "60"}, "HEAN_MAX_HOLD_SECOND"),           # a typo is not silently ignored
    ({"HEAN_RISK__SOFT_PCT": "18"}, "soft_pct"),                         # ladder out of order
    ({"HEAN_MODE": "live", "HEAN_IS_LIVE": "true", "HEAN_DRY_RUN": "false",
      "HEAN_BYBIT__API_SECRET": ""}, "HEAN_BYBIT__API_SECRET"),          # live without a secret
    ({"HEAN_MODE": "live", "HEAN_IS_LIVE": "true", "HEAN_DRY_RUN": "false"},
     "HEAN_BYBIT__API_KEY"),                                             # live on no keys of one's own
    ({"HEAN_BYBIT__API_KEY": "only-the-key"}, "HEAN_BYBIT__API_SECRET"),  # half a key pair
    ({"HEAN_IS_LIVE": "true"}, "dry_run"),                               # is_live alone is not enough
    ({"HEAN_SYMBOLS": "btcusdt"}, "symbols"),
    ({"HEAN_ENV_FILE": "/nonexistent/hean.env"}, "/nonexistent/hean.env"),
]


@pytest.mark.parametrize(("env", "named"), BAD)
def test_bad_config_exits_78_with_one_line(tmp_path, env, named):
    full = hean_env(tmp_path)
    full.update(env)
    proc = subprocess.run([sys.executable, "-m", "hean.cli", "run", "echo"], env=full, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert named in lines[0] and "config error" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


SECRET = "s3cr3t-value-123"


def test_secret_values_never_in_config_errors(tmp_path, monkeypatch):
    # The secret pasted into the wrong variable: the error names the variable, never the value.
    monkeypatch.setenv("HEAN_BYBIT__API_KEY", "my-key-abc")
    monkeypatch.setenv("HEAN_BYBIT__API_SECRET", SECRET)
    monkeypatch.setenv("HEAN_BYBIT__RECV_WINDOW_MS", SECRET)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "HEAN_BYBIT__RECV_WINDOW_MS" in str(err.value)
    assert SECRET not in str(err.value) and "s3cr3t" not in str(err.value), str(err.value)


def test_secret_from_the_env_file_is_never_in_config_errors(tmp_path, monkeypatch):
    env_file = tmp_path / "live.env"
    env_file.write_text(f"HEAN_BYBIT__API_KEY=my-key-abc\nHEAN_BYBIT__API_SECRET={SECRET}\n"
                        f"HEAN_SYMBOLS=x{SECRET}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(env_file)
    assert "symbols" in str(err.value) and SECRET not in str(err.value), str(err.value)


@pytest.mark.parametrize("where", ["environment", "env file"])
@pytest.mark.parametrize("name", ["HEAN_HEAN_MAX_HOLD_SECOND", "HEAN_RISK__SOFT_PC"])
def test_a_typo_reads_the_same_in_the_environment_and_in_an_env_file(tmp_path, where, name):
    env = hean_env(tmp_path)
    args = [sys.executable, "-m", "hean.cli", "run", "echo"]
    if where == "environment":
        env[name] = "60"
    else:
        (tmp_path / "hean.env").write_text(f"HEAN_LOG_LEVEL=INFO\n{name}=60\n")
        args += ["--env-file", str(tmp_path / "hean.env")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"hean echo: config error: {name}: not a HEAN setting (check the spelling)"], proc.stderr


def test_a_missing_prefix_in_an_env_file_is_named_as_written(tmp_path):
    # Without the prefix the line is no setting; the error must not name the valid setting it resembles.
    (tmp_path / "hean.env").write_text("MAX_HOLD_SECONDS=60\n")
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "hean.env")
    assert str(err.value) == "MAX_HOLD_SECONDS: not a HEAN setting (check the spelling)"


def test_env_file_is_read(tmp_path, monkeypatch):
    f = tmp_path / "hean.env"
    f.write_text("HEAN_MAX_HOLD_SECONDS=42\nHEAN_RISK__SOFT_PCT=8\n")
    s = load_settings(f)
    assert s.max_hold_seconds == 42 and s.risk.soft_pct == 8
    assert s.dry_run is True and s.is_live is False   # safe defaults


def test_echo_process_lifecycle(tmp_path):
    proc = hean(["run", "echo"], hean_env(tmp_path))
    try:
        port = proc.wait_ready()
        ready = proc.find("service ready")
        assert ready is not None
        for field in ("time", "level", "logger", "service", "message"):
            assert field in ready
        assert ready["service"] == "echo" and ready["level"] == "INFO"
        samples = scrape(port)
        assert metric(samples, "hean_ready") == 1
        assert metric(samples, "hean_service_info", service="echo") == 1
        assert metric(samples, "hean_start_time_seconds") > 1.7e9
        assert "hean_bus_published_total" in " ".join(samples)
    finally:
        rc = proc.stop()
    assert rc == 0
    assert proc.find("service stopped") is not None
    for line in proc.lines:
        json.loads(line)  # every stdout line is one JSON object


def test_secrets_are_redacted_everywhere():
    out = io.StringIO()
    key, secret = "AKIAKEY123456", "topsecretvalue987"
    setup_logging("test", "DEBUG", [key, secret], stream=out)
    log = logging.getLogger("hean.test")
    log.info(f"signing with {secret} for {key}")
    log.warning("request", extra={"headers": {"X-BAPI-SIGN": "abcdef0123", "X-BAPI-API-KEY": key},
                                  "note": f"body api_secret={secret}", "nested": [{"x": secret}]})
    try:
        raise RuntimeError(f"auth failed with secret={secret}")
    except RuntimeError:
        log.exception("boom")
    log.info("query", extra={"url": "https://x/?sign=deadbeef&api_key=zzz"})
    text = out.getvalue()
    logging.getLogger().handlers.clear()
    assert secret not in text and key not in text and "abcdef0123" not in text and "deadbeef" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 4
    assert records[1]["headers"]["X-BAPI-SIGN"] == "***"
    assert "***" in records[2]["exc_info"]


def test_a_second_instance_on_the_same_data_dir_exits_with_one_line(tmp_path):
    env = hean_env(tmp_path)
    first = hean(["run", "echo"], env, "first echo")
    try:
        port = first.wait_ready()
        second = subprocess.run([sys.executable, "-m", "hean.cli", "run", "echo"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 78, second.stdout[-2000:] + second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "echo" in lines[0] and str(tmp_path / "data") in lines[0] and f"pid {first.pid}" in lines[0]
        assert "service ready" not in second.stdout   # it never bound the bus or /metrics
        assert first.p.poll() is None and metric(scrape(port), "hean_ready") == 1
    finally:
        assert first.stop() == 0
    # The lock dies with its holder: the next instance starts.
    again = hean(["run", "echo"], env, "echo again")
    try:
        again.wait_ready()
    finally:
        assert again.stop() == 0


LIVE_NO_KEYS = {"HEAN_MODE": "live", "HEAN_IS_LIVE": "true", "HEAN_DRY_RUN": "false",
                "HEAN_BYBIT__REST_URL": "https://api.bybit.com"}


@pytest.mark.parametrize("argv", [["run", "executor"], ["run", "reconciler"], ["up", "--no-demo"]])
def test_live_mode_without_keys_of_ones_own_exits_78(tmp_path, argv):
    # The simulator's key is no default of the Bybit settings: live without keys never starts.
    env = hean_env(tmp_path)
    env.update(LIVE_NO_KEYS)
    proc = subprocess.run([sys.executable, "-m", "hean.cli", *argv, *(["--state-dir", str(tmp_path / "st")]
                           if argv[0] == "up" else [])], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stdout[-2000:] + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "HEAN_BYBIT__API_KEY" in lines[0] and "HEAN_BYBIT__API_SECRET" in lines[0], lines
    assert "hean-sim" not in proc.stdout + proc.stderr


def test_paper_mode_without_keys_signs_with_the_simulators_key(tmp_path):
    # No key configured (explicitly empty): a real process authenticates to the simulator with its
    # well-known key, REST and private WS alike.
    sim = hean(["sim", "--port", "0", "--symbols", "BTCUSDT,ETHUSDT"], hean_env(tmp_path / "sim"), "hean sim")
    recon = None
    try:
        url = wait_for(lambda: next((x.split()[-1] for x in sim.lines if x.startswith("HEAN-SIM READY ")), None),
                       30, "the simulator")
        host = url.removeprefix("http://")
        env = hean_env(tmp_path, bybit__rest_url=url, bybit__ws_public_url=f"ws://{host}/v5/public/linear",
                       bybit__ws_private_url=f"ws://{host}/v5/private", bybit__api_key="", bybit__api_secret="")
        recon = hean(["run", "reconciler"], env, "reconciler")
        recon.wait_ready(60)
        recon.wait_record("ws connected", 30)   # logged only after the auth ack
        assert not [r for r in recon.records() if r.get("message") == "ws connection failed"]
    finally:
        if recon is not None:
            assert recon.stop() == 0, recon.output()[-2000:]
        sim.stop()


@pytest.mark.parametrize("service,starts", [("feed", True), ("strategy", True), ("executor", False),
                                            ("watchdog", False), ("risk", False)])
def test_live_keys_are_needed_only_by_processes_that_sign(monkeypatch, service, starts):
    # A deployment hands the secret only to the processes that sign requests; the others start without it.
    from hean.config import ConfigError, load_settings
    for key in [k for k in os.environ if k.startswith("HEAN_")]:
        monkeypatch.delenv(key)
    for key, value in LIVE_NO_KEYS.items():
        monkeypatch.setenv(key, value)
    if starts:
        assert load_settings(service=service).credentials() == ("", "")
    else:
        with pytest.raises(ConfigError, match="HEAN_BYBIT__API_KEY"):
            load_settings(service=service)
