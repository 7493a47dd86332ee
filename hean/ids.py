"""Identifiers shared by processes: intent ids and the Bybit orderLinkIds derived from them.

Pure functions, so the executor (which sends the orderLinkId), the reconciler
(which recognises HEAN's orders among the account's) and the strategy runner
(which matches fills to its intents) agree without importing each other.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

# Bybit: orderLinkId <= 36 chars of [A-Za-z0-9_-] (SPEC §2.1).
LINK_ID_MAX = 36
_LINK_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
INTENT_PREFIX = "h-"          # orders placed by the executor for an intent
WATCHDOG_PREFIX = "hwd-"      # force-close orders placed by the watchdog
HEAN_PREFIXES = (INTENT_PREFIX, WATCHDOG_PREFIX)
INTENT_ID_MAX = LINK_ID_MAX - len(INTENT_PREFIX)


def new_intent_id(strategy_id: str) -> str:
    """A fresh intent id: short strategy tag, time and randomness; valid inside an orderLinkId."""
    tag = re.sub(r"[^A-Za-z0-9]", "", strategy_id)[:8] or "x"
    return f"{tag}-{time.time_ns() // 1_000_000:x}-{secrets.token_hex(4)}"


def valid_intent_id(intent_id: object) -> bool:
    return isinstance(intent_id, str) and 0 < len(intent_id) and bool(_LINK_CHARS.match(intent_id))


def order_link_id(intent_id: str) -> str:
    """The orderLinkId for an intent: the same intent always maps to the same id.

    Short ids are used as they are (readable in Bybit's UI); long ones are hashed to fit.
    """
    if not valid_intent_id(intent_id):
        raise ValueError(f"intent id {intent_id!r} must be non-empty [A-Za-z0-9_-]")
    if len(intent_id) <= INTENT_ID_MAX:
        return INTENT_PREFIX + intent_id
    digest = hashlib.blake2b(intent_id.encode(), digest_size=16).hexdigest()
    return INTENT_PREFIX + "x" + digest[: INTENT_ID_MAX - 1]


def is_hean_link_id(link_id: str | None) -> bool:
    """True for orders HEAN created (intent orders and watchdog closes)."""
    return bool(link_id) and str(link_id).startswith(HEAN_PREFIXES)
