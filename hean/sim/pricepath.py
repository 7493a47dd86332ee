"""Per-symbol price paths: seeded GBM walk, CSV replay, holds and scripted paths.

Pure logic: the server calls ``step`` once per tick; nothing here sleeps.
"""

from __future__ import annotations

import csv
import math
import random
from collections import defaultdict, deque
from decimal import Decimal

from hean.sim.instruments import Instrument


class PricePath:
    """Owns the last traded price of every symbol and how it moves per step."""

    def __init__(
        self, instruments: dict[str, Instrument], *, seed: int, volatility: float,
        csv_path: str | None = None,
    ) -> None:
        self._instruments = instruments
        self._rng = random.Random(seed)
        self._volatility = volatility
        self.prices: dict[str, Decimal] = {s: i.default_price for s, i in instruments.items()}
        self.held: set[str] = set()
        self._scripts: dict[str, deque[tuple[float, Decimal]]] = {}
        self._script_wait: dict[str, float] = {}
        self._replay: dict[str, deque[Decimal]] = defaultdict(deque)
        if csv_path:
            self._load_csv(csv_path)

    def _load_csv(self, path: str) -> None:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda r: int(r["ts_ms"]))
        for row in rows:
            if row["symbol"] in self._instruments:
                self._replay[row["symbol"]].append(Decimal(row["price"]))

    def set_price(self, symbol: str, price: Decimal, *, hold: bool = True) -> Decimal:
        """Force a price (snapped to tick); ``hold`` freezes the walk for determinism."""
        snapped = self._instruments[symbol].round_price(price)
        self.prices[symbol] = snapped
        self._scripts.pop(symbol, None)
        if hold:
            self.held.add(symbol)
        else:
            self.held.discard(symbol)
        return snapped

    def resume(self, symbol: str | None = None) -> None:
        """Let held symbols walk again."""
        if symbol is None:
            self.held.clear()
        else:
            self.held.discard(symbol)

    def script(self, symbol: str, steps: list[tuple[float, Decimal]]) -> None:
        """Play (delay_s, price) pairs; each price applies once its delay has elapsed."""
        self._scripts[symbol] = deque(steps)
        self._script_wait[symbol] = 0.0
        self.held.add(symbol)

    def step(self, dt_s: float) -> dict[str, Decimal]:
        """Advance every symbol one step; return the symbols whose price changed."""
        changed: dict[str, Decimal] = {}
        for symbol, inst in self._instruments.items():
            new = self._next(symbol, inst, dt_s)
            if new is not None and new != self.prices[symbol]:
                self.prices[symbol] = new
                changed[symbol] = new
        return changed

    def _next(self, symbol: str, inst: Instrument, dt_s: float) -> Decimal | None:
        if symbol in self._scripts:
            queue = self._scripts[symbol]
            self._script_wait[symbol] += dt_s
            if queue and self._script_wait[symbol] >= queue[0][0]:
                self._script_wait[symbol] = 0.0
                return inst.round_price(queue.popleft()[1])
            if not queue:
                del self._scripts[symbol]
            return None
        if symbol in self.held:
            return None
        if self._replay.get(symbol):
            return inst.round_price(self._replay[symbol].popleft())
        shock = self._rng.gauss(0.0, 1.0) * self._volatility
        factor = Decimal(repr(math.exp(shock - self._volatility**2 / 2)))
        return inst.round_price(self.prices[symbol] * factor)
