"""Which exchange account this process trades: base URL plus the UID behind the API key.

Every state file (executor journal, reconciler ledger, risk snapshot) is bound to one
account (`hean.statefile`): a ledger of the simulator's fills must never be read as the
live account's history, and a risk base of 1,000 USDT must never judge a 10,000 USDT
account. The UID comes from Bybit's API-key information endpoint (`GET
/v5/user/query-api`, field `userID`), which any key may call whatever its permissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hean.exchange.bybit.errors import ExchangeUnavailable, Outcome

if TYPE_CHECKING:
    from hean.exchange.bybit.rest import BybitRestClient

PATH_API_KEY_INFO = "/v5/user/query-api"


@dataclass(frozen=True)
class AccountIdentity:
    """The account a state file belongs to."""

    base_url: str
    uid: str

    def label(self) -> str:
        return f"uid {self.uid} at {self.base_url}"


async def api_key_info(client: BybitRestClient) -> dict[str, Any]:
    """The raw `query-api` result; ExchangeUnavailable when the exchange could not answer."""
    resp = await client.call("GET", PATH_API_KEY_INFO, {})
    if resp.outcome is not Outcome.OK:
        raise ExchangeUnavailable(
            f"{PATH_API_KEY_INFO}: {resp.outcome.value} retCode={resp.ret_code} {resp.error or resp.ret_msg}")
    return dict(resp.result)


async def fetch_identity(client: BybitRestClient) -> AccountIdentity:
    """Ask the exchange whose key this is."""
    info = await api_key_info(client)
    uid = info.get("userID")
    if isinstance(uid, bool) or not isinstance(uid, (int, str)) or str(uid).strip() in ("", "0"):
        raise ExchangeUnavailable(f"{PATH_API_KEY_INFO}: no userID in the answer")
    return AccountIdentity(client.base_url, str(uid).strip())
