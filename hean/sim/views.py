"""Bybit wire shapes (SPEC §2.4-2.8, §4.5) built from the simulator's records.

Every money/qty/time field is a string made from Decimal/int; ints and bools only
where Bybit sends them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hean.sim.envelope import fmt
from hean.sim.models import ZERO, Execution, Order, Position

if TYPE_CHECKING:
    from hean.sim.exchange import Exchange


def order_row(order: Order) -> dict[str, Any]:
    """The REST order object (§2.4)."""
    return {
        "orderId": order.order_id,
        "orderLinkId": order.order_link_id,
        "blockTradeId": "",
        "symbol": order.symbol,
        "price": fmt(order.price),
        "qty": fmt(order.qty),
        "side": order.side,
        "isLeverage": "",
        "positionIdx": 0,
        "orderStatus": order.status,
        "createType": "CreateByUser",
        "cancelType": order.cancel_type,
        "rejectReason": order.reject_reason,
        "avgPrice": fmt(order.avg_price),
        "leavesQty": fmt(order.leaves_qty),
        "leavesValue": fmt(order.leaves_qty * order.price),
        "cumExecQty": fmt(order.cum_qty),
        "cumExecValue": fmt(order.cum_value),
        "cumExecFee": fmt(order.cum_fee),
        "cumFeeDetail": {"USDT": fmt(order.cum_fee)} if order.cum_fee else {},
        "timeInForce": order.time_in_force,
        "orderType": order.order_type,
        "stopOrderType": "",
        "orderIv": "",
        "triggerPrice": "",
        "takeProfit": "",
        "stopLoss": "",
        "tpslMode": "",
        "ocoTriggerBy": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        "triggerDirection": 0,
        "triggerBy": "",
        "lastPriceOnCreated": fmt(order.last_price_on_created),
        "reduceOnly": order.reduce_only,
        "closeOnTrigger": order.close_on_trigger,
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "createdTime": str(order.created_ms),
        "updatedTime": str(order.updated_ms),
    }


def history_row(order: Order) -> dict[str, Any]:
    """Order history adds a few fields to the realtime shape (§2.5)."""
    row = order_row(order)
    row.update({"slippageToleranceType": "UNKNOWN", "slippageTolerance": "0", "extraFees": "",
                "rpiTakerAccess": False, "rpiMatchedQty": "0"})
    return row


def ws_order(order: Order) -> dict[str, Any]:
    row = order_row(order)
    row.update({"category": "linear", "closedPnl": fmt(order.closed_pnl), "feeCurrency": ""})
    return row


def execution_row(e: Execution) -> dict[str, Any]:
    """The REST execution item (§2.6)."""
    return {
        "symbol": e.symbol,
        "orderId": e.order_id,
        "orderLinkId": e.order_link_id,
        "side": e.side,
        "orderPrice": fmt(e.order_price),
        "orderQty": fmt(e.order_qty),
        "leavesQty": fmt(e.leaves_qty),
        "createType": "CreateByUser" if e.exec_type == "Trade" else "",
        "orderType": e.order_type,
        "stopOrderType": "UNKNOWN",
        "execFee": fmt(e.exec_fee),
        "execId": e.exec_id,
        "execPrice": fmt(e.exec_price),
        "execQty": fmt(e.exec_qty),
        "execType": e.exec_type,
        "execValue": fmt(e.exec_value),
        "execTime": str(e.exec_time_ms),
        "feeCurrency": "USDT",
        "isMaker": e.is_maker,
        "feeRate": fmt(e.fee_rate),
        "tradeIv": "",
        "markIv": "",
        "markPrice": fmt(e.mark_price),
        "indexPrice": fmt(e.mark_price),
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": fmt(e.closed_size),
        "seq": e.seq,
        "extraFees": "",
    }


def ws_execution(e: Execution) -> dict[str, Any]:
    row = execution_row(e)
    row.update({"category": "linear", "isLeverage": "0", "execPnl": fmt(e.exec_pnl), "marketUnit": ""})
    return row


def ws_fast_execution(e: Execution) -> dict[str, Any]:
    """The short execution.fast item (fast-execution.mdx); a maker fill's orderLinkId is always ""."""
    return {
        "category": "linear", "symbol": e.symbol, "orderId": e.order_id, "isMaker": e.is_maker,
        "orderLinkId": "" if e.is_maker else e.order_link_id, "execId": e.exec_id,
        "execPrice": fmt(e.exec_price), "execQty": fmt(e.exec_qty), "side": e.side,
        "execTime": str(e.exec_time_ms), "seq": e.seq,
    }


def position_row(ex: Exchange, pos: Position) -> dict[str, Any]:
    """The REST position row (§2.7); size is positive, direction is in side."""
    size = abs(pos.size)
    mark = ex.last(pos.symbol)
    value = size * pos.avg_price
    im = size * mark / ex.leverage
    return {
        "positionIdx": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": pos.symbol,
        "side": pos.side,
        "size": fmt(size),
        "avgPrice": fmt(pos.avg_price),
        "positionValue": fmt(value),
        "tradeMode": 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": fmt(ex.leverage),
        "markPrice": fmt(mark),
        "liqPrice": "",
        "bustPrice": "",
        "positionIM": fmt(im),
        "positionMM": fmt(im / 20),
        "positionBalance": fmt(im),
        "tpslMode": "Full",
        "takeProfit": "0",
        "stopLoss": "0",
        "trailingStop": "0",
        "sessionAvgPrice": "",
        "breakEvenPrice": fmt(pos.avg_price),
        "unrealisedPnl": fmt(ex.unrealised(pos)),
        "curRealisedPnl": fmt(pos.cur_realised),
        "cumRealisedPnl": fmt(pos.cum_realised),
        "adlRankIndicator": 2 if size else 0,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "createdTime": str(pos.created_ms),
        "updatedTime": str(pos.updated_ms),
        "openTime": pos.open_ms if ex.report_open_time else 0,
        "seq": pos.seq,
    }


def ws_position(ex: Exchange, pos: Position) -> dict[str, Any]:
    """WS position item: REST row with ``entryPrice`` instead of ``avgPrice`` (§4.5)."""
    row = position_row(ex, pos)
    row["entryPrice"] = row.pop("avgPrice")
    row["category"] = "linear"
    return row


def wallet_account(ex: Exchange) -> dict[str, Any]:
    """The UNIFIED account object with its USDT coin row (§2.8)."""
    upl = sum((ex.unrealised(p) for p in ex.positions.values()), ZERO)
    equity = ex.wallet_balance + upl
    position_im = ex.position_im()
    order_im = ex.order_im()
    im = position_im + order_im
    mm = position_im / 20
    available = equity - im
    coin = {
        "coin": "USDT", "equity": fmt(equity), "usdValue": fmt(equity),
        "walletBalance": fmt(ex.wallet_balance), "free": "", "locked": "0", "spotHedgingQty": "0",
        "borrowAmount": "0", "availableToWithdraw": "", "availableToBorrow": "", "accruedInterest": "0",
        "totalOrderIM": fmt(order_im), "totalPositionIM": fmt(position_im), "totalPositionMM": fmt(mm),
        "unrealisedPnl": fmt(upl), "cumRealisedPnl": fmt(ex.cum_realised), "bonus": "0",
        "marginCollateral": True, "collateralSwitch": True, "spotBorrow": "0",
    }
    rate = (lambda x: fmt((x / equity).quantize(ZERO.scaleb(-4))) if equity > 0 else "0")
    return {
        "accountType": "UNIFIED", "totalEquity": fmt(equity), "totalWalletBalance": fmt(ex.wallet_balance),
        "totalMarginBalance": fmt(equity), "totalAvailableBalance": fmt(available),
        "totalPerpUPL": fmt(upl), "totalInitialMargin": fmt(im), "totalMaintenanceMargin": fmt(mm),
        "accountIMRate": rate(im), "accountMMRate": rate(mm), "accountLTV": "0",
        "totalInitialMarginByMp": fmt(im), "totalMaintenanceMarginByMp": fmt(mm),
        "accountIMRateByMp": rate(im), "accountMMRateByMp": rate(mm), "coin": [coin],
    }
