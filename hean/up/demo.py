"""Demo defaults for `hean up`: settings under which a newcomer sees HEAN work within a minute.

With nothing configured, `hean up` runs against its own simulator with:
- a 10 000 USDT simulated wallet (so a modest price dip is a visible drawdown);
- two example strategies: `roundtrip` (BTCUSDT, opens every few seconds, holds 4 s,
  closes) and `stale-holder` (ETHUSDT, opens and never closes by itself);
- `max_hold_seconds=20`, checked every second, so the watchdog force-closes the
  stale holder about 20 s after it opened;
- a scripted ETHUSDT dip of ~22 % a few seconds after start-up, then a recovery:
  the holder's loss is a >10 % drawdown, so risk goes NORMAL -> SOFT_BRAKE and,
  after a 5 s cool-down once the price is back, SOFT_BRAKE -> NORMAL.

Turn it off with `hean up --no-demo`, or give a settings file (`hean up --env-file FILE`),
which implies no demo unless `--demo` is also given. Values the user set in the
environment always win over these defaults.
"""

from __future__ import annotations

from decimal import Decimal

SIM_ARGS = ["--initial-balance", "10000"]

STRATEGIES = ",".join([
    "hean.strategy.examples:RoundTrip?symbol=BTCUSDT&qty=0.01&hold_s=4&every_s=2&id=roundtrip",
    "hean.strategy.examples:RoundTrip?symbol=ETHUSDT&qty=2&hold_s=3600&every_s=8&id=stale-holder",
])

SETTINGS = {
    "HEAN_STRATEGY__PATHS": STRATEGIES,
    "HEAN_MAX_HOLD_SECONDS": "20",
    "HEAN_POSITION_MONITOR_CHECK_INTERVAL": "1",
    "HEAN_RISK__COOLDOWN_S": "5",
    "HEAN_WATCHDOG__ERROR_BACKOFF_S": "5",
}

DIP_SYMBOL = "ETHUSDT"
DIP_START_S = 6.0          # after the strategy runner is ready: the holder is open by then
DIP_LOW = Decimal("0.78")  # 2 ETH x 22 % of ~3000 = ~1300 USDT of a 10 000 wallet: a >10 % drawdown


def dip_steps(price: Decimal) -> list[list[str | float]]:
    """The `/sim/price-path` steps: slide down over 4 s, hold the low 6 s, climb back over 3 s."""
    down = [Decimal("0.95"), Decimal("0.90"), Decimal("0.84"), DIP_LOW]
    up = [Decimal("0.88"), Decimal("0.96"), Decimal("1.00")]
    steps: list[list[str | float]] = [[DIP_START_S, format(price, "f")]]
    steps += [[1.0, format((price * f).quantize(Decimal("0.01")), "f")] for f in down]
    steps += [[6.0 if i == 0 else 1.0, format((price * f).quantize(Decimal("0.01")), "f")]
              for i, f in enumerate(up)]
    return steps


def settings_env(current: dict[str, str]) -> dict[str, str]:
    """Demo settings for the children; anything already in `current` (the user's choice) is kept."""
    return {k: v for k, v in SETTINGS.items() if k not in current}
