"""The chaos soak's strategy: trades steadily so every fault meets an order in flight.

Per symbol, on the runner's ~1 s timer: when flat, open (alternating long and short) with a
market order and hold a few seconds, or, one time in `long_every`, hold past
`max_hold_seconds` so the watchdog must force-close; after a close the symbol is re-opened.
Every `limit_every_s` a resting PostOnly limit is placed `limit_off_bp` away from the last
price (a crash or a drift fills some: positions the strategy did not open with a market
order). Every `burst_every_s` a burst of `burst` small market orders, long and short in
equal numbers, goes out at once: more than the executor's order rate allows in a second.

When the file `stop_file` exists the strategy stops opening and only closes what is open,
which is how `hean chaos` ends trading without touching a process. Deterministic given
`seed` (its own random.Random), so a seed reproduces the same intents.
"""

from __future__ import annotations

import os
import random
from decimal import ROUND_DOWN, Decimal

from hean.strategy.api import OrderIntent, Position, Strategy


class ChaosTrader(Strategy):
    symbols = "BTCUSDT,ETHUSDT"
    btc_qty = Decimal("0.05")
    eth_qty = Decimal("0.5")
    hold_min_s = 2.0
    hold_max_s = 8.0
    long_hold_s = 40.0       # > max_hold_seconds in the chaos settings: the watchdog's job
    long_every = 4
    limit_every_s = 5.0
    limit_off_bp = 40
    burst_every_s = 20.0
    burst = 14
    seed = 1
    stop_file = ""

    def on_start(self) -> None:
        self._rng = random.Random(self.seed)
        self._syms = [s for s in self.symbols.split(",") if s]
        self._hold_until: dict[str, float] = {}
        self._closing_at: dict[str, float] = {}
        self._opens: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}
        self._next_limit = 0.0
        self._next_burst = 0.0

    def _qty(self, symbol: str) -> Decimal:
        return self.btc_qty if symbol.startswith("BTC") else self.eth_qty

    def _stopped(self) -> bool:
        return bool(self.stop_file) and os.path.exists(self.stop_file)

    def on_position(self, position: Position) -> None:
        # A flat report older than our last open (its fill not seen yet) must not cancel that open's hold plan.
        if position.symbol in self._syms and position.is_flat \
                and self.ctx.now - self._opened_at.get(position.symbol, 0.0) > 3.0:
            self._hold_until.pop(position.symbol, None)
            self._closing_at.pop(position.symbol, None)

    def _close(self, symbol: str, pos: Position, now: float) -> list[OrderIntent]:
        if now - self._closing_at.get(symbol, 0.0) < 3.0:   # one close in flight at a time
            return []
        self._closing_at[symbol] = now
        return [OrderIntent.close(pos)]

    def on_timer(self, now: float) -> list[OrderIntent]:
        out: list[OrderIntent] = []
        stopped = self._stopped()
        risk = self.ctx.risk
        may_open = not stopped and (risk is None or risk.allows_new_risk)
        for symbol in self._syms:
            if self.ctx.pending(symbol):
                continue
            pos = self.ctx.position(symbol)
            if not pos.is_flat:
                until = self._hold_until.setdefault(symbol, now + self.hold_max_s)
                if stopped or now >= until:
                    out += self._close(symbol, pos, now)
                continue
            if may_open:
                n = self._opens[symbol] = self._opens.get(symbol, 0) + 1
                hold = self.long_hold_s if n % self.long_every == 0 else self._rng.uniform(self.hold_min_s,
                                                                                           self.hold_max_s)
                self._hold_until[symbol] = now + hold
                self._opened_at[symbol] = now
                side = "Buy" if (n + self._rng.randint(0, 1)) % 2 else "Sell"
                out.append(OrderIntent.market(symbol, side, self._qty(symbol)))
        if may_open and now >= self._next_limit:
            self._next_limit = now + self.limit_every_s
            out += self._resting_limit()
        if may_open and now >= self._next_burst:
            if self._next_burst:
                out += self._burst()
            self._next_burst = now + self.burst_every_s
        return out

    def _resting_limit(self) -> list[OrderIntent]:
        symbol = self._rng.choice(self._syms)
        last = self.ctx.last_price.get(symbol)
        if last is None:
            return []
        side = self._rng.choice(("Buy", "Sell"))
        off = Decimal(self.limit_off_bp) / 10000
        price = last * (1 - off if side == "Buy" else 1 + off)
        tick = Decimal("0.1") if symbol.startswith("BTC") else Decimal("0.01")
        price = (price / tick).quantize(Decimal(1), rounding=ROUND_DOWN) * tick
        qty = self._qty(symbol) / 5
        return [OrderIntent.limit(symbol, side, qty, price, time_in_force="PostOnly")]

    def _burst(self) -> list[OrderIntent]:
        symbol = self._rng.choice(self._syms)
        qty = self._qty(symbol) / 10
        half = self.burst // 2
        return [OrderIntent.market(symbol, "Buy" if i < half else "Sell", qty) for i in range(2 * half)]
