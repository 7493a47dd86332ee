"""Pure parts of the strategy API: validation, loading, and the example strategies' state machines."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.config import ConfigError
from hean.strategy.api import Context, InvalidIntent, OrderIntent, Position, RiskView, validate
from hean.strategy.examples import MovingAverageCross, RoundTrip
from hean.strategy.loader import load_all, load_one
from tests.utils import hean, hean_env

SYMS = ("BTCUSDT", "ETHUSDT")


@pytest.mark.parametrize("intent, why", [
    (OrderIntent("BTCUSDT", "Buy", 0.1), "Decimal"),                                  # type: ignore[arg-type]
    (OrderIntent.market("XRPUSDT", "Buy", "1"), "not configured"),
    (OrderIntent.market("BTCUSDT", "buy", "1"), "side"),
    (OrderIntent.market("BTCUSDT", "Buy", "-1"), "qty must be > 0"),
    (OrderIntent("BTCUSDT", "Buy", Decimal("NaN")), "finite"),
    (OrderIntent("BTCUSDT", "Buy", Decimal(1), "Limit"), "needs a price"),
    (OrderIntent("BTCUSDT", "Buy", Decimal(1), "Market", Decimal(5)), "must not carry a price"),
    (OrderIntent("BTCUSDT", "Buy", Decimal(1), "Stop"), "order_type"),
    (OrderIntent("BTCUSDT", "Buy", Decimal(1), stop_loss=Decimal(0)), "stop_loss"),
    (OrderIntent("BTCUSDT", "Buy", Decimal(1), time_in_force="GTD"), "time_in_force"),
    ({"symbol": "BTCUSDT"}, "expected an OrderIntent"),
])
def test_invalid_intents_are_refused_with_a_reason(intent, why):
    with pytest.raises(InvalidIntent, match=why):
        validate(intent, SYMS)


def test_valid_intent_is_normalised_to_decimals():
    got = validate(OrderIntent("ETHUSDT", "Sell", 2, "Limit", "3000.5", True, None, "3100"), SYMS)  # type: ignore[arg-type]
    assert (got.qty, got.price, got.stop_loss) == (Decimal(2), Decimal("3000.5"), Decimal("3100"))
    assert OrderIntent.close(Position("ETHUSDT", "Buy", Decimal("0.5"))) == OrderIntent(
        "ETHUSDT", "Sell", Decimal("0.5"), "Market", None, True)


@pytest.mark.parametrize("path, why", [
    ("no_colon_here", "package.module:Class"),
    ("hean.nowhere:Foo", "cannot be imported"),
    ("tests.strategy.samples:Missing", "subclass"),
    ("tests.strategy.samples:NotAStrategy", "subclass"),
    ("hean.strategy.examples:RoundTrip?wings=2", "unknown parameter 'wings'"),
    ("hean.strategy.examples:RoundTrip?hold_s=soon", "hold_s"),
    ("hean.strategy.examples:RoundTrip?id=has space", "strategy_id"),
])
def test_bad_strategy_paths_name_the_setting(path, why):
    with pytest.raises(ConfigError, match=why) as err:
        load_one(path)
    assert str(err.value).startswith("HEAN_STRATEGY__PATHS:")


def test_duplicate_ids_and_parameters():
    with pytest.raises(ConfigError, match="used twice"):
        load_all(("hean.strategy.examples:RoundTrip", "hean.strategy.examples:RoundTrip"))
    a, b = load_all(("hean.strategy.examples:RoundTrip?symbol=ETHUSDT&qty=0.5&hold_s=2.5&id=rt-eth",
                     "hean.strategy.examples:RoundTrip"))
    assert (a.strategy_id, a.symbol, a.qty, a.hold_s) == ("rt-eth", "ETHUSDT", Decimal("0.5"), 2.5)
    assert (b.strategy_id, b.qty) == ("RoundTrip", Decimal("0.01"))


def test_bad_path_stops_the_process_with_exit_78_and_one_line(tmp_path):
    env = hean_env(tmp_path, strategy__paths="hean.strategy.examples:RoundTrip,nope.nothing:X")
    proc = hean(["run", "strategy"], env)
    assert proc.p.wait(30) == 78
    proc.kill()
    err = [line for line in proc.err if line.strip()]
    assert len(err) == 1 and "HEAN_STRATEGY__PATHS" in err[0] and "nope.nothing:X" in err[0], err


def _ctx_with(strategy, now: float = 1000.0) -> Context:
    ctx = Context(SYMS)
    ctx.now = now
    strategy.ctx = ctx
    strategy.on_start()
    return ctx


def test_round_trip_opens_holds_closes_and_waits():
    rt = RoundTrip()
    rt.configure({"symbol": "ETHUSDT", "qty": "0.5", "hold_s": "10", "every_s": "5"})
    ctx = _ctx_with(rt)
    assert rt.on_timer(1000.0) == [OrderIntent.market("ETHUSDT", "Buy", "0.5")]
    assert rt.on_timer(1001.0) == []                                    # flat, but the open is on its way
    ctx.now = 1001.0
    pos = Position("ETHUSDT", "Buy", Decimal("0.5"))
    ctx.positions["ETHUSDT"] = pos
    rt.on_position(pos)
    assert rt.on_timer(1010.0) == []                                    # held 9 s of 10
    assert rt.on_timer(1011.0) == [OrderIntent.close(pos)]
    assert rt.on_timer(1012.0) == []                                    # no second close while in flight
    ctx.now = 1012.0
    flat = Position("ETHUSDT", "")
    ctx.positions["ETHUSDT"] = flat
    rt.on_position(flat)
    assert rt.on_timer(1016.0) == []                                    # resting every_s
    ctx.risk = RiskView("QUARANTINE", 16.0)
    assert rt.on_timer(1017.5) == []                                    # risk says no new exposure
    ctx.risk = RiskView("NORMAL", 0.0)
    assert rt.on_timer(1017.5) == [OrderIntent.market("ETHUSDT", "Buy", "0.5")]


def test_moving_average_cross_goes_long_then_reverses_short():
    ma = MovingAverageCross()
    ma.configure({"fast": "2", "slow": "4", "qty": "0.01"})
    ctx = _ctx_with(ma)
    out = []
    for i, price in enumerate(["100", "100", "100", "101", "102"]):
        ctx.last_price["BTCUSDT"] = Decimal(price)
        out.append(ma.on_timer(float(i)))
    assert out[:3] == [[], [], []]
    assert out[3] == [OrderIntent.market("BTCUSDT", "Buy", "0.01")]
    assert out[4] == []                                                 # same signal: nothing new
    ctx.positions["BTCUSDT"] = Position("BTCUSDT", "Buy", Decimal("0.01"))
    ctx.last_price["BTCUSDT"] = Decimal("95")                           # fast 98.5 < slow 99.5
    assert ma.on_timer(9.0) == [OrderIntent.market("BTCUSDT", "Sell", "0.02")]  # flip: close 0.01, open 0.01 short
