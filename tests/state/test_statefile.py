"""A state file is bound to one exchange account: a different one refuses, or archives when told to."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hean.config import ConfigError
from hean.exchange.account import AccountIdentity
from hean.statefile import bind_state, recorded_identity

SIM = AccountIdentity("http://127.0.0.1:8900", "1")
LIVE = AccountIdentity("https://api.bybit.com", "424242")


def _with_data(path: Path) -> None:
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE IF NOT EXISTS t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    db.close()


def test_first_bind_records_and_same_account_passes(tmp_path: Path) -> None:
    path = tmp_path / "risk.sqlite"
    bind_state(path, SIM, archive_foreign=False)
    assert recorded_identity(path) == SIM
    bind_state(path, SIM, archive_foreign=False)


def test_other_account_refuses_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "risk.sqlite"
    bind_state(path, SIM, archive_foreign=False)
    _with_data(path)
    with pytest.raises(ConfigError) as err:
        bind_state(path, LIVE, archive_foreign=False)
    text = str(err.value)
    assert "\n" not in text and "uid 1 at http://127.0.0.1:8900" in text and "HEAN_ARCHIVE_FOREIGN_STATE" in text
    assert recorded_identity(path) == SIM  # untouched


def test_archive_moves_the_old_state_aside(tmp_path: Path) -> None:
    path = tmp_path / "risk.sqlite"
    bind_state(path, SIM, archive_foreign=False)
    _with_data(path)
    bind_state(path, LIVE, archive_foreign=True)
    assert recorded_identity(path) == LIVE
    archived = [p for p in tmp_path.iterdir() if p.name.startswith("risk.sqlite.") and p.name.endswith(".archived")]
    assert len(archived) == 1 and recorded_identity(archived[0]) == SIM
    db = sqlite3.connect(str(path))
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None  # fresh file
    db.close()
