"""One typed, frozen settings object for every HEAN process.

Every process builds `HeanSettings` once in `main()` (environment variables with
the `HEAN_` prefix, nested sections with `__`, plus an optional env file) and
passes it down; no other module reads `os.environ`.  Defaults are safe: paper
trading (`dry_run=True`, `is_live=False`) against the local simulator.

A bad value raises `ConfigError` with one readable line naming the setting;
the CLI turns it into exit status 78 (EX_CONFIG) without a traceback.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hean.credentials import with_credentials

DEFAULT_ENV_FILE = Path("/etc/hean/hean.env")
EX_CONFIG = 78

# The local simulator's well-known credentials (public knowledge, like a default password on a lab
# box). Paper mode with no keys configured uses them; they are never a default of the Bybit settings,
# so live mode cannot run on them by accident.
SIM_API_KEY = "hean-sim-key"
SIM_API_SECRET = "hean-sim-secret"
# Processes that never sign a request (public market data, strategies): in live mode they run without the
# API key, so a deployment hands the secret only to the processes that need it (systemd LoadCredential).
UNSIGNED_SERVICES = frozenset({"feed", "strategy"})

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=0, le=65535)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


def _split_list(value: Any) -> Any:
    """Lists in the environment may be written `A,B` or as JSON `["A","B"]`."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ValueError("not a valid JSON list") from None
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return value


StrList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_list)]


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Every process that may publish on the bus, in a stable order (its tcp ports derive from the index).
BUS_PUBLISHERS = ("feed", "executor", "reconciler", "risk", "watchdog", "strategy", "ctl", "echo", "bench")


class BusSettings(_Section):
    """ZeroMQ event bus.

    transport: `ipc` (unix sockets under `runtime_dir`) or `tcp` (`tcp_host`, ports from `tcp_base_port`).
    sndhwm / rcvhwm: ZeroMQ high-water marks (messages per peer pipe).
    queue_size: bounded in-process queue between the socket and the handlers.
    critical_timeout_s: how long a critical event may wait for room before the bus fails loudly.
    warn_utilization / critical_utilization: queue utilisation that logs WARNING (throttled) / CRITICAL.
    warn_throttle_s: at most one saturation WARNING per this many seconds.
    max_frame_bytes: larger inbound frames are counted as malformed and skipped.
    curve: "auto" = CURVE when the tcp host is not loopback (then required), "on" = always, "off" = never
        (refused for a non-loopback host).  curve_keys_dir: this service's `<service>.key_secret` and the
        stack's public keys `*.key` (the allow-list), as `hean bus keys` writes them.
    hosts: for a stack split across hosts, where the other services' publishers are (service -> host or
        address, e.g. {"executor": "10.0.0.2"}): a subscriber connects there, a publisher binds on
        `tcp_host` (this host's own address). Services not listed are on `tcp_host`.
    """

    transport: Literal["ipc", "tcp"] = "ipc"
    tcp_host: str = "127.0.0.1"
    tcp_base_port: Port = 5550
    sndhwm: Annotated[int, Field(ge=1)] = 10_000
    rcvhwm: Annotated[int, Field(ge=1)] = 10_000
    queue_size: Annotated[int, Field(ge=1)] = 10_000
    critical_timeout_s: PositiveFloat = 1.0
    warn_utilization: Fraction = 0.80
    critical_utilization: Fraction = 0.95
    warn_throttle_s: NonNegFloat = 30.0
    max_frame_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    curve: Literal["auto", "on", "off"] = "auto"
    curve_keys_dir: Path | None = None
    hosts: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> BusSettings:
        if self.warn_utilization >= self.critical_utilization:
            raise ValueError("bus.warn_utilization must be below bus.critical_utilization")
        for service, host in self.hosts.items():
            if service not in BUS_PUBLISHERS:
                raise ValueError(f"bus.hosts: {service!r} is not a publishing service ({', '.join(BUS_PUBLISHERS)})")
            if not host or any(c in host for c in " /:@") and not host.startswith("["):
                raise ValueError(f"bus.hosts: {host!r} for {service} is not a host name or address")
        return self


class BybitSettings(_Section):
    """Exchange endpoints and credentials.

    rest_url / ws_public_url / ws_private_url: Bybit v5 base URLs; the defaults are the local simulator.
    api_key / api_secret: your HMAC credentials (never logged). No default: empty in paper mode means
        the simulator's well-known key (`HeanSettings.credentials()`); live mode needs both.
    recv_window_ms: X-BAPI-RECV-WINDOW.  timeout_s: per-request timeout; a timeout is an ambiguous outcome.
    """

    rest_url: str = "http://127.0.0.1:8900"
    ws_public_url: str = "ws://127.0.0.1:8900/v5/public/linear"
    ws_private_url: str = "ws://127.0.0.1:8900/v5/private"
    api_key: SecretStr = SecretStr("")
    api_secret: SecretStr = SecretStr("")
    recv_window_ms: Annotated[int, Field(ge=100, le=60_000)] = 5000
    timeout_s: PositiveFloat = 10.0


class MetricsPorts(_Section):
    """Prometheus /metrics port per process (0 = pick a free port and log it)."""

    sim: Port = 9100
    feed: Port = 9101
    executor: Port = 9102
    reconciler: Port = 9103
    risk: Port = 9104
    watchdog: Port = 9105
    strategy: Port = 9106
    echo: Port = 9107
    up: Port = 9108


class ExecutorSettings(_Section):
    """Executor: exactly-once placement and risk gating.

    dedup_window_s: the seed's fingerprint guard window (same symbol/side/size/price).
    dedup_cleanup_interval_s: how often old fingerprints are purged.
    soft_brake_factor: size multiplier while the risk state is SOFT_BRAKE.
    risk_stale_s: no risk state heard for this long = HARD_STOP behaviour (fail closed).
    resolve_interval_s: how often unresolved (ambiguous) journal rows are re-queried.
    shutdown_timeout_s: SIGTERM waits this long for in-flight requests.
    intent_max_age_s: an intent older than this (by its `created_ns`, stamped on receipt when the
        sender gave none) is rejected as `expired` instead of sent: after an outage its sender has
        given up on it (the strategy runner does after 60 s).
    exists_search_s: after a 110072 (an order with that orderLinkId exists) the order is searched for
        in order/realtime and order/history this long; then, not resting, it is reported placed
        without an orderId (reason `exists_not_found`) instead of blocking its symbol for ever.
    journal_sync: how the journal row written before each request is committed (SQLite WAL).
        `normal`: survives a kill -9 of the executor, not a power loss or kernel crash, which may
        drop the last rows; an intent sent again after that carries the same orderLinkId, which
        Bybit refuses for ever (110072), so no order is doubled, and the reconciler still sees the
        orders those rows described. `full`: an fsync per row as well, which here was most of the
        tick-to-order time (README, "Figures").
    """

    dedup_window_s: PositiveFloat = 5.0
    dedup_cleanup_interval_s: PositiveFloat = 60.0
    soft_brake_factor: Fraction = 0.5
    risk_stale_s: PositiveFloat = 5.0
    resolve_interval_s: PositiveFloat = 2.0
    shutdown_timeout_s: PositiveFloat = 10.0
    intent_max_age_s: PositiveFloat = 30.0
    exists_search_s: PositiveFloat = 60.0
    journal_sync: Literal["normal", "full"] = "normal"


class ReconcilerSettings(_Section):
    """Reconciler: private WS plus REST catch-up.

    interval_s: periodic catch-up.  margin_s: executions are re-read from (last seen - margin).
    lookback_s: on a fresh ledger, how far back the first catch-up reads.
    state_republish_s: positions/equity re-published this often for late joiners.
    mismatch_escalate_after: catch-ups a mismatch may survive before it escalates.
    account_poll_s: while any position is open, wallet and positions are read by REST this often
    (Bybit's wallet stream does not push on unrealised-PnL moves); nothing is polled while flat.
    """

    interval_s: PositiveFloat = 60.0
    margin_s: NonNegFloat = 30.0
    lookback_s: PositiveFloat = 3600.0
    state_republish_s: PositiveFloat = 1.0
    mismatch_escalate_after: Annotated[int, Field(ge=1)] = 3
    account_poll_s: PositiveFloat = 1.0


class WsSettings(_Section):
    """WebSocket heartbeat and reconnect policy (the seed's 20 s ping, 5 s x1.5 up to 60 s)."""

    ping_interval_s: PositiveFloat = 20.0
    stale_after_s: PositiveFloat = 60.0
    backoff_initial_s: PositiveFloat = 5.0
    backoff_factor: Annotated[float, Field(ge=1.0, allow_inf_nan=False)] = 1.5
    backoff_max_s: PositiveFloat = 60.0
    jitter: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1


class RiskSettings(_Section):
    """Risk governor (the seed's ladder).

    soft_pct / quarantine_pct / hard_pct: drawdown thresholds in percent.
    recover_pct: de-escalate to NORMAL below this drawdown, after `cooldown_s` in the current state.
    profit_mode_factor: above initial capital x this, drawdown is reported as profit erosion.
    initial_capital: fixed initial capital; empty = the first equity seen (persisted).
    equity_stale_s: equity older than this raises QUARANTINE (EQUITY_STALE); the age counts from the
      exchange's time of the reading (and, with positions open, of the position rows and marks used).
    heartbeat_s: the risk state is re-published this often.
    mark_max_age_s: a feed mark price older than this is not used to mark open positions.
    """

    soft_pct: Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)] = 10.0
    quarantine_pct: Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)] = 15.0
    hard_pct: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 20.0
    recover_pct: NonNegFloat = 5.0
    profit_mode_factor: Annotated[float, Field(ge=1.0, allow_inf_nan=False)] = 1.05
    cooldown_s: NonNegFloat = 300.0
    initial_capital: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None = None
    equity_stale_s: PositiveFloat = 30.0
    heartbeat_s: PositiveFloat = 1.0
    mark_max_age_s: PositiveFloat = 3.0

    @model_validator(mode="after")
    def _ladder(self) -> RiskSettings:
        if not self.recover_pct < self.soft_pct < self.quarantine_pct < self.hard_pct:
            raise ValueError("risk thresholds must satisfy recover_pct < soft_pct < quarantine_pct < hard_pct")
        return self


class WatchdogSettings(_Section):
    """Position watchdog extras (the seed's own names live at the top level).

    close_attempts_before_escalation: failed closes on one position before its symbol's orders are cancelled.
    error_backoff_s: pause after an error (the seed's 30 s).
    include_foreign: also close positions HEAN did not open.
    opening_lookback_days: how far back the symbol's executions are walked to find when a position
        opened when Bybit reports openTime 0 (Bybit keeps two years of trade history).
    """

    close_attempts_before_escalation: Annotated[int, Field(ge=1)] = 3
    error_backoff_s: PositiveFloat = 30.0
    include_foreign: bool = True
    opening_lookback_days: PositiveFloat = 730.0


class StrategySettings(_Section):
    """Strategy runner.

    paths: dotted paths `package.module:Class` of the strategies to host.
    resend_interval_s: an intent without an outcome is re-sent (same id) this often.
    max_failures: a strategy that raised this many times is disabled.
    """

    paths: StrList = ("hean.strategy.examples:RoundTrip",)
    resend_interval_s: PositiveFloat = 1.0
    max_failures: Annotated[int, Field(ge=1)] = 5


class EchoSettings(_Section):
    """`hean run echo`: a do-nothing process for testing the shell and the bus.

    sources: publishing services to listen to.  prefixes: topic prefixes to subscribe to.
    handler_delay_s: sleep in the handler per event (a deliberately slow subscriber).
    republish: re-publish each received event as `echo.<topic>` (critical).
    """

    sources: StrList = ()
    prefixes: StrList = ("",)
    handler_delay_s: NonNegFloat = 0.0
    republish: bool = True


class HeanSettings(BaseSettings):
    """Settings for every HEAN process (env prefix `HEAN_`, nested sections with `__`).

    mode: `paper` (simulator) or `live` (Bybit).  dry_run / is_live: the seed's two guards; a real
    Bybit host needs dry_run=false AND is_live=true, and live mode needs both API credentials.
    service: the process name (set by `hean run <service>`).  log_level: root log level.
    data_dir: SQLite files.  runtime_dir: ipc sockets.  metrics_host: where /metrics binds.
    symbols: traded instruments.  archive_foreign_state: a state file written for another exchange
    account is archived and replaced instead of refusing the start (see hean.statefile).
    position_monitor_enabled / position_monitor_check_interval /
    max_hold_seconds: the seed's position monitor settings.
    """

    model_config = SettingsConfigDict(
        env_prefix="HEAN_", env_nested_delimiter="__", frozen=True, extra="forbid", env_file=None
    )

    mode: Literal["paper", "live"] = "paper"
    dry_run: bool = True
    is_live: bool = False
    service: str = "hean"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    data_dir: Path = Path("/var/lib/hean")
    runtime_dir: Path = Path("/run/hean")
    metrics_host: str = "127.0.0.1"
    metrics_ports: MetricsPorts = MetricsPorts()
    symbols: StrList = ("BTCUSDT", "ETHUSDT")
    position_monitor_enabled: bool = True
    position_monitor_check_interval: PositiveFloat = 10.0
    max_hold_seconds: PositiveFloat = 3600.0
    archive_foreign_state: bool = False
    bus: BusSettings = BusSettings()
    bybit: BybitSettings = BybitSettings()
    ws: WsSettings = WsSettings()
    executor: ExecutorSettings = ExecutorSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    risk: RiskSettings = RiskSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    strategy: StrategySettings = StrategySettings()
    echo: EchoSettings = EchoSettings()

    @model_validator(mode="after")
    def _guards(self) -> HeanSettings:
        if self.mode == "live" or self.is_live:
            if self.dry_run:
                raise ValueError("live trading needs dry_run=false (HEAN_DRY_RUN) as well as is_live=true")
            if not self.is_live or self.mode != "live":
                raise ValueError("live trading needs both mode=live (HEAN_MODE) and is_live=true (HEAN_IS_LIVE)")
            signs = self.service not in UNSIGNED_SERVICES
            if signs and not (self.bybit.api_key.get_secret_value() and self.bybit.api_secret.get_secret_value()):
                raise ValueError("live mode needs your own Bybit API key: set HEAN_BYBIT__API_KEY and "
                                 "HEAN_BYBIT__API_SECRET (the simulator's key is never used live)")
        if bool(self.bybit.api_key.get_secret_value()) != bool(self.bybit.api_secret.get_secret_value()):
            raise ValueError("HEAN_BYBIT__API_KEY and HEAN_BYBIT__API_SECRET must be set together")
        for sym in self.symbols:
            if not sym.isalnum() or sym.upper() != sym:
                raise ValueError(f"symbols: {sym!r} is not an upper-case Bybit symbol like BTCUSDT")
        return self

    def metrics_port(self, service: str) -> int:
        """The configured /metrics port of `service` (0 for unknown names)."""
        return int(getattr(self.metrics_ports, service, 0))

    def credentials(self) -> tuple[str, str]:
        """(api_key, api_secret) for the exchange client: the configured pair, or in paper mode with
        none configured the simulator's well-known pair. Live mode never gets here without keys."""
        key, secret = self.bybit.api_key.get_secret_value(), self.bybit.api_secret.get_secret_value()
        if not key and not secret and self.mode == "paper":
            return SIM_API_KEY, SIM_API_SECRET
        return key, secret

    def secrets(self) -> list[str]:
        """Secret values the log redactor must never let through."""
        return [s for s in (self.bybit.api_key.get_secret_value(), self.bybit.api_secret.get_secret_value()) if s]


def _env_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return "HEAN_" + "__".join(p.upper() for p in parts) if parts else "HEAN_*"


def _one_line(exc: ValidationError, secrets: dict[str, str]) -> str:
    err = exc.errors(include_url=False)[0]
    loc = tuple(err.get("loc", ()))
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    name = _env_name(loc) if loc else "settings"
    value = err.get("input")
    shown = "" if not loc or isinstance(value, dict) or _looks_secret(loc) else f" (got {value!r})"
    # A secret pasted into the wrong variable is still a secret: say whose value it is, never show it.
    owner = next((n for n, v in secrets.items() if isinstance(value, str) and v in value), None)
    if shown and owner:
        shown = f" (got the value of {owner}, not shown)"
    extra = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return _redact(f"{name}: {msg}{shown}{extra}" if loc else f"{msg}{extra}", secrets)


def _looks_secret(loc: tuple[Any, ...]) -> bool:
    return any(k in str(p).lower() for p in loc for k in ("secret", "key", "password", "token"))


def _configured_secrets(*sources: dict[str, str | None]) -> dict[str, str]:
    """Values of secret-looking HEAN_ variables (environment or env file), by variable name."""
    found: dict[str, str] = {}
    for source in sources:
        for key, value in source.items():
            name = key.upper()
            if name.startswith("HEAN_") and value and len(value) >= 4 and _looks_secret((name,)):
                found.setdefault(name, value)
    return found


def _redact(text: str, secrets: dict[str, str]) -> str:
    for value in sorted(secrets.values(), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def env_file_path(env_file: str | Path | None = None) -> Path:
    """The env file `load_settings(env_file)` reads (it may not exist)."""
    explicit = env_file or os.environ.get("HEAN_ENV_FILE")
    return Path(explicit) if explicit else DEFAULT_ENV_FILE


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> HeanSettings:
    """Build the settings from the environment and an env file, or raise ConfigError.

    `env_file=None` uses `HEAN_ENV_FILE` or `/etc/hean/hean.env` when present; an explicitly named
    file that does not exist is an error (a typo must not silently run on defaults).  A name that
    is no setting, in the environment or in the file, is reported the same way.
    """
    explicit = env_file or os.environ.get("HEAN_ENV_FILE")
    path = env_file_path(env_file)
    if explicit and not path.is_file():
        raise ConfigError(f"env file {path} does not exist")
    env_files = (path,) if path.is_file() else ()
    file_values = _read_env_file(path) if env_files else {}
    secrets = _configured_secrets(dict(os.environ), file_values)
    unknown = _unknown_env_names(os.environ) + _unknown_env_names(file_values, in_file=True)
    if unknown:
        raise ConfigError(_redact(f"{unknown[0]}: not a HEAN setting (check the spelling)", secrets))
    try:
        return _build(env_files, with_credentials(overrides))
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, secrets)) from None
    except ValueError as exc:
        raise ConfigError(_redact(str(exc).splitlines()[0], secrets)) from None


def _read_env_file(path: Path) -> dict[str, str | None]:
    # The parser pydantic-settings itself uses, so both see the same names.
    from dotenv import dotenv_values
    return dict(dotenv_values(path))


def print_config_error(who: str, exc: ConfigError) -> None:
    """The one line an operator sees for bad configuration (stderr, no traceback)."""
    print(f"hean {who}: config error: {exc}", file=sys.stderr, flush=True)


def settings_or_exit(env_file: str | Path | None, who: str, **overrides: Any) -> HeanSettings:
    """Load settings for a command-line entry point; on any problem print one line and exit 78."""
    try:
        return load_settings(env_file, **overrides)
    except ConfigError as exc:
        print_config_error(who, exc)
        raise SystemExit(EX_CONFIG) from None


# Environment names read by components composed beside HEAN's processes (the simulator reads
# HEAN_SIM__*): not HEAN settings, and not typos either. The base settings know nothing more of them.
OTHER_COMPONENT_PREFIXES = ("HEAN_SIM__",)


def _unknown_env_names(environ: Any, in_file: bool = False) -> list[str]:
    """Names that are no setting: a typo must not silently fall back to a default.

    In the environment only HEAN_* names are ours; in an env file every line is meant for HEAN, so a
    name without the prefix is reported as written (not as the valid setting it would become).
    """
    unknown = []
    for key in sorted(environ):
        name = key.upper() if in_file else key
        if name == "HEAN_ENV_FILE" or (not in_file and not name.startswith("HEAN_")):
            continue
        if not in_file and name.startswith(OTHER_COMPONENT_PREFIXES):
            continue
        if not name.startswith("HEAN_"):
            unknown.append(key)
            continue
        model: Any = HeanSettings
        for part in name[len("HEAN_"):].lower().split("__"):
            fields = getattr(model, "model_fields", None)
            if fields is None or part not in fields:
                unknown.append(key)
                break
            model = fields[part].annotation
    return unknown


def _build(env_files: tuple[Path, ...], overrides: dict[str, Any]) -> HeanSettings:
    # HEAN_ENV_FILE selects the file; it is not itself a setting, and extra="forbid" would reject it.
    saved = os.environ.pop("HEAN_ENV_FILE", None)
    try:
        return HeanSettings(_env_file=env_files or None, **overrides)  # type: ignore[call-arg]
    finally:
        if saved is not None:
            os.environ["HEAN_ENV_FILE"] = saved
