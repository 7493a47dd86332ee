"""The shell every HEAN process runs in: settings -> startup -> main loop -> shutdown.

`hean run <service>` builds one `Service` subclass and calls `run_service`.
The shell owns what every process needs and none should write twice: JSON
logs, /metrics, uvloop, SIGTERM/SIGINT, systemd notify and watchdog pings,
the bus sockets, tracked background tasks, and the exit code.

Exit codes: 0 after a clean stop, 78 (EX_CONFIG) for bad configuration or when
another instance of the same service already runs on the same data dir (one
line naming both; systemd's RestartPreventExitStatus=78 and `hean up` treat it
as "restarting cannot fix this"), 70 (EX_SOFTWARE) when a task died or the bus
failed loudly.

One instance per service per data dir: the shell takes `fcntl.flock` on
`<data_dir>/<service>.lock` before anything binds, and holds it for the life of
the process (the kernel drops it on any exit, even kill -9). Without it a second
executor would silently take over the ipc socket and both would trade.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import sys
import signal
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import REGISTRY, CollectorRegistry

from hean.bus import BusStats, Publisher, Subscriber
from hean.bus.envelope import Event
from hean.config import EX_CONFIG, ConfigError, HeanSettings, print_config_error
from hean.metrics import MetricsServer, ServiceGauges

EX_SOFTWARE = 70
log = logging.getLogger("hean.lifecycle")


def sd_notify(message: str) -> None:
    """Tell systemd about readiness/liveness (Type=notify, WatchdogSec=); a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):  # abstract namespace socket
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(addr)
            s.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify failed", extra={"error": str(exc)})


class AlreadyRunning(Exception):
    """Another process of this service holds the data dir's lock."""


def take_instance_lock(data_dir: Path, service: str) -> int:
    """Lock `<data_dir>/<service>.lock` for this process; return the open fd (keep it open).

    Raises AlreadyRunning naming the holder's pid (written into the file by the holder).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{service}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise AlreadyRunning(f"another {service} already runs on data dir {data_dir} (pid {holder}; "
                             f"lock {path}): stop it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Service:
    """Base class of a HEAN process. Subclasses override `startup`, `main_loop`, `shutdown`."""

    name = "service"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.registry = registry
        self.stats = BusStats().register(registry)
        self.gauges = ServiceGauges(self.name, registry)
        self.is_ready = False
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.exit_code = 0
        self.publisher: Publisher | None = None
        self.subscriber: Subscriber | None = None
        self.metrics: MetricsServer | None = None
        self._bus_stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bus_task: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None

    # --- building blocks for subclasses -------------------------------------------------
    def make_publisher(self) -> Publisher:
        s = self.settings
        self.publisher = Publisher(s.bus, s.runtime_dir, self.name, self.stats).bind()
        return self.publisher

    def make_subscriber(self) -> Subscriber:
        s = self.settings
        self.subscriber = Subscriber(s.bus, s.runtime_dir, self.stats, on_gap=self.on_bus_gap, service=self.name)
        return self.subscriber

    def on_bus_gap(self, event: Event, lost: int) -> None:
        """Called when events from a publisher went missing; override to act (e.g. re-fetch state)."""

    async def publish(self, topic: str, type_: str, data: dict[str, Any]) -> bool:
        assert self.publisher is not None, "make_publisher() first"
        return await self.publisher.publish(topic, type_, data)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background task; if it dies with an exception the process stops with exit 70."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.critical("task died; stopping the process", extra={"task": task.get_name(), "error": repr(exc)},
                     exc_info=exc)
        self.exit_code = EX_SOFTWARE
        self.should_exit.set()

    # --- overridables --------------------------------------------------------------------
    async def startup(self) -> None:
        """Open sockets, load state, connect; return only when the process can really do its job."""

    async def main_loop(self) -> None:
        await self.should_exit.wait()

    async def shutdown(self) -> None:
        """Finish in-flight work (service specific); runs under `shutdown_timeout`."""

    shutdown_timeout = 10.0

    # --- the lifecycle -------------------------------------------------------------------
    def handle_exit(self, sig: int) -> None:
        # Signal handlers only set flags; a second signal means "stop now, skip the graceful part".
        if self.should_exit.is_set():
            self.force_exit = True
            for t in list(self._tasks):
                t.cancel()
        self.should_exit.set()
        log.info("signal received; stopping", extra={"signal": signal.Signals(sig).name})

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # 15 from systemd/supervisor, 2 from Ctrl-C
            loop.add_signal_handler(sig, self.handle_exit, sig)
        s = self.settings
        if self._lock_fd is None:
            self._lock_fd = _lock_or_say(s, self.name)
            if self._lock_fd is None:
                return EX_CONFIG
        self.metrics = MetricsServer(s.metrics_host, s.metrics_port(self.name), self.registry,
                                     lambda: self.is_ready)
        try:
            port = await self.metrics.start()
            if not await self._startup_or_stop():
                # SIGTERM while start-up still waits (e.g. retrying an unreachable exchange): stop at
                # once and quietly; shutdown() releases whatever start-up had opened (clients, files).
                try:
                    async with asyncio.timeout(self.shutdown_timeout):
                        await self.shutdown()
                except Exception:  # noqa: BLE001 - stopping anyway; say so once
                    log.warning("incomplete release after a stop during start-up", exc_info=True)
                log.info("stopped during start-up", extra={"exit_code": self.exit_code})
                await self._close()
                return self.exit_code
        except ConfigError as exc:
            print_config_error(self.name, exc)
            await self._close()
            return EX_CONFIG
        except Exception as exc:
            log.critical("start-up failed", extra={"error": repr(exc)}, exc_info=True)
            await self._close()
            return EX_SOFTWARE
        if self.subscriber is not None:
            self._bus_task = self.spawn(self.subscriber.run(self._bus_stop), "bus_reader")
        if self.publisher is not None:
            self.spawn(self.publisher.track_subscriptions(self._bus_stop), "bus_subscriptions")
        self.is_ready = True
        self.gauges.ready.set(1)
        sd_notify("READY=1")
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec:
            self.spawn(self._systemd_watchdog(watchdog_usec / 2e6), "systemd_watchdog")
        log.info("service ready", extra={"metrics_port": port, "pid": os.getpid(),
                                         "endpoints": self.publisher.endpoints if self.publisher else {}})
        main = asyncio.create_task(self.main_loop(), name="main_loop")
        stopper = asyncio.create_task(self.should_exit.wait())
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        self.should_exit.set()
        if main.done() and not main.cancelled() and main.exception() is not None:
            log.critical("main loop failed", exc_info=main.exception())
            self.exit_code = EX_SOFTWARE
        await self._stop(main)
        return self.exit_code

    async def _startup_or_stop(self) -> bool:
        """Run startup(); False (start-up cancelled) if a stop signal comes first."""
        startup = asyncio.create_task(self.startup(), name="startup")
        stopper = asyncio.create_task(self.should_exit.wait(), name="startup_stop")
        await asyncio.wait({startup, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not startup.done():
            startup.cancel()
            await asyncio.gather(startup, return_exceptions=True)
            if startup.cancelled():
                return False
        if self.should_exit.is_set() and startup.exception() is not None:
            return False     # a loop that noticed the stop and raised ("stopped before ...") is no failure
        startup.result()     # re-raises ConfigError and real start-up failures
        return True

    async def _systemd_watchdog(self, interval: float) -> None:
        while True:
            sd_notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _stop(self, main: asyncio.Task[None]) -> None:
        self.is_ready = False
        self.gauges.ready.set(0)
        sd_notify("STOPPING=1")
        # 1. Stop taking new work: the bus reader stops, what is already queued is still handled.
        self._bus_stop.set()
        if not self.force_exit:
            try:
                async with asyncio.timeout(self.shutdown_timeout):
                    # 2. The main loop sees should_exit and returns once its current unit of work is
                    #    done, so shutdown() never closes a client or a database under its feet.
                    await asyncio.gather(asyncio.shield(main), return_exceptions=True)
                    # 3. Events already queued are handled (the reader has stopped), before any
                    #    handler's database or client is closed.
                    if self._bus_task is not None:
                        await asyncio.gather(asyncio.shield(self._bus_task), return_exceptions=True)
                    # 4. The service finishes in-flight work and releases what it holds.
                    try:
                        await self.shutdown()
                    except Exception:
                        log.exception("error while shutting down")
            except TimeoutError:
                log.error("shutdown timed out; cancelling what is left", extra={"timeout_s": self.shutdown_timeout})
        # 5. Cancel whatever is still running and say how much that was.
        left = [t for t in (*self._tasks, main) if not t.done()]
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        if left:
            log.info("cancelled tasks at shutdown", extra={"count": len(left),
                                                          "tasks": [t.get_name() for t in left]})
        await self._close()
        log.info("service stopped", extra={"exit_code": self.exit_code})

    async def _close(self) -> None:
        if self.subscriber is not None:
            self.subscriber.close()
        if self.publisher is not None:
            self.publisher.close()
        if self.metrics is not None:
            await self.metrics.stop()
        if self._lock_fd is not None:   # last: nothing of ours is bound any more
            os.close(self._lock_fd)
            self._lock_fd = None


def run_service(service_cls: type[Service], settings: HeanSettings) -> int:
    """Run one service to completion on uvloop and return its exit code."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(service_cls, settings))


async def _serve(service_cls: type[Service], settings: HeanSettings) -> int:
    # The lock comes before the service is built: a constructor may already open a state file.
    lock_fd = _lock_or_say(settings, service_cls.name)
    if lock_fd is None:
        return EX_CONFIG
    # The service is built inside the loop: its asyncio primitives belong to this loop.
    try:
        service = service_cls(settings)
    except ConfigError as exc:
        print_config_error(service_cls.name, exc)
        os.close(lock_fd)
        return EX_CONFIG
    service._lock_fd = lock_fd
    return await service.serve()


def _lock_or_say(settings: HeanSettings, name: str) -> int | None:
    """The instance lock's fd, or None after printing the one line that says why not."""
    try:
        return take_instance_lock(settings.data_dir, name)
    except AlreadyRunning as exc:
        print(f"hean {name}: {exc}", file=sys.stderr, flush=True)
    except OSError as exc:
        print_config_error(name, ConfigError(f"HEAN_DATA_DIR: cannot lock {settings.data_dir}: {exc.strerror}"))
    return None
