"""Operator commands without a running system: one convention for errors, output and exit codes;
a stop signal during start-up; the base settings know no simulator."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.utils import PYTHON, ROOT, hean, hean_env


def _cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "hean.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_status_of_a_state_dir_that_does_not_exist_says_so(tmp_path: Path) -> None:
    env = hean_env(tmp_path)
    res = _cli(["status", "--state-dir", str(tmp_path / "nonexistent")], env)
    assert res.returncode == 2, res
    assert "does not exist" in res.stderr and "nonexistent" in res.stderr
    assert res.stdout == "", "an error is not a table of DOWN services"


def test_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    env = hean_env(tmp_path, bybit__rest_url="http://127.0.0.1:9")
    # `head -n 0` closes its end before status writes (the way `| head` does once it has its lines).
    for pipe, first in (("head -n 0", ""), ("head -n 1", "SERVICE")):
        proc = subprocess.run(f"'{PYTHON}' -m hean.cli status --listen 0.2 | {pipe}", shell=True, env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.stdout.startswith(first), proc
        assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_order_with_nothing_running_says_so_on_stderr_with_its_own_exit_code(tmp_path: Path) -> None:
    env = hean_env(tmp_path)
    res = _cli(["order", "buy", "BTCUSDT", "0.001"], env)
    assert res.returncode == 3, res      # 3: nothing running answered (documented in --help)
    assert res.stdout == "" and "nothing running" in res.stderr, res
    json_res = _cli(["order", "cancel", "--all", "--json"], env)
    assert json_res.returncode == 3 and "nothing running" in json_res.stderr


def test_every_operator_command_documents_its_exit_codes(tmp_path: Path) -> None:
    env = hean_env(tmp_path)
    for args in (["status", "--help"], ["order", "--help"], ["risk", "reset", "--help"]):
        res = _cli(args, env)
        assert res.returncode == 0 and "exit codes: 0" in res.stdout and "3 nothing running" in res.stdout, args


def test_order_cancel_without_a_target_is_a_usage_error(tmp_path: Path) -> None:
    env = hean_env(tmp_path)
    res = _cli(["order", "cancel"], env)
    assert res.returncode == 2 and "exactly one of" in res.stderr


def test_sigterm_while_retrying_an_unreachable_exchange_stops_at_once_and_quietly(tmp_path: Path) -> None:
    with socket.socket() as s:      # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = hean_env(tmp_path, bybit__rest_url=f"http://127.0.0.1:{port}")
    for service in ("executor", "watchdog"):
        proc = hean(["run", service], env)
        try:
            proc.wait_record("exchange not reachable at start-up; retrying", 60)
            rc = proc.stop(15)
            assert rc == 0, proc.output()
            assert not [r for r in proc.records() if r.get("level") == "CRITICAL"], proc.output()
            assert "Unclosed client session" not in proc.output() and "Traceback" not in proc.output()
            assert proc.find("stopped during start-up") is not None
        finally:
            proc.kill()


def test_the_base_settings_import_no_simulator_and_hean_sim_variables_are_no_typos(tmp_path: Path) -> None:
    code = ("import sys, hean.config as c; assert 'hean.sim.settings' not in sys.modules, 'imports the sim'; "
            "s = c.load_settings(None); assert not hasattr(s, 'sim'); print('ok')")
    env = hean_env(tmp_path)
    env.update({"HEAN_SIM__API_KEY": "k-1234", "HEAN_SIM__API_SECRET": "s-1234"})
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "ok", res.stderr
