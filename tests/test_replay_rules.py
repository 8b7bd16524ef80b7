"""Replay refuses a record the live path could not have made, hash chain or not.

A forger with the code can append a batch whose hash chain is correct; what stops a
forged record then is replay (``LedgerState.apply``), which must hold every record to
the rules its command was held to. Here: who may make which record
(``Ledger._authorize``: operators and the system anything but the three an operator
makes; a customer only transfers, withdrawals and orders from its own customer
account, and the stale-attestation halt those can trip; an auditor nothing) and the
second operator of an approval.

Each case builds one journal on a SQLite file, appends one chain-valid forged batch
(as ``tests/test_tamper.py`` does) and requires ``TamperDetected`` at the forged
position from both detectors: ``verify_store`` and ``Ledger.open(...).verify()``.
Records that the live path makes are taken from a live run on a copy of the
journal and only their actor (or one field) changed, so the actor is all that is
wrong with them (a deposit credit comes after the attestation that shows its coins,
left as the system made it); the controls show the same records verify with an actor
allowed to make them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import solvent
from conftest import Clock, append_forged_batch, clock_time
from solvent import records as r
from solvent.ledger import verify_store
from solvent.store import JournalStore

BTC = 10**8
DAY_NS = 86_400 * 10**9
INT64_MAX = 2**63 - 1
LATER_NS = 10**9  # the forged records' clock starts a second after the base journal's


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def build_base(path: Path) -> dict[str, Any]:
    """Customers alice and bob (actors too), operators op1 and op2, an auditor, a
    company account, BTC/KRW/ETH with attested wallets, a market with bob's order, a
    withdrawal of bob's waiting for a second operator, a pending deposit, and ETH
    halted by a shortfall with op1's resume request waiting."""
    clock = Clock()
    led = solvent.Ledger.open(url_of(path), clock=clock, snapshot_every=10**9)
    with led.batch():
        for name, role in (("alice", "customer"), ("bob", "customer"), ("op1", "operator"),
                           ("op2", "operator"), ("aud", "auditor")):
            led.register_actor(name, role)
        led.register_asset("BTC", decimals=8)
        led.register_asset("KRW", decimals=0)
        led.register_asset("ETH", decimals=8)
        led.open_account("alice")
        led.open_account("bob")
        led.open_account("treasury", kind="company")
        led.open_wallet("btc-hot", asset="BTC")
        led.open_wallet("krw-bank", asset="KRW")
        led.open_wallet("eth-hot", asset="ETH")
    led.deposit("alice", "BTC", "10", wallet="btc-hot", ref="d1")
    led.deposit("bob", "BTC", "10", wallet="btc-hot", ref="d2")
    led.deposit("alice", "KRW", 10**9, wallet="krw-bank", ref="d3")
    led.deposit("bob", "KRW", 10**9, wallet="krw-bank", ref="d4")
    led.deposit("treasury", "BTC", "5", wallet="btc-hot", ref="d5")
    led.deposit("alice", "ETH", "1", wallet="eth-hot", ref="d6")
    led.attest("btc-hot", "25", as_of=clock_time(clock), source="node")
    led.attest("krw-bank", 2 * 10**9, as_of=clock_time(clock), source="bank")
    led.list_market("BTC-KRW", base="BTC", quote="KRW", tick_size="1000", lot_size="0.001")
    order = led.place_order("bob", "BTC-KRW", "sell", qty="1", price="100000000", actor="bob")
    wd = led.request_withdrawal("bob", "BTC", "1", wallet="btc-hot", address="bc1qbob",
                                ref="w1", actor="op1")  # above the threshold (0): pending
    led.detect_deposit("alice", "BTC", "2", wallet="btc-hot", ref="pend-1")
    led.attest("eth-hot", "0.5", as_of=clock_time(clock), source="node")  # a shortfall
    assert led.asset_status("ETH").halted
    led.resume_asset("ETH", reason="recounted", actor="op1")
    info = {"position": led.position, "version": led.version, "order": order.order_id, "wd": wd,
            "bob_no": led.account_index("bob"), "alice_no": led.account_index("alice"),
            "btc_no": led.asset_index("BTC"), "clock_ns": clock.now_ns}
    led.verify()
    led.close()
    return info


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("replay-rules") / "base.db"
    return path, build_base(path)


def copy_of(base: tuple[Path, dict[str, Any]], dst: Path) -> Path:
    src = base[0]
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", f"{dst}{suffix}")
    return dst


def live_records(base: tuple[Path, dict[str, Any]], tmp_path: Path,
                 action: Callable[[solvent.Ledger], object]) -> list[Any]:
    """The records ``action`` journals when run live on a copy of the base journal."""
    path = copy_of(base, tmp_path / "live.db")
    clock = Clock(start_ns=base[1]["clock_ns"] + LATER_NS)
    with solvent.Ledger.open(url_of(path), clock=clock, snapshot_every=10**9) as led:
        action(led)
        return list(led.records(after_position=base[1]["position"]))


def replace(records: list[Any], **fields: Any) -> list[Any]:
    return [msgspec.structs.replace(rec, **fields) for rec in records]


def refusals(path: Path, core: str) -> list[solvent.TamperDetected]:
    """What both detectors raise on the journal at ``path`` (each must raise)."""
    store = JournalStore(url_of(path), readonly=True)
    try:
        with pytest.raises(solvent.TamperDetected) as by_store:
            verify_store(store, core)
    finally:
        store.close()
    with pytest.raises(solvent.TamperDetected) as by_ledger, solvent.Ledger.open(
        url_of(path), core=core
    ) as led:
        led.verify()
    return [by_store.value, by_ledger.value]


def verify_both(path: Path, core: str) -> None:
    """Both detectors: the full replay of ``verify_store``, and open + verify."""
    store = JournalStore(url_of(path), readonly=True)
    try:
        verify_store(store, core)
    finally:
        store.close()
    with solvent.Ledger.open(url_of(path), core=core) as led:
        led.verify()


def made_by(actor: str, action: Callable[[solvent.Ledger, dict[str, Any]], object],
            **fields: Any) -> Callable[[dict[str, Any], Any], list[Any]]:
    """A case's records: those ``action`` journals live, with ``actor`` (and ``fields``)
    put in their place, so that who made them is all that is wrong with them."""
    return lambda i, live: replace(live(lambda led: action(led, i)), actor=actor, **fields)


def attest_arrival_at_btc_hot(info: dict[str, Any], balance: str
                              ) -> Callable[[solvent.Ledger], object]:
    """btc-hot attested at ``balance`` BTC, as of the base journal's last time: its
    books and its pending deposit (27 BTC) plus the coins a deposit is about to credit."""
    return lambda led: led.attest("btc-hot", balance,
                                  as_of=clock_time(Clock(info["clock_ns"])), source="node")


def credited_by(actor: str, credit: Callable[[solvent.Ledger, dict[str, Any]], object],
                *, attested: str) -> Callable[[dict[str, Any], Any], list[Any]]:
    """A deposit credit's records, made live once btc-hot is attested at ``attested``
    BTC (the coins arrived: a credit needs its wallet's last attestation to show them),
    with ``actor`` put in the credit's place only: the attestation, made by the system
    as allowed, replays; who made the credit is all that is wrong with it."""
    def make(i: dict[str, Any], live: Any) -> list[Any]:
        records = live(lambda led: (attest_arrival_at_btc_hot(i, attested)(led),
                                    credit(led, i)))
        assert isinstance(records[0], r.Attested) and records[0].actor == "system", records
        return [rec if isinstance(rec, r.Attested) else msgspec.structs.replace(rec, actor=actor)
                for rec in records]
    return make


def approve_as_op2(led: solvent.Ledger, info: dict[str, Any]) -> object:
    """The base journal's pending withdrawal approved, as the live path allows."""
    return led.approve_withdrawal(info["wd"], actor="op2")


def header(info: dict[str, Any], actor: str, offset: int = 1) -> dict[str, Any]:
    return {"position": info["position"] + offset, "time_ns": info["clock_ns"] + LATER_NS,
            "actor": actor}


# (case id, the forged records: a function of (info, live), the message's words)
# ``live(action)`` runs ``action`` live as an allowed actor and returns its records.
Case = tuple[str, Callable[[dict[str, Any], Any], list[Any]], str]

CASES: list[Case] = [
    ("customer registers an actor",
     lambda i, live: [r.ActorRegistered(**header(i, "alice"), ref="", name="mallory",
                                        role="system")], "(customer)"),
    ("auditor registers an actor",
     lambda i, live: [r.ActorRegistered(**header(i, "aud"), ref="", name="mallory",
                                        role="operator")], "(auditor)"),
    ("customer registers an asset",
     lambda i, live: [r.AssetRegistered(**header(i, "alice"), ref="", asset="DOGE",
                                        decimals=8)], "(customer)"),
    ("customer opens a company account",
     lambda i, live: [r.AccountOpened(**header(i, "alice"), ref="", account="x",
                                      account_kind="company")], "(customer)"),
    ("customer opens a wallet",
     lambda i, live: [r.WalletOpened(**header(i, "alice"), ref="", wallet="w2",
                                     asset="BTC")], "(customer)"),
    ("customer credits itself a deposit",  # btc-hot: 25 BTC booked, 2 detected, 1000 new
     credited_by("alice", lambda led, i: led.deposit(
         "alice", "BTC", "1000", wallet="btc-hot", ref="fake"), attested="1027"),
     "(customer)"),
    ("customer transfers from another customer",
     made_by("alice", lambda led, i: led.transfer(
         "bob", "alice", "BTC", "5", ref="steal")), "(customer)"),
    ("customer transfers from a company account",
     made_by("alice", lambda led, i: led.transfer(
         "treasury", "alice", "BTC", "1", ref="steal")), "(customer)"),
    ("auditor transfers",
     made_by("aud", lambda led, i: led.transfer(
         "bob", "alice", "BTC", "0.00000001", ref="steal")), "(auditor)"),
    ("customer posts a bulk transfer",
     made_by("alice", lambda led, i: led.transfer_many(
         [i["bob_no"]], [i["alice_no"]], [i["btc_no"]], [BTC], ref="b-1")),
     "(customer)"),
    ("customer freezes another account",
     made_by("alice", lambda led, i: led.freeze_account("bob", reason="x")), "(customer)"),
    ("customer sets a custody policy",
     made_by("alice", lambda led, i: led.set_custody_policy(
         "BTC", tolerance="1000")), "(customer)"),
    ("customer detects a deposit",
     made_by("alice", lambda led, i: led.detect_deposit(
         "alice", "BTC", "1", wallet="btc-hot", ref="pend-2")),
     "(customer)"),
    ("customer confirms its own deposit",  # btc-hot: 25 BTC booked, 2 detected (pend-1)
     credited_by("alice", lambda led, i: led.confirm_deposit("btc-hot", "pend-1"),
                 attested="27"), "(customer)"),
    ("customer voids a deposit",
     made_by("alice", lambda led, i: led.void_deposit(
         "btc-hot", "pend-1", reason="x")), "(customer)"),
    ("customer withdraws from another customer",
     made_by("alice", lambda led, i: led.request_withdrawal(
         "bob", "BTC", "1", wallet="btc-hot", address="evil", ref="w-2")),
     "(customer)"),
    ("requester approves its own withdrawal",
     made_by("op1", approve_as_op2), "who requested it"),
    ("system approves a withdrawal",
     made_by("system", approve_as_op2), "(system)"),
    ("customer approves its own withdrawal",
     made_by("bob", approve_as_op2), "(customer)"),
    ("customer fails a withdrawal",
     made_by("bob", lambda led, i: led.fail_withdrawal(
         i["wd"], reason="x")), "(customer)"),
    ("customer attests",
     made_by("alice", lambda led, i: led.attest(
         "btc-hot", "25", as_of=clock_time(Clock(i["clock_ns"])), source="me")), "(customer)"),
    ("system asks for a resume",
     lambda i, live: [r.ResumeRequested(**header(i, "system"), ref="", asset="ETH",
                                        reason="x")], "(system)"),
    ("requester approves its own resume",
     lambda i, live: [r.AssetResumed(**header(i, "op1"), ref="", asset="ETH",
                                     reason="recounted", requested_by="op1")],
     "who requested it"),
    ("customer approves a resume",
     lambda i, live: [r.AssetResumed(**header(i, "alice"), ref="", asset="ETH",
                                     reason="recounted", requested_by="op1")], "(customer)"),
    ("customer creates the proof key",
     lambda i, live: [r.ProofKeyCreated(**header(i, "alice"), ref="", key=bytes(32))],
     "(customer)"),
    ("auditor journals a rejection",
     lambda i, live: [r.CommandRejected(**header(i, "aud"), ref="", command="transfer",
                                        code="insufficient_funds", message="x",
                                        account="treasury", asset="BTC", amount_minor=1)],
     "(auditor)"),
    ("customer lists a market",
     made_by("alice", lambda led, i: led.list_market(
         "BTC-ETH", base="BTC", quote="ETH", tick_size="0.0001", lot_size="0.001")), "(customer)"),
    ("customer sets a reference price",
     made_by("alice", lambda led, i: led.set_reference_price(
         "BTC-KRW", "100000000", band="0.5")), "(customer)"),
    ("customer halts a market",
     made_by("alice", lambda led, i: led.halt_market("BTC-KRW", reason="x")), "(customer)"),
    ("customer places an order for another",
     made_by("alice", lambda led, i: led.place_order(
         "bob", "BTC-KRW", "sell", qty="1", price="1000")), "(customer)"),
    ("customer cancels another's order",
     made_by("alice", lambda led, i: led.cancel_order(i["order"])),
     "(customer)"),
    ("customer amends another's order",
     made_by("alice", lambda led, i: led.amend_order(i["order"], qty="0.5")), "(customer)"),
    ("customer submits rows as an operator (owner -1)",
     made_by("alice", lambda led, i: led.submit_orders(
         [led.order_row("bob", "BTC-KRW", "sell", qty="1", price="1000")])),
     "(customer)"),
    ("customer submits rows as another customer",
     lambda i, live: made_by("alice", lambda led, i: led.submit_orders(
         [led.order_row("bob", "BTC-KRW", "sell", qty="1", price="1000")]),
         owner=i["bob_no"])(i, live), "(customer)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_record_its_actor_could_not_have_made_does_not_replay(
    base: tuple[Path, dict[str, Any]], tmp_path: Path, core: str, case: Case
) -> None:
    _name, make, words = case
    info = base[1]
    forged = make(info, lambda action: live_records(base, tmp_path, action))
    assert forged and forged[0].position == info["position"] + 1
    # the case's record is the first by its actor: a deposit credit's backing
    # attestation before it (``credited_by``) is made by an actor allowed to, and replays
    at = next(rec.position for rec in forged if rec.actor == forged[-1].actor)
    path = copy_of(base, tmp_path / "forged.db")
    append_forged_batch(url_of(path), forged)
    for exc in refusals(path, core):
        assert exc.position == at, exc
        assert words in str(exc), exc


# The same kinds of record, made by an actor allowed to make them: they verify.
CONTROLS: list[tuple[str, Callable[[dict[str, Any], Any], list[Any]]]] = [
    ("customer transfers from its own account",  # the replay loop's customer rule
     made_by("bob", lambda led, i: led.transfer(
         "bob", "alice", "BTC", "5", ref="gift"))),
    ("another operator approves the withdrawal",
     lambda i, live: live(lambda led: approve_as_op2(led, i))),
    ("a customer withdraws from its own account",
     lambda i, live: live(lambda led: led.request_withdrawal(
         "alice", "BTC", "1", wallet="btc-hot", address="a", ref="w-3", actor="alice"))),
    ("a customer cancels its own order",
     lambda i, live: live(lambda led: led.cancel_order(i["order"], actor="bob"))),
    ("a customer submits its own rows",
     lambda i, live: live(lambda led: led.submit_orders(
         [led.order_row("alice", "BTC-KRW", "buy", qty="0.1", price="1000")],
         actor="alice"))),
    ("the system freezes an account",
     made_by("system", lambda led, i: led.freeze_account("bob", reason="x"))),
]


@pytest.mark.parametrize("control", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_the_same_records_by_an_allowed_actor_replay(
    base: tuple[Path, dict[str, Any]], tmp_path: Path, core: str,
    control: tuple[str, Callable[[dict[str, Any], Any], list[Any]]],
) -> None:
    forged = control[1](base[1], lambda action: live_records(base, tmp_path, action))
    assert forged
    path = copy_of(base, tmp_path / "forged.db")
    append_forged_batch(url_of(path), forged)
    verify_both(path, core)


def test_a_stale_halt_tripped_by_a_customer_replays(tmp_path: Path, core: str) -> None:
    """A customer's order on an asset whose attestation is too old journals the halt in
    the customer's name: the one record of an operator's kind a customer makes."""
    clock = Clock()
    path = tmp_path / "stale.db"
    with solvent.Ledger.open(url_of(path), core=core, clock=clock) as led:
        led.register_actor("alice", "customer")
        led.register_asset("BTC", decimals=8)
        led.register_asset("KRW", decimals=0)
        led.open_account("alice")
        led.open_wallet("btc-hot", asset="BTC")
        led.open_wallet("krw-bank", asset="KRW")
        led.deposit("alice", "KRW", 10**9, wallet="krw-bank", ref="d")
        for asset in ("BTC", "KRW"):
            led.set_custody_policy(asset, max_attestation_age_s=60)
        led.attest("btc-hot", 0, as_of=clock_time(clock), source="node")
        led.attest("krw-bank", 10**9, as_of=clock_time(clock), source="bank")
        led.list_market("BTC-KRW", base="BTC", quote="KRW", tick_size="1000",
                        lot_size="0.001")
        clock.now_ns += 61 * 10**9
        with pytest.raises(solvent.AssetHalted):
            led.place_order("alice", "BTC-KRW", "buy", qty="0.1", price="1000",
                            actor="alice")
        halt = list(led.records(after_position=led.position - 1))
        assert [(type(x), x.actor) for x in halt] == [(r.AssetHalted, "alice")]
        assert halt[0].cause == "stale"
    verify_both(path, core)


# -- what the custody commands refused, checked again on replay -------------------------


def renumber(records: list[Any], info: dict[str, Any]) -> list[Any]:
    """``records`` at consecutive positions after the base journal, at one time."""
    return [msgspec.structs.replace(rec, position=info["position"] + 1 + k,
                                    time_ns=info["clock_ns"] + LATER_NS)
            for k, rec in enumerate(records)]


def eth_halt(info: dict[str, Any], actor: str, asset: str) -> Any:
    """A halt record shaped like the base journal's ETH shortfall halt."""
    return r.AssetHalted(**header(info, actor), ref="", asset=asset, cause="shortfall",
                         message="forged", wallet="btc-hot", expected_minor=0,
                         observed_minor=0, explained_minor=0, unexplained_minor=0,
                         reserves_minor=0, liabilities_minor=0, attestation_age_ns=0)


def withdrawal_of_alice(led: solvent.Ledger) -> object:
    return led.request_withdrawal("alice", "BTC", "0.5", wallet="btc-hot", address="a",
                                  ref="w-9", actor="op1")


def attest_btc_hot(info: dict[str, Any]) -> Callable[[solvent.Ledger], object]:
    """btc-hot attested as its books and its pending deposit explain it (27 BTC), as
    of the base journal's last time: clean, so its only record is the attestation."""
    return lambda led: led.attest("btc-hot", "27", as_of=clock_time(Clock(info["clock_ns"])),
                                  source="node")


RULE_CASES: list[Case] = [
    ("withdrawal from a halted asset",
     lambda i, live: [r.WithdrawalRequested(
         **header(i, "op1"), ref="w-9", withdrawal_id="wd-2", account="alice",
         wallet="eth-hot", asset="ETH", amount_minor=BTC // 10, address="a",
         needs_approval=True)], "while it is halted"),
    ("withdrawal from a wallet of another asset",
     lambda i, live: [rec if not isinstance(rec, r.WithdrawalRequested)
                      else msgspec.structs.replace(rec, wallet="krw-bank")
                      for rec in live(withdrawal_of_alice)], "names a wallet of another asset"),
    ("withdrawal from a frozen account",
     lambda i, live: renumber(list(reversed(live(lambda led: (
         withdrawal_of_alice(led), led.freeze_account("alice", reason="x"))))), i),
     "which is frozen"),
    ("withdrawal above the threshold that needs no approval",
     lambda i, live: replace(live(withdrawal_of_alice), needs_approval=False),
     "needs_approval"),
    ("withdrawal past the daily limit",
     lambda i, live: [rec if not isinstance(rec, r.WithdrawalRequested)
                      else msgspec.structs.replace(rec, amount_minor=2 * BTC)
                      for rec in live(lambda led: (
                          led.set_custody_policy("BTC", account_daily_limit="1"),
                          withdrawal_of_alice(led)))],
     "daily withdrawal limit"),
    ("withdrawal of more than the wallet has uncommitted",
     lambda i, live: [rec if not isinstance(rec, r.WithdrawalRequested)
                      else msgspec.structs.replace(rec, amount_minor=3 * BTC // 2)
                      for rec in live(lambda led: (
                          led.open_wallet("btc-2", asset="BTC"),
                          led.deposit("alice", "BTC", "1", wallet="btc-2", ref="d-2"),
                          led.attest("btc-2", "1", as_of=clock_time(Clock(i["clock_ns"])),
                                     source="node"),
                          led.request_withdrawal("alice", "BTC", "0.5", wallet="btc-2",
                                                 address="a", ref="w-9", actor="op1")))],
     "commits more than wallet 'btc-2'"),
    ("withdrawal sent while its asset is halted",
     lambda i, live: renumber([
         *live(lambda led: approve_as_op2(led, i)),
         eth_halt(i, "op1", "BTC"),
         r.WithdrawalBroadcast(**header(i, "op1"), ref="", withdrawal_id=i["wd"], txid="tx")],
         i), "while BTC is halted"),
    ("resume approved while the shortfall remains",
     lambda i, live: [r.AssetResumed(**header(i, "op2"), ref="", asset="ETH",
                                     reason="recounted", requested_by="op1")],
     "does not reconcile cleanly"),
    ("attestation of a shortfall with no halt",
     lambda i, live: renumber([rec for rec in live(lambda led: led.attest(
         "btc-hot", "5", as_of=clock_time(Clock(i["clock_ns"])), source="node"))
         if not (isinstance(rec, r.AssetHalted) and rec.cause == "shortfall")], i),
     "Attested shows a shortfall of wallet 'btc-hot' of BTC"),
    ("deposit confirmed with fewer confirmations than the policy asks",
     lambda i, live: [rec if not isinstance(rec, r.DepositConfirmed)
                      else msgspec.structs.replace(rec, confirmations=5)
                      for rec in live(lambda led: (
                          led.set_custody_policy("BTC", confirmations=6),
                          attest_btc_hot(i)(led),
                          led.confirm_deposit("btc-hot", "pend-1", confirmations=6)))],
     "has 5 confirmations; BTC needs 6"),
    ("deposit credited that the last attestation does not show",
     lambda i, live: renumber([rec for rec in live(lambda led: (
         attest_arrival_at_btc_hot(i, "28")(led),
         led.deposit("alice", "BTC", "1", wallet="btc-hot", ref="d-9")))
         if not isinstance(rec, r.Attested)], i),
     "credits 100000000 minor units of BTC that the last attestation of 'btc-hot' does not "
     "show"),
    ("deposit confirmed that the last attestation does not show",
     lambda i, live: renumber([rec for rec in live(lambda led: (
         attest_btc_hot(i)(led),
         led.confirm_deposit("btc-hot", "pend-1")))
         if not isinstance(rec, r.Attested)], i),
     "credits 200000000 minor units of BTC that the last attestation of 'btc-hot' does not "
     "show"),
    ("policy asking for no confirmation",
     lambda i, live: replace(live(lambda led: led.set_custody_policy("BTC")),
                             confirmations=0), "has confirmations 0, outside 1.."),
    ("policy with a negative tolerance",
     lambda i, live: replace(live(lambda led: led.set_custody_policy("BTC")),
                             tolerance_minor=-1), "has tolerance_minor -1"),
    ("policy with an attestation age in part seconds",
     lambda i, live: replace(live(lambda led: led.set_custody_policy("BTC")),
                             max_attestation_age_ns=DAY_NS + 1), "not whole seconds"),
    ("attestation older than the wallet's last",
     lambda i, live: replace(live(attest_btc_hot(i)), as_of_ns=1),
     "is older than the last attestation of 'btc-hot'"),
    ("attestation as of beyond the clock skew",
     lambda i, live: [msgspec.structs.replace(rec, as_of_ns=rec.time_ns + 301 * 10**9)
                      for rec in live(attest_btc_hot(i))], "outside 0 .. its command time"),
    ("attestation as of before 1970",
     lambda i, live: replace(live(attest_btc_hot(i)), as_of_ns=-1),
     "outside 0 .. its command time"),
    ("attestation of a negative balance",
     lambda i, live: replace(live(attest_btc_hot(i)), balance_minor=-1),
     "attests a negative balance -1"),
    ("attestation with no source",
     lambda i, live: replace(live(attest_btc_hot(i)), source=""), "has no source"),
    ("attestation putting the reserves past int64",
     lambda i, live: [rec if not isinstance(rec, r.Attested)
                      else msgspec.structs.replace(rec, balance_minor=INT64_MAX)
                      for rec in live(lambda led: (
                          led.open_wallet("btc-2", asset="BTC"),
                          led.attest("btc-2", 0, as_of=clock_time(Clock(i["clock_ns"])),
                                     source="node")))],
     "puts the attested reserves of BTC past int64"),
    ("attestation of low coverage with no halt",
     lambda i, live: [rec for rec in live(lambda led: led.attest(
         "btc-hot", "5", as_of=clock_time(Clock(i["clock_ns"])), source="node"))
         if not (isinstance(rec, r.AssetHalted) and rec.cause == "coverage")],
     "Attested shows a coverage of BTC"),
    # bob's ask rests at 100,000,000 KRW: a band of 190M..210M strands it below the floor
    ("reference move that leaves an order a taker in the band would meet",
     lambda i, live: replace(live(lambda led: led.set_reference_price(
         "BTC-KRW", "200000000", band="0.05")), cancelled_order_ids=()),
     "leaves resting orders a taker inside the new band would meet"),
    ("reference move that cancels an order inside the band",
     lambda i, live: replace(live(lambda led: led.set_reference_price(
         "BTC-KRW", "100000000", band="0.05")), cancelled_order_ids=(i["order"],)),
     "which does not rest where the new band strands it"),
]


@pytest.mark.parametrize("case", RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_a_custody_record_its_command_would_have_refused_does_not_replay(
    base: tuple[Path, dict[str, Any]], tmp_path: Path, core: str, case: Case
) -> None:
    _name, make, words = case
    forged = make(base[1], lambda action: live_records(base, tmp_path, action))
    path = copy_of(base, tmp_path / "forged.db")
    append_forged_batch(url_of(path), forged)
    for exc in refusals(path, core):
        assert words in str(exc), exc
        assert exc.version == base[1]["version"] + 1 and exc.position is not None, exc


RULE_CONTROLS: list[tuple[str, Callable[[dict[str, Any], Any], list[Any]]]] = [
    ("the shortfall attested with its halts",
     lambda i, live: live(lambda led: led.attest(
         "btc-hot", "5", as_of=clock_time(Clock(i["clock_ns"])), source="node"))),
    ("the resume approved once the wallet reconciles",
     lambda i, live: live(lambda led: (
         led.attest("eth-hot", "1", as_of=clock_time(Clock(i["clock_ns"])), source="node"),
         led.approve_resume("ETH", actor="op2")))),
    ("a deposit confirmed as the policy asks, once the wallet is attested showing it",
     lambda i, live: live(lambda led: (
         led.set_custody_policy("BTC", confirmations=6, max_attestation_age_s=3600),
         attest_btc_hot(i)(led),
         led.confirm_deposit("btc-hot", "pend-1", confirmations=6)))),
    ("a deposit credited once the wallet is attested showing it",
     lambda i, live: live(lambda led: (
         attest_arrival_at_btc_hot(i, "28")(led),
         led.deposit("alice", "BTC", "1", wallet="btc-hot", ref="d-9")))),
    ("a reference move with the order it strands cancelled",
     lambda i, live: live(lambda led: led.set_reference_price(
         "BTC-KRW", "200000000", band="0.05"))),
    ("a withdrawal within the daily limit",
     lambda i, live: live(lambda led: (led.set_custody_policy("BTC", account_daily_limit="1"),
                                       withdrawal_of_alice(led)))),
]


@pytest.mark.parametrize("control", RULE_CONTROLS, ids=[c[0] for c in RULE_CONTROLS])
def test_the_custody_records_as_their_commands_made_them_replay(
    base: tuple[Path, dict[str, Any]], tmp_path: Path, core: str,
    control: tuple[str, Callable[[dict[str, Any], Any], list[Any]]],
) -> None:
    forged = control[1](base[1], lambda action: live_records(base, tmp_path, action))
    path = copy_of(base, tmp_path / "forged.db")
    append_forged_batch(url_of(path), forged)
    verify_both(path, core)
