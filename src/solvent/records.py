"""The journal's record types: everything that can happen to money, and nothing else.

This module is the auditor's guide. The journal is a sequence of records,
each a msgspec ``Struct`` tagged by its ``kind``. Every record carries:

``position``
    its place in the journal (1, 2, 3, ... with no gaps, across all batches);
``time_ns``
    the command time (nanoseconds since the Unix epoch, UTC), given to the
    ledger with the command: the core never reads a clock;
``actor``
    who issued the command (a registered actor, see :class:`ActorRegistered`);
``ref``
    the command's reference (``""`` for commands that carry none); deposits are
    idempotent on (wallet, ref), transfers and bulk transfers on ref.

Amounts are integers in the asset's minor units (``amount_minor``); the asset
is always named next to the amount. Balances are never stored in the journal:
they are the fold of these records, and replaying the journal from position 1
gives exactly the live state.

Encoding: MessagePack, each record an array ``[kind, position, time_ns, actor,
ref, <the record's own fields in the order declared below>]``. The order of
fields is therefore part of the format: a new field is only ever appended, with
a default. :func:`record_to_dict` gives the named form (``solvent journal``
prints it as JSON lines).

Records are stored in *batches* (:class:`Batch`): one stored event in the
event store carries many records and is one atomic commit. Each stored batch
is chained to its predecessor by SHA-256 (see ``solvent.journal``).
"""

from __future__ import annotations

import sys
from array import array

import msgspec


class Record(msgspec.Struct, tag_field="kind", frozen=True, gc=False, array_like=True):
    """Header fields every journal record carries."""

    position: int
    time_ns: int
    actor: str
    ref: str = ""


class ActorRegistered(Record, tag="actor_registered", frozen=True, kw_only=True):
    """An actor may now issue commands. ``role`` is one of customer, operator,
    auditor, system. Auditors can read and verify but issue no commands."""

    name: str
    role: str


class AssetRegistered(Record, tag="asset_registered", frozen=True, kw_only=True):
    """An asset exists, with amounts in units of ``10**-decimals``. Its number
    (used by bulk records) is its order of registration, from 0."""

    asset: str
    decimals: int


class AccountOpened(Record, tag="account_opened", frozen=True, kw_only=True):
    """A customer account (a liability of the exchange) or a company account
    (company-owned funds: treasury, fees, promotion budgets, guarantee fund).
    Accounts and wallets share one numbering, in order of opening, from 0."""

    account: str
    account_kind: str


class WalletOpened(Record, tag="wallet_opened", frozen=True, kw_only=True):
    """A custody wallet of one asset: the reserve side of the books."""

    wallet: str
    asset: str


class Deposited(Record, tag="deposited", frozen=True, kw_only=True):
    """A confirmed deposit: custody ``wallet`` and ``account`` both grow by
    ``amount_minor``. (Debit wallet, credit account.)"""

    account: str
    wallet: str
    asset: str
    amount_minor: int


class Transferred(Record, tag="transferred", frozen=True, kw_only=True):
    """``amount_minor`` of ``asset`` moved from one customer/company account's
    available balance to another's. (Debit from_account, credit to_account.)"""

    from_account: str
    to_account: str
    asset: str
    amount_minor: int
    memo: str = ""


class TransfersBulk(Record, tag="transfers_bulk", frozen=True, kw_only=True):
    """Many transfers in one command, by account and asset *number*.

    Columns are little-endian int64 arrays of equal length (``from_index``,
    ``to_index``, ``asset_index``, ``amount_minor``); ``outcome`` holds one
    result code per item (0 applied; see ``solvent.core.codes``). Items are
    applied in order, each on its own: a refused item changed nothing.
    Replaying the columns must reproduce ``outcome`` byte for byte.
    """

    from_index: bytes
    to_index: bytes
    asset_index: bytes
    amount_minor: bytes
    outcome: bytes


class AccountFrozen(Record, tag="account_frozen", frozen=True, kw_only=True):
    """The account can no longer be debited or place holds, by anyone, until
    unfrozen. Credits still arrive."""

    account: str
    reason: str


class AccountUnfrozen(Record, tag="account_unfrozen", frozen=True, kw_only=True):
    """The freeze on ``account`` is lifted."""

    account: str
    reason: str


class CommandRejected(Record, tag="command_rejected", frozen=True, kw_only=True):
    """A privileged command (one that spends company funds) was refused. It
    changed no balance; it is journaled for forensics. ``code`` is the
    rejection's code (e.g. ``insufficient_funds``); ``message`` its text."""

    command: str
    code: str
    message: str
    account: str
    asset: str
    amount_minor: int


# -- custody: deposits, withdrawals, attestations, halts --------------------------
#
# A custody wallet's *book* balance is what the journal says it holds; an
# *attestation* is what was observed on-chain (or at the bank). Reconciliation
# compares the two per wallet, explaining the difference by items in flight
# (deposits detected but not confirmed: observed, not yet booked; withdrawals
# broadcast but not completed: left the wallet, still booked).


class CustodyPolicySet(Record, tag="custody_policy_set", frozen=True, kw_only=True):
    """The custody rules of ``asset`` from this position on.

    ``confirmations``: required before a detected deposit may be confirmed.
    ``tolerance_minor``: unexplained shortfall per wallet tolerated by
    reconciliation. ``min_coverage_ppm``: attested reserves / customer
    liabilities below this (parts per million; 1,000,000 = 100 %) halts the
    asset. ``max_attestation_age_ns``: an asset whose oldest wallet attestation
    is older than this at command time is halted when a hold is attempted.
    ``account_daily_limit_minor`` / ``asset_daily_limit_minor``: withdrawals
    requested in any rolling 24 h (0 = no limit). ``approval_threshold_minor``:
    withdrawals above it need a second operator's approval."""

    asset: str
    confirmations: int
    tolerance_minor: int
    min_coverage_ppm: int
    max_attestation_age_ns: int
    account_daily_limit_minor: int
    asset_daily_limit_minor: int
    approval_threshold_minor: int


class DepositDetected(Record, tag="deposit_detected", frozen=True, kw_only=True):
    """A deposit was seen on-chain (``ref`` is its txid): pending, visible,
    not spendable. No balance changes until it is confirmed."""

    account: str
    wallet: str
    asset: str
    amount_minor: int


class DepositConfirmed(Record, tag="deposit_confirmed", frozen=True, kw_only=True):
    """The detected deposit ``(wallet, ref)`` reached ``confirmations``: custody
    ``wallet`` and ``account`` both grow by ``amount_minor`` (debit wallet,
    credit account)."""

    account: str
    wallet: str
    asset: str
    amount_minor: int
    confirmations: int


class DepositVoided(Record, tag="deposit_voided", frozen=True, kw_only=True):
    """The detected deposit ``(wallet, ref)`` will never confirm (a reorg):
    it is dropped; no balance ever changed for it."""

    account: str
    wallet: str
    asset: str
    amount_minor: int
    reason: str


class WithdrawalRequested(Record, tag="withdrawal_requested", frozen=True, kw_only=True):
    """``amount_minor`` of ``account`` is held for a withdrawal out of ``wallet``
    to ``address``. ``needs_approval``: above the asset's threshold, a second
    operator (not ``actor``) must approve it before broadcast."""

    withdrawal_id: str
    account: str
    wallet: str
    asset: str
    amount_minor: int
    address: str
    needs_approval: bool


class WithdrawalApproved(Record, tag="withdrawal_approved", frozen=True, kw_only=True):
    """A second operator (``actor``) approved the withdrawal."""

    withdrawal_id: str


class WithdrawalBroadcast(Record, tag="withdrawal_broadcast", frozen=True, kw_only=True):
    """The withdrawal's transaction ``txid`` was sent: in flight, still booked."""

    withdrawal_id: str
    txid: str


class WithdrawalCompleted(Record, tag="withdrawal_completed", frozen=True, kw_only=True):
    """The transaction is final: the account's held funds and the custody wallet
    both shrink by the amount (debit account from held, credit wallet)."""

    withdrawal_id: str


class WithdrawalFailed(Record, tag="withdrawal_failed", frozen=True, kw_only=True):
    """The withdrawal failed or was cancelled: its hold is released, no money moved."""

    withdrawal_id: str
    reason: str


class Attested(Record, tag="attested", frozen=True, kw_only=True):
    """``wallet`` was observed holding ``balance_minor`` of ``asset`` at
    ``as_of_ns``, according to ``source`` (``evidence``: e.g. a block hash)."""

    wallet: str
    asset: str
    balance_minor: int
    as_of_ns: int
    source: str
    evidence: str


class AssetHalted(Record, tag="asset_halted", frozen=True, kw_only=True):
    """``asset`` accepts no new holds (orders, withdrawals) and no broadcasts;
    deposits still credit. Written in the same command that observed the cause:
    ``shortfall`` (a wallet's unexplained gap beyond tolerance), ``coverage``
    (attested reserves below the minimum share of customer liabilities) or
    ``stale`` (an attestation older than the maximum age). The figures that
    triggered it are recorded; those that do not apply are 0."""

    asset: str
    cause: str
    message: str
    wallet: str
    expected_minor: int
    observed_minor: int
    explained_minor: int
    unexplained_minor: int
    reserves_minor: int
    liabilities_minor: int
    attestation_age_ns: int


class ResumeRequested(Record, tag="resume_requested", frozen=True, kw_only=True):
    """An operator asks to lift the halts of ``asset``; another operator must approve."""

    asset: str
    reason: str


class AssetResumed(Record, tag="asset_resumed", frozen=True, kw_only=True):
    """A second operator (``actor``) approved the resume requested by
    ``requested_by`` after a clean reconciliation: every halt of ``asset`` is lifted."""

    asset: str
    reason: str
    requested_by: str


class ProofKeyCreated(Record, tag="proof_key_created", frozen=True, kw_only=True):
    """The secret from which every account's proof-of-liabilities nonce is derived
    (HMAC-SHA256(key, NONCE_TAG || account), see ``solvent.proof``). Confidential,
    like the whole journal."""

    key: bytes


# -- markets: listings, orders, fills ----------------------------------------------
#
# Prices are integer ticks and quantities integer lots of a market; a market's
# listing fixes what one tick and one lot are in minor units, so every amount a
# fill moves is exact. Orders hold, at placement, everything they can spend; each
# fill settles in the order's own record as balanced postings; fees go to the
# market's fee account (a company account).


class MarketListed(Record, tag="market_listed", frozen=True, kw_only=True):
    """A spot market ``base``/``quote``. A price of 1 tick is ``tick_minor`` quote
    minor units per whole base unit; 1 lot is ``lot_minor`` base minor units; a
    fill of q lots at p ticks costs ``p * q * notional_per_tick_lot_minor`` quote
    minor units (exact: the listing is refused unless that factor is an integer).
    Fees are parts per million of the notional, rounded down."""

    market: str
    base: str
    quote: str
    tick_minor: int
    lot_minor: int
    notional_per_tick_lot_minor: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    min_notional_minor: int
    fee_account: str


class ReferencePriceSet(Record, tag="reference_price_set", frozen=True, kw_only=True):
    """Orders of ``market`` may not trade outside ``price_ticks`` ± ``band_ppm``
    (parts per million): limit orders beyond the band are refused, and market
    orders execute as IOC limit orders at the band's edge. The resting orders the
    move left where a taker inside the band would meet them (asks below the new
    floor, bids above the new ceiling) are cancelled by this record, their holds
    released: ``cancelled_order_ids``, ascending."""

    market: str
    price_ticks: int
    band_ppm: int
    cancelled_order_ids: tuple[int, ...] = ()


class Fill(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One trade of an order (the taker) against a resting order (the maker), at
    the maker's price. ``notional_minor`` quote moves buyer → seller, ``qty_lots``
    base seller → buyer; each side's fee (rounded down) goes to the fee account."""

    maker_order_id: int
    maker_account: str
    price_ticks: int
    qty_lots: int
    notional_minor: int
    maker_fee_minor: int
    taker_fee_minor: int
    maker_remaining_lots: int


class OrderPlaced(Record, tag="order_placed", frozen=True, kw_only=True):
    """An order was accepted. Inputs, as asked: ``order_type`` limit (``price_ticks``,
    ``qty_lots``) or market (a sell by ``qty_lots``, a buy by ``quote_minor``, a
    budget with fees); ``tif``, ``post_only``, ``stp``. Outputs: ``hold_minor`` of
    ``hold_asset`` was held from ``account``, the order matched (``fills``; resting
    orders of the same account removed by self-trade prevention in
    ``expired_makers`` as (order id, lots)), every fill settled, and the order
    ended ``status`` (resting, filled, expired, stp_expired) with
    ``remaining_lots`` resting or unfilled. Unused hold is released when the
    order completes. Replaying the inputs must reproduce every output field."""

    market: str
    order_id: int
    account: str
    side: str
    order_type: str
    tif: str
    post_only: bool
    stp: str
    price_ticks: int
    qty_lots: int
    quote_minor: int
    hold_asset: str
    hold_minor: int
    client_order_id: str
    fills: list[Fill]
    expired_makers: list[tuple[int, int]]
    status: str
    filled_lots: int
    remaining_lots: int


class OrderCancelled(Record, tag="order_cancelled", frozen=True, kw_only=True):
    """A resting order left the book: ``removed_lots`` unfilled, and the
    ``released_minor`` it still held returned to the account's available balance."""

    market: str
    order_id: int
    account: str
    removed_lots: int
    released_minor: int


class OrderAmended(Record, tag="order_amended", frozen=True, kw_only=True):
    """A resting order now has ``qty_lots`` remaining at ``price_ticks``; its hold
    changed by ``hold_delta_minor`` (negative: released). A smaller quantity at the
    same price keeps its place in the queue; anything else goes to the back."""

    market: str
    order_id: int
    account: str
    qty_lots: int
    price_ticks: int
    hold_delta_minor: int


class OrdersSubmitted(Record, tag="orders_submitted", frozen=True, kw_only=True):
    """Many order commands on ``market`` in one call (``Ledger.submit_orders``).

    ``rows``, ``results`` and ``events`` are little-endian int64 rows laid out as
    :mod:`solvent.engine.codes` documents: the commands as given (op, market,
    order id, account *number*, side, price ticks, qty lots, quote minor, flags),
    one result per command (code, order id, status, filled lots, remaining lots,
    amount), and the fills and self-trade expiries in order. New orders were
    numbered from ``first_order_id``; ``live_code`` (0, or the code refusing new
    orders because an asset was halted or unreconciled) and ``owner`` (-1, or the
    only account number the actor could act for) were the conditions of the call.
    Replaying ``rows`` must reproduce ``results`` and ``events`` byte for byte.
    ``batch_rows`` is the number of rows the call was given and ``batch_index`` the
    index of this record's first row among them (both 0 in journals written before
    they existed); a call's records share its ``ref`` (empty, or the idempotency key
    the caller gave)."""

    market: str
    first_order_id: int
    live_code: int
    owner: int
    rows: bytes
    results: bytes
    events: bytes
    batch_rows: int = 0
    batch_index: int = 0


class MarketHalted(Record, tag="market_halted", frozen=True, kw_only=True):
    """``market`` accepts no new orders or amends; cancels still work."""

    market: str
    reason: str


class MarketResumed(Record, tag="market_resumed", frozen=True, kw_only=True):
    """``market`` accepts orders again."""

    market: str
    reason: str


JournalRecord = (
    ActorRegistered
    | AssetRegistered
    | AccountOpened
    | WalletOpened
    | Deposited
    | Transferred
    | TransfersBulk
    | AccountFrozen
    | AccountUnfrozen
    | CommandRejected
    | CustodyPolicySet
    | DepositDetected
    | DepositConfirmed
    | DepositVoided
    | WithdrawalRequested
    | WithdrawalApproved
    | WithdrawalBroadcast
    | WithdrawalCompleted
    | WithdrawalFailed
    | Attested
    | AssetHalted
    | ResumeRequested
    | AssetResumed
    | ProofKeyCreated
    | MarketListed
    | ReferencePriceSet
    | OrderPlaced
    | OrderCancelled
    | OrderAmended
    | OrdersSubmitted
    | MarketHalted
    | MarketResumed
)


class Batch(msgspec.Struct, frozen=True):
    """One stored event: the records of one commit, in position order."""

    version: int
    first_position: int
    records: list[JournalRecord]


class BatchHead(msgspec.Struct, frozen=True):
    """A stored batch without its records (decoding skips them): where it starts."""

    version: int
    first_position: int


encoder = msgspec.msgpack.Encoder()
batch_decoder = msgspec.msgpack.Decoder(Batch)
batch_head_decoder = msgspec.msgpack.Decoder(BatchHead)


def record_kind(rec: Record) -> str:
    """The record's tag, e.g. ``"transferred"``."""
    tag = type(rec).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def record_to_dict(rec: Record) -> dict[str, object]:
    """The record with its kind and named fields (bytes columns stay bytes)."""
    return {"kind": record_kind(rec), **msgspec.structs.asdict(rec)}


def column_bytes(col: array) -> bytes:  # type: ignore[type-arg]
    """An int64 column as little-endian bytes (the journal's byte order)."""
    if sys.byteorder == "little":
        return col.tobytes()
    swapped = array("q", col)
    swapped.byteswap()
    return swapped.tobytes()


def column_from_bytes(data: bytes) -> array:  # type: ignore[type-arg]
    """The int64 column that ``column_bytes`` wrote."""
    col = array("q")
    col.frombytes(data)
    if sys.byteorder != "little":
        col.byteswap()
    return col
