"""`hean run echo`: the smallest real HEAN process.

It exists so the shared shell (settings, logs, metrics, signals, bus) can be
tested as a real OS process before any trading process does: it listens to
the configured sources and re-publishes what it hears under `echo.<topic>`.
"""

from __future__ import annotations

import asyncio

from hean import topics
from hean.bus.envelope import Event
from hean.lifecycle import Service


class EchoService(Service):
    name = "echo"

    async def startup(self) -> None:
        cfg = self.settings.echo
        self.make_publisher()
        sub = self.make_subscriber()
        for source in cfg.sources:
            sub.connect(source)
        for prefix in cfg.prefixes:
            sub.on(prefix, self._echo)

    async def _echo(self, ev: Event) -> None:
        cfg = self.settings.echo
        if cfg.handler_delay_s:
            await asyncio.sleep(cfg.handler_delay_s)
        if cfg.republish:
            await self.publish(topics.echo(ev.topic), topics.EventType.ECHO.value,
                               {"source": ev.source, "seq": ev.seq, "type": ev.type, "data": ev.data})
