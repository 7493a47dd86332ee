"""The risk process's account inputs: wallet readings, position rows, feed marks and transfers.

Why a mixin of `RiskService`: these handlers feed `AccountView` and judge its estimate with the
core after every change, which is most of the process's traffic; the service keeps the
lifecycle, the operator's commands and the effects (persist, publish, log).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from hean import topics
from hean.bus.envelope import Event
from hean.risk.account import USD_CURRENCIES, AccountView, parse_transfer
from hean.risk.core import InvalidEquity, RiskGovernorCore, RiskTransition
from hean.risk.metrics import RiskMetrics

if TYPE_CHECKING:
    from hean.risk.store import RiskStore

log = logging.getLogger("hean.risk")

_PEAK_SAVE_S = 1.0  # a new peak alone is saved at most this often (marks move it every tick)


def _money(value: Any) -> str | None:
    return None if value is None else format(value, "f")


class AccountInputs:
    """Handlers for the account's inputs; the host provides the attributes and effects below."""

    account: AccountView
    core: RiskGovernorCore
    store: RiskStore | None
    risk_metrics: RiskMetrics
    _saved_snapshot: dict[str, Any] | None
    _saved_at: float
    _saved_profit: bool

    async def _apply(self, transition: RiskTransition, *, announce: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def _saved(self, snapshot: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _on_equity(self, ev: Event) -> None:
        if ev.source != "reconciler" or ev.type != topics.EventType.EQUITY_UPDATE.value:
            return
        try:
            fresh = self.account.on_equity(ev.data, ev.ts_ns)
        except InvalidEquity as exc:
            self._invalid(ev.data, exc)
            return
        if fresh:  # a re-publication of the same reading changes nothing, least of all its age
            await self._revalue()

    async def _on_position(self, ev: Event) -> None:
        if ev.source == "reconciler" and ev.type == topics.EventType.POSITION_UPDATE.value:
            if self.account.on_position(ev.data) is not None and self.account.anchor is not None:
                await self._revalue()

    async def _on_tick(self, ev: Event) -> None:
        if ev.source == "feed" and self.account.on_tick(ev.data, ev.ts_ns) is not None:
            await self._revalue()

    async def _on_transfer(self, ev: Event) -> None:
        if ev.source != "reconciler" or ev.type != topics.EventType.TRANSFER.value:
            return
        try:
            transfer = parse_transfer(ev.data)
        except ValueError as exc:
            log.warning("invalid transfer ignored", extra={"error": str(exc)[:200]})
            return
        assert self.store is not None
        if self.store.transfer_seen(transfer.id):
            return  # re-sent (the reconciler repeats; risk restarts): applied exactly once
        applied = transfer.currency in USD_CURRENCIES
        before = self.core.initial_capital
        if applied:
            try:
                self.core.on_transfer(transfer.amount)
            except InvalidEquity as exc:
                applied = False
                log.error("transfer not applied to the drawdown base", extra={"id": transfer.id,
                                                                              "error": str(exc)[:200]})
            else:
                self.account.on_transfer(transfer)
        snapshot = self.core.snapshot()
        self.store.record_transfer(transfer.id, format(transfer.amount, "f"), transfer.currency, transfer.ts_ms,
                                   applied, snapshot, time.time())
        self._saved(snapshot)
        if applied:
            self.risk_metrics.transfers.labels(transfer.direction).inc()
            self.risk_metrics.transferred.inc(float(transfer.amount))
        log.warning("transfer moved the drawdown base" if applied else "transfer not applied (not a USD coin "
                    "or no base)", extra={"id": transfer.id, "amount": format(transfer.amount, "f"),
                                          "currency": transfer.currency, "ts_ms": transfer.ts_ms,
                                          "initial_capital_before": _money(before),
                                          "initial_capital": _money(self.core.initial_capital),
                                          "peak_equity": _money(self.core.peak_equity)})
        self.risk_metrics.show(self.core)
        if applied and self.account.anchor is not None:
            await self._revalue()

    def _invalid(self, data: Any, exc: Exception) -> None:
        self.risk_metrics.invalid.inc()
        raw = data.get("equity") if isinstance(data, dict) else data
        log.warning("invalid equity ignored", extra={"equity": repr(raw)[:64], "error": str(exc)[:200]})

    async def _revalue(self) -> None:
        """Judge the current estimate: the last wallet reading, marked to the feed."""
        now = time.time()
        est = self.account.estimate(now)
        if est is None:
            return
        try:
            transition = self.core.on_equity(est.equity, now)
        except InvalidEquity as exc:
            self._invalid({"equity": str(est.equity)}, exc)
            return
        self.risk_metrics.equity_age.set(est.age(now))
        self.risk_metrics.marked.set(len(est.marked))
        self.risk_metrics.show(self.core)
        if transition is not None:
            await self._apply(transition)
            return
        snapshot = self.core.snapshot()
        if snapshot != self._saved_snapshot:
            # First equity fixes the base (save at once); a new peak alone is saved at most every second,
            # unless it switches profit mode on.
            saved = self._saved_snapshot or {}
            urgent = (snapshot.get("initial_capital") != saved.get("initial_capital")
                      or self.core.profit_mode != self._saved_profit)
            if urgent or now - self._saved_at >= _PEAK_SAVE_S:
                self._save()
