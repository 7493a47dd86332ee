"""The fill ledger: one SQLite (WAL) row per Bybit execId.

Exactly-once publication works like this:
1. `insert_many` does INSERT OR IGNORE in one transaction and returns only the rows that were
   new. A row that came by WS and again by REST (or twice by REST) is new exactly once, so it
   is published at most once per process life.
2. The service publishes each new `Trade` row, then `mark_published`.
3. On start, `pending()` returns rows that were inserted but never marked (a kill -9 between
   insert and publish) and the service publishes them then: nothing is lost.

4. ZeroMQ has no delivery receipt: a fill the publisher socket accepted may still sit in its
   send buffer when a kill -9 lands, and die with the process. So on start the service also
   re-publishes the *tail* of what the previous run marked (`recent_published`, the last few
   seconds by mark time), flagged `replay: true`. A kill -9 between publish and mark is covered
   the same way (that row is simply still pending).

Consumers therefore see every fill at least once and dedupe by `exec_id`, the fill's identity
everywhere, so the effect is exactly-once; a repeat is always flagged `replay`. Marking *before*
publishing, or skipping the tail, would instead risk losing a fill, which is the worse failure.
`published` holds the mark time in ns (0 = not yet published).

Running totals (per symbol: signed sum of position-moving executions, all and HEAN's own) are
kept in `symbol_sums`, updated in the same transaction as the inserts (with the highest rowid
they cover, so a file changed behind the ledger's back is re-summed once at open), so a position check
costs the same at a thousand rows as at a million (it reads only the few executions newer than
the position row it checks). Transfers (the exchange's transaction log) are remembered by id in
`transfers`, published once the same way as fills.

synchronous=NORMAL under WAL survives a process crash (kill -9); only an OS crash or power loss
could lose the last commits, and the next catch-up (margin_s) re-reads those from the exchange.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from hean.ids import is_hean_link_id
from hean.reconciler.diff import FILL_EXEC_TYPE, LedgerFill, PositionSums, moves_position, signed_qty

WATERMARK_KEY = "rest_watermark_ms"
TRANSFER_WATERMARK_KEY = "transfer_watermark_ms"
SUMS_KEY = "symbol_sums_v1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    exec_id       TEXT PRIMARY KEY,
    exec_type     TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    side          TEXT NOT NULL,
    exec_qty      TEXT NOT NULL,
    exec_time_ms  INTEGER NOT NULL,
    order_id      TEXT NOT NULL,
    order_link_id TEXT NOT NULL,
    source        TEXT NOT NULL,
    raw           BLOB NOT NULL,
    published     INTEGER NOT NULL DEFAULT 0,
    inserted_ns   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_time ON executions (exec_time_ms);
CREATE INDEX IF NOT EXISTS executions_pending ON executions (published) WHERE published = 0;
CREATE INDEX IF NOT EXISTS executions_order ON executions (order_id);
CREATE INDEX IF NOT EXISTS executions_symbol_time ON executions (symbol, exec_time_ms);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS symbol_sums (symbol TEXT PRIMARY KEY, explained TEXT NOT NULL, hean TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transfers (
    id        TEXT PRIMARY KEY,
    amount    TEXT NOT NULL,
    currency  TEXT NOT NULL,
    ts_ms     INTEGER NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
"""
BASELINE_TRANSFER = -1   # `transfers.published` of a transfer that predates the ledger: never published



def _qty(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return Decimal(0)
    return value if value.is_finite() else Decimal(0)


class Ledger:
    """SQLite ledger keyed by execId (single-threaded: used from the event loop only)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if self.get_meta(SUMS_KEY) != str(self._max_rowid()):
            self.rebuild_sums()   # written before the totals existed, or rows added behind the ledger's back
        self._sums = {sym: PositionSums(Decimal(e), Decimal(h))
                      for sym, e, h in self._db.execute("SELECT symbol, explained, hean FROM symbol_sums")}

    def rebuild_sums(self) -> None:
        """Recompute the running totals from every row (once, for a ledger written before they existed)."""
        sums: dict[str, PositionSums] = {}
        for sym, side, qty, et, link in self._db.execute(
                "SELECT symbol, side, exec_qty, exec_type, order_link_id FROM executions"):
            if moves_position(et):
                sums[sym] = sums.get(sym, PositionSums()).plus(signed_qty(side, _qty(qty)), is_hean_link_id(link))
        with self._tx() as cur:
            cur.execute("DELETE FROM symbol_sums")
            self._write_sums(cur, sums)
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (SUMS_KEY, str(self._max_rowid())))
        self._sums = sums

    def _max_rowid(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM executions").fetchone()[0])

    @staticmethod
    def _write_sums(cur: sqlite3.Cursor, sums: dict[str, PositionSums]) -> None:
        cur.executemany("INSERT OR REPLACE INTO symbol_sums (symbol, explained, hean) VALUES (?, ?, ?)",
                        [(sym, str(v.explained), str(v.hean)) for sym, v in sums.items()])

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    def insert_many(self, rows: Iterable[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        """Record executions; return those not seen before (in the given order)."""
        new: list[dict[str, Any]] = []
        now = time.time_ns()
        touched: dict[str, PositionSums] = {}
        with self._tx() as cur:
            for row in rows:
                exec_id = str(row.get("execId") or "")
                if not exec_id:
                    continue
                symbol, side, qty = str(row.get("symbol") or ""), str(row.get("side") or ""), str(row.get("execQty") or "0")
                exec_type, link = str(row.get("execType") or ""), str(row.get("orderLinkId") or "")
                cur.execute(
                    "INSERT OR IGNORE INTO executions (exec_id, exec_type, symbol, side, exec_qty, exec_time_ms,"
                    " order_id, order_link_id, source, raw, published, inserted_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                    (exec_id, exec_type, symbol, side, qty, int(row.get("execTime") or 0),
                     str(row.get("orderId") or ""), link, source, orjson.dumps(row), now))
                if cur.rowcount != 1:
                    continue
                new.append(row)
                if moves_position(exec_type):
                    base = touched.get(symbol) or self._sums.get(symbol) or PositionSums()
                    touched[symbol] = base.plus(signed_qty(side, _qty(qty)), is_hean_link_id(link))
            self._write_sums(cur, touched)
            if new:   # the totals cover every row up to here (checked at open)
                cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            (SUMS_KEY, str(self._max_rowid())))
        self._sums.update(touched)   # only once the transaction committed
        return new

    def mark_published(self, exec_ids: Iterable[str]) -> None:
        now = time.time_ns()
        ids = [(now, e) for e in exec_ids]
        if ids:
            self._db.executemany("UPDATE executions SET published = ? WHERE exec_id = ?", ids)

    def recent_published(self, window_s: float) -> list[tuple[dict[str, Any], str]]:
        """Fills marked within `window_s` of the last mark: what a killed publisher may not have sent."""
        cur = self._db.execute(
            "SELECT raw, source FROM executions WHERE exec_type = ? AND published > 0"
            " AND published >= (SELECT MAX(published) FROM executions) - ?"
            " ORDER BY exec_time_ms, exec_id", (FILL_EXEC_TYPE, int(window_s * 1e9)))
        return [(orjson.loads(raw), source) for raw, source in cur.fetchall()]

    def pending(self) -> list[tuple[dict[str, Any], str]]:
        """Fills inserted but never marked published (oldest first), with the source that found them."""
        cur = self._db.execute(
            "SELECT raw, source FROM executions WHERE published = 0 AND exec_type = ?"
            " ORDER BY exec_time_ms, exec_id", (FILL_EXEC_TYPE,))
        return [(orjson.loads(raw), source) for raw, source in cur.fetchall()]

    def rest_watermark_ms(self) -> int | None:
        """Window end of the last successful REST catch-up (server ms), or None if there was none."""
        value = self.get_meta(WATERMARK_KEY)
        return int(value) if value is not None else None

    def set_rest_watermark_ms(self, value: int) -> None:
        self.set_meta(WATERMARK_KEY, str(int(value)))

    def last_exec_time_ms(self) -> int | None:
        value = self._db.execute("SELECT MAX(exec_time_ms) FROM executions").fetchone()[0]
        return int(value) if value is not None else None

    def count(self, exec_type: str | None = None) -> int:
        if exec_type is None:
            return int(self._db.execute("SELECT COUNT(*) FROM executions").fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM executions WHERE exec_type = ?",
                                    (exec_type,)).fetchone()[0])

    def fills(self, symbols: Iterable[str]) -> list[LedgerFill]:
        """Every recorded execution of these symbols (reads all history: for tests and tools, not the loop)."""
        wanted = sorted(set(symbols))
        if not wanted:
            return []
        marks = ",".join("?" for _ in wanted)
        cur = self._db.execute(
            f"SELECT exec_time_ms, symbol, side, exec_qty, exec_type, order_link_id FROM executions"
            f" WHERE symbol IN ({marks})", wanted)
        return [LedgerFill(t, s, side, Decimal(q), et, link) for t, s, side, q, et, link in cur.fetchall()]

    def position_sums(self, symbol: str, upto_ms: int | None) -> PositionSums:
        """The running totals of `symbol` minus the executions after `upto_ms` (an index range, not history)."""
        sums = self._sums.get(symbol) or PositionSums()
        if upto_ms is None:
            return sums
        cur = self._db.execute("SELECT side, exec_qty, exec_type, order_link_id FROM executions"
                               " WHERE symbol = ? AND exec_time_ms > ?", (symbol, upto_ms))
        for side, qty, et, link in cur.fetchall():
            if moves_position(et):
                sums = sums.plus(-signed_qty(side, _qty(qty)), is_hean_link_id(link))
        return sums

    def exec_qty_for_order(self, order_id: str) -> Decimal:
        cur = self._db.execute("SELECT exec_qty FROM executions WHERE order_id = ? AND exec_type = ?",
                               (order_id, FILL_EXEC_TYPE))
        return sum((Decimal(q) for (q,) in cur.fetchall()), Decimal(0))

    # --- transfers --------------------------------------------------------------------------
    def insert_transfers(self, items: Iterable[tuple[str, str, str, int]], *, baseline: bool = False
                         ) -> list[tuple[str, str, str, int]]:
        """Record (id, amount, currency, ts_ms); return the new ones. Baseline ones are never published."""
        new = []
        with self._tx() as cur:
            for item in items:
                cur.execute("INSERT OR IGNORE INTO transfers (id, amount, currency, ts_ms, published)"
                            " VALUES (?, ?, ?, ?, ?)", (*item, BASELINE_TRANSFER if baseline else 0))
                if cur.rowcount == 1:
                    new.append(item)
        return [] if baseline else new

    def pending_transfers(self) -> list[tuple[str, str, str, int]]:
        return [tuple(r) for r in self._db.execute(  # type: ignore[misc]
            "SELECT id, amount, currency, ts_ms FROM transfers WHERE published = 0 ORDER BY ts_ms, id")]

    def mark_transfer_published(self, transfer_id: str) -> None:
        self._db.execute("UPDATE transfers SET published = ? WHERE id = ?", (time.time_ns(), transfer_id))

    def transfer_watermark_ms(self) -> int | None:
        value = self.get_meta(TRANSFER_WATERMARK_KEY)
        return int(value) if value is not None else None

    def set_transfer_watermark_ms(self, value: int) -> None:
        self.set_meta(TRANSFER_WATERMARK_KEY, str(int(value)))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
