"""Type stub of the compiled market engine (``ext/_engine.pyx``), mirror of ``engine/twin.py``."""

from collections.abc import Sequence
from typing import Any, final

from solvent._book import OrderBook
from solvent._core import BalanceTable

@final
class MarketEngine:
    """One market: its book, its parameters, and what its orders do to balances."""

    core: BalanceTable
    book: OrderBook
    market: int
    base: int
    quote: int
    fee_account: int
    lot_minor: int
    npt: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    max_fee_ppm: int
    min_notional_minor: int
    max_open_per_account: int
    reference_ticks: int
    band_low: int
    band_high: int
    halted: bool

    def __init__(
        self, core: BalanceTable, *, market: int, base: int, quote: int, fee_account: int,
        lot_minor: int, npt: int, maker_fee_ppm: int, taker_fee_ppm: int,
        min_notional_minor: int, max_open_per_account: int = ..., book: OrderBook | None = ...,
    ) -> None: ...
    def set_reference(self, price_ticks: int, band_ppm: int) -> None: ...
    def set_halted(self, halted: bool) -> None: ...
    def inject_fault(self, after_rows: int) -> None: ...
    def hold_needed(self, side: int, price_ticks: int, qty_lots: int) -> int: ...
    def open_count(self, account: int) -> int: ...
    def orders_of(self, account: int) -> list[tuple[int, int, int, int]]: ...
    def kept_ids(self, account: int) -> int: ...
    def submit(
        self, rows: Sequence[object], start: int, live_code: int, owner: int,
        first_order_id: int,
    ) -> tuple[int, int, bytes, bytes, bytes]: ...
    def replay(self, ops: bytes, live_code: int, owner: int, first_order_id: int
               ) -> tuple[int, bytes, bytes]: ...
    def export_state(self) -> dict[str, Any]: ...
