"""Adapter: ``limit-order-book`` (C++ order book behind ctypes; PyPI ``limit-order-book``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version

from . import AMEND, BUY, CANCEL, IOC, LIMIT, MARKET, Row


class LobCpp:
    name = "limit-order-book"

    def __init__(self) -> None:
        from limit_order_book import LimitOrderBook

        self.version = version("limit-order-book")
        self.book = LimitOrderBook()

    def apply(self, rows: Sequence[Row]) -> int:
        book = self.book
        limit_buy, limit_sell = book.limit_buy, book.limit_sell
        has, cancel = book.has, book.cancel
        for kind, oid, side, price, qty in rows:
            if kind == LIMIT:
                (limit_buy if side == BUY else limit_sell)(oid, qty, price)
            elif kind == CANCEL:
                if has(oid):
                    cancel(oid)
            elif kind == AMEND:
                if has(oid):
                    cancel(oid)
                    (limit_buy if side == BUY else limit_sell)(oid, qty, price)
            elif kind == IOC:
                (limit_buy if side == BUY else limit_sell)(oid, qty, price)
                if has(oid):
                    cancel(oid)
            elif kind == MARKET:
                (book.market_buy if side == BUY else book.market_sell)(oid, qty)
        return len(rows)


def make() -> Callable[[], LobCpp]:
    LobCpp()  # fails here if the package is missing or does not load
    return LobCpp
