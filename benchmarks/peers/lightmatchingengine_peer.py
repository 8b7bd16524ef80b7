"""Adapter: ``lightmatchingengine`` (pure Python; PyPI ``lightmatchingengine``).

It assigns its own integer ids; a market order is price 0, whose remainder
would rest at 0, so it is cancelled (as is an IOC order's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from . import AMEND, BUY, CANCEL, IOC, LIMIT, MARKET, Row

SYMBOL = "BTC-KRW"


class LightMatchingEngine:
    name = "lightmatchingengine"

    def __init__(self) -> None:
        import lightmatchingengine.lightmatchingengine as lme

        self.version = version("lightmatchingengine")
        self.buy, self.sell = lme.Side.BUY, lme.Side.SELL
        self.engine = lme.LightMatchingEngine()
        self.orders: dict[int, Any] = {}

    def apply(self, rows: Sequence[Row]) -> int:
        add, cancel = self.engine.add_order, self.engine.cancel_order
        orders, buy, sell = self.orders, self.buy, self.sell
        for kind, oid, side, price, qty in rows:
            if kind == LIMIT:
                order, _ = add(SYMBOL, price, qty, buy if side == BUY else sell)
                orders[oid] = order
            elif kind in (CANCEL, AMEND):
                # it keeps filled orders in its id map: only cancel what still rests
                order = orders.pop(oid, None)
                if order is not None and order.leaves_qty > 0:
                    cancel(order.order_id, SYMBOL)
                    if kind == AMEND:
                        order, _ = add(SYMBOL, price, qty, buy if side == BUY else sell)
                        orders[oid] = order
            elif kind in (IOC, MARKET):
                order, _ = add(SYMBOL, price if kind == IOC else 0, qty,
                               buy if side == BUY else sell)
                if order.leaves_qty > 0:
                    cancel(order.order_id, SYMBOL)
        return len(rows)


def make() -> Callable[[], LightMatchingEngine]:
    LightMatchingEngine()
    return LightMatchingEngine
