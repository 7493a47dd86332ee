"""Catch-up after gaps: many fills (pagination), a gap longer than 5 minutes, funding is not a fill."""

from __future__ import annotations

from decimal import Decimal

from tests.reconciler.helpers import (BusListener, async_scrape, make_fills, ready_port, reconciler_env, running_sim,
                                      sim_trade_ids)
from tests.executor.harness import sim_control
from tests.utils import async_wait_for, hean, metric


def _startup_done(listener: BusListener) -> bool:
    return any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS"))


async def _start(tmp_path, sim, **settings):
    proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, **settings))
    listener = BusListener(tmp_path)
    port = await ready_port(proc)
    await async_wait_for(lambda: _startup_done(listener), 20, "the start-up catch-up to finish")
    await async_wait_for(lambda: len(sim.private_hub.connections) == 1, 20, "private WS connected")
    return proc, listener, port


async def test_more_than_300_fills_in_one_gap_are_paged_to_the_end(tmp_path):
    async with running_sim() as sim:
        proc, listener, port = await _start(tmp_path, sim)
        try:
            await sim.drop_ws("private")
            make_fills(sim, 350)           # synchronously, before the reconciler can reconnect
            want = sim_trade_ids(sim)
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 60, "all 350 fills on the bus")
            assert listener.duplicates() == {}
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_fills_total", source="rest") == 350
            assert metric(samples, "hean_reconciler_fills_total", source="ws") == 0
            # execution/list pages hold at most 100 rows: 350 needs at least four pages.
            pages = sum(v for k, v in samples.items()
                        if k.startswith("hean_exchange_responses_total") and "/v5/execution/list" in k)
            assert pages >= 4
        finally:
            proc.kill()
            await listener.close()


async def test_gap_longer_than_five_minutes_is_caught_up(tmp_path):
    async with running_sim() as sim:
        proc, listener, port = await _start(tmp_path, sim)
        try:
            await sim.drop_ws("private")
            make_fills(sim, 12)
            old = {e.exec_id: e.exec_time_ms for e in sim.exchange.executions}
            sim.clock_offset_ms += 10 * 60 * 1000   # the exchange clock jumps 10 minutes during the outage
            make_fills(sim, 8)
            want = sim_trade_ids(sim)
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 30, "all 20 fills on the bus")
            assert listener.duplicates() == {}
            # The early fills were more than 5 minutes old when found: a fixed 5-minute window misses them.
            # (The catch-up publishes its fills before its final status: wait for that status.)
            def caught_up() -> int:
                return max(e.data["last_success_ms"] or 0 for e in listener.of_type("RECONCILE_STATUS"))
            await async_wait_for(lambda: caught_up() - min(old.values()) > 5 * 60 * 1000, 20,
                                 "the catch-up that found them to report its success")
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_fills_total", source="rest") == 20
        finally:
            proc.kill()
            await listener.close()


async def test_funding_executions_are_recorded_but_never_published_as_fills(tmp_path):
    async with running_sim() as sim:
        proc, listener, port = await _start(tmp_path, sim)
        try:
            make_fills(sim, 1)                                       # a long position to fund
            sim.exchange.funding("BTCUSDT", Decimal("0.0001"))       # seen on the WS
            await sim.drop_ws("private")
            sim.exchange.funding("BTCUSDT", Decimal("0.0002"))       # only REST can find this one
            make_fills(sim, 2)
            funding = {e.exec_id for e in sim.exchange.executions if e.exec_type == "Funding"}
            want = sim_trade_ids(sim)
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 30, "the 3 trade fills on the bus")

            async def both_recorded() -> bool:
                samples = await async_scrape(port)
                return metric(samples, "hean_reconciler_executions_total", exec_type="Funding") == 2
            await async_wait_for(both_recorded, 20, "both funding executions recorded in the ledger")
            assert not funding & set(listener.fill_ids())
            assert len(listener.fill_ids()) == 3
        finally:
            proc.kill()
            await listener.close()


async def test_a_fill_missed_while_rest_fails_is_not_hidden_by_a_later_ws_fill(tmp_path):
    """WS down and REST failing: fill A is missed; the WS comes back and brings a later fill B
    before any catch-up succeeds. Reading 'since B minus margin' would lose A forever."""
    async with running_sim() as sim:
        proc, listener, port = await _start(tmp_path, sim, reconciler__margin_s="5")
        try:
            await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 100000,
                                                         "path": "/v5/execution/list"})
            await sim.drop_ws("private")
            make_fills(sim, 1)                                   # fill A: nobody hears it
            missed = sim_trade_ids(sim) - set(listener.fill_ids())
            await sim_control(sim, "clock/advance", {"ms": 60_000})
            await async_wait_for(lambda: len(sim.private_hub.connections) == 1, 30, "private WS back")
            await async_wait_for(lambda: any("execution" in c.topics for c in sim.private_hub.connections), 30,
                                 "private WS subscribed to executions")
            before = set(listener.fill_ids())
            make_fills(sim, 1)                                   # fill B, 60 s after A, over the WS
            await async_wait_for(lambda: len(set(listener.fill_ids()) - before) == 1, 30, "fill B over the WS")
            await sim_control(sim, "faults/reset", {})
            await async_wait_for(lambda: missed <= set(listener.fill_ids()), 30, "fill A recovered by REST")
            assert listener.duplicates() == {}
        finally:
            proc.kill()
            await listener.close()


async def test_the_rest_watermark_holds_through_a_catch_up_that_fails_for_good(tmp_path):
    """A fault that outlasts the client's retries fails whole catch-ups; the watermark must stay
    where the last successful one left it, or the fill made meanwhile is never read again."""
    async with running_sim() as sim:
        proc, listener, port = await _start(tmp_path, sim, reconciler__margin_s="5", reconciler__interval_s="3600")
        try:
            await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 1_000_000,
                                                         "path": "/v5/execution/list"})
            await sim.drop_ws("private")
            make_fills(sim, 1)                                   # nobody hears this fill
            missed = sim_trade_ids(sim) - set(listener.fill_ids())
            assert len(missed) == 1
            await sim_control(sim, "clock/advance", {"ms": 60_000})   # far beyond margin_s

            async def failed_catchups() -> float:
                samples = await async_scrape(port)
                return sum(v for k, v in samples.items() if k.startswith("hean_reconciler_catchup_failures_total"))
            # Two whole catch-ups give up (each after the client's own retries), the second one
            # started well after the clock moved.
            await async_wait_for(lambda: _ge(failed_catchups(), 2), 90, "two failed catch-ups")
            await sim_control(sim, "faults/reset", {})
            await async_wait_for(lambda: missed <= set(listener.fill_ids()), 30, "the fill found by a later catch-up")
            assert listener.duplicates() == {}
        finally:
            proc.kill()
            await listener.close()


async def _ge(value, n: float) -> bool:
    return (await value) >= n
