"""Table tests of the equity estimate between wallet readings, the account view that feeds it, and transfers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.risk import InvalidEquity, RiskGovernorCore, RiskState
from hean.risk.account import AccountView, parse_transfer
from hean.risk.equity import Anchor, Mark, PositionRow, estimate

D = Decimal
BTC, ETH = "BTCUSDT", "ETHUSDT"


def row(symbol: str, size: str, mark: str | None, at: float | None) -> PositionRow:
    return PositionRow(symbol, D(size), None if mark is None else D(mark), at)


# (name, anchor, rows, marks {symbol: (price, at)}, now, expected equity, expected as_of, marked)
CASES = [
    ("flat_is_the_anchor", Anchor(D("10000"), 100.0), [row(BTC, "0", "50000", 90.0)],
     {BTC: ("40000", 101.0)}, 101.0, "10000", 100.0, ()),
    ("long_marked_down", Anchor(D("10000"), 100.0), [row(BTC, "1", "50000", 100.0)],
     {BTC: ("49000", 101.0)}, 101.0, "9000", 100.0, (BTC,)),
    ("short_marked_up", Anchor(D("10000"), 100.0), [row(ETH, "-2", "3000", 100.0)],
     {ETH: ("3100", 100.5)}, 101.0, "9800", 100.0, (ETH,)),
    ("long_and_short_together", Anchor(D("10000"), 100.0),
     [row(BTC, "0.5", "50000", 100.0), row(ETH, "-2", "3000", 100.0)],
     {BTC: ("52000", 101.0), ETH: ("3050", 101.0)}, 101.0, "10900", 100.0, (BTC, ETH)),
    # The row is older than the wallet (the wallet already holds the move from 50200 to 50000): the error
    # is the price move between the row and the wallet, -200 here, never a realised loss counted twice.
    ("row_older_than_wallet", Anchor(D("10000"), 100.0), [row(BTC, "1", "50200", 98.0)],
     {BTC: ("50000", 100.5)}, 101.0, "9800", 98.0, (BTC,)),
    # The row is newer (an add at 49900 after the wallet): marked from the row's own mark, not the wallet's.
    ("row_newer_than_wallet", Anchor(D("10000"), 100.0), [row(BTC, "2", "49900", 102.0)],
     {BTC: ("49800", 102.5)}, 103.0, "9800", 100.0, (BTC,)),
    # A close that realised a loss is in the wallet; the flat row adds nothing on top.
    ("closed_after_loss_not_double_counted", Anchor(D("9000"), 105.0), [row(BTC, "0", "49000", 104.0)],
     {BTC: ("48000", 105.5)}, 106.0, "9000", 105.0, ()),
    ("no_feed_mark_falls_back_to_anchor", Anchor(D("10000"), 100.0), [row(BTC, "1", "50000", 100.0)],
     {}, 101.0, "10000", 100.0, ()),
    ("stale_mark_is_not_used", Anchor(D("10000"), 100.0), [row(BTC, "1", "50000", 100.0)],
     {BTC: ("40000", 96.0)}, 101.0, "10000", 100.0, ()),
    ("row_without_mark_price_is_not_marked", Anchor(D("10000"), 100.0), [row(BTC, "1", None, 100.0)],
     {BTC: ("40000", 101.0)}, 101.0, "10000", 100.0, ()),
    ("row_without_time_is_not_marked", Anchor(D("10000"), 100.0), [row(BTC, "1", "50000", None)],
     {BTC: ("40000", 101.0)}, 101.0, "10000", 100.0, ()),
    # An old mark still within the limit is used, and its age is what the estimate reports.
    ("oldest_input_is_the_age", Anchor(D("10000"), 100.0), [row(BTC, "1", "50000", 100.0)],
     {BTC: ("49500", 99.0)}, 101.0, "9500", 99.0, (BTC,)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_estimate_table(case: tuple) -> None:
    _, anchor, rows, marks, now, want, as_of, marked = case
    est = estimate(anchor, rows, {s: Mark(D(p), at) for s, (p, at) in marks.items()}, now, max_mark_age_s=3.0)
    assert est.equity == D(want)
    assert est.as_of == as_of
    assert est.marked == marked
    assert est.age(now) == pytest.approx(now - as_of)


def eq(value: str, ts_ms: int, published_ms: int | None = None) -> dict:
    data = {"equity": value, "ts_ms": ts_ms, "source": "rest"}
    if published_ms is not None:
        data["published_ms"] = published_ms
    return data


def test_age_counts_from_the_exchange_reading_across_a_clock_offset() -> None:
    view = AccountView(max_mark_age_s=3.0)
    # Exchange clock 1000 s behind the hosts: read at 50 000 ms, re-published 4 s later (exchange clock).
    local_publish_ns = 1_054_000 * 10**6
    assert view.on_equity(eq("1000", 50_000, published_ms=54_000), local_publish_ns)
    est = view.estimate(now=1_055.0)
    assert est is not None and est.age(1_055.0) == pytest.approx(5.0)  # 4 s old at publication + 1 s on the bus


def test_republication_is_not_a_new_reading_under_an_open_position() -> None:
    view = AccountView(max_mark_age_s=3.0)
    assert view.on_equity(eq("1000", 50_000, 50_000), 50_000 * 10**6)
    view.on_position({"symbol": BTC, "side": "Buy", "size": "1", "mark_price": "50000", "ts_ms": 50_000})
    assert not view.on_equity(eq("1000", 50_000, 60_000), 60_000 * 10**6)
    assert view.estimate(now=60.0).age(60.0) == pytest.approx(10.0)
    assert view.on_equity(eq("990", 59_000, 60_000), 60_000 * 10**6)
    assert view.anchor.equity == D("990")
    assert view.estimate(now=60.0).age(60.0) == pytest.approx(1.0)


def test_republication_vouches_for_a_flat_account_until_a_position_opens() -> None:
    view = AccountView(max_mark_age_s=3.0)
    view.on_equity(eq("1000", 50_000, 50_000), 50_000 * 10**6)
    view.on_position({"symbol": BTC, "side": "", "size": "0", "mark_price": "0", "ts_ms": 50_000})
    assert not view.on_equity(eq("1000", 50_000, 80_000), 80_000 * 10**6)  # flat: nothing can have moved
    assert view.estimate(now=80.5).age(80.5) == pytest.approx(0.5)
    view.on_position({"symbol": BTC, "side": "Buy", "size": "1", "mark_price": "50000", "ts_ms": 81_000})
    assert not view.on_equity(eq("1000", 50_000, 90_000), 90_000 * 10**6)  # open: no longer vouched for
    assert view.estimate(now=90.0).age(90.0) == pytest.approx(10.0)


@pytest.mark.parametrize("bad", [{"equity": "NaN", "ts_ms": 1}, {"equity": "-1", "ts_ms": 1},
                                 {"equity": "abc", "ts_ms": 1}, {"equity": "1000"}, {"equity": "1000", "ts_ms": 0},
                                 {"ts_ms": 5}, {"equity": None, "ts_ms": 5}, "junk"])
def test_invalid_readings_are_refused(bad: object) -> None:
    with pytest.raises(InvalidEquity):
        AccountView(3.0).on_equity(bad, 1)


def test_feed_marks_move_an_open_position_and_only_that() -> None:
    view = AccountView(max_mark_age_s=3.0)
    view.on_equity(eq("10000", 100_000, 100_000), 100_000 * 10**6)
    assert view.on_tick({"symbol": BTC, "mark_price": "49000", "exchange_ts_ms": 100_100}, 100_100 * 10**6) is None
    view.on_position({"symbol": BTC, "side": "Sell", "size": "0.5", "mark_price": "50000", "ts_ms": 100_000})
    assert view.positions_open
    assert view.on_tick({"symbol": BTC, "mark_price": "52000", "exchange_ts_ms": 100_200}, 100_200 * 10**6) == BTC
    assert view.estimate(now=100.3).equity == D("9000")
    assert view.on_tick({"symbol": BTC, "last_price": "1"}, 100_300 * 10**6) is None  # no mark: ignored


def test_transfer_moves_the_anchor_and_a_late_older_reading() -> None:
    view = AccountView(max_mark_age_s=3.0)
    view.on_equity(eq("1000", 100_000, 100_000), 100_000 * 10**6)
    view.on_transfer(parse_transfer({"id": "t1", "amount": "-300", "currency": "USDT", "ts_ms": 100_500}))
    assert view.estimate(now=100.6).equity == D("700")
    assert view.on_equity(eq("1000", 100_400, 100_700), 100_700 * 10**6)  # read before the transfer
    assert view.anchor.equity == D("700")
    assert view.on_equity(eq("700", 100_800, 100_900), 100_900 * 10**6)  # includes it
    assert view.anchor.equity == D("700")


@pytest.mark.parametrize("bad", [{"amount": "5"}, {"id": "", "amount": "5"}, {"id": "x", "amount": "0"},
                                 {"id": "x", "amount": "NaN"}, {"id": "x"}, []])
def test_invalid_transfers(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_transfer(bad)


def test_transfer_moves_the_base_and_is_never_profit_or_loss() -> None:
    core = RiskGovernorCore(initial_capital=1000)
    core.on_equity(1100, 0)
    core.on_transfer(D("-300"))
    assert (core.initial_capital, core.peak_equity) == (D("700"), D("800"))
    assert core.on_equity(800, 1) is None and core.drawdown_pct == pytest.approx(-100 / 7)
    core.on_transfer(D("700"))
    assert (core.initial_capital, core.peak_equity) == (D("1400"), D("1500"))
    assert core.on_equity(1500, 2) is None and core.state is RiskState.NORMAL
    with pytest.raises(InvalidEquity):
        core.on_transfer(D("-1400"))
    assert core.initial_capital == D("1400")
    same_drop = RiskGovernorCore(initial_capital=1000)
    assert same_drop.on_equity(700, 0).to_state is RiskState.HARD_STOP  # the same drop without a transfer


def test_a_row_newer_than_the_wallet_does_not_hide_the_move_since_the_wallet() -> None:
    """Positions are polled before the wallet; a row read after a crash must not cancel the crash."""
    view = AccountView(max_mark_age_s=3.0)
    view.on_position({"symbol": BTC, "side": "Buy", "size": "1", "mark_price": "50000", "ts_ms": 99_900})
    view.on_equity(eq("10000", 100_000, 100_000), 100_000 * 10**6)
    view.on_tick({"symbol": BTC, "mark_price": "47000", "exchange_ts_ms": 100_200}, 100_200 * 10**6)
    assert view.estimate(now=100.3).equity == D("7000")
    # The next poll's row (read after the crash) comes before its wallet reading: the crash stays visible.
    view.on_position({"symbol": BTC, "side": "Buy", "size": "1", "mark_price": "47000", "ts_ms": 100_400})
    assert view.estimate(now=100.5).equity == D("7000")
    view.on_equity(eq("7000", 100_450, 100_450), 100_450 * 10**6)  # the wallet catches up: re-anchored
    assert view.estimate(now=100.5).equity == D("7000")
    assert view.rows[BTC].mark_price == D("47000")
    # A fill (a changed size) is taken at once, marked from its own row.
    view.on_position({"symbol": BTC, "side": "Buy", "size": "2", "mark_price": "47000", "ts_ms": 100_600})
    view.on_tick({"symbol": BTC, "mark_price": "46900", "exchange_ts_ms": 100_700}, 100_700 * 10**6)
    assert view.estimate(now=100.8).equity == D("6800")


def test_feed_mark_at_the_wallet_time_is_the_reference_when_known() -> None:
    """Row read at 47000, price back at 50000 before the wallet: the wallet holds 50000, not the row's mark."""
    est = estimate(Anchor(D("9978"), 100.0), [row(BTC, "0.8", "47000", 99.5)], {BTC: Mark(D("47000"), 101.0)},
                   101.0, max_mark_age_s=3.0, references={BTC: D("50000")})
    assert est.equity == D("9978") - D("2400")  # the crash after the wallet, counted once
    fallback = estimate(Anchor(D("9978"), 100.0), [row(BTC, "0.8", "47000", 99.5)], {BTC: Mark(D("47000"), 101.0)},
                        101.0, max_mark_age_s=3.0)
    assert fallback.equity == D("9978")  # the row's mark alone: the gap between row and wallet is the error


def test_a_crash_right_after_a_recovery_is_seen_at_once() -> None:
    view = AccountView(max_mark_age_s=3.0)

    def tick(price: str, ms: int) -> None:
        view.on_tick({"symbol": BTC, "mark_price": price, "exchange_ts_ms": ms}, ms * 10**6)

    tick("47000", 99_000)
    view.on_position({"symbol": BTC, "side": "Buy", "size": "0.8", "mark_price": "47000", "ts_ms": 99_500})
    tick("50000", 99_700)  # recovered between the position read and the wallet read
    view.on_equity(eq("9978", 100_000, 100_000), 100_000 * 10**6)
    assert view.estimate(now=100.1).equity == D("9978")
    tick("47000", 100_200)
    assert view.estimate(now=100.3).equity == D("7578")
