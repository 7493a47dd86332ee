"""Where each process's bus sockets live.

Every publishing process binds two sockets, one per event class, because one
stalled subscriber under XPUB_NODROP stalls its publisher for everyone: ticks
must never hold up an order intent.  Subscribers connect to the publishers
they need; ZeroMQ reconnects by itself when a publisher restarts.
"""

from __future__ import annotations

from pathlib import Path

from hean.config import BusSettings

# Stable order: the tcp port of a service is base + 2 * index (+1 for critical).
PUBLISHERS = ("feed", "executor", "reconciler", "risk", "watchdog", "strategy", "ctl", "echo", "bench")


def endpoint(bus: BusSettings, runtime_dir: Path, service: str, klass: str) -> str:
    """The endpoint of `service`'s `klass` ("lossy" or "critical") publisher socket."""
    if klass not in ("lossy", "critical"):
        raise ValueError(f"unknown event class {klass!r}")
    if bus.transport == "ipc":
        return f"ipc://{runtime_dir / f'{service}-{klass}.sock'}"
    if service not in PUBLISHERS:
        raise ValueError(f"no tcp port assigned to publisher {service!r}")
    port = bus.tcp_base_port + 2 * PUBLISHERS.index(service) + (klass == "critical")
    return f"tcp://{bus.tcp_host}:{port}"
