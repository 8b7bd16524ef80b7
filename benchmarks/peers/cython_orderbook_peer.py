"""Adapter: ``cython-orderbook`` (Cython; PyPI ``cython-orderbook``).

Its orders get their own string ids; the adapter keeps solvent id -> its Order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from . import AMEND, BUY, CANCEL, IOC, LIMIT, MARKET, Row


class CythonOrderbook:
    name = "cython-orderbook"

    def __init__(self) -> None:
        import cython_orderbook as cob

        self.version = version("cython-orderbook")
        self.cob = cob
        self.book = cob.OrderBook()
        self.orders: dict[int, Any] = {}

    def apply(self, rows: Sequence[Row]) -> int:
        cob = self.cob
        book, orders, resting = self.book, self.orders, self.book.orders
        order_cls, bid, ask = cob.Order, cob.OrderSide.BID, cob.OrderSide.ASK
        for kind, oid, side, price, qty in rows:
            if kind == LIMIT:
                o = order_cls(bid if side == BUY else ask, qty, price)
                book.add_limit_order(o)
                orders[oid] = o
            elif kind in (CANCEL, AMEND):
                o = orders.pop(oid, None)
                if o is not None and o.order_id in resting:
                    book.cancel_order(o.order_id)
                    if kind == AMEND:
                        o = order_cls(bid if side == BUY else ask, qty, price)
                        book.add_limit_order(o)
                        orders[oid] = o
            elif kind == IOC:
                o = order_cls(bid if side == BUY else ask, qty, price)
                book.add_limit_order(o)
                if o.order_id in resting:
                    book.cancel_order(o.order_id)
            elif kind == MARKET:
                book.add_market_order(order_cls(bid if side == BUY else ask, qty))
        return len(rows)


def make() -> Callable[[], CythonOrderbook]:
    CythonOrderbook()
    return CythonOrderbook
