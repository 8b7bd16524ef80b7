"""Type stub of the compiled order book (``ext/_book.pyx``), mirror of ``matching/twin.py``."""

from array import array
from collections.abc import MutableSequence, Sequence
from typing import Any, final

from typing_extensions import Buffer

Event = tuple[int, int, int, int, int, int, int]
STATE_FORMAT: str

@final
class OrderBook:
    """The resting orders of one market, matched by price-time priority."""

    def __init__(self, max_orders: int = ...) -> None: ...
    def submit(
        self,
        order_id: int,
        account: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        *,
        kind: int = 0,
        tif: int = 0,
        post_only: bool = False,
        stp: int = 0,
        quote_budget: int = 0,
    ) -> tuple[int, list[Event]]: ...
    def cancel(self, order_id: int) -> tuple[int, int]: ...
    def amend(
        self, order_id: int, qty_lots: int | None = None, price_ticks: int | None = None
    ) -> int: ...
    def process_many(
        self,
        op: Buffer | Sequence[int],
        order_id: Buffer | Sequence[int],
        account: Buffer | Sequence[int],
        side: Buffer | Sequence[int],
        price: Buffer | Sequence[int],
        qty: Buffer | Sequence[int],
        flags: Buffer | Sequence[int],
        out: bytearray | MutableSequence[int],
        events: array[int],
    ) -> int:
        """One command per row, looping in C (``array('q')`` columns; other sequences are
        converted first); codes to ``out``, 8-int event records appended to ``events``
        (refused before any row runs if ``events`` is a column or has a live memoryview)."""
    @property
    def max_orders(self) -> int: ...
    @property
    def n_orders(self) -> int: ...
    def __len__(self) -> int: ...
    def n_levels(self, side: int) -> int: ...
    def best_bid(self) -> int | None: ...
    def best_ask(self) -> int | None: ...
    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def order(self, order_id: int) -> tuple[int, int, int, int] | None: ...
    def orders_of(self, account: int) -> list[tuple[int, int, int, int]]: ...
    def level_orders(self, side: int, price_ticks: int) -> list[tuple[int, int, int]]: ...
    @property
    def allocated_bytes(self) -> int:
        """C memory held by this book (pools, tables, event buffer), in bytes."""
    def check_invariants(self) -> None: ...
    def export_state(self) -> dict[str, Any]: ...
    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OrderBook: ...
