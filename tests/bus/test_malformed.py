"""Malformed frames are counted and skipped; the subscriber keeps running."""

from __future__ import annotations

import asyncio

import orjson
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from hean.bus import BusStats, Subscriber, endpoint
from hean.bus.envelope import Event, MalformedEvent, decode, encode
from hean.config import BusSettings
from tests.utils import async_wait_for

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(topic=st.binary(max_size=300), payload=st.binary(max_size=2000))
def test_decode_random_bytes_never_raises_anything_but_malformed(topic, payload):
    try:
        ev = decode(topic, payload, 1024)
    except MalformedEvent as exc:
        assert exc.reason
    else:
        assert isinstance(ev, Event) and ev.seq >= 1


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.sampled_from(["type", "source", "epoch", "seq", "ts_ns", "data", "x"]), json_values))
def test_decode_json_objects_with_wrong_fields(body):
    try:
        ev = decode(b"order.placed", orjson.dumps(body), 1_000_000)
    except MalformedEvent:
        return
    # Anything accepted really has the envelope's shape.
    assert isinstance(ev.type, str) and isinstance(ev.source, str) and isinstance(ev.data, dict)
    assert isinstance(ev.seq, int) and not isinstance(ev.seq, bool) and ev.seq >= 1


def test_roundtrip():
    payload = encode("ORDER_PLACED", "executor", 7, 3, 11, {"qty": "0.001"})
    ev = decode(b"order.placed", payload, 4096)
    assert ev == Event("order.placed", "ORDER_PLACED", "executor", 7, 3, 11, {"qty": "0.001"})


async def test_garbage_on_the_wire_is_counted_and_skipped(tmp_path):
    """A raw ZeroMQ peer sends garbage to a real Subscriber, then one valid event."""
    bus = BusSettings(max_frame_bytes=2048)
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.XPUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind(endpoint(bus, tmp_path, "bench", "critical"))
    stats = BusStats()
    seen: list[Event] = []

    async def handler(ev: Event) -> None:
        seen.append(ev)

    sub = Subscriber(bus, tmp_path, stats).connect("bench", lossy=False).on("", handler)
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    try:
        await async_wait_for(lambda: raw.poll(10, zmq.POLLIN) and raw.recv(), 10, "the subscription")
        good = {"type": "X", "source": "bench", "epoch": 1, "ts_ns": 1, "data": {}}
        garbage = [
            [b"order.placed"],                                                      # one frame
            [b"order.placed", b"{}", b"extra"],                                      # three frames
            [b"order.placed", b"not json"],
            [b"order.placed", b"[1,2,3]"],                                           # not an object
            [b"order.placed", orjson.dumps({"type": "X"})],                          # missing fields
            [b"order.placed", orjson.dumps(good | {"seq": True})],                   # bool is not a seq
            [b"order.placed", orjson.dumps(good | {"seq": 0})],                      # out of range
            [b"order.placed", b"x" * 5000],                                          # huge
            [b"\xff\xfe", orjson.dumps(good | {"seq": 1})],                           # topic not utf-8
        ]
        for frames in garbage:
            raw.send_multipart(frames)
        raw.send_multipart([b"order.placed", orjson.dumps(good | {"seq": 1, "data": {"ok": True}})])
        # A lone one-frame message swallows the valid message behind it (counted), and nothing after that.
        raw.send_multipart([b"tick.x"])
        raw.send_multipart([b"order.placed", orjson.dumps(good | {"seq": 2, "data": {"lost": True}})])
        raw.send_multipart([b"order.placed", orjson.dumps(good | {"seq": 3, "data": {"after": True}})])
        await async_wait_for(lambda: len(seen) == 2, 10, "the valid events after the garbage")
        assert [e.data for e in seen] == [{"ok": True}, {"after": True}]
        assert stats.lost[("bench", "critical")] == 1   # the swallowed event is a counted gap
        # The one-frame message shifts the framing into the three-frame one that follows: the reader
        # re-synchronises on the next message boundary and counts the pair once.
        assert dict(stats.malformed) == {"frame_count": 2, "not_json": 1, "not_object": 1, "bad_fields": 3,
                                         "too_large": 1, "bad_topic": 1}
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        sub.close()
        raw.close()
