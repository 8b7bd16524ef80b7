"""Result codes and account kinds shared by both balance cores.

The compiled core (``solvent._core``) and the Python twin
(``solvent.core.twin``) return these integers from every checked operation;
``0`` means the operation was applied, anything else means *nothing* changed.
The codes are part of the journal (bulk outcomes are stored as these bytes),
so their values never change; new codes are only ever appended.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
INSUFFICIENT_FUNDS: Final = 1
ACCOUNT_FROZEN: Final = 2
ASSET_MISMATCH: Final = 3
OVERFLOW: Final = 4
INVALID_AMOUNT: Final = 5
UNKNOWN_ACCOUNT: Final = 6
UNKNOWN_ASSET: Final = 7
SAME_ACCOUNT: Final = 8
INSUFFICIENT_HELD: Final = 9
WRONG_KIND: Final = 10
COVERAGE: Final = 11

CODE_NAMES: Final[dict[int, str]] = {
    OK: "ok",
    INSUFFICIENT_FUNDS: "insufficient_funds",
    ACCOUNT_FROZEN: "account_frozen",
    ASSET_MISMATCH: "asset_mismatch",
    OVERFLOW: "overflow",
    INVALID_AMOUNT: "invalid_amount",
    UNKNOWN_ACCOUNT: "unknown_account",
    UNKNOWN_ASSET: "unknown_asset",
    SAME_ACCOUNT: "same_account",
    INSUFFICIENT_HELD: "insufficient_held",
    WRONG_KIND: "wrong_kind",
    COVERAGE: "coverage",
}

# Account kinds. Customer and company accounts are liabilities/equity of the
# exchange (credit-normal); custody wallets are its assets (debit-normal).
KIND_CUSTOMER: Final = 0
KIND_COMPANY: Final = 1
KIND_WALLET: Final = 2

KIND_NAMES: Final[dict[int, str]] = {
    KIND_CUSTOMER: "customer",
    KIND_COMPANY: "company",
    KIND_WALLET: "wallet",
}

INT64_MAX: Final = (1 << 63) - 1

# Limits (TigerBeetle style: a limit on everything, each one tested).
MAX_ACCOUNTS: Final = 1 << 24
MAX_ASSETS: Final = 1 << 10
