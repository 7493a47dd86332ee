"""The executor's SQLite journal: one row per intent id, written before the request.

The row is committed (WAL) *before* the order request leaves, so a crash at any later point
leaves evidence that the order may exist; start-up then asks the exchange by orderLinkId
instead of guessing. `synchronous` is NORMAL by default (a process crash loses nothing; a
power loss may lose the last rows, see `executor.journal_sync` for why that doubles nothing)
or FULL (an fsync per commit). Calls are synchronous and short (one
indexed row); they run on the event loop on purpose, so the commit is ordered strictly
before the request it protects.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

PENDING = "PENDING"      # written before the request; the order may or may not exist
UNKNOWN = "UNKNOWN"      # the request's outcome was ambiguous; being resolved by query
EXISTS = "EXISTS"        # the exchange answered 110072: an order with this id exists; found by query, never resent
PLACED = "PLACED"
REJECTED = "REJECTED"
BLOCKED = "BLOCKED"
FINAL_STATES = frozenset({PLACED, REJECTED, BLOCKED})
OPEN_STATES = frozenset({PENDING, UNKNOWN, EXISTS})
_OPEN_SQL = "('PENDING', 'UNKNOWN', 'EXISTS')"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    intent_id     TEXT PRIMARY KEY,
    order_link_id TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    state         TEXT NOT NULL,
    intent_json   BLOB NOT NULL,
    outcome_json  BLOB,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
);
DROP INDEX IF EXISTS intents_open;
CREATE INDEX IF NOT EXISTS intents_open_rows ON intents(state) WHERE state IN ('PENDING', 'UNKNOWN', 'EXISTS');
CREATE INDEX IF NOT EXISTS intents_link ON intents(order_link_id);
"""


@dataclass(frozen=True)
class JournalRow:
    intent_id: str
    order_link_id: str
    symbol: str
    state: str
    intent: dict[str, Any]
    outcome: dict[str, Any] | None
    updated_ms: int = 0     # local clock, ms: when the row last changed (for a PENDING row, just before sending)
    created_ms: int = 0     # local clock, ms: when the intent was received
    sent_risk_state: str | None = None  # the risk state the request last left under (admission's until sent)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Journal:
    """Intent journal in `<data_dir>/executor.sqlite`."""

    def __init__(self, path: Path, sync: str = "normal") -> None:
        if sync not in ("normal", "full"):
            raise ValueError(f"journal sync must be 'normal' or 'full', not {sync!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(intents)")}
        if "sent_risk_state" not in columns:  # a journal written before the column existed
            self._db.execute("ALTER TABLE intents ADD COLUMN sent_risk_state TEXT")

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _row(r: tuple[Any, ...]) -> JournalRow:
        return JournalRow(intent_id=r[0], order_link_id=r[1], symbol=r[2], state=r[3],
                          intent=orjson.loads(r[4]), outcome=orjson.loads(r[5]) if r[5] else None,
                          updated_ms=int(r[6]), created_ms=int(r[7]), sent_risk_state=r[8])

    _COLUMNS = "intent_id, order_link_id, symbol, state, intent_json, outcome_json, updated_ms, created_ms, " \
        "sent_risk_state"

    def get(self, intent_id: str) -> JournalRow | None:
        r = self._db.execute(f"SELECT {self._COLUMNS} FROM intents WHERE intent_id = ?", (intent_id,)).fetchone()
        return None if r is None else self._row(r)

    def by_link_id(self, order_link_id: str) -> JournalRow | None:
        r = self._db.execute(f"SELECT {self._COLUMNS} FROM intents WHERE order_link_id = ?",
                             (order_link_id,)).fetchone()
        return None if r is None else self._row(r)

    def open_rows(self) -> list[JournalRow]:
        """Rows whose outcome is not known yet (PENDING, UNKNOWN or EXISTS), oldest first."""
        rows = self._db.execute(f"SELECT {self._COLUMNS} FROM intents WHERE state IN {_OPEN_SQL} "
                                "ORDER BY created_ms").fetchall()
        return [self._row(r) for r in rows]

    def insert(self, intent_id: str, order_link_id: str, symbol: str, state: str, intent: dict[str, Any],
               outcome: dict[str, Any] | None = None, *, sent_risk_state: str | None = None) -> bool:
        """Create the row (committed on return); False if the intent id is already journaled."""
        now = now_ms()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO intents (intent_id, order_link_id, symbol, state, intent_json, outcome_json,"
            " created_ms, updated_ms, sent_risk_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (intent_id, order_link_id, symbol, state, orjson.dumps(intent),
             orjson.dumps(outcome) if outcome is not None else None, now, now, sent_risk_state))
        return cur.rowcount == 1

    def update(self, intent_id: str, state: str, *, outcome: dict[str, Any] | None = None,
               intent: dict[str, Any] | None = None, sent_risk_state: str | None = None) -> None:
        """Move a row to `state`, storing the outcome to re-publish on re-delivery."""
        sets = ["state = ?", "updated_ms = ?"]
        args: list[Any] = [state, now_ms()]
        if sent_risk_state is not None:
            sets.append("sent_risk_state = ?")
            args.append(sent_risk_state)
        if outcome is not None:
            sets.append("outcome_json = ?")
            args.append(orjson.dumps(outcome))
        if intent is not None:
            sets.append("intent_json = ?")
            args.append(orjson.dumps(intent))
        args.append(intent_id)
        self._db.execute(f"UPDATE intents SET {', '.join(sets)} WHERE intent_id = ?", args)

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, COUNT(*) FROM intents GROUP BY state").fetchall())
