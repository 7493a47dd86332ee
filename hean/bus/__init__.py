"""The HEAN event bus: ZeroMQ PUB/SUB between processes, with saturation accounting."""

from hean.bus.endpoints import PUBLISHERS, endpoint
from hean.bus.envelope import Event, MalformedEvent, decode, encode
from hean.bus.publisher import BusError, BusSaturated, Publisher
from hean.bus.stats import BusStats
from hean.bus.subscriber import Subscriber

__all__ = [
    "PUBLISHERS", "BusError", "BusSaturated", "BusStats", "Event", "MalformedEvent", "Publisher",
    "Subscriber", "decode", "encode", "endpoint",
]
