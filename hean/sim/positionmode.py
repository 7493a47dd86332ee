"""Position mode per symbol: one-way (positionIdx 0) or hedge (1 Buy side, 2 Sell side).

Bybit reports the mode only through `positionIdx` (position.mdx) and changes it with
`POST /v5/position/switch-mode` (position-mode.mdx: mode 0 merged single, 3 both sides; a
symbol setting beats the coin's). The simulator nets one-way positions only, so a hedge
symbol shows two rows and refuses orders the way Bybit refuses positionIdx 0 there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hean.sim.envelope import SimError, param_error
from hean.sim.validate import as_str, require_category

if TYPE_CHECKING:
    from hean.sim.exchange import Exchange

MODE_NOT_MODIFIED = 110025
HAS_POSITION = 110024
HAS_OPEN_ORDERS = 110028
_FLAT_FIELDS = {"size": "0", "side": "", "avgPrice": "0", "positionValue": "0", "positionIM": "0",
                "positionMM": "0", "positionBalance": "0", "unrealisedPnl": "0", "curRealisedPnl": "0",
                "breakEvenPrice": "0", "liqPrice": "", "bustPrice": "", "adlRankIndicator": 0}


def hedge_rows(rows: list[dict[str, Any]], hedge: set[str], by_symbol: bool) -> list[dict[str, Any]]:
    """Rows of hedge symbols as Bybit shows them: by symbol both sides (the empty one flat),
    by settleCoin only the non-empty sides. One-way rows pass unchanged."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if row.get("symbol") not in hedge:
            out.append(row)
            continue
        for idx, side in ((1, "Buy"), (2, "Sell")):
            if row.get("side") == side:
                out.append(dict(row, positionIdx=idx))
            elif by_symbol:
                flat = dict(row, positionIdx=idx, **_FLAT_FIELDS)
                if "openTime" in flat:
                    flat["openTime"] = 0
                out.append(flat)
    return out


def busy_reason(ex: Exchange, symbol: str) -> int | None:
    """Bybit's retCode for refusing a mode switch on ``symbol`` (None: free to switch)."""
    if ex.positions[symbol].size != 0:
        return HAS_POSITION
    if any(o.is_open and o.symbol == symbol for o in ex.orders.values()):
        return HAS_OPEN_ORDERS
    return None


def switch_mode(ex: Exchange, hedge: set[str], params: dict[str, Any]) -> dict[str, Any]:
    """`POST /v5/position/switch-mode`: by symbol (errors when busy or unchanged) or by coin
    (switches every free symbol, leaves busy ones as they are)."""
    require_category(params)
    symbol, coin = as_str(params, "symbol"), as_str(params, "coin")
    mode = params.get("mode")
    if isinstance(mode, bool) or mode not in (0, 3, "0", "3"):
        raise param_error("params error: mode invalid")
    want_hedge = int(mode) == 3
    if symbol:
        if symbol not in ex.instruments:
            raise param_error(f"params error: symbol invalid: {symbol}")
        if (symbol in hedge) == want_hedge:
            raise SimError(MODE_NOT_MODIFIED, "Position mode has not been modified.")
        reason = busy_reason(ex, symbol)
        if reason == HAS_POSITION:
            raise SimError(HAS_POSITION, "You have an existing position, so the position mode cannot be switched.")
        if reason == HAS_OPEN_ORDERS:
            raise SimError(HAS_OPEN_ORDERS,
                           "You have existing open orders, so the position mode cannot be switched.")
        targets = [symbol]
    elif coin:
        if coin != "USDT":
            raise param_error(f"params error: coin invalid: {coin}")
        targets = [s for s in ex.instruments if busy_reason(ex, s) is None]
    else:
        raise param_error("params error: symbol or coin is required")
    for target in targets:
        (hedge.add if want_hedge else hedge.discard)(target)
    return {}
