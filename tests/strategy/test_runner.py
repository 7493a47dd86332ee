"""The strategy runner on real bus sockets; the test plays feed, executor, reconciler and risk."""

from __future__ import annotations

from decimal import Decimal

from hean import topics
from hean.strategy.api import Fill, OrderEvent, Position
from tests.strategy import samples
from tests.strategy.conftest import wait

ET = topics.EventType
S = "tests.strategy.samples:"


def ticker(price: str = "50000") -> dict[str, str | int]:
    return {"symbol": "BTCUSDT", "last_price": price, "bid": price, "ask": price, "mark_price": price,
            "exchange_ts_ms": 1, "recv_ts_ns": 1}


def outcome(intent_id: str, **extra: object) -> dict[str, object]:
    return {"intent_id": intent_id, "strategy_id": "OneShot", "symbol": "BTCUSDT", "side": "Buy",
            "qty": "0.002", "order_type": "Market", "price": None, "reduce_only": False,
            "order_link_id": "h-" + intent_id, "order_id": "o-1", "reason": None, "ret_code": 0,
            "ret_msg": "OK", "risk_state": "NORMAL", **extra}


async def test_intent_is_resent_with_the_same_id_until_its_outcome_arrives(run_strategies):
    async with run_strategies(S + "OneShot") as peers:
        # Nobody answers (the executor is "down"): the same intent keeps coming.
        await wait(lambda: len(peers.intents) >= 4, "the intent to be sent and re-sent")
        ids = set(peers.intent_ids())
        assert len(ids) == 1, ids
        intent_id = ids.pop()
        first = peers.intents[0].data
        assert first["strategy_id"] == "OneShot" and first["qty"] == "0.002" and first["side"] == "Buy"
        assert first["order_type"] == "Market" and first["price"] is None and first["reduce_only"] is False
        assert all(e.data == first for e in peers.intents), "a re-send must carry the identical payload"
        assert peers.metric("hean_strategy_resends_total") >= 3
        assert peers.metric("hean_strategy_intents_total", strategy="OneShot") == 1
        await peers.send("executor", topics.order("placed"), ET.ORDER_PLACED.value, outcome(intent_id))
        await wait(lambda: not peers.service.pending, "the outcome to end the re-sending")
        assert peers.metric("hean_strategy_outcomes_total", type="ORDER_PLACED") == 1
        events = [e for e in samples.SEEN["OneShot"] if isinstance(e, OrderEvent)]
        assert [(e.type, e.intent_id) for e in events] == [("ORDER_PLACED", intent_id)]
        # A re-published outcome (executor answering a late re-send) is not counted twice.
        await peers.send("executor", topics.order("placed"), ET.ORDER_PLACED.value, outcome(intent_id))
        await peers.send("executor", topics.order("rejected"), ET.ORDER_REJECTED.value,
                         outcome("someone-else", reason="invalid_intent"))
        await peers.send("executor", topics.order("placed"), ET.ORDER_PLACED.value, outcome(intent_id))
        await wait(lambda: peers.service.stats.received["critical"] >= 4, "the extra outcomes to arrive")
        assert peers.metric("hean_strategy_outcomes_total", type="ORDER_PLACED") == 1
        assert peers.metric("hean_strategy_outcomes_total", type="ORDER_REJECTED") == 0


async def test_raising_strategy_is_disabled_and_the_others_keep_running(run_strategies):
    async with run_strategies(S + "Raises", S + "PerTick") as peers:
        for _ in range(3):
            await peers.send("feed", topics.tick("ticker", "BTCUSDT"), ET.TICK.value, ticker())
        await wait(lambda: peers.metric("hean_strategy_disabled", strategy="Raises") == 1,
                   "the raising strategy to be disabled after max_failures=3")
        assert peers.metric("hean_strategy_errors_total", strategy="Raises") == 3
        before = peers.metric("hean_strategy_intents_total", strategy="PerTick")
        assert before == 3
        for _ in range(2):
            await peers.send("feed", topics.tick("ticker", "BTCUSDT"), ET.TICK.value, ticker())
        await wait(lambda: peers.metric("hean_strategy_intents_total", strategy="PerTick") == before + 2,
                   "the healthy strategy to keep producing intents")
        # Disabled means not called any more: no new errors.
        assert peers.metric("hean_strategy_errors_total", strategy="Raises") == 3
        assert peers.metric("hean_strategy_disabled", strategy="PerTick") == 0


async def test_garbage_intents_are_counted_and_dropped_and_the_strategy_keeps_running(run_strategies):
    async with run_strategies(S + "Garbage", S + "NotAList") as peers:
        for _ in range(2):
            await peers.send("feed", topics.tick("ticker", "BTCUSDT"), ET.TICK.value, ticker())
        await wait(lambda: peers.metric("hean_strategy_intents_total", strategy="Garbage") == 2,
                   "the one valid intent per tick to be published")
        assert peers.metric("hean_strategy_invalid_intents_total", strategy="Garbage") == 2 * 7
        assert peers.metric("hean_strategy_invalid_intents_total", strategy="NotAList") == 2
        assert peers.metric("hean_strategy_intents_total", strategy="NotAList") == 0
        assert peers.metric("hean_strategy_disabled", strategy="Garbage") == 0
        await wait(lambda: peers.intents, "the valid intent on the bus")
        good = peers.intents[0].data
        assert (good["order_type"], good["price"], good["qty"]) == ("Limit", "49000.5", "0.001")


async def test_fills_go_to_the_owner_positions_to_everyone(run_strategies):
    async with run_strategies(S + "OneShot", S + "PerTick?id=other") as peers:
        await wait(lambda: peers.intents, "OneShot's intent")
        intent_id = peers.intents[0].data["intent_id"]
        fill = {"exec_id": "e-1", "order_id": "o-1", "order_link_id": "h-" + intent_id, "intent_id": intent_id,
                "symbol": "BTCUSDT", "side": "Buy", "exec_qty": "0.002", "exec_price": "50000.1",
                "exec_fee": "0.055", "exec_time_ms": 123, "is_maker": False, "source": "ws", "hean": True}
        await peers.send("reconciler", topics.fill("BTCUSDT"), ET.ORDER_FILLED.value, fill)
        # A reconciler restart re-delivers its last fills (replay): the strategy must still see it once.
        await peers.send("reconciler", topics.fill("BTCUSDT"), ET.ORDER_FILLED.value, fill | {"replay": True})
        pos = {"symbol": "BTCUSDT", "side": "Buy", "size": "0.002", "avg_price": "50000.1",
               "unrealised_pnl": "0", "created_time_ms": 100, "updated_time_ms": 100, "foreign": False}
        await peers.send("reconciler", topics.position("BTCUSDT"), ET.POSITION_UPDATE.value, pos)
        await wait(lambda: any(isinstance(x, Position) for x in samples.SEEN.get("other", [])),
                   "the position to reach the other strategy")
        fills = [x for x in samples.SEEN["OneShot"] if isinstance(x, Fill)]
        assert [(f.exec_id, f.qty, f.price) for f in fills] == [("e-1", Decimal("0.002"), Decimal("50000.1"))]
        assert not any(isinstance(x, Fill) for x in samples.SEEN["other"])
        ctx = peers.service.by_id["other"].strategy.ctx
        assert ctx.position("BTCUSDT").signed_size == Decimal("0.002")


async def test_risk_state_reaches_strategies(run_strategies):
    async with run_strategies(S + "OneShot") as peers:
        data = {"state": "QUARANTINE", "level": 2, "drawdown_pct": 15.5, "equity": "8450", "initial_capital": "10000",
                "since": 1.0, "profit_mode": False, "transition": None}
        await peers.send("risk", topics.risk_state(), ET.RISK_STATE.value, data)
        ctx = peers.service.by_id["OneShot"].strategy.ctx
        await wait(lambda: ctx.risk is not None, "the risk state to reach the strategy context")
        assert ctx.risk.state == "QUARANTINE" and not ctx.risk.allows_new_risk
        assert ctx.risk.equity == Decimal("8450")
