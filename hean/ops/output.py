"""One output convention for every operator command: human text (or one JSON object with --json) on
stdout, errors as one line on stderr, exit codes from hean.ops.locate; a closed pipe (`| head`) ends
the command quietly, as it does for any Unix tool."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any


def error(command: str, message: str, code: int) -> int:
    print(f"hean {command}: {message}", file=sys.stderr, flush=True)
    return code


def emit(text: str | None, doc: dict[str, Any] | None, json_mode: bool) -> None:
    out = json.dumps(doc, default=str) if json_mode else text
    if out is not None:
        print(out, flush=True)


def quiet_pipe(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Wrap a command's main so a reader that closed stdout early is no traceback."""
    def wrapped(argv: list[str]) -> int:
        try:
            return main(argv)
        except BrokenPipeError:
            # Python flushes stdout again at exit; point it at /dev/null so that flush is quiet too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
    return wrapped


def money(value: Any) -> str:
    """A USDT amount to cents ("-" when unknown)."""
    return _q(value, Decimal("0.01"))


def pct(value: Any) -> str:
    return _q(value, Decimal("0.1"))


def _q(value: Any, step: Decimal) -> str:
    if value is None or value == "":
        return "-"
    try:
        q = Decimal(str(value)).quantize(step, rounding=ROUND_HALF_EVEN)
        return format(q.copy_abs() if q == 0 else q, "f")    # no "-0.00"
    except (InvalidOperation, ValueError):
        return str(value)


def positive_decimal(text: str) -> Decimal:
    """An argparse type for quantities, prices and capital: a finite Decimal > 0, never via float."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value
