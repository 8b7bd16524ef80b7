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
    AmendWouldCross,
    AssetHalted,
    AssetMismatch,
    BalanceOverflow,
    BelowMinNotional,
    CommitOutcomeUnknown,
    CoverageBreach,
    DuplicateRef,
    FloatAmount,
    FokUnfillable,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    InvalidId,
    InvalidState,
    LedgerClosed,
    LimitExceeded,
    MarketHalted,
    NotEnoughConfirmations,
    NotReconciled,
    PermissionDenied,
    PostOnlyWouldTake,
    PriceOutsideBand,
    Rejected,
    SameAccount,
    SecondOperatorRequired,
    SolventError,
    StoreError,
    TamperDetected,
    TickOrLotViolation,
    UnknownAccount,
    UnknownActor,
    UnknownAsset,
    UnknownDeposit,
    UnknownMarket,
    UnknownOrder,
    UnknownWallet,
    UnknownWithdrawal,
    WriterFenced,
)
from solvent.ledger import Balance, BulkResult, JournalHead, Ledger, Totals, VerifyReport
from solvent.markets import BulkOutcome, BulkOutcomes, FillView, MarketSpec, OpenOrder, Order
from solvent.proof import InclusionProof, LiabilitiesRoot, ProofInvalid, verify_inclusion
from solvent.receipts import Receipt

__version__ = "0.1.0"

__all__ = [
    "AccountFrozen",
    "AlreadyExists",
    "AmendWouldCross",
    "AssetHalted",
    "AssetMismatch",
    "Balance",
    "BalanceOverflow",
    "BelowMinNotional",
    "BulkOutcome",
    "BulkOutcomes",
    "BulkResult",
    "CommitOutcomeUnknown",
    "CoverageBreach",
    "DuplicateRef",
    "FillView",
    "FloatAmount",
    "FokUnfillable",
    "InclusionProof",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidArgument",
    "InvalidId",
    "InvalidState",
    "JournalHead",
    "Ledger",
    "LedgerClosed",
    "LiabilitiesRoot",
    "LimitExceeded",
    "MarketHalted",
    "MarketSpec",
    "NotEnoughConfirmations",
    "NotReconciled",
    "OpenOrder",
    "Order",
    "PermissionDenied",
    "PostOnlyWouldTake",
    "PriceOutsideBand",
    "ProofInvalid",
    "Receipt",
    "Rejected",
    "SameAccount",
    "SecondOperatorRequired",
    "SolventError",
    "StoreError",
    "TamperDetected",
    "TickOrLotViolation",
    "Totals",
    "UnknownAccount",
    "UnknownActor",
    "UnknownAsset",
    "UnknownDeposit",
    "UnknownMarket",
    "UnknownOrder",
    "UnknownWallet",
    "UnknownWithdrawal",
    "VerifyReport",
    "WriterFenced",
    "__version__",
    "verify_inclusion",
]
