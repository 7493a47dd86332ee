"""The SQLite journal: WAL, durable pre-request rows, open rows survive a reopen."""

from __future__ import annotations

import sqlite3

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


def test_journal_uses_wal_and_full_sync(tmp_path):
    path = tmp_path / "executor.sqlite"
    journal = j.Journal(path)
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    journal.insert("a", "h-a", "BTCUSDT", j.PENDING, {})
    # Committed on return: another connection (another process after a crash) sees the row at once.
    other = sqlite3.connect(path)
    assert other.execute("SELECT state FROM intents WHERE intent_id='a'").fetchone() == ("PENDING",)
    other.close()
    journal.close()
