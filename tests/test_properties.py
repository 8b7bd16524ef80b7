"""Properties of the ledger under random command streams (hypothesis, memory store).

A small reference model (plain dicts, the rules of the issue) predicts every command's
outcome; the ledger must agree command by command. After every command: no balance is
negative, custody == customer + company per asset, a refused command changed no
balance and no position (but for the one journaled rejection of a refused company
debit). At the end a full replay (``verify()``) equals the live state, and the compiled
and the Python cores, given the same stream and clock, wrote identical journal records.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import solvent
from conftest import Clock, assert_books_balance, balances
from solvent import records as r
from solvent.core import codes as c

ASSETS = {"BTC": 8, "KRW": 0}
ACCOUNTS = ["treasury", "c0", "c1", "c2"]  # numbers 0..3; treasury is a company account
WALLETS = {"btc-w": "BTC", "krw-w": "KRW"}  # numbers 4, 5
NAMES = [*ACCOUNTS, *WALLETS]
ASSET_NUMBER = {"BTC": 0, "KRW": 1}
INT64_MAX = 2**63 - 1

PROPERTY_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- amounts: what is given, and the exact value it stands for -----------------------------


@dataclass(frozen=True)
class Amount:
    given: Any  # what the command passes
    value: Decimal | None  # the exact value in asset units; None: not an amount at all

    def minor(self, asset: str) -> int | None:
        """Minor units of ``asset``, or None when the ledger must refuse the amount."""
        if self.value is None or self.value <= 0:
            return None
        scaled = self.value.scaleb(ASSETS[asset])
        if scaled != scaled.to_integral_value():
            return None  # more decimals than the asset has
        return int(scaled)


def make_amount(satoshi: int, form: str) -> Amount:
    value = Decimal(satoshi).scaleb(-8)
    if form == "int" and value == value.to_integral_value():
        return Amount(int(value), value)
    if form == "str":
        return Amount(format(value.normalize(), "f"), value)
    if form == "float":
        return Amount(float(value), None)
    return Amount(value.normalize(), value)


amounts = st.builds(
    make_amount,
    st.one_of(
        st.integers(1, 10**8),  # up to 1 BTC, any satoshi (too fine for KRW)
        st.integers(1, 3).map(lambda k: k * 10**8),  # whole units (valid KRW too)
        st.integers(1, 900).map(lambda k: k * 10**8),  # hundreds of whole units
        st.integers(1, 9).map(lambda k: k * 10**7),  # tenths
        st.integers(-1, 0),  # never valid
    ),
    st.sampled_from(["str"] * 3 + ["decimal"] * 3 + ["int"] * 3 + ["float"]),
)
names = st.sampled_from(ACCOUNTS * 4 + [*WALLETS, "ghost"])
assets = st.sampled_from(["BTC", "KRW"] * 5 + ["ETH"])
ASSET_WALLET = {"BTC": "btc-w", "KRW": "krw-w", "ETH": "btc-w"}


@st.composite
def deposits(draw: st.DrawFn) -> tuple[Any, ...]:
    asset = draw(assets)
    wallet = ASSET_WALLET[asset]
    if draw(st.integers(0, 9)) == 0:  # now and then the wallet of the other asset
        wallet = "krw-w" if wallet == "btc-w" else "btc-w"
    ref = f"d{draw(st.integers(0, 12))}"
    return ("deposit", draw(names), asset, draw(amounts), wallet, ref)


@st.composite
def transfers(draw: st.DrawFn) -> tuple[Any, ...]:
    actor = draw(st.sampled_from([None] * 5 + ["c0"]))  # the default actor, or customer c0
    return ("transfer", draw(names), draw(names), draw(assets), draw(amounts),
            f"t{draw(st.integers(0, 15))}", draw(st.sampled_from(["", "", "m"])), actor)


freezes = st.tuples(st.sampled_from(["freeze", "unfreeze"]), names)
bulk_items = st.tuples(
    st.integers(-1, 6), st.integers(-1, 6), st.integers(-1, 2),
    st.one_of(st.integers(-1, 2 * 10**8), st.integers(1, 3).map(lambda k: k * 10**8)),
)
bulks = st.tuples(
    st.just("bulk"), st.lists(bulk_items, min_size=1, max_size=6),
    st.sampled_from(["b0", "b1", "b2", "b3"]),
)
simple_commands = st.one_of(deposits(), transfers(), transfers(), transfers(), freezes, bulks)
batches = st.tuples(st.just("batch"), st.lists(simple_commands, max_size=5), st.booleans())
again = st.just(("again",))  # repeat the previous command (same ref: replay or duplicate)
command_streams = st.lists(
    st.one_of(simple_commands, simple_commands, simple_commands, batches, again), max_size=30
)


# -- the reference model -------------------------------------------------------------------


@dataclass
class Model:
    balance: dict[tuple[str, str], int] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    deposit_refs: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    transfer_refs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    bulk_refs: dict[str, tuple[Any, bytes]] = field(default_factory=dict)
    position: int = 0

    def get(self, name: str, asset: str) -> int:
        return self.balance.get((name, asset), 0)

    def add(self, name: str, asset: str, delta: int) -> None:
        self.balance[(name, asset)] = self.get(name, asset) + delta

    def deposit(self, account: str, asset: str, amount: Amount, wallet: str, ref: str) -> str:
        """'ok', 'replay' or 'rejected' (never journaled: deposits spend no company funds)."""
        m = amount.minor(asset) if asset in ASSETS else None
        if account not in ACCOUNTS or asset not in ASSETS or m is None:
            return "rejected"
        if WALLETS[wallet] != asset:
            return "rejected"
        prior = self.deposit_refs.get((wallet, ref))
        if prior is not None:
            return "replay" if prior == (account, asset, m) else "rejected"
        self.deposit_refs[(wallet, ref)] = (account, asset, m)
        self.add(wallet, asset, m)
        self.add(account, asset, m)
        self.position += 1
        return "ok"

    def transfer(self, src: str, dst: str, asset: str, amount: Amount, ref: str, memo: str,
                 actor: str | None) -> str:
        """'ok', 'replay', 'rejected' or 'journaled' (a refused company debit)."""
        m = amount.minor(asset) if asset in ASSETS else None
        if asset not in ASSETS or src not in NAMES or dst not in NAMES:
            return "rejected"
        if actor == "c0" and src != "c0":
            return "rejected"  # a customer spends only its own account
        if m is None or src in WALLETS or dst in WALLETS or src == dst:
            return "rejected"
        prior = self.transfer_refs.get(ref)
        if prior is not None:
            return "replay" if prior == (src, dst, asset, m, memo) else "rejected"
        if src in self.frozen or self.get(src, asset) < m:
            if src == "treasury":
                self.position += 1
                return "journaled"
            return "rejected"
        self.transfer_refs[ref] = (src, dst, asset, m, memo)
        self.add(src, asset, -m)
        self.add(dst, asset, m)
        self.position += 1
        return "ok"

    def set_frozen(self, account: str, frozen: bool) -> str:
        if account not in ACCOUNTS or (account in self.frozen) == frozen:
            return "rejected"
        (self.frozen.add if frozen else self.frozen.discard)(account)
        self.position += 1
        return "ok"

    def bulk_item(self, d: int, cr: int, a: int, amount: int) -> int:
        """The documented check order of the balance core's bulk path."""
        if amount <= 0 or amount > INT64_MAX:
            return c.INVALID_AMOUNT
        if not 0 <= a < len(ASSETS):
            return c.UNKNOWN_ASSET
        if not (0 <= d < len(NAMES) and 0 <= cr < len(NAMES)):
            return c.UNKNOWN_ACCOUNT
        if d == cr:
            return c.SAME_ACCOUNT
        asset = list(ASSETS)[a]
        src, dst = NAMES[d], NAMES[cr]
        for name in (src, dst):
            if name in WALLETS and WALLETS[name] != asset:
                return c.ASSET_MISMATCH
        if src in WALLETS or dst in WALLETS:
            return c.WRONG_KIND
        if src in self.frozen:
            return c.ACCOUNT_FROZEN
        if self.get(src, asset) < amount:
            return c.INSUFFICIENT_FUNDS
        self.add(src, asset, -amount)
        self.add(dst, asset, amount)
        return c.OK

    def bulk(self, items: list[tuple[int, int, int, int]], ref: str) -> tuple[str, bytes]:
        content = tuple(items)
        prior = self.bulk_refs.get(ref)
        if prior is not None:
            return ("replay", prior[1]) if prior[0] == content else ("rejected", b"")
        outcome = bytes(self.bulk_item(*item) for item in items)
        self.bulk_refs[ref] = (content, outcome)
        self.position += 1
        return "ok", outcome


# -- driving a ledger and the model side by side -------------------------------------------


def new_ledger(core: str) -> solvent.Ledger:
    led = solvent.Ledger.open("memory:", core=core, clock=Clock())
    with led.batch():
        for asset, decimals in ASSETS.items():
            led.register_asset(asset, decimals=decimals)
        led.open_account("treasury", kind="company")
        for name in ACCOUNTS[1:]:
            led.open_account(name)
        for wallet, asset in WALLETS.items():
            led.open_wallet(wallet, asset=asset)
        led.register_actor("c0", "customer")
        for name in ACCOUNTS:  # the treasury holds a little, customers more
            btc, krw = ("1", 500) if name == "treasury" else ("2", 1_000)
            led.deposit(name, "BTC", btc, wallet="btc-w", ref=f"seed-btc-{name}")
            led.deposit(name, "KRW", krw, wallet="krw-w", ref=f"seed-krw-{name}")
    assert [led.account_index(n) for n in NAMES] == list(range(len(NAMES)))
    return led


def seeded_model(led: solvent.Ledger, frozen: set[str] | None = None) -> Model:
    model = Model(position=led.position, frozen=set(frozen or ()))
    for name in NAMES:
        for asset in ASSETS:
            model.balance[(name, asset)] = led.balance_minor(name, asset)[0]
    return model


def model_balances(model: Model) -> dict[tuple[str, str], tuple[int, int]]:
    return {(n, a): (model.get(n, a), 0) for n in NAMES for a in ASSETS}


def run_one(led: solvent.Ledger, model: Model, cmd: tuple[Any, ...]) -> None:
    """Run one non-batch command on both; check they agree and nothing broke."""
    before = balances(led)
    position = led.position
    kind = cmd[0]
    result: Any = None
    error: solvent.Rejected | None = None
    try:
        if kind == "deposit":
            _, account, asset, amount, wallet, ref = cmd
            expected = model.deposit(account, asset, amount, wallet, ref)
            result = led.deposit(account, asset, amount.given, wallet=wallet, ref=ref)
        elif kind == "transfer":
            _, src, dst, asset, amount, ref, memo, actor = cmd
            expected = model.transfer(src, dst, asset, amount, ref, memo, actor)
            result = led.transfer(src, dst, asset, amount.given, ref=ref, memo=memo,
                                  actor=actor)
        elif kind in ("freeze", "unfreeze"):
            expected = model.set_frozen(cmd[1], kind == "freeze")
            setter = led.freeze_account if kind == "freeze" else led.unfreeze_account
            result = setter(cmd[1], reason=f"property {kind}")
        else:
            _, items, ref = cmd
            expected, outcome = model.bulk(items, ref)
            cols = [[item[k] for item in items] for k in range(4)]
            result = led.transfer_many(*cols, ref=ref)
            assert result.outcomes == outcome, (cmd, result.rejected())
            assert result.applied == outcome.count(0)
    except solvent.Rejected as exc:
        error = exc
    event(f"{kind}: {expected}")
    if error is not None:
        assert expected in ("rejected", "journaled"), (cmd, expected, error)
        assert isinstance(error.code, str) and error.code
        assert balances(led) == before, cmd  # a refusal moves nothing
        if expected == "journaled":
            assert led.position == position + 1
            last = list(led.records(after_position=position))
            if last:  # outside a batch it is committed at once
                assert isinstance(last[-1], r.CommandRejected)
                assert last[-1].code == error.code
        else:
            assert led.position == position, cmd
    else:
        assert expected in ("ok", "replay"), (cmd, expected, result)
        assert result.replayed == (expected == "replay"), (cmd, result)
        if expected == "replay":
            assert led.position == position
    assert led.position == model.position, cmd
    assert balances(led) == model_balances(model), cmd
    assert {n for n in ACCOUNTS if led.is_frozen(n)} == model.frozen
    assert_books_balance(led)


class Abort(Exception):
    """Raised inside ``with led.batch()`` to roll the block back."""


def run(led: solvent.Ledger, model: Model, cmd: tuple[Any, ...]) -> Model:
    if cmd[0] != "batch":
        run_one(led, model, cmd)
        return model
    _, commands, fail = cmd
    inner = copy.deepcopy(model)
    version = led.version
    try:
        with led.batch():
            for sub in commands:
                run_one(led, inner, sub)
            if fail:
                raise Abort
    except Abort:
        # nothing of the block took effect, but for its journaled rejections
        journaled = [rec for rec in led.records(after_position=model.position)]
        assert all(isinstance(rec, r.CommandRejected) for rec in journaled)
        model.position += len(journaled)
        assert led.version == version + (1 if journaled else 0)
        assert led.position == model.position
        assert balances(led) == model_balances(model)
        assert {n for n in ACCOUNTS if led.is_frozen(n)} == model.frozen
        return model
    assert led.version == version + (1 if inner.position > model.position else 0)
    return inner


@PROPERTY_SETTINGS
@given(command_streams)
def test_ledger_agrees_with_the_model_and_the_cores_agree(stream: list[tuple[Any, ...]]) -> None:
    journals = []
    for core in ("compiled", "python"):
        led = new_ledger(core)
        model = seeded_model(led)
        try:
            previous: tuple[Any, ...] | None = None
            for cmd in stream:
                if cmd[0] == "again":
                    if previous is None:
                        continue
                    cmd = previous
                model = run(led, model, cmd)
                previous = cmd
            report = led.verify()  # a fresh replay of the store equals the live state
            assert report.records == led.position
            journals.append(list(led.records()))
        finally:
            led.close()
    compiled, python = journals
    assert compiled == python
    encoded = [r.encoder.encode(rec) for rec in compiled]
    assert encoded == [r.encoder.encode(rec) for rec in python]


bulk_only = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 1),
              st.one_of(st.integers(1, 3 * 10**8), st.integers(1, 600))),
    min_size=1, max_size=40,
)


@PROPERTY_SETTINGS
@given(st.lists(bulk_only, min_size=1, max_size=6), st.lists(st.integers(0, 3), max_size=3))
def test_bulk_path_matches_single_transfers(
    bulks_: list[list[tuple[int, int, int, int]]], frozen: list[int]
) -> None:
    """A bulk item has the outcome the same single transfer would have, on both cores."""
    outcomes = {}
    for core in ("compiled", "python"):
        led = new_ledger(core)
        try:
            with led.batch():
                for n in sorted(set(frozen)):
                    led.freeze_account(ACCOUNTS[n], reason="property")
            model = seeded_model(led, {ACCOUNTS[n] for n in frozen})
            seen = []
            for k, items in enumerate(bulks_):
                _, expected = model.bulk(items, f"bulk-{k}")
                cols = [[item[j] for item in items] for j in range(4)]
                result = led.transfer_many(*cols, ref=f"bulk-{k}")
                assert result.outcomes == expected
                assert balances(led) == model_balances(model)
                assert_books_balance(led)
                seen.append(result.outcomes)
            led.verify()
            outcomes[core] = seen
        finally:
            led.close()
    assert outcomes["compiled"] == outcomes["python"]
