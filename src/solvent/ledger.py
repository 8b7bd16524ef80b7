"""The Ledger: commands in, checked, journaled, durable.

Every public command follows the same steps:

1. validate at the boundary (ids, amounts, actor, role): a bad input raises a
   typed :class:`~solvent.Rejected` and changes nothing;
2. run the checked operation on the state (``solvent.state``); the balance core
   refuses anything that would break an invariant, and then nothing changed;
3. journal the record; outside ``with led.batch():`` the record's batch is
   committed before the call returns (durable by default).

A privileged command that is refused (one spending company funds) is journaled
as :class:`~solvent.records.CommandRejected` before the rejection is raised.
"""

from __future__ import annotations

import re
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

import msgspec

from solvent import errors as e
from solvent import records as r
from solvent.amounts import (
    MAX_DECIMALS,
    AmountLike,
    check_id,
    check_text,
    from_minor,
    shown_value,
    to_minor,
)
from solvent.core import CORES
from solvent.core import codes as c
from solvent.custody import CustodyCommands
from solvent.journal import StoredBatch, verify_link
from solvent.markets import MarketCommands
from solvent.receipts import Receipt
from solvent.records import column_bytes
from solvent.state import (
    ACCOUNT_KINDS,
    ROLES,
    SNAPSHOT_FORMAT,
    LedgerState,
    SnapshotHead,
    bulk_content_digest,
    snapshot_decoder,
    snapshot_head_decoder,
)
from solvent.store import JournalStore

MAX_BULK_ITEMS: Final = 1_000_000
MAX_BATCH_RECORDS: Final = 1_000_000
DEFAULT_SNAPSHOT_EVERY_RECORDS: Final = 100_000

R = TypeVar("R", bound=r.Record)


class Balance(msgspec.Struct, frozen=True):
    """A balance in the asset's units: ``available`` to spend, ``held`` by orders
    and withdrawals, ``pending``: deposits detected but not confirmed (visible,
    not spendable, not part of the books)."""

    available: Decimal
    held: Decimal
    pending: Decimal = Decimal(0)


class Totals(msgspec.Struct, frozen=True):
    """Per-asset totals in minor units: ``custody == customer + company`` always."""

    asset: str
    custody_minor: int
    customer_minor: int
    company_minor: int


class BulkResult(msgspec.Struct, frozen=True):
    """Outcome of a bulk command: one result code per item (0 = applied)."""

    position: int
    ref: str
    applied: int
    outcomes: bytes
    replayed: bool = False

    def rejected(self) -> list[tuple[int, str]]:
        """(item index, code name) of every refused item."""
        return [(i, c.CODE_NAMES[x]) for i, x in enumerate(self.outcomes) if x]


class JournalHead(msgspec.Struct, frozen=True):
    """The last committed batch, read in one moment (:meth:`Ledger.head`): the pair
    ``(version, digest)`` to keep elsewhere and pass back as ``verify(expect_head=digest)``."""

    version: int  # batches committed
    position: int  # position of the last record of batch ``version`` (0: none)
    digest: str  # hex SHA-256 of batch ``version`` (64 zeros: none)


class VerifyReport(msgspec.Struct, frozen=True):
    """Result of a full replay and hash-chain check."""

    batches: int
    records: int
    head_digest: str
    snapshots_checked: int
    #: snapshots of another format (older code's, or one whose format field was
    #: altered): neither loaded nor compared; the state was replayed past them
    snapshots_skipped: int = 0


# Records that survive a rolled-back batch: they are the forensic trace of what
# was observed, refused or halted, and change no balance.
# What a customer actor may do, and only from their own account.
_CUSTOMER_COMMANDS = frozenset({"transfer", "request_withdrawal", "place_order"})

_KEEP_ON_ABORT = (r.CommandRejected, r.Attested, r.AssetHalted)
KEPT_COMMIT_ATTEMPTS: Final = 3  # a rollback's kept records, fenced by another writer
_HEX_DIGEST_RE: Final = re.compile(r"[0-9a-fA-F]{64}")

_REJECTION_FOR_CODE: dict[int, type[e.Rejected]] = {
    c.INSUFFICIENT_FUNDS: e.InsufficientFunds,
    c.INSUFFICIENT_HELD: e.InsufficientFunds,
    c.ACCOUNT_FROZEN: e.AccountFrozen,
    c.ASSET_MISMATCH: e.AssetMismatch,
    c.OVERFLOW: e.BalanceOverflow,
    c.INVALID_AMOUNT: e.InvalidAmount,
    c.UNKNOWN_ACCOUNT: e.UnknownAccount,
    c.UNKNOWN_ASSET: e.UnknownAsset,
    c.SAME_ACCOUNT: e.SameAccount,
    c.WRONG_KIND: e.InvalidArgument,
    c.COVERAGE: e.CoverageBreach,
}


class Ledger(CustodyCommands, MarketCommands):
    """An embeddable, event-sourced, double-entry custodial ledger.

    Open one with :meth:`Ledger.open`. One ledger object is the single writer
    of its journal; its methods are serialized by a lock, so it may be shared
    between threads, but commands never run concurrently.
    """

    def __init__(
        self,
        store: JournalStore,
        state: LedgerState,
        *,
        actor: str,
        clock: Callable[[], int],
        snapshot_every: int,
    ) -> None:
        self._store = store
        self._state = state
        self._actor = actor
        self._clock = clock
        self._snapshot_every = snapshot_every
        # a process that always stops before close() still takes snapshots: the period
        # counts from the snapshot the state was loaded from, not from this open
        self._last_snapshot_position = state.snapshot_position
        self._opened_at = state.position  # close() snapshots only what this ledger added
        self._pending: list[r.JournalRecord] = []
        self._depth = 0
        self._lock = threading.RLock()
        self._closed = False
        self._core_name = state.core_name
        # set while the in-memory state is not known to match the journal (a commit or
        # rollback failed and the store could not be read back); see _LostState
        self._lost: e.StoreError | None = None
        self.last_snapshot_error: e.StoreError | None = None
        """Why the last automatic snapshot (after a commit, or on ``close()``) failed, or
        None once one succeeds. Such a failure loses nothing (the journal is the truth;
        opening replays more batches), so it never fails the command that committed:
        the next try comes after another ``snapshot_every`` records."""
        self._trees: dict[str, Any] = {}  # asset -> the last liabilities tree built
        self._leaf_key_cache: list[bytes] = []  # account number -> proof leaf key

    # -- opening and closing --------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str = "memory:",
        *,
        core: str = "compiled",
        actor: str = "system",
        clock: Callable[[], int] | None = None,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY_RECORDS,
        create: bool = True,
    ) -> Ledger:
        """Open (or, unless ``create=False``, create) the ledger stored at ``url``.

        ``url``: ``memory:``, ``sqlite:///path/ledger.db`` or ``postgresql://...``
        (see ``solvent.store``). ``core``: ``compiled`` (default) or ``python``.
        ``actor``: the default actor of commands that name none. ``clock``:
        int nanoseconds since the epoch for command times (default ``time.time_ns``);
        a command that reads anything else (``time.time``'s float) is
        :class:`~solvent.InvalidArgument` and changes nothing.
        ``snapshot_every``: records between automatic snapshots. ``create=False``: a
        missing SQLite file or missing tables are a :class:`~solvent.StoreError`, and
        nothing is created (a tool that reads an existing ledger).

        The state is the latest snapshot plus the journal after it.
        """
        if core not in CORES:
            raise e.InvalidArgument(f"core {core!r}: choose one of {', '.join(CORES)}")
        check_id(actor, "actor")
        if (isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int)
                or snapshot_every < 1):
            raise e.InvalidArgument("snapshot_every must be a positive int")
        if clock is not None and not callable(clock):
            raise e.InvalidArgument(
                f"clock must be a callable returning int nanoseconds, got {shown_value(clock)}")
        store = JournalStore(url, create=bool(create))
        try:
            state = load_state(store, core)
        except BaseException:
            store.close()
            raise
        return cls(
            store, state, actor=actor, clock=clock or time.time_ns, snapshot_every=snapshot_every
        )

    def close(self) -> None:
        """Commit nothing more, write a snapshot if this ledger committed records
        that no snapshot holds (a failure is kept in ``last_snapshot_error``, not
        raised), close the store. A ledger that only read writes nothing."""
        with self._lock:
            if self._closed:
                return
            if self._depth:
                raise e.InvalidState("close() inside ledger.batch()")
            try:
                position = self._state.position
                if self._lost is None and position > max(self._last_snapshot_position,
                                                         self._opened_at):
                    self._auto_snapshot()
            finally:
                self._closed = True
                self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Position of the last journal record applied (committed, or pending in this
        thread's ``batch()``)."""
        with self._lock:
            return self._state.position

    @property
    def version(self) -> int:
        """Number of batches committed."""
        with self._lock:
            return self._state.version

    @property
    def head_digest(self) -> str:
        """Hex digest of the last committed batch: keep a copy to anchor the chain."""
        with self._lock:
            return self._state.head_digest.hex()

    def head(self) -> JournalHead:
        """The last committed batch's version, last position and digest, read together:
        no commit falls between them (a thread inside ``batch()`` gets the commit before
        its block; another thread waits for the block to end)."""
        with self._lock:
            state = self._state
            position = self._pending[0].position - 1 if self._pending else state.position
            return JournalHead(state.version, position, state.head_digest.hex())

    @property
    def core(self) -> str:
        return self._core_name

    @property
    def backend(self) -> str:
        return self._store.backend

    def balance(self, account: str, asset: str) -> Balance:
        """The balance of ``account`` in ``asset``, in the asset's units."""
        with self._lock:  # one moment: no command between the reads, none mid-iteration
            av, hd = self.balance_minor(account, asset)
            dec = self._state.asset_decimals[self._state.asset_index[asset]]
            pending = sum(d.amount_minor for d in self._state.custody.pending.values()
                          if d.account == account and d.asset == asset)
        return Balance(available=from_minor(av, dec), held=from_minor(hd, dec),
                       pending=from_minor(pending, dec))

    def balance_minor(self, account: str, asset: str) -> tuple[int, int]:
        """(available, held) of ``account`` in ``asset``, in minor units."""
        with self._lock:
            acct = self._account(account, "account")
            a = self._asset(asset)
            return self._state.core.available(acct, a), self._state.core.held(acct, a)

    def totals(self, asset: str) -> Totals:
        with self._lock:
            a = self._asset(asset)
            core = self._state.core
            return Totals(
                asset=asset,
                custody_minor=core.total(a, c.KIND_WALLET),
                customer_minor=core.total(a, c.KIND_CUSTOMER),
                company_minor=core.total(a, c.KIND_COMPANY),
            )

    def decimals(self, asset: str) -> int:
        """The number of decimals of ``asset`` (its minor unit is ``10**-decimals``)."""
        with self._lock:
            return self._state.asset_decimals[self._asset(asset)]

    def account_index(self, account: str) -> int:
        """The number of ``account`` (or wallet), as used by bulk commands."""
        with self._lock:
            return self._account(account, "account")

    def asset_index(self, asset: str) -> int:
        """The number of ``asset``, as used by bulk commands."""
        with self._lock:
            return self._asset(asset)

    def accounts(self) -> list[str]:
        """Names of all accounts and wallets, in numbering order."""
        with self._lock:
            return list(self._state.account_names)

    def assets(self) -> list[str]:
        """Names of all assets, in numbering order."""
        with self._lock:
            return list(self._state.asset_names)

    def is_frozen(self, account: str) -> bool:
        """Whether ``account`` is frozen (no debits, no holds)."""
        with self._lock:
            return self._state.core.is_frozen(self._account(account, "account"))

    def check_invariants(self) -> None:
        """Assert every balance invariant over the whole table (slow; for tests and audits)."""
        with self._lock:
            self._state.core.check_invariants()

    # -- registration -----------------------------------------------------------------

    def register_actor(self, name: str, role: str, *, actor: str | None = None) -> Receipt:
        """Allow ``name`` to issue commands with ``role`` (customer, operator, auditor, system)."""
        with self._lock:
            who = self._authorize(actor, "register_actor")
            check_id(name, "actor name")
            if role not in ROLES:
                raise e.InvalidArgument(
                    f"role {shown_value(role)}: choose one of {', '.join(ROLES)}")
            if name in self._state.actors:
                raise e.AlreadyExists(f"actor {name!r} exists already", actor=name)
            self._state.do_register_actor(name, role)
            return self._journal(r.ActorRegistered, who, "", name=name, role=role)

    def register_asset(self, asset: str, decimals: int, *, actor: str | None = None) -> Receipt:
        """Register ``asset`` with amounts in units of ``10**-decimals`` (0..18)."""
        with self._lock:
            who = self._authorize(actor, "register_asset")
            check_id(asset, "asset")
            if isinstance(decimals, bool) or not isinstance(decimals, int):
                raise e.InvalidArgument(f"decimals must be an int, got {type(decimals).__name__}")
            if not 0 <= decimals <= MAX_DECIMALS:
                raise e.InvalidArgument(f"decimals {shown_value(decimals)} is outside "
                                        f"0..{MAX_DECIMALS}")
            if asset in self._state.asset_index:
                raise e.AlreadyExists(f"asset {asset!r} exists already", asset=asset)
            if self._state.core.n_assets >= c.MAX_ASSETS:
                raise e.LimitExceeded(f"the ledger holds the maximum of {c.MAX_ASSETS} assets")
            self._state.do_register_asset(asset, decimals)
            return self._journal(r.AssetRegistered, who, "", asset=asset, decimals=decimals)

    def open_account(
        self, account: str, kind: str = "customer", *, actor: str | None = None
    ) -> Receipt:
        """Open a ``customer`` account (a liability) or a ``company`` account (own funds)."""
        with self._lock:
            who = self._authorize(actor, "open_account")
            check_id(account, "account")
            if not isinstance(kind, str) or kind not in ACCOUNT_KINDS:
                raise e.InvalidArgument(
                    f"account kind {shown_value(kind)}: choose one of {', '.join(ACCOUNT_KINDS)}"
                )
            self._check_new_account(account)
            self._state.do_open_account(account, ACCOUNT_KINDS[kind])
            return self._journal(r.AccountOpened, who, "", account=account, account_kind=kind)

    def open_wallet(self, wallet: str, *, asset: str, actor: str | None = None) -> Receipt:
        """Open a custody wallet holding ``asset``: the reserve side of the books."""
        with self._lock:
            who = self._authorize(actor, "open_wallet")
            check_id(wallet, "wallet")
            a = self._asset(asset)
            self._check_new_account(wallet)
            self._state.do_open_account(wallet, c.KIND_WALLET, a)
            return self._journal(r.WalletOpened, who, "", wallet=wallet, asset=asset)

    # -- money ------------------------------------------------------------------------

    def deposit(
        self,
        account: str,
        asset: str,
        amount: AmountLike,
        *,
        wallet: str,
        ref: str,
        actor: str | None = None,
    ) -> Receipt:
        """Credit a confirmed deposit into ``wallet`` to ``account``.

        Idempotent on (wallet, ref): the same deposit again returns the first
        receipt with ``replayed=True``; the same ref with other content is
        :class:`~solvent.DuplicateRef`.
        """
        with self._lock:
            who = self._authorize(actor, "deposit")
            check_id(ref, "ref")
            a = self._asset(asset)
            acct = self._account(account, "account")
            w = self._account(wallet, "wallet")
            amount_minor = to_minor(amount, self._state.asset_decimals[a], asset=asset,
                                    account=account)
            core = self._state.core
            if core.kind(w) != c.KIND_WALLET:
                raise e.UnknownWallet(f"{wallet!r} is an account, not a custody wallet",
                                      wallet=wallet)
            if core.kind(acct) == c.KIND_WALLET:
                raise e.InvalidArgument(f"{account!r} is a wallet; deposit to an account",
                                        account=account)
            if core.wallet_asset(w) != a:
                held = self._state.asset_names[core.wallet_asset(w)]
                raise e.AssetMismatch(
                    f"wallet {wallet!r} holds {held}, not {asset}",
                    wallet=wallet, asset=asset, wallet_asset=held,
                )
            prior = self._deposit_seen(wallet, ref)  # credited, detected or voided
            if prior is not None:
                if prior[:3] != (account, asset, amount_minor):
                    raise e.DuplicateRef(
                        f"deposit ref {ref!r} on wallet {wallet!r} was used for "
                        f"{prior[2]} minor units of {prior[1]} to {prior[0]!r}",
                        ref=ref, wallet=wallet,
                    )
                if (wallet, ref) in self._custody.voided:
                    raise e.InvalidState(
                        f"deposit {ref!r} on wallet {wallet!r} was voided: its ref is spent "
                        "(a deposit that did arrive needs a ref of its own)", ref=ref,
                        wallet=wallet)
                if (wallet, ref) not in self._state.deposit_refs:
                    raise e.InvalidState(
                        f"deposit {ref!r} on wallet {wallet!r} was detected and is not "
                        "credited: confirm_deposit or void_deposit it", ref=ref, wallet=wallet)
                return Receipt(position=prior[3], ref=ref, replayed=True)
            self._check_credit_room(who, ref, "deposit", account, wallet, asset, amount_minor)
            code = self._state.do_post(w, acct, a, amount_minor)
            if code:
                raise self._rejection(code, "deposit", account, asset, amount_minor)
            self._state.deposit_refs[(wallet, ref)] = (
                account, asset, amount_minor, self._state.position + 1
            )
            return self._journal(
                r.Deposited, who, ref,
                account=account, wallet=wallet, asset=asset, amount_minor=amount_minor,
            )

    def transfer(
        self,
        from_account: str,
        to_account: str,
        asset: str,
        amount: AmountLike,
        *,
        ref: str,
        memo: str = "",
        actor: str | None = None,
    ) -> Receipt:
        """Move ``amount`` of ``asset`` from one account's available balance to another's.

        Idempotent on ``ref``. Refused (and, when ``from_account`` is a company
        account, journaled as a rejection) if it would overdraw the source.
        """
        with self._lock:
            check_id(ref, "ref")
            check_text(memo, "memo")
            a = self._asset(asset)
            debit = self._account(from_account, "account")
            credit = self._account(to_account, "account")
            who = self._authorize(actor, "transfer", debit_account=from_account)
            amount_minor = to_minor(amount, self._state.asset_decimals[a], asset=asset,
                                    account=from_account)
            core = self._state.core
            for name, idx in ((from_account, debit), (to_account, credit)):
                if core.kind(idx) == c.KIND_WALLET:
                    raise e.InvalidArgument(
                        f"{name!r} is a custody wallet; transfers move money between accounts",
                        account=name,
                    )
            if debit == credit:
                raise e.SameAccount(
                    f"transfer from {from_account!r} to itself", account=from_account
                )
            prior = self._state.transfer_refs.get(ref)
            if prior is not None:
                p_debit, p_credit, p_asset, p_amount, p_memo, p_position = prior
                if (p_debit, p_credit, p_asset, p_amount, p_memo) != (
                        debit, credit, a, amount_minor, memo):
                    names = self._state.account_names
                    raise e.DuplicateRef(
                        f"transfer ref {ref!r} was used for {p_amount} minor units of "
                        f"{self._state.asset_names[p_asset]} from {names[p_debit]!r} to "
                        f"{names[p_credit]!r}",
                        ref=ref,
                    )
                return Receipt(position=p_position, ref=ref, replayed=True)
            refs = self._state.transfer_refs
            try:  # room in the index before the post, so that recording it cannot fail
                refs.reserve(ref, memo)
            except OverflowError:
                raise e.LimitExceeded(
                    f"the transfer-ref index holds its maximum of {refs.max_refs} transfers",
                    ref=ref,
                ) from None
            code = self._state.do_post(debit, credit, a, amount_minor)
            if code:
                rejection = self._rejection(code, "transfer", from_account, asset, amount_minor,
                                            to_account=to_account)
                if core.kind(debit) == c.KIND_COMPANY:
                    self._journal_rejection(who, ref, "transfer", rejection, from_account,
                                            asset, amount_minor)
                raise rejection
            return self._journal(
                r.Transferred, who, ref,
                from_account=from_account, to_account=to_account, asset=asset,
                amount_minor=amount_minor, memo=memo,
            )

    def transfer_many(
        self,
        from_index: Sequence[int],
        to_index: Sequence[int],
        asset_index: Sequence[int],
        amount_minor: Sequence[int],
        *,
        ref: str,
        actor: str | None = None,
    ) -> BulkResult:
        """The bulk path: many transfers by account/asset number and minor units.

        Columns are sequences of ints (``array('q')`` is taken without a copy).
        Each item is applied on its own, in order; the result holds one code per
        item (``solvent.core.codes``), and no exception is raised for refused
        items. Items naming a custody wallet are refused (``wrong_kind``).
        Operators and the system only. Idempotent on ``ref``.
        """
        with self._lock:
            who = self._authorize(actor, "transfer_many")
            check_id(ref, "ref")
            cols = (
                _int64_column(from_index, "from_index"),
                _int64_column(to_index, "to_index"),
                _int64_column(asset_index, "asset_index"),
                _int64_column(amount_minor, "amount_minor"),
            )
            n = len(cols[0])
            if any(len(col) != n for col in cols):
                raise e.InvalidArgument(
                    "transfer_many columns differ in length: "
                    + ", ".join(str(len(col)) for col in cols)
                )
            if not 1 <= n <= MAX_BULK_ITEMS:
                raise e.LimitExceeded(
                    f"transfer_many takes 1..{MAX_BULK_ITEMS} items, got {n}", items=n
                )
            raw = (column_bytes(cols[0]), column_bytes(cols[1]), column_bytes(cols[2]),
                   column_bytes(cols[3]))
            digest = bulk_content_digest(raw)
            prior = self._state.bulk_refs.get(ref)
            if prior is not None:
                if prior[0] != digest:
                    raise e.DuplicateRef(f"bulk ref {ref!r} was used for other items", ref=ref)
                return self._bulk_result_at(prior[1], ref)
            outcome = self._state.do_bulk(cols)
            position = self._state.position + 1
            self._state.bulk_refs[ref] = (digest, position)
            self._journal(
                r.TransfersBulk, who, ref,
                from_index=raw[0], to_index=raw[1], asset_index=raw[2], amount_minor=raw[3],
                outcome=outcome,
            )
            return BulkResult(
                position=position, ref=ref, applied=outcome.count(0), outcomes=outcome
            )

    def freeze_account(self, account: str, *, reason: str, actor: str | None = None) -> Receipt:
        """Freeze ``account``: no debits and no holds until unfrozen. One event, in
        one commit with the cancellation of the account's resting orders (a frozen
        account's orders stop trading at once)."""
        return self._set_frozen(account, reason, actor, True)

    def unfreeze_account(
        self, account: str, *, reason: str, actor: str | None = None
    ) -> Receipt:
        """Lift the freeze on ``account``. One event."""
        return self._set_frozen(account, reason, actor, False)

    # -- group commit --------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[Ledger]:
        """Group many commands into one commit (at most ``MAX_BATCH_RECORDS`` records).

        Commands inside apply at once (later ones see earlier ones) but are
        durable only when the outermost block exits and its batch commits. If a
        block raises, none of its commands took effect (a nested block is a
        savepoint: the commands before it stay pending); if the commit fails,
        none of the batch took effect. Journaled rejections from a rolled-back
        block are kept: they are the forensic trace.

        Where a lost connection cut off the reply to a commit the server made, the
        ledger finds its batch in the journal and the block exits normally; where
        the store cannot be read back, :class:`~solvent.CommitOutcomeUnknown`
        (docs/journal.md, "When the store fails mid-commit").
        """
        with self._lock:
            self._check_open()
            if self._lost is not None and self._depth == 0:
                self._recover()  # a new batch starts from the journal, or not at all
            mark = len(self._pending)
            self._depth += 1
            ok = False
            try:
                yield self
                ok = True
            finally:
                self._depth -= 1
                if not ok:
                    self._abort(mark)
                elif self._depth == 0:
                    self._commit()

    # -- journal, snapshots and verification ----------------------------------------------

    def snapshot(self) -> int:
        """Store a snapshot of the state at the last commit; return its batch version."""
        with self._lock:
            self._check_open()
            if self._pending:
                raise e.InvalidState("snapshot() with uncommitted commands inside batch()")
            snap = self._state.to_snapshot()
            self._store.put_snapshot(snap.version, r.encoder.encode(snap))
            self._last_snapshot_position = self._state.position
            return snap.version

    def records(self, after_position: int = 0) -> Iterator[r.JournalRecord]:
        """Every committed journal record after ``after_position``, in order, read from
        the store page by page as the iteration goes. A failed commit may replace the
        ledger's store with one opened afresh (docs/journal.md, "When the store fails
        mid-commit"); an iteration then goes on through the new store from the batch
        after the last it read."""
        if isinstance(after_position, bool) or not isinstance(after_position, int):
            raise e.InvalidArgument(
                f"after_position must be an int, got {type(after_position).__name__}")
        self._check_open()
        return self._records(after_position)

    def _records(self, after_position: int) -> Iterator[r.JournalRecord]:
        version = -1
        expected = 0  # the position the next record must have (0: not known yet)
        while True:
            store = self._store
            try:
                if version < 0:  # where to start: no batch before it holds a later record
                    version = _last_batch_before(store, after_position + 1)
                for batch in store.read(version):
                    v = batch.originator_version
                    try:
                        records = r.batch_decoder.decode(batch.payload).records
                    except ValueError as exc:  # msgspec.DecodeError, or bad UTF-8 in a str
                        raise e.TamperDetected(f"batch {v} does not decode: {exc}",
                                               version=v) from exc
                    for rec in records:
                        if rec.position != expected and (
                            expected or rec.position > max(after_position, 0) + 1
                        ):  # positions are dense: a gap is a batch changed or removed
                            raise e.TamperDetected(
                                f"batch {v} holds position {rec.position} where position "
                                f"{expected or max(after_position, 0) + 1} was due "
                                "(verify() tells more)", version=v, position=records[0].position)
                        expected = rec.position + 1
                        if rec.position > after_position:
                            yield rec
                    version = v
                return
            except e.StoreError:
                if self._closed or self._store is store:
                    raise

    def verify(self, *, expect_head: str | None = None) -> VerifyReport:
        """Replay the whole journal from the store and check its hash chain.

        Raises :class:`~solvent.TamperDetected` naming the batch (and position)
        where stored bytes were changed, removed or reordered, where a snapshot
        differs from the replayed state, or where the replayed state at this ledger's
        version differs from this ledger's state. A store another writer has moved on
        past this ledger (a ``solvent proof`` command beside a running exchange) is
        not tampering: the whole store is verified, and this ledger compared with it
        at this ledger's version (``report.batches`` is the store's count).
        """
        with self._lock:
            self._check_open()
            if self._pending:
                raise e.InvalidState("verify() with uncommitted commands inside batch()")
            mine = self._state.version
            core = self._state.core_name
            at_mine: list[bytes] = [LedgerState(core).fingerprint()] if mine == 0 else []

            def watch(st: LedgerState) -> None:
                if st.version == mine:
                    at_mine.append(st.fingerprint())

            report, replayed = verify_store(self._store, core, expect_head, on_batch=watch)
            if replayed.version < mine:
                raise e.TamperDetected(
                    f"the store holds {replayed.version} batches but this ledger committed "
                    f"{mine} (batches were removed)", version=replayed.version + 1,
                )
            if at_mine != [self._state.fingerprint()]:
                raise e.TamperDetected(
                    f"the replayed state at batch {mine} differs from this ledger's state",
                    version=mine,
                )
            return report

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise e.LedgerClosed("the ledger is closed")

    def _asset(self, asset: str) -> int:
        number = self._state.asset_index.get(asset) if type(asset) is str else None
        if number is not None:  # registered, so a valid id
            return number
        check_id(asset, "asset")
        try:
            return self._state.asset_index[asset]
        except KeyError:
            raise e.UnknownAsset(f"unknown asset {asset!r}", asset=asset) from None

    def _account(self, name: str, what: str) -> int:
        number = self._state.account_index.get(name) if type(name) is str else None
        if number is not None:  # registered, so a valid id
            return number
        check_id(name, what)
        try:
            return self._state.account_index[name]
        except KeyError:
            cls = e.UnknownWallet if what == "wallet" else e.UnknownAccount
            raise cls(f"unknown {what} {name!r}", **{what: name}) from None

    def _check_new_account(self, name: str) -> None:
        if name in self._state.account_index:
            raise e.AlreadyExists(f"account or wallet {name!r} exists already", account=name)
        if self._state.core.n_accounts >= c.MAX_ACCOUNTS:
            raise e.LimitExceeded(f"the ledger holds the maximum of {c.MAX_ACCOUNTS} accounts")

    def _authorize(self, actor: str | None, command: str, debit_account: str = "") -> str:
        self._check_open()
        if len(self._pending) >= MAX_BATCH_RECORDS:
            raise e.LimitExceeded(
                f"a batch holds at most {MAX_BATCH_RECORDS:,} records; commit this one first",
                limit=MAX_BATCH_RECORDS,
            )
        who = self._actor if actor is None else check_id(actor, "actor")
        role = self._state.actors.get(who)
        if role is None:
            raise e.UnknownActor(f"unknown actor {who!r}; register it first", actor=who)
        if role in ("operator", "system"):
            return who
        if (
            role == "customer"
            and command in _CUSTOMER_COMMANDS
            and debit_account == who
            and self._state.core.kind(self._state.account_index[who]) == c.KIND_CUSTOMER
        ):
            return who
        raise e.PermissionDenied(
            f"actor {who!r} ({role}) may not {command}"
            + (f" from {debit_account!r}" if debit_account else ""),
            actor=who, role=role, command=command,
        )

    def _rejection(
        self, code: int, command: str, account: str, asset: str, amount_minor: int, **extra: Any
    ) -> e.Rejected:
        a = self._state.asset_index[asset]
        dec = self._state.asset_decimals[a]
        acct = self._state.account_index[account]
        available = self._state.core.available(acct, a)
        amount_txt = f"{from_minor(amount_minor, dec):f} {asset}"  # :f, never '0E-8'
        if code == c.INSUFFICIENT_FUNDS:
            msg = (f"{command} of {amount_txt} from {account!r}: available "
                   f"{from_minor(available, dec):f} {asset} does not cover it")
        elif code == c.ACCOUNT_FROZEN:
            msg = f"{command} of {amount_txt}: account {account!r} is frozen"
        elif code == c.OVERFLOW:
            msg = f"{command} of {amount_txt} would push custody of {asset} past int64 minor units"
        else:
            msg = f"{command} of {amount_txt} for {account!r} refused: {c.CODE_NAMES[code]}"
        cls = _REJECTION_FOR_CODE.get(code, e.Rejected)
        return cls(msg, account=account, asset=asset, amount_minor=amount_minor,
                   available_minor=available, **extra)

    def _journal_rejection(
        self, who: str, ref: str, command: str, rejection: e.Rejected, account: str,
        asset: str, amount_minor: int,
    ) -> None:
        self._journal(
            r.CommandRejected, who, ref, command=command, code=rejection.code,
            message=rejection.message, account=account, asset=asset, amount_minor=amount_minor,
        )

    def _set_frozen(self, account: str, reason: str, actor: str | None, frozen: bool) -> Receipt:
        with self._lock:
            who = self._authorize(actor, "freeze_account" if frozen else "unfreeze_account")
            check_text(reason, "reason")
            if not reason:
                raise e.InvalidArgument("a freeze or unfreeze needs a reason")
            acct = self._account(account, "account")
            if self._state.core.kind(acct) == c.KIND_WALLET:
                raise e.InvalidArgument(f"{account!r} is a wallet, not an account")
            if self._state.core.is_frozen(acct) == frozen:
                state_txt = "frozen" if frozen else "not frozen"
                raise e.InvalidState(f"account {account!r} is already {state_txt}",
                                     account=account)
            with self.batch():  # one commit: the freeze and the cancels it causes
                if frozen:  # a frozen account's resting orders stop trading at once
                    for order in self._state.markets.orders_of(acct):
                        self.cancel_order(order.order_id, actor=who)
                self._state.core.set_frozen(acct, frozen)
                cls = r.AccountFrozen if frozen else r.AccountUnfrozen
                return self._journal(cls, who, "", account=account, reason=reason)

    def _now(self) -> int:
        """The command time: the clock, never before the last journaled time. A reading
        that is not an int in 0..2**63-1 (``time.time``'s float, say) is refused before
        it reaches a record: the journal could not be decoded again."""
        now = self._clock()
        if type(now) is not int or not 0 <= now <= c.INT64_MAX:
            raise e.InvalidArgument(
                f"the ledger's clock returned {shown_value(now)}: a clock returns int "
                "nanoseconds since the epoch (time.time_ns), 0..2**63-1")
        return max(now, self._state.last_time_ns)

    def _emit(self, cls: type[r.Record], actor: str, ref: str, *, time_ns: int | None = None,
              **fields: Any) -> Receipt:
        """Journal a record whose change is made by its handler (``state.apply``):
        the live path and the replay path are one. The command validated
        everything first, so the handler cannot refuse it. ``time_ns``: the command
        time the command validated against (a ``_now()`` reading of this command),
        where replay checks the record against its own time; else the clock now."""
        state = self._state
        rec = cls(position=state.position + 1,
                  time_ns=self._now() if time_ns is None else time_ns, actor=actor, ref=ref,
                  **fields)
        try:
            state.apply(rec)
        except BaseException as exc:  # the handler may have changed part of the state
            self._abort(len(self._pending))
            if isinstance(exc, e.TamperDetected):  # a validation gap: a bug, not tampering
                raise AssertionError(
                    f"{cls.__name__} passed validation but not apply: {exc}") from exc
            raise
        self._pending.append(rec)  # type: ignore[arg-type]
        if self._depth == 0:
            self._commit()
        return Receipt(position=rec.position, ref=ref)

    def _journal(self, cls: type[R], actor: str, ref: str, **fields: Any) -> Receipt:
        """Record a command whose state change was just applied; commit unless batching."""
        state = self._state
        try:
            now = self._now()
        except BaseException:  # a bad reading, or a clock that raised (an interrupt too):
            # the change is made but cannot be journaled, so undo it before it is seen
            self._abort(len(self._pending))
            raise
        rec = cls(position=state.position + 1, time_ns=now, actor=actor, ref=ref, **fields)
        state.advance(rec)
        if isinstance(rec, r.Transferred):  # the idempotency index, by number
            state.transfer_refs.add(
                ref, state.account_index[rec.from_account], state.account_index[rec.to_account],
                state.asset_index[rec.asset], rec.amount_minor, rec.memo, rec.position,
            )
        self._pending.append(rec)  # type: ignore[arg-type]
        if self._depth == 0:
            self._commit()
        return Receipt(position=rec.position, ref=ref)

    def _commit(self) -> None:
        if self._lost is not None:  # lost inside this batch(): its commands are gone
            why = self._lost
            self._pending = []
            with suppress(e.StoreError):  # else the next call tries again
                self._recover()
            raise type(why)(f"the batch did not take effect: {why}") from why
        if not self._pending:
            return
        state = self._state
        version = state.version + 1
        try:
            payload = r.encoder.encode(
                r.Batch(version=version, first_position=self._pending[0].position,
                        records=self._pending)
            )
        except Exception as exc:  # a field passed validation but not the schema: a bug
            self._pending = []
            self._reload("a batch that could not be encoded")
            raise AssertionError(f"batch {version} could not be encoded ({_one_line(exc)}); "
                                 "none of it took effect") from exc
        sealed = StoredBatch.seal(version, state.head_digest, payload)
        try:
            self._store.append(sealed)
        except BaseException as failure:
            self._pending = []
            if not self._landed(failure, version, sealed.digest):
                raise
            return  # the server made the commit; only its reply was lost
        self._pending = []
        state.version = version
        state.head_digest = sealed.digest
        if state.position - self._last_snapshot_position >= self._snapshot_every:
            self._auto_snapshot()

    def _auto_snapshot(self) -> None:
        """A snapshot the ledger takes by itself: its failure is kept in
        ``last_snapshot_error``, not raised from a command that did commit."""
        try:
            self.snapshot()
        except e.StoreError as exc:
            self.last_snapshot_error = exc
            self._last_snapshot_position = self._state.position  # next try: a period on
        else:
            self.last_snapshot_error = None

    def _abort(self, mark: int) -> None:
        """Roll back the pending records from ``mark`` on (a savepoint): reload the
        committed state, re-apply the records before ``mark``, and keep the
        journaled rejections (and observations) of the rolled-back part. If the store
        cannot be read back, the state is lost (:class:`_LostState`) and so is the whole
        batch; if another writer committed meanwhile, the records before ``mark``
        follow a state the store has moved past, and the batch is fenced at its end."""
        keep = self._pending[:mark]
        kept = [rec for rec in self._pending[mark:] if isinstance(rec, _KEEP_ON_ABORT)]
        self._pending = []
        if self._lost is not None and self._depth:
            return  # lost earlier in this batch: nothing to roll back to until it ends
        built_on = self._state.version  # the commit the pending records follow
        self._reload("a rollback")
        if keep and self._state.version != built_on:
            # applying them again would read as tampering ("position 4 follows
            # position 4"): the batch cannot commit; what it observed still is journaled
            self._commit_kept(kept)
            self._lose_state(e.WriterFenced(
                f"another writer committed batch {self._state.version} while this batch() "
                f"was open (it followed batch {built_on}): none of it can take effect"))
            return
        for rec in keep:
            self._state.apply(rec)
        self._pending = list(keep)
        if self._depth == 0:
            self._commit_kept(kept)
        else:  # committed with the batch around the savepoint
            self._emit_kept(kept)

    def _emit_kept(self, kept: Sequence[r.JournalRecord]) -> None:
        """Journal again, on the state now, the records a rollback keeps: those whose
        wallet or asset still exists (an attestation of a wallet the rolled-back block
        opened goes with it)."""
        st = self._state
        kept = [rec for rec in kept if not isinstance(rec, (r.Attested, r.AssetHalted))
                or (rec.asset in st.asset_index and (
                    not isinstance(rec, r.Attested)
                    or st.account_index.get(rec.wallet) in st.wallet_accounts))]
        if not kept:
            return
        self._depth += 1
        try:
            for rec in kept:
                fields = msgspec.structs.asdict(rec)
                for k in ("position", "time_ns", "actor", "ref"):
                    fields.pop(k)
                self._emit(type(rec), rec.actor, rec.ref, **fields)
            for rec in kept:  # a kept attestation's halt checks ran against the state
                # rolled back: run them again on the state kept (a shortfall the block's
                # commands hid is a halt now; a halt already kept is not made twice)
                if isinstance(rec, r.Attested):
                    a = self._state.asset_index[rec.asset]
                    self._halt_if_needed(rec.actor, a, self._custody.reconcile(a, self._now()),
                                         only_wallet=rec.wallet)
        finally:
            self._depth -= 1

    def _commit_kept(self, kept: Sequence[r.JournalRecord]) -> None:
        """``_emit_kept`` and commit them now, as a batch of their own: tried again on
        the store's newer state if another writer fences the commit (it reloads)."""
        for attempt in range(KEPT_COMMIT_ATTEMPTS):
            depth, self._depth = self._depth, 0  # (inside a fenced batch: committed now)
            try:
                self._emit_kept(kept)
                self._commit()
                return
            except e.WriterFenced:
                self._pending = []
                if attempt == KEPT_COMMIT_ATTEMPTS - 1:
                    raise
            finally:
                self._depth = depth

    def _reload(self, what: str) -> None:
        """Take the committed state from the store again, dropping what the pending
        records changed. If the store cannot be read back, the state is lost
        (:class:`_LostState`) and so are this ledger's uncommitted commands."""
        try:
            state = load_state(self._store, self._core_name)
        except BaseException as exc:
            why = e.StoreError(f"{what} could not read the store back ({_one_line(exc)}); "
                               "this ledger's uncommitted commands did not take effect")
            self._lose_state(why)
            if not isinstance(exc, Exception):
                raise  # an interrupt stays an interrupt
            raise why from exc
        self._install(state)

    def _state_at(self, position: int) -> LedgerState:
        """The state right after journal ``position`` (a committed position), rebuilt
        from the store: the newest snapshot at or before it, then the journal."""
        if isinstance(position, bool) or not isinstance(position, int):
            raise e.InvalidArgument(f"position must be an int, got {type(position).__name__}")
        if self._pending:
            raise e.InvalidState("point-in-time reads inside batch() with uncommitted commands")
        if not 0 <= position <= self._state.position:
            raise e.InvalidArgument(
                f"position {shown_value(position)} is outside the journal "
                f"(0..{self._state.position})")
        if position == self._state.position:
            return self._state
        return state_at(self._store, self._state.core_name, position)

    def _install(self, state: LedgerState) -> None:
        """Take ``state``, just rebuilt from the store, as this ledger's state."""
        self._state = state
        self._lost = None
        # rolled-back accounts free their numbers for others: drop what was derived
        self._trees = {}
        self._leaf_key_cache = []
        self._last_snapshot_position = state.snapshot_position

    def _lose_state(self, why: e.StoreError) -> None:
        """Stop trusting the in-memory state, which may hold commands that the journal
        does not: until the store can be read again, every use of the state raises."""
        self._lost = why
        self._pending = []
        self._trees = {}
        self._leaf_key_cache = []
        self._state = cast(LedgerState, _LostState(self))

    def _recover(self) -> LedgerState:
        """The state rebuilt from the store, for a ledger whose state was lost; raises
        (the error that lost it, updated) while the store cannot be read, and inside the
        ``batch()`` whose commands were lost."""
        with self._lock:
            why = self._lost
            if why is None:  # another thread recovered first
                return self._state
            if self._depth:
                raise type(why)(f"{why} (leave this batch(): none of it can take "
                                "effect)") from why
            try:
                state = self._read_back()
            except Exception as exc:
                raise type(why)(f"{why}; the store still cannot be read: "
                                f"{_one_line(exc)}") from exc
            self._install(state)
            return state

    def _read_back(self) -> LedgerState:
        """The state rebuilt from the store through fresh connections, after the store
        failed: a pool that lost its server may wait long between attempts to
        reconnect, and each read is tried ``attempts`` times, while opening a store
        fails after one wait (``connect_timeout``). The fresh store replaces the old."""
        old = self._store
        if old.backend == "memory":
            return load_state(old, self._core_name)
        store = JournalStore(old.url, create=False)
        try:
            state = load_state(store, self._core_name)
        except BaseException:
            store.close()
            raise
        old.close()
        self._store = store
        return state

    def _landed(self, failure: BaseException, version: int, digest: bytes) -> bool:
        """After the append of batch ``version`` (sealed with ``digest``) raised
        ``failure``: read the store back and tell whether the batch is in the journal
        all the same (a lost connection can cut off the reply to a commit the server
        made; eventsourcing then retries and meets its own row). The state is then the
        journal's either way. Raises :class:`~solvent.CommitOutcomeUnknown` when the
        store cannot be read back."""
        try:
            state = self._read_back()
        except BaseException as exc:
            why = e.CommitOutcomeUnknown(
                f"the commit of batch {version} failed ({_one_line(failure)}) and the store "
                f"could not be read back ({_one_line(exc)}): whether batch {version} is in "
                "the journal is unknown until the store answers")
            self._lose_state(why)
            if not isinstance(exc, Exception):
                raise  # an interrupt stays an interrupt
            if not isinstance(failure, Exception):
                raise failure from exc
            raise why from failure
        self._install(state)
        if state.version < version or not isinstance(failure, Exception):
            return False
        if state.version == version:
            return state.head_digest == digest
        ours = self._store.batch_at(version)
        return ours is not None and ours.digest == digest

    def _bulk_result_at(self, position: int, ref: str) -> BulkResult:
        for rec in self.records(after_position=position - 1):
            if isinstance(rec, r.TransfersBulk) and rec.position == position:
                return BulkResult(position=position, ref=ref, applied=rec.outcome.count(0),
                                  outcomes=rec.outcome, replayed=True)
            break
        for rec in self._pending:
            if isinstance(rec, r.TransfersBulk) and rec.position == position:
                return BulkResult(position=position, ref=ref, applied=rec.outcome.count(0),
                                  outcomes=rec.outcome, replayed=True)
        raise AssertionError(f"bulk ref {ref!r} points at position {position}, not found")


class _LostState:
    """Stands in for the state of a ledger that could not read its store back after a
    failed commit or rollback (``Ledger._lose_state``). The state in memory then may
    hold commands that the journal does not, so it is dropped: any use of this
    stand-in rebuilds the state from the store first (``Ledger._recover``) and raises
    while the store cannot be read. No balance the journal does not hold is ever shown
    or built on. The happy path pays nothing for it."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: Ledger) -> None:
        object.__setattr__(self, "_ledger", ledger)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger._recover(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._ledger._recover(), name, value)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _int64_column(values: Sequence[int], name: str) -> array:  # type: ignore[type-arg]
    if isinstance(values, array) and values.typecode == "q":
        return values
    if isinstance(values, (str, bytes, bytearray)) or not isinstance(
            values, (Sequence, array, memoryview)):  # array() would read a bytearray's raw
        # bytes as packed int64s; a set or dict has no order to pair its items by
        raise e.InvalidArgument(f"{name} must be a sequence of ints (a list, array('q')), "
                                f"not {type(values).__name__}")
    try:
        column = array("q", values)
    except TypeError as exc:
        if isinstance(values, Iterable) and any(isinstance(v, float) for v in values):
            raise e.FloatAmount(f"{name}: floats are not accepted; pass ints") from exc
        raise e.InvalidArgument(f"{name} must be a sequence of ints: {exc}") from exc
    except OverflowError as exc:
        raise e.InvalidAmount(f"{name}: a value does not fit int64") from exc
    if not isinstance(values, (array, memoryview)) and any(type(v) is bool for v in values):
        refusal = e.InvalidAmount if name == "amount_minor" else e.InvalidArgument
        raise refusal(f"{name}: a bool is not an int here; pass ints")
    return column


def load_state(store: JournalStore, core: str) -> LedgerState:
    """The latest snapshot of this format plus the journal after it (a snapshot of
    another format is replayed past)."""
    state: LedgerState | None = None
    for version, payload in store.snapshots_desc():
        if _snapshot_head(version, payload).format != SNAPSHOT_FORMAT:
            continue
        try:
            snap = snapshot_decoder.decode(payload)
        except ValueError as exc:  # msgspec.DecodeError, or UnicodeDecodeError in a str
            raise e.TamperDetected(f"snapshot at batch {version} does not decode: {exc}",
                                   version=version) from exc
        if snap.version != version:
            raise e.TamperDetected(f"snapshot stored at batch {version} claims {snap.version}",
                                   version=version)
        try:
            state = LedgerState.from_snapshot(snap, core)
        except _SNAPSHOT_LOAD_ERRORS as exc:  # a broken invariant, or a field of the wrong shape
            raise e.TamperDetected(f"snapshot at batch {version} does not load: {exc!r}",
                                   version=version) from exc
        check_snapshot_head(store, state)
        break
    if state is None:
        state = LedgerState(core)
    replay_into(state, store)
    if state.version and store.last_version() < state.version:
        # the journal ends before its snapshot: never append past the hole
        raise e.TamperDetected(
            f"a snapshot exists at batch {state.version} but the journal ends at batch "
            f"{store.last_version()} (batches were removed)",
            version=store.last_version() + 1,
        )
    return state


def _snapshot_head(version: int, payload: bytes) -> SnapshotHead:
    """A stored snapshot's version, position and format, read without decoding the rest."""
    try:
        return snapshot_head_decoder.decode(payload)
    except ValueError as exc:  # msgspec.DecodeError, or UnicodeDecodeError in a str
        raise e.TamperDetected(f"snapshot at batch {version} does not decode: {exc}",
                               version=version) from exc


def check_snapshot_head(store: JournalStore, state: LedgerState) -> None:
    """The stored batch ``state.version`` must be the one a snapshot's state follows:
    its digest the snapshot's head digest, its last record at the snapshot's position.
    Replay checks that the next batch links to the snapshot; where none follows it, a
    wrong head digest or position would have become the base of the next commit, an
    honest batch that the journal alone then shows as broken (before 2026-11-22)."""
    version = state.version
    batch = store.batch_at(version)
    if batch is None:  # the journal ends before its snapshot: never append past the hole
        last = store.last_version()
        raise e.TamperDetected(
            f"a snapshot exists at batch {version} but the journal ends at batch {last} "
            "(batches were removed)", version=last + 1)
    verify_link(batch, version, batch.prev_digest)  # well-formed, its bytes its digest's
    try:
        decoded = r.batch_decoder.decode(batch.payload)
    except ValueError as exc:
        raise e.TamperDetected(f"batch {version} does not decode: {exc}",
                               version=version) from exc
    last_position = decoded.first_position + len(decoded.records) - 1
    if batch.digest != state.head_digest or last_position != state.position:
        raise e.TamperDetected(
            f"snapshot at batch {version} does not match the journal: it follows digest "
            f"{state.head_digest.hex()[:16]}… at position {state.position}, and batch "
            f"{version} is {batch.digest.hex()[:16]}… ending at position {last_position}",
            version=version)


# What loading a well-encoded but forged snapshot may raise before TamperDetected.
_SNAPSHOT_LOAD_ERRORS = (AssertionError, ValueError, TypeError, KeyError, IndexError,
                         OverflowError, AttributeError)


def state_at(store: JournalStore, core: str, position: int) -> LedgerState:
    """The state right after ``position``: the newest snapshot of this format at or
    before it (the newer ones only have their heads decoded), then the journal up to it
    (checking the chain on the way)."""
    state: LedgerState | None = None
    for version, payload in store.snapshots_desc():
        head = _snapshot_head(version, payload)
        if head.position > position or head.format != SNAPSHOT_FORMAT:
            continue
        try:
            snap = snapshot_decoder.decode(payload)
            state = LedgerState.from_snapshot(snap, core)
        except _SNAPSHOT_LOAD_ERRORS as exc:
            raise e.TamperDetected(f"snapshot at batch {version} does not load: {exc!r}",
                                   version=version) from exc
        check_snapshot_head(store, state)
        break
    if state is None:
        state = LedgerState(core)
    if state.position == position:
        return state
    for batch in store.read(after_version=state.version):
        version = state.version + 1
        verify_link(batch, version, state.head_digest)
        decoded = r.batch_decoder.decode(batch.payload)
        for rec in decoded.records:
            if rec.position > position:
                return state
            state.apply(rec)
        state.version = version
        state.head_digest = batch.digest
        if state.position == position:
            return state
    raise e.InvalidArgument(f"position {position} is beyond the stored journal")


def replay_into(
    state: LedgerState,
    store: JournalStore,
    on_batch: Callable[[LedgerState], None] | None = None,
) -> int:
    """Apply every stored batch after ``state.version``, checking the chain.
    Returns the number of records applied."""
    count = 0
    for batch in store.read(after_version=state.version):
        version = state.version + 1
        verify_link(batch, version, state.head_digest)
        try:
            decoded = r.batch_decoder.decode(batch.payload)
        except ValueError as exc:  # msgspec.DecodeError, or UnicodeDecodeError in a str
            raise e.TamperDetected(f"batch {version} does not decode: {exc}",
                                   version=version) from exc
        if decoded.version != version or decoded.first_position != state.position + 1:
            raise e.TamperDetected(
                f"batch {version} claims version {decoded.version} at position "
                f"{decoded.first_position}; expected position {state.position + 1}",
                version=version, position=state.position + 1,
            )
        try:
            state.apply_records(decoded.records)
        except e.TamperDetected as exc:
            exc.version = version
            raise
        count += len(decoded.records)
        state.version = version
        state.head_digest = batch.digest
        if on_batch is not None:
            on_batch(state)
    return count


def _last_batch_before(store: JournalStore, position: int) -> int:
    """A version after which the stored batches hold every record from ``position``
    on: the one before the batch that holds ``position`` (0 for the start). Found by
    bisecting the versions on each batch's first position, about log2(batches) reads
    of one batch each, rather than a read of the journal up to it. (A version missing
    from the store counts as the batch after it; the reader then finds the gap.)"""
    lo, hi = 0, store.last_version()  # lo: a batch that starts at or before position
    while lo < hi:
        mid = (lo + hi + 1) // 2
        stored = store.first_batch_from(mid)
        if stored is None:
            hi = mid - 1
            continue
        try:
            first = r.batch_head_decoder.decode(stored.payload).first_position
        except ValueError as exc:  # msgspec.DecodeError and ValidationError are ValueErrors
            v = stored.originator_version
            raise e.TamperDetected(f"batch {v} does not decode: {exc}", version=v) from exc
        if first <= position:
            lo = mid
        else:
            hi = mid - 1
    return max(lo - 1, 0)


def verify_store(
    store: JournalStore, core: str, expect_head: str | None = None,
    on_batch: Callable[[LedgerState], None] | None = None,
) -> tuple[VerifyReport, LedgerState]:
    """Full replay from position 1 with chain and snapshot checks (``on_batch`` sees
    the state after every batch, once it has been checked)."""
    if expect_head is not None and not (
        isinstance(expect_head, str) and _HEX_DIGEST_RE.fullmatch(expect_head)
    ):
        raise e.InvalidArgument("expect_head must be a digest of 64 hex digits, got "
                                + shown_value(expect_head))
    snapshots: dict[int, bytes] = {}
    for version, payload in store.snapshots_desc():
        snapshots[version] = payload
    state = LedgerState(core)
    checked = skipped = 0

    def check_snapshot(st: LedgerState) -> None:
        nonlocal checked, skipped
        payload = snapshots.get(st.version)
        if payload is None:
            return
        if _snapshot_head(st.version, payload).format != SNAPSHOT_FORMAT:
            skipped += 1  # not this code's to load, so not to compare
            return
        try:
            snap = snapshot_decoder.decode(payload)
        except ValueError as exc:  # msgspec.DecodeError, or UnicodeDecodeError in a str
            raise e.TamperDetected(f"snapshot at batch {st.version} does not decode: {exc}",
                                   version=st.version) from exc
        if r.encoder.encode(snap) != r.encoder.encode(st.to_snapshot()):
            raise e.TamperDetected(
                f"snapshot at batch {st.version} differs from the replayed state",
                version=st.version, position=st.position,
            )
        checked += 1

    def after_batch(st: LedgerState) -> None:
        check_snapshot(st)
        if on_batch is not None:
            on_batch(st)

    records = replay_into(state, store, after_batch)
    if state.version == 0 and snapshots:
        raise e.TamperDetected("snapshots exist but the journal is empty", version=1)
    stale = [v for v in snapshots if v > state.version]
    if stale:
        raise e.TamperDetected(
            f"a snapshot exists at batch {min(stale)} but the journal ends at batch "
            f"{state.version} (batches were removed)",
            version=state.version + 1,
        )
    if expect_head is not None and state.head_digest.hex() != expect_head.lower():
        raise e.TamperDetected(
            f"head digest {state.head_digest.hex()} is not the expected {expect_head}",
            version=state.version,
        )
    state.core.check_invariants()
    report = VerifyReport(batches=state.version, records=records,
                          head_digest=state.head_digest.hex(), snapshots_checked=checked,
                          snapshots_skipped=skipped)
    return report, state
