"""Simulator settings: one frozen model so a test can describe a whole venue in one value."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, SecretStr


class SimSettings(BaseModel):
    """Configuration of one simulated Bybit venue.

    Fields:
        host: interface to bind; loopback only in tests.
        port: TCP port; 0 picks an ephemeral port (read ``SimServer.port`` after start).
        api_key: the only API key accepted (one account = one uid).
        api_secret: HMAC secret of that key; never logged.
        seed: seeds the price path, ids and fault fractions, so runs are reproducible.
        symbols: linear USDT perpetuals listed by the venue.
        initial_balance: starting USDT wallet balance.
        tick_interval_s: period of one price-path step; public WS pushes on each step.
        volatility: per-step GBM sigma of the random walk.
        price_csv: optional replay file with columns ts_ms,symbol,price (replaces the walk).
        slippage_bps: a market order's IOC limit this many bps beyond the touch; None (default) = the
            price-band edge, Bybit's own slippage threshold (both capped by the band).
        book_level_notional: USDT notional resting at each price level (depth = notional / price).
        book_depth: qty per level for given symbols (overrides the notional; ``/sim/book`` at runtime).
        taker_fee / maker_fee: fee rates charged on each execution.
        leverage: leverage used for initial-margin checks and position rows.
        rate_limit_scale: multiplies every per-endpoint limit (tests use e.g. 100).
        ws_drop_every_s: fault: close every WS connection this often (None = never).
        max_fill_qty_per_tick: cap on how much of one resting limit order fills per step
            (None = fill fully when crossed); lets tests see PartiallyFilled.
        initial_prices: starting last price per symbol (defaults per symbol otherwise).
        public_rate_limit: requests per second per client IP on public endpoints.
        created_time_resets: kinder, pre-2024 reading: position ``createdTime`` restarts on every
            flat -> open (live Bybit keeps the first-ever creation on the symbol).
        report_open_time: serve ``openTime``; False makes it always 0 (a client's fallback path).
        uid: the account's UID, as `/v5/user/query-api` reports it (`userID`); deterministic per
            venue so state files bound to it survive a simulator restart.
        rest_delay_ms: one-way network delay of a REST call, paid on the request and again on the
            reply (0 = none, for benchmarks).
        ws_delay_ms: one-way delay of every WS frame, both directions; order per connection is kept.
        delay_jitter: each delay is drawn from ms × uniform(1 - jitter, 1 + jitter), seeded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = "hean-sim-key"
    api_secret: SecretStr = SecretStr("hean-sim-secret")
    seed: int = 1
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    initial_balance: Decimal = Decimal("100000")
    tick_interval_s: float = 0.1
    volatility: float = 0.0005
    price_csv: str | None = None
    slippage_bps: Decimal | None = None
    book_level_notional: Decimal = Decimal("250000")
    book_depth: dict[str, Decimal] = {}
    taker_fee: Decimal = Decimal("0.00055")
    maker_fee: Decimal = Decimal("0.0002")
    leverage: Decimal = Decimal("10")
    rate_limit_scale: float = 1.0
    ws_drop_every_s: float | None = None
    max_fill_qty_per_tick: Decimal | None = None
    initial_prices: dict[str, Decimal] = {}
    public_rate_limit: int = 120
    created_time_resets: bool = False
    report_open_time: bool = True
    uid: int = 1
    rest_delay_ms: float = 5.0
    ws_delay_ms: float = 5.0
    delay_jitter: float = 0.4
