"""CURVE on the bus: who may connect when the bus leaves the host.

A plain tcp:// XPUB serves anyone who reaches the port, and under XPUB_NODROP a
reader that never reads makes critical sends wait and then fail (BusSaturated).
With CURVE, a peer must complete the handshake with a key on the stack's
allow-list (checked by the ZAP handler) before ZeroMQ creates a pipe for it:
an unauthenticated peer has no pipe, so it can neither read an event nor fill
a queue the publisher would wait on.  The stack's own slow subscribers remain
bounded by `critical_timeout_s` (backpressure, then BusSaturated).

Keys are the files `zmq.auth.create_certificates` writes: `<name>.key` (public)
and `<name>.key_secret` (public + secret), all in `bus.curve_keys_dir`; every
`*.key` there is on the allow-list.  Under systemd a process's own secret may
instead arrive as the credential `<service>.key_secret` (LoadCredential=, in
$CREDENTIALS_DIRECTORY), so the deployed keys directory need not let the
service user read any secret.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from hean.config import BusSettings, ConfigError

_auth_lock = threading.Lock()
_authenticators: dict[int, tuple[ThreadAuthenticator, Path]] = {}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False     # a host name or interface: it may be reached from elsewhere


def curve_enabled(bus: BusSettings) -> bool:
    """Whether CURVE is used; ConfigError when the endpoint needs it and it cannot be."""
    if bus.transport != "tcp":
        return bus.curve == "on" and _need_keys(bus)
    outside = [h for h in (bus.tcp_host, *bus.hosts.values()) if not is_loopback(h)]
    exposed = bool(outside)
    if exposed and bus.curve == "off":
        raise ConfigError(f"HEAN_BUS__CURVE: off is refused for the non-loopback bus host {outside[0]}")
    if exposed or bus.curve == "on":
        return _need_keys(bus)
    return False


def _need_keys(bus: BusSettings) -> bool:
    d = bus.curve_keys_dir
    outside = [h for h in (bus.tcp_host, *bus.hosts.values()) if not is_loopback(h)]
    why = f"the bus on {(outside or [bus.tcp_host])[0]} needs CURVE" if bus.transport == "tcp" else "bus.curve=on"
    if d is None:
        raise ConfigError(f"HEAN_BUS__CURVE_KEYS_DIR: not set, and {why} (create keys with `hean bus keys`)")
    if not Path(d).is_dir() or not any(Path(d).glob("*.key")):
        raise ConfigError(f"HEAN_BUS__CURVE_KEYS_DIR: {d} holds no public keys (*.key)")
    return True


def endpoint_host(ep: str) -> str:
    return urlsplit(ep).hostname or ""


def secret_key(bus: BusSettings, service: str | None) -> tuple[bytes, bytes]:
    """(public, secret) of this process; without a service name, the one keypair in the directory."""
    d = Path(bus.curve_keys_dir or ".")
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if service is not None and credentials and (Path(credentials) / f"{service}.key_secret").is_file():
        path = Path(credentials) / f"{service}.key_secret"
    elif service is not None:
        path = d / f"{service}.key_secret"
    else:
        found = sorted(d.glob("*.key_secret"))
        if len(found) != 1:
            raise ConfigError(f"HEAN_BUS__CURVE_KEYS_DIR: {d} must hold exactly one *.key_secret "
                              f"for a process without a service name (found {len(found)})")
        path = found[0]
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"HEAN_BUS__CURVE_KEYS_DIR: cannot read {path}: {exc}") from None
    if secret is None:
        raise ConfigError(f"HEAN_BUS__CURVE_KEYS_DIR: {path} has no secret key")
    return public, secret


def public_key(bus: BusSettings, service: str) -> bytes:
    path = Path(bus.curve_keys_dir or ".") / f"{service}.key"
    try:
        return zmq.auth.load_certificate(path)[0]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"HEAN_BUS__CURVE_KEYS_DIR: no public key for {service}: {exc}") from None


def make_server(sock: zmq.Socket, bus: BusSettings, service: str) -> None:
    """Turn `sock` into a CURVE server that accepts only the stack's keys (call before bind)."""
    _start_authenticator(sock.context, Path(bus.curve_keys_dir or "."))
    public, secret = secret_key(bus, service)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)


def make_client(sock: zmq.Socket, bus: BusSettings, me: str | None, server: str) -> None:
    """Set `sock`'s CURVE keys for the next connect() to `server` (options apply per connect)."""
    public, secret = secret_key(bus, me)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_SERVERKEY, public_key(bus, server))


def _start_authenticator(ctx: zmq.Context, keys_dir: Path) -> None:
    # A thread, not an asyncio task: a publisher busy on its event loop must not delay handshakes.
    # ZeroMQ allows one ZAP handler per context, so all publishers of the process share it.
    # A second keys directory in one process (tests) re-points the allow-list: never a stale one.
    with _auth_lock:
        known = _authenticators.get(id(ctx))
        if known is not None and known[1] == keys_dir:
            return
        if known is None:
            auth = ThreadAuthenticator(zmq.Context.shadow(ctx.underlying))
            auth.start()
        else:
            auth = known[0]
        auth.configure_curve(domain="*", location=str(keys_dir))
        _authenticators[id(ctx)] = (auth, keys_dir)


def write_keys(directory: Path, services: list[str]) -> list[Path]:
    """Create a keypair per service in `directory` (existing keypairs are kept; a new directory is 0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name in services:
        if (directory / f"{name}.key_secret").exists():
            continue
        public, secret = zmq.auth.create_certificates(directory, name)
        Path(secret).chmod(0o600)
        written += [Path(public), Path(secret)]
    return written
