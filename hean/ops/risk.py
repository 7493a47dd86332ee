"""`hean risk reset`: the operator's way out of a latched HARD_STOP (or any risk state).

The reset travels as a RISK_RESET event on the bus from service "ctl" to the
running risk process, which applies it, records who and when in its SQLite
file, and answers with a RISK_STATE whose transition carries OPERATOR_RESET.
This tool re-sends the same request (same `request_id`, so it is applied once)
until that answer arrives, and fails with exit 1 if it never does: a reset the
operator believes happened but did not is worse than a clear error. A plain
reset while the drawdown would re-trip the ladder at the next reading is refused
by the risk process (exit 1, with the drawdown, the threshold and the
`--initial-capital` re-base that would work): NORMAL for half a second would be
a window for opening orders.

    hean risk reset [--operator NAME] [--initial-capital X] [--timeout S] [--json] [--state-dir D] [--env-file F]

It finds the running system like every operator command (hean.ops.locate): the named or running
`hean up`, else the systemd deployment's runtime dir from the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import sys
import time
from typing import Any

from hean import topics
from hean.bus import BusError, BusStats, Event, Publisher, Subscriber
from hean.config import HeanSettings
from hean.ops.locate import (EX_FAILED, EX_OK, EX_UNREACHABLE, EX_USAGE, EXIT_CODES_EPILOG, NoSuchSystem,
                             find_system)
from hean.ops.output import emit, error, money, positive_decimal, quiet_pipe

log = logging.getLogger("hean.ops.risk")

RESEND_INTERVAL_S = 1.0
FIND_TIMEOUT_S = 3.0   # how long to look for a subscribed risk process before saying none runs


class Unreachable(TimeoutError):
    """No risk process is connected to the operator channel at all."""


def _default_operator() -> str:
    for name in ("SUDO_USER", "USER", "LOGNAME"):
        value = os.environ.get(name)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _capital(text: str) -> str:
    return format(positive_decimal(text), "f")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hean risk", description="Operator controls of the risk governor.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reset = sub.add_parser("reset", help="reset the risk state to NORMAL (the only exit from HARD_STOP)",
                           description="Reset the risk state to NORMAL. Refused (exit 1, with the drawdown and "
                           "the re-base that would work) while the drawdown would re-trip at once.",
                           epilog=EXIT_CODES_EPILOG)
    reset.add_argument("--operator", default=_default_operator(),
                       help="who resets (default: $SUDO_USER or $USER); recorded and published")
    reset.add_argument("--initial-capital", type=_capital, default=None,
                       help="re-base drawdown on this capital (default: keep the current base)")
    reset.add_argument("--timeout", type=float, default=15.0,
                       help="seconds to wait for the risk process to acknowledge (default 15)")
    reset.add_argument("--json", action="store_true", help="one JSON object on stdout")
    reset.add_argument("--state-dir", help="the state dir of a `hean up` (default: the running one, else systemd's)")
    reset.add_argument("--env-file", help="settings file (default: $HEAN_ENV_FILE or /etc/hean/hean.env)")
    return parser


async def send_reset(settings: HeanSettings, operator: str, new_initial_capital: str | None,
                     timeout: float, runtime_dir: Any = None) -> dict[str, Any]:
    """Publish the reset and wait for its acknowledgement; returns the RISK_STATE data.

    Raises TimeoutError when the risk process did not answer within `timeout`.
    """
    request_id = secrets.token_hex(8)
    at = time.time()
    data = {"operator": operator, "at": at, "new_initial_capital": new_initial_capital,
            "request_id": request_id}
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def on_state(ev: Event) -> None:
        transition = ev.data.get("transition") if isinstance(ev.data, dict) else None
        refused = ev.data.get("reset_refused") if isinstance(ev.data, dict) else None
        if (isinstance(transition, dict) and "OPERATOR_RESET" in (transition.get("reason_codes") or [])
                and transition.get("request_id") == request_id and not answer.done()):
            answer.set_result(ev.data)
        elif isinstance(refused, dict) and refused.get("request_id") == request_id and not answer.done():
            answer.set_result(ev.data)

    stats = BusStats()
    stop = asyncio.Event()
    runtime_dir = settings.runtime_dir if runtime_dir is None else runtime_dir
    publisher = Publisher(settings.bus, runtime_dir, "ctl", stats).bind()
    subscriber = Subscriber(settings.bus, runtime_dir, stats)
    subscriber.connect("risk").on(topics.risk_state(), on_state, fast=True)
    reader = asyncio.create_task(subscriber.run(stop), name="riskctl_reader")
    deadline = time.monotonic() + timeout
    try:
        if not await publisher.wait_for_subscribers("critical", min(timeout, FIND_TIMEOUT_S)):
            raise Unreachable(f"no risk process subscribed to the operator channel in {runtime_dir} "
                              "(is `hean up` or `hean run risk` running?)")
        log.warning("operator risk reset requested", extra={"operator": operator, "at": at,
                                                            "new_initial_capital": new_initial_capital,
                                                            "request_id": request_id})
        while True:
            await publisher.publish(topics.risk_control("reset"), topics.EventType.RISK_RESET.value, data)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the risk process did not acknowledge the reset")
            try:
                return await asyncio.wait_for(asyncio.shield(answer), min(RESEND_INTERVAL_S, left))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("the risk process did not acknowledge the reset") from None
    finally:
        stop.set()
        await asyncio.gather(reader, return_exceptions=True)
        subscriber.close()
        publisher.close()


def refusal_text(refused: dict[str, Any]) -> str:
    """Why the risk process said no, and the option that would work (a re-base)."""
    lines = [f"hean risk reset: REFUSED: {refused.get('reason')}",
             f"  state stays {refused.get('state')}; initial capital {refused.get('initial_capital')}"]
    if refused.get("drawdown_pct") is not None:
        lines.append(f"  drawdown {refused['drawdown_pct']:.2f} % >= threshold {refused.get('threshold_pct'):g} % "
                     f"(equity {money(refused.get('equity'))})")
        lines.append(f"  to accept the loss and measure drawdown from the current equity: "
                     f"hean risk reset --initial-capital {money(refused.get('equity'))}")
    else:
        lines.append("  wait for a fresh equity reading from the reconciler (check `hean status`; a stale equity "
                     "blocks any reset), or re-base with --initial-capital X")
    return "\n".join(lines)


@quiet_pipe
def main(argv: list[str]) -> int:
    from hean.config import settings_or_exit
    from hean.logging import setup_logging

    args = build_parser().parse_args(argv)
    settings = settings_or_exit(args.env_file, "risk", service="ctl")
    # The risk process records every reset; the CLI keeps stderr for its one-line answers.
    setup_logging("ctl", "DEBUG" if settings.log_level == "DEBUG" else "CRITICAL", settings.secrets(), stream=sys.stderr)
    operator = str(args.operator).strip()
    if not operator:
        return error("risk reset", "--operator must not be empty", EX_USAGE)
    try:
        system = find_system(settings, args.state_dir)
    except NoSuchSystem as exc:
        return error("risk reset", str(exc), EX_USAGE)
    try:
        state = asyncio.run(send_reset(settings, operator, args.initial_capital, args.timeout, system.runtime_dir))
    except Unreachable as exc:
        return error("risk reset", f"FAILED: {exc}", EX_UNREACHABLE)
    except TimeoutError as exc:
        log.error("operator risk reset failed", extra={"operator": operator, "error": str(exc)})
        return error("risk reset", f"FAILED after {args.timeout}s: {exc}", EX_FAILED)
    except BusError as exc:
        return error("risk reset", f"FAILED: {exc}", EX_FAILED)
    refused = state.get("reset_refused")
    if isinstance(refused, dict):
        log.warning("operator risk reset refused", extra={"operator": operator, "reason": refused.get("reason")})
        if args.json:
            emit(None, {"reset": "refused", **refused}, True)
        print(refusal_text(refused), file=sys.stderr, flush=True)
        return EX_FAILED
    log.warning("operator risk reset acknowledged", extra={"operator": operator, "state": state.get("state"),
                                                           "initial_capital": state.get("initial_capital")})
    emit(f"risk state is now {state.get('state')} (reset by {operator}, "
         f"initial capital {state.get('initial_capital')})",
         {"reset": "done", "state": state.get("state"), "operator": operator,
          "initial_capital": state.get("initial_capital")}, args.json)
    return EX_OK
