"""Custody: deposits and withdrawals in flight, attestations, reconciliation, halts.

:class:`CustodyState` is the fold of the custody records (``records.py``,
section *custody*); it lives inside :class:`~solvent.state.LedgerState` and is
changed only by its record handlers, for live commands and replay alike.
:class:`CustodyCommands` adds the custody commands to :class:`~solvent.Ledger`.

Reconciliation of a custody wallet compares its *book* balance (the journal's)
with its last *attestation* (what was observed on-chain or at the bank)::

    difference  = observed - book
    explained   = deposits detected, not yet confirmed      (observed, not booked)
                - withdrawals broadcast, not yet completed  (left, still booked)
    unexplained = difference - explained

An unexplained shortfall beyond the asset's tolerance, attested reserves below
the minimum coverage of customer liabilities, or an attestation older than the
maximum age halts the asset in the command that observes it. A halted asset
accepts no new holds (orders, withdrawals) and no broadcasts; deposits still
credit. Resuming needs a clean reconciliation and two operators.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import msgspec

from solvent import errors as e
from solvent import proof
from solvent import records as r
from solvent.amounts import (
    PPM,
    AmountLike,
    check_id,
    check_text,
    format_minor,
    shown_value,
    to_minor,
    to_ppm,
)
from solvent.core import codes as c
from solvent.receipts import Receipt

if TYPE_CHECKING:
    from solvent.state import LedgerState

DAY_NS: Final = 86_400 * 10**9
MAX_OPEN_WITHDRAWALS: Final = 1_000_000
#: The largest number of confirmations (and of seconds in ``max_attestation_age_s``).
MAX_POLICY_COUNT: Final = 10**9
HALT_CAUSES: Final = ("shortfall", "coverage", "stale")
#: An attestation may be dated at most this far after the command time (clock skew):
#: a future-dated one would never grow stale.
MAX_CLOCK_SKEW_NS: Final = 300 * 10**9


class Policy(msgspec.Struct, frozen=True):
    """An asset's custody rules (see :class:`~solvent.records.CustodyPolicySet`).

    The default is strict: one confirmation, no tolerance, 100 % coverage,
    attestations at most a day old, and every withdrawal approved by a second
    operator (threshold 0). Daily limits of 0 mean no limit.
    """

    confirmations: int = 1
    tolerance_minor: int = 0
    min_coverage_ppm: int = PPM
    max_attestation_age_ns: int = DAY_NS
    account_daily_limit_minor: int = 0
    asset_daily_limit_minor: int = 0
    approval_threshold_minor: int = 0


def _is_zero(value: object) -> bool:
    """``0``, ``"0"`` or a zero ``Decimal``, compared without an arithmetic signal (a
    signalling NaN is not zero; ``to_minor`` then refuses it)."""
    if isinstance(value, str):  # "0", "0.00000000": as to_minor reads a str, in digits
        whole, dot, frac = value.partition(".")
        return whole.isascii() and whole.isdigit() and not whole.strip("0") and (
            not dot or (frac.isascii() and frac.isdigit() and not frac.strip("0")))
    if isinstance(value, Decimal):
        return value.is_zero()
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


class DetectedDeposit(msgspec.Struct, frozen=True):
    """A detected deposit as the custody state keeps it, keyed by ``(wallet, ref)``
    (in snapshots too: the field names are the snapshot's)."""

    account: str
    wallet: str
    asset: str
    amount_minor: int
    position: int


class PendingDeposit(msgspec.Struct, frozen=True):
    """A detected, unconfirmed deposit, as :meth:`~solvent.Ledger.pending_deposits`
    lists it: ``(wallet, ref)`` names it to ``confirm_deposit`` and ``void_deposit``;
    ``position`` is where it was detected."""

    account: str
    wallet: str
    ref: str
    asset: str
    amount_minor: int
    position: int


class Withdrawal(msgspec.Struct):
    """A withdrawal and where it stands: ``pending_approval`` → ``approved`` →
    ``broadcast`` → ``completed``, or ``failed`` from any state before completed."""

    withdrawal_id: str
    account: str
    wallet: str
    asset: str
    amount_minor: int
    address: str
    ref: str
    requested_by: str
    requested_ns: int
    needs_approval: bool
    status: str
    approved_by: str = ""
    txid: str = ""
    reason: str = ""
    broadcast_position: int = 0  # 0: not broadcast (or in a snapshot older than the field)


class Attestation(msgspec.Struct, frozen=True):
    balance_minor: int
    as_of_ns: int
    source: str
    position: int


class WalletReconciliation(msgspec.Struct, frozen=True):
    """One custody wallet: book against attested, in minor units.

    ``observed_minor`` is None when the wallet was never attested."""

    wallet: str
    expected_minor: int
    observed_minor: int | None
    deposits_in_flight_minor: int
    withdrawals_in_flight_minor: int
    explained_minor: int
    unexplained_minor: int
    as_of_ns: int | None


class Reconciliation(msgspec.Struct, frozen=True):
    """The reconciliation report of one asset at one journal position.

    ``expected``/``observed``/``explained``/``unexplained`` add up the wallets;
    ``coverage`` = attested reserves / customer liabilities (None when there are
    no liabilities). ``clean`` is True when no wallet's unexplained shortfall
    exceeds the tolerance, every wallet is attested and fresh, and coverage is at
    least the minimum; ``problems`` says what is not."""

    asset: str
    position: int
    wallets: list[WalletReconciliation]
    expected_minor: int
    observed_minor: int
    explained_minor: int
    unexplained_minor: int
    reserves_minor: int
    liabilities_minor: int
    coverage: Decimal | None
    clean: bool
    problems: list[str]


class AssetStatus(msgspec.Struct, frozen=True):
    """Whether ``asset`` is halted, and why (``reason`` names causes and figures)."""

    asset: str
    halted: bool
    reason: str
    causes: list[str]
    resume_requested_by: str = ""


class CustodyState:
    """Custody part of the ledger state; changed only by record handlers."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.policies: dict[int, Policy] = {}
        self.pending: dict[tuple[str, str], DetectedDeposit] = {}
        self.voided: dict[tuple[str, str], DetectedDeposit] = {}
        self.withdrawals: dict[str, Withdrawal] = {}
        self.withdrawal_refs: dict[str, str] = {}
        self.open_withdrawals = 0  # neither completed nor failed (derived, for the limit)
        # wallet number -> what its open withdrawals commit (derived: a request may not commit
        # more than the wallet's book balance)
        self.committed_out: dict[int, int] = {}
        self.recent: dict[int, deque[str]] = {}  # asset -> withdrawal ids, oldest first
        self.attestations: dict[int, Attestation] = {}  # wallet number -> last attestation
        self.halts: dict[int, dict[str, r.AssetHalted]] = {}
        self.resume_requests: dict[int, tuple[str, str]] = {}
        self.proof_key: bytes | None = None
        self.in_flight_in: dict[int, int] = {}  # wallet -> detected, unconfirmed
        self.in_flight_out: dict[int, int] = {}  # wallet -> broadcast, uncompleted
        # wallet -> withdrawals broadcast after its last attestation, completed or not: coins
        # that attestation still counts (derived, for credit_room)
        self.out_since_attested: dict[int, int] = {}
        # asset -> command time until which the last full liveness check holds
        # (derived, not snapshotted; dropped by every record that could change it)
        self.live_until: dict[int, int] = {}
        # (asset, cause) -> (position, wallet) of an attestation whose halt its batch has
        # not journaled yet (replay's check that attest halted as it had to; transient)
        self.owed_halts: dict[tuple[int, str], tuple[int, str]] = {}

    # -- helpers ------------------------------------------------------------------------

    def policy(self, asset: int) -> Policy:
        return self.policies.get(asset) or Policy()

    def liveness(self, asset: int, now_ns: int | None) -> tuple[str, int]:
        """Whether ``asset`` may back new orders and withdrawals at ``now_ns``:
        ``("", 0)`` when live; else ``("halted", 0)``, ``("not_reconciled", 0)`` (no
        wallet, or a wallet never attested) or ``("stale", wallet)`` (the oldest
        attestation is older than the policy allows; the wallet named; not checked
        when ``now_ns`` is None). Pure: the live command path and replay's checks
        both call it. (Replay checks without the time: a command found an asset
        stale only after journaling the halt that replay then sees.)"""
        if self.status(asset).halted:
            return "halted", 0
        wallets = self.wallets_of(asset)
        if not wallets or any(w not in self.attestations for w in wallets):
            return "not_reconciled", 0
        oldest = min(wallets, key=lambda w: self.attestations[w].as_of_ns)
        if now_ns is not None and (now_ns - self.attestations[oldest].as_of_ns
                                   > self.policy(asset).max_attestation_age_ns):
            return "stale", oldest
        return "", 0

    def _sent_since_attested(self, wallet: int, wd: Withdrawal) -> bool:
        att = self.attestations.get(wallet)
        return att is not None and wd.broadcast_position > att.position

    def credit_room(self, wallet: int) -> int | None:
        """How many minor units a deposit may still add to the ledger's book of
        ``wallet``: what is on chain by its last attestation (the attested balance,
        less the withdrawals broadcast since, completed or not), less what the book
        expects there (the book, less the withdrawals broadcast and not completed),
        plus the asset's tolerance. As in :meth:`reconcile`, a withdrawal broadcast
        before the attestation counts as gone from the chain by then. A deposit
        credit beyond the room is refused (live and on replay): the last attestation
        does not show the coins. None when the wallet has never been attested: its
        asset cannot back an order or a withdrawal until every wallet of it is, and
        that attestation halts on a shortfall."""
        att = self.attestations.get(wallet)
        if att is None:
            return None
        core = self.state.core
        a = core.wallet_asset(wallet)
        on_chain = att.balance_minor - self.out_since_attested.get(wallet, 0)
        expected = core.available(wallet, a) - self.in_flight_out.get(wallet, 0)
        return on_chain - expected + self.policy(a).tolerance_minor

    def check_credit(self, rec: r.Deposited | r.DepositConfirmed) -> None:
        """Replay's side of :meth:`credit_room`."""
        w = self.state.account_index[rec.wallet]
        room = self.credit_room(w)
        if room is not None and rec.amount_minor > room:
            raise self._fail(rec, f"credits {rec.amount_minor} minor units of {rec.asset} that "
                                  f"the last attestation of {rec.wallet!r} does not show "
                                  f"(room {room})")

    def wallets_of(self, asset: int) -> list[int]:
        core = self.state.core
        return [
            w for w in sorted(self.state.wallet_accounts) if core.wallet_asset(w) == asset
        ]

    def attested_reserves(self, asset: int) -> int | None:
        """Sum of the last attestations of the asset's wallets; None if none is attested."""
        found = [self.attestations[w] for w in self.wallets_of(asset) if w in self.attestations]
        if not found:
            return None
        return sum(a.balance_minor for a in found)

    def _refresh_cap(self, asset: int) -> None:
        reserves = self.attested_reserves(asset)
        self.state.core.set_liability_cap(asset, c.INT64_MAX if reserves is None else reserves)

    # -- the fold ---------------------------------------------------------------------

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            r.CustodyPolicySet: self._on_policy,
            r.DepositDetected: self._on_detected,
            r.DepositConfirmed: self._on_confirmed,
            r.DepositVoided: self._on_voided,
            r.WithdrawalRequested: self._on_requested,
            r.WithdrawalApproved: self._on_approved,
            r.WithdrawalBroadcast: self._on_broadcast,
            r.WithdrawalCompleted: self._on_completed,
            r.WithdrawalFailed: self._on_failed,
            r.Attested: self._on_attested,
            r.AssetHalted: self._on_halted,
            r.ResumeRequested: self._on_resume_requested,
            r.AssetResumed: self._on_resumed,
            r.ProofKeyCreated: self._on_proof_key,
        }

    def _fail(self, rec: r.Record, why: str) -> e.TamperDetected:
        return e.TamperDetected(
            f"position {rec.position}: {type(rec).__name__} {why}", position=rec.position
        )

    def _core_ok(self, rec: r.Record, code: int) -> None:
        if code:
            raise self._fail(rec, f"is refused by the core ({c.CODE_NAMES[code]})")

    def _on_policy(self, rec: r.CustodyPolicySet) -> None:
        a = self.state.asset_index[rec.asset]
        # set_custody_policy's ranges (a minimum coverage 0..10, amounts 0..int64)
        for name, value, low, high in (
            ("confirmations", rec.confirmations, 1, MAX_POLICY_COUNT),
            ("max_attestation_age_ns", rec.max_attestation_age_ns, 10**9,
             MAX_POLICY_COUNT * 10**9),
            ("min_coverage_ppm", rec.min_coverage_ppm, 0, 10 * PPM),
            ("tolerance_minor", rec.tolerance_minor, 0, c.INT64_MAX),
            ("account_daily_limit_minor", rec.account_daily_limit_minor, 0, c.INT64_MAX),
            ("asset_daily_limit_minor", rec.asset_daily_limit_minor, 0, c.INT64_MAX),
            ("approval_threshold_minor", rec.approval_threshold_minor, 0, c.INT64_MAX),
        ):
            if not low <= value <= high:
                raise self._fail(rec, f"has {name} {value}, outside {low}..{high}")
        if rec.max_attestation_age_ns % 10**9:
            raise self._fail(rec, f"has max_attestation_age_ns {rec.max_attestation_age_ns}, "
                                  "not whole seconds")
        self.live_until.pop(a, None)
        self.policies[a] = Policy(
            confirmations=rec.confirmations,
            tolerance_minor=rec.tolerance_minor,
            min_coverage_ppm=rec.min_coverage_ppm,
            max_attestation_age_ns=rec.max_attestation_age_ns,
            account_daily_limit_minor=rec.account_daily_limit_minor,
            asset_daily_limit_minor=rec.asset_daily_limit_minor,
            approval_threshold_minor=rec.approval_threshold_minor,
        )

    def _on_detected(self, rec: r.DepositDetected) -> None:
        key = (rec.wallet, rec.ref)
        if key in self.pending or key in self.voided or key in self.state.deposit_refs:
            raise self._fail(rec, "repeats a deposit ref")
        w = self.state.account_index[rec.wallet]
        self.state.account_index[rec.account]
        self.pending[key] = DetectedDeposit(
            rec.account, rec.wallet, rec.asset, rec.amount_minor, rec.position
        )
        self.in_flight_in[w] = self.in_flight_in.get(w, 0) + rec.amount_minor

    def _on_confirmed(self, rec: r.DepositConfirmed) -> None:
        key = (rec.wallet, rec.ref)
        dep = self.pending.get(key)
        if dep is None or (dep.account, dep.asset, dep.amount_minor) != (
            rec.account, rec.asset, rec.amount_minor
        ):
            raise self._fail(rec, "confirms no matching detected deposit")
        need = self.policy(self.state.asset_index[rec.asset]).confirmations
        if not need <= rec.confirmations <= MAX_POLICY_COUNT:  # confirm_deposit's check
            raise self._fail(rec, f"has {rec.confirmations} confirmations; {rec.asset} needs "
                                  f"{need} (at most {MAX_POLICY_COUNT:,})")
        self.check_credit(rec)
        st = self.state
        w = st.account_index[rec.wallet]
        code = st.core.post(w, st.account_index[rec.account], st.asset_index[rec.asset],
                            rec.amount_minor)
        self._core_ok(rec, code)
        del self.pending[key]
        self.in_flight_in[w] -= rec.amount_minor
        st.deposit_refs[key] = (rec.account, rec.asset, rec.amount_minor, rec.position)

    def _on_voided(self, rec: r.DepositVoided) -> None:
        key = (rec.wallet, rec.ref)
        dep = self.pending.pop(key, None)
        if dep is None:
            raise self._fail(rec, "voids no detected deposit")
        self.voided[key] = dep
        self.in_flight_in[self.state.account_index[rec.wallet]] -= dep.amount_minor

    def _on_requested(self, rec: r.WithdrawalRequested) -> None:
        if rec.withdrawal_id in self.withdrawals or rec.ref in self.withdrawal_refs:
            raise self._fail(rec, "repeats a withdrawal id or ref")
        st = self.state
        a = st.asset_index[rec.asset]
        self._check_request(rec, a)
        code = st.core.hold(st.account_index[rec.account], a, rec.amount_minor)
        self._core_ok(rec, code)
        self.withdrawals[rec.withdrawal_id] = Withdrawal(
            withdrawal_id=rec.withdrawal_id, account=rec.account, wallet=rec.wallet,
            asset=rec.asset, amount_minor=rec.amount_minor, address=rec.address, ref=rec.ref,
            requested_by=rec.actor, requested_ns=rec.time_ns, needs_approval=rec.needs_approval,
            status="pending_approval" if rec.needs_approval else "approved",
        )
        self.withdrawal_refs[rec.ref] = rec.withdrawal_id
        self.open_withdrawals += 1
        w = st.account_index[rec.wallet]
        self.committed_out[w] = self.committed_out.get(w, 0) + rec.amount_minor
        ids = self.recent.setdefault(a, deque())
        while ids and self.withdrawals[ids[0]].requested_ns <= rec.time_ns - DAY_NS:
            ids.popleft()  # out of every later rolling day (command time never goes back)
        ids.append(rec.withdrawal_id)

    def _check_request(self, rec: r.WithdrawalRequested, a: int) -> None:
        """What ``request_withdrawal`` refused, checked again on replay (the limits with
        the record's time, a little after the command's reading: never stricter)."""
        st = self.state
        w = st.account_index[rec.wallet]
        if w not in st.wallet_accounts or st.core.wallet_asset(w) != a:
            raise self._fail(rec, "names a wallet of another asset")
        if st.core.is_frozen(st.account_index[rec.account]):
            raise self._fail(rec, f"withdraws from {rec.account!r}, which is frozen")
        why, _ = self.liveness(a, None)
        if why:
            raise self._fail(rec, f"withdraws {rec.asset} while it is {why.replace('_', ' ')}")
        if self.open_withdrawals >= MAX_OPEN_WITHDRAWALS:
            raise self._fail(rec, "opens a withdrawal past the limit of open withdrawals")
        pol = self.policy(a)
        if rec.needs_approval != (rec.amount_minor > pol.approval_threshold_minor):
            raise self._fail(rec, f"says needs_approval={rec.needs_approval}; the policy's "
                                  "threshold says otherwise")
        for limit, account in ((pol.account_daily_limit_minor, rec.account),
                               (pol.asset_daily_limit_minor, None)):
            if limit and self.daily_requested(a, account, rec.time_ns) + rec.amount_minor > limit:
                raise self._fail(rec, "goes past a daily withdrawal limit")
        if self.committed_out.get(w, 0) + rec.amount_minor > st.core.available(w, a):
            raise self._fail(rec, f"commits more than wallet {rec.wallet!r} holds")

    def _withdrawal(self, rec: Any, *statuses: str) -> Withdrawal:
        wd = self.withdrawals.get(rec.withdrawal_id)
        if wd is None or wd.status not in statuses:
            raise self._fail(rec, f"finds no withdrawal {rec.withdrawal_id} in {statuses}")
        return wd

    def _on_approved(self, rec: r.WithdrawalApproved) -> None:
        wd = self._withdrawal(rec, "pending_approval")
        if rec.actor == wd.requested_by:  # approve_withdrawal: a second operator
            raise self._fail(rec, f"is approved by {rec.actor!r}, who requested it")
        wd.status = "approved"
        wd.approved_by = rec.actor

    def _on_broadcast(self, rec: r.WithdrawalBroadcast) -> None:
        wd = self._withdrawal(rec, "approved")
        if self.status(self.state.asset_index[wd.asset]).halted:  # broadcast_withdrawal
            raise self._fail(rec, f"sends a withdrawal while {wd.asset} is halted")
        wd.status = "broadcast"
        wd.txid = rec.txid
        wd.broadcast_position = rec.position
        w = self.state.account_index[wd.wallet]
        self.in_flight_out[w] = self.in_flight_out.get(w, 0) + wd.amount_minor
        if w in self.attestations:
            self.out_since_attested[w] = self.out_since_attested.get(w, 0) + wd.amount_minor

    def _on_completed(self, rec: r.WithdrawalCompleted) -> None:
        wd = self._withdrawal(rec, "broadcast")
        st = self.state
        w = st.account_index[wd.wallet]
        code = st.core.post_held(st.account_index[wd.account], w, st.asset_index[wd.asset],
                                 wd.amount_minor)
        self._core_ok(rec, code)
        wd.status = "completed"
        self.open_withdrawals -= 1
        self.committed_out[w] -= wd.amount_minor
        self.in_flight_out[w] -= wd.amount_minor

    def _on_failed(self, rec: r.WithdrawalFailed) -> None:
        wd = self._withdrawal(rec, "pending_approval", "approved", "broadcast")
        st = self.state
        code = st.core.release(st.account_index[wd.account], st.asset_index[wd.asset],
                               wd.amount_minor)
        self._core_ok(rec, code)
        if wd.status == "broadcast":
            w = st.account_index[wd.wallet]
            self.in_flight_out[w] -= wd.amount_minor
            if self._sent_since_attested(w, wd):  # the coins never left after all
                self.out_since_attested[w] -= wd.amount_minor
        wd.status = "failed"
        wd.reason = rec.reason
        self.open_withdrawals -= 1
        self.committed_out[st.account_index[wd.wallet]] -= wd.amount_minor

    def _on_attested(self, rec: r.Attested) -> None:
        st = self.state
        w = st.account_index[rec.wallet]
        a = st.asset_index[rec.asset]
        if w not in st.wallet_accounts or st.core.wallet_asset(w) != a:
            raise self._fail(rec, "attests a wallet of another asset")
        # attest's checks: a balance of at least 0, a source, a time since the epoch and
        # within the skew of the command's, never older than the wallet's last one, and
        # attested reserves within int64
        if rec.balance_minor < 0:
            raise self._fail(rec, f"attests a negative balance {rec.balance_minor}")
        if not rec.source:
            raise self._fail(rec, "has no source")
        if not 0 <= rec.as_of_ns <= rec.time_ns + MAX_CLOCK_SKEW_NS:
            raise self._fail(rec, f"is as of {rec.as_of_ns} ns, outside 0 .. its command "
                                  f"time {rec.time_ns} ns + {MAX_CLOCK_SKEW_NS // 10**9} s")
        prior = self.attestations.get(w)
        if prior is not None and rec.as_of_ns < prior.as_of_ns:
            raise self._fail(rec, f"is older than the last attestation of {rec.wallet!r} "
                                  f"(as of {rec.as_of_ns} ns, before {prior.as_of_ns} ns)")
        if (self.attested_reserves(a) or 0) + rec.balance_minor - (
                prior.balance_minor if prior is not None else 0) > c.INT64_MAX:
            raise self._fail(rec, f"puts the attested reserves of {rec.asset} past int64")
        self.attestations[w] = Attestation(rec.balance_minor, rec.as_of_ns, rec.source,
                                           rec.position)
        self.out_since_attested.pop(w, None)
        self.live_until.pop(a, None)
        self._refresh_cap(a)
        # the halts this attestation calls for must follow in its batch (attest journals
        # them in the same command; a rolled-back block's kept attestation, after its
        # kept records, on the state they leave: so a later attestation of the same
        # wallet, or of the asset for coverage, in the batch settles the debt again)
        called = {cause for cause, _row in self.halts_called_for(
            a, self.reconcile(a, rec.time_ns), rec.wallet)}
        if "shortfall" in called:
            self.owed_halts[(a, "shortfall")] = (rec.position, rec.wallet)
        elif self.owed_halts.get((a, "shortfall"), (0, ""))[1] == rec.wallet:
            del self.owed_halts[(a, "shortfall")]
        if "coverage" in called:
            self.owed_halts[(a, "coverage")] = (rec.position, "")
        else:
            self.owed_halts.pop((a, "coverage"), None)

    def _on_halted(self, rec: r.AssetHalted) -> None:
        if rec.cause not in HALT_CAUSES:
            raise self._fail(rec, f"has an unknown cause {rec.cause!r}")
        a = self.state.asset_index[rec.asset]
        self.live_until.pop(a, None)
        self.halts.setdefault(a, {})[rec.cause] = rec
        self.owed_halts.pop((a, rec.cause), None)

    def _on_resume_requested(self, rec: r.ResumeRequested) -> None:
        self.resume_requests[self.state.asset_index[rec.asset]] = (rec.actor, rec.reason)

    def _on_resumed(self, rec: r.AssetResumed) -> None:
        a = self.state.asset_index[rec.asset]
        self.live_until.pop(a, None)
        if self.resume_requests.get(a, ("", ""))[0] != rec.requested_by:
            raise self._fail(rec, "resumes without the matching request")
        if rec.actor == rec.requested_by:  # approve_resume: a second operator
            raise self._fail(rec, f"is approved by {rec.actor!r}, who requested it")
        report = self.reconcile(a, None)  # approve_resume's check, but for the age
        if not report.clean:
            raise self._fail(rec, f"lifts the halts of {rec.asset}, which does not reconcile "
                                  f"cleanly: {'; '.join(report.problems)}")
        self.halts.pop(a, None)
        del self.resume_requests[a]

    def _on_proof_key(self, rec: r.ProofKeyCreated) -> None:
        if self.proof_key is not None:
            raise self._fail(rec, "replaces the proof key")
        self.proof_key = rec.key

    # -- reconciliation ---------------------------------------------------------------------

    def reconcile(self, asset: int, now_ns: int | None) -> Reconciliation:
        """Book against attested balances (``now_ns`` None: the attestations' age is
        not checked, as replay checks without the time; see ``liveness``)."""
        st = self.state
        core = st.core
        pol = self.policy(asset)
        rows: list[WalletReconciliation] = []
        problems: list[str] = []
        for w in self.wallets_of(asset):
            name = st.account_names[w]
            book = core.available(w, asset)
            d_in = self.in_flight_in.get(w, 0)
            d_out = self.in_flight_out.get(w, 0)
            explained = d_in - d_out
            att = self.attestations.get(w)
            if att is None:
                problems.append(f"wallet {name!r} has no attestation")
                rows.append(WalletReconciliation(name, book, None, d_in, d_out, explained, 0,
                                                 None))
                continue
            unexplained = att.balance_minor - book - explained
            if unexplained < -pol.tolerance_minor:
                problems.append(
                    f"wallet {name!r}: unexplained shortfall {-unexplained} minor units "
                    f"(tolerance {pol.tolerance_minor})"
                )
            age = 0 if now_ns is None else now_ns - att.as_of_ns
            if age > pol.max_attestation_age_ns:
                problems.append(
                    f"wallet {name!r}: attestation is {age // 10**9} s old "
                    f"(maximum {pol.max_attestation_age_ns // 10**9} s)"
                )
            rows.append(WalletReconciliation(name, book, att.balance_minor, d_in, d_out,
                                             explained, unexplained, att.as_of_ns))
        reserves = sum(row.observed_minor or 0 for row in rows)
        liabilities = core.total(asset, c.KIND_CUSTOMER)
        coverage = None if liabilities == 0 else Decimal(reserves) / Decimal(liabilities)
        if rows and all(row.observed_minor is not None for row in rows) and liabilities and (
            reserves * PPM < liabilities * pol.min_coverage_ppm
        ):
            problems.append(
                f"coverage {coverage:.6f} is below the minimum "
                f"{Decimal(pol.min_coverage_ppm) / PPM:.6f}"
            )
        if not rows:
            problems.append("the asset has no custody wallet")
        return Reconciliation(
            asset=st.asset_names[asset],
            position=st.position,
            wallets=rows,
            expected_minor=sum(row.expected_minor for row in rows),
            observed_minor=reserves,
            explained_minor=sum(row.explained_minor for row in rows),
            unexplained_minor=sum(row.unexplained_minor for row in rows),
            reserves_minor=reserves,
            liabilities_minor=liabilities,
            coverage=coverage,
            clean=not problems,
            problems=problems,
        )

    def halts_called_for(self, a: int, report: Reconciliation, only_wallet: str
                         ) -> list[tuple[str, WalletReconciliation | None]]:
        """The halts not yet in force that an attestation of ``only_wallet`` calls for,
        given the asset's reconciliation ``report``: ``("shortfall", its row)`` for an
        unexplained shortfall beyond the tolerance, ``("coverage", None)`` for attested
        reserves below the minimum coverage. Pure: attest journals them, replay checks
        they were journaled."""
        pol = self.policy(a)
        halts = self.halts.get(a, {})
        called: list[tuple[str, WalletReconciliation | None]] = []
        for row in report.wallets:
            if row.wallet != only_wallet or row.observed_minor is None:
                continue
            if row.unexplained_minor < -pol.tolerance_minor and "shortfall" not in halts:
                called.append(("shortfall", row))
        attested_all = all(row.observed_minor is not None for row in report.wallets)
        if (attested_all and report.liabilities_minor and "coverage" not in halts
                and report.reserves_minor * PPM < report.liabilities_minor * pol.min_coverage_ppm):
            called.append(("coverage", None))
        return called

    def status(self, asset: int) -> AssetStatus:
        halts = self.halts.get(asset, {})
        causes: list[str] = [cause for cause in HALT_CAUSES if cause in halts]
        reason = "; ".join(halts[cause].message for cause in causes)
        return AssetStatus(
            asset=self.state.asset_names[asset],
            halted=bool(causes),
            reason=reason,
            causes=causes,
            resume_requested_by=self.resume_requests.get(asset, ("", ""))[0],
        )

    def daily_requested(self, asset: int, account: str | None, now_ns: int) -> int:
        """Withdrawals (not failed) requested in the 24 h before ``now_ns``."""
        # A read: it must not change the state (``recent`` is part of the snapshot and
        # of verify's fingerprint); the fold prunes it (``_on_requested``). Ids are in
        # request order, so the first one outside the window ends the walk.
        total = 0
        for i in reversed(self.recent.get(asset, ())):
            wd = self.withdrawals[i]
            if wd.requested_ns <= now_ns - DAY_NS:
                break
            if wd.status != "failed" and (account is None or wd.account == account):
                total += wd.amount_minor
        return total

    # -- snapshots ------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        return {
            "policies": sorted(self.policies.items()),
            "pending": [[k[0], k[1], v] for k, v in self.pending.items()],
            "voided": [[k[0], k[1], v] for k, v in self.voided.items()],
            "withdrawals": list(self.withdrawals.values()),
            "recent": sorted((a, list(ids)) for a, ids in self.recent.items()),
            "attestations": sorted(self.attestations.items()),
            "halts": sorted((a, sorted(h.items())) for a, h in self.halts.items()),
            "resume_requests": sorted(self.resume_requests.items()),
            "proof_key": self.proof_key,
        }

    def load(self, data: dict[str, Any]) -> None:
        dec = msgspec.convert
        for a, pol in data["policies"]:
            self.policies[a] = dec(pol, Policy)
        for w, ref, dep in data["pending"]:
            self.pending[(w, ref)] = dep = dec(dep, DetectedDeposit)
            wi = self.state.account_index[w]
            self.in_flight_in[wi] = self.in_flight_in.get(wi, 0) + dep.amount_minor
        for w, ref, dep in data["voided"]:
            self.voided[(w, ref)] = dec(dep, DetectedDeposit)
        for wd in data["withdrawals"]:
            wd = dec(wd, Withdrawal)
            self.withdrawals[wd.withdrawal_id] = wd
            self.withdrawal_refs[wd.ref] = wd.withdrawal_id
            if wd.status not in ("completed", "failed"):
                self.open_withdrawals += 1
                wi = self.state.account_index[wd.wallet]
                self.committed_out[wi] = self.committed_out.get(wi, 0) + wd.amount_minor
            if wd.status == "broadcast":
                wi = self.state.account_index[wd.wallet]
                self.in_flight_out[wi] = self.in_flight_out.get(wi, 0) + wd.amount_minor
        for a, ids in data["recent"]:
            self.recent[a] = deque(ids)
        for w, att in data["attestations"]:
            self.attestations[w] = dec(att, Attestation)
        for wd in self.withdrawals.values():
            wi = self.state.account_index[wd.wallet]
            if wd.status in ("broadcast", "completed") and self._sent_since_attested(wi, wd):
                self.out_since_attested[wi] = (self.out_since_attested.get(wi, 0)
                                               + wd.amount_minor)
        for a, halts in data["halts"]:
            self.halts[a] = {cause: dec(h, r.AssetHalted) for cause, h in halts}
        for a, (who, why) in data["resume_requests"]:
            self.resume_requests[a] = (who, why)
        self.proof_key = data["proof_key"]
        for a in range(len(self.state.asset_names)):
            self._refresh_cap(a)


def _ns(when: datetime) -> int:
    if not isinstance(when, datetime):
        raise e.InvalidArgument(f"as_of must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None:
        raise e.InvalidArgument("as_of must be timezone-aware (UTC)")
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    if delta.days < 0:  # the journal keeps times as int64 ns since the epoch, never before
        raise e.InvalidArgument(f"as_of {when.isoformat()} is before 1970-01-01 UTC")
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


class CustodyCommands:
    """The custody commands of :class:`~solvent.Ledger` (a mixin)."""

    if TYPE_CHECKING:
        _state: LedgerState
        _lock: Any
        _trees: dict[str, proof.LiabilitiesTree]
        _leaf_key_cache: list[bytes]
        _depth: int

        def _state_at(self, position: int) -> LedgerState: ...

        def _authorize(self, actor: str | None, command: str, debit_account: str = "") -> str:
            ...

        def _emit(self, cls: type[Any], actor: str, ref: str, *, time_ns: int | None = None,
                  **fields: Any) -> Receipt: ...

        def _now(self) -> int: ...

        def _asset(self, asset: str) -> int: ...

        def _account(self, name: str, what: str) -> int: ...

        def _rejection(self, code: int, command: str, account: str, asset: str,
                       amount_minor: int, **extra: Any) -> e.Rejected: ...

        def _journal_rejection(self, who: str, ref: str, command: str,
                               rejection: e.Rejected, account: str, asset: str,
                               amount_minor: int) -> None: ...

        def batch(self) -> Any: ...

    # -- helpers -----------------------------------------------------------------------

    @property
    def _custody(self) -> CustodyState:
        return self._state.custody

    def _operator(self, who: str, command: str) -> str:
        role = self._state.actors.get(who)
        if role != "operator":
            raise e.PermissionDenied(
                f"{command} needs an operator; {who!r} is {role}", actor=who, role=role
            )
        return who

    def _wallet_of(self, wallet: str, asset: str) -> tuple[int, int]:
        a = self._asset(asset)
        w = self._account(wallet, "wallet")
        if w not in self._state.wallet_accounts:
            raise e.UnknownWallet(f"{wallet!r} is an account, not a custody wallet",
                                  wallet=wallet)
        if self._state.core.wallet_asset(w) != a:
            held = self._state.asset_names[self._state.core.wallet_asset(w)]
            raise e.AssetMismatch(f"wallet {wallet!r} holds {held}, not {asset}",
                                  wallet=wallet, asset=asset, wallet_asset=held)
        return w, a

    def _customer_or_company(self, account: str) -> int:
        acct = self._account(account, "account")
        if acct in self._state.wallet_accounts:
            raise e.InvalidArgument(f"{account!r} is a wallet, not an account", account=account)
        return acct

    @contextmanager
    def _one_command(self) -> Iterator[None]:
        """Records emitted inside commit together (the command's own batch)."""
        with self.batch():
            yield

    def require_live(self, asset: str, *, actor: str | None = None) -> None:
        """Raise unless new holds may be placed in ``asset`` now.

        Refuses a halted asset (:class:`~solvent.AssetHalted`) and one with an
        unattested wallet (:class:`~solvent.NotReconciled`). An attestation older
        than the policy's maximum age halts the asset here, journaled with its
        figures (the halt is committed even though the command is refused).
        """
        with self._lock:
            a = self._asset(asset)
            self._require_live(a, self._authorize(actor, "require_live"))

    def _require_live(self, a: int, who: str) -> None:
        cust = self._custody
        now = self._now()
        if now <= cust.live_until.get(a, -1):
            return  # nothing that could halt it was journaled since the last full check
        name = self._state.asset_names[a]
        why, wallet_no = cust.liveness(a, now)
        if why == "halted":
            status = cust.status(a)
            raise e.AssetHalted(f"{name} is halted: {status.reason}", asset=name,
                                causes=status.causes)
        if why == "not_reconciled":
            wallets = cust.wallets_of(a)
            unattested = [self._state.account_names[w] for w in wallets
                          if w not in cust.attestations]
            raise e.NotReconciled(
                f"{name} is not reconciled: "
                + (f"wallet(s) {', '.join(map(repr, unattested))} never attested"
                   if unattested else "it has no custody wallet"),
                asset=name,
            )
        pol = cust.policy(a)
        if why == "":
            oldest = min(cust.wallets_of(a), key=lambda w: cust.attestations[w].as_of_ns)
            cust.live_until[a] = cust.attestations[oldest].as_of_ns + pol.max_attestation_age_ns
            return
        age = now - cust.attestations[wallet_no].as_of_ns
        wallet = self._state.account_names[wallet_no]
        message = (f"stale: wallet {wallet!r} last attested {age // 10**9} s ago "
                   f"(maximum {pol.max_attestation_age_ns // 10**9} s)")
        self._emit(r.AssetHalted, who, "", asset=name, cause="stale",
                   message=message, wallet=wallet, expected_minor=0, observed_minor=0,
                   explained_minor=0, unexplained_minor=0, reserves_minor=0,
                   liabilities_minor=0, attestation_age_ns=age)
        raise e.AssetHalted(f"{name} is halted: {message}", asset=name, causes=["stale"])

    # -- policy -------------------------------------------------------------------------

    def set_custody_policy(
        self,
        asset: str,
        *,
        confirmations: int = 1,
        tolerance: AmountLike | None = None,
        min_coverage: str | Decimal = "1",
        max_attestation_age_s: int = DAY_NS // 10**9,
        account_daily_limit: AmountLike | None = None,
        asset_daily_limit: AmountLike | None = None,
        approval_threshold: AmountLike | None = None,
        actor: str | None = None,
    ) -> Receipt:
        """Set the custody rules of ``asset`` (see :class:`Policy`). Amounts are in
        the asset's units (None: 0); ``min_coverage`` is a ratio such as ``"1.02"``."""
        with self._lock:
            who = self._authorize(actor, "set_custody_policy")
            a = self._asset(asset)
            dec = self._state.asset_decimals[a]

            def minor(value: AmountLike | None, what: str) -> int:
                return 0 if value is None else to_minor(value, dec, what=what, asset=asset)

            for name, value in (("confirmations", confirmations),
                                ("max_attestation_age_s", max_attestation_age_s)):
                if isinstance(value, bool) or not isinstance(value, int) or not (
                    1 <= value <= MAX_POLICY_COUNT
                ):
                    raise e.InvalidArgument(
                        f"{name} must be an int in 1..10**9, got {shown_value(value)}")
            ppm = to_ppm(min_coverage, "min_coverage", 10 * PPM)
            return self._emit(
                r.CustodyPolicySet, who, "", asset=asset, confirmations=confirmations,
                tolerance_minor=minor(tolerance, "tolerance"), min_coverage_ppm=ppm,
                max_attestation_age_ns=max_attestation_age_s * 10**9,
                account_daily_limit_minor=minor(account_daily_limit, "account_daily_limit"),
                asset_daily_limit_minor=minor(asset_daily_limit, "asset_daily_limit"),
                approval_threshold_minor=minor(approval_threshold, "approval_threshold"),
            )

    def custody_policy(self, asset: str) -> Policy:
        """The custody rules of ``asset`` (:meth:`set_custody_policy`)."""
        with self._lock:
            return self._custody.policy(self._asset(asset))

    # -- deposits -------------------------------------------------------------------------

    def detect_deposit(
        self, account: str, asset: str, amount: AmountLike, *, wallet: str, ref: str,
        actor: str | None = None,
    ) -> Receipt:
        """A deposit seen on-chain (``ref``: its txid): pending, visible, not spendable.
        Idempotent on (wallet, ref)."""
        with self._lock:
            who = self._authorize(actor, "detect_deposit")
            check_id(ref, "ref")
            _, a = self._wallet_of(wallet, asset)
            self._customer_or_company(account)
            amount_minor = to_minor(amount, self._state.asset_decimals[a], asset=asset,
                                    account=account)
            prior = self._deposit_seen(wallet, ref)
            if prior is not None:
                if (prior[0], prior[1], prior[2]) != (account, asset, amount_minor):
                    raise e.DuplicateRef(
                        f"deposit ref {ref!r} on wallet {wallet!r} was used for {prior[2]} "
                        f"minor units of {prior[1]} to {prior[0]!r}", ref=ref, wallet=wallet)
                return Receipt(position=prior[3], ref=ref, replayed=True)
            return self._emit(r.DepositDetected, who, ref, account=account, wallet=wallet,
                              asset=asset, amount_minor=amount_minor)

    def _deposit_seen(self, wallet: str, ref: str) -> tuple[str, str, int, int] | None:
        key = (wallet, ref)
        cust = self._custody
        dep = cust.pending.get(key) or cust.voided.get(key)
        if dep is not None:
            return (dep.account, dep.asset, dep.amount_minor, dep.position)
        return self._state.deposit_refs.get(key)


    def confirm_deposit(
        self, wallet: str, ref: str, *, confirmations: int | None = None,
        actor: str | None = None,
    ) -> Receipt:
        """Credit a detected deposit. ``confirmations`` (if given) must reach the
        asset's required number."""
        with self._lock:
            who = self._authorize(actor, "confirm_deposit")
            check_id(ref, "ref")
            if confirmations is not None and (isinstance(confirmations, bool)
                                              or not isinstance(confirmations, int)):
                raise e.InvalidArgument(f"confirmations must be an int, got "
                                        f"{type(confirmations).__name__}", ref=ref)
            self._account(wallet, "wallet")
            dep = self._custody.pending.get((wallet, ref))
            if dep is None:
                if (wallet, ref) in self._state.deposit_refs:
                    raise e.InvalidState(f"deposit {ref!r} on {wallet!r} is already confirmed",
                                         ref=ref)
                raise e.UnknownDeposit(f"no detected deposit {ref!r} on wallet {wallet!r}",
                                       ref=ref, wallet=wallet)
            a = self._asset(dep.asset)
            need = self._custody.policy(a).confirmations
            got = need if confirmations is None else confirmations
            if not isinstance(got, bool) and isinstance(got, int) and got > MAX_POLICY_COUNT:
                raise e.InvalidArgument(f"confirmations must be at most {MAX_POLICY_COUNT:,}, "
                                        f"got {shown_value(got)}", ref=ref)
            if isinstance(got, bool) or not isinstance(got, int) or got < need:
                raise e.NotEnoughConfirmations(
                    f"deposit {ref!r} has {shown_value(got)} confirmations; {dep.asset} needs "
                    f"{need}",
                    ref=ref, confirmations=got, required=need)
            self._check_credit_room(who, ref, "confirm_deposit", dep.account, wallet, dep.asset,
                                    dep.amount_minor)
            if self._state.core.total(a, c.KIND_WALLET) > c.INT64_MAX - dep.amount_minor:
                raise e.BalanceOverflow(
                    f"deposit {ref!r} would push custody of {dep.asset} past int64 minor units",
                    asset=dep.asset, amount_minor=dep.amount_minor)
            return self._emit(r.DepositConfirmed, who, ref, account=dep.account, wallet=wallet,
                              asset=dep.asset, amount_minor=dep.amount_minor,
                              confirmations=got)

    def _check_credit_room(self, who: str, ref: str, command: str, account: str, wallet: str,
                           asset: str, amount_minor: int) -> None:
        """Refuse (journaled, :class:`~solvent.CoverageBreach`) a deposit credit that
        the wallet's last attestation does not show: an operator cannot credit coins
        that never arrived (the Bithumb credit, as a deposit)."""
        st = self._state
        w = st.account_index[wallet]
        room = self._custody.credit_room(w)
        if room is None or amount_minor <= room:
            return
        a = st.asset_index[asset]
        dec = st.asset_decimals[a]
        att = self._custody.attestations[w]

        def units(minor: int) -> str:
            return f"{format_minor(minor, dec)} {asset}"

        rejection = e.CoverageBreach(
            f"{command} of {units(amount_minor)} to {account!r}: the last attestation of "
            f"{wallet!r} shows {units(att.balance_minor)} and the ledger books "
            f"{units(st.core.available(w, a))} in it, so it backs at most {units(max(room, 0))} "
            "more (tolerance and broadcast withdrawals included); attest the wallet once the "
            "coins have arrived, then credit them",
            account=account, wallet=wallet, asset=asset, amount_minor=amount_minor,
            room_minor=room, attested_minor=att.balance_minor)
        self._journal_rejection(who, ref, command, rejection, account, asset, amount_minor)
        raise rejection

    def void_deposit(
        self, wallet: str, ref: str, *, reason: str = "reorg", actor: str | None = None
    ) -> Receipt:
        """Drop a detected deposit that will never confirm (a reorg)."""
        with self._lock:
            who = self._authorize(actor, "void_deposit")
            check_id(ref, "ref")
            check_text(reason, "reason")
            if not reason:  # as a failed withdrawal: the journal says why money never came
                raise e.InvalidArgument("a voided deposit needs a reason", ref=ref)
            self._account(wallet, "wallet")
            dep = self._custody.pending.get((wallet, ref))
            if dep is None:
                raise e.UnknownDeposit(f"no detected deposit {ref!r} on wallet {wallet!r}",
                                       ref=ref, wallet=wallet)
            return self._emit(r.DepositVoided, who, ref, account=dep.account, wallet=wallet,
                              asset=dep.asset, amount_minor=dep.amount_minor, reason=reason)

    def pending_deposits(self, account: str | None = None) -> list[PendingDeposit]:
        """Detected, unconfirmed deposits (of ``account``, or all)."""
        with self._lock:  # not mid-iteration of a deposit detected on another thread
            if account is not None:
                self._account(account, "account")  # a name that is no account is an error
            return [PendingDeposit(d.account, wallet, ref, d.asset, d.amount_minor, d.position)
                    for (wallet, ref), d in self._custody.pending.items()
                    if account is None or d.account == account]

    # -- withdrawals ------------------------------------------------------------------------

    def request_withdrawal(
        self, account: str, asset: str, amount: AmountLike, *, wallet: str, address: str,
        ref: str, actor: str | None = None,
    ) -> str:
        """Hold ``amount`` for a withdrawal; return its id. Idempotent on ``ref``.

        Refused for a frozen account, a halted or unreconciled asset, beyond the
        rolling-day limits, or beyond the available balance or the wallet's
        uncommitted book balance."""
        with self._lock:
            check_id(ref, "ref")
            check_id(address, "address")
            w, a = self._wallet_of(wallet, asset)
            acct = self._customer_or_company(account)
            who = self._authorize(actor, "request_withdrawal", debit_account=account)
            amount_minor = to_minor(amount, self._state.asset_decimals[a], asset=asset,
                                    account=account)
            cust = self._custody
            prior_id = cust.withdrawal_refs.get(ref)
            if prior_id is not None:
                wd = cust.withdrawals[prior_id]
                if (wd.account, wd.asset, wd.amount_minor, wd.wallet, wd.address) != (
                    account, asset, amount_minor, wallet, address
                ):
                    raise e.DuplicateRef(f"withdrawal ref {ref!r} was used for {prior_id}",
                                         ref=ref)
                return prior_id
            if cust.open_withdrawals >= MAX_OPEN_WITHDRAWALS:
                raise e.LimitExceeded(
                    f"at most {MAX_OPEN_WITHDRAWALS:,} withdrawals may be open at once")
            if self._state.core.is_frozen(acct):
                raise e.AccountFrozen(f"withdrawal from {account!r}: the account is frozen",
                                      account=account)
            self._require_live(a, who)
            pol = cust.policy(a)
            now = self._now()
            dec = self._state.asset_decimals[a]
            for limit, used, scope in (
                (pol.account_daily_limit_minor, cust.daily_requested(a, account, now),
                 f"account {account!r}"),
                (pol.asset_daily_limit_minor, cust.daily_requested(a, None, now), asset),
            ):
                if limit and used + amount_minor > limit:
                    raise e.LimitExceeded(
                        f"withdrawal of {format_minor(amount_minor, dec)} {asset}: {scope} has "
                        f"{format_minor(used, dec)} of its {format_minor(limit, dec)} {asset} "
                        "daily limit in use", account=account, asset=asset,
                        amount_minor=amount_minor, used_minor=used, limit_minor=limit)
            committed = cust.committed_out.get(w, 0)
            book = self._state.core.available(w, a)
            if committed + amount_minor > book:
                raise e.InsufficientFunds(
                    f"wallet {wallet!r} holds {format_minor(book, dec)} {asset} of which "
                    f"{format_minor(committed, dec)} is committed to withdrawals",
                    wallet=wallet, asset=asset, amount_minor=amount_minor)
            available = self._state.core.available(acct, a)
            if available < amount_minor:
                raise self._rejection(c.INSUFFICIENT_FUNDS, "withdrawal", account, asset,
                                      amount_minor)
            withdrawal_id = f"wd-{len(cust.withdrawals) + 1}"
            self._emit(r.WithdrawalRequested, who, ref, withdrawal_id=withdrawal_id,
                       account=account, wallet=wallet, asset=asset, amount_minor=amount_minor,
                       address=address,
                       needs_approval=amount_minor > pol.approval_threshold_minor)
            return withdrawal_id

    def withdrawal(self, withdrawal_id: str) -> Withdrawal:
        """The withdrawal ``withdrawal_id`` as it stands (a copy)."""
        check_id(withdrawal_id, "withdrawal id")
        with self._lock:
            wd = self._custody.withdrawals.get(withdrawal_id)
            if wd is None:
                raise e.UnknownWithdrawal(f"unknown withdrawal {withdrawal_id!r}",
                                          withdrawal_id=withdrawal_id)
            return msgspec.structs.replace(wd)

    def _open_withdrawal(self, withdrawal_id: str, *statuses: str) -> Withdrawal:
        check_id(withdrawal_id, "withdrawal id")
        wd = self._custody.withdrawals.get(withdrawal_id)
        if wd is None:
            raise e.UnknownWithdrawal(f"unknown withdrawal {withdrawal_id!r}",
                                      withdrawal_id=withdrawal_id)
        if wd.status not in statuses:
            raise e.InvalidState(
                f"withdrawal {withdrawal_id} is {wd.status}; this needs {' or '.join(statuses)}",
                withdrawal_id=withdrawal_id, status=wd.status)
        return wd

    def approve_withdrawal(self, withdrawal_id: str, *, actor: str | None = None) -> Receipt:
        """A second operator approves a withdrawal above the threshold (refused while
        the account is frozen)."""
        with self._lock:
            who = self._operator(self._authorize(actor, "approve_withdrawal"),
                                 "approve_withdrawal")
            wd = self._open_withdrawal(withdrawal_id, "pending_approval")
            if who == wd.requested_by:
                raise e.SecondOperatorRequired(
                    f"{who!r} requested withdrawal {withdrawal_id}; another operator must "
                    "approve it", actor=who, withdrawal_id=withdrawal_id)
            self._not_frozen(wd, "approved")
            return self._emit(r.WithdrawalApproved, who, "", withdrawal_id=withdrawal_id)

    def broadcast_withdrawal(
        self, withdrawal_id: str, *, txid: str, actor: str | None = None
    ) -> Receipt:
        """Record that the approved withdrawal's transaction was sent (refused while
        its asset is halted or its account frozen)."""
        with self._lock:
            who = self._authorize(actor, "broadcast_withdrawal")
            check_id(txid, "txid")
            wd = self._open_withdrawal(withdrawal_id, "approved")
            a = self._asset(wd.asset)
            status = self._custody.status(a)
            if status.halted:
                raise e.AssetHalted(f"{wd.asset} is halted: {status.reason}", asset=wd.asset,
                                    causes=status.causes)
            self._not_frozen(wd, "broadcast")
            return self._emit(r.WithdrawalBroadcast, who, "", withdrawal_id=withdrawal_id,
                              txid=txid)

    def _not_frozen(self, wd: Withdrawal, what: str) -> None:
        """Refuse to move a frozen account's withdrawal on towards the chain (the funds
        stay held; ``fail_withdrawal`` releases them, and one already broadcast still
        completes: it has left the wallet)."""
        if self._state.core.is_frozen(self._state.account_index[wd.account]):
            raise e.AccountFrozen(
                f"withdrawal {wd.withdrawal_id} from {wd.account!r} cannot be {what}: the "
                "account is frozen", account=wd.account, withdrawal_id=wd.withdrawal_id)

    def complete_withdrawal(self, withdrawal_id: str, *, actor: str | None = None) -> Receipt:
        """The transaction is final: debit the account's held funds and the wallet."""
        with self._lock:
            who = self._authorize(actor, "complete_withdrawal")
            wd = self._open_withdrawal(withdrawal_id, "broadcast")
            return self._emit(r.WithdrawalCompleted, who, "", withdrawal_id=wd.withdrawal_id)

    def fail_withdrawal(
        self, withdrawal_id: str, *, reason: str, actor: str | None = None
    ) -> Receipt:
        """The withdrawal failed or is cancelled: release its hold."""
        with self._lock:
            who = self._authorize(actor, "fail_withdrawal")
            check_text(reason, "reason")
            if not reason:
                raise e.InvalidArgument("a failed withdrawal needs a reason")
            wd = self._open_withdrawal(withdrawal_id, "pending_approval", "approved",
                                       "broadcast")
            return self._emit(r.WithdrawalFailed, who, "", withdrawal_id=wd.withdrawal_id,
                              reason=reason)

    # -- attestations, reconciliation, halts --------------------------------------------------

    def attest(
        self, wallet: str, balance: AmountLike | int, *, as_of: datetime, source: str,
        evidence: str | None = None, actor: str | None = None,
    ) -> Reconciliation:
        """Record an observed balance of a custody wallet and reconcile its asset.

        A zero balance may be given as ``0`` or ``"0"``. In the same command, an
        unexplained shortfall beyond tolerance or coverage below the minimum halts
        the asset (journaled with the figures). Returns the reconciliation."""
        with self._lock:
            who = self._authorize(actor, "attest")
            check_text(source, "source", limit=256)
            if not source:
                raise e.InvalidArgument("an attestation needs a source")
            evidence = "" if evidence is None else check_text(evidence, "evidence")
            w = self._account(wallet, "wallet")
            if w not in self._state.wallet_accounts:
                raise e.UnknownWallet(f"{wallet!r} is an account, not a custody wallet",
                                      wallet=wallet)
            a = self._state.core.wallet_asset(w)
            asset = self._state.asset_names[a]
            if _is_zero(balance):  # an empty wallet (to_minor takes positive amounts only)
                balance_minor = 0
            else:
                balance_minor = to_minor(balance, self._state.asset_decimals[a],
                                         what="balance", asset=asset)
            as_of_ns = _ns(as_of)
            now = self._now()  # the command time, which the record carries (replay checks it)
            if as_of_ns > now + MAX_CLOCK_SKEW_NS:
                raise e.InvalidArgument(
                    f"attestation of {wallet!r} as of {as_of.isoformat()} is in the future "
                    f"(beyond {MAX_CLOCK_SKEW_NS // 10**9} s of the command time)", wallet=wallet)
            prior = self._custody.attestations.get(w)
            if prior is not None and as_of_ns < prior.as_of_ns:
                raise e.InvalidArgument(
                    f"attestation of {wallet!r} as of {as_of.isoformat()} is older than the "
                    "last one", wallet=wallet)
            reserves = (self._custody.attested_reserves(a) or 0) + balance_minor - (
                prior.balance_minor if prior is not None else 0)
            if reserves > c.INT64_MAX:  # custody is kept within int64: so are reserves
                raise e.BalanceOverflow(
                    f"attesting {wallet!r} would put the attested reserves of {asset} at "
                    f"{reserves} minor units, past int64 (its {self._state.asset_decimals[a]} "
                    "decimals are too fine for its reserves)", asset=asset, wallet=wallet)
            with self._one_command():
                self._emit(r.Attested, who, "", time_ns=now, wallet=wallet, asset=asset,
                           balance_minor=balance_minor, as_of_ns=as_of_ns, source=source,
                           evidence=evidence)
                report = self._custody.reconcile(a, now)
                self._halt_if_needed(who, a, report, only_wallet=wallet)
            return report

    def _halt_if_needed(self, who: str, a: int, report: Reconciliation,
                        only_wallet: str) -> None:
        pol = self._custody.policy(a)
        asset = report.asset
        for cause, row in self._custody.halts_called_for(a, report, only_wallet):
            if row is not None:  # a shortfall of that wallet
                dec = self._state.asset_decimals[a]
                assert row.observed_minor is not None
                message = (f"shortfall: wallet {row.wallet!r} holds "
                           f"{format_minor(row.observed_minor, dec)} {asset}, books say "
                           f"{format_minor(row.expected_minor, dec)}, in flight explains "
                           f"{format_minor(row.explained_minor, dec)}: "
                           f"{format_minor(-row.unexplained_minor, dec)} unexplained")
                self._emit(r.AssetHalted, who, "", asset=asset, cause=cause,
                           message=message, wallet=row.wallet,
                           expected_minor=row.expected_minor, observed_minor=row.observed_minor,
                           explained_minor=row.explained_minor,
                           unexplained_minor=row.unexplained_minor,
                           reserves_minor=report.reserves_minor,
                           liabilities_minor=report.liabilities_minor, attestation_age_ns=0)
            else:
                message = (f"coverage {report.coverage:.6f} below the minimum "
                           f"{Decimal(pol.min_coverage_ppm) / PPM:.6f}: reserves "
                           f"{report.reserves_minor}, liabilities {report.liabilities_minor} "
                           "minor units")
                self._emit(r.AssetHalted, who, "", asset=asset, cause=cause, message=message,
                           wallet="", expected_minor=report.expected_minor,
                           observed_minor=report.observed_minor,
                           explained_minor=report.explained_minor,
                           unexplained_minor=report.unexplained_minor,
                           reserves_minor=report.reserves_minor,
                           liabilities_minor=report.liabilities_minor, attestation_age_ns=0)

    def reconcile(self, asset: str) -> Reconciliation:
        """Book against attested balances of every custody wallet of ``asset``, now."""
        with self._lock:
            return self._custody.reconcile(self._asset(asset), self._now())

    def asset_status(self, asset: str) -> AssetStatus:
        with self._lock:
            return self._custody.status(self._asset(asset))

    def resume_asset(self, asset: str, *, reason: str, actor: str | None = None) -> Receipt:
        """Ask to lift the halts of ``asset``; another operator approves with
        :meth:`approve_resume`."""
        with self._lock:
            who = self._operator(self._authorize(actor, "resume_asset"), "resume_asset")
            check_text(reason, "reason")
            if not reason:
                raise e.InvalidArgument("a resume needs a reason")
            a = self._asset(asset)
            if not self._custody.status(a).halted:
                raise e.InvalidState(f"{asset} is not halted", asset=asset)
            return self._emit(r.ResumeRequested, who, "", asset=asset, reason=reason)

    def approve_resume(self, asset: str, *, actor: str | None = None) -> Receipt:
        """A second operator lifts the halts of ``asset``, if it reconciles cleanly now."""
        with self._lock:
            who = self._operator(self._authorize(actor, "approve_resume"), "approve_resume")
            a = self._asset(asset)
            request = self._custody.resume_requests.get(a)
            if request is None:
                raise e.InvalidState(f"no resume of {asset} was requested", asset=asset)
            if request[0] == who:
                raise e.SecondOperatorRequired(
                    f"{who!r} requested the resume of {asset}; another operator must approve",
                    actor=who, asset=asset)
            report = self._custody.reconcile(a, self._now())
            if not report.clean:
                raise e.InvalidState(
                    f"{asset} does not reconcile cleanly: {'; '.join(report.problems)}",
                    asset=asset, problems=report.problems)
            return self._emit(r.AssetResumed, who, "", asset=asset, reason=request[1],
                              requested_by=request[0])

    # -- proof of liabilities ---------------------------------------------------------------

    def _proof_key(self) -> bytes:
        """The ledger's proof key, created (and journaled, in its own commit) on first
        use; not inside ``batch()``, whose rollback would drop a key whose nonces were
        already handed out."""
        key = self._custody.proof_key
        if key is None:
            if self._depth:
                raise e.InvalidState("the first proof of a ledger creates and journals its "
                                     "proof key in a commit of its own: ask for it outside "
                                     "batch()")
            self._emit(r.ProofKeyCreated, self._authorize(None, "create_proof_key"), "",
                       key=os.urandom(32))
            key = self._custody.proof_key
            assert key is not None
        return key

    def account_nonce(self, account: str) -> bytes:
        """The secret nonce of ``account`` in proofs of liabilities (give it only to them)."""
        with self._lock:
            self._account(account, "account")
            return proof.account_nonce(self._proof_key(), account)

    def liabilities_tree(
        self, asset: str, *, at: int | None = None, implementation: str | None = None
    ) -> proof.LiabilitiesTree:
        """The Merkle sum tree of ``asset``'s customer balances (available + held) at
        journal position ``at`` (default: now). Every customer account that exists at
        that position is a leaf, zero balances included. ``implementation``: the tree
        builder, ``compiled`` (default when built) or ``python``; both give one tree."""
        with self._lock:
            state = self._state if at is None else self._state_at(at)
            return self._tree_at(state, asset, at, implementation)

    def _tree_at(self, state: LedgerState, asset: str, at: int | None,
                 implementation: str | None = None) -> proof.LiabilitiesTree:
        """``liabilities_tree`` at ``state``: the live state (``at`` None: now), or the
        state at position ``at`` (rebuilt, or the live one when ``at`` is the latest).
        The proof key is made (and journaled) only once the call is valid."""
        a = state.asset_index.get(asset) if isinstance(asset, str) else None
        if a is None:
            self._asset(asset)  # raises the typed error
            raise e.UnknownAsset(f"{asset!r} did not exist at position {state.position}",
                                 asset=asset)
        proof.resolve_implementation(implementation)  # a bad one is refused here
        cached = self._trees.get(asset)
        if cached is not None and cached.position == state.position and (
            implementation is None
        ):
            return cached
        # asked for a position, the tree is of that position, even where ``state`` is the
        # live one and making the key (a record that moves no balance) moves it on; asked
        # for now, it is of now, the key's record included
        key = self._proof_key()
        position = state.position if at is None else at
        core = state.core
        names = state.account_names
        with proof.gc_paused():  # a leaf tuple per customer: no cycles, millions of them
            customers = [i for i in range(len(names)) if core.kind(i) == c.KIND_CUSTOMER]
            keys = self._leaf_keys(key, names, customers)
            balances = [core.available(i, a) + core.held(i, a) for i in customers]
            tree = proof.build_tree(asset, position,
                                    list(zip(keys, balances, strict=True)),
                                    implementation=implementation)
        self._trees[asset] = tree
        return tree

    def _leaf_keys(self, key: bytes, names: list[str], accounts: list[int]) -> list[bytes]:
        """Leaf keys of ``accounts`` (numbers), cached by account number: names never
        change and numbers are never reused, so a key is derived once per account."""
        cache = self._leaf_key_cache
        if len(cache) < len(names):
            cache.extend([b""] * (len(names) - len(cache)))
        missing = [i for i in accounts if not cache[i]]
        if missing:
            for i, k in zip(missing, proof.leaf_keys(key, [names[i] for i in missing]),
                            strict=True):
                cache[i] = k
        return [cache[i] for i in accounts]

    def liabilities_root(self, asset: str, *, at: int | None = None) -> proof.LiabilitiesRoot:
        """The published commitment to ``asset``'s customer liabilities at ``at``."""
        return self.liabilities_tree(asset, at=at).root

    def inclusion_proof(self, account: str, asset: str, *, at: int | None = None) -> str:
        """``account``'s self-contained inclusion proof (a JSON document with their own
        nonce), verifiable with :func:`solvent.verify_inclusion` and the published root."""
        with self._lock:
            self._account(account, "account")
            state = self._state if at is None else self._state_at(at)
            i = state.account_index.get(account)
            if i is None or state.core.kind(i) != c.KIND_CUSTOMER:
                raise e.UnknownAccount(
                    f"{account!r} is not a customer account at position {state.position}",
                    account=account)
            tree = self._tree_at(state, asset, at)
            nonce = proof.account_nonce(self._proof_key(), account)
            leaf = proof.leaf_key(account, nonce)
            assert leaf in tree, (account, tree.position)  # every customer is a leaf
            return proof.proof_to_json(
                tree.inclusion_proof(leaf, account_id=account, nonce=nonce))

    def reserves_statement(self, asset: str, *, at: int | None = None) -> ReservesStatement:
        """What an exchange publishes: the liabilities root and, at the same position,
        the attested reserves of the asset's custody wallets."""
        with self._lock:
            state = self._state if at is None else self._state_at(at)
            root = self._tree_at(state, asset, at).root
            cust = state.custody
            a = state.asset_index[asset]
            wallets = []
            for w in cust.wallets_of(a):
                att = cust.attestations.get(w)
                wallets.append(AttestedWallet(
                    wallet=state.account_names[w],
                    balance_minor=None if att is None else att.balance_minor,
                    as_of_ns=None if att is None else att.as_of_ns,
                    source="" if att is None else att.source))
            reserves = sum(x.balance_minor or 0 for x in wallets)
            total = root.total_minor
            return ReservesStatement(
                asset=asset, position=root.position, decimals=state.asset_decimals[a],
                liabilities=root, reserves_minor=reserves, wallets=wallets,
                coverage=None if total == 0 else str(Decimal(reserves) / Decimal(total)),
                covered=reserves >= total)


class AttestedWallet(msgspec.Struct, frozen=True):
    wallet: str
    balance_minor: int | None
    as_of_ns: int | None
    source: str


class ReservesStatement(msgspec.Struct, frozen=True):
    """The published statement: total liabilities (as a root) against attested reserves."""

    asset: str
    position: int
    decimals: int
    liabilities: proof.LiabilitiesRoot
    reserves_minor: int
    wallets: list[AttestedWallet]
    coverage: str | None
    covered: bool
