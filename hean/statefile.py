"""Binding a state file to the exchange account it describes.

A process opens its SQLite state only after `bind_state` has checked that the file was
written for the same account (`AccountIdentity`: exchange base URL and UID). A file of
another account refuses the start with one line (exit 78), because carrying it over is
silent damage: a simulator's initial capital judging a live account, a watermark of one
account skipping another's fills. `archive=True` (the operator's explicit
`HEAN_ARCHIVE_FOREIGN_STATE=true`) moves the old file aside, with its WAL, and starts fresh.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from hean.config import ConfigError
from hean.exchange.account import AccountIdentity

log = logging.getLogger("hean.statefile")

_SCHEMA = "CREATE TABLE IF NOT EXISTS hean_account (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SIDECARS = ("", "-wal", "-shm")


def recorded_identity(path: Path) -> AccountIdentity | None:
    """The account a state file was bound to, or None (no file, or written before binding existed)."""
    if not path.exists():
        return None
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute(_SCHEMA)
        rows = dict(db.execute("SELECT key, value FROM hean_account").fetchall())
    finally:
        db.close()
    if "base_url" not in rows or "uid" not in rows:
        return None
    return AccountIdentity(rows["base_url"], rows["uid"])


def _record(path: Path, identity: AccountIdentity) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.executemany("INSERT OR REPLACE INTO hean_account (key, value) VALUES (?, ?)",
                       [("base_url", identity.base_url), ("uid", identity.uid)])
    finally:
        db.close()


def archive(path: Path) -> Path:
    """Move the state file (and its WAL/SHM) aside; returns the archived main file's path."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.{stamp}.archived")
    for suffix in _SIDECARS:
        src = Path(str(path) + suffix)
        if src.exists():
            src.rename(Path(str(target) + suffix))
    return target


def bind_state(path: Path, identity: AccountIdentity, *, archive_foreign: bool) -> None:
    """Check (or record) which account `path` belongs to; ConfigError on a mismatch.

    A file with no recorded account (older HEAN, or a fresh file) is bound to `identity`.
    """
    found = recorded_identity(path)
    if found is not None and found != identity:
        if not archive_foreign:
            raise ConfigError(
                f"{path} belongs to {found.label()}, not to {identity.label()}: refusing to start "
                "(set HEAN_ARCHIVE_FOREIGN_STATE=true to archive it and start fresh)")
        moved = archive(path)
        log.warning("state file of another account archived; starting fresh",
                    extra={"path": str(path), "archived_to": str(moved), "was": found.label(),
                           "now": identity.label()})
    _record(path, identity)
