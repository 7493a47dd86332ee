"""The ledger's exactly-once bookkeeping and the pure reconciliation rules."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from hean.reconciler.diff import (LedgerFill, MismatchTracker, baseline_for, catchup_start_ms, check_position,
                                  is_fill, sum_fills)
from hean.reconciler.events import fill_event
from hean.reconciler.ledger import Ledger


def _row(exec_id: str, exec_type: str = "Trade", t: int = 1000, side: str = "Buy", qty: str = "0.5",
         link: str = "h-abc") -> dict:
    return {"execId": exec_id, "execType": exec_type, "symbol": "BTCUSDT", "side": side, "execQty": qty,
            "execPrice": "50000.1", "execFee": "0.01", "execTime": str(t), "orderId": "o1", "orderLinkId": link,
            "isMaker": False}


def test_ledger_inserts_each_exec_id_once_and_survives_reopen(tmp_path):
    path = tmp_path / "l.sqlite"
    led = Ledger(path)
    assert [r["execId"] for r in led.insert_many([_row("a"), _row("b", "Funding")], "ws")] == ["a", "b"]
    assert led.insert_many([_row("a"), _row("c", t=2000)], "rest") == [_row("c", t=2000)]
    # Inserted but not marked: what a kill -9 before the publish leaves behind; only Trade rows are pending.
    assert [(r["execId"], s) for r, s in led.pending()] == [("a", "ws"), ("c", "rest")]
    led.mark_published(["a"])
    led.close()
    again = Ledger(path)
    assert [r["execId"] for r, _ in again.pending()] == ["c"]
    assert again.last_exec_time_ms() == 2000
    assert again.count() == 3 and again.count("Funding") == 1
    assert again.exec_qty_for_order("o1") == Decimal("1.0")


def test_fill_event_keeps_decimal_strings_and_intent():
    ev = fill_event(_row("x", link="h-strat-1"), "rest")
    assert ev["exec_qty"] == "0.5" and ev["exec_price"] == "50000.1" and ev["intent_id"] == "strat-1"
    assert ev["hean"] is True and ev["source"] == "rest" and ev["exec_time_ms"] == 1000
    assert fill_event(_row("y", link=""), "ws")["hean"] is False


def test_only_trade_is_a_fill():
    assert is_fill(_row("a")) and not is_fill(_row("b", "Funding")) and not is_fill(_row("c", "Settle"))


def test_catchup_window_starts_before_the_rest_watermark_however_old():
    now = 10_000_000_000
    assert catchup_start_ms(None, now, 30, 3600) == now - 3_600_000
    week_ago = now - 8 * 24 * 3600 * 1000
    assert catchup_start_ms(week_ago, now, 30, 3600) == week_ago - 30_000   # never clamped to a fixed window


def test_ws_fills_never_move_the_rest_watermark(tmp_path):
    """A fill the WS delivers late must not hide an earlier one the WS missed."""
    ledger = Ledger(tmp_path / "r.sqlite")
    ledger.set_rest_watermark_ms(1_000_000)                     # last successful catch-up read up to here
    ledger.insert_many([{"execId": "b", "execType": "Trade", "symbol": "BTCUSDT", "side": "Buy",
                         "execQty": "0.001", "execTime": "1060000"}], "ws")
    assert ledger.last_exec_time_ms() == 1_060_000
    assert ledger.rest_watermark_ms() == 1_000_000
    start = catchup_start_ms(ledger.rest_watermark_ms(), 1_070_000, 5, 3600)
    assert start == 995_000          # a fill the WS missed at 1_000_001 is still read
    ledger.close()


def _fill(t: int, side: str, qty: str, link: str = "h-1", exec_type: str = "Trade") -> LedgerFill:
    return LedgerFill(t, "BTCUSDT", side, Decimal(qty), exec_type, link)


def test_position_is_explained_by_fills_up_to_its_update_time():
    fills = [_fill(1, "Buy", "2"), _fill(2, "Sell", "1"), _fill(3, "Buy", "5"), _fill(2, "Buy", "9", exec_type="Funding")]
    ok = check_position("BTCUSDT", Decimal("1"), 2, Decimal(0), fills)
    assert ok.mismatch == 0 and not ok.foreign
    bad = check_position("BTCUSDT", Decimal("3"), 2, Decimal(0), fills)
    assert bad.mismatch == 2


def test_foreign_fills_make_a_position_foreign_and_baseline_explains_history():
    fills = [_fill(1, "Buy", "1", link="manual"), _fill(2, "Buy", "1")]
    assert check_position("BTCUSDT", Decimal("2"), None, Decimal(0), fills).foreign
    assert baseline_for(Decimal("5"), None, "BTCUSDT", fills) == Decimal("3")
    pre = check_position("BTCUSDT", Decimal("5"), None, Decimal("3"), fills)
    assert pre.mismatch == 0 and pre.foreign     # what predates the ledger is not HEAN's


@given(st.lists(st.booleans(), max_size=30), st.integers(min_value=1, max_value=5))
def test_mismatch_escalates_exactly_once_per_streak(verdicts, after):
    tracker = MismatchTracker(after)
    streak, expected, fired = 0, 0, 0
    for bad in verdicts:
        streak = streak + 1 if bad else 0
        expected += 1 if streak == after else 0
        fired += tracker.observe("BTCUSDT", bad)
    assert fired == expected


_exec_rows = st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["BTCUSDT", "ETHUSDT"]),
                                st.sampled_from(["Buy", "Sell"]), st.sampled_from(["0.001", "0.5", "2", "0"]),
                                st.sampled_from(["Trade", "Funding", "AdlTrade"]), st.sampled_from(["h-s1", "manual"]),
                                st.integers(0, 100)), max_size=40)


@settings(deadline=None, max_examples=60)   # real SQLite files: no per-example deadline on a loaded machine
@given(_exec_rows, st.integers(-1, 101))
def test_running_totals_equal_a_sum_over_the_whole_history(tmp_path_factory, rows, upto):
    """The position check reads running totals, not history: they must equal summing every row,
    after duplicates, across a reopen, and after rows were written behind the ledger's back."""
    path = tmp_path_factory.mktemp("sums") / "l.sqlite"
    ledger = Ledger(path)
    batch = [{"execId": f"e{n}", "symbol": sym, "side": side, "execQty": qty, "execType": et, "orderLinkId": link,
              "execTime": str(t), "orderId": f"o{n}"} for n, sym, side, qty, et, link, t in rows]
    ledger.insert_many(batch[: len(batch) // 2], "ws")
    ledger.insert_many(batch, "rest")                     # the first half again: ignored

    def agree(led: Ledger) -> None:
        fills = led.fills(["BTCUSDT", "ETHUSDT"])
        for sym in ("BTCUSDT", "ETHUSDT"):
            for cut in (None, upto):
                assert led.position_sums(sym, cut) == sum_fills(sym, cut, fills)
    agree(ledger)
    ledger.close()
    ledger = Ledger(path)
    agree(ledger)
    ledger.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO executions VALUES ('behind', 'Trade', 'BTCUSDT', 'Buy', '7', 50, 'o', 'h-x', 'ws',"
                   " x'7b7d', 1, 0)")
    db.close()
    ledger = Ledger(path)
    agree(ledger)
    assert ledger.position_sums("BTCUSDT", None).hean == sum_fills("BTCUSDT", None, ledger.fills(["BTCUSDT"])).hean
    ledger.close()


def test_the_per_fill_and_per_check_queries_use_an_index_not_a_scan(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    plans = {
        "exec_qty_for_order": "SELECT exec_qty FROM executions WHERE order_id = ? AND exec_type = ?",
        "position_sums": "SELECT side, exec_qty, exec_type, order_link_id FROM executions"
                         " WHERE symbol = ? AND exec_time_ms > ?",
    }
    for name, sql in plans.items():
        plan = " ".join(str(r[-1]) for r in ledger._db.execute(f"EXPLAIN QUERY PLAN {sql}", ("a", 1)))
        assert "USING INDEX" in plan and "SCAN" not in plan, (name, plan)
    ledger.close()
