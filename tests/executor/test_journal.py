"""The SQLite journal: WAL, durable pre-request rows, open rows survive a reopen."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import pytest

from hean.executor import journal as j


def test_rows_survive_reopen_and_open_rows_are_listed(tmp_path):
    path = tmp_path / "executor.sqlite"
    journal = j.Journal(path)
    assert journal.insert("a", "h-a", "BTCUSDT", j.PENDING, {"qty": "0.01"})
    assert not journal.insert("a", "h-a", "BTCUSDT", j.PENDING, {"qty": "0.02"})  # same intent: refused
    assert journal.insert("b", "h-b", "BTCUSDT", j.PENDING, {"qty": "0.01"})
    journal.update("b", j.PLACED, outcome={"topic": "order.placed", "type": "ORDER_PLACED", "data": {}})
    journal.insert("c", "h-c", "ETHUSDT", j.PENDING, {})
    journal.update("c", j.UNKNOWN)
    journal.close()

    again = j.Journal(path)
    assert [r.intent_id for r in again.open_rows()] == ["a", "c"]
    row = again.get("a")
    assert row is not None and row.intent == {"qty": "0.01"} and not row.final
    placed = again.by_link_id("h-b")
    assert placed is not None and placed.final and placed.outcome is not None
    assert placed.outcome["type"] == "ORDER_PLACED"
    assert again.counts() == {"PENDING": 1, "PLACED": 1, "UNKNOWN": 1}
    again.close()


def test_journal_uses_wal_and_normal_sync_unless_told_full(tmp_path):
    path = tmp_path / "executor.sqlite"
    journal = j.Journal(path)
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    journal.insert("a", "h-a", "BTCUSDT", j.PENDING, {})
    # Committed on return: another connection (another process after a crash) sees the row at once.
    other = sqlite3.connect(path)
    assert other.execute("SELECT state FROM intents WHERE intent_id='a'").fetchone() == ("PENDING",)
    other.close()
    journal.close()
    full = j.Journal(tmp_path / "full.sqlite", "full")
    assert full._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    full.close()
    with pytest.raises(ValueError, match="'normal' or 'full'"):
        j.Journal(tmp_path / "x.sqlite", "off")


def test_a_row_committed_with_normal_sync_survives_a_kill_9(tmp_path):
    """NORMAL under WAL gives up only power-loss durability: the writer's SIGKILL loses nothing."""
    path = tmp_path / "executor.sqlite"
    code = ("import os, signal, sys\n"
            "from pathlib import Path\n"
            "from hean.executor import journal as j\n"
            "jr = j.Journal(Path(sys.argv[1]))\n"
            "for i in range(200):\n"
            "    jr.insert(f'i{i}', f'h-i{i}', 'BTCUSDT', j.PENDING, {})\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    again = j.Journal(path)
    assert again.counts() == {"PENDING": 200}
    again.close()


_OLD_SCHEMA = """
CREATE TABLE intents (intent_id TEXT PRIMARY KEY, order_link_id TEXT NOT NULL, symbol TEXT NOT NULL,
    state TEXT NOT NULL, intent_json BLOB NOT NULL, outcome_json BLOB, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL);
CREATE INDEX intents_open ON intents(state) WHERE state IN ('PENDING', 'UNKNOWN');
INSERT INTO intents VALUES ('old', 'h-old', 'BTCUSDT', 'UNKNOWN', '{"qty": "0.01"}', NULL, 1000, 2000);
"""


def test_a_journal_from_before_the_send_state_column_opens_and_keeps_its_rows(tmp_path):
    path = tmp_path / "executor.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    db.close()
    journal = j.Journal(path)
    row = journal.get("old")
    assert row is not None and row.state == j.UNKNOWN and row.sent_risk_state is None and row.created_ms == 1000
    journal.update("old", j.EXISTS, sent_risk_state="NORMAL")   # 110072: exists, still open
    assert journal.insert("new", "h-new", "BTCUSDT", j.PENDING, {}, sent_risk_state="SOFT_BRAKE")
    assert [(r.intent_id, r.state, r.sent_risk_state) for r in journal.open_rows()] == [
        ("old", j.EXISTS, "NORMAL"), ("new", j.PENDING, "SOFT_BRAKE")]
    journal.close()
