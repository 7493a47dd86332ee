"""Where each process's bus sockets live.

Every publishing process binds two sockets, one per event class, because one
stalled subscriber under XPUB_NODROP stalls its publisher for everyone: ticks
must never hold up an order intent.  Subscribers connect to the publishers
they need; ZeroMQ reconnects by itself when a publisher restarts.
"""

from __future__ import annotations

from pathlib import Path

from hean.config import BUS_PUBLISHERS, BusSettings

# Stable order: the tcp port of a service is base + 2 * index (+1 for critical).
PUBLISHERS = BUS_PUBLISHERS


def endpoint(bus: BusSettings, runtime_dir: Path, service: str, klass: str, *, bind: bool = False) -> str:
    """The endpoint of `service`'s `klass` ("lossy" or "critical") publisher socket.

    Over tcp a publisher binds on this host's `tcp_host`; a subscriber connects to `hosts[service]`
    when the stack places that service elsewhere.
    """
    if klass not in ("lossy", "critical"):
        raise ValueError(f"unknown event class {klass!r}")
    if bus.transport == "ipc":
        return f"ipc://{runtime_dir / f'{service}-{klass}.sock'}"
    if service not in PUBLISHERS:
        raise ValueError(f"no tcp port assigned to publisher {service!r}")
    port = bus.tcp_base_port + 2 * PUBLISHERS.index(service) + (klass == "critical")
    host = bus.tcp_host if bind else bus.hosts.get(service, bus.tcp_host)
    return f"tcp://{host}:{port}"
