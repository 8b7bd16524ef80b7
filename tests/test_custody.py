"""Custody: deposits in flight, two-phase withdrawals, attestations and reconciliation,
automatic journaled halts, a resume by two operators, the coverage rule against attested
reserves, and replay of all of it.

Command time comes from the deterministic ``clock`` fixture: tests make attestations stale
and rolling-day limits expire by moving ``clock.now_ns`` forward. The exchange of every
test: customers c000..c002 with 2 BTC each, a company ``treasury`` with 1 BTC and
1,000,000 KRW, custody wallets ``btc-cold`` (7 BTC on the books) and ``krw-bank``,
operators ``ops-1`` and ``ops-2``, an auditor ``audit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest

import solvent
from conftest import (
    DAY_NS,
    Clock,
    Exchange,
    assert_books_balance,
    attest_arrived,
    attest_book,
    book_minor,
    clock_time,
    custody_exchange,
    custody_view,
    observe,
    withdrawals,
)
from solvent import records as r
from solvent.core import codes as c
from solvent.store import JournalStore

BTC = 10**8  # satoshi per BTC
SECOND_NS = 10**9


@pytest.fixture
def led(core: str, clock: Clock) -> Iterator[solvent.Ledger]:
    ledger = solvent.Ledger.open("memory:", core=core, clock=clock)
    yield ledger
    ledger.close()


@pytest.fixture
def ex(led: solvent.Ledger) -> Exchange:
    return custody_exchange(led)


@pytest.fixture
def live(led: solvent.Ledger, ex: Exchange, clock: Clock) -> Exchange:
    """The exchange with both wallets attested at their book balances (clean, fresh)."""
    attest_book(led, clock, "btc-cold")
    attest_book(led, clock, "krw-bank", source="bank")
    return ex


def new_records(led: solvent.Ledger, after: int) -> list[r.JournalRecord]:
    return list(led.records(after_position=after))


def everything(led: solvent.Ledger) -> dict[str, Any]:
    return {**observe(led), **custody_view(led)}


def rejects(
    led: solvent.Ledger,
    error: type[solvent.Rejected],
    code: str,
    call: Callable[[], object],
    *names: str,
) -> solvent.Rejected:
    """``call()`` raises ``error`` with ``code`` and ``names`` in its message, and the
    ledger (journal, balances and every custody view) is exactly as before."""
    before = everything(led)
    with pytest.raises(error) as info:
        call()
    exc = info.value
    assert exc.code == code, (exc.code, str(exc))
    for name in names:
        assert name in str(exc), (name, str(exc))
    assert everything(led) == before
    return exc


def request(led: solvent.Ledger, account: str = "c000", amount: str = "0.5", *,
            ref: str = "w-1", wallet: str = "btc-cold", asset: str = "BTC",
            actor: str = "ops-1") -> str:
    return led.request_withdrawal(account, asset, amount, wallet=wallet, address="bc1qdest",
                                  ref=ref, actor=actor)


def to_broadcast(led: solvent.Ledger, wd: str, txid: str = "tx-out-1") -> None:
    led.approve_withdrawal(wd, actor="ops-2")
    led.broadcast_withdrawal(wd, txid=txid, actor="ops-1")


# -- deposits ------------------------------------------------------------------------------


def test_detected_deposit_is_pending_visible_and_not_spendable(
    led: solvent.Ledger, live: Exchange
) -> None:
    before_totals = led.totals("BTC")
    receipt = led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-in-1")
    assert receipt == solvent.Receipt(position=led.position, ref="txid-in-1")
    rec = new_records(led, led.position - 1)[0]
    assert isinstance(rec, r.DepositDetected)
    assert (rec.account, rec.wallet, rec.asset, rec.amount_minor) == (
        "c000", "btc-cold", "BTC", BTC // 2)

    assert led.balance("c000", "BTC") == solvent.Balance(
        Decimal(2), Decimal(0), pending=Decimal("0.5"))
    assert led.balance_minor("c000", "BTC") == (2 * BTC, 0)
    [pending] = led.pending_deposits("c000")
    assert (pending.account, pending.wallet, pending.ref, pending.asset, pending.amount_minor,
            pending.position) == ("c000", "btc-cold", "txid-in-1", "BTC", BTC // 2,
                                  receipt.position)
    assert led.pending_deposits() == [pending] and led.pending_deposits("c001") == []
    assert led.totals("BTC") == before_totals  # not part of the books
    [row] = led.reconcile("BTC").wallets
    assert (row.deposits_in_flight_minor, row.expected_minor) == (BTC // 2, 7 * BTC)

    # not spendable: neither by transfer nor by withdrawal
    rejects(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: led.transfer("c000", "c001", "BTC", "2.5", ref="spend-pending"), "c000")
    rejects(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: request(led, amount="2.1"), "c000")


def test_confirmed_deposit_becomes_available(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-in-1")
    attest_arrived(led, clock, "btc-cold")  # the wallet is seen holding it: it may credit
    receipt = led.confirm_deposit("btc-cold", "txid-in-1", confirmations=3)
    assert receipt == solvent.Receipt(position=led.position, ref="txid-in-1")
    rec = new_records(led, led.position - 1)[0]
    assert isinstance(rec, r.DepositConfirmed)
    assert (rec.account, rec.wallet, rec.amount_minor, rec.confirmations) == (
        "c000", "btc-cold", BTC // 2, 3)
    assert led.balance("c000", "BTC") == solvent.Balance(Decimal("2.5"), Decimal(0))
    assert led.pending_deposits() == []
    assert led.totals("BTC") == solvent.Totals("BTC", 7 * BTC + BTC // 2, 6 * BTC + BTC // 2,
                                               BTC)
    led.transfer("c000", "c001", "BTC", "2.5", ref="spend-confirmed")
    assert led.balance_minor("c001", "BTC") == (4 * BTC + BTC // 2, 0)
    assert_books_balance(led)


def test_confirm_needs_the_assets_confirmations(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.set_custody_policy("BTC", confirmations=6)
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-in-1")
    attest_arrived(led, clock, "btc-cold")  # shown: only the confirmations are missing
    exc = rejects(led, solvent.NotEnoughConfirmations, "not_enough_confirmations",
                  lambda: led.confirm_deposit("btc-cold", "txid-in-1", confirmations=5),
                  "txid-in-1", "5", "6")
    assert exc.details["required"] == 6
    rejects(led, solvent.NotEnoughConfirmations, "not_enough_confirmations",
            lambda: led.confirm_deposit("btc-cold", "txid-in-1", confirmations=0))
    for bad in (True, "6", 6.0, Decimal(6)):  # not a count: a wrong type, not too few
        rejects(led, solvent.InvalidArgument, "invalid_argument",
                lambda bad=bad: led.confirm_deposit("btc-cold", "txid-in-1",
                                                    confirmations=bad), "confirmations")
    for bad in (10**9 + 1, 2**64, 10**30):  # 2**64 and up: past the journal's ints too
        rejects(led, solvent.InvalidArgument, "invalid_argument",
                lambda bad=bad: led.confirm_deposit("btc-cold", "txid-in-1",
                                                    confirmations=bad), "confirmations")
    led.confirm_deposit("btc-cold", "txid-in-1", confirmations=6)
    assert led.balance_minor("c000", "BTC") == (2 * BTC + BTC // 2, 0)


def test_voided_deposit_is_gone_and_never_credited(led: solvent.Ledger, live: Exchange) -> None:
    start = led.position
    before = led.balance_minor("c000", "BTC")
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-reorg")
    rejects(led, solvent.InvalidArgument, "invalid_argument",  # the journal says why
            lambda: led.void_deposit("btc-cold", "txid-reorg", reason=""), "reason")
    led.void_deposit("btc-cold", "txid-reorg", reason="reorg at height 880000")
    rec = new_records(led, led.position - 1)[0]
    assert isinstance(rec, r.DepositVoided)
    assert (rec.account, rec.amount_minor, rec.reason) == (
        "c000", BTC // 2, "reorg at height 880000")
    assert led.pending_deposits() == []
    assert led.balance("c000", "BTC").pending == 0
    assert led.balance_minor("c000", "BTC") == before
    assert led.reconcile("BTC").wallets[0].deposits_in_flight_minor == 0
    kinds = [type(rec) for rec in new_records(led, start)]
    assert kinds == [r.DepositDetected, r.DepositVoided]  # never Deposited / Confirmed
    # gone for good: it can be neither confirmed nor voided again, and its ref stays used
    rejects(led, solvent.UnknownDeposit, "unknown_deposit",
            lambda: led.confirm_deposit("btc-cold", "txid-reorg"), "txid-reorg")
    rejects(led, solvent.UnknownDeposit, "unknown_deposit",
            lambda: led.void_deposit("btc-cold", "txid-reorg"), "txid-reorg")
    again = led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-reorg")
    assert again.replayed and led.position == start + 2
    rejects(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: led.detect_deposit("c001", "BTC", "0.5", wallet="btc-cold",
                                       ref="txid-reorg"), "txid-reorg")
    # a direct deposit with the voided ref: its message named two commands that both
    # refuse a voided deposit; it says what happened now
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-reorg"),
            "was voided", "txid-reorg")


def test_deposits_are_idempotent_on_wallet_and_ref(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    first = led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-a")
    position = led.position
    again = led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-a")
    assert again == solvent.Receipt(position=first.position, ref="txid-a", replayed=True)
    assert led.position == position and len(led.pending_deposits()) == 1
    for account, amount in (("c001", "0.5"), ("c000", "0.6")):
        rejects(led, solvent.DuplicateRef, "duplicate_ref",
                lambda account=account, amount=amount: led.detect_deposit(
                    account, "BTC", amount, wallet="btc-cold", ref="txid-a"),
                "txid-a", "btc-cold")
    # the same txid on another wallet is another deposit
    led.open_wallet("btc-hot", asset="BTC")
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-hot", ref="txid-a")
    assert len(led.pending_deposits()) == 2

    # a deposit() (detect + confirm in one) and a later detection of it; btc-cold is
    # attested holding both txid-a and txid-b first (a credit needs that)
    attest_arrived(led, clock, "btc-cold", arrived_minor=BTC // 4)
    dep = led.deposit("c001", "BTC", "0.25", wallet="btc-cold", ref="txid-b")
    position = led.position
    seen = led.detect_deposit("c001", "BTC", "0.25", wallet="btc-cold", ref="txid-b")
    assert seen == solvent.Receipt(position=dep.position, ref="txid-b", replayed=True)
    assert led.position == position
    rejects(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: led.detect_deposit("c001", "BTC", "0.3", wallet="btc-cold", ref="txid-b"))
    # and a confirmed detection followed by deposit() of the same txid
    led.confirm_deposit("btc-cold", "txid-a")
    replay = led.deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-a")
    assert replay.replayed and led.position == position + 1
    rejects(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: led.deposit("c000", "BTC", "0.7", wallet="btc-cold", ref="txid-a"))


def test_deposit_over_a_detected_deposit_credits_once(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-c")
    attest_arrived(led, clock, "btc-cold")  # shown once: it backs one credit of 0.5
    with pytest.raises(solvent.DuplicateRef):
        led.deposit("c000", "BTC", "0.9", wallet="btc-cold", ref="txid-c")
    with contextlib.suppress(solvent.Rejected):  # refusing it is fine too: one credit counts
        led.deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-c")
    with contextlib.suppress(solvent.InvalidState, solvent.UnknownDeposit):
        led.confirm_deposit("btc-cold", "txid-c")
    assert led.balance("c000", "BTC") == solvent.Balance(Decimal("2.5"), Decimal(0))
    assert led.pending_deposits() == []


def test_confirm_and_void_of_unknown_or_confirmed_deposits(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    for call in (lambda: led.confirm_deposit("btc-cold", "nope"),
                 lambda: led.void_deposit("btc-cold", "nope")):
        rejects(led, solvent.UnknownDeposit, "unknown_deposit", call, "nope", "btc-cold")
    rejects(led, solvent.UnknownWallet, "unknown_wallet",
            lambda: led.confirm_deposit("no-such-wallet", "nope"))
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="txid-d")
    attest_arrived(led, clock, "btc-cold")
    led.confirm_deposit("btc-cold", "txid-d")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.confirm_deposit("btc-cold", "txid-d"), "txid-d", "confirmed")
    rejects(led, solvent.UnknownDeposit, "unknown_deposit",
            lambda: led.void_deposit("btc-cold", "txid-d"))
    assert led.balance_minor("c000", "BTC") == (2 * BTC + BTC // 2, 0)


def test_deposit_is_still_detect_and_confirm_in_one_command(
    led: solvent.Ledger, ex: Exchange
) -> None:
    start = led.position
    receipt = led.deposit("c002", "BTC", "0.3", wallet="btc-cold", ref="txid-e")
    assert receipt == solvent.Receipt(position=start + 1, ref="txid-e")
    assert led.position == start + 1  # one record, one command
    assert led.balance("c002", "BTC") == solvent.Balance(Decimal("2.3"), Decimal(0))
    assert led.pending_deposits() == []
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.confirm_deposit("btc-cold", "txid-e"))


# -- withdrawals ---------------------------------------------------------------------------


def test_withdrawal_lifecycle_to_completion(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    start = led.position
    wd = request(led, amount="0.5", ref="w-1")
    assert wd == "wd-1"
    rec = new_records(led, start)[0]
    assert isinstance(rec, r.WithdrawalRequested)
    assert (rec.withdrawal_id, rec.account, rec.wallet, rec.amount_minor, rec.address,
            rec.needs_approval, rec.actor, rec.ref) == (
        "wd-1", "c000", "btc-cold", BTC // 2, "bc1qdest", True, "ops-1", "w-1")
    assert led.balance("c000", "BTC") == solvent.Balance(Decimal("1.5"), Decimal("0.5"))
    w = led.withdrawal(wd)
    assert (w.status, w.needs_approval, w.requested_by, w.amount_minor) == (
        "pending_approval", True, "ops-1", BTC // 2)
    # idempotent on ref
    position = led.position
    assert request(led, amount="0.5", ref="w-1") == wd
    assert led.position == position and led.balance_minor("c000", "BTC")[1] == BTC // 2
    rejects(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: request(led, amount="0.6", ref="w-1"), "w-1")
    rejects(led, solvent.DuplicateRef, "duplicate_ref",
            lambda: request(led, "c001", amount="0.5", ref="w-1"), "w-1")

    # approval: a second operator, never the requester, never a non-operator
    exc = rejects(led, solvent.SecondOperatorRequired, "second_operator_required",
                  lambda: led.approve_withdrawal(wd, actor="ops-1"), "ops-1", wd)
    assert isinstance(exc, solvent.PermissionDenied)
    for who in ("audit", "c000", "system"):
        rejects(led, solvent.PermissionDenied, "permission_denied",
                lambda who=who: led.approve_withdrawal(wd, actor=who), who)
    led.approve_withdrawal(wd, actor="ops-2")
    assert (led.withdrawal(wd).status, led.withdrawal(wd).approved_by) == ("approved", "ops-2")

    led.broadcast_withdrawal(wd, txid="tx-out-1", actor="ops-1")
    assert (led.withdrawal(wd).status, led.withdrawal(wd).txid) == ("broadcast", "tx-out-1")
    assert led.balance("c000", "BTC") == solvent.Balance(Decimal("1.5"), Decimal("0.5"))
    assert book_minor(led, "btc-cold") == 7 * BTC  # still booked while in flight
    # on-chain it has left: the broadcast explains the difference, no halt
    report = led.attest("btc-cold", "6.5", as_of=clock_time(clock), source="node")
    assert (report.expected_minor, report.observed_minor, report.explained_minor,
            report.unexplained_minor) == (7 * BTC, 6 * BTC + BTC // 2, -BTC // 2, 0)
    assert report.wallets[0].withdrawals_in_flight_minor == BTC // 2
    assert report.clean and not led.asset_status("BTC").halted

    led.complete_withdrawal(wd, actor="ops-1")
    assert led.withdrawal(wd).status == "completed"
    assert led.balance("c000", "BTC") == solvent.Balance(Decimal("1.5"), Decimal(0))
    assert book_minor(led, "btc-cold") == 6 * BTC + BTC // 2
    assert led.totals("BTC") == solvent.Totals("BTC", 6 * BTC + BTC // 2,
                                               5 * BTC + BTC // 2, BTC)
    assert_books_balance(led)
    after = led.reconcile("BTC")
    assert (after.explained_minor, after.unexplained_minor, after.clean) == (0, 0, True)
    kinds = [type(rec) for rec in new_records(led, start)]
    assert kinds == [r.WithdrawalRequested, r.WithdrawalApproved, r.WithdrawalBroadcast,
                     r.Attested, r.WithdrawalCompleted]


@pytest.mark.parametrize("stage", ["pending_approval", "approved", "broadcast"])
def test_failing_or_cancelling_at_any_stage_releases_the_hold(
    led: solvent.Ledger, live: Exchange, stage: str
) -> None:
    before = led.balance_minor("c000", "BTC")
    wd = request(led, amount="0.5")
    if stage != "pending_approval":
        led.approve_withdrawal(wd, actor="ops-2")
    if stage == "broadcast":
        led.broadcast_withdrawal(wd, txid="tx-out-1")
        assert led.reconcile("BTC").wallets[0].withdrawals_in_flight_minor == BTC // 2
    assert led.withdrawal(wd).status == stage
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.fail_withdrawal(wd, reason=""))
    led.fail_withdrawal(wd, reason="cancelled by the customer")
    w = led.withdrawal(wd)
    assert (w.status, w.reason) == ("failed", "cancelled by the customer")
    assert led.balance_minor("c000", "BTC") == before
    assert book_minor(led, "btc-cold") == 7 * BTC
    assert led.reconcile("BTC").wallets[0].withdrawals_in_flight_minor == 0
    rec = new_records(led, led.position - 1)[0]
    assert isinstance(rec, r.WithdrawalFailed) and rec.withdrawal_id == wd
    for call in (lambda: led.fail_withdrawal(wd, reason="again"),
                 lambda: led.approve_withdrawal(wd, actor="ops-2"),
                 lambda: led.broadcast_withdrawal(wd, txid="tx-2"),
                 lambda: led.complete_withdrawal(wd)):
        rejects(led, solvent.InvalidState, "invalid_state", call, wd, "failed")
    assert_books_balance(led)


def test_withdrawal_state_machine_violations(led: solvent.Ledger, live: Exchange) -> None:
    wd = request(led, amount="0.5")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.broadcast_withdrawal(wd, txid="tx-early"), "pending_approval")
    rejects(led, solvent.InvalidState, "invalid_state", lambda: led.complete_withdrawal(wd))
    led.approve_withdrawal(wd, actor="ops-2")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.approve_withdrawal(wd, actor="ops-2"), "approved")
    rejects(led, solvent.InvalidState, "invalid_state", lambda: led.complete_withdrawal(wd))
    led.broadcast_withdrawal(wd, txid="tx-out-1")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.broadcast_withdrawal(wd, txid="tx-out-2"), "broadcast")
    led.complete_withdrawal(wd)
    for call in (lambda: led.complete_withdrawal(wd),
                 lambda: led.fail_withdrawal(wd, reason="too late"),
                 lambda: led.approve_withdrawal(wd, actor="ops-2")):
        rejects(led, solvent.InvalidState, "invalid_state", call, "completed")
    for call in (lambda: led.approve_withdrawal("wd-99", actor="ops-2"),
                 lambda: led.broadcast_withdrawal("wd-99", txid="t"),
                 lambda: led.complete_withdrawal("wd-99"),
                 lambda: led.fail_withdrawal("wd-99", reason="x"),
                 lambda: led.withdrawal("wd-99")):
        rejects(led, solvent.UnknownWithdrawal, "unknown_withdrawal", call, "wd-99")


def test_below_the_approval_threshold_no_approval_is_needed(
    led: solvent.Ledger, live: Exchange
) -> None:
    led.set_custody_policy("BTC", approval_threshold="1")
    small = request(led, amount="1", ref="w-small")  # at the threshold: not above it
    w = led.withdrawal(small)
    assert (w.needs_approval, w.status) == (False, "approved")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.approve_withdrawal(small, actor="ops-2"))
    led.broadcast_withdrawal(small, txid="tx-small")
    led.complete_withdrawal(small)
    big = request(led, "c001", amount="1.00000001", ref="w-big")
    assert (led.withdrawal(big).needs_approval, led.withdrawal(big).status) == (
        True, "pending_approval")
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.broadcast_withdrawal(big, txid="tx-big"))
    assert led.custody_policy("BTC").approval_threshold_minor == BTC


def test_default_policy_needs_approval_for_every_withdrawal(
    led: solvent.Ledger, live: Exchange
) -> None:
    policy = led.custody_policy("BTC")
    assert (policy.approval_threshold_minor, policy.max_attestation_age_ns,
            policy.min_coverage_ppm, policy.tolerance_minor, policy.confirmations) == (
        0, DAY_NS, 1_000_000, 0, 1)
    wd = request(led, amount="0.00000001")
    assert led.withdrawal(wd).needs_approval


def test_per_account_rolling_day_limit(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.set_custody_policy("BTC", account_daily_limit="1", max_attestation_age_s=10 * 86_400)
    first = request(led, amount="0.6", ref="w-1")
    exc = rejects(led, solvent.LimitExceeded, "limit_exceeded",
                  lambda: request(led, amount="0.5", ref="w-2"), "c000", "daily limit")
    assert (exc.details["used_minor"], exc.details["limit_minor"]) == (60_000_000, BTC)
    request(led, "c001", amount="0.5", ref="w-other")  # another account has its own limit
    led.fail_withdrawal(first, reason="cancelled")  # failed withdrawals do not count
    request(led, amount="0.5", ref="w-2")
    request(led, amount="0.5", ref="w-3")  # exactly the limit
    rejects(led, solvent.LimitExceeded, "limit_exceeded",
            lambda: request(led, amount="0.00000001", ref="w-4"))
    last_ns = led.withdrawal("wd-4").requested_ns  # w-3, the newest in the window
    clock.step_ns = 0  # frozen, to the nanosecond
    clock.now_ns = last_ns + DAY_NS - 1  # w-2 is out of the window, w-3 still in it
    rejects(led, solvent.LimitExceeded, "limit_exceeded",
            lambda: request(led, amount="0.50000001", ref="w-4"))
    clock.now_ns = last_ns + DAY_NS  # a day after the last request: the limit frees
    request(led, amount="0.9", ref="w-4")
    assert [w.status for w in withdrawals(led)] == [
        "failed", "pending_approval", "pending_approval", "pending_approval",
        "pending_approval"]
    led.verify()  # the rolling window is a fold: replay agrees with the live state


def test_per_asset_rolling_day_limit(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.set_custody_policy("BTC", asset_daily_limit="1", max_attestation_age_s=10 * 86_400)
    request(led, "c000", amount="0.7", ref="w-1")
    rejects(led, solvent.LimitExceeded, "limit_exceeded",
            lambda: request(led, "c001", amount="0.4", ref="w-2"), "BTC", "daily limit")
    request(led, "c001", amount="0.3", ref="w-2")
    # KRW has its own (no) limit
    request(led, "treasury", amount="500000", ref="w-krw", wallet="krw-bank", asset="KRW")
    clock.now_ns += DAY_NS
    request(led, "c002", amount="1", ref="w-3")
    led.verify()


def test_frozen_account_cannot_withdraw(led: solvent.Ledger, live: Exchange) -> None:
    led.freeze_account("c000", reason="court order 17")
    rejects(led, solvent.AccountFrozen, "account_frozen", lambda: request(led), "c000")
    led.unfreeze_account("c000", reason="lifted")
    assert request(led) == "wd-1"


def test_a_frozen_accounts_withdrawal_goes_no_further_towards_the_chain(
    led: solvent.Ledger, live: Exchange
) -> None:
    """A withdrawal requested before its account was frozen used to be approved, sent
    and completed as if nothing had happened: the funds left a frozen account. Now
    approving and sending it are refused; failing it releases the hold, and one already
    sent still completes (it has left the wallet: the books must follow the chain)."""
    pending, approved, sent = request(led), request(led, ref="w-2"), request(led, ref="w-3")
    led.approve_withdrawal(approved, actor="ops-2")
    to_broadcast(led, sent)
    led.freeze_account("c000", reason="court order 17")
    rejects(led, solvent.AccountFrozen, "account_frozen",
            lambda: led.approve_withdrawal(pending, actor="ops-2"), pending, "c000", "frozen")
    rejects(led, solvent.AccountFrozen, "account_frozen",
            lambda: led.broadcast_withdrawal(approved, txid="tx-2", actor="ops-1"), approved,
            "c000")
    held = led.balance_minor("c000", "BTC")[1]
    led.complete_withdrawal(sent, actor="ops-1")
    led.fail_withdrawal(pending, reason="account frozen", actor="ops-1")
    assert led.balance_minor("c000", "BTC")[1] == held - 2 * BTC // 2
    led.unfreeze_account("c000", reason="lifted")
    led.broadcast_withdrawal(approved, txid="tx-2", actor="ops-1")
    assert [w.status for w in withdrawals(led)] == ["failed", "broadcast", "completed"]
    led.verify()


def test_what_open_withdrawals_commit_is_the_same_after_a_snapshot(
    tmp_path: Any, core: str
) -> None:
    """What a wallet's open withdrawals commit is kept as a running figure (it was a sum
    over every withdrawal ever made, on each request: quadratic over a long journal,
    and replay now checks it too); reopened from a snapshot, it is derived again."""
    clock = Clock()
    url = f"sqlite:///{tmp_path}/w.db"
    with solvent.Ledger.open(url, core=core, clock=clock) as led:
        custody_exchange(led)  # each customer holds 2 BTC in btc-cold (6 in all)
        attest_book(led, clock, "btc-cold")
        attest_book(led, clock, "krw-bank", source="bank")
        first = request(led, "c000", "2", ref="w-1")
        request(led, "c001", "2", ref="w-2")
        led.fail_withdrawal(first, reason="cancelled", actor="ops-1")  # 2 of 7 committed
        led.snapshot()
    with solvent.Ledger.open(url, core=core, clock=clock) as led:
        led.open_wallet("btc-hot", asset="BTC")  # the treasury's 4 more BTC lie elsewhere
        led.deposit("treasury", "BTC", "4", wallet="btc-hot", ref="fund-2")
        attest_book(led, clock, "btc-hot")
        request(led, "c002", "2", ref="w-3")  # 4 of btc-cold's 7 committed
        rejects(led, solvent.InsufficientFunds, "insufficient_funds",
                lambda: request(led, "treasury", "4", ref="w-4"), "committed")
        request(led, "treasury", "3", ref="w-4")  # 7 of 7
        led.verify()


def test_withdrawal_beyond_available_is_refused(led: solvent.Ledger, live: Exchange) -> None:
    rejects(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: request(led, amount="2.00000001"), "c000")
    request(led, amount="1.5", ref="w-1")  # held funds are no longer available
    rejects(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: request(led, amount="0.6", ref="w-2"), "c000")
    request(led, amount="0.5", ref="w-2")


def test_withdrawal_beyond_the_wallets_uncommitted_balance_is_refused(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.open_wallet("btc-hot", asset="BTC")
    led.deposit("treasury", "BTC", "0.3", wallet="btc-hot", ref="fill-hot")
    attest_book(led, clock, "btc-hot")
    rejects(led, solvent.InsufficientFunds, "insufficient_funds",
            lambda: request(led, amount="0.5", wallet="btc-hot"), "btc-hot")
    request(led, amount="0.2", ref="w-1", wallet="btc-hot")
    exc = rejects(led, solvent.InsufficientFunds, "insufficient_funds",
                  lambda: request(led, "c001", amount="0.2", ref="w-2", wallet="btc-hot"),
                  "btc-hot", "committed")
    assert exc.details["wallet"] == "btc-hot"
    request(led, "c001", amount="0.1", ref="w-2", wallet="btc-hot")


def test_withdrawal_checks_the_wallet_and_its_asset(led: solvent.Ledger, live: Exchange) -> None:
    rejects(led, solvent.AssetMismatch, "asset_mismatch",
            lambda: request(led, wallet="krw-bank"), "krw-bank")
    rejects(led, solvent.UnknownWallet, "unknown_wallet",
            lambda: request(led, wallet="c001"), "c001")
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: request(led, "btc-cold"), "btc-cold")
    rejects(led, solvent.PermissionDenied, "permission_denied",
            lambda: request(led, actor="audit"), "audit")


# -- attestations and reconciliation ---------------------------------------------------------


def test_unattested_asset_is_not_reconciled_for_withdrawals(
    led: solvent.Ledger, ex: Exchange, clock: Clock
) -> None:
    report = led.reconcile("BTC")
    assert (report.observed_minor, report.wallets[0].observed_minor, report.clean) == (
        0, None, False)
    assert any("no attestation" in p for p in report.problems)
    rejects(led, solvent.NotReconciled, "not_reconciled", lambda: request(led), "btc-cold")
    rejects(led, solvent.NotReconciled, "not_reconciled", lambda: led.require_live("BTC"))
    led.open_wallet("btc-hot", asset="BTC")
    attest_book(led, clock, "btc-cold")
    rejects(led, solvent.NotReconciled, "not_reconciled", lambda: request(led), "btc-hot")
    attest_book(led, clock, "btc-hot")
    led.require_live("BTC")
    assert request(led) == "wd-1"


def test_reconciliation_report_with_items_in_flight(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    report = led.reconcile("BTC")
    assert (report.asset, report.expected_minor, report.observed_minor, report.explained_minor,
            report.unexplained_minor, report.reserves_minor, report.liabilities_minor) == (
        "BTC", 7 * BTC, 7 * BTC, 0, 0, 7 * BTC, 6 * BTC)
    assert report.coverage == Decimal(7) / Decimal(6)
    assert (report.clean, report.problems, report.position) == (True, [], led.position)

    # in flight: 0.5 BTC detected (on-chain, not booked), 0.3 BTC broadcast (left, booked)
    led.detect_deposit("c001", "BTC", "0.5", wallet="btc-cold", ref="txid-in")
    wd = request(led, amount="0.3")
    to_broadcast(led, wd)
    position = led.position
    report = led.attest("btc-cold", "7.2", as_of=clock_time(clock), source="node",
                        evidence="block 880000")
    [row] = report.wallets
    assert (row.wallet, row.expected_minor, row.observed_minor, row.deposits_in_flight_minor,
            row.withdrawals_in_flight_minor, row.explained_minor, row.unexplained_minor) == (
        "btc-cold", 7 * BTC, 720_000_000, BTC // 2, 30_000_000, 20_000_000, 0)
    assert (report.expected_minor, report.observed_minor, report.explained_minor,
            report.unexplained_minor) == (7 * BTC, 720_000_000, 20_000_000, 0)
    assert report.clean and not led.asset_status("BTC").halted
    assert [type(rec) for rec in new_records(led, position)] == [r.Attested]
    att = new_records(led, position)[0]
    assert isinstance(att, r.Attested)
    assert (att.wallet, att.asset, att.balance_minor, att.source, att.evidence) == (
        "btc-cold", "BTC", 720_000_000, "node", "block 880000")
    assert led.reconcile("BTC") == report  # the report is the state, read again

    # one satoshi less is not explained by anything in flight: a shortfall, a halt
    report = led.attest("btc-cold", "7.19999999", as_of=clock_time(clock), source="node")
    assert (report.unexplained_minor, report.clean) == (-1, False)
    assert led.asset_status("BTC").causes == ["shortfall"]


def test_tolerance_is_respected(led: solvent.Ledger, live: Exchange, clock: Clock) -> None:
    led.set_custody_policy("BTC", tolerance="0.01")
    report = attest_book(led, clock, "btc-cold", delta_minor=-BTC // 100)
    assert (report.unexplained_minor, report.clean) == (-BTC // 100, True)
    assert not led.asset_status("BTC").halted
    report = attest_book(led, clock, "btc-cold", delta_minor=+5 * BTC)  # a surplus never halts
    assert report.clean and not led.asset_status("BTC").halted
    report = attest_book(led, clock, "btc-cold", delta_minor=-BTC // 100 - 1)
    assert not report.clean
    status = led.asset_status("BTC")
    assert (status.halted, status.causes) == (True, ["shortfall"])


def test_coverage_below_the_minimum_halts(
    led: solvent.Ledger, ex: Exchange, clock: Clock
) -> None:
    # 6 BTC of customer liabilities, 7 BTC on the books; a 1.1 BTC tolerance lets the
    # shortfall pass, but the attested 5.9 BTC cover only 98 % of what customers own
    led.set_custody_policy("BTC", tolerance="1.1")
    attest_book(led, clock, "krw-bank")
    report = led.attest("btc-cold", "5.9", as_of=clock_time(clock), source="node")
    assert (report.reserves_minor, report.liabilities_minor) == (590_000_000, 6 * BTC)
    status = led.asset_status("BTC")
    assert (status.halted, status.causes) == (True, ["coverage"])
    halt = list(led.records())[-1]
    assert isinstance(halt, r.AssetHalted)
    assert (halt.cause, halt.reserves_minor, halt.liabilities_minor) == (
        "coverage", 590_000_000, 6 * BTC)
    assert "0.983333" in halt.message and status.reason == halt.message


def test_minimum_coverage_is_configurable(
    led: solvent.Ledger, ex: Exchange, clock: Clock
) -> None:
    led.set_custody_policy("BTC", tolerance="1.1", min_coverage="0.95")
    report = led.attest("btc-cold", "5.9", as_of=clock_time(clock), source="node")
    assert report.clean and not led.asset_status("BTC").halted
    led.set_custody_policy("BTC", tolerance="1.1", min_coverage="1.02")
    report = led.attest("btc-cold", "6.1", as_of=clock_time(clock), source="node")
    assert led.asset_status("BTC").causes == ["coverage"]  # 1.0166 < 1.02
    for bad in ("-1", "11", "0.0000001", "x"):
        rejects(led, solvent.InvalidArgument, "invalid_argument",
                lambda bad=bad: led.set_custody_policy("BTC", min_coverage=bad))
    rejects(led, solvent.FloatAmount, "float_amount",
            lambda: led.set_custody_policy("BTC", min_coverage=1.0))  # type: ignore[arg-type]


def test_attest_validates_its_input(led: solvent.Ledger, live: Exchange, clock: Clock) -> None:
    now = clock_time(clock)

    def attest(wallet: str = "btc-cold", balance: Any = "7", **kw: Any) -> Callable[[], object]:
        kw.setdefault("as_of", now)
        kw.setdefault("source", "node")
        return lambda: led.attest(wallet, balance, **kw)

    rejects(led, solvent.InvalidArgument, "invalid_argument",
            attest(as_of=now.replace(tzinfo=None)), "timezone")
    rejects(led, solvent.InvalidArgument, "invalid_argument", attest(as_of="2026-02-06"))
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            attest(as_of=now - timedelta(seconds=1)), "older", "btc-cold")
    # the journal keeps times as int64 ns since the epoch: year 1 could not be encoded
    # (an AssertionError at the commit before 2026-11-22)
    for ancient in (datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)):
        rejects(led, solvent.InvalidArgument, "invalid_argument", attest(as_of=ancient),
                "before 1970")
    rejects(led, solvent.UnknownWallet, "unknown_wallet", attest("c000"), "c000")
    rejects(led, solvent.UnknownWallet, "unknown_wallet", attest("eth-hot"), "eth-hot")
    for money in (7.0, 0.0):
        rejects(led, solvent.FloatAmount, "float_amount", attest(balance=money))
    for bad in (False, "-1", "7.000000001", None, "0.", ".0"):
        rejects(led, solvent.InvalidAmount, "invalid_amount", attest(balance=bad))
    rejects(led, solvent.InvalidArgument, "invalid_argument", attest(source=""))
    rejects(led, solvent.InvalidId, "invalid_id", attest(source="x" * 257))
    rejects(led, solvent.PermissionDenied, "permission_denied", attest(actor="audit"))
    rejects(led, solvent.PermissionDenied, "permission_denied", attest(actor="c000"))
    # a later (or equal) time is fine, and an empty wallet may be attested as 0 or "0"
    # (or "0.00000000", as a statement prints it)
    led.open_wallet("krw-hot", asset="KRW")
    for zero in (0, "0", Decimal(0), "0.0", "0.00000000"):
        report = led.attest("krw-hot", zero, as_of=now, source="bank")
        assert report.wallets[1].observed_minor == 0
    led.attest("btc-cold", "7", as_of=now, source="node")
    # a future-dated attestation would never grow stale: beyond the clock skew it is refused
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            attest(as_of=now + timedelta(hours=1)), "future", "btc-cold")
    led.attest("btc-cold", "7", as_of=now + timedelta(seconds=60), source="node")


class ScriptedClock(Clock):
    """A :class:`Clock` that returns ``script``'s readings first (one may go back)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[int] = []

    def __call__(self) -> int:
        if self.script:
            self.now_ns = self.script.pop(0)
            return self.now_ns
        return super().__call__()


def test_an_attestation_is_checked_against_the_time_its_record_carries(core: str) -> None:
    """attest checks ``as_of`` against one clock reading, and its record carries that
    reading: a clock stepping back between two readings (NTP) made a record that
    replay refuses, an AssertionError on the live path before 2026-11-22."""
    clock = ScriptedClock()
    with solvent.Ledger.open("memory:", core=core, clock=clock) as led:
        custody_exchange(led)
        attest_book(led, clock, "btc-cold")
        balance = Decimal(book_minor(led, "btc-cold")).scaleb(-8)  # reads the clock too
        base_ns = clock.now_ns + 10**9
        clock.script = [base_ns, base_ns - 200 * 10**9]  # the second 200 s earlier
        as_of = clock_time(Clock(base_ns + 250 * 10**9))  # within the 300 s of skew
        report = led.attest("btc-cold", balance, as_of=as_of, source="node")
        assert not [p for p in report.problems if "btc-cold" in p], report.problems
        (rec,) = led.records(after_position=led.position - 1)
        assert isinstance(rec, r.Attested) and rec.time_ns == base_ns, rec
        led.verify()


def test_books_moving_after_an_attestation_halt_nothing_until_that_wallet_is_attested(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.open_wallet("btc-hot", asset="BTC")
    attest_book(led, clock, "btc-hot")
    # seen arriving after btc-cold's attestation: its reconciliation now shows a gap ...
    led.detect_deposit("c000", "BTC", "1", wallet="btc-cold", ref="txid-later")
    assert not led.reconcile("BTC").clean
    # ... but attesting another wallet does not observe btc-cold: no halt
    report = attest_book(led, clock, "btc-hot")
    assert [row.unexplained_minor for row in report.wallets] == [-BTC, 0]
    assert not led.asset_status("BTC").halted
    # nor may the books move past btc-cold's attestation: it does not show the coin
    with pytest.raises(solvent.CoverageBreach):
        led.confirm_deposit("btc-cold", "txid-later")
    assert attest_arrived(led, clock, "btc-cold").clean  # the fresh look shows it all
    assert not led.asset_status("BTC").halted
    led.confirm_deposit("btc-cold", "txid-later")  # now the books move, and reconcile
    assert led.reconcile("BTC").clean and led.balance_minor("c000", "BTC") == (3 * BTC, 0)


# -- halts -----------------------------------------------------------------------------------


def test_a_halt_is_journaled_in_the_attestations_commit(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    version, position = led.version, led.position
    report = led.attest("btc-cold", "6.75", as_of=clock_time(clock), source="node",
                        evidence="block 880001")
    assert (led.version, led.position) == (version + 1, position + 2)  # one commit, two records
    attested, halt = new_records(led, position)
    assert isinstance(attested, r.Attested) and isinstance(halt, r.AssetHalted)
    assert halt.time_ns >= attested.time_ns
    assert (halt.asset, halt.cause, halt.wallet, halt.expected_minor, halt.observed_minor,
            halt.explained_minor, halt.unexplained_minor, halt.reserves_minor,
            halt.liabilities_minor, halt.attestation_age_ns) == (
        "BTC", "shortfall", "btc-cold", 7 * BTC, 675_000_000, 0, -25_000_000, 675_000_000,
        6 * BTC, 0)
    for figure in ("btc-cold", "6.75", "7.00000000", "0.25"):
        assert figure in halt.message, (figure, halt.message)
    status = led.asset_status("BTC")
    assert (status.asset, status.halted, status.causes, status.reason) == (
        "BTC", True, ["shortfall"], halt.message)
    assert report.unexplained_minor == -25_000_000 and not report.clean
    # a second attestation observing the same cause does not journal another halt
    position = led.position
    led.attest("btc-cold", "6.7", as_of=clock_time(clock), source="node")
    assert [type(rec) for rec in new_records(led, position)] == [r.Attested]
    assert not led.asset_status("KRW").halted


def test_halts_are_durable_commits(persistent_url: str, core: str) -> None:
    """On a real store: the shortfall halt is stored in the attestation's batch, the stale
    halt in a batch of its own although its command raised; a reopened ledger sees both."""
    clock = Clock()
    led = solvent.Ledger.open(persistent_url, core=core, clock=clock)
    try:
        custody_exchange(led)
        attest_book(led, clock, "krw-bank")
        version = led.version
        led.attest("btc-cold", "6", as_of=clock_time(clock), source="node")
        clock.now_ns += DAY_NS + SECOND_NS
        with pytest.raises(solvent.AssetHalted):
            request(led, "treasury", "1000", ref="w-krw", wallet="krw-bank", asset="KRW")
        assert led.version == version + 2
    finally:
        led.close()
    store = JournalStore(persistent_url)
    try:
        stored = [r.batch_decoder.decode(batch.payload) for batch in store.read()]
    finally:
        store.close()
    assert [[(type(rec), getattr(rec, "cause", "")) for rec in batch.records]
            for batch in stored[-2:]] == [
        [(r.Attested, ""), (r.AssetHalted, "shortfall")], [(r.AssetHalted, "stale")]]
    again = solvent.Ledger.open(persistent_url, core=core, clock=lambda: clock.now_ns)
    try:
        assert again.asset_status("BTC").causes == ["shortfall"]
        assert again.asset_status("KRW").causes == ["stale"]
        again.verify()
    finally:
        again.close()


def test_halted_asset_refuses_holds_and_broadcasts_but_credits_deposits(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.open_wallet("btc-hot", asset="BTC")
    attest_book(led, clock, "btc-hot")  # empty and attested clean: BTC stays live
    approved = request(led, amount="0.5", ref="w-approved")
    led.approve_withdrawal(approved, actor="ops-2")
    pending = request(led, "c001", amount="0.5", ref="w-pending")
    attest_book(led, clock, "btc-cold", delta_minor=-BTC)
    assert led.asset_status("BTC").halted

    rejects(led, solvent.AssetHalted, "asset_halted", lambda: request(led, "c002", ref="w-new"),
            "BTC", "shortfall")
    rejects(led, solvent.AssetHalted, "asset_halted",
            lambda: led.broadcast_withdrawal(approved, txid="tx-out"), "BTC")
    rejects(led, solvent.AssetHalted, "asset_halted", lambda: led.require_live("BTC"), "BTC")
    # approval is no hold: an operator may still approve, but nothing can be broadcast
    led.approve_withdrawal(pending, actor="ops-2")
    rejects(led, solvent.AssetHalted, "asset_halted",
            lambda: led.broadcast_withdrawal(pending, txid="tx-out-2"))
    # cancelling releases the hold as usual
    led.fail_withdrawal(approved, reason="asset halted")
    assert led.balance_minor("c000", "BTC") == (2 * BTC, 0)
    # deposits still credit, both ways, where an attestation shows the coins: not into
    # btc-cold (attested a BTC short of its books), nor into btc-hot before it is seen
    # holding them (each refusal is journaled as a CommandRejected)
    for wallet in ("btc-cold", "btc-hot"):
        with pytest.raises(solvent.CoverageBreach, match=wallet):
            led.deposit("c002", "BTC", "0.1", wallet=wallet, ref="txid-1")
    assert led.balance_minor("c002", "BTC") == (2 * BTC, 0)
    attest_arrived(led, clock, "btc-hot", arrived_minor=10_000_000)
    led.deposit("c002", "BTC", "0.1", wallet="btc-hot", ref="txid-1")
    led.detect_deposit("c002", "BTC", "0.2", wallet="btc-hot", ref="txid-2")
    attest_arrived(led, clock, "btc-hot")
    led.confirm_deposit("btc-hot", "txid-2")
    assert led.balance_minor("c002", "BTC") == (2 * BTC + 30_000_000, 0)
    assert led.asset_status("BTC").causes == ["shortfall"]  # still halted
    # other assets are unaffected
    led.require_live("KRW")
    krw = request(led, "treasury", amount="250000", ref="w-krw", wallet="krw-bank",
                  asset="KRW")
    to_broadcast(led, krw, "wire-out-1")
    led.complete_withdrawal(krw)
    assert led.balance_minor("treasury", "KRW") == (750_000, 0)
    assert led.asset_status("BTC").halted and not led.asset_status("KRW").halted
    assert_books_balance(led)


def test_stale_attestation_halts_the_asset_at_the_next_hold(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    as_of_ns = next(rec.as_of_ns for rec in led.records() if isinstance(rec, r.Attested))
    clock.now_ns = as_of_ns + DAY_NS - clock.step_ns  # the next reading: exactly a day old
    led.require_live("BTC")  # at most a day old: fresh
    with pytest.raises(solvent.AssetHalted, match="stale"):
        led.require_live("BTC")  # a microsecond older: stale, halted
    assert led.asset_status("BTC").causes == ["stale"]
    [halt] = [rec for rec in led.records() if isinstance(rec, r.AssetHalted)]
    assert halt.attestation_age_ns == DAY_NS + clock.step_ns


def test_stale_attestation_halt_from_a_withdrawal_request(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    clock.now_ns += DAY_NS + SECOND_NS
    before = observe(led)
    version, position = led.version, led.position
    with pytest.raises(solvent.AssetHalted) as info:
        request(led, amount="0.5")
    assert info.value.code == "asset_halted" and "stale" in str(info.value)
    assert info.value.details["causes"] == ["stale"]
    # the halt is committed although the request raised; nothing else changed
    assert (led.version, led.position) == (version + 1, position + 1)
    [halt] = new_records(led, position)
    assert isinstance(halt, r.AssetHalted)
    assert (halt.asset, halt.cause, halt.wallet) == ("BTC", "stale", "btc-cold")
    assert DAY_NS + SECOND_NS < halt.attestation_age_ns < DAY_NS + 2 * SECOND_NS
    assert "btc-cold" in halt.message and "86400" in halt.message
    after = observe(led)
    for key in ("balances", "totals", "frozen", "accounts"):
        assert after[key] == before[key]
    assert withdrawals(led) == []
    status = led.asset_status("BTC")
    assert (status.halted, status.causes, status.reason) == (True, ["stale"], halt.message)
    # once halted, a refusal journals nothing more
    rejects(led, solvent.AssetHalted, "asset_halted", lambda: request(led, ref="w-2"))
    # a fresh attestation does not lift the halt by itself
    attest_book(led, clock, "btc-cold")
    assert led.asset_status("BTC").halted
    assert "old" in led.reconcile("KRW").problems[0]  # KRW is stale too, not yet halted
    rejects(led, solvent.AssetHalted, "asset_halted", lambda: request(led, ref="w-3"))


def test_stale_halt_survives_a_rolled_back_batch(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    clock.now_ns += DAY_NS + SECOND_NS
    position = led.position
    with pytest.raises(solvent.AssetHalted), led.batch():
        led.transfer("c000", "c001", "BTC", "0.1", ref="inside")
        request(led, amount="0.5")
    kinds = [(type(rec), getattr(rec, "cause", "")) for rec in new_records(led, position)]
    assert kinds == [(r.AssetHalted, "stale")]  # the transfer rolled back, the halt stays
    assert led.balance_minor("c000", "BTC") == (2 * BTC, 0)
    assert led.asset_status("BTC").halted
    led.verify()


class Abort(Exception):
    """A later command of a batch failed."""


def test_an_attestation_kept_from_a_rolled_back_batch_is_checked_again(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    """A deposit is reorged away: the operator voids it and attests the wallet at its
    book, clean inside the block. The block then fails, so the void rolls back while the
    attestation (an outside fact) is kept. Its halt checks had run against the rolled-
    back state: the shortfall it shows now was left unhalted, and withdrawals went on."""
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="tx-reorg")
    with contextlib.suppress(Abort), led.batch():
        led.void_deposit("btc-cold", "tx-reorg")
        attest_book(led, clock, "btc-cold")
        assert not led.asset_status("BTC").halted  # clean as the block sees it
        raise Abort
    assert [d.ref for d in led.pending_deposits("c000")] == ["tx-reorg"]  # void rolled back
    assert led.asset_status("BTC").causes == ["shortfall"]
    rejects(led, solvent.AssetHalted, "asset_halted", lambda: request(led, ref="w-after"))
    led.verify()


def test_a_coverage_shortfall_kept_from_a_rolled_back_batch_halts(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.set_custody_policy("BTC", min_coverage="1.5")
    with contextlib.suppress(Abort), led.batch():
        led.transfer("c000", "treasury", "BTC", "2", ref="t-1")  # customers owe less ...
        led.transfer("c001", "treasury", "BTC", "2", ref="t-2")
        attest_book(led, clock, "btc-cold")  # ... so coverage is fine inside the block
        raise Abort
    assert led.asset_status("BTC").causes == ["coverage"]
    led.verify()


def test_attested_reserves_past_int64_are_refused_not_an_assertion(
    core: str, clock: Clock
) -> None:
    """Two ETH wallets (18 decimals: int64 is 9.22 ETH in wei) hold 4 ETH each on the
    books; one is observed at 5.3. The liability cap is the attested reserves, which the
    core keeps within int64: the record failed to apply (``AssertionError``)."""
    led = solvent.Ledger.open("memory:", core=core, clock=clock)
    try:
        led.register_asset("ETH", decimals=18)
        led.open_account("c000")
        for w in ("w1", "w2"):
            led.open_wallet(w, asset="ETH")
            led.deposit("c000", "ETH", "4", wallet=w, ref=f"d-{w}")
        led.attest("w1", "4", as_of=clock_time(clock), source="node")
        rejects(led, solvent.BalanceOverflow, "balance_overflow",  # and nothing changed
                lambda: led.attest("w2", "5.3", as_of=clock_time(clock), source="node"), "int64")
        led.attest("w2", "4", as_of=clock_time(clock), source="node")  # within int64: fine
        led.verify()
    finally:
        led.close()


# -- resume ------------------------------------------------------------------------------------


def test_resume_needs_two_operators_and_a_clean_reconciliation(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    attest_book(led, clock, "btc-cold", delta_minor=-BTC // 10)
    assert led.asset_status("BTC").halted
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.approve_resume("BTC", actor="ops-2"), "BTC")
    for who in ("audit", "c000", "system"):
        rejects(led, solvent.PermissionDenied, "permission_denied",
                lambda who=who: led.resume_asset("BTC", reason="fixed", actor=who))
    rejects(led, solvent.InvalidArgument, "invalid_argument",
            lambda: led.resume_asset("BTC", reason="", actor="ops-1"))
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.resume_asset("KRW", reason="not halted", actor="ops-1"), "KRW")

    led.resume_asset("BTC", reason="treasury refilled the wallet", actor="ops-1")
    rec = list(led.records())[-1]
    assert isinstance(rec, r.ResumeRequested)
    assert (rec.asset, rec.reason, rec.actor) == ("BTC", "treasury refilled the wallet",
                                                  "ops-1")
    status = led.asset_status("BTC")
    assert (status.halted, status.resume_requested_by) == (True, "ops-1")
    rejects(led, solvent.SecondOperatorRequired, "second_operator_required",
            lambda: led.approve_resume("BTC", actor="ops-1"), "ops-1")
    rejects(led, solvent.PermissionDenied, "permission_denied",
            lambda: led.approve_resume("BTC", actor="system"))
    # the books still do not reconcile: the shortfall is there
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.approve_resume("BTC", actor="ops-2"), "shortfall")

    # the company sends 0.1 BTC on-chain: a fresh, clean attestation
    report = attest_book(led, clock, "btc-cold")
    assert report.clean and led.asset_status("BTC").halted  # no resume without approval
    led.approve_resume("BTC", actor="ops-2")
    rec = list(led.records())[-1]
    assert isinstance(rec, r.AssetResumed)
    assert (rec.asset, rec.actor, rec.requested_by, rec.reason) == (
        "BTC", "ops-2", "ops-1", "treasury refilled the wallet")
    status = led.asset_status("BTC")
    assert (status.halted, status.causes, status.reason, status.resume_requested_by) == (
        False, [], "", "")
    assert request(led) == "wd-1"
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.approve_resume("BTC", actor="ops-2"))
    # a later shortfall halts again
    attest_book(led, clock, "btc-cold", delta_minor=-1)
    assert led.asset_status("BTC").causes == ["shortfall"]


def test_resume_is_refused_while_the_attestation_is_stale(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    attest_book(led, clock, "btc-cold", delta_minor=-1)
    led.resume_asset("BTC", reason="one satoshi of dust", actor="ops-1")
    clock.now_ns += DAY_NS + SECOND_NS
    led.attest("btc-cold", "7", as_of=clock_time(clock, ago_ns=DAY_NS + SECOND_NS),
               source="node")  # clean, but as old as the last one
    rejects(led, solvent.InvalidState, "invalid_state",
            lambda: led.approve_resume("BTC", actor="ops-2"), "old")
    attest_book(led, clock, "btc-cold")
    led.approve_resume("BTC", actor="ops-2")
    assert not led.asset_status("BTC").halted


# -- coverage against attested reserves ----------------------------------------------------------


def test_company_credit_above_attested_reserves_is_refused(
    led: solvent.Ledger, ex: Exchange, clock: Clock
) -> None:
    # before any attestation the asset is not capped
    led.transfer("treasury", "c000", "BTC", "0.5", ref="promo-0")
    led.transfer("c000", "treasury", "BTC", "0.5", ref="promo-0-back")
    attest_book(led, clock, "btc-cold")  # 7 BTC reserves, 6 BTC owed to customers
    # a deposit into btc-cold needs its attestation to show the coins (it does not) ...
    with pytest.raises(solvent.CoverageBreach, match="btc-cold"):
        led.deposit("treasury", "BTC", "10", wallet="btc-cold", ref="booked-not-attested")
    # ... so the books say the treasury holds 11 BTC, 10 of them in a wallet that no
    # attestation covers yet (a deposit there is not capped; it is no reserve either) ...
    led.open_wallet("btc-hot", asset="BTC")
    led.deposit("treasury", "BTC", "10", wallet="btc-hot", ref="booked-not-attested")
    assert led.balance_minor("treasury", "BTC") == (11 * BTC, 0)
    assert led.reconcile("BTC").reserves_minor == 7 * BTC
    led.transfer("treasury", "c000", "BTC", "1", ref="promo-1")  # liabilities 7 = reserves
    # ... but one more satoshi to a customer would be owed without being held
    before = observe(led, journal=False)
    position, version = led.position, led.version
    with pytest.raises(solvent.CoverageBreach) as info:
        led.transfer("treasury", "c001", "BTC", "0.00000001", ref="promo-2", actor="ops-1")
    exc = info.value
    assert exc.code == "coverage" and isinstance(exc, solvent.Rejected)
    assert "treasury" in str(exc) and "BTC" in str(exc)
    # journaled as a rejection (one record, its own commit), no balance changed
    assert (led.position, led.version) == (position + 1, version + 1)
    [rec] = new_records(led, position)
    assert isinstance(rec, r.CommandRejected)
    assert (rec.command, rec.code, rec.account, rec.asset, rec.amount_minor, rec.actor,
            rec.ref) == ("transfer", "coverage", "treasury", "BTC", 1, "ops-1", "promo-2")
    after = observe(led, journal=False)
    assert after["balances"] == before["balances"] and after["totals"] == before["totals"]

    # customers paying each other, and deposits, are not capped by the reserves (a
    # deposit only by what its wallet's attestation shows, and btc-hot has none)
    led.transfer("c000", "c001", "BTC", "3", ref="c2c")
    led.deposit("c002", "BTC", "5", wallet="btc-hot", ref="big-deposit")
    assert led.totals("BTC").customer_minor == 12 * BTC > led.reconcile("BTC").reserves_minor
    # a fresh attestation of more reserves lifts the cap
    attest_book(led, clock, "btc-hot")
    led.transfer("treasury", "c001", "BTC", "0.00000001", ref="promo-2b")
    assert_books_balance(led)


def test_company_credit_through_transfer_many_gets_the_coverage_outcome(
    led: solvent.Ledger, live: Exchange
) -> None:
    # the treasury's 5 more BTC lie in a wallet that no attestation covers yet (btc-cold's
    # would refuse them: it does not show them): booked, not part of the attested reserves
    led.open_wallet("btc-hot", asset="BTC")
    led.deposit("treasury", "BTC", "5", wallet="btc-hot", ref="booked-not-attested")
    assert led.reconcile("BTC").reserves_minor == 7 * BTC
    ix = led.account_index
    btc = led.asset_index("BTC")
    result = led.transfer_many(
        [ix("treasury"), ix("c000"), ix("treasury"), ix("treasury")],
        [ix("c000"), ix("c001"), ix("c001"), ix("c002")],
        [btc, btc, btc, btc],
        [BTC // 2, BTC, BTC // 2 + 1, BTC // 2],
        ref="bulk-promo",
    )
    assert list(result.outcomes) == [c.OK, c.OK, c.COVERAGE, c.OK]
    assert result.rejected() == [(2, "coverage")]
    assert result.applied == 3
    assert led.totals("BTC").customer_minor == 7 * BTC  # exactly the attested reserves
    assert led.balance_minor("treasury", "BTC") == (5 * BTC, 0)
    rec = list(led.records())[-1]
    assert isinstance(rec, r.TransfersBulk) and rec.outcome == result.outcomes
    led.verify()  # replay reproduces the coverage outcome byte for byte


# -- replay ------------------------------------------------------------------------------------


def custody_story(led: solvent.Ledger, clock: Clock) -> None:
    """Every custody command, and every kind of custody record, deterministically."""
    custody_exchange(led)
    led.set_custody_policy("BTC", confirmations=2, tolerance="0.001", approval_threshold="0.1",
                           account_daily_limit="3", asset_daily_limit="5")
    attest_book(led, clock, "btc-cold")
    attest_book(led, clock, "krw-bank", source="bank")
    led.detect_deposit("c000", "BTC", "0.4", wallet="btc-cold", ref="in-1")
    attest_arrived(led, clock, "btc-cold")  # a credit needs the wallet seen holding it
    led.confirm_deposit("btc-cold", "in-1", confirmations=2)
    led.detect_deposit("c001", "BTC", "0.3", wallet="btc-cold", ref="in-2")
    led.void_deposit("btc-cold", "in-2", reason="reorg")
    led.detect_deposit("c002", "BTC", "0.2", wallet="btc-cold", ref="in-3")  # stays pending
    attest_arrived(led, clock, "krw-bank", arrived_minor=50_000, source="bank")
    led.deposit("c001", "KRW", 50_000, wallet="krw-bank", ref="wire-1")
    attest_arrived(led, clock, "btc-cold", arrived_minor=2 * BTC)
    led.deposit("treasury", "BTC", "2", wallet="btc-cold", ref="fund-2")
    with pytest.raises(solvent.CoverageBreach):  # not shown: journaled as CommandRejected
        led.deposit("c002", "BTC", "1", wallet="btc-cold", ref="phantom")
    done = request(led, amount="0.5", ref="w-done")
    to_broadcast(led, done, "out-1")
    led.complete_withdrawal(done, actor="ops-2")
    failed = request(led, "c001", amount="0.5", ref="w-failed")
    led.fail_withdrawal(failed, reason="address rejected")
    flying = request(led, "c001", amount="0.25", ref="w-flying")
    to_broadcast(led, flying, "out-2")
    request(led, "c002", amount="0.05", ref="w-small")  # below the threshold
    # the chain once out-2 has left: 8.85 BTC of reserves, 8.9 booked (5.9 owed to
    # customers, 3 the treasury's)
    attest_arrived(led, clock, "btc-cold")
    with pytest.raises(solvent.CoverageBreach):  # journaled as CommandRejected
        led.transfer("treasury", "c000", "BTC", "3", ref="promo-too-big", actor="ops-1")
    ix = led.account_index
    led.transfer_many([ix("treasury")] * 2, [ix("c000"), ix("c001")],
                      [led.asset_index("BTC")] * 2, [BTC // 10, 20 * BTC], ref="bulk-1")
    # a drain: halted in the attestation's commit; resumed by two operators
    attest_book(led, clock, "btc-cold", delta_minor=-30_000_000)  # 0.25 BTC unexplained
    led.resume_asset("BTC", reason="refilled", actor="ops-1")
    attest_book(led, clock, "btc-cold", delta_minor=-5_000_000)  # 0.2 in, 0.25 out
    led.approve_resume("BTC", actor="ops-2")
    # a day later, nothing attested: stale
    clock.now_ns += DAY_NS + SECOND_NS
    attest_book(led, clock, "krw-bank", source="bank")
    request(led, "treasury", amount="1000", ref="w-krw", wallet="krw-bank", asset="KRW")
    with contextlib.suppress(solvent.AssetHalted):  # journals the stale halt
        request(led, "c000", amount="0.5", ref="w-stale")
    led.resume_asset("BTC", reason="node back", actor="ops-2")
    attest_book(led, clock, "btc-cold", delta_minor=-5_000_000)
    led.approve_resume("BTC", actor="ops-1")
    request(led, "c000", amount="0.5", ref="w-after")  # the rolling window moved on


def test_story_covers_every_custody_record(led: solvent.Ledger, clock: Clock) -> None:
    custody_story(led, clock)
    kinds = {type(rec) for rec in led.records()}
    custody_kinds = {r.CustodyPolicySet, r.DepositDetected, r.DepositConfirmed,
                     r.DepositVoided, r.WithdrawalRequested, r.WithdrawalApproved,
                     r.WithdrawalBroadcast, r.WithdrawalCompleted, r.WithdrawalFailed,
                     r.Attested, r.AssetHalted, r.ResumeRequested, r.AssetResumed,
                     r.CommandRejected, r.TransfersBulk}
    assert custody_kinds <= kinds, custody_kinds - kinds
    halts = [rec.cause for rec in led.records() if isinstance(rec, r.AssetHalted)]
    assert halts == ["shortfall", "stale"]
    assert [w.status for w in withdrawals(led)] == [
        "completed", "failed", "broadcast", "approved", "pending_approval",
        "pending_approval"]
    assert len(led.pending_deposits()) == 1
    assert not led.asset_status("BTC").halted
    assert_books_balance(led)
    led.verify()


@pytest.mark.parametrize("snapshot_every", [100_000, 3])
def test_replay_gives_the_same_custody_state(
    persistent_url: str, core: str, snapshot_every: int
) -> None:
    clock = Clock()
    led = solvent.Ledger.open(persistent_url, core=core, clock=clock,
                              snapshot_every=snapshot_every)
    custody_story(led, clock)
    report = led.verify()
    if snapshot_every == 3:
        assert report.snapshots_checked > 0
    now = clock.now_ns
    clock.step_ns = 0  # frozen: both sides reconcile at the same command time
    live = everything(led)
    led.close()
    again = solvent.Ledger.open(persistent_url, core=core, clock=lambda: now)
    try:
        assert everything(again) == live
        again.verify()
        # the reopened ledger carries on: the same next withdrawal id, the same limits
        assert request(again, "c002", amount="0.05", ref="w-next") == "wd-7"
        # c000 asked for 0.5 BTC today: 2.6 more breaks its 3 BTC daily limit
        rejects(again, solvent.LimitExceeded, "limit_exceeded",
                lambda: request(again, "c000", amount="2.6", ref="w-limit"))
        # the coverage cap is the attested reserves, after a reopen (and a snapshot) too
        report = again.reconcile("BTC")
        headroom = report.reserves_minor - report.liabilities_minor
        assert 0 < headroom < again.balance_minor("treasury", "BTC")[0]
        with pytest.raises(solvent.CoverageBreach):
            again.transfer("treasury", "c000", "BTC", Decimal(headroom + 1) / BTC, ref="p-1")
        again.transfer("treasury", "c000", "BTC", Decimal(headroom) / BTC, ref="p-2")
    finally:
        again.close()


def test_both_cores_write_the_same_journal(tmp_path: Any) -> None:
    journals = {}
    for core in ("compiled", "python"):
        clock = Clock()
        with solvent.Ledger.open(f"sqlite:///{tmp_path / core}.db", core=core,
                                 clock=clock) as led:
            custody_story(led, clock)
            journals[core] = (led.head_digest, [msgspec.msgpack.encode(rec)
                                                for rec in led.records()])
    assert journals["compiled"] == journals["python"]
    assert len(journals["python"][1]) > 50


# -- every rejection changes nothing (but its documented record) -----------------------------


def test_every_custody_rejection_changes_nothing(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    led.set_custody_policy("BTC", confirmations=3, account_daily_limit="1.5",
                           tolerance="0.001")
    # the chain shows 0.001 BTC less than the books (fees), within the tolerance: 6.999
    # BTC of reserves for 6 owed to customers, while the treasury's book says 1
    attest_book(led, clock, "btc-cold", delta_minor=-BTC // 1000)
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="pending-1")  # not shown
    wd = request(led, amount="1", ref="w-1")
    led.freeze_account("c002", reason="court order")
    led.transfer("c001", "c000", "BTC", "1.5", ref="move")  # c001 keeps 0.5 BTC
    cases: list[tuple[type[solvent.Rejected], str, Callable[[], object]]] = [
        (solvent.InvalidId, "invalid_id",
         lambda: led.detect_deposit("c000", "BTC", "1", wallet="btc-cold", ref="")),
        (solvent.InvalidAmount, "invalid_amount",
         lambda: led.detect_deposit("c000", "BTC", "0", wallet="btc-cold", ref="d")),
        (solvent.FloatAmount, "float_amount",
         lambda: led.detect_deposit("c000", "BTC", 0.5, wallet="btc-cold", ref="d")),
        (solvent.AssetMismatch, "asset_mismatch",
         lambda: led.detect_deposit("c000", "KRW", "1", wallet="btc-cold", ref="d")),
        (solvent.InvalidArgument, "invalid_argument",
         lambda: led.detect_deposit("btc-cold", "BTC", "1", wallet="btc-cold", ref="d")),
        (solvent.UnknownAccount, "unknown_account",
         lambda: led.detect_deposit("nobody", "BTC", "1", wallet="btc-cold", ref="d")),
        (solvent.PermissionDenied, "permission_denied",
         lambda: led.detect_deposit("c000", "BTC", "1", wallet="btc-cold", ref="d",
                                    actor="c000")),
        (solvent.NotEnoughConfirmations, "not_enough_confirmations",
         lambda: led.confirm_deposit("btc-cold", "pending-1", confirmations=2)),
        (solvent.LimitExceeded, "limit_exceeded",
         lambda: request(led, amount="0.6", ref="w-2")),
        (solvent.AccountFrozen, "account_frozen", lambda: request(led, "c002", ref="w-3")),
        (solvent.InsufficientFunds, "insufficient_funds",
         lambda: request(led, "c001", amount="1", ref="w-4")),
        (solvent.InvalidId, "invalid_id",
         lambda: led.request_withdrawal("c001", "BTC", "1", wallet="btc-cold", address="",
                                        ref="w-5")),
        (solvent.UnknownAsset, "unknown_asset",
         lambda: request(led, "c001", asset="ETH", ref="w-6")),
        (solvent.SecondOperatorRequired, "second_operator_required",
         lambda: led.approve_withdrawal(wd, actor="ops-1")),
        (solvent.InvalidState, "invalid_state",
         lambda: led.broadcast_withdrawal(wd, txid="tx")),
        (solvent.InvalidId, "invalid_id",
         lambda: led.broadcast_withdrawal(wd, txid="bad txid")),
        (solvent.InvalidState, "invalid_state",
         lambda: led.resume_asset("BTC", reason="nothing to resume", actor="ops-1")),
        (solvent.InvalidArgument, "invalid_argument",
         lambda: led.set_custody_policy("BTC", confirmations=0)),
        (solvent.InvalidArgument, "invalid_argument",
         lambda: led.set_custody_policy("BTC", max_attestation_age_s=True)),
        (solvent.FloatAmount, "float_amount",
         lambda: led.set_custody_policy("BTC", tolerance=0.1)),
        (solvent.PermissionDenied, "permission_denied",
         lambda: led.set_custody_policy("BTC", actor="audit")),
        (solvent.UnknownAsset, "unknown_asset", lambda: led.asset_status("ETH")),
        (solvent.UnknownAsset, "unknown_asset", lambda: led.reconcile("ETH")),
    ]
    for error, code, call in cases:
        rejects(led, error, code, call)
    # the documented exceptions: coverage refusals (a company credit above the attested
    # reserves, a deposit credit the wallet's last attestation does not show) and a stale
    # halt leave one record
    documented: list[tuple[type[solvent.Rejected], Callable[[], object], type[Any]]] = [
        (solvent.CoverageBreach,
         lambda: led.transfer("treasury", "c001", "BTC", "0.99900001", ref="p"),
         r.CommandRejected),
        (solvent.CoverageBreach,
         lambda: led.deposit("treasury", "BTC", "5", wallet="btc-cold",
                             ref="booked-not-attested"),
         r.CommandRejected),
        (solvent.CoverageBreach,
         lambda: led.confirm_deposit("btc-cold", "pending-1", confirmations=3),
         r.CommandRejected),
        (solvent.AssetHalted,
         lambda: (setattr(clock, "now_ns", clock.now_ns + DAY_NS + SECOND_NS),
                  request(led, "c001", ref="w-7")), r.AssetHalted),
    ]
    for error, call, kind in documented:
        before = everything(led)
        with pytest.raises(error):
            call()
        after = everything(led)
        assert after["position"] == before["position"] + 1
        assert after["version"] == before["version"] + 1
        assert [type(rec) for rec in after["records"][len(before["records"]):]] == [kind]
        rec = after["records"][-1]
        assert not isinstance(rec, r.CommandRejected) or rec.code == error.code, rec
        for key in ("balances", "totals", "frozen", "pending", "withdrawals"):
            assert after[key] == before[key], key
    assert_books_balance(led)


def test_pending_figures_are_exact_after_many_deposits(
    led: solvent.Ledger, live: Exchange, clock: Clock
) -> None:
    with led.batch():
        for i in range(50):
            led.detect_deposit(f"c00{i % 3}", "BTC", f"0.{i + 1:08d}", wallet="btc-cold",
                               ref=f"many-{i}")
    pending = led.pending_deposits()
    assert len(pending) == 50
    assert sum(d.amount_minor for d in pending) == sum(range(1, 51))
    assert led.reconcile("BTC").wallets[0].deposits_in_flight_minor == sum(range(1, 51))
    attest_arrived(led, clock, "btc-cold")  # the chain shows all 50 (25 are reorged away)
    with led.batch():
        for i in range(0, 50, 2):
            led.confirm_deposit("btc-cold", f"many-{i}")
        for i in range(1, 50, 2):
            led.void_deposit("btc-cold", f"many-{i}")
    assert led.pending_deposits() == []
    assert led.reconcile("BTC").wallets[0].deposits_in_flight_minor == 0
    confirmed = sum(range(1, 51, 2))
    assert led.totals("BTC").custody_minor == 7 * BTC + confirmed
    led.verify()


def test_the_withdrawal_limit_counts_open_withdrawals_only(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    """Completed and failed withdrawals do not use up the limit on open ones."""
    import solvent.custody

    monkeypatch.setattr(solvent.custody, "MAX_OPEN_WITHDRAWALS", 2)
    led = solvent.Ledger.open("memory:", clock=clock)
    custody_exchange(led)
    led.set_custody_policy("BTC", approval_threshold="1")
    attest_book(led, clock, "btc-cold")
    ids = [led.request_withdrawal("c000", "BTC", "0.1", wallet="btc-cold", address="bc1q",
                                  ref=f"w{i}", actor="ops-1") for i in range(2)]
    with pytest.raises(solvent.LimitExceeded, match="open at once"):
        led.request_withdrawal("c000", "BTC", "0.1", wallet="btc-cold", address="bc1q",
                               ref="w2", actor="ops-1")
    led.fail_withdrawal(ids[0], reason="cancelled by customer", actor="ops-1")
    led.broadcast_withdrawal(ids[1], txid="t1", actor="ops-1")
    led.complete_withdrawal(ids[1], actor="ops-1")
    for i in (3, 4):
        led.request_withdrawal("c000", "BTC", "0.1", wallet="btc-cold", address="bc1q",
                               ref=f"w{i}", actor="ops-1")
    led.verify()
