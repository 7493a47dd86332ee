"""JSON-lines logging on stdout, with secrets redacted on the way out.

journald keeps stdout, so one JSON object per line is all a process needs:
`time, level, logger, service, message` plus whatever `extra={...}` carried.
Redaction happens in the formatter, after every field is assembled, so a
secret cannot slip through a message, an extra field, a nested dict or an
exception text.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from pythonjsonlogger.json import JsonFormatter

REDACTED = "***"

# Field names whose values are credentials whatever they contain.
_SECRET_KEYS = re.compile(r"(secret|api[_-]?key|password|passwd|token|signature|x-bapi-sign|authorization)", re.I)
# Credential-shaped fragments inside free text: "api_secret=...", "X-BAPI-SIGN: ...", "sign=...".
_SECRET_TEXT = re.compile(
    r"(?i)\b(api[_-]?secret|api[_-]?key|secret|password|token|x-bapi-sign|x-bapi-api-key|sign)(\s*[=:]\s*|\"\s*:\s*\")"
    r"([^\s,\"'&}]+)"
)

_RESERVED = {
    "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelname", "levelno",
    "lineno", "module", "msecs", "message", "msg", "name", "pathname", "process", "processName",
    "relativeCreated", "stack_info", "thread", "threadName", "taskName",
}


class _Redactor:
    """Replaces known secret values and credential-shaped text with `***`."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def add(self, values: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        merged = {v for v in (*self._values, *values) if v and len(v) >= 4}
        self._values = sorted(merged, key=len, reverse=True)

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, REDACTED)
        return _SECRET_TEXT.sub(lambda m: m.group(1) + m.group(2) + REDACTED, s)

    def value(self, key: str, v: Any) -> Any:
        if _SECRET_KEYS.search(key) and v not in (None, "", REDACTED):
            return REDACTED
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {k: self.value(str(k), x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self.value(key, x) for x in v]
        return v


redactor = _Redactor()


class HeanJsonFormatter(JsonFormatter):
    """python-json-logger formatter with HEAN's field names and redaction."""

    def __init__(self, service: str) -> None:
        super().__init__(reserved_attrs=list(_RESERVED), json_ensure_ascii=False)
        self._service = service

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["time"] = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
        log_record["level"] = record.levelname
        log_record["logger"] = record.name
        log_record.setdefault("service", self._service)

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        ordered = {k: log_record.pop(k) for k in ("time", "level", "logger", "service", "message") if k in log_record}
        ordered.update(log_record)
        return {k: redactor.value(k, v) if k not in ("time", "level", "logger") else v for k, v in ordered.items()}


def setup_logging(service: str, level: str = "INFO", secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Send every log record of this process to stdout as one JSON line.

    Called once by each entry point; library modules only call `logging.getLogger`.
    `secrets` are exact values (API key and secret) that must never be printed.
    """
    redactor.add(secrets)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(HeanJsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log is one line per request; the simulator and clients log what matters themselves.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
