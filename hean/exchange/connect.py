"""Build the exchange client and WebSocket from the settings, the same way in every process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from hean.config import ConfigError, HeanSettings
from hean.exchange.bybit import BybitRestClient, BybitWebSocket, HostGuardError


def rest_client(settings: HeanSettings, registry: CollectorRegistry | None = None, *,
                client_cls: type[BybitRestClient] = BybitRestClient) -> BybitRestClient:
    """The REST client for `settings.bybit`; a forbidden host is a configuration error (exit 78).

    `client_cls`: a subclass that observes more (hean preflight records the rate-limit headers)."""
    b = settings.bybit
    key, secret = settings.credentials()
    try:
        return client_cls(
            rest_url=b.rest_url, api_key=key, api_secret=secret,
            dry_run=settings.dry_run, is_live=settings.is_live, recv_window_ms=b.recv_window_ms,
            timeout_s=b.timeout_s, registry=registry)
    except HostGuardError as exc:
        raise ConfigError(f"HEAN_BYBIT__REST_URL: {exc}") from None


def websocket(settings: HeanSettings, *, private: bool, topics: list[str],
              on_message: Callable[[dict[str, Any]], Awaitable[None]],
              on_connected: Callable[[], Awaitable[None]] | None = None, name: str,
              registry: CollectorRegistry | None = None,
              clock_ms: Callable[[], int] | None = None) -> BybitWebSocket:
    """A reconnecting public or private WebSocket with the configured heartbeat and backoff."""
    b, ws = settings.bybit, settings.ws
    url = b.ws_private_url if private else b.ws_public_url
    creds: dict[str, Any] = {}
    if private:
        key, secret = settings.credentials()
        creds = {"api_key": key, "api_secret": secret}
    try:
        return BybitWebSocket(
            url, topics=topics, on_message=on_message, on_connected=on_connected, ping_interval_s=ws.ping_interval_s,
            stale_after_s=ws.stale_after_s, backoff_initial_s=ws.backoff_initial_s, backoff_factor=ws.backoff_factor,
            backoff_max_s=ws.backoff_max_s, jitter=ws.jitter, name=name, registry=registry,
            dry_run=settings.dry_run, is_live=settings.is_live, clock_ms=clock_ms, **creds)
    except HostGuardError as exc:
        field = "WS_PRIVATE_URL" if private else "WS_PUBLIC_URL"
        raise ConfigError(f"HEAN_BYBIT__{field}: {exc}") from None
