"""The watchdog's opening resolver against the simulator's real REST API (openTime always 0 here)."""

from __future__ import annotations

from hean.exchange.bybit.rest import BybitRestClient
from hean.watchdog.resolver import OpeningResolver
from tests.test_position_monitor import control, venue
from tests.watchdog.test_opening_age import DAY_MS, advance, trade


async def row(client: BybitRestClient, symbol: str = "BTCUSDT") -> dict:
    [r] = await client.positions(symbol=symbol)
    assert r["openTime"] == 0
    return r


async def test_cache_reads_only_new_fills_and_moves_the_opening_when_the_position_reopened() -> None:
    async with venue(report_open_time=False) as (sim, client):
        kinds: list[str] = []
        resolver = OpeningResolver(client, 730 * DAY_MS, on_lookup=kinds.append)
        first = await trade(client, "BTCUSDT", "Buy", "0.01", "test-open")
        opening = await resolver.opening(await row(client), client.server_time_ms())
        assert opening is not None and opening.exec_id == first["execId"] and kinds == ["full"]
        await trade(client, "BTCUSDT", "Buy", "0.01", "test-add")  # same position, larger
        opening = await resolver.opening(await row(client), client.server_time_ms())
        assert opening is not None and opening.exec_id == first["execId"] and kinds == ["full", "incremental"]
        # Flat and re-opened between two checks: the incremental read sees it, the opening moves.
        await trade(client, "BTCUSDT", "Sell", "0.02", "test-flat")
        second = await trade(client, "BTCUSDT", "Buy", "0.01", "test-reopen")
        opening = await resolver.opening(await row(client), client.server_time_ms())
        assert opening is not None and opening.exec_id == second["execId"]
        assert kinds == ["full", "incremental", "incremental"], "no second full walk"


async def test_no_flat_point_within_the_lookback_ages_from_its_start() -> None:
    async with venue(report_open_time=False) as (sim, client):
        resolver = OpeningResolver(client, DAY_MS)
        await trade(client, "BTCUSDT", "Buy", "0.01", "test-open")
        await advance(sim, client, 3 * DAY_MS)
        await control(sim, "POST", "funding", {"symbol": "BTCUSDT", "rate": "0.0001"})  # moves updatedTime
        r = await row(client)
        opening = await resolver.opening(r, client.server_time_ms())
        assert opening is not None and opening.lower_bound
        assert opening.time_ms == int(r["updatedTime"]) - DAY_MS  # opened at or before: never ages too young
        assert opening.key == f"c{r['createdTime']}"
        assert opening == await resolver.opening(r, client.server_time_ms()), "stable, so link ids are too"


async def test_a_cache_that_no_longer_adds_up_is_walked_again() -> None:
    async with venue(report_open_time=False) as (sim, client):
        kinds: list[str] = []
        resolver = OpeningResolver(client, 730 * DAY_MS, on_lookup=kinds.append)
        await trade(client, "ETHUSDT", "Sell", "0.2", "test-open")
        good = await row(client, "ETHUSDT")
        await resolver.opening(good, client.server_time_ms())
        # A row claiming a size the fills up to its updatedTime do not explain: walk again, never trust the
        # cache; no flat point explains it either, so the answer is the (conservative) lower bound.
        opening = await resolver.opening(dict(good, size="0.5"), client.server_time_ms())
        assert kinds == ["full", "full"]
        assert opening is not None and opening.lower_bound
