"""`hean sim` as a real subprocess: READY line, serving, clean exit on SIGTERM, argparse errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request


def collect_lines(proc: subprocess.Popen[str]) -> list[str]:
    """Read stdout on a thread (pipe buffering defeats select on a text stream)."""
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def read_ready_line(lines: list[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [line for line in lines if line.startswith("HEAN-SIM READY ")]
        if ready:
            return ready[0]
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the HEAN-SIM READY line")


def test_cli_ready_serves_and_exits_zero_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "hean.sim.cli", "--port", "0", "--api-key", "k", "--api-secret", "s",
         "--symbols", "BTCUSDT", "--tick-interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:
        try:
            lines = collect_lines(proc)
            rest_url = read_ready_line(lines).split()[-1]
            assert rest_url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(f"{rest_url}/v5/market/instruments-info?category=linear",
                                        timeout=5) as resp:
                body = json.load(resp)
            assert [r["symbol"] for r in body["result"]["list"]] == ["BTCUSDT"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sum(1 for line in lines if line.startswith("HEAN-SIM READY")) == 1


def test_cli_bad_arguments_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "hean.sim.cli", "--port", "notaport"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "invalid int value" in result.stderr


def test_cli_delay_ms_sets_the_network_delay() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "hean.sim.cli", "--port", "0", "--symbols", "BTCUSDT", "--delay-ms", "150"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:
        try:
            rest_url = read_ready_line(collect_lines(proc)).split()[-1]
            started = time.monotonic()
            with urllib.request.urlopen(f"{rest_url}/v5/market/time", timeout=5) as resp:
                assert json.load(resp)["retCode"] == 0
            assert time.monotonic() - started >= 2 * 0.150 * 0.6, "both legs pay --delay-ms (jitter 40 %)"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    bad = subprocess.run([sys.executable, "-m", "hean.sim.cli", "--delay-ms", "-1"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--delay-ms" in bad.stderr
