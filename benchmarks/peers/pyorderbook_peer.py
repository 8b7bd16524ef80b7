"""Adapter: ``pyorderbook`` (pure Python; PyPI ``pyorderbook``).

It has no market orders: a market order is a limit order at an extreme price
whose remainder is cancelled. Its orders carry uuid ids; the adapter keeps
solvent id -> its Order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from . import AMEND, BUY, CANCEL, LIMIT, MARKET, Row

SYMBOL = "BTC-KRW"
FAR_PRICE = 10**12


class PyOrderbook:
    name = "pyorderbook"

    def __init__(self) -> None:
        import pyorderbook

        self.version = version("pyorderbook")
        self.pob = pyorderbook
        self.book = pyorderbook.Book()
        self.orders: dict[int, Any] = {}

    def apply(self, rows: Sequence[Row]) -> int:
        book, orders, resting = self.book, self.orders, self.book.order_map
        bid, ask = self.pob.bid, self.pob.ask
        match, cancel = book.match, book.cancel
        for kind, oid, side, price, qty in rows:
            if kind == LIMIT:
                o = (bid if side == BUY else ask)(SYMBOL, price, qty)
                match(o)
                orders[oid] = o
            elif kind in (CANCEL, AMEND):
                o = orders.pop(oid, None)
                if o is not None and o.id in resting:
                    cancel(o)
                    if kind == AMEND:
                        o = (bid if side == BUY else ask)(SYMBOL, price, qty)
                        match(o)
                        orders[oid] = o
            else:  # IOC, or MARKET as a limit order at the far price; the rest is cancelled
                if kind == MARKET:
                    price = FAR_PRICE if side == BUY else 1
                o = (bid if side == BUY else ask)(SYMBOL, price, qty)
                match(o)
                if o.id in resting:
                    cancel(o)
        return len(rows)


def make() -> Callable[[], PyOrderbook]:
    PyOrderbook()
    return PyOrderbook
