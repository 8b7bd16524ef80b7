"""The incidents Solvent exists to make impossible, replayed as stories on a real SQLite file.

Each story runs on a fresh ledger file with a deterministic clock (days pass by moving
``clock.now_ns``), on both balance cores, and ends by closing the ledger, reopening the
file and checking that the journal replays to the same custody state.

Orders cannot be placed yet (the matching engine is another issue), so "orders and holds
are refused" is checked through ``require_live``, the gate every new hold passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import solvent
from conftest import (
    DAY_NS,
    Clock,
    assert_books_balance,
    attest_arrived,
    attest_book,
    book_minor,
    clock_time,
    custody_exchange,
    custody_view,
)
from solvent import records as r
from solvent.core import codes as c

BTC = 10**8
HOUR_NS = 3_600 * 10**9


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def led(sqlite_url: str, core: str, clock: Clock) -> Iterator[solvent.Ledger]:
    ledger = solvent.Ledger.open(sqlite_url, core=core, clock=clock)
    yield ledger
    ledger.close()


def halts(led: solvent.Ledger) -> list[r.AssetHalted]:
    return [rec for rec in led.records() if isinstance(rec, r.AssetHalted)]


def reopened_view_matches(led: solvent.Ledger, sqlite_url: str, core: str,
                          clock: Clock) -> None:
    """Close, reopen the file, replay: the same custody state (at the same command time)."""
    led.verify()
    clock.step_ns = 0
    now = clock.now_ns
    before = custody_view(led)
    led.close()
    again = solvent.Ledger.open(sqlite_url, core=core, clock=lambda: now)
    try:
        assert custody_view(again) == before
        again.verify()
    finally:
        again.close()


def withdraw(led: solvent.Ledger, account: str, asset: str, amount: str, *, ref: str,
             wallet: str) -> str:
    """Request, approve (second operator), broadcast: what an operator desk does."""
    wd = led.request_withdrawal(account, asset, amount, wallet=wallet, address=f"to-{ref}",
                                ref=ref, actor="ops-1")
    led.approve_withdrawal(wd, actor="ops-2")
    led.broadcast_withdrawal(wd, txid=f"tx-{ref}", actor="ops-1")
    return wd


def test_mt_gox_a_silent_daily_drain_halts_at_the_first_gap_beyond_tolerance(
    led: solvent.Ledger, clock: Clock, sqlite_url: str, core: str
) -> None:
    """Mt.Gox, 2011-14: coins left the hot wallet a little at a time, with no ledger
    entry, for years. Here the hot wallet loses 0.01 BTC a day on-chain; the ledger is
    reconciled daily against the chain with a tolerance of 0.05 BTC."""
    custody_exchange(led)
    led.open_wallet("btc-hot", asset="BTC")
    led.deposit("c000", "BTC", "1", wallet="btc-hot", ref="hot-fill")
    led.set_custody_policy("BTC", tolerance="0.05")
    daily_loss = BTC // 100

    for day in range(1, 11):
        clock.now_ns += DAY_NS
        attest_book(led, clock, "btc-cold")
        attest_book(led, clock, "krw-bank", source="bank")
        position, version = led.position, led.version
        report = attest_book(led, clock, "btc-hot", delta_minor=-day * daily_loss)
        hot = next(row for row in report.wallets if row.wallet == "btc-hot")
        assert hot.unexplained_minor == -day * daily_loss  # nothing in flight explains it
        if day <= 5:  # within tolerance: business as usual, nothing journaled but the facts
            assert not led.asset_status("BTC").halted, day
            assert [type(rec) for rec in led.records(after_position=position)] == [r.Attested]
            led.require_live("BTC")
            continue
        # day 6: 0.06 BTC unexplained > 0.05 tolerance. The attestation that shows it
        # halts the asset, in the same commit, with the figures.
        assert day == 6
        assert led.version == version + 1
        attested, halt = led.records(after_position=position)
        assert isinstance(attested, r.Attested) and isinstance(halt, r.AssetHalted)
        assert (halt.cause, halt.wallet, halt.unexplained_minor, halt.expected_minor,
                halt.observed_minor) == ("shortfall", "btc-hot", -6 * daily_loss, BTC,
                                         BTC - 6 * daily_loss)
        assert "btc-hot" in halt.message and "0.06000000" in halt.message
        break
    status = led.asset_status("BTC")
    assert (status.halted, status.causes) == (True, ["shortfall"])
    assert len(halts(led)) == 1

    # BTC: no new holds (orders, withdrawals), from any of its wallets
    with pytest.raises(solvent.AssetHalted, match="shortfall"):
        led.require_live("BTC")
    for wallet in ("btc-hot", "btc-cold"):
        with pytest.raises(solvent.AssetHalted):
            led.request_withdrawal("c001", "BTC", "0.1", wallet=wallet, address="x",
                                   ref=f"after-{wallet}", actor="ops-1")
    assert led.balance_minor("c001", "BTC") == (2 * BTC, 0)
    # ... while KRW keeps working, withdrawals included
    led.require_live("KRW")
    wd = withdraw(led, "treasury", "KRW", "300000", ref="krw-payout", wallet="krw-bank")
    led.complete_withdrawal(wd, actor="ops-2")
    assert led.balance_minor("treasury", "KRW") == (700_000, 0)
    # the daily attestations go on; the drain is on the record, never silent
    clock.now_ns += DAY_NS
    attest_book(led, clock, "btc-hot", delta_minor=-7 * daily_loss)
    assert len(halts(led)) == 1 and led.asset_status("BTC").halted
    assert_books_balance(led)
    reopened_view_matches(led, sqlite_url, core, clock)


def test_bitmart_a_hot_wallet_drained_in_one_interval_halts_at_the_next_attestation(
    led: solvent.Ledger, clock: Clock, sqlite_url: str, core: str
) -> None:
    """BitMart, Dec 2021: hot wallets were drained between one look and the next.
    Here the hot wallet holds 3 BTC of customer money; one withdrawal is approved and
    waiting, another already broadcast; six hours later the wallet is empty on-chain."""
    custody_exchange(led)
    led.open_wallet("btc-hot", asset="BTC")
    for name in ("c000", "c001", "c002"):
        led.deposit(name, "BTC", "1", wallet="btc-hot", ref=f"hot-{name}")
    for wallet in ("btc-cold", "btc-hot", "krw-bank"):
        attest_book(led, clock, wallet)
    assert led.reconcile("BTC").clean and led.reconcile("KRW").clean
    waiting = led.request_withdrawal("c000", "BTC", "0.5", wallet="btc-hot", address="bc1a",
                                     ref="w-waiting", actor="ops-1")
    led.approve_withdrawal(waiting, actor="ops-2")
    sent = withdraw(led, "c001", "BTC", "0.4", ref="w-sent", wallet="btc-hot")

    clock.now_ns += 6 * HOUR_NS  # the theft happens here; the ledger hears nothing
    position, version = led.position, led.version
    report = led.attest("btc-hot", "0", as_of=clock_time(clock), source="node",
                        evidence="block 716000")
    # the broadcast 0.4 BTC explains part of the gap; 2.6 BTC do not
    hot = next(row for row in report.wallets if row.wallet == "btc-hot")
    assert (hot.expected_minor, hot.observed_minor, hot.explained_minor,
            hot.unexplained_minor) == (3 * BTC, 0, -40_000_000, -260_000_000)
    # halted at once, by this very attestation, for both causes, in its commit
    assert led.version == version + 1
    kinds = [(type(rec), getattr(rec, "cause", "")) for rec in
             led.records(after_position=position)]
    assert kinds == [(r.Attested, ""), (r.AssetHalted, "shortfall"),
                     (r.AssetHalted, "coverage")]
    coverage = halts(led)[-1]
    assert (coverage.reserves_minor, coverage.liabilities_minor) == (7 * BTC, 9 * BTC)
    assert led.asset_status("BTC").causes == ["shortfall", "coverage"]
    assert report.coverage == Decimal(7) / Decimal(9)

    # the approved withdrawal cannot go out; no new withdrawal or hold in BTC
    with pytest.raises(solvent.AssetHalted):
        led.broadcast_withdrawal(waiting, txid="tx-waiting", actor="ops-1")
    assert led.withdrawal(waiting).status == "approved"
    with pytest.raises(solvent.AssetHalted):
        led.request_withdrawal("c002", "BTC", "0.1", wallet="btc-cold", address="bc1c",
                               ref="w-new", actor="ops-1")
    with pytest.raises(solvent.AssetHalted):
        led.require_live("BTC")
    # what was already on its way settles; what was waiting is cancelled, hold released
    led.complete_withdrawal(sent, actor="ops-1")
    led.fail_withdrawal(waiting, reason="hot wallet compromised", actor="ops-1")
    assert led.balance_minor("c000", "BTC") == (3 * BTC, 0)
    # customers keep their balances on the books: the loss is the exchange's to cover
    assert led.totals("BTC").customer_minor == 9 * BTC - 40_000_000
    # deposits still credit, once the wallet's attestation shows them; KRW is untouched
    attest_arrived(led, clock, "btc-cold", arrived_minor=BTC // 10)
    led.deposit("c002", "BTC", "0.1", wallet="btc-cold", ref="late-deposit")
    led.require_live("KRW")
    assert book_minor(led, "btc-hot") == 3 * BTC - 40_000_000
    assert_books_balance(led)
    reopened_view_matches(led, sqlite_url, core, clock)


def test_bithumb_an_over_issued_promotion_is_refused_at_the_first_credit(
    led: solvent.Ledger, clock: Clock, sqlite_url: str, core: str
) -> None:
    """Bithumb, Feb 2026: a promotion meant to pay 2,000 KRW per user paid 2,000 BTC per
    user, against reserves of a fraction of that. Here 20 customers hold 2 BTC each and
    the attested reserves are 41 BTC; the treasury's books show 4,000 BTC more, booked but
    never reconciled, so the books alone would allow the payout. (A deposit beyond an
    attested wallet's last attestation is refused, see the next story: the 4,000 BTC are
    booked in a wallet never attested, whose book backs nothing.)"""
    ex = custody_exchange(led, 20)
    for wallet in ("btc-cold", "krw-bank"):
        attest_book(led, clock, wallet)
    led.open_wallet("btc-treasury", asset="BTC")
    led.deposit("treasury", "BTC", "4000", wallet="btc-treasury", ref="booked-not-held")
    assert led.balance("treasury", "BTC").available == Decimal(4001)
    before = {name: led.balance_minor(name, "BTC") for name in ex.customers}

    # paid one by one: the very first credit is refused, and journaled as refused
    position = led.position
    with pytest.raises(solvent.CoverageBreach) as info:
        for name in ex.customers:
            led.transfer("treasury", name, "BTC", "2000", ref=f"promo-{name}",
                         memo="welcome promotion", actor="ops-1")
    assert info.value.code == "coverage" and info.value.details["to_account"] == "c000"
    [rejected] = led.records(after_position=position)
    assert isinstance(rejected, r.CommandRejected)
    assert (rejected.code, rejected.account, rejected.amount_minor, rejected.ref) == (
        "coverage", "treasury", 2000 * BTC, "promo-c000")

    # paid in bulk: every item is refused with the coverage outcome, nothing applied
    ix = led.account_index
    result = led.transfer_many([ix("treasury")] * 20, [ix(n) for n in ex.customers],
                               [led.asset_index("BTC")] * 20, [2000 * BTC] * 20,
                               ref="promo-bulk", actor="ops-1")
    assert result.applied == 0 and set(result.outcomes) == {c.COVERAGE}
    assert {name: led.balance_minor(name, "BTC") for name in ex.customers} == before
    assert led.totals("BTC").customer_minor == 40 * BTC  # no phantom BTC to sell

    # the promotion as intended, in KRW, pays from a funded budget
    result = led.transfer_many([ix("treasury")] * 20, [ix(n) for n in ex.customers],
                               [led.asset_index("KRW")] * 20, [2_000] * 20,
                               ref="promo-krw", actor="ops-1")
    assert result.applied == 20
    assert led.balance_minor("c019", "KRW") == (2_000, 0)
    # a small BTC bonus within the attested reserves is fine too
    led.transfer("treasury", "c000", "BTC", "1", ref="bonus", actor="ops-1")
    assert led.totals("BTC").customer_minor == 41 * BTC
    assert_books_balance(led)
    reopened_view_matches(led, sqlite_url, core, clock)


def test_bithumb_as_a_deposit_coins_no_attestation_shows_are_refused_at_the_first_credit(
    led: solvent.Ledger, clock: Clock, sqlite_url: str, core: str
) -> None:
    """The same error made as a deposit: 620,000 BTC credited to customers' accounts with
    made-up refs, coins that never reached any wallet. Here 20 customers hold 2 BTC each
    and every wallet is attested; the operator credits 31,000 BTC to each (620,000 BTC
    in all), directly and then through detection and confirmation. The first credit is
    refused and journaled; no balance moves, so there is nothing to sell or withdraw."""
    ex = custody_exchange(led, 20)
    led.open_wallet("btc-hot", asset="BTC")
    for wallet in ("btc-cold", "btc-hot", "krw-bank"):
        attest_book(led, clock, wallet)
    assert led.reconcile("BTC").clean and led.reconcile("KRW").clean
    each = 31_000 * BTC
    assert each * len(ex.customers) == 620_000 * BTC
    before = {name: led.balance_minor(name, "BTC") for name in ex.accounts}

    # credited one by one: the very first deposit is refused, and journaled as refused
    position = led.position
    with pytest.raises(solvent.CoverageBreach) as info:
        for name in ex.customers:
            led.deposit(name, "BTC", "31000", wallet="btc-cold", ref=f"promo-{name}",
                        actor="ops-1")
    err = info.value
    assert err.code == "coverage" and (err.details["account"], err.details["wallet"]) == (
        "c000", "btc-cold")
    assert (err.details["amount_minor"], err.details["attested_minor"],
            err.details["room_minor"]) == (each, 41 * BTC, 0)
    for words in ("btc-cold", "31,000.00000000 BTC", "41.00000000 BTC"):
        assert words in err.message, (words, err.message)
    [rejected] = led.records(after_position=position)
    assert isinstance(rejected, r.CommandRejected)
    assert (rejected.command, rejected.code, rejected.account, rejected.amount_minor,
            rejected.ref, rejected.actor) == ("deposit", "coverage", "c000", each,
                                              "promo-c000", "ops-1")

    # through the deposit pipeline: detection is only a claim; the credit is refused
    for name in ex.customers:
        led.detect_deposit(name, "BTC", "31000", wallet="btc-hot", ref=f"tx-{name}",
                           actor="ops-1")
    assert led.balance("c000", "BTC").pending == 31_000
    position = led.position
    with pytest.raises(solvent.CoverageBreach) as info:
        for name in ex.customers:
            led.confirm_deposit("btc-hot", f"tx-{name}", actor="ops-1")
    assert info.value.code == "coverage" and info.value.details["account"] == "c000"
    assert info.value.details["wallet"] == "btc-hot"
    [rejected] = led.records(after_position=position)
    assert isinstance(rejected, r.CommandRejected)
    assert (rejected.command, rejected.code, rejected.account, rejected.amount_minor,
            rejected.ref) == ("confirm_deposit", "coverage", "c000", each, "tx-c000")
    assert len(led.pending_deposits()) == 20  # still only detected, never credited

    # nothing was credited: no phantom BTC to sell or to withdraw
    assert {name: led.balance_minor(name, "BTC") for name in ex.accounts} == before
    assert led.totals("BTC").customer_minor == 40 * BTC
    assert led.balance("c000", "BTC").available == Decimal(2)
    with pytest.raises(solvent.InsufficientFunds):
        led.request_withdrawal("c000", "BTC", "31000", wallet="btc-hot", address="bc1x",
                               ref="cash-out", actor="ops-1")
    led.require_live("BTC")  # the refusals halt nothing: honest business goes on
    # the chain never shows the coins: the detections are voided, and the wallet's next
    # attestation reconciles (attested before the voids, it would halt on a shortfall)
    for name in ex.customers:
        led.void_deposit("btc-hot", f"tx-{name}", reason="not on chain", actor="ops-1")
    assert led.pending_deposits() == []
    attest_book(led, clock, "btc-hot")
    # a deposit that did arrive, and that the wallet's attestation shows, is credited
    attest_arrived(led, clock, "btc-cold", arrived_minor=BTC // 2)
    led.deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="real-deposit", actor="ops-1")
    assert led.balance_minor("c000", "BTC") == (2 * BTC + BTC // 2, 0)
    assert led.reconcile("BTC").clean and halts(led) == []
    assert_books_balance(led)
    reopened_view_matches(led, sqlite_url, core, clock)


def test_stale_attestations_halt_new_holds_and_resume_needs_a_second_operator(
    led: solvent.Ledger, clock: Clock, sqlite_url: str, core: str
) -> None:
    """The chain watcher stops reporting. A day later, nobody knows what the wallets
    hold: the first hold attempted after that halts the asset, on the record."""
    custody_exchange(led)
    for wallet in ("btc-cold", "krw-bank"):
        attest_book(led, clock, wallet)
    led.request_withdrawal("c000", "BTC", "0.5", wallet="btc-cold", address="bc1a",
                           ref="w-fresh", actor="ops-1")

    clock.now_ns += DAY_NS + 60 * 10**9  # 24 h and a minute without an attestation
    version = led.version
    with pytest.raises(solvent.AssetHalted, match="stale"):
        led.request_withdrawal("c001", "BTC", "0.5", wallet="btc-cold", address="bc1b",
                               ref="w-stale", actor="ops-1")
    assert led.version == version + 1  # the halt is committed, the request is not
    [halt] = halts(led)
    assert (halt.asset, halt.cause, halt.wallet) == ("BTC", "stale", "btc-cold")
    assert halt.attestation_age_ns > DAY_NS
    assert led.balance_minor("c001", "BTC") == (2 * BTC, 0)
    with pytest.raises(solvent.AssetHalted):
        led.require_live("BTC")  # orders would be refused as well
    # KRW is stale too, and halts at its own next hold
    with pytest.raises(solvent.AssetHalted):
        led.require_live("KRW")
    assert [h.asset for h in halts(led)] == ["BTC", "KRW"]

    # the watcher is back: a fresh, clean attestation does not lift the halt alone
    attest_book(led, clock, "btc-cold")
    assert led.asset_status("BTC").halted
    led.resume_asset("BTC", reason="chain watcher restarted", actor="ops-1")
    with pytest.raises(solvent.SecondOperatorRequired):
        led.approve_resume("BTC", actor="ops-1")
    assert led.asset_status("BTC").halted
    led.approve_resume("BTC", actor="ops-2")
    assert not led.asset_status("BTC").halted
    assert led.asset_status("KRW").halted  # each asset resumes on its own
    wd = led.request_withdrawal("c001", "BTC", "0.5", wallet="btc-cold", address="bc1b",
                                ref="w-after", actor="ops-1")
    assert led.withdrawal(wd).status == "pending_approval"
    # KRW: the resume is refused while its attestation is stale
    led.resume_asset("KRW", reason="bank statement due", actor="ops-2")
    with pytest.raises(solvent.InvalidState, match="old"):
        led.approve_resume("KRW", actor="ops-1")
    attest_book(led, clock, "krw-bank", source="bank")
    led.approve_resume("KRW", actor="ops-1")
    led.require_live("KRW")
    kinds = [type(rec) for rec in led.records() if isinstance(
        rec, (r.AssetHalted, r.ResumeRequested, r.AssetResumed))]
    assert kinds == [r.AssetHalted, r.AssetHalted, r.ResumeRequested, r.AssetResumed,
                     r.ResumeRequested, r.AssetResumed]
    reopened_view_matches(led, sqlite_url, core, clock)


def test_scenarios_leave_a_journal_an_auditor_can_read(
    led: solvent.Ledger, clock: Clock
) -> None:
    """Every halt names its cause and its figures in plain words."""
    custody_exchange(led)
    attest_book(led, clock, "btc-cold")
    led.attest("btc-cold", "6.5", as_of=clock_time(clock), source="node")
    [halt] = halts(led)
    as_dict: dict[str, Any] = r.record_to_dict(halt)
    assert as_dict["kind"] == "asset_halted" and as_dict["cause"] == "shortfall"
    assert as_dict["unexplained_minor"] == -BTC // 2
    for words in ("btc-cold", "6.50000000", "7.00000000", "0.50000000 unexplained"):
        assert words in halt.message, (words, halt.message)
