"""aiohttp front for /v5: auth, rate limits, faults, envelope, and dispatch to handlers.

Every /v5 answer is an HTTP 200 envelope with the X-Bapi-Limit* headers, except an
unknown path (404), a wrong method (400) and injected 5xx faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from hean.sim.auth import check_request
from hean.sim.envelope import RATE_LIMITED, SimError, envelope, param_error
from hean.sim.exchange import Exchange
from hean.sim.faults import Faults
from hean.sim.handlers import PRIVATE_GET, PRIVATE_POST, PUBLIC, Handler
from hean.sim.metrics import SimMetrics
from hean.sim.ratelimit import RateLimiter, Verdict

log = logging.getLogger("hean.sim")
MAX_BODY_BYTES = 64 * 1024


class RestApi:
    """Turns HTTP requests into handler calls under the simulator's rules."""

    def __init__(
        self, exchange: Exchange, clock: Callable[[], int], *, api_key: str, api_secret: str,
        limiter: RateLimiter, faults: Faults, metrics: SimMetrics, stopping: asyncio.Event,
        delay: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self._api_key, self._api_secret = api_key, api_secret
        self.limiter, self.faults, self.metrics = limiter, faults, metrics
        self._stopping = stopping
        self._delay = delay

    def _respond(self, result: Any, code: int, message: str, verdict: Verdict) -> web.Response:
        if code:
            self.metrics.rejects.labels(ret_code=str(code)).inc()
        body = json.dumps(envelope(self.clock(), result, code, message), separators=(",", ":"))
        return web.Response(text=body, content_type="application/json", headers=verdict.headers())

    def _error(self, err: SimError, verdict: Verdict) -> web.Response:
        return self._respond({}, err.code, err.message, verdict)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Single entry for every /v5 path."""
        path = request.path
        handler, public = self._route(path, request.method)
        if handler is None:
            known = path in PUBLIC or path in PRIVATE_GET or path in PRIVATE_POST
            return web.Response(status=400 if known else 404, text="bad method" if known else "404 page not found")
        self.metrics.requests.labels(path=path).inc()
        if (leg := self._delay()) > 0:   # the request is on the wire
            await asyncio.sleep(leg)
        if self.faults.latency_ms:
            self.metrics.faults.labels(kind="latency").inc()
            await asyncio.sleep(self.faults.latency_ms / 1000)
        try:
            if public:
                response = await self._public(request, handler)
            else:
                response = await self._private(request, handler)
        except Exception:  # noqa: BLE001 - a bug must never surface as a traceback to clients
            log.exception("simulator handler failed", extra={"path": path})
            idle = Verdict(True, 1, 1, self.clock())
            return self._respond({}, 10016, "Internal system error", idle)
        hold_ms = self.faults.take_delay(path)
        if hold_ms:
            # The answer (and its envelope time) is from arrival; only its delivery is late.
            self.metrics.faults.labels(kind="delay_reply").inc()
            await asyncio.sleep(hold_ms / 1000)
        if (leg := self._delay()) > 0:   # and so is the reply
            await asyncio.sleep(leg)
        return response

    @staticmethod
    def _route(path: str, method: str) -> tuple[Handler | None, bool]:
        if path in PUBLIC and method == "GET":
            return PUBLIC[path], True
        if path in PRIVATE_GET and method == "GET":
            return PRIVATE_GET[path], False
        if path in PRIVATE_POST and method == "POST":
            return PRIVATE_POST[path], False
        return None, False

    async def _public(self, request: web.Request, handler: Handler) -> web.Response:
        now = self.clock()
        verdict = self.limiter.check(request.remote or "?", request.path, now, public=True)
        if not verdict.allowed:
            return self._error(SimError(RATE_LIMITED), verdict)
        try:
            params = self._query_params(request)
            return self._respond(handler(self.exchange, params, now), 0, "OK", verdict)
        except SimError as err:
            return self._error(err, verdict)

    async def _private(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        status = self.faults.take_http(path, "before")
        if status is not None:
            self.metrics.faults.labels(kind="http_before").inc()
            return web.Response(status=status, text="simulated upstream failure")
        now = self.clock()
        idle = Verdict(True, self.limiter.limit_for(path, False), self.limiter.limit_for(path, False), now)
        raw_query = request.raw_path.partition("?")[2]
        body = await request.content.read(MAX_BODY_BYTES + 1) if request.method == "POST" else b""
        signed = body.decode("utf-8", errors="replace") if request.method == "POST" else raw_query
        try:
            check_request(request.headers, signed, api_key=self._api_key, api_secret=self._api_secret, now_ms=now)
        except SimError as err:
            return self._error(err, idle)
        forced = self.limiter.forced_count > 0 or now < self.limiter.forced_until_ms
        verdict = self.limiter.check(self._api_key, path, now)
        if not verdict.allowed:
            if forced:
                self.metrics.faults.labels(kind="rate_limit").inc()
            return self._error(SimError(RATE_LIMITED), verdict)
        try:
            params = self._body_params(body) if request.method == "POST" else self._query_params(request)
            result, code, message = handler(self.exchange, params, now), 0, "OK"
            if path == "/v5/order/create":
                self.metrics.orders_created.labels(symbol=params["symbol"]).inc()
        except SimError as err:
            result, code, message = {}, err.code, err.message
        if self.faults.take_timeout(path):
            self.metrics.faults.labels(kind="timeout_after_accept").inc()
            log.info("holding request open (timeout-after-accept fault)", extra={"path": path})
            await self._stopping.wait()
            return web.Response(status=503, text="simulator stopping")
        status = self.faults.take_http(path, "after")
        if status is not None:
            self.metrics.faults.labels(kind="http_after").inc()
            return web.Response(status=status, text="simulated upstream failure")
        return self._respond(result, code, message, verdict)

    @staticmethod
    def _query_params(request: web.Request) -> dict[str, Any]:
        raw = request.raw_path.partition("?")[2]
        try:
            return dict(parse_qsl(raw, keep_blank_values=True, errors="strict"))
        except (UnicodeDecodeError, ValueError):
            raise param_error("params error: query string invalid") from None

    @staticmethod
    def _body_params(body: bytes) -> dict[str, Any]:
        if len(body) > MAX_BODY_BYTES:
            raise param_error("params error: body too large")
        try:
            params = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError):
            raise param_error("params error: request body is not valid JSON") from None
        if not isinstance(params, dict):
            raise param_error("params error: request body must be a JSON object")
        return params
