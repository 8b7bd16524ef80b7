"""The ledger state and the fold: ``state = fold(apply, records)``.

:class:`LedgerState` holds the registries (assets, accounts, wallets, actors),
the idempotency indexes and the balance core. Commands (``solvent.ledger``)
and replay both change it only through the ``do_*`` operations below, so the
live path and the replay path are one path. ``apply(record)`` is the replay
side: it re-runs a journal record and raises :class:`TamperDetected` when the
record does not apply exactly as it did when it was journaled.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable
from typing import Any, Final

import msgspec

from solvent import records as r
from solvent.amounts import MAX_DECIMALS
from solvent.core import BalanceCore, RefIndex, core_class, refs_class
from solvent.core import codes as c
from solvent.core.refs import text_bytes
from solvent.custody import CustodyState
from solvent.errors import TamperDetected
from solvent.markets import MarketState
from solvent.records import column_from_bytes

ROLES = ("customer", "operator", "auditor", "system")
ACCOUNT_KINDS = {"customer": c.KIND_CUSTOMER, "company": c.KIND_COMPANY}
BUILTIN_ACTORS = {"system": "system"}

# ``Ledger._authorize`` and ``_operator``, checked again on replay: operators and the
# system may make any record but these three, which only an operator makes (and, for
# the two approvals, not the one who asked: custody.py checks that)...
OPERATOR_RECORDS: frozenset[type] = frozenset(
    {r.WithdrawalApproved, r.ResumeRequested, r.AssetResumed}
)
# ...a customer makes only these, each spending from its own customer account (the
# field named here; ``OrdersSubmitted`` names the account by number, ``owner``), plus
# the stale-attestation halt its own order or withdrawal can trip; an auditor none.
CUSTOMER_RECORDS: dict[type, str] = {
    r.Transferred: "from_account",
    r.WithdrawalRequested: "account",
    r.OrderPlaced: "account",
    r.OrderCancelled: "account",
    r.OrderAmended: "account",
}


def bulk_content_digest(cols: tuple[bytes, bytes, bytes, bytes]) -> bytes:
    h = hashlib.sha256()
    for col in cols:
        h.update(len(col).to_bytes(8, "big"))
        h.update(col)
    return h.digest()


#: The layout and meaning of a :class:`Snapshot`. A snapshot of another format (0: written
#: before formats existed) is not loaded: the state is replayed past it from an earlier
#: snapshot of this format, or from genesis, and ``verify`` does not compare it. Bump it
#: whenever a field is added, removed or derived differently.
SNAPSHOT_FORMAT: Final = 1


class Snapshot(msgspec.Struct, frozen=True):
    """Everything needed to resume after batch ``version`` without replaying it."""

    version: int
    position: int
    head_digest: bytes
    last_time_ns: int
    assets: list[tuple[str, int]]
    accounts: list[str]
    actors: dict[str, str]
    deposit_refs: list[tuple[str, str, str, str, int, int]]
    transfer_refs: list[tuple[str, str, str, str, int, str, int]]
    bulk_refs: list[tuple[str, bytes, int]]
    core: dict[str, Any]
    custody: dict[str, Any]
    markets: dict[str, Any]
    format: int = 0


class SnapshotHead(msgspec.Struct, frozen=True):
    """What a reader decides on before decoding a snapshot whole (its other fields
    are skipped, whatever their format)."""

    version: int
    position: int
    format: int = 0


snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)
snapshot_head_decoder = msgspec.msgpack.Decoder(SnapshotHead)


class LedgerState:
    """Registries, idempotency indexes and balances: the fold of the journal."""

    def __init__(self, core: str) -> None:
        self.core_name = core
        self.core: BalanceCore = core_class(core)()
        self.asset_index: dict[str, int] = {}
        self.asset_names: list[str] = []
        self.asset_decimals: list[int] = []
        self.account_index: dict[str, int] = {}  # accounts and wallets share numbering
        self.account_names: list[str] = []
        self.wallet_accounts: set[int] = set()  # numbers of the custody wallets
        self.actors: dict[str, str] = dict(BUILTIN_ACTORS)
        # (wallet, ref) -> (account, asset, amount_minor, position)
        self.deposit_refs: dict[tuple[str, str], tuple[str, str, int, int]] = {}
        # ref -> (debit, credit, asset, amount_minor, memo, position) of the transfer
        # that used it, by number (solvent.core.refs; compiled: C arrays)
        self.transfer_refs: RefIndex = refs_class(core)()
        # ref -> (content digest, position)
        self.bulk_refs: dict[str, tuple[bytes, int]] = {}
        self.position = 0
        self.version = 0
        self.head_digest = bytes(32)
        self.last_time_ns = 0
        # the position of the snapshot this state was loaded from (0: replayed from
        # genesis); snapshot_every counts from it, not from the position at open
        self.snapshot_position = 0
        self._apply: dict[type, Callable[[Any], None]] = {
            r.ActorRegistered: self._apply_actor,
            r.AssetRegistered: self._apply_asset,
            r.AccountOpened: self._apply_account,
            r.WalletOpened: self._apply_wallet,
            r.Deposited: self._apply_deposit,
            r.Transferred: self._apply_transfer,
            r.TransfersBulk: self._apply_bulk,
            r.AccountFrozen: self._apply_freeze,
            r.AccountUnfrozen: self._apply_unfreeze,
            r.CommandRejected: self._apply_rejected,
        }
        self.custody = CustodyState(self)
        self._apply.update(self.custody.handlers())
        self.markets = MarketState(self)
        self._apply.update(self.markets.handlers())

    # -- operations shared by commands and replay ------------------------------

    def do_register_actor(self, name: str, role: str) -> None:
        self.actors[name] = role

    def do_register_asset(self, asset: str, decimals: int) -> None:
        self.asset_index[asset] = self.core.add_asset()
        self.asset_names.append(asset)
        self.asset_decimals.append(decimals)

    def do_open_account(self, name: str, kind: int, wallet_asset: int = -1) -> None:
        number = self.core.add_account(kind, wallet_asset)
        self.account_index[name] = number
        self.account_names.append(name)
        if kind == c.KIND_WALLET:
            self.wallet_accounts.add(number)
            self.custody.live_until.pop(wallet_asset, None)  # a new wallet is unattested

    def do_post(self, debit: int, credit: int, asset: int, amount_minor: int) -> int:
        return self.core.post(debit, credit, asset, amount_minor)

    def do_bulk(self, cols: tuple[array, array, array, array]) -> bytes:  # type: ignore[type-arg]
        out = bytearray(len(cols[0]))
        self.core.post_many(cols[0], cols[1], cols[2], cols[3], out)
        return bytes(out)

    def advance(self, rec: r.Record) -> None:
        """Account for one journaled record (position and command time)."""
        assert rec.position == self.position + 1, (rec.position, self.position)
        self.position = rec.position
        self.last_time_ns = max(self.last_time_ns, rec.time_ns)

    # -- replay -----------------------------------------------------------------

    def apply(self, rec: r.Record) -> None:
        """Re-run one journal record; raise TamperDetected if it does not fit."""
        if rec.position != self.position + 1:
            raise TamperDetected(
                f"position {rec.position} follows position {self.position}",
                position=rec.position,
            )
        if rec.time_ns < self.last_time_ns:  # the ledger's times never go back (Ledger._now;
            # last_time_ns starts at 0, so a time before 1970 is refused too)
            raise self._refuse(rec, f"is dated {rec.time_ns}, before the record before it "
                                    f"({self.last_time_ns})")
        if rec.actor not in self.actors:  # every command's actor was authorized
            raise self._refuse(rec, f"names the actor {rec.actor!r}, never registered")
        self._check_role(rec)
        try:
            self._apply[type(rec)](rec)
        except (KeyError, IndexError, ValueError, OverflowError) as e:
            raise TamperDetected(
                f"position {rec.position}: {type(rec).__name__} does not apply ({e!r})",
                position=rec.position,
            ) from e
        self.advance(rec)

    def apply_records(self, records: list[Any]) -> None:
        """``apply`` over one batch; runs of ``Transferred`` records take the core's
        ``replay_transfers`` loop (one call per run). A record that does not fit
        that loop exactly goes through ``apply``, which raises the exact
        TamperDetected; nothing was changed for it before that. At the end, every halt
        an attestation of the batch called for must have been journaled in it."""
        i, n = 0, len(records)
        replay = self.core.replay_transfers
        owed = self.custody.owed_halts
        owed.clear()
        while i < n:
            i, self.position, self.last_time_ns = replay(
                records, i, r.Transferred, self.account_index, self.asset_index,
                self.wallet_accounts, self.transfer_refs, self.position, self.last_time_ns,
                self.actors,
            )
            if i < n:
                self.apply(records[i])
                i += 1
        if owed:  # an attestation whose halt its batch left out
            (a, cause), (position, wallet) = min(owed.items(), key=lambda kv: kv[1])
            owed.clear()
            of = f"wallet {wallet!r} of " if wallet else ""
            raise TamperDetected(
                f"position {position}: Attested shows a {cause} of {of}"
                f"{self.asset_names[a]} that halts it, but its batch journals no halt",
                position=position)

    def _check_role(self, rec: r.Record) -> None:
        """Refuse a record its actor's role could not have made (``Ledger._authorize``)."""
        role = self.actors[rec.actor]
        kind = type(rec)
        if kind in OPERATOR_RECORDS:
            if role == "operator":
                return
        elif role in ("operator", "system"):
            return
        elif role == "customer" and self._is_customer(rec.actor):
            if kind is r.OrdersSubmitted:
                own = rec.owner == self.account_index[rec.actor]  # type: ignore[attr-defined]
            elif kind is r.AssetHalted:
                own = rec.cause == "stale"  # type: ignore[attr-defined]
            else:
                field = CUSTOMER_RECORDS.get(kind)
                own = field is not None and getattr(rec, field) == rec.actor
            if own:
                return
        raise self._refuse(rec, f"was made by {rec.actor!r} ({role}), whose role may not "
                                "make it")

    def _is_customer(self, actor: str) -> bool:
        """``actor`` names a customer account (a customer actor acts for that account)."""
        number = self.account_index.get(actor)
        return number is not None and self.core.kind(number) == c.KIND_CUSTOMER

    def _refuse(self, rec: r.Record, why: str) -> TamperDetected:
        return TamperDetected(
            f"position {rec.position}: {type(rec).__name__} {why}", position=rec.position
        )

    def _apply_actor(self, rec: r.ActorRegistered) -> None:
        if rec.role not in ROLES or rec.name in self.actors:
            raise self._refuse(rec, "registers an invalid or existing actor")
        self.do_register_actor(rec.name, rec.role)

    def _apply_asset(self, rec: r.AssetRegistered) -> None:
        if rec.asset in self.asset_index:
            raise self._refuse(rec, "registers an existing asset")
        if not 0 <= rec.decimals <= MAX_DECIMALS:  # register_asset's bound
            raise self._refuse(rec, f"gives {rec.asset!r} {rec.decimals} decimals (0..18)")
        self.do_register_asset(rec.asset, rec.decimals)

    def _apply_account(self, rec: r.AccountOpened) -> None:
        if rec.account in self.account_index or rec.account_kind not in ACCOUNT_KINDS:
            raise self._refuse(rec, "opens an existing account or an unknown kind")
        self.do_open_account(rec.account, ACCOUNT_KINDS[rec.account_kind])

    def _apply_wallet(self, rec: r.WalletOpened) -> None:
        if rec.wallet in self.account_index:
            raise self._refuse(rec, "opens an existing wallet")
        self.do_open_account(rec.wallet, c.KIND_WALLET, self.asset_index[rec.asset])

    def _apply_deposit(self, rec: r.Deposited) -> None:
        key = (rec.wallet, rec.ref)
        if key in self.deposit_refs:
            raise self._refuse(rec, "repeats a deposit ref")
        if rec.wallet in self.account_index:  # else the post below refuses it
            self.custody.check_credit(rec)
        code = self.do_post(
            self.account_index[rec.wallet],
            self.account_index[rec.account],
            self.asset_index[rec.asset],
            rec.amount_minor,
        )
        if code:
            raise self._refuse(rec, f"is refused by the core ({c.CODE_NAMES[code]})")
        self.deposit_refs[key] = (rec.account, rec.asset, rec.amount_minor, rec.position)

    def _apply_transfer(self, rec: r.Transferred) -> None:
        if type(rec.ref) is not str or type(rec.memo) is not str:
            raise self._refuse(rec, "has a ref or memo that is not a str")
        if rec.ref in self.transfer_refs:
            raise self._refuse(rec, "repeats a transfer ref")
        # what the index must take, checked before the post (ValueError: TamperDetected)
        text_bytes(rec.ref, "ref")
        text_bytes(rec.memo, "memo")
        if len(self.transfer_refs) >= self.transfer_refs.max_refs:
            raise self._refuse(rec, "overflows the transfer-ref index")
        debit = self.account_index[rec.from_account]
        credit = self.account_index[rec.to_account]
        if c.KIND_WALLET in (self.core.kind(debit), self.core.kind(credit)):
            raise self._refuse(rec, "names a custody wallet")
        code = self.do_post(debit, credit, self.asset_index[rec.asset], rec.amount_minor)
        if code:
            raise self._refuse(rec, f"is refused by the core ({c.CODE_NAMES[code]})")
        self.transfer_refs.add(rec.ref, debit, credit, self.asset_index[rec.asset],
                               rec.amount_minor, rec.memo, rec.position)

    def _apply_bulk(self, rec: r.TransfersBulk) -> None:
        raw = (rec.from_index, rec.to_index, rec.asset_index, rec.amount_minor)
        if rec.ref in self.bulk_refs:
            raise self._refuse(rec, "repeats a bulk ref")
        if any(len(x) % 8 for x in raw) or len({len(x) for x in raw}) != 1:
            raise self._refuse(rec, "has columns of unequal or partial length")
        cols = (
            column_from_bytes(raw[0]),
            column_from_bytes(raw[1]),
            column_from_bytes(raw[2]),
            column_from_bytes(raw[3]),
        )
        if len(rec.outcome) != len(cols[0]):
            raise self._refuse(rec, "has an outcome column of the wrong length")
        outcome = self.do_bulk(cols)
        if outcome != rec.outcome:
            first = next(i for i in range(len(outcome)) if outcome[i] != rec.outcome[i])
            raise self._refuse(
                rec,
                f"item {first} replays as {c.CODE_NAMES.get(outcome[first])} but was "
                f"journaled as {c.CODE_NAMES.get(rec.outcome[first], rec.outcome[first])}",
            )
        self.bulk_refs[rec.ref] = (bulk_content_digest(raw), rec.position)

    def _apply_freeze(self, rec: r.AccountFrozen) -> None:
        acct = self.account_index[rec.account]
        if self.core.is_frozen(acct):
            raise self._refuse(rec, "freezes a frozen account")
        self.core.set_frozen(acct, True)

    def _apply_unfreeze(self, rec: r.AccountUnfrozen) -> None:
        acct = self.account_index[rec.account]
        if not self.core.is_frozen(acct):
            raise self._refuse(rec, "unfreezes an account that is not frozen")
        self.core.set_frozen(acct, False)

    def _apply_rejected(self, rec: r.CommandRejected) -> None:
        """A journaled rejection changes nothing."""

    # -- snapshots -----------------------------------------------------------------

    def to_snapshot(self) -> Snapshot:
        names = self.account_names
        return Snapshot(
            version=self.version,
            position=self.position,
            head_digest=self.head_digest,
            last_time_ns=self.last_time_ns,
            assets=list(zip(self.asset_names, self.asset_decimals, strict=True)),
            accounts=list(self.account_names),
            actors={k: v for k, v in self.actors.items() if k not in BUILTIN_ACTORS},
            deposit_refs=[(w, ref, *v) for (w, ref), v in self.deposit_refs.items()],
            transfer_refs=[
                (ref, names[debit], names[credit], self.asset_names[asset], amount, memo, pos)
                for ref, debit, credit, asset, amount, memo, pos in self.transfer_refs.export()
            ],
            bulk_refs=[(ref, d, p) for ref, (d, p) in self.bulk_refs.items()],
            core=self.core.export_state(),
            custody=self.custody.export(),
            markets=self.markets.export(),
            format=SNAPSHOT_FORMAT,
        )

    @classmethod
    def from_snapshot(cls, snap: Snapshot, core: str) -> LedgerState:
        st = cls(core)
        st.core = core_class(core).from_state(snap.core)
        st.version = snap.version
        st.position = snap.position
        st.snapshot_position = snap.position
        st.head_digest = snap.head_digest
        st.last_time_ns = snap.last_time_ns
        for i, (name, decimals) in enumerate(snap.assets):
            st.asset_index[name] = i
            st.asset_names.append(name)
            st.asset_decimals.append(decimals)
        for i, name in enumerate(snap.accounts):
            st.account_index[name] = i
            st.account_names.append(name)
            if st.core.kind(i) == c.KIND_WALLET:
                st.wallet_accounts.add(i)
        st.actors.update(snap.actors)
        for w, ref, acct, asset, amount, pos in snap.deposit_refs:
            st.deposit_refs[(w, ref)] = (acct, asset, amount, pos)
        for ref, frm, to, asset, amount, memo, pos in snap.transfer_refs:
            st.transfer_refs.add(ref, st.account_index[frm], st.account_index[to],
                                 st.asset_index[asset], amount, memo, pos)
        for ref, d, p in snap.bulk_refs:
            st.bulk_refs[ref] = (d, p)
        st.custody.load(snap.custody)
        st.markets.load(snap.markets)
        if len(st.account_names) != st.core.n_accounts or len(st.asset_names) != st.core.n_assets:
            raise TamperDetected(
                f"snapshot at batch {snap.version} does not match its balance table",
                version=snap.version,
            )
        return st

    def fingerprint(self) -> bytes:
        """A digest of the whole state, equal for equal states (used by verify)."""
        return hashlib.sha256(r.encoder.encode(self.to_snapshot())).digest()
