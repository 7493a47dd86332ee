"""Bybit v5 compatible exchange simulator (REST, WS, control API, metrics).

The simulator is HEAN's only stand-in for Bybit; it deliberately shares no code
with ``hean.exchange`` so each implementation checks the other.
"""

from hean.sim.server import SimServer
from hean.sim.settings import SimSettings

__all__ = ["SimServer", "SimSettings"]
