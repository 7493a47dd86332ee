"""Bybit v5 REST transport: signing, clock offset, rate limits, classification, retries.

`call` never raises for exchange/HTTP/transport trouble: it returns a classified
RestResponse. It retries internally only what is RETRY_SAFE; AMBIGUOUS results go
back to the caller, who resolves them by querying (never by blind resend).

A request may wait in the rate limiter (order/create is 10/s) or between retries for
seconds, and the reason it was made may not hold any more when its slot comes: the
caller's `before_send` check runs after every limiter wait, right before each attempt
leaves, and can withdraw it (Outcome.NOT_SENT; the slot is given back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry
from yarl import URL

from hean.exchange.bybit import constants as c
from hean.exchange.bybit.auth import build_body, build_query, sign_rest
from hean.exchange.bybit.endpoints import TradingEndpoints
from hean.exchange.bybit.errors import ExchangeUnavailable, Outcome, check_host_allowed, classify
from hean.exchange.bybit.filters import InstrumentFilter
from hean.exchange.bybit.metrics import metrics_for
from hean.exchange.bybit.ratelimit import Priority, RateLimiter

log = logging.getLogger("hean.exchange")

RETRY_BACKOFF_INITIAL_S = 0.2
RETRY_BACKOFF_MAX_S = 5.0
# Called right before an attempt leaves; a non-None text withdraws the request (that text is the reason).
BeforeSend = Callable[[], "str | None"]


@dataclass(frozen=True)
class RestResponse:
    """One classified answer. `error` is a short transport-failure text, never a secret."""

    outcome: Outcome
    ret_code: int | None
    ret_msg: str
    result: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name) if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class BybitRestClient(TradingEndpoints):
    """Async Bybit v5 REST client for USDT linear perpetuals (live, testnet, demo or sim)."""

    def __init__(self, *, rest_url: str, api_key: str, api_secret: str, dry_run: bool, is_live: bool,
                 recv_window_ms: int = 5000, timeout_s: float = 10.0, max_retries: int = 5,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        # Fail at start-up, before any request, if this process may not reach that host.
        check_host_allowed(rest_url, dry_run=dry_run, is_live=is_live)
        self._base = rest_url.rstrip("/")
        self._api_key = api_key
        self._secret = api_secret
        self._dry_run = dry_run
        self._is_live = is_live
        self._recv_window = recv_window_ms
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._clock = clock
        self._offset_ms = 0.0
        self._metrics = metrics_for(registry)
        self._limiter = RateLimiter()
        self._session: aiohttp.ClientSession | None = None
        self.instruments: dict[str, InstrumentFilter] = {}

    def __repr__(self) -> str:  # never show the secret
        return f"BybitRestClient(rest_url={self._base!r}, dry_run={self._dry_run}, is_live={self._is_live})"

    @property
    def base_url(self) -> str:
        """The REST base URL without a trailing slash (part of the account identity)."""
        return self._base

    @property
    def rate_limiter(self) -> RateLimiter:
        return self._limiter

    async def start(self) -> None:
        """Open the session, measure the clock offset and load instrument filters."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        await self.sync_time()
        await self.load_instruments()

    async def close(self) -> None:
        await self._limiter.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def server_time_ms(self) -> int:
        """Local clock corrected by the offset measured against /v5/market/time."""
        return int(self._clock() * 1000 + self._offset_ms)

    async def sync_time(self) -> None:
        """Measure server - local clock offset (midpoint of the round trip)."""
        before = self._clock()
        resp = await self.call("GET", c.PATH_MARKET_TIME, {}, private=False)
        after = self._clock()
        if resp.outcome is not Outcome.OK:
            raise ExchangeUnavailable(f"time sync failed: {resp.outcome.value} {resp.ret_code} {resp.error or resp.ret_msg}")
        nano = resp.result.get("timeNano")
        server_ms = int(nano) / 1e6 if nano else int(resp.result["timeSecond"]) * 1000.0
        self._offset_ms = server_ms - (before + after) / 2 * 1000
        log.info("clock offset measured", extra={"offset_ms": round(self._offset_ms, 1)})

    async def load_instruments(self) -> None:
        rows = await self.paged(c.PATH_INSTRUMENTS, {"category": c.CATEGORY, "limit": c.INSTRUMENT_PAGE_LIMIT},
                                private=False)
        self.instruments = {row["symbol"]: InstrumentFilter.from_bybit(row) for row in rows}

    async def call(self, method: str, path: str, params: dict[str, Any], *, private: bool = True,
                   priority: Priority = Priority.QUERY, before_send: BeforeSend | None = None) -> RestResponse:
        """Send one logical request; retry only RETRY_SAFE outcomes, with backoff.

        `before_send` is checked after the limiter grants each attempt's slot; when it returns
        a reason the request is not sent and the answer is NOT_SENT with that reason as ret_msg.
        """
        retries = 0
        while True:
            resp = await self._attempt(method, path, params, private=private, priority=priority,
                                       before_send=before_send)
            if resp.outcome is not Outcome.RETRY_SAFE or retries >= self._max_retries:
                self._log_final(method, path, resp)
                return resp
            retries += 1
            if resp.ret_code == c.RET_TIMESTAMP:
                try:
                    await self.sync_time()
                except ExchangeUnavailable:
                    await asyncio.sleep(self._backoff(retries))
            elif resp.ret_code != c.RET_RATE_LIMIT:  # 10006: the limiter already holds the group
                await asyncio.sleep(self._backoff(retries))

    @staticmethod
    def _backoff(retry: int) -> float:
        return min(RETRY_BACKOFF_INITIAL_S * 2 ** (retry - 1), RETRY_BACKOFF_MAX_S)

    def _log_final(self, method: str, path: str, resp: RestResponse) -> None:
        if resp.outcome in (Outcome.AMBIGUOUS, Outcome.REJECTED, Outcome.RETRY_SAFE):
            log.warning("bybit request not ok", extra={
                "method": method, "path": path, "outcome": resp.outcome.value, "ret_code": resp.ret_code,
                "ret_msg": resp.ret_msg, "http_status": resp.http_status, "error": resp.error})
        elif resp.outcome is Outcome.DUPLICATE:
            log.info("orderLinkId already used: order exists", extra={"path": path, "ret_code": resp.ret_code})
        elif resp.outcome is Outcome.NOT_SENT:
            log.info("request withdrawn before sending", extra={"path": path, "reason": resp.ret_msg})

    def _request_parts(self, method: str, path: str, params: dict[str, Any],
                       private: bool) -> tuple[URL, bytes | None, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if method.upper() == "GET":
            query = build_query(params)
            body: bytes | None = None
            payload: bytes = query.encode()
            url = URL(f"{self._base}{path}?{query}" if query else f"{self._base}{path}", encoded=True)
        else:
            body = build_body(params)
            payload = body
            url = URL(f"{self._base}{path}", encoded=True)
        if private:
            ts = self.server_time_ms()
            headers.update({
                "X-BAPI-API-KEY": self._api_key,
                "X-BAPI-TIMESTAMP": str(ts),
                "X-BAPI-RECV-WINDOW": str(self._recv_window),
                "X-BAPI-SIGN": sign_rest(self._secret, ts, self._api_key, self._recv_window, payload),
                "X-BAPI-SIGN-TYPE": "2",
            })
        return url, body, headers

    async def _attempt(self, method: str, path: str, params: dict[str, Any], *, private: bool,
                       priority: Priority, before_send: BeforeSend | None = None) -> RestResponse:
        if self._session is None:
            raise RuntimeError("BybitRestClient.start() was not awaited")
        waited, granted_at = await self._limiter.slot(path, priority)
        if waited > 0:
            self._metrics.ratelimit_waits.labels(path).inc()
            self._metrics.ratelimit_wait_seconds.labels(path).observe(waited)
        # As late as the client can check: after the wait, right before the request is signed and handed on.
        reason = before_send() if before_send is not None else None
        if reason is not None:
            self._limiter.refund(path, granted_at)
            self._metrics.responses.labels(path, Outcome.NOT_SENT.value, "None").inc()
            return RestResponse(outcome=Outcome.NOT_SENT, ret_code=None, ret_msg=reason)
        url, body, headers = self._request_parts(method, path, params, private)
        status: int | None = None
        envelope: Any = None
        error: str | None = None
        reset_in: float | None = None
        started = time.perf_counter()
        try:
            async with self._session.request(method.upper(), url, data=body, headers=headers) as http:
                status = http.status
                raw = await http.read()
                reset_in = self._apply_limit_headers(path, http.headers)
            try:
                envelope = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                envelope = None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {str(exc)[:120]}" if str(exc) else type(exc).__name__
        finally:
            self._metrics.request_seconds.labels(path).observe(time.perf_counter() - started)
        resp = self._classified(method, path, status, envelope, error)
        if resp.ret_code == c.RET_RATE_LIMIT:
            self._limiter.block(path, reset_in)  # every caller of this endpoint waits for the reset
        return resp

    def _classified(self, method: str, path: str, status: int | None, envelope: Any,
                    error: str | None) -> RestResponse:
        ret_code: int | None = None
        ret_msg = ""
        result: dict[str, Any] = {}
        if isinstance(envelope, dict):
            code = envelope.get("retCode")
            ret_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            ret_msg = str(envelope.get("retMsg", ""))
            raw_result = envelope.get("result")
            result = raw_result if isinstance(raw_result, dict) else {}
        outcome = classify(method=method, path=path, http_status=status, ret_code=ret_code,
                           transport_error=error is not None)
        self._metrics.responses.labels(path, outcome.value, str(ret_code)).inc()
        return RestResponse(outcome=outcome, ret_code=ret_code, ret_msg=ret_msg, result=result,
                            http_status=status, error=error)

    def _apply_limit_headers(self, path: str, headers: Any) -> float | None:
        """Feed X-Bapi-Limit* into the limiter; returns seconds until the reset, if given."""
        limit = _int_header(headers, c.HEADER_LIMIT)
        remaining = _int_header(headers, c.HEADER_LIMIT_STATUS)
        reset_ts = _int_header(headers, c.HEADER_LIMIT_RESET)
        reset_in = None if reset_ts is None else (reset_ts - self.server_time_ms()) / 1000
        self._limiter.update(path, limit=limit, remaining=remaining, reset_in_s=reset_in)
        return reset_in

    async def paged(self, path: str, params: dict[str, Any], *, private: bool = True) -> list[dict[str, Any]]:
        """Follow nextPageCursor to the end; raises ExchangeUnavailable if any page fails."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        cursor = ""
        for _ in range(c.MAX_PAGES):
            page_params = dict(params, cursor=cursor) if cursor else dict(params)
            resp = await self.call("GET", path, page_params, private=private)
            if resp.outcome is not Outcome.OK:
                raise ExchangeUnavailable(
                    f"{path}: {resp.outcome.value} retCode={resp.ret_code} {resp.error or resp.ret_msg}")
            page = resp.result.get("list") or []
            rows.extend(page)
            cursor = str(resp.result.get("nextPageCursor") or "")
            if not cursor or not page or cursor in seen:
                return rows
            seen.add(cursor)
        raise ExchangeUnavailable(f"{path}: cursor chain longer than {c.MAX_PAGES} pages")
