"""Solvent: an event-sourced custodial ledger core.

A balance that is not backed cannot exist, cannot trade, and cannot leave.

>>> import solvent
>>> led = solvent.Ledger.open("memory:", core="python")
>>> _ = led.register_asset("BTC", decimals=8)
>>> _ = led.open_account("alice")
>>> _ = led.open_wallet("btc-cold", asset="BTC")
>>> _ = led.deposit("alice", "BTC", "1.25", wallet="btc-cold", ref="tx-1")
>>> led.balance("alice", "BTC").available
Decimal('1.25000000')
"""

from solvent.errors import (
    AccountFrozen,
    AlreadyExists,
    AssetMismatch,
    BalanceOverflow,
    DuplicateRef,
    FloatAmount,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    InvalidId,
    InvalidState,
    LedgerClosed,
    LimitExceeded,
    PermissionDenied,
    Rejected,
    SameAccount,
    SolventError,
    StoreError,
    TamperDetected,
    UnknownAccount,
    UnknownActor,
    UnknownAsset,
    UnknownWallet,
    WriterFenced,
)
from solvent.ledger import Balance, BulkResult, Ledger, Receipt, Totals, VerifyReport

__version__ = "0.1.0"

__all__ = [
    "AccountFrozen",
    "AlreadyExists",
    "AssetMismatch",
    "Balance",
    "BalanceOverflow",
    "BulkResult",
    "DuplicateRef",
    "FloatAmount",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidArgument",
    "InvalidId",
    "InvalidState",
    "Ledger",
    "LedgerClosed",
    "LimitExceeded",
    "PermissionDenied",
    "Receipt",
    "Rejected",
    "SameAccount",
    "SolventError",
    "StoreError",
    "TamperDetected",
    "Totals",
    "UnknownAccount",
    "UnknownActor",
    "UnknownAsset",
    "UnknownWallet",
    "VerifyReport",
    "WriterFenced",
    "__version__",
]
