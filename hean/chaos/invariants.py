"""The invariants of `hean chaos` (pure): each a count that must be 0.

Inputs are the exchange's own records (order rows and execution rows read through the
simulator's Bybit API, equity readings polled from it) and what HEAN published on the bus
(`Rec`: receipt time, topic, type, data). Times are unix ms; the simulator runs on this host's
clock (no clock faults in the soak), so exchange timestamps and receipt times compare directly.
Each check returns (count, examples) so a report can say which order or position broke it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hean.ids import INTENT_PREFIX, WATCHDOG_PREFIX

OUTCOMES = frozenset({"ORDER_PLACED", "ORDER_REJECTED", "ORDER_BLOCKED_DUPLICATE", "ORDER_BLOCKED_RISK",
                      "ORDER_CANCELLED"})
LEVEL = {"NORMAL": 0, "SOFT_BRAKE": 1, "QUARANTINE": 2, "HARD_STOP": 3}
FORBIDS_OPENING = 2          # QUARANTINE and HARD_STOP forbid new risk


@dataclass(frozen=True)
class Rec:
    t_ms: int
    topic: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Bounds:
    """The stated margins; see `hean chaos --help` and the report header."""

    max_hold_s: float
    check_interval_s: float
    hold_margin_s: float = 15.0        # close path under faults: 10006 bursts, 5xx, lost replies, a watchdog restart
    risk_margin_s: float = 1.5         # a send-time check passed just before the transition: request in flight
    risk_stale_s: float = 5.0          # the executor's executor.risk_stale_s
    transition_bound_s: float = 5.0    # exchange equity beyond a threshold -> the state published
    dd_margin_pct: float = 1.0         # the equity must be this far beyond a threshold (transfers, fees, marks)
    thresholds: dict[str, float] = field(default_factory=lambda: {"SOFT_BRAKE": 2.0, "QUARANTINE": 3.0,
                                                                   "HARD_STOP": 4.0})


Result = tuple[int, list[str]]


def duplicate_orders(orders: list[dict[str, Any]]) -> Result:
    per_link = Counter(o["orderLinkId"] for o in orders if str(o.get("orderLinkId", "")).startswith(INTENT_PREFIX))
    bad = {k: n for k, n in per_link.items() if n > 1}
    return sum(n - 1 for n in bad.values()), [f"{k} x{n}" for k, n in list(bad.items())[:5]]


def intents_without_outcome(events: list[Rec]) -> Result:
    intents = {e.data.get("intent_id") for e in events if e.type == "ORDER_INTENT"}
    answered = {e.data.get("intent_id") for e in events if e.type in OUTCOMES}
    missing = sorted(str(i) for i in intents - answered if i)
    return len(missing), missing[:5]


def executions_missing(executions: list[dict[str, Any]], ledger_ids: set[str]) -> Result:
    missing = [e["execId"] for e in executions if e["execId"] not in ledger_ids]
    return len(missing), missing[:5]


def fills_not_published(executions: list[dict[str, Any]], events: list[Rec]) -> Result:
    """Trade executions the recorder, one subscriber of the bus like any consumer, never received.

    It stays connected while every publisher is killed and restarted, so it is also a late joiner
    after each reconciler restart: that is what the reconciler's late-joiner re-send is for.
    """
    published = {e.data.get("exec_id") for e in events if e.type == "ORDER_FILLED"}
    missing = [e["execId"] for e in executions if e.get("execType") == "Trade" and e["execId"] not in published]
    return len(missing), missing[:5]


def fills_published_twice(events: list[Rec]) -> Result:
    """A second publication of one exec_id counts unless it is flagged as a replay."""
    seen: Counter[str] = Counter()
    extra: list[str] = []
    for e in events:
        if e.type != "ORDER_FILLED":
            continue
        exec_id = str(e.data.get("exec_id"))
        if seen[exec_id] and not e.data.get("replay"):
            extra.append(exec_id)
        seen[exec_id] += 1
    return len(extra), extra[:5]


def risk_timeline(events: list[Rec]) -> list[tuple[int, int]]:
    """(ms, level) at every RISK_STATE heard; a transition counts from its own `at` time."""
    points = []
    for e in events:
        if e.type != "RISK_STATE" or e.data.get("state") not in LEVEL:
            continue
        tr = e.data.get("transition") or {}
        at = tr.get("at")
        t = int(float(at) * 1000) if isinstance(at, (int, float)) and not e.data.get("noop") else e.t_ms
        points.append((min(t, e.t_ms), LEVEL[e.data["state"]]))
    return sorted(points)


def _level_at(timeline: list[tuple[int, int]], t: int) -> int | None:
    level = None
    for at, lv in timeline:
        if at > t:
            break
        level = lv
    return level


def openings_while_forbidden(orders: list[dict[str, Any]], events: list[Rec], b: Bounds) -> Result:
    """Opening orders the exchange accepted while risk forbade them (for `risk_margin_s` already) or was stale."""
    timeline = risk_timeline(events)
    heard = sorted(e.t_ms for e in events if e.type == "RISK_STATE")
    margin, stale = int(b.risk_margin_s * 1000), int((b.risk_stale_s + b.risk_margin_s) * 1000)
    bad: list[str] = []
    for o in orders:
        if not str(o.get("orderLinkId", "")).startswith(INTENT_PREFIX) or o.get("reduceOnly"):
            continue
        if o.get("orderStatus") == "Rejected":
            continue
        c = int(o["createdTime"])
        now, before = _level_at(timeline, c), _level_at(timeline, c - margin)
        if now is not None and before is not None and now >= FORBIDS_OPENING and before >= FORBIDS_OPENING \
                and all(lv >= FORBIDS_OPENING for at, lv in timeline if c - margin <= at <= c):
            bad.append(f"{o['orderLinkId']} accepted at {c} under level {now}")
            continue
        last = max((h for h in heard if h <= c), default=None)
        if last is not None and c - last > stale:
            bad.append(f"{o['orderLinkId']} accepted at {c}, risk silent {c - last} ms")
    return len(bad), bad[:5]


def position_spans(executions: list[dict[str, Any]], end_ms: int) -> list[tuple[str, int, int]]:
    """(symbol, opened_ms, closed_ms) of every position, from the exchange's own Trade rows."""
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in executions:
        if e.get("execType") == "Trade":
            per[e["symbol"]].append(e)
    spans = []
    for symbol, rows in per.items():
        size, opened = Decimal(0), None
        for r in sorted(rows, key=lambda r: (int(r["execTime"]), str(r["execId"]))):
            q = Decimal(str(r["execQty"]))
            new = size + (q if r["side"] == "Buy" else -q)
            t = int(r["execTime"])
            if size == 0 and new != 0:
                opened = t
            elif new == 0 or (size > 0) != (new > 0):
                spans.append((symbol, opened if opened is not None else t, t))
                opened = t if new != 0 else None
            size = new
        if size != 0 and opened is not None:
            spans.append((symbol, opened, end_ms))
    return spans


def held_too_long(executions: list[dict[str, Any]], end_ms: int, b: Bounds) -> Result:
    limit = int((b.max_hold_s + b.check_interval_s + b.hold_margin_s) * 1000)
    bad = [f"{s} open {o}..{c} ({(c - o) / 1000:.1f} s)" for s, o, c in position_spans(executions, end_ms)
           if c - o > limit]
    return len(bad), bad[:5]


def force_closed_early(orders: list[dict[str, Any]], executions: list[dict[str, Any]], end_ms: int,
                       b: Bounds) -> Result:
    spans = position_spans(executions, end_ms)
    bad = []
    for o in orders:
        if not str(o.get("orderLinkId", "")).startswith(WATCHDOG_PREFIX):
            continue
        c = int(o["createdTime"])
        for s, opened, closed in spans:
            if s == o["symbol"] and opened <= c <= closed and c - opened < b.max_hold_s * 1000:
                bad.append(f"{o['orderLinkId']} at {c}: position open {(c - opened) / 1000:.1f} s")
    return len(bad), bad[:5]


def transitions_late(equity: list[tuple[int, Decimal]], events: list[Rec], b: Bounds) -> Result:
    """Exchange equity beyond a threshold (+ margin) with no state at least that severe within the bound.

    The drawdown base is the `initial_capital` risk itself last published (it moves with transfers
    and resets). One incident per stretch of consecutive late readings.
    """
    timeline = risk_timeline(events)
    bases = sorted((e.t_ms, Decimal(str(e.data["initial_capital"]))) for e in events
                   if e.type == "RISK_STATE" and e.data.get("initial_capital"))
    bound = int(b.transition_bound_s * 1000)
    incidents, bad, late_before, detail = 0, [], False, ""
    for t, eq in sorted(equity):
        base = next((v for at, v in reversed(bases) if at <= t), None)
        late = False
        if base:
            dd = float((base - eq) / base * 100)
            for state, pct in b.thresholds.items():
                if dd >= pct + b.dd_margin_pct:
                    # In force when the reading was taken, or published within the bound after it.
                    at_start = _level_at(timeline, t)
                    reached = (at_start is not None and at_start >= LEVEL[state]) or any(
                        lv >= LEVEL[state] for at, lv in timeline if t <= at <= t + bound)
                    if not reached:
                        late = True
                        detail = f"equity {eq} at {t} is {dd:.1f} % down, no {state} within {bound} ms"
        if late and not late_before:
            incidents += 1
            bad.append(detail)
        late_before = late
    return incidents, bad[:5]
