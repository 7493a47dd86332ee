"""What risk consumes: equity stamped with the exchange's time, re-anchored while a position is open,
transfers published once and before the equity that holds them, a ledger bound to its account."""

from __future__ import annotations

from decimal import Decimal

from hean.sim.validate import OrderRequest
from tests.executor.harness import sim_control
from tests.reconciler.helpers import (BusListener, async_record, async_scrape, make_fills, ready_port,
                                      reconciler_env, running_sim)
from tests.utils import async_wait_for, hean, metric

PREFIXES = ("account.", "position.", "reconcile.")


async def _start(tmp_path, sim, name: str = "reconciler", **settings):
    proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, **settings), name)
    listener = BusListener(tmp_path, prefixes=PREFIXES)
    port = await ready_port(proc)
    await async_wait_for(lambda: any("wallet" in c.topics for c in sim.private_hub.connections), 20,
                         "private WS subscribed")
    await async_wait_for(lambda: any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS")), 20,
                         "the start-up catch-up")
    return proc, listener, port


def _equities(listener: BusListener) -> list[dict]:
    return [e.data for e in listener.of_type("EQUITY_UPDATE")]


async def test_equity_carries_the_exchange_time_of_the_reading_and_copies_keep_it(tmp_path):
    async with running_sim() as sim:
        proc, listener, _ = await _start(tmp_path, sim, reconciler__interval_s="3600")
        try:
            await async_wait_for(lambda: _equities(listener), 10, "the start-up equity")
            first = _equities(listener)[0]
            assert first["source"] == "rest" and first["ts_ms"] <= first["published_ms"]
            # The wallet endpoint fails from now on: every copy on the bus is the same old reading.
            await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 100000,
                                                         "path": "/v5/account/wallet-balance"})
            await async_wait_for(lambda: len(_equities(listener)) >= 4, 10, "three re-publications")
            copies = _equities(listener)
            assert {c["ts_ms"] for c in copies} == {first["ts_ms"]}
            assert [c["published_ms"] for c in copies] == sorted(c["published_ms"] for c in copies)
            assert copies[-1]["published_ms"] > first["published_ms"]
            # A WS reading is stamped with the push's creationTime (the exchange's clock, here 10 min ahead
            # of what the reconciler last measured), not with the reconciler's idea of the time.
            await sim_control(sim, "faults/reset", {})
            sim.clock_offset_ms += 10 * 60 * 1000
            jumped = sim.clock()
            make_fills(sim, 1)
            await async_wait_for(lambda: any(e["source"] == "ws" for e in _equities(listener)), 10, "a WS wallet reading")
            ws = next(e for e in _equities(listener) if e["source"] == "ws")
            assert jumped <= ws["ts_ms"] <= sim.clock()
        finally:
            proc.kill()
            await listener.close()


async def test_open_position_is_re_anchored_by_polling_and_polling_stops_when_flat(tmp_path):
    async with running_sim() as sim:
        proc, listener, port = await _start(tmp_path, sim, reconciler__interval_s="3600",
                                            reconciler__account_poll_s="0.2")
        try:
            make_fills(sim, 1)                                        # long BTCUSDT
            await async_wait_for(lambda: any(e.data["size"] != "0" for e in listener.of_type("POSITION_UPDATE")),
                                 10, "the long position")
            price = (await sim_control(sim, "price", {"symbol": "BTCUSDT", "price": "41234.5"}))["price"]
            # Neither the wallet nor the position stream pushes on a mark-price move: only polling finds it.
            await async_wait_for(lambda: any(e.data["symbol"] == "BTCUSDT" and e.data["size"] != "0"
                                             and Decimal(e.data["mark_price"]) == Decimal(price)
                                             for e in listener.of_type("POSITION_UPDATE")), 10,
                                 "the position re-published with the new mark price")
            pos = [e.data for e in listener.of_type("POSITION_UPDATE") if e.data["symbol"] == "BTCUSDT"][-1]
            assert pos["seq"] is not None and pos["ts_ms"] is not None and "open_time_ms" in pos
            seen = len(_equities(listener))
            await async_wait_for(lambda: any(e["source"] == "rest" for e in _equities(listener)[seen:]), 10,
                                 "a polled equity reading")
            sim.exchange.place_order(_sell(sim, "h-flat-1"))          # flat again
            await async_wait_for(lambda: [e.data for e in listener.of_type("POSITION_UPDATE")
                                          if e.data["symbol"] == "BTCUSDT"][-1]["size"] == "0", 10, "flat")

            async def polls() -> float:
                return metric(await async_scrape(port), "hean_reconciler_account_polls_total", result="ok")
            before = await polls()
            statuses = len(listener.of_type("RECONCILE_STATUS"))
            await async_wait_for(lambda: len(listener.of_type("RECONCILE_STATUS")) >= statuses + 4, 10,
                                 "two seconds of re-publications")
            assert await polls() <= before + 1                       # at most the poll already under way
        finally:
            proc.kill()
            await listener.close()


def _sell(sim, link: str) -> OrderRequest:
    inst = sim.exchange.instruments["BTCUSDT"]
    return OrderRequest(symbol="BTCUSDT", side="Sell", order_type="Market", qty=inst.min_qty, price=None,
                        time_in_force="IOC", order_link_id=link, reduce_only=False, close_on_trigger=False)


async def test_transfers_are_published_once_and_before_the_equity_that_holds_them(tmp_path):
    async with running_sim() as sim:
        await sim_control(sim, "wallet", {"amount": "100"})          # before HEAN ever looked: in the baseline
        proc, listener, _ = await _start(tmp_path, sim, "reconciler #1", reconciler__interval_s="0.5")
        second = None
        try:
            base = Decimal(_equities(listener)[-1]["wallet_balance"])
            deposit = await sim_control(sim, "wallet", {"amount": "500"})
            await async_wait_for(lambda: listener.of_type("TRANSFER"), 10, "the deposit")
            # The withdrawal waits for the reading that holds the deposit: sent sooner, the reconciler may
            # read both at once and no reading with the deposit alone would ever exist.
            await async_wait_for(lambda: any(Decimal(e["wallet_balance"]) == base + 500 for e in _equities(listener)),
                                 10, "the equity reading holding the deposit")
            withdrawal = await sim_control(sim, "wallet", {"amount": "-200"})
            await async_wait_for(lambda: len(listener.of_type("TRANSFER")) == 2, 10, "the withdrawal")
            await async_wait_for(lambda: any(Decimal(e["wallet_balance"]) == base + 300 for e in _equities(listener)),
                                 10, "the equity reading holding the withdrawal")
            t_in, t_out = (e.data for e in listener.of_type("TRANSFER"))
            assert (t_in["id"], t_out["id"]) == (deposit["transaction_id"], withdrawal["transaction_id"])
            assert Decimal(t_in["amount"]) == 500 and Decimal(t_out["amount"]) == -200
            assert t_in["currency"] == "USDT" and t_in["ts_ms"] > 0
            # Order on the bus: each transfer before the first equity reading that includes it.
            kinds = [(e.type, e.data) for e in listener.events if e.type in ("TRANSFER", "EQUITY_UPDATE")]
            first_with = {amount: next(i for i, (t, d) in enumerate(kinds) if t == "EQUITY_UPDATE"
                                       and Decimal(d["wallet_balance"]) == base + amount) for amount in (500, 300)}
            transfer_at = [i for i, (t, _) in enumerate(kinds) if t == "TRANSFER"]
            assert transfer_at[0] < first_with[500] and transfer_at[1] < first_with[300]
            await async_wait_for(lambda: sum(1 for r in proc.records() if r.get("message") == "catch-up done") >= 4,
                                 20, "more catch-ups")
            proc.kill()
            second = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, reconciler__interval_s="0.5"),
                          "reconciler #2")
            await ready_port(second)
            done = len(listener.of_type("RECONCILE_STATUS"))
            await async_record(second, "catch-up done")
            await async_wait_for(lambda: len(listener.of_type("RECONCILE_STATUS")) >= done + 4, 20, "#2 settled")
            assert len(listener.of_type("TRANSFER")) == 2                # ids remembered across the restart
        finally:
            proc.kill()
            if second is not None:
                second.kill()
            await listener.close()


async def test_a_ledger_of_another_account_refuses_to_start_unless_archived(tmp_path):
    async with running_sim() as sim:
        first = hean(["run", "reconciler"], reconciler_env(tmp_path, sim), "reconciler #1")
        await ready_port(first)
        await async_record(first, "catch-up done")
        first.kill()
        await sim_control(sim, "account", {"uid": 2})                 # same exchange, another account
        second = hean(["run", "reconciler"], reconciler_env(tmp_path, sim), "reconciler #2")
        await async_wait_for(lambda: second.p.poll() is not None, 30, "#2 to refuse")
        second.kill()
        assert second.p.returncode == 78
        lines = [ln for ln in second.err if ln.strip()]
        assert len(lines) == 1 and "belongs to uid 1" in lines[0] and "uid 2" in lines[0], second.output()
        third = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, archive_foreign_state="true"), "#3")
        try:
            await ready_port(third)
            await async_record(third, "catch-up done")
            assert list((tmp_path / "data").glob("reconciler.sqlite.*.archived"))
        finally:
            third.kill()
