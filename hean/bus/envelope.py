"""The wire format of one bus event, and its strict decoder.

Frames: `[topic, payload]`; payload is orjson of
`{type, source, epoch, seq, ts_ns, data}`.  `seq` counts per publisher and
topic (a prefix-filtering subscriber must not mistake another topic's events
for a gap); `epoch` is the publisher's start time in ns, so a restarted
publisher is seen as a new stream rather than as a huge gap.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson


class MalformedEvent(ValueError):
    """An inbound frame that is not a HEAN envelope; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Event(NamedTuple):
    """One decoded bus event (a NamedTuple: immutable and cheap to build on the hot path)."""

    topic: str
    type: str
    source: str
    epoch: int
    seq: int
    ts_ns: int
    data: dict[str, Any]


def encode(type_: str, source: str, epoch: int, seq: int, ts_ns: int, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": type_, "source": source, "epoch": epoch, "seq": seq, "ts_ns": ts_ns, "data": data})


def decode(topic_frame: bytes, payload: bytes, max_bytes: int) -> Event:
    """Decode and validate; raise MalformedEvent with a reason label on anything odd."""
    if len(payload) > max_bytes or len(topic_frame) > 256:
        raise MalformedEvent("too_large", f"{len(payload)} bytes")
    try:
        topic = topic_frame.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("bad_topic") from None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise MalformedEvent("not_json") from None
    if type(body) is not dict:
        raise MalformedEvent("not_object")
    try:
        type_, source, data = body["type"], body["source"], body["data"]
        epoch, seq, ts_ns = body["epoch"], body["seq"], body["ts_ns"]
    except KeyError as exc:
        raise MalformedEvent("bad_fields", f"missing {exc.args[0]}") from None
    # Exact type checks: a JSON `true` is a bool, and bool is a subclass of int.
    if type(type_) is not str or type(source) is not str or type(data) is not dict:
        raise MalformedEvent("bad_fields", "type/source/data")
    if type(epoch) is not int or type(seq) is not int or type(ts_ns) is not int:
        raise MalformedEvent("bad_fields", "epoch/seq/ts_ns")
    if seq < 1 or epoch < 0:
        raise MalformedEvent("bad_fields", "seq/epoch range")
    return Event(topic, type_, source, epoch, seq, ts_ns, data)
