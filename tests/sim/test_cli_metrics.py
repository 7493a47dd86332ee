"""`hean sim` serves its registry on the configured metrics port too (issue 12: nothing listened there)."""

from __future__ import annotations

import socket
import urllib.request

from tests.sim.test_cli_secrets import ready_url
from tests.utils import hean, hean_env


def scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def test_metrics_on_the_configured_port(tmp_path) -> None:
    env = hean_env(tmp_path)        # HEAN_METRICS_PORTS__SIM=0: an ephemeral port of its own
    proc = hean(["sim", "--port", "0", "--symbols", "BTCUSDT"], env, "hean sim")
    try:
        rest_url = ready_url(proc)
        ready = proc.wait_record("simulator ready")
        port = ready["metrics_port"]
        assert ready["metrics_url"] == f"http://127.0.0.1:{port}/metrics"
        assert f":{port}" not in rest_url
        with urllib.request.urlopen(f"{rest_url}/v5/market/time", timeout=10):
            pass
        text = scrape_text(ready["metrics_url"])
        assert 'hean_sim_rest_requests_total{path="/v5/market/time"} 1.0' in text
    finally:
        assert proc.stop() == 0


def test_metrics_port_flag_and_a_busy_port(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        proc = hean(["sim", "--port", "0", "--metrics-port", str(taken)], hean_env(tmp_path), "hean sim")
        assert proc.p.wait(30) != 0
        proc.stop()
    assert f"cannot listen on metrics port {taken}" in proc.output()
    assert "Traceback" not in proc.output()
