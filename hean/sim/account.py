"""The account behind the simulator's one API key: key info, account info, position mode.

`hean preflight` and the state-file binding ask Bybit whose key this is and what it may do
(`/v5/user/query-api`, `/v5/account/info`); a test changes each property through
`POST /sim/account` to make one pre-trade check fail. The guards below make the key's
properties bite on the other endpoints the way Bybit does (a read-only key cannot
place orders, an expired key answers 33004, a hedge-mode account refuses positionIdx 0).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hean.sim.envelope import SimError, param_error
from hean.sim.translog import TransactionLog

if TYPE_CHECKING:
    from hean.sim.exchange import Exchange
    from hean.sim.handlers import Handler

DAY_MS = 24 * 3600 * 1000
UNBOUND_KEY_LIFETIME_MS = 90 * DAY_MS   # SPEC §7.4: keys without an IP binding expire after 90 days
NO_EXPIRY = "1970-01-01T00:00:00Z"      # what query-api shows for an IP-bound key (apikey-info.mdx)
NO_EXPIRY_DEADLINE_DAY = -2
PERMISSION_DENIED = 10005
KEY_EXPIRED = 33004
PERMISSION_KINDS = ("ContractTrade", "Spot", "Wallet", "Options", "Derivatives", "CopyTrading",
                    "BlockTrade", "Exchange", "NFT", "Affiliate", "Earn")


def default_permissions() -> dict[str, list[str]]:
    """A trading key: contract orders and positions, nothing that moves money out."""
    perms: dict[str, list[str]] = {kind: [] for kind in PERMISSION_KINDS}
    perms["ContractTrade"] = ["Order", "Position"]
    perms["Derivatives"] = ["DerivativesTrade"]
    return perms


def iso_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> int:
    """ISO-8601 UTC (``2026-01-01T00:00:00Z``) -> ms; ValueError otherwise."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


@dataclass
class Account:
    """Mutable account/key state of one venue (the control API edits it)."""

    uid: int
    created_ms: int
    initial_balance: Any
    read_only: bool = False
    permissions: dict[str, list[str]] = field(default_factory=default_permissions)
    ips: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    expired_at_ms: int | None = None     # explicit expiry (None: derived from the IP binding)
    deadline_day: int | None = None      # explicit remaining days (None: derived)
    uta: int = 1
    position_mode: str = "oneway"
    translog: TransactionLog = field(init=False)

    def __post_init__(self) -> None:
        self.translog = TransactionLog(self.initial_balance)

    @property
    def ip_bound(self) -> bool:
        return "*" not in self.ips

    def expiry_ms(self) -> int | None:
        """When the key stops working; None for a key that does not expire."""
        if self.expired_at_ms is not None:
            return self.expired_at_ms
        return None if self.ip_bound else self.created_ms + UNBOUND_KEY_LIFETIME_MS

    def expired(self, now_ms: int) -> bool:
        expiry = self.expiry_ms()
        return expiry is not None and expiry <= now_ms

    def can_trade(self) -> bool:
        return not self.read_only and "Order" in self.permissions.get("ContractTrade", [])

    def key_info(self, api_key: str, now_ms: int) -> dict[str, Any]:
        """The `query-api` result (apikey-info.mdx field list; secret always "")."""
        expiry = self.expiry_ms()
        if self.deadline_day is not None:
            deadline = self.deadline_day
        elif expiry is None:
            deadline = NO_EXPIRY_DEADLINE_DAY
        else:
            deadline = max(0, -(-(expiry - now_ms) // DAY_MS))
        return {
            "id": str(1000 + self.uid), "note": "hean-sim", "apiKey": api_key,
            "readOnly": 1 if self.read_only else 0, "secret": "",
            "permissions": {k: list(v) for k, v in self.permissions.items()},
            "ips": list(self.ips), "type": 1, "deadlineDay": deadline,
            "expiredAt": NO_EXPIRY if expiry is None else iso_utc(expiry),
            "createdAt": iso_utc(self.created_ms), "unified": 0, "uta": self.uta,
            "userID": self.uid, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
            "affiliateID": 0, "rsaPublicKey": "", "isMaster": True, "parentUid": "0",
            "kycLevel": "LEVEL_1", "kycRegion": "",
        }

    def account_info(self) -> dict[str, Any]:
        """The `account/info` result (account-info.mdx; 5 = UTA 2.0, 1 = classic)."""
        return {
            "unifiedMarginStatus": 5 if self.uta else 1, "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False, "spotHedgingStatus": "OFF", "updatedTime": str(self.created_ms),
            "dcpStatus": "OFF", "timeWindow": 0, "smpGroup": 0,
        }


_ACCOUNTS: weakref.WeakKeyDictionary[Exchange, Account] = weakref.WeakKeyDictionary()
_API_KEYS: weakref.WeakKeyDictionary[Exchange, str] = weakref.WeakKeyDictionary()


def attach(ex: Exchange, *, uid: int, api_key: str, initial_balance: Any, now_ms: int) -> Account:
    """Give ``ex`` its account (the server calls this once, with its settings)."""
    account = Account(uid=uid, created_ms=now_ms, initial_balance=initial_balance)
    _ACCOUNTS[ex] = account
    _API_KEYS[ex] = api_key
    return account


def account_of(ex: Exchange) -> Account:
    """The account of ``ex``; a default one when nothing attached (unit use of handlers)."""
    account = _ACCOUNTS.get(ex)
    if account is None:
        account = attach(ex, uid=1, api_key="", initial_balance=ex.wallet_balance, now_ms=ex.clock())
    return account


# ---- endpoints -------------------------------------------------------------
def query_api(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return account_of(ex).key_info(_API_KEYS.get(ex, ""), now_ms)


def account_info(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return account_of(ex).account_info()


def transaction_log(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    account = account_of(ex)
    return account.translog.query(ex, params, now_ms, account.uid)


# ---- guards on the other endpoints -----------------------------------------
def _guard(path: str, handler: Handler, *, write: bool) -> Handler:
    def guarded(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        account = account_of(ex)
        if account.expired(now_ms):
            raise SimError(KEY_EXPIRED, "Your api key has expired")
        if write and path.startswith("/v5/order/") and not account.can_trade():
            raise SimError(PERMISSION_DENIED, "Permission denied, please check your API key permissions.")
        if path == "/v5/order/create" and account.position_mode == "hedge":
            # The sim nets one-way positions only: in hedge mode every order is refused
            # the way Bybit refuses positionIdx 0 there.
            raise param_error("params error: position idx not match position mode")
        result = handler(ex, params, now_ms)
        if path == "/v5/position/list" and account.position_mode == "hedge":
            result = dict(result, list=hedge_rows(result.get("list", []), bool(params.get("symbol"))))
        return result

    guarded.__name__ = getattr(handler, "__name__", "handler")
    return guarded


_FLAT_FIELDS = {"size": "0", "side": "", "avgPrice": "0", "positionValue": "0", "positionIM": "0",
                "positionMM": "0", "positionBalance": "0", "unrealisedPnl": "0", "curRealisedPnl": "0",
                "breakEvenPrice": "0", "liqPrice": "", "bustPrice": "", "adlRankIndicator": 0}


def hedge_rows(rows: list[dict[str, Any]], by_symbol: bool) -> list[dict[str, Any]]:
    """One-way rows as a hedge-mode account shows them: positionIdx 1 (Buy side), 2 (Sell side).

    By symbol both sides come back, the empty one flat; by settleCoin only non-empty sides.
    """
    out: list[dict[str, Any]] = []
    for row in rows:
        for idx, side in ((1, "Buy"), (2, "Sell")):
            if row.get("side") == side:
                out.append(dict(row, positionIdx=idx))
            elif by_symbol:
                flat = dict(row, positionIdx=idx, **_FLAT_FIELDS)
                if "openTime" in flat:
                    flat["openTime"] = 0
                out.append(flat)
    return out


def install(private_get: dict[str, Handler], private_post: dict[str, Handler]) -> None:
    """Register the account endpoints and wrap every private handler in the key guards."""
    private_get.update({"/v5/user/query-api": query_api, "/v5/account/info": account_info,
                        "/v5/account/transaction-log": transaction_log})
    for path, handler in list(private_get.items()):
        private_get[path] = _guard(path, handler, write=False)
    for path, handler in list(private_post.items()):
        private_post[path] = _guard(path, handler, write=True)


# ---- control: POST /sim/account --------------------------------------------
def _want(body: dict[str, Any], name: str, kinds: type | tuple[type, ...]) -> Any:
    value = body[name]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ValueError(f"{name} has the wrong type")
    if not isinstance(value, kinds):
        raise ValueError(f"{name} has the wrong type")
    return value


def configure(ex: Exchange, body: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Apply a `POST /sim/account` body; ValueError (-> HTTP 400) on a bad field.

    Fields (all optional): read_only, permissions {kind: [..]} (replaces the given kinds),
    ips [..] ("*" = unbound), expired_at ISO | null, deadline_day int | null, uta 0|1,
    position_mode "oneway"|"hedge", uid int > 0.
    """
    account = account_of(ex)
    unknown = set(body) - {"read_only", "permissions", "ips", "expired_at", "deadline_day", "uta",
                           "position_mode", "uid"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    account.translog.sync(ex, account.uid)   # rows so far keep the uid they were made under
    if "read_only" in body:
        account.read_only = _want(body, "read_only", bool)
    if "permissions" in body:
        perms = _want(body, "permissions", dict)
        if not all(isinstance(v, list) and all(isinstance(p, str) for p in v) for v in perms.values()):
            raise ValueError("permissions must map a kind to a list of strings")
        account.permissions.update({str(k): list(v) for k, v in perms.items()})
    if "ips" in body:
        ips = _want(body, "ips", list)
        if not ips or not all(isinstance(ip, str) and ip for ip in ips):
            raise ValueError("ips must be a non-empty list of strings")
        account.ips = list(ips)
    if "expired_at" in body:
        text = body["expired_at"]
        try:
            account.expired_at_ms = None if text is None else parse_iso(str(text))
        except ValueError:
            raise ValueError("expired_at must be an ISO-8601 UTC time or null") from None
    if "deadline_day" in body:
        account.deadline_day = None if body["deadline_day"] is None else _want(body, "deadline_day", int)
    if "uta" in body:
        if _want(body, "uta", int) not in (0, 1):
            raise ValueError("uta must be 0 or 1")
        account.uta = body["uta"]
    if "uid" in body:
        if _want(body, "uid", int) <= 0:
            raise ValueError("uid must be a positive int")
        account.uid = body["uid"]
    if "position_mode" in body:
        mode = body["position_mode"]
        if mode not in ("oneway", "hedge"):
            raise ValueError("position_mode must be oneway or hedge")
        busy = any(p.size != 0 for p in ex.positions.values()) or any(o.is_open for o in ex.orders.values())
        if mode != account.position_mode and busy:
            # Bybit refuses the switch with positions (110024) or open orders (110028).
            raise ValueError("cannot switch position mode with open positions or orders")
        account.position_mode = mode
    return dict(account.key_info(_API_KEYS.get(ex, ""), now_ms), position_mode=account.position_mode)


def record_transfer(ex: Exchange, amount: Any, now_ms: int) -> dict[str, Any]:
    """Log a wallet credit/debit; the caller moves the wallet right after (same loop step)."""
    account = account_of(ex)
    return account.translog.transfer(ex, account.uid, amount, now_ms)
