"""Plumbing that points the third-party pybit client at a SimServer.

Only pybit's base URLs are redirected (``HTTP.endpoint`` and the module-level WS URL
templates); every other code path — signing, query building, retries, WS auth,
subscription bookkeeping, delta merging — is pybit's own, so a wire-format
difference between the simulator and Bybit shows up as a pybit failure.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pybit import unified_trading

from hean.sim import SimServer

Message = dict[str, Any]


def pybit_http(server: SimServer, key: str, secret: str) -> unified_trading.HTTP:
    """A pybit HTTP session built as for mainnet, then re-pointed at the simulator."""
    session = unified_trading.HTTP(api_key=key, api_secret=secret, testnet=False)
    session.endpoint = server.rest_url
    return session


class Inbox:
    """Collects what a pybit callback receives; callbacks run on pybit's WS thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        # pybit hands out its live merged ticker/book dicts, so keep a frozen copy.
        with self._lock:
            self._messages.append(copy.deepcopy(message))

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    def find(self, predicate: Callable[[Message], bool]) -> Message | None:
        return next((m for m in self.messages if predicate(m)), None)

    async def wait(self, predicate: Callable[[Message], bool], what: str, timeout: float = 5.0) -> Message:
        """Poll (letting the simulator run on this loop) until a matching message arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(predicate)
            if found is not None:
                return found
            await asyncio.sleep(0.02)
        seen = [m.get("topic") for m in self.messages]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; topics seen: {seen}")


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll a thread-safe condition every 20 ms without blocking the simulator's loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@asynccontextmanager
async def pybit_ws(monkeypatch: pytest.MonkeyPatch, server: SimServer, channel_type: str,
                   **kwargs: Any) -> AsyncIterator[unified_trading.WebSocket]:
    """A pybit WebSocket on the simulator; pybit connects inside its constructor, so the
    URL templates are redirected first and the blocking constructor runs in a thread."""
    public_template = server.ws_public_url.rsplit("/", 1)[0] + "/{CHANNEL_TYPE}"
    monkeypatch.setattr(unified_trading, "PUBLIC_WSS", public_template)
    monkeypatch.setattr(unified_trading, "PRIVATE_WSS", server.ws_private_url)
    ws = await asyncio.to_thread(unified_trading.WebSocket, channel_type=channel_type, testnet=False,
                                 retries=3, **kwargs)
    assert ws.endpoint.startswith("ws://127.0.0.1:"), ws.endpoint
    try:
        yield ws
    finally:
        await asyncio.to_thread(ws.exit)


async def subscribe(stream: Callable[..., None], **kwargs: Any) -> None:
    """Call a pybit ``*_stream`` method as a pybit user does: a blocking call on its own thread.

    pybit 5.17 records a subscription's req_id and callback only after sending it; against a
    zero-latency venue the ack (or first snapshot) could beat that and pybit drops the socket on
    a KeyError. The simulator, like Bybit, answers a network round trip later (its default
    delay), so no workaround is needed here.
    """
    await asyncio.to_thread(stream, **kwargs)


def subscribed(caplog: pytest.LogCaptureFixture, topic: str) -> Callable[[], bool]:
    """True once pybit has accepted the simulator's subscribe ack for ``topic``.

    pybit logs "Subscription to <request> successful." only when the ack is well-formed,
    carries a req_id it knows, and has ``success: true``.
    """
    needle = f'"args": ["{topic}"]'

    def check() -> bool:
        return any(r.name == "pybit._websocket_stream" and "successful" in r.getMessage()
                   and needle in r.getMessage() for r in list(caplog.records))
    return check


def capture_pybit_ws_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pybit._websocket_stream")
