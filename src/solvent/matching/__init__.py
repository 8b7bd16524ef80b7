"""The order-book kernel: one state machine, two implementations.

``compiled`` is ``solvent._book.OrderBook`` (Cython, built from ``ext/_book.pyx``);
``python`` is ``solvent.matching.twin.OrderBook``, the readable specification
(its module docstring documents every command, event and limit). The two are
held to identical outputs and identical exported state by
``tests/test_book_differential.py``. Constants live in
:mod:`solvent.matching.codes`; the bulk path's argument checks that both books
call, in :mod:`solvent.matching.bulk`.
"""

from __future__ import annotations

from typing import Any

BOOKS = ("compiled", "python")


def book_class(core: str) -> Any:
    """Return the OrderBook class of the named implementation (``compiled`` or ``python``)."""
    if core == "python":
        from solvent.matching.twin import OrderBook

        return OrderBook
    if core == "compiled":
        from solvent import _book

        return _book.OrderBook
    raise ValueError(f"unknown core {core!r}: choose one of {', '.join(BOOKS)}")


__all__ = ["BOOKS", "book_class"]
