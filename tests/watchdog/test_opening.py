"""Table tests for the pure "when did the current position open?" rule (SPEC §7.1)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hean.watchdog.opening import (
    Fill,
    InvalidExecution,
    Track,
    lower_bound_opening,
    opening_from_open_time,
    opening_of,
    position_fills,
    roll_forward,
    track_after_walk,
    walk_back,
)

T0 = 1_746_270_000_000


def ex(exec_id: str, t: int, side: str, qty: str, exec_type: str = "Trade") -> dict[str, Any]:
    """A REST /v5/execution/list item (SPEC §2.6) with the fields the rule reads."""
    return {"execId": exec_id, "execTime": str(T0 + t), "side": side, "execQty": qty, "execType": exec_type,
            "symbol": "BTCUSDT", "orderId": f"o-{exec_id}", "orderType": "Market"}


def fills(*rows: dict[str, Any]) -> list[Fill]:
    return position_fills(rows)


# (history oldest first, current signed size, expected opening exec id or None = not reached)
WALKS = [
    # one opening fill
    ([ex("a", 0, "Buy", "1")], "1", "a"),
    # opened, added to: the first fill since flat opened it
    ([ex("a", 0, "Buy", "1"), ex("b", 5, "Buy", "2")], "3", "a"),
    # a long closed and re-opened: the re-opening fill, not the first-ever one
    ([ex("a", 0, "Buy", "1"), ex("b", 5, "Sell", "1"), ex("c", 9, "Buy", "0.5")], "0.5", "c"),
    # partly reduced, still open: the opening stays
    ([ex("a", 0, "Sell", "2"), ex("b", 5, "Buy", "1")], "-1", "a"),
    # a flip (long 1 -> sell 3 -> short 2) opened the current short
    ([ex("a", 0, "Buy", "1"), ex("b", 5, "Sell", "3")], "-2", "b"),
    # funding rows carry execQty = position size and never change it
    ([ex("a", 0, "Buy", "1"), ex("f", 3, "Sell", "1", "Funding"), ex("b", 5, "Buy", "1")], "2", "a"),
    # every position-changing type counts
    ([ex("a", 0, "Buy", "1", "BlockTrade"), ex("b", 1, "Sell", "1", "AdlTrade"), ex("c", 2, "Buy", "1",
                                                                                    "MovePosition"),
      ex("d", 3, "Buy", "1", "BustTrade")], "2", "c"),
    # other types (Delivery, Settle, UNKNOWN) are not fills of a perp position
    ([ex("a", 0, "Buy", "1"), ex("s", 4, "Sell", "1", "Settle")], "1", "a"),
    # history does not reach the flat point: not found (the caller reads older windows)
    ([ex("b", 5, "Buy", "1")], "3", None),
    ([], "1", None),
    # ties at one ms are ordered by execId, so the answer is stable
    ([ex("y", 0, "Buy", "1"), ex("x", 0, "Buy", "1")], "2", "x"),
]


@pytest.mark.parametrize(("history", "size", "opening"), WALKS)
def test_walk_back_finds_the_fill_that_opened_the_current_position(
        history: list[dict[str, Any]], size: str, opening: str | None) -> None:
    walk = walk_back(position_fills(history), Decimal(size))
    assert (walk.opening.exec_id if walk.opening else None) == opening
    if opening is not None:
        assert walk.running == 0 or (walk.running > 0) != (Decimal(size) > 0)


def test_walk_back_resumes_across_windows() -> None:
    """Newest window first: its leftover size carries into the older window."""
    older, newer = fills(ex("a", 0, "Buy", "1")), fills(ex("b", 5, "Buy", "2"))
    first = walk_back(newer, Decimal(3))
    assert first.opening is None and first.running == Decimal(1)
    assert walk_back(older, first.running).opening == older[0]


def test_walk_back_refuses_a_flat_position() -> None:
    with pytest.raises(ValueError):
        walk_back([], Decimal(0))


@pytest.mark.parametrize("bad", [
    {**ex("a", 0, "Buy", "1"), "execQty": 1},  # a number, not a decimal string
    {**ex("a", 0, "Buy", "1"), "execQty": "x"},
    {**ex("a", 0, "Buy", "1"), "execQty": "-1"},
    {**ex("a", 0, "Buy", "1"), "side": ""},
    {**ex("a", 0, "Buy", "1"), "execId": ""},
    {**ex("a", 0, "Buy", "1"), "execTime": "1.5e12"},
    "not a row",
])
def test_bad_position_changing_rows_raise(bad: Any) -> None:
    with pytest.raises(InvalidExecution):
        position_fills([bad])


def test_bad_funding_rows_are_ignored_not_trusted() -> None:
    assert position_fills([{**ex("f", 0, "", "x", "Funding")}]) == []


def test_duplicates_count_once() -> None:
    assert len(fills(ex("a", 0, "Buy", "1"), ex("a", 0, "Buy", "1"))) == 1


def _track(history: list[dict[str, Any]], size: str, watermark: int) -> Track:
    fs = position_fills(history)
    return track_after_walk(walk_back(fs, Decimal(size)).opening, Decimal(size), T0 + watermark, fs)


# (fills read since the watermark, new watermark, expected size, expected opening)
ROLLS = [
    ([], 20, "1", "a"),  # nothing new
    ([ex("b", 12, "Buy", "1")], 20, "2", "a"),  # added to
    ([ex("b", 12, "Sell", "1")], 20, "0", None),  # went flat
    ([ex("b", 12, "Sell", "1"), ex("c", 15, "Sell", "2")], 20, "-2", "c"),  # flat, then re-opened short
    ([ex("b", 12, "Sell", "3")], 20, "-2", "b"),  # flipped through zero
    ([ex("a", 10, "Buy", "1"), ex("b", 12, "Buy", "1")], 20, "2", "a"),  # the re-read watermark fill: once
    ([ex("z", 10, "Sell", "1")], 20, "0", None),  # a new fill at the watermark ms is applied
    ([ex("b", 25, "Sell", "1")], 20, "1", "a"),  # after the new watermark: left for the next read
    ([ex("f", 12, "Sell", "1", "Funding")], 20, "1", "a"),
]


@pytest.mark.parametrize(("new", "watermark", "size", "opening"), ROLLS)
def test_roll_forward_moves_the_opening_only_when_the_position_reopened(
        new: list[dict[str, Any]], watermark: int, size: str, opening: str | None) -> None:
    track = _track([ex("a", 10, "Buy", "1")], "1", 10)
    rolled = roll_forward(track, position_fills(new), T0 + watermark)
    assert rolled.size == Decimal(size)
    assert (rolled.opening.exec_id if rolled.opening else None) == opening
    assert rolled.watermark_ms == T0 + watermark


def test_roll_forward_twice_with_the_same_reads_is_the_same() -> None:
    track = _track([ex("a", 10, "Buy", "1")], "1", 10)
    new = position_fills([ex("b", 20, "Buy", "1")])
    once = roll_forward(track, new, T0 + 20)
    assert roll_forward(once, new, T0 + 20) == once  # fills at the watermark are remembered by id


@pytest.mark.parametrize(("raw", "ms"), [(T0, T0), (0, None), (None, None), ("1746270000000", None),
                                         (True, None), (-1, None)])
def test_open_time_opening(raw: Any, ms: int | None) -> None:
    opening = opening_from_open_time({"openTime": raw})
    assert (opening.time_ms if opening else None) == ms
    if opening:
        assert opening.source == "open_time" and opening.key == f"t{T0}"


def test_openings_of_two_positions_have_different_keys() -> None:
    a, b = fills(ex("a", 0, "Buy", "1"), ex("b", 9, "Buy", "1"))
    assert opening_of(a).key != opening_of(b).key
    assert opening_of(a).exec_id == "a" and opening_of(a).source == "executions"
    bound = lower_bound_opening(T0, T0 - 5)
    assert bound.lower_bound and bound.time_ms == T0 and bound.key == f"c{T0 - 5}"
