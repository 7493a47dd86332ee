"""The account endpoints through pybit, a client nobody here wrote (query-api, account info, transaction log)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from hean.sim import SimServer
from tests.sim.conftest import KEY, SECRET
from tests.sim.pybit_harness import pybit_http


@pytest.fixture
async def http(client: Any, sim: SimServer) -> AsyncIterator[HTTP]:
    session = pybit_http(sim, KEY, SECRET)
    try:
        yield session
    finally:
        session.client.close()


async def test_key_and_account_info_through_pybit(http: HTTP) -> None:
    info = (await asyncio.to_thread(http.get_api_key_information))["result"]
    assert info["userID"] == 1 and info["readOnly"] == 0 and info["secret"] == ""
    assert info["permissions"]["ContractTrade"] == ["Order", "Position"]
    account = (await asyncio.to_thread(http.get_account_info))["result"]
    assert account["unifiedMarginStatus"] == 5 and account["marginMode"] == "REGULAR_MARGIN"


async def test_transaction_log_pages_through_pybit(http: HTTP, client: Any) -> None:
    for i in range(7):
        await client.control("wallet", {"amount": str(i + 1)})

    def read_all() -> list[list[dict[str, Any]]]:
        pages, cursor = [], ""
        while len(pages) < 10:
            params = {"accountType": "UNIFIED", "limit": 3} | ({"cursor": cursor} if cursor else {})
            result = http.get_transaction_log(**params)["result"]
            pages.append(result["list"])
            cursor = result["nextPageCursor"]
            if not cursor:
                break
        return pages

    pages = await asyncio.to_thread(read_all)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [row["change"] for page in pages for row in page] == ["7", "6", "5", "4", "3", "2", "1"]


async def test_expired_key_raises_33004_in_pybit(http: HTTP, client: Any) -> None:
    await client.control("account", {"expired_at": "2001-01-01T00:00:00Z"})
    with pytest.raises(InvalidRequestError) as err:
        await asyncio.to_thread(http.get_api_key_information)
    assert err.value.status_code == 33004
