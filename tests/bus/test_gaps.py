"""Sequence gaps between real processes: a kill -9'd publisher comes back as a new stream."""

from __future__ import annotations

import json
import signal

from tests.utils import PYTHON, Proc, hean, hean_env, metric, scrape, wait_for


def _received(port: int) -> float:
    return metric(scrape(port), "hean_bus_received_total", **{"class": "lossy"})


def test_publisher_kill9_and_restart_is_a_new_stream_not_a_huge_gap(tmp_path):
    env = hean_env(tmp_path, echo__sources="bench", echo__prefixes="tick.", echo__republish="false")
    echo = hean(["run", "echo"], env)
    pub_args = [PYTHON, "tests/bus/pubproc.py", "bench", "tick.trade.BTCUSDT", "2000", "1000000"]
    first = Proc(pub_args, env, "publisher #1")
    second = None
    try:
        port = echo.wait_ready()
        wait_for(lambda: _received(port) > 3000, 30, "echo to receive 3000 ticks from publisher #1")
        first.kill()  # kill -9: no goodbye, the stream just stops
        before = _received(port)
        second = Proc(pub_args, env, "publisher #2")
        wait_for(lambda: metric(scrape(port), "hean_bus_stream_restarts_total", source="bench") == 1, 30,
                 "echo to see the restarted publisher as a new stream")
        # The new stream keeps flowing (a naive seq check would discard it until seq passed the old maximum).
        wait_for(lambda: _received(port) > before + 2000, 30, "ticks from publisher #2")
        lost = metric(scrape(port), "hean_bus_lost_total", source="bench", **{"class": "lossy"})
        # Only what #2 sent before echo reconnected counts as lost: nowhere near #1's thousands of seqs.
        assert lost < 1000, lost
        assert metric(scrape(port), "hean_bus_malformed_total") == 0
    finally:
        for p in (first, second):
            if p is not None:
                p.kill()
        echo.signal(signal.SIGTERM)
    assert echo.p.wait(15) == 0
    echo.kill()


def test_publisher_drops_show_up_as_counted_gaps(tmp_path):
    """A SIGSTOPped subscriber makes a lossy publisher drop; after SIGCONT each drop is a counted gap."""
    env = hean_env(tmp_path, echo__sources="bench", echo__prefixes="tick.", echo__republish="false",
                   bus__sndhwm="50", bus__rcvhwm="50")
    echo = hean(["run", "echo"], env)
    pub = None
    try:
        port = echo.wait_ready()
        go = tmp_path / "go"
        pub = Proc([PYTHON, "tests/bus/pubproc.py", "bench", "tick.trade.BTCUSDT", "0", "50000", str(go)], env,
                   "publisher")
        wait_for(lambda: "SUBSCRIBED" in pub.lines, 30, "echo to subscribe to the publisher")
        echo.signal(signal.SIGSTOP)
        go.touch()
        result = wait_for(lambda: next((ln for ln in pub.lines if ln.startswith("{")), None), 60,
                          "publisher to finish sending")
        echo.signal(signal.SIGCONT)
        counts = json.loads(result)
        assert counts["dropped"]["lossy"] > 0
        assert counts["published"]["lossy"] + counts["dropped"]["lossy"] == 50000
        wait_for(lambda: _received(port) == counts["published"]["lossy"], 30, "echo to drain")
        lost = metric(scrape(port), "hean_bus_lost_total", source="bench", **{"class": "lossy"})
        # Drops after the last delivered tick leave no gap behind them; all others must be counted.
        assert 0 < lost <= counts["dropped"]["lossy"]
    finally:
        echo.signal(signal.SIGCONT)
        if pub is not None:
            pub.kill()
        echo.kill()
