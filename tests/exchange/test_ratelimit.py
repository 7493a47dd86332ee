"""Rate limiter: rolling budget, block-until-reset, and priority among waiters (real asyncio)."""

from __future__ import annotations

import asyncio

from hean.exchange.bybit.ratelimit import Priority, RateLimiter

GROUP = "/v5/order/create"


async def _wait_for(predicate, what: str, deadline_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_budget_exhausted_makes_next_caller_wait() -> None:
    limiter = RateLimiter(limits={GROUP: 2})
    assert await limiter.acquire(GROUP) == 0.0
    assert await limiter.acquire(GROUP) == 0.0
    third = asyncio.create_task(limiter.acquire(GROUP))
    await asyncio.sleep(0)
    assert not third.done()  # budget of 2 per rolling second is used up
    waited = await asyncio.wait_for(third, 5)
    assert waited > 0
    await limiter.close()


async def test_headers_update_limit_and_exhausted_status_blocks() -> None:
    limiter = RateLimiter()
    assert limiter.limit_of(GROUP) == 10
    limiter.update(GROUP, limit=20, remaining=5, reset_in_s=0.0)
    assert limiter.limit_of(GROUP) == 20 and limiter.blocked_for(GROUP) == 0
    limiter.update(GROUP, limit=20, remaining=0, reset_in_s=0.3)
    assert 0 < limiter.blocked_for(GROUP) <= 0.3
    other = "/v5/order/cancel"
    assert await limiter.acquire(other) == 0.0  # other endpoints are unaffected
    await limiter.close()


async def test_block_fallback_and_cap() -> None:
    limiter = RateLimiter()
    limiter.block(GROUP, None)
    assert 1.5 < limiter.blocked_for(GROUP) <= 2.0
    limiter.block("/x", 10_000.0)
    assert limiter.blocked_for("/x") <= 60.0
    await limiter.close()


async def test_waiters_served_by_priority_after_block() -> None:
    limiter = RateLimiter(limits={GROUP: 100})
    limiter.block(GROUP, 0.2)
    order: list[str] = []

    async def caller(label: str, priority: Priority) -> None:
        await limiter.acquire(GROUP, priority)
        order.append(label)

    tasks = [asyncio.create_task(caller(label, prio)) for label, prio in [
        ("query", Priority.QUERY), ("open1", Priority.OPEN), ("reduce", Priority.REDUCE),
        ("open2", Priority.OPEN), ("cancel", Priority.CANCEL)]]
    await _wait_for(lambda: len(order) == 5, "all five callers granted")
    assert order == ["cancel", "reduce", "open1", "open2", "query"]
    await asyncio.gather(*tasks)
    await limiter.close()


async def test_cancelled_waiter_is_skipped() -> None:
    limiter = RateLimiter(limits={GROUP: 100})
    limiter.block(GROUP, 0.1)
    doomed = asyncio.create_task(limiter.acquire(GROUP, Priority.CANCEL))
    survivor = asyncio.create_task(limiter.acquire(GROUP, Priority.OPEN))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.wait_for(survivor, 5)
    assert doomed.cancelled()
    await limiter.close()


async def test_a_refunded_slot_is_granted_to_the_next_waiter_at_once() -> None:
    """A request withdrawn after its slot was granted gives the slot back (it never reached the exchange)."""
    limiter = RateLimiter(limits={GROUP: 1})
    _, granted_at = await limiter.slot(GROUP)
    waiter = asyncio.create_task(limiter.acquire(GROUP))
    await asyncio.sleep(0.05)
    assert not waiter.done()          # the budget of 1 is used: it would wait for the rolling second
    limiter.refund(GROUP, granted_at)
    await _wait_for(waiter.done, "the waiter to get the refunded slot", deadline_s=0.5)
    limiter.refund(GROUP, granted_at)  # refunding twice gives nothing more back
    third = asyncio.create_task(limiter.acquire(GROUP))
    await asyncio.sleep(0.05)
    assert not third.done()
    third.cancel()
    await limiter.close()
