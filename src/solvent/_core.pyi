"""Type stub of the compiled balance core (``ext/_core.pyx``), mirror of ``core/twin.py``."""

from collections.abc import MutableSequence, Sequence
from typing import Any, SupportsIndex, final

from typing_extensions import Buffer

@final
class BalanceTable:
    """Balances of every account in every asset, with checked operations."""

    def __init__(self) -> None: ...
    @property
    def n_accounts(self) -> int: ...
    @property
    def n_assets(self) -> int: ...
    def add_asset(self) -> int: ...
    def add_account(self, kind: int, wallet_asset: int = -1) -> int: ...
    def kind(self, account: SupportsIndex) -> int: ...
    def wallet_asset(self, account: SupportsIndex) -> int: ...
    def set_frozen(self, account: SupportsIndex, frozen: object) -> None: ...
    def is_frozen(self, account: SupportsIndex) -> bool: ...
    def available(self, account: SupportsIndex, asset: SupportsIndex) -> int: ...
    def held(self, account: SupportsIndex, asset: SupportsIndex) -> int: ...
    def total(self, asset: SupportsIndex, kind: SupportsIndex) -> int: ...
    def post(
        self,
        debit: SupportsIndex,
        credit: SupportsIndex,
        asset: SupportsIndex,
        amount: SupportsIndex,
    ) -> int: ...
    def post_held(
        self,
        debit: SupportsIndex,
        credit: SupportsIndex,
        asset: SupportsIndex,
        amount: SupportsIndex,
    ) -> int: ...
    def hold(self, account: SupportsIndex, asset: SupportsIndex, amount: SupportsIndex) -> int: ...
    def release(
        self, account: SupportsIndex, asset: SupportsIndex, amount: SupportsIndex
    ) -> int: ...
    def replay_transfers(
        self,
        records: list[Any],
        start: int,
        transferred: type,
        account_index: dict[str, int],
        asset_index: dict[str, int],
        wallets: set[int],
        refs: dict[str, Any],
        position: int,
        last_time_ns: int,
    ) -> tuple[int, int, int]: ...
    def post_many(
        self,
        debit: Buffer | Sequence[int],
        credit: Buffer | Sequence[int],
        asset: Buffer | Sequence[int],
        amount: Buffer | Sequence[int],
        out: Buffer | MutableSequence[int],
    ) -> int:
        """Fast (C loop) when the columns are 1-D int64 buffers and ``out`` a writable
        1-D uint8 buffer; any other sequences take the twin's item-by-item path."""
    def check_invariants(self) -> None: ...
    def export_state(self) -> dict[str, Any]: ...
    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BalanceTable: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
