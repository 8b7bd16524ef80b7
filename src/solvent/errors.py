"""Every error Solvent raises.

Rejections (:class:`Rejected` and its subclasses) are refusals of a command:
the command changed no state. Each carries a machine-readable ``code`` and a
message naming the account, asset and amounts involved. The other errors
(:class:`TamperDetected`, :class:`WriterFenced`, :class:`StoreError`,
:class:`LedgerClosed`) are about the journal and its store, not about a command.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

#: A rejection's message is at most this long, whatever input it quotes: a longer one
#: keeps its start and its end around an ellipsis.
MAX_MESSAGE_CHARS: Final = 360
_HEAD_CHARS: Final = 240


class SolventError(Exception):
    """Base class of every Solvent error."""


class Rejected(SolventError):
    """A command was refused; nothing changed.

    ``code`` is stable and machine-readable; ``details`` holds the figures the
    message names (account, asset, amounts in minor units, ...).
    """

    code: ClassVar[str] = "rejected"

    def __init__(self, message: str, **details: Any) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            tail = MAX_MESSAGE_CHARS - _HEAD_CHARS - 5
            message = f"{message[:_HEAD_CHARS]} ... {message[-tail:]}"
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:  # picklable despite keyword details
        return (_rebuild, (type(self), self.message, self.details))


def _rebuild(cls: type[Rejected], message: str, details: dict[str, Any]) -> Rejected:
    return cls(message, **details)


class InvalidAmount(Rejected, ValueError):
    """Zero, negative, NaN/inf, too many decimals, or beyond int64 minor units."""

    code = "invalid_amount"


class FloatAmount(InvalidAmount, TypeError):
    """A float was given where money was expected; money is never a float."""

    code = "float_amount"


class InvalidId(Rejected, ValueError):
    """An id (account, asset, wallet, ref, actor) is not a str of 1..128 printable characters."""

    code = "invalid_id"


class InvalidArgument(Rejected, ValueError):
    """An argument other than an amount or id is malformed (kind, role, decimals, ...)."""

    code = "invalid_argument"


class InsufficientFunds(Rejected):
    """The debited account does not have the available (or held) funds."""

    code = "insufficient_funds"


class UnknownAsset(Rejected):
    code = "unknown_asset"


class UnknownAccount(Rejected):
    code = "unknown_account"


class UnknownWallet(Rejected):
    code = "unknown_wallet"


class UnknownActor(Rejected):
    code = "unknown_actor"


class AlreadyExists(Rejected):
    """An asset, account, wallet or actor with that id is already registered."""

    code = "already_exists"


class AssetMismatch(Rejected):
    """A posting names an asset other than the one its wallet holds."""

    code = "asset_mismatch"


class SameAccount(Rejected):
    """A transfer names the same account on both sides."""

    code = "same_account"


class DuplicateRef(Rejected):
    """A ref was used before for a command with different content."""

    code = "duplicate_ref"


class AccountFrozen(Rejected):
    """The account is frozen: it cannot be debited or place holds."""

    code = "account_frozen"


class InvalidState(Rejected):
    """The command does not apply to the current state (e.g. freezing a frozen account)."""

    code = "invalid_state"


class BalanceOverflow(Rejected):
    """The credit would push custody of the asset beyond int64 minor units."""

    code = "balance_overflow"


class PermissionDenied(Rejected):
    """The actor's role does not allow this command."""

    code = "permission_denied"


class LimitExceeded(Rejected):
    """A documented limit (batch size, number of accounts, ...) would be exceeded."""

    code = "limit_exceeded"


class TamperDetected(SolventError):
    """The stored journal does not match its hash chain or does not replay.

    ``version`` is the stored batch (1-based) and ``position`` the first journal
    position of that batch, when known.
    """

    def __init__(self, message: str, *, version: int | None = None, position: int | None = None):
        super().__init__(message)
        self.version = version
        self.position = position


class StoreError(SolventError):
    """The event store failed (unreachable, misconfigured, bad URL)."""


class WriterFenced(StoreError):
    """Another writer appended to the journal first; this ledger's uncommitted
    commands were discarded and its state reloaded from the store."""


class CommitOutcomeUnknown(StoreError):
    """A commit failed and the store could not be read back, so whether its batch
    landed is unknown (a lost connection may have cut off the reply to a commit the
    server made). The ledger shows no state until the store answers again: every
    later call reads the journal first (and raises this while it cannot). Then the
    journal decides: a retry with the same ``ref`` is safe either way."""


class LedgerClosed(SolventError):
    """The ledger was closed; open it again."""


# -- custody -------------------------------------------------------------------------


class AssetHalted(Rejected):
    """The asset is halted (shortfall, coverage or stale attestation): no new
    holds (orders, withdrawals) and no broadcasts until an approved resume."""

    code = "asset_halted"


class NotReconciled(Rejected):
    """The asset has a custody wallet with no attestation yet: its reserves are
    not reconciled, so nothing may be held against them."""

    code = "not_reconciled"


class CoverageBreach(Rejected):
    """A credit is not backed: a company-funded credit would lift customer liabilities
    above the attested reserves, or a deposit credits coins that the custody wallet's
    last attestation does not show."""

    code = "coverage"


class UnknownWithdrawal(Rejected):
    code = "unknown_withdrawal"


class UnknownDeposit(Rejected):
    code = "unknown_deposit"


class NotEnoughConfirmations(Rejected):
    """The deposit has fewer confirmations than its asset requires."""

    code = "not_enough_confirmations"


class SecondOperatorRequired(PermissionDenied):
    """The approval must come from an operator other than the one who asked."""

    code = "second_operator_required"


# -- markets -------------------------------------------------------------------------


class UnknownMarket(Rejected):
    code = "unknown_market"


class UnknownOrder(Rejected):
    """No resting order with that id (it never existed, was filled or cancelled)."""

    code = "unknown_order"


class MarketHalted(Rejected):
    """The market is halted: no new orders or amends; cancels still work."""

    code = "market_halted"


class PriceOutsideBand(Rejected):
    """The price is outside the market's band around its reference price."""

    code = "price_outside_band"


class TickOrLotViolation(Rejected):
    """A price is not a whole number of ticks, or a quantity of lots."""

    code = "tick_or_lot"


class BelowMinNotional(Rejected):
    """The order's notional is below the market's minimum."""

    code = "below_min_notional"


class PostOnlyWouldTake(Rejected):
    """A post-only order would have traded on arrival; it was not placed."""

    code = "post_only_would_take"


class FokUnfillable(Rejected):
    """A fill-or-kill order could not be filled completely now; nothing traded."""

    code = "fok_unfillable"


class AmendWouldCross(InvalidState):
    """An amended price would cross the opposite best price: an amend never trades."""

    code = "amend_would_cross"

