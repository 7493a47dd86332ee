"""Load strategies from `settings.strategy.paths` (`package.module:Class?key=value&...`).

Any bad path fails the whole start-up with one ConfigError line naming
HEAN_STRATEGY__PATHS: a trader who configured three strategies expects three
to run, and a silently missing one is worse than a loud refusal to start.
"""

from __future__ import annotations

import importlib
import re
from urllib.parse import parse_qsl

from hean.config import ConfigError
from hean.strategy.api import Strategy

_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _bad(path: str, why: str) -> ConfigError:
    return ConfigError(f"HEAN_STRATEGY__PATHS: {path!r} {why}")


def load_one(path: str) -> Strategy:
    """Import, instantiate and configure one strategy; raise ConfigError on any problem."""
    target, _, query = path.partition("?")
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise _bad(path, "is not of the form package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _bad(path, f"cannot be imported ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a user module that fails at import is a config problem
        raise _bad(path, f"failed while importing: {exc!r}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise _bad(path, "does not name a subclass of hean.strategy.api.Strategy")
    try:
        strategy = cls()
        strategy.configure(dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))))
    except Exception as exc:  # noqa: BLE001 - user code; report it as a start-up error
        raise _bad(path, f"could not be set up: {exc}") from None
    strategy.strategy_id = strategy.strategy_id or cls.__name__
    if not _ID.match(strategy.strategy_id):
        raise _bad(path, f"has strategy_id {strategy.strategy_id!r}; use 1-32 of [A-Za-z0-9_-]")
    return strategy


def load_all(paths: tuple[str, ...]) -> list[Strategy]:
    if not paths:
        raise ConfigError("HEAN_STRATEGY__PATHS: no strategy configured")
    strategies = [load_one(p) for p in paths]
    seen: set[str] = set()
    for s in strategies:
        if s.strategy_id in seen:
            raise ConfigError(f"HEAN_STRATEGY__PATHS: strategy_id {s.strategy_id!r} is used twice; add ?id=...")
        seen.add(s.strategy_id)
    return strategies
