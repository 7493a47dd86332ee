"""SQLite persistence of the risk governor's snapshot and its transition history.

Why: a restarted risk process must resume the state it was in (a HARD_STOP
must not become NORMAL because the process was killed) and keep the same
initial capital, so drawdown keeps meaning the same thing. One row holds the
latest `RiskGovernorCore.snapshot()`; an append-only table keeps every
transition and operator reset (who and when) for the audit trail; another keeps
the id of every transfer applied to the base, so a re-sent one is not applied twice.

Writes are tiny and rare (transitions, first equity, new peaks), so plain
synchronous sqlite3 with `synchronous=FULL` is used: a transition is on disk
before it is published.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS risk_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_transfers (
    id TEXT PRIMARY KEY,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    ts_ms INTEGER,
    applied INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason_codes TEXT NOT NULL,
    operator TEXT,
    detail TEXT NOT NULL
);
"""


class RiskStore:
    """The risk process's own SQLite file (`<data_dir>/risk.sqlite`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def load(self) -> dict[str, Any] | None:
        """The last saved snapshot, or None on a fresh file; a corrupt row raises ValueError."""
        row = self._db.execute("SELECT snapshot FROM risk_snapshot WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise ValueError(f"risk snapshot in {self.path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"risk snapshot in {self.path} is not an object")
        return data

    def save(self, snapshot: dict[str, Any], at: float) -> None:
        self._db.execute(
            "INSERT INTO risk_snapshot (id, snapshot, updated_at) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
            (json.dumps(snapshot, sort_keys=True), at),
        )

    def record_transition(self, event: dict[str, Any], snapshot: dict[str, Any]) -> None:
        """Append the transition and save the snapshot in one transaction (both or neither)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO risk_transitions (at, from_state, to_state, reason_codes, operator, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event["at"], event["from_state"], event["to_state"], json.dumps(event["reason_codes"]),
                 event.get("operator"), json.dumps(event, sort_keys=True)),
            )
            self.save(snapshot, event["at"])

    def transfer_seen(self, transfer_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM risk_transfers WHERE id = ?", (transfer_id,)).fetchone()
        return row is not None

    def record_transfer(self, transfer_id: str, amount: str, currency: str, ts_ms: int | None, applied: bool,
                        snapshot: dict[str, Any], at: float) -> None:
        """Remember the transfer id and save the moved base in one transaction (applied exactly once)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO risk_transfers (id, amount, currency, ts_ms, applied, at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (transfer_id, amount, currency, ts_ms, int(applied), at))
            self.save(snapshot, at)

    def transfers(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT id, amount, currency, ts_ms, applied FROM risk_transfers ORDER BY at").fetchall()
        return [{"id": r[0], "amount": r[1], "currency": r[2], "ts_ms": r[3], "applied": bool(r[4])} for r in rows]

    def transitions(self) -> list[dict[str, Any]]:
        """Every recorded transition, oldest first (for audits and tests)."""
        rows = self._db.execute("SELECT detail FROM risk_transitions ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        self._db.close()
