"""The seed's idempotency test, kept: an identical order is blocked inside the window, allowed after.

The seed slept 5.1 s; here the guard's clock is injected, so the window is crossed without sleeping.
The executor-level test sends two *different* intents with identical parameters over the bus.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from hean.config import ExecutorSettings, HeanSettings
from hean.executor.gate import FingerprintGuard, fingerprint
from hean.sim.server import SimServer
from tests.executor.harness import executor_settings, intent, running, sample, sim_orders, sim_settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_order_blocked(caplog):
    clock = FakeClock()
    guard = FingerprintGuard(window_s=5.0, cleanup_interval_s=60.0, clock=clock)
    key = fingerprint("BTCUSDT", "Buy", Decimal("0.001"), Decimal("50000.0"))

    guard.check(key)          # first order goes out
    guard.record(key)
    clock.now += 0.5
    with pytest.raises(ValueError, match="Duplicate order detected") as exc:
        guard.check(key)      # immediate duplicate is blocked
    assert str(exc.value) == ("Duplicate order detected: identical order placed 0.50s ago. "
                              "This may be a network retry or double submission. Order rejected for safety.")
    assert any(r.getMessage().startswith("DUPLICATE ORDER BLOCKED: BTCUSDT_Buy_0.001_50000")
               for r in caplog.records)
    clock.now += 4.6          # 5.1 s after the first: allowed again
    guard.check(key)


def test_fingerprint_cleanup_forgets_old_entries():
    clock = FakeClock()
    guard = FingerprintGuard(window_s=5.0, cleanup_interval_s=60.0, clock=clock)
    guard.record("old")
    clock.now += 30
    guard.record("new")
    clock.now += 40           # old is 70 s old (> window + 60), new is 40 s old
    assert guard.cleanup() == 1 and len(guard) == 1


def test_default_window_is_the_seeds_five_seconds():
    """The seed's window is 5 s; the executor takes it from ExecutorSettings, whose default is pinned here."""
    assert ExecutorSettings().dedup_window_s == 5.0
    assert HeanSettings().executor.dedup_window_s == 5.0


async def test_executor_blocks_identical_order_from_a_new_intent_inside_the_default_window(tmp_path):
    """With default settings: blocked 4.99 s after the first order, allowed at 5 s (both edges of the window)."""
    sim = SimServer(sim_settings())
    await sim.start()
    clock = FakeClock()
    try:
        async with running(executor_settings(tmp_path, sim), guard_clock=clock) as (svc, peers):
            assert svc.guard.window_s == ExecutorSettings().dedup_window_s
            start = clock.now
            first = intent(order_type="Limit", price="40000", qty="0.001")
            assert (await peers.submit(first)).type == "ORDER_PLACED"
            clock.now = start + 4.99
            second = intent(order_type="Limit", price="40000", qty="0.001")  # same order, new intent id
            blocked = await peers.submit(second)
            assert blocked.type == "ORDER_BLOCKED_DUPLICATE" and blocked.data["reason"] == "fingerprint"
            assert blocked.data["ret_msg"].startswith("Duplicate order detected: identical order placed 4.99s ago")
            assert await sim_orders(sim, blocked.data["order_link_id"]) == []
            assert sample(svc, "hean_executor_duplicates_blocked_total", kind="fingerprint") == 1
            clock.now = start + 5.0      # window passed
            third = intent(order_type="Limit", price="40000", qty="0.001")
            assert (await peers.submit(third)).type == "ORDER_PLACED"
    finally:
        await sim.stop()
