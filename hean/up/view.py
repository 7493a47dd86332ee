"""What `hean up` prints: banner, one human line per important event, a live status line, the summary.

Plain text and ANSI only (no dependency). The live line is drawn only on a
TTY; event lines are always printed. With `--json` the very last line of
stdout is the summary object, so scripts can `tail -n1`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from hean.ops.observer import Observation
from hean.ops.output import money, pct

if TYPE_CHECKING:
    from hean.up.supervisor import Supervisor

CLEAR = "\r\x1b[2K"


def _fmt_event(kind: str, d: dict[str, Any]) -> str | None:
    sym, side, qty = d.get("symbol", ""), d.get("side", ""), d.get("qty", "")
    who = d.get("strategy_id") or ""
    if kind == "placed":
        return f"order placed   {sym} {side} {qty} ({who}) {d.get('order_link_id', '')}"
    if kind == "order_update":
        status = d.get("order_status")
        market = d.get("order_type") == "Market" or d.get("price") in (None, "", "0")
        price = "market" if market else d.get("price")
        if d.get("avg_price") not in (None, "", "0"):
            price = f"{price} (avg {d['avg_price']})"
        why = f" exchange says: {d['reject_reason']}" if d.get("reject_reason") not in (None, "", "EC_NoError") else ""
        return f"order {status:<8} {sym} {side} {qty} @ {price} filled {d.get('cum_exec_qty')} " \
               f"{d.get('order_link_id') or d.get('order_id')}{why}"
    if kind in ("rejected", "blocked", "cancelled"):
        exch = f" exchange: {d.get('ret_code')} {d.get('ret_msg')}" if d.get("ret_msg") else ""
        if d.get("cancel_id"):
            return f"order cancel   {len(d.get('cancelled') or [])} order(s) cancelled by {d.get('operator')}"
        return f"order {kind:<8} {sym} {side} {qty} ({who}) reason={d.get('reason')}{exch}"
    if kind == "cancel_refused":
        return f"cancel refused {d.get('reason')}"
    if kind == "fill":
        return (f"fill           {sym} {side} {d.get('exec_qty')} @ {d.get('exec_price')} "
                f"fee {money(d.get('exec_fee'))}")
    if kind == "transition":
        return (f"RISK           {d.get('from_state')} -> {d.get('to_state')} "
                f"({d.get('metric')} {_num(d.get('value'))} vs {_num(d.get('threshold'))}; "
                f"{','.join(d.get('reason_codes', []))})")
    if kind == "force_closed":
        return f"FORCE-CLOSED   {sym} {d.get('side')} {d.get('size')} after {d.get('age_s')} s ({d.get('reason')})"
    if kind == "restart":
        return f"RESTART        {d['service']} exited {d['rc']}; restarting in {d['delay']:.0f} s"
    if kind == "alert":
        return f"alert          {d.get('type')} from {d.get('source')}: {d.get('kind') or d.get('error') or ''}"
    return None


def _num(value: Any) -> str:
    """A risk metric: a percentage to 0.1, anything else as it came."""
    try:
        return pct(value) if value is not None and abs(float(value)) < 1000 else str(value)
    except (TypeError, ValueError):
        return str(value)


class View:
    def __init__(self, *, json_mode: bool, tty: bool) -> None:
        self.json_mode, self.tty = json_mode, tty
        self.observation: Observation | None = None
        self._status = ""

    def _out(self, text: str) -> None:
        if self.tty and self._status:
            sys.stdout.write(CLEAR)
        sys.stdout.write(text + "\n")
        if self.tty and self._status:
            sys.stdout.write(self._status)
        sys.stdout.flush()

    def line(self, text: str) -> None:
        self._out(text)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        text = _fmt_event(kind, data)
        if text is not None:
            self._out(time.strftime("%H:%M:%S ") + text)

    def child_log(self, name: str, record: dict[str, Any]) -> None:
        self._out(f"{time.strftime('%H:%M:%S')} {name}: {record.get('level')} {record.get('message')}")

    def banner(self, sup: Supervisor) -> None:
        lines = [
            "HEAN up: every process on this machine, paper trading" + (" (demo defaults on)" if sup.demo else ""),
            f"  state dir : {sup.state}",
            f"  logs      : {sup.state / 'logs'}/<service>.log (JSON lines)",
            f"  data      : {sup.data}",
            f"  metrics   : http://127.0.0.1:{sup.up_port}/metrics (hean up); per process below",
            f"  stop      : Ctrl-C, or kill -TERM {__import__('os').getpid()}"
            + ("" if sup.args.flatten_on_exit else " (leaves positions open; --flatten-on-exit closes them)"),
        ]
        if sup.no_strategy:
            lines.append("  strategies: none configured, so no strategy runs "
                         "(set HEAN_STRATEGY__PATHS, or `hean up --demo` for the examples)")
        if sup.own_sim and not sup.demo:
            lines.append(f"  wallet    : the simulator's default {sup.sim_wallet} USDT")
        self._out("\n".join(lines))

    def started(self, sup: Supervisor) -> None:
        rows = [f"  {n:<11} pid {c.proc.pid if c.proc else '-':<8} metrics "
                + (f"http://127.0.0.1:{c.metrics_port}/metrics" if c.metrics_port else "-")
                for n, c in sup.children.items()]
        self._out("all processes ready:\n" + "\n".join(rows) + "\nstatus: hean status --state-dir " + str(sup.state))

    def _status_line(self, sup: Supervisor) -> str:
        o = self.observation or Observation()
        c = o.counts()
        up = sum(1 for ch in sup.children.values() if ch.running())
        risk = o.risk or {}
        dd = risk.get("drawdown_pct")
        elapsed = int(time.time() - sup.started)
        return (f"[{elapsed // 60:02d}:{elapsed % 60:02d}] procs {up}/{len(sup.children)} | ticks {c['ticks']} "
                f"intents {c['intents']} orders {c['orders']} fills {c['fills']} | risk {risk.get('state', '?')}"
                + (f" dd {pct(dd)}%" if dd is not None else "")
                + f" | equity {money((o.equity or {}).get('equity'))} upnl {money((o.equity or {}).get('unrealised_pnl'))}"
                  f" fees {money(o.fees)} open orders {len(o.open_orders())}"
                + f" | force-closes {c['force_closes']} restarts {sum(ch.restarts for ch in sup.children.values())}")

    async def live(self, sup: Supervisor) -> None:
        if not self.tty:
            await asyncio.Event().wait()
        while True:
            self._status = self._status_line(sup)
            sys.stdout.write(CLEAR + self._status)
            sys.stdout.flush()
            await asyncio.sleep(1.0)

    def summary(self, sup: Supervisor) -> dict[str, Any]:
        if self.tty and self._status:
            sys.stdout.write(CLEAR)
            self._status = ""
        o = self.observation or Observation()
        counts = {**o.counts(), "restarts": sum(ch.restarts for ch in sup.children.values())}
        detail = {**counts, "duration_s": round(time.time() - sup.started, 1), "exit_code": sup.exit_code,
                  "risk_state": (o.risk or {}).get("state"), "state_dir": str(sup.state),
                  "pids": {n: ch.pids for n, ch in sup.children.items()}, "sim_url": sup.sim_url}
        acct = sup.account.get("money") or {}
        for key in ("realised_pnl", "fees", "funding", "unrealised_pnl", "equity"):
            detail[key] = acct.get(key)
        detail["by_symbol"] = acct.get("by_symbol", {})
        detail["open_orders"] = len(sup.account.get("open_orders") or [])
        detail["open_positions"] = len(sup.account.get("positions") or [])
        full = {**detail, "fills_detail": o.fills, "placed_intents": sorted(o.placed),
                "transitions": o.transitions, "force_closes_detail": list(o.force_closes.values())}
        (sup.state / "summary.json").write_text(json.dumps(full, indent=1, default=str))
        text = "\n".join(f"  {k:<17} {v}" for k, v in counts.items())
        text += "\n" + "\n".join(f"  {k:<17} {money(detail[k])}" for k in
                                 ("realised_pnl", "fees", "funding", "unrealised_pnl", "equity"))
        print(f"summary after {detail['duration_s']} s (risk state {detail['risk_state']}):\n{text}", flush=True)
        if self.json_mode:
            print(json.dumps(detail, separators=(",", ":")), flush=True)
        return detail
