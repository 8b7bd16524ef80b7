"""A deposit credit needs an attestation that shows the coins.

``CustodyState.credit_room``: a credit into a custody wallet (``deposit``, or
``confirm_deposit`` of a detected deposit) may add to the ledger's book of the wallet at
most ``last attested balance - book + withdrawals broadcast and not completed +
tolerance``. Beyond it the credit is ``CoverageBreach``, journaled as ``CommandRejected``,
and no balance changes. Replay holds the records to the same rule
(``tests/test_replay_rules.py``).

The exchange of every test (``conftest.custody_exchange``): customers c000..c002 with
2 BTC each, a company ``treasury`` with 1 BTC, ``btc-cold`` holding those 7 BTC on the
books, attested at exactly that unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import solvent
from conftest import Clock, attest_arrived, attest_book, clock_time, custody_exchange, observe
from solvent import records as r

BTC = 10**8


@pytest.fixture
def led(core: str, clock: Clock) -> Iterator[solvent.Ledger]:
    ledger = solvent.Ledger.open("memory:", core=core, clock=clock)
    custody_exchange(ledger)
    yield ledger
    ledger.close()


def refused_and_journaled(led: solvent.Ledger, call: Any, command: str) -> solvent.Rejected:
    """``call()`` raises ``CoverageBreach``; the journal gains exactly one
    ``CommandRejected`` for ``command`` and nothing else changes."""
    before = observe(led, journal=False)
    position = led.position
    with pytest.raises(solvent.CoverageBreach) as info:
        call()
    after = observe(led, journal=False)
    [rec] = list(led.records(after_position=position))
    assert isinstance(rec, r.CommandRejected)
    assert (rec.command, rec.code) == (command, "coverage")
    for moved in ("position", "version", "head"):
        del before[moved], after[moved]
    assert after == before
    return info.value


def test_a_deposit_the_attestation_does_not_show_is_refused_until_one_does(
    led: solvent.Ledger, clock: Clock
) -> None:
    attest_book(led, clock, "btc-cold")
    err = refused_and_journaled(led, lambda: led.deposit(
        "c000", "BTC", "620000", wallet="btc-cold", ref="tx-1"), "deposit")
    assert err.details["room_minor"] == 0 and err.details["attested_minor"] == 7 * BTC
    assert "shows 7.00000000 BTC" in str(err) and "attest the wallet once the coins" in str(err)
    # the coins arrive and the chain shows them: the same ref now credits
    attest_book(led, clock, "btc-cold", delta_minor=BTC)
    refused_and_journaled(led, lambda: led.deposit(
        "c000", "BTC", "1.00000001", wallet="btc-cold", ref="tx-1"), "deposit")
    led.deposit("c000", "BTC", "1", wallet="btc-cold", ref="tx-1")
    assert led.balance_minor("c000", "BTC") == (3 * BTC, 0)
    assert led.reconcile("BTC").clean
    # the room is spent: a second credit of the same coins is refused
    refused_and_journaled(led, lambda: led.deposit(
        "c001", "BTC", "0.00000001", wallet="btc-cold", ref="tx-2"), "deposit")
    led.verify()


def test_a_detected_deposit_confirms_once_an_attestation_shows_it(
    led: solvent.Ledger, clock: Clock
) -> None:
    attest_book(led, clock, "btc-cold")
    led.detect_deposit("c000", "BTC", "0.5", wallet="btc-cold", ref="tx-in")  # no room needed
    refused_and_journaled(led, lambda: led.confirm_deposit("btc-cold", "tx-in"),
                          "confirm_deposit")
    assert led.pending_deposits()[0].ref == "tx-in"  # still detected: nothing lost
    attest_arrived(led, clock, "btc-cold")  # 7.5 BTC on chain
    led.confirm_deposit("btc-cold", "tx-in")
    assert led.balance_minor("c000", "BTC") == (2 * BTC + BTC // 2, 0)
    led.verify()


def test_the_room_counts_broadcast_withdrawals_and_the_tolerance(
    led: solvent.Ledger, clock: Clock
) -> None:
    led.set_custody_policy("BTC", tolerance="0.0001")
    attest_book(led, clock, "btc-cold")
    wd = led.request_withdrawal("c001", "BTC", "1", wallet="btc-cold", address="bc1q",
                                ref="w-1", actor="ops-1")
    led.approve_withdrawal(wd, actor="ops-2")
    led.broadcast_withdrawal(wd, txid="tx-out", actor="ops-1")
    # the chain, attested after the broadcast, shows 6 BTC; the book still has 7 (the
    # withdrawal is not completed) and 0.5 BTC arrived: room 6.5 - 7 + 1 + 0.0001
    led.attest("btc-cold", "6.5", as_of=clock_time(clock), source="node")
    refused_and_journaled(led, lambda: led.deposit(
        "c002", "BTC", "0.50010001", wallet="btc-cold", ref="tx-a"), "deposit")
    led.deposit("c002", "BTC", "0.5001", wallet="btc-cold", ref="tx-a")  # exactly the room
    led.complete_withdrawal(wd, actor="ops-1")  # book and in-flight both fall: room stays 0
    refused_and_journaled(led, lambda: led.deposit(
        "c002", "BTC", "0.00000001", wallet="btc-cold", ref="tx-b"), "deposit")
    led.verify()


def test_a_wallet_never_attested_is_not_capped_and_backs_nothing(
    led: solvent.Ledger, clock: Clock
) -> None:
    led.deposit("c000", "BTC", "1000", wallet="btc-cold", ref="tx-x")  # nothing attested yet
    with pytest.raises(solvent.NotReconciled):
        led.request_withdrawal("c000", "BTC", "1", wallet="btc-cold", address="a", ref="w",
                               actor="ops-1")
    report = attest_book(led, clock, "btc-cold", delta_minor=-1000 * BTC)  # the truth
    assert not report.clean and led.asset_status("BTC").halted


def test_a_shortfall_in_one_wallet_stops_its_deposits_not_another_wallets(
    led: solvent.Ledger, clock: Clock
) -> None:
    led.open_wallet("btc-hot", asset="BTC")
    attest_book(led, clock, "btc-cold", delta_minor=-BTC)  # 1 BTC missing: a halt
    attest_book(led, clock, "btc-hot", delta_minor=BTC)  # 1 BTC arrived here
    assert led.asset_status("BTC").halted
    led.deposit("c000", "BTC", "1", wallet="btc-hot", ref="tx-hot")  # a halted asset credits
    # coins that arrive in the short wallet cannot be told from coins that pay it down
    attest_book(led, clock, "btc-cold", delta_minor=-BTC + BTC // 2)
    refused_and_journaled(led, lambda: led.deposit(
        "c001", "BTC", "0.5", wallet="btc-cold", ref="tx-cold"), "deposit")
    led.verify()



def test_coins_that_left_after_the_attestation_open_no_room(
    led: solvent.Ledger, clock: Clock
) -> None:
    """The attestation counted the coins a later withdrawal sends: the book falling by
    them is no room for a deposit (else a completed withdrawal would open room for a
    phantom credit of its amount; the property test found that in a draft)."""
    attest_book(led, clock, "btc-cold")  # 7 BTC, before the withdrawals below
    sent = led.request_withdrawal("c000", "BTC", "1", wallet="btc-cold", address="a",
                                  ref="w-1", actor="ops-1")
    led.approve_withdrawal(sent, actor="ops-2")
    led.broadcast_withdrawal(sent, txid="tx-1", actor="ops-1")
    refused_and_journaled(led, lambda: led.deposit(
        "c001", "BTC", "0.00000001", wallet="btc-cold", ref="tx-a"), "deposit")
    led.complete_withdrawal(sent, actor="ops-1")
    refused_and_journaled(led, lambda: led.deposit(
        "c001", "BTC", "1", wallet="btc-cold", ref="tx-a"), "deposit")
    # a withdrawal broadcast and then failed (the coins never left) changes nothing either
    dropped = led.request_withdrawal("c002", "BTC", "0.5", wallet="btc-cold", address="a",
                                     ref="w-2", actor="ops-1")
    led.approve_withdrawal(dropped, actor="ops-2")
    led.broadcast_withdrawal(dropped, txid="tx-2", actor="ops-1")
    led.fail_withdrawal(dropped, reason="dropped from the mempool", actor="ops-1")
    refused_and_journaled(led, lambda: led.deposit(
        "c001", "BTC", "0.00000001", wallet="btc-cold", ref="tx-a"), "deposit")
    # the next look at the chain shows 6 BTC and 0.25 BTC that arrived: that credits
    attest_book(led, clock, "btc-cold", delta_minor=BTC // 4)
    led.deposit("c001", "BTC", "0.25", wallet="btc-cold", ref="tx-a")
    assert led.reconcile("BTC").clean
    led.verify()  # replay computes the same room at every credit
