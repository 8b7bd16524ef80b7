"""The balance core: one state machine, two implementations.

``compiled`` is ``solvent._core.BalanceTable`` (Cython, built from ``ext/``);
``python`` is ``solvent.core.twin.BalanceTable``, the readable specification.
Both satisfy :class:`BalanceCore` and are held to identical results by the
differential tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

CORES = ("compiled", "python")


class BalanceCore(Protocol):
    """What the ledger needs from a balance table (see ``twin.BalanceTable``)."""

    @property
    def n_accounts(self) -> int: ...
    @property
    def n_assets(self) -> int: ...
    def add_asset(self) -> int: ...
    def add_account(self, kind: int, wallet_asset: int = -1) -> int: ...
    def kind(self, account: int) -> int: ...
    def wallet_asset(self, account: int) -> int: ...
    def set_frozen(self, account: int, frozen: bool) -> None: ...
    def set_liability_cap(self, asset: int, cap: int) -> None: ...
    def liability_cap(self, asset: int) -> int: ...
    def is_frozen(self, account: int) -> bool: ...
    def available(self, account: int, asset: int) -> int: ...
    def held(self, account: int, asset: int) -> int: ...
    def total(self, asset: int, kind: int) -> int: ...
    def post(self, debit: int, credit: int, asset: int, amount: int) -> int: ...
    def post_held(self, debit: int, credit: int, asset: int, amount: int) -> int: ...
    def hold(self, account: int, asset: int, amount: int) -> int: ...
    def release(self, account: int, asset: int, amount: int) -> int: ...
    def post_many(
        self,
        debit: Sequence[int],
        credit: Sequence[int],
        asset: Sequence[int],
        amount: Sequence[int],
        out: bytearray | memoryview,
    ) -> int: ...
    def replay_transfers(
        self,
        records: Sequence[Any],
        start: int,
        transferred: type,
        account_index: dict[str, int],
        asset_index: dict[str, int],
        wallets: set[int],
        refs: Any,  # the same core's TransferRefs (refs_class)
        position: int,
        last_time_ns: int,
        actors: dict[str, str] | None = None,
    ) -> tuple[int, int, int]: ...
    def check_invariants(self) -> None: ...
    def export_state(self) -> dict[str, Any]: ...


class RefIndex(Protocol):
    """What the ledger needs from a transfer-ref index (see ``refs.TransferRefs``)."""

    def __len__(self) -> int: ...
    def __contains__(self, ref: object) -> bool: ...
    @property
    def max_refs(self) -> int: ...
    def get(self, ref: str) -> tuple[int, int, int, int, str, int] | None: ...
    def add(self, ref: str, debit: int, credit: int, asset: int, amount_minor: int,
            memo: str, position: int) -> None: ...
    def reserve(self, ref: str, memo: str) -> None: ...
    def export(self) -> list[tuple[str, int, int, int, int, str, int]]: ...


def core_class(core: str) -> Any:
    """Return the BalanceTable class of the named core (``compiled`` or ``python``)."""
    if core == "python":
        from solvent.core.twin import BalanceTable

        return BalanceTable
    if core == "compiled":
        from solvent import _core

        return _core.BalanceTable
    raise ValueError(f"unknown core {core!r}: choose one of {', '.join(CORES)}")


def refs_class(core: str) -> Any:
    """Return the TransferRefs class of the named core: ``solvent._core.TransferRefs``
    (compiled, whose ``replay_transfers`` takes only this class) or
    ``solvent.core.refs.TransferRefs`` (the twin)."""
    if core == "python":
        from solvent.core.refs import TransferRefs

        return TransferRefs
    if core == "compiled":
        from solvent import _core

        return _core.TransferRefs
    raise ValueError(f"unknown core {core!r}: choose one of {', '.join(CORES)}")
