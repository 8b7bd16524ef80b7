"""The liabilities root at a journal position is a pure function of the journal:
computed live at that position, later from a replay, after reopening the store,
or by the other balance core, it is the same root."""

from __future__ import annotations

from pathlib import Path

import pytest

import solvent
from conftest import Clock, build_exchange


@pytest.mark.parametrize("core", ["compiled", "python"])
def test_root_recomputed_from_replay_at_the_same_position_is_identical(
    tmp_path: Path, clock: Clock, core: str
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = solvent.Ledger.open(url, core=core, clock=clock, snapshot_every=7)
    build_exchange(led, customers=5, customer_btc="1.5", treasury_btc=3)
    live_root = led.liabilities_root("BTC")
    live_proof = led.inclusion_proof("c002", "BTC")
    position = live_root.position
    assert position == led.position
    # the books move on: the root at the old position must not
    led.transfer("c000", "c001", "BTC", "0.25", ref="later-1")
    led.open_account("c099")
    led.deposit("c099", "BTC", "2", wallet="btc-cold", ref="later-2")
    assert led.liabilities_root("BTC") != live_root
    assert led.liabilities_root("BTC", at=position) == live_root
    assert solvent.verify_inclusion(led.inclusion_proof("c002", "BTC", at=position), live_root)
    led.close()
    for other in ("compiled", "python"):
        with solvent.Ledger.open(url, core=other) as again:
            assert again.liabilities_root("BTC", at=position) == live_root
            assert again.inclusion_proof("c002", "BTC", at=position) == live_proof
    # a balance changed in the past changes the root: the proof does not verify against it
    with solvent.Ledger.open(url, core=core) as again:
        later = again.liabilities_root("BTC")
        with pytest.raises(solvent.ProofInvalid):
            solvent.verify_inclusion(live_proof, later)


def test_root_at_a_position_outside_the_journal_is_refused(clock: Clock) -> None:
    led = solvent.Ledger.open("memory:", clock=clock)
    build_exchange(led, customers=2, customer_btc=1)
    for bad in (-1, led.position + 5):
        with pytest.raises(solvent.InvalidArgument):
            led.liabilities_root("BTC", at=bad)
    with pytest.raises(solvent.UnknownAsset):
        led.liabilities_root("ETH")


@pytest.mark.parametrize("core", ["compiled", "python"])
def test_a_root_asked_at_the_latest_position_is_of_that_position(
    clock: Clock, core: str
) -> None:
    """The first proof journals the ledger's proof key. Asked at the latest position, the
    root, the proof and the statement were stamped with the key's position instead (one
    later), and asking again at the same position gave another root."""
    led = solvent.Ledger.open("memory:", core=core, clock=clock)
    build_exchange(led, customers=3, customer_btc=2)
    position = led.position
    root = led.liabilities_root("BTC", at=position)
    assert root.position == position and led.position == position + 1  # the key's record
    assert led.liabilities_root("BTC", at=position) == root
    document = led.inclusion_proof("c000", "BTC", at=position)
    assert solvent.verify_inclusion(document, root, account="c000")
    assert led.reserves_statement("BTC", at=position).liabilities == root
    now = led.liabilities_root("BTC")  # asked for now: now, the key's record included
    assert now.position == led.position and now.total_minor == root.total_minor
    led.close()


def test_the_proof_key_is_not_made_inside_a_batch(clock: Clock) -> None:
    """A key made inside ``batch()`` was dropped with the block's rollback, after nonces
    from it had been handed out (and a second proof in the block was refused)."""
    led = solvent.Ledger.open("memory:", clock=clock)
    build_exchange(led, customers=2, customer_btc=1)
    position = led.position
    for ask in (lambda: led.liabilities_root("BTC"), lambda: led.account_nonce("c000"),
                lambda: led.inclusion_proof("c000", "BTC"),
                lambda: led.reserves_statement("BTC")):
        with pytest.raises(solvent.InvalidState, match="outside batch"), led.batch():
            ask()
        assert led.position == position
    nonce = led.account_nonce("c000")  # outside: the key is made, in its own commit
    with led.batch():
        assert led.account_nonce("c000") == nonce  # once it exists, reads inside are fine
        root = led.liabilities_root("BTC")
    assert solvent.verify_inclusion(led.inclusion_proof("c000", "BTC"), root)
    led.close()
