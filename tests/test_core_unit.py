"""Unit tests of the compiled balance core (``solvent._core``, built from ``ext/_core.pyx``).

Rejection paths, limits and the C-specific edges (int64 range, lazily grown
arrays, buffer handling of ``post_many``). Every non-OK code must leave the
table exactly as it was. Agreement with the twin on random histories is the
job of ``test_core_differential.py``.
"""

from __future__ import annotations

import json
import pickle
import random
from array import array
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent import _core
from solvent.core import codes as c
from solvent.core.twin import BalanceTable as TwinTable

BalanceTable = _core.BalanceTable
INT64_MAX = c.INT64_MAX
HUGE_AND_NON_POSITIVE = [0, -1, -(2**63), -(2**70), INT64_MAX + 1, 2**64, 2**70, 10**30]


class Book:
    """A small table: two assets, a wallet per asset, two customers, one company.

    Customer ``u`` holds 1000 of asset ``a`` (100 of it held), ``v`` holds 50,
    company ``co`` holds 10; wallet ``w`` is backing all of it.
    """

    def __init__(self) -> None:
        t = self.t = BalanceTable()
        self.a = t.add_asset()
        self.b = t.add_asset()
        self.w = t.add_account(c.KIND_WALLET, self.a)
        self.wb = t.add_account(c.KIND_WALLET, self.b)
        self.u = t.add_account(c.KIND_CUSTOMER)
        self.v = t.add_account(c.KIND_CUSTOMER)
        self.co = t.add_account(c.KIND_COMPANY)
        assert t.post(self.w, self.u, self.a, 1000) == c.OK
        assert t.post(self.w, self.v, self.a, 50) == c.OK
        assert t.post(self.w, self.co, self.a, 10) == c.OK
        assert t.hold(self.u, self.a, 100) == c.OK
        t.check_invariants()


def snapshot(t: Any) -> tuple[Any, ...]:
    totals = [t.total(a, k) for a in range(t.n_assets) for k in c.KIND_NAMES]
    return (t.export_state(), totals, t.n_accounts, t.n_assets)


def assert_refused(t: Any, op: Callable[[], int], expected: int) -> None:
    before = snapshot(t)
    assert op() == expected
    assert snapshot(t) == before
    t.check_invariants()


# -- every result code, and nothing changes ------------------------------------------------

# (name, operation on a fresh Book, expected code)
REFUSALS: list[tuple[str, Callable[[Book], int], int]] = [
    ("post insufficient", lambda k: k.t.post(k.v, k.u, k.a, 51), c.INSUFFICIENT_FUNDS),
    ("post from held part", lambda k: k.t.post(k.u, k.v, k.a, 901), c.INSUFFICIENT_FUNDS),
    ("withdraw beyond wallet", lambda k: k.t.post(k.u, k.w, k.a, 10_000), c.INSUFFICIENT_FUNDS),
    ("hold insufficient", lambda k: k.t.hold(k.v, k.a, 51), c.INSUFFICIENT_FUNDS),
    ("empty asset", lambda k: k.t.post(k.u, k.v, k.b, 1), c.INSUFFICIENT_FUNDS),
    ("post wallet mismatch debit", lambda k: k.t.post(k.wb, k.u, k.a, 1), c.ASSET_MISMATCH),
    ("post wallet mismatch credit", lambda k: k.t.post(k.u, k.wb, k.a, 1), c.ASSET_MISMATCH),
    ("post_held mismatch", lambda k: k.t.post_held(k.u, k.wb, k.a, 1), c.ASSET_MISMATCH),
    ("post amount 0", lambda k: k.t.post(k.u, k.v, k.a, 0), c.INVALID_AMOUNT),
    ("post_held amount -1", lambda k: k.t.post_held(k.u, k.v, k.a, -1), c.INVALID_AMOUNT),
    ("hold amount 2**70", lambda k: k.t.hold(k.u, k.a, 2**70), c.INVALID_AMOUNT),
    ("release amount 2**63", lambda k: k.t.release(k.u, k.a, 2**63), c.INVALID_AMOUNT),
    ("unknown debit", lambda k: k.t.post(99, k.v, k.a, 1), c.UNKNOWN_ACCOUNT),
    ("unknown credit", lambda k: k.t.post(k.u, -1, k.a, 1), c.UNKNOWN_ACCOUNT),
    ("huge credit", lambda k: k.t.post(k.u, 2**70, k.a, 1), c.UNKNOWN_ACCOUNT),
    ("hold unknown account", lambda k: k.t.hold(2**64, k.a, 1), c.UNKNOWN_ACCOUNT),
    ("release unknown account", lambda k: k.t.release(-5, k.a, 1), c.UNKNOWN_ACCOUNT),
    ("unknown asset", lambda k: k.t.post(k.u, k.v, 2, 1), c.UNKNOWN_ASSET),
    ("negative asset", lambda k: k.t.post_held(k.u, k.v, -1, 1), c.UNKNOWN_ASSET),
    ("huge asset", lambda k: k.t.hold(k.u, 2**70, 1), c.UNKNOWN_ASSET),
    ("release unknown asset", lambda k: k.t.release(k.u, 7, 1), c.UNKNOWN_ASSET),
    ("same account", lambda k: k.t.post(k.u, k.u, k.a, 1), c.SAME_ACCOUNT),
    ("post_held same account", lambda k: k.t.post_held(k.u, k.u, k.a, 1), c.SAME_ACCOUNT),
    ("post_held insufficient", lambda k: k.t.post_held(k.u, k.v, k.a, 101), c.INSUFFICIENT_HELD),
    ("post_held nothing held", lambda k: k.t.post_held(k.v, k.u, k.a, 1), c.INSUFFICIENT_HELD),
    ("release insufficient", lambda k: k.t.release(k.u, k.a, 101), c.INSUFFICIENT_HELD),
    ("post_held from wallet", lambda k: k.t.post_held(k.w, k.u, k.a, 1), c.WRONG_KIND),
    ("hold on wallet", lambda k: k.t.hold(k.w, k.a, 1), c.WRONG_KIND),
    ("release on wallet", lambda k: k.t.release(k.w, k.a, 1), c.WRONG_KIND),
    (
        "deposit overflows custody",
        lambda k: k.t.post(k.w, k.u, k.a, INT64_MAX - 1060 + 1),
        c.OVERFLOW,
    ),
]


def _frozen_refusal(k: Book) -> int:
    k.t.set_frozen(k.u, True)
    return k.t.post(k.u, k.v, k.a, 1)


def _frozen_hold(k: Book) -> int:
    k.t.set_frozen(k.u, True)
    return k.t.hold(k.u, k.a, 1)


def _capped(k: Book, amount: int) -> int:
    k.t.set_liability_cap(k.a, 1_050)  # customers hold 1,050 of asset a: no room left
    return k.t.post(k.co, k.u, k.a, amount)


REFUSALS += [
    ("company credit above cap", lambda k: _capped(k, 1), c.COVERAGE),
    ("frozen debit", _frozen_refusal, c.ACCOUNT_FROZEN),
    ("frozen hold", _frozen_hold, c.ACCOUNT_FROZEN),
    ("bulk deposit", lambda k: bulk_one(k.t, k.w, k.u, k.a, 5), c.WRONG_KIND),
    ("bulk frozen", lambda k: (k.t.set_frozen(k.v, 1), bulk_one(k.t, k.v, k.u, k.a, 1))[1], 2),
]


@pytest.mark.parametrize(
    ("op", "expected"), [(op, code) for _, op, code in REFUSALS], ids=[n for n, _, _ in REFUSALS]
)
def test_refusal_changes_nothing(op: Callable[[Book], int], expected: int) -> None:
    k = Book()
    before = snapshot(k.t)
    # set_frozen is part of some set-ups: compare against the table after it
    code = op(k)
    assert code == expected, (c.CODE_NAMES.get(code), c.CODE_NAMES[expected])
    frozen_now = k.t.export_state()["frozen"]
    before[0]["frozen"] = frozen_now
    assert snapshot(k.t) == before
    k.t.check_invariants()


def test_every_code_is_reachable() -> None:
    reached = {code for _, _, code in REFUSALS}
    assert reached == set(c.CODE_NAMES) - {c.OK}


def test_same_refusals_from_twin() -> None:
    """The refusal table above is the twin's behaviour too (it is the spec)."""
    for name, op, expected in REFUSALS:
        k = Book()
        k.t = TwinTable.from_state(k.t.export_state())  # type: ignore[assignment]
        assert op(k) == expected, name


def test_constants_match_codes() -> None:
    k = Book()
    assert k.t.post(k.u, k.v, k.a, 1) == c.OK == 0
    assert isinstance(k.t.post(k.u, k.v, k.a, 1), int)
    assert _core.__doc__ is not None and "twin.py" in _core.__doc__


# -- amounts and int64 range ---------------------------------------------------------------


@pytest.mark.parametrize("amount", HUGE_AND_NON_POSITIVE)
def test_invalid_amounts_never_raise(amount: int) -> None:
    k = Book()
    t = k.t
    assert_refused(t, lambda: t.post(k.w, k.u, k.a, amount), c.INVALID_AMOUNT)
    assert_refused(t, lambda: t.post_held(k.u, k.v, k.a, amount), c.INVALID_AMOUNT)
    assert_refused(t, lambda: t.hold(k.u, k.a, amount), c.INVALID_AMOUNT)
    assert_refused(t, lambda: t.release(k.u, k.a, amount), c.INVALID_AMOUNT)
    # INVALID_AMOUNT comes before every other check
    assert_refused(t, lambda: t.post(2**70, 2**70, 2**70, amount), c.INVALID_AMOUNT)
    assert_refused(t, lambda: t.hold(-1, -1, amount), c.INVALID_AMOUNT)


def test_int64_max_is_a_valid_amount() -> None:
    k = Book()
    t = k.t
    # valid amount, so the next check decides
    assert_refused(t, lambda: t.post(k.u, k.v, k.a, INT64_MAX), c.INSUFFICIENT_FUNDS)
    assert_refused(t, lambda: t.hold(k.v, k.a, INT64_MAX), c.INSUFFICIENT_FUNDS)
    assert_refused(t, lambda: t.release(k.u, k.a, INT64_MAX), c.INSUFFICIENT_HELD)


def test_overflow_at_int64_max() -> None:
    t = BalanceTable()
    a = t.add_asset()
    w = t.add_account(c.KIND_WALLET, a)
    w2 = t.add_account(c.KIND_WALLET, a)
    u = t.add_account(c.KIND_CUSTOMER)
    v = t.add_account(c.KIND_COMPANY)
    assert t.post(w, u, a, INT64_MAX) == c.OK
    assert t.total(a, c.KIND_WALLET) == INT64_MAX
    assert t.available(w, a) == INT64_MAX
    assert t.available(u, a) == INT64_MAX
    # any further deposit, from either wallet, would take custody past INT64_MAX
    assert_refused(t, lambda: t.post(w, u, a, 1), c.OVERFLOW)
    assert_refused(t, lambda: t.post(w2, v, a, 1), c.OVERFLOW)
    assert_refused(t, lambda: t.post(w, v, a, INT64_MAX), c.OVERFLOW)
    # moves that do not change custody are fine at the limit
    assert t.post(u, v, a, INT64_MAX) == c.OK
    assert t.hold(v, a, INT64_MAX) == c.OK
    assert t.post_held(v, u, a, INT64_MAX) == c.OK
    assert t.available(u, a) == INT64_MAX
    # a withdrawal makes room for exactly that much again
    assert t.post(u, w, a, 5) == c.OK
    assert_refused(t, lambda: t.post(w2, u, a, 6), c.OVERFLOW)
    assert t.post(w2, u, a, 5) == c.OK
    assert t.total(a, c.KIND_WALLET) == INT64_MAX
    assert t.total(a, c.KIND_CUSTOMER) == INT64_MAX
    t.check_invariants()


def test_overflow_is_per_asset() -> None:
    t = BalanceTable()
    a, b = t.add_asset(), t.add_asset()
    wa, wb = t.add_account(c.KIND_WALLET, a), t.add_account(c.KIND_WALLET, b)
    u = t.add_account(c.KIND_CUSTOMER)
    assert t.post(wa, u, a, INT64_MAX) == c.OK
    assert t.post(wb, u, b, INT64_MAX) == c.OK
    assert_refused(t, lambda: t.post(wa, u, a, 1), c.OVERFLOW)
    t.check_invariants()


def test_non_integers_raise_type_error() -> None:
    k = Book()
    with pytest.raises(TypeError):
        k.t.post(k.u, k.v, k.a, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        k.t.post(k.u, "x", k.a, 1)  # type: ignore[arg-type]


def test_index_protocol_and_bool_accepted() -> None:
    class Idx:
        def __init__(self, i: int) -> None:
            self.i = i

        def __index__(self) -> int:
            return self.i

    k = Book()
    assert k.t.post(Idx(k.u), Idx(k.v), Idx(k.a), Idx(7)) == c.OK
    assert k.t.available(k.v, k.a) == 57
    assert k.t.post(k.u, k.v, k.a, True) == c.OK
    assert k.t.available(k.v, k.a) == 58


# -- accounts, wallets, freezing -----------------------------------------------------------


def test_registration_errors() -> None:
    t = BalanceTable()
    with pytest.raises(ValueError, match="unknown asset number 0"):
        t.add_account(c.KIND_WALLET, 0)
    a = t.add_asset()
    with pytest.raises(ValueError, match="unknown account kind 3"):
        t.add_account(3)
    with pytest.raises(ValueError, match="unknown account kind -1"):
        t.add_account(-1)
    with pytest.raises(ValueError, match="unknown account kind"):
        t.add_account(2**70)
    with pytest.raises(ValueError, match="only a wallet"):
        t.add_account(c.KIND_WALLET)
    with pytest.raises(ValueError, match="only a wallet"):
        t.add_account(c.KIND_CUSTOMER, a)
    with pytest.raises(ValueError, match="unknown asset number 1"):
        t.add_account(c.KIND_WALLET, 1)
    assert t.n_accounts == 0
    assert t.add_account(c.KIND_WALLET, a) == 0
    assert (t.kind(0), t.wallet_asset(0), t.is_frozen(0)) == (c.KIND_WALLET, a, False)
    assert t.add_account(c.KIND_COMPANY) == 1
    assert (t.kind(1), t.wallet_asset(1)) == (c.KIND_COMPANY, -1)
    assert t.n_accounts == 2


def test_reads_index_like_the_twin() -> None:
    for table in (BalanceTable(), TwinTable()):
        a = table.add_asset()
        table.add_account(c.KIND_CUSTOMER)
        table.add_account(c.KIND_WALLET, a)
        # negative indices count from the end, as in the twin's lists
        assert table.kind(-1) == c.KIND_WALLET
        assert table.total(a, -1) == table.total(a, c.KIND_WALLET)
        for bad in (2, -3, 2**70):
            with pytest.raises(IndexError):
                table.kind(bad)
            with pytest.raises(IndexError):
                table.is_frozen(bad)
            with pytest.raises(IndexError):
                table.set_frozen(bad, True)
        with pytest.raises(IndexError):
            table.available(0, 1)
        with pytest.raises(IndexError):
            table.total(0, 3)
        # an unknown account simply has no balance
        assert table.available(10**6, a) == table.held(-7, a) == table.available(2**80, a) == 0


def test_asset_limit() -> None:
    t = BalanceTable()
    for i in range(c.MAX_ASSETS):
        assert t.add_asset() == i
    with pytest.raises(OverflowError, match="asset limit"):
        t.add_asset()
    assert t.n_assets == c.MAX_ASSETS
    w = t.add_account(c.KIND_WALLET, c.MAX_ASSETS - 1)
    u = t.add_account(c.KIND_CUSTOMER)
    assert t.post(w, u, c.MAX_ASSETS - 1, 3) == c.OK
    t.check_invariants()


def test_account_limit() -> None:
    t = BalanceTable()
    a = t.add_asset()
    add = t.add_account
    for _ in range(c.MAX_ACCOUNTS - 1):
        add(c.KIND_CUSTOMER)
    last = add(c.KIND_WALLET, a)
    assert last == c.MAX_ACCOUNTS - 1
    with pytest.raises(OverflowError, match="account limit"):
        add(c.KIND_CUSTOMER)
    assert t.n_accounts == c.MAX_ACCOUNTS
    # the highest account number works, and so does a far-apart pair
    assert t.post(last, c.MAX_ACCOUNTS - 2, a, 9) == c.OK
    assert t.post(c.MAX_ACCOUNTS - 2, 0, a, 4) == c.OK
    assert t.available(0, a) == 4
    assert t.available(c.MAX_ACCOUNTS - 2, a) == 5
    t.check_invariants()


def test_wallet_asset_mismatch_and_match() -> None:
    k = Book()
    t = k.t
    assert_refused(t, lambda: t.post(k.wb, k.u, k.a, 1), c.ASSET_MISMATCH)
    assert_refused(t, lambda: t.post(k.u, k.wb, k.a, 1), c.ASSET_MISMATCH)
    # debit checked before credit, both after SAME_ACCOUNT and the unknowns
    assert_refused(t, lambda: t.post(k.wb, k.w, k.a, 1), c.ASSET_MISMATCH)
    assert_refused(t, lambda: t.post(k.wb, k.wb, k.a, 1), c.SAME_ACCOUNT)
    assert_refused(t, lambda: t.post(k.wb, 50, k.a, 1), c.UNKNOWN_ACCOUNT)
    # the matching asset goes through
    assert t.post(k.wb, k.u, k.b, 5) == c.OK
    assert t.available(k.wb, k.b) == 5
    assert t.available(k.u, k.b) == 5
    assert t.post(k.u, k.wb, k.b, 5) == c.OK
    assert t.available(k.u, k.b) == t.available(k.wb, k.b) == 0
    t.check_invariants()


def test_frozen_account() -> None:
    k = Book()
    t = k.t
    t.set_frozen(k.u, True)
    assert t.is_frozen(k.u) is True
    assert_refused(t, lambda: t.post(k.u, k.v, k.a, 1), c.ACCOUNT_FROZEN)
    assert_refused(t, lambda: t.post(k.u, k.w, k.a, 1), c.ACCOUNT_FROZEN)
    assert_refused(t, lambda: t.hold(k.u, k.a, 1), c.ACCOUNT_FROZEN)
    # frozen comes after the checks of _check_pair and before funds
    assert_refused(t, lambda: t.post(k.u, k.v, k.a, 10**9), c.ACCOUNT_FROZEN)
    assert_refused(t, lambda: t.post(k.u, k.u, k.a, 1), c.SAME_ACCOUNT)
    # credits, releases and settling held funds stay allowed
    assert t.post(k.v, k.u, k.a, 5) == c.OK
    assert t.release(k.u, k.a, 30) == c.OK
    assert t.post_held(k.u, k.v, k.a, 20) == c.OK
    assert t.held(k.u, k.a) == 50
    assert t.available(k.u, k.a) == 935
    t.set_frozen(k.u, 0)
    assert t.is_frozen(k.u) is False
    assert t.post(k.u, k.v, k.a, 1) == c.OK
    t.check_invariants()


def test_hold_release_post_held_amounts() -> None:
    k = Book()
    t = k.t
    assert (t.available(k.u, k.a), t.held(k.u, k.a)) == (900, 100)
    assert t.post_held(k.u, k.w, k.a, 60) == c.OK  # a completed withdrawal
    assert (t.available(k.u, k.a), t.held(k.u, k.a)) == (900, 40)
    assert t.available(k.w, k.a) == 1000
    assert t.total(k.a, c.KIND_WALLET) == 1000
    assert t.total(k.a, c.KIND_CUSTOMER) == 990
    assert t.release(k.u, k.a, 40) == c.OK
    assert (t.available(k.u, k.a), t.held(k.u, k.a)) == (940, 0)
    t.check_invariants()


def test_far_account_reads_zero_and_grows() -> None:
    t = BalanceTable()
    a = t.add_asset()
    w = t.add_account(c.KIND_WALLET, a)
    ids = [t.add_account(c.KIND_CUSTOMER) for _ in range(5000)]
    assert t.available(ids[-1], a) == t.held(ids[-1], a) == 0
    assert t.post(ids[-1], ids[0], a, 1) == c.INSUFFICIENT_FUNDS
    assert t.post(w, ids[-1], a, 7) == c.OK
    assert t.hold(ids[-1], a, 3) == c.OK
    assert t.export_state()["balances"] == [(w, a, 7, 0), (ids[-1], a, 4, 3)]
    t.check_invariants()


# -- export_state / from_state -------------------------------------------------------------


def test_export_state_shape() -> None:
    k = Book()
    k.t.set_frozen(k.co, True)
    assert k.t.post(k.v, k.u, k.a, 50) == c.OK  # v back to zero: row omitted
    state = k.t.export_state()
    assert state == {
        "n_assets": 2,
        "kinds": [2, 2, 0, 0, 1],
        "wallet_assets": [0, 1, -1, -1, -1],
        "frozen": [0, 0, 0, 0, 1],
        "balances": [(0, 0, 1060, 0), (2, 0, 950, 100), (4, 0, 10, 0)],
    }
    assert all(type(x) is int for row in state["balances"] for x in row)


def test_held_only_rows_are_exported() -> None:
    k = Book()
    assert k.t.hold(k.co, k.a, 10) == c.OK
    assert (k.co, k.a, 0, 10) in k.t.export_state()["balances"]
    assert snapshot(BalanceTable.from_state(k.t.export_state())) == snapshot(k.t)


def test_from_state_round_trip() -> None:
    k = Book()
    k.t.set_frozen(k.v, True)
    state = k.t.export_state()
    t2 = BalanceTable.from_state(state)
    assert isinstance(t2, BalanceTable)
    assert snapshot(t2) == snapshot(k.t)
    assert t2.is_frozen(k.v)
    # the twin reads the same dump into the same table
    assert TwinTable.from_state(state).export_state() == state
    assert (
        BalanceTable.from_state(TwinTable.from_state(state).export_state()).export_state() == state
    )
    # pickle goes through the state dump
    assert snapshot(pickle.loads(pickle.dumps(k.t))) == snapshot(k.t)


def test_from_state_after_json_round_trip() -> None:
    """Snapshots come back from storage with lists for tuples."""
    k = Book()
    k.t.set_frozen(k.u, True)
    state = k.t.export_state()
    loaded = json.loads(json.dumps(state))
    assert isinstance(loaded["balances"][0], list)
    t2 = BalanceTable.from_state(loaded)
    assert t2.export_state() == state
    assert t2.export_state() == TwinTable.from_state(loaded).export_state()


def test_from_state_empty() -> None:
    t = BalanceTable.from_state(BalanceTable().export_state())
    assert (t.n_accounts, t.n_assets, t.export_state()["balances"]) == (0, 0, [])


@pytest.mark.parametrize(
    "rows",
    [
        [(1, 0, 5, 0)],  # a customer balance with no custody behind it
        [(0, 0, 5, 0), (1, 0, 6, 0)],  # custody != customer + company
        [(0, 0, 5, 0), (1, 0, 6, -1)],  # negative held
        [(0, 0, -5, 0), (1, 0, -5, 0)],  # negative available
        [(0, 0, 5, 1), (1, 0, 6, 0)],  # wallet with held funds
        [(0, 0, 2**64, 0), (1, 0, 2**64, 0)],  # beyond int64
        [(0, 0, INT64_MAX, 0), (1, 0, INT64_MAX, 0), (2, 0, 1, 0)],  # totals beyond int64
        [(0, 0, 5, 0), (1, 0, 5, 0), (1, 0, 5, 0)],  # duplicated row
    ],
)
def test_from_state_rejects_broken_dumps(rows: list[tuple[int, int, int, int]]) -> None:
    state = {
        "n_assets": 1,
        "kinds": [2, 0, 1],
        "wallet_assets": [0, -1, -1],
        "frozen": [0, 0, 0],
        "balances": rows,
    }
    with pytest.raises(AssertionError):
        TwinTable.from_state(state)  # the spec refuses it ...
    with pytest.raises(AssertionError):
        BalanceTable.from_state(state)  # ... and so does the compiled core


def test_from_state_structural_errors() -> None:
    base: dict[str, Any] = {
        "n_assets": 1,
        "kinds": [2, 0],
        "wallet_assets": [0, -1],
        "frozen": [0, 0],
        "balances": [],
    }
    with pytest.raises(ValueError):
        BalanceTable.from_state({**base, "wallet_assets": [0]})
    with pytest.raises(ValueError, match="frozen flags"):
        BalanceTable.from_state({**base, "frozen": [0, 0, 1]})
    with pytest.raises(ValueError, match="frozen flags"):
        BalanceTable.from_state({**base, "frozen": [0]})
    with pytest.raises(AssertionError, match="not its own"):
        BalanceTable.from_state(
            {**base, "n_assets": 2, "balances": [(0, 1, 5, 0), (1, 1, 5, 0)]}
        )
    with pytest.raises(IndexError):
        BalanceTable.from_state({**base, "balances": [(2, 0, 1, 0)]})
    with pytest.raises(IndexError):
        BalanceTable.from_state({**base, "balances": [(0, 1, 1, 0)]})
    with pytest.raises(ValueError, match="unknown account kind"):
        BalanceTable.from_state({**base, "kinds": [2, 7]})
    with pytest.raises(OverflowError):
        BalanceTable.from_state({**base, "n_assets": c.MAX_ASSETS + 1})


def test_check_invariants_after_random_ops() -> None:
    rng = random.Random(20240611)
    t = BalanceTable()
    assets = [t.add_asset() for _ in range(3)]
    wallets = [t.add_account(c.KIND_WALLET, a) for a in assets for _ in range(2)]
    people = [t.add_account(rng.choice([c.KIND_CUSTOMER, c.KIND_COMPANY])) for _ in range(40)]
    everyone = wallets + people
    counts = {code: 0 for code in c.CODE_NAMES}
    for _ in range(20_000):
        op = rng.random()
        a = rng.choice(assets)
        amount = rng.choice([rng.randint(1, 500), rng.randint(1, 10**6), rng.randint(-2, 0)])
        if op < 0.45:
            code = t.post(rng.choice(everyone), rng.choice(everyone), a, amount)
        elif op < 0.6:
            code = t.post_held(rng.choice(people), rng.choice(everyone), a, amount)
        elif op < 0.75:
            code = t.hold(rng.choice(people), a, amount)
        elif op < 0.9:
            code = t.release(rng.choice(people), a, amount)
        else:
            t.set_frozen(rng.choice(people), rng.random() < 0.3)
            continue
        counts[code] += 1
    t.check_invariants()
    for a in assets:
        assert t.total(a, c.KIND_WALLET) == t.total(a, c.KIND_CUSTOMER) + t.total(a, c.KIND_COMPANY)
    assert counts[c.OK] > 1000  # the walk actually moved money
    assert BalanceTable.from_state(t.export_state()).export_state() == t.export_state()


# -- post_many -----------------------------------------------------------------------------


def q(values: list[int]) -> array[int]:
    return array("q", values)


def bulk_one(t: Any, debit: int, credit: int, asset: int, amount: int) -> int:
    """One ``post_many`` item, through the C loop; returns its code."""
    out = bytearray(1)
    applied = t.post_many(q([debit]), q([credit]), q([asset]), q([amount]), out)
    assert applied == (out[0] == c.OK)
    return out[0]


def test_post_many_with_array_q() -> None:
    k = Book()
    items = [
        (k.u, k.v, k.a, 5, c.OK),
        (k.co, k.v, k.a, 3, c.OK),
        (k.u, k.u, k.a, 1, c.SAME_ACCOUNT),
        (k.v, k.u, k.a, 0, c.INVALID_AMOUNT),
        (k.u, k.v, k.a, 10**6, c.INSUFFICIENT_FUNDS),
        (k.wb, k.u, k.a, 1, c.ASSET_MISMATCH),
        (k.w, k.v, k.a, 1, c.WRONG_KIND),  # no deposits in bulk
        (k.u, k.w, k.a, 1, c.WRONG_KIND),  # no withdrawals in bulk
    ]
    out = bytearray(b"\xff" * (len(items) + 2))
    cols = [q([it[j] for it in items]) for j in range(4)]
    assert k.t.post_many(*cols, out) == 2
    assert list(out) == [it[4] for it in items] + [0xFF, 0xFF]  # beyond n: untouched
    assert k.t.available(k.v, k.a) == 58
    assert k.t.available(k.u, k.a) == 895
    assert k.t.available(k.w, k.a) == 1060
    k.t.check_invariants()


def test_post_many_wallet_items_check_order() -> None:
    """WRONG_KIND for a wallet comes after every _check_pair code, before ACCOUNT_FROZEN."""
    k = Book()
    t = k.t
    t.set_frozen(k.u, True)
    assert_refused(t, lambda: bulk_one(t, k.u, k.w, k.a, 1), c.WRONG_KIND)
    assert_refused(t, lambda: bulk_one(t, k.u, k.v, k.a, 1), c.ACCOUNT_FROZEN)
    assert_refused(t, lambda: bulk_one(t, k.w, k.v, k.a, 0), c.INVALID_AMOUNT)
    assert_refused(t, lambda: bulk_one(t, k.w, k.v, 9, 1), c.UNKNOWN_ASSET)
    assert_refused(t, lambda: bulk_one(t, k.w, 99, k.a, 1), c.UNKNOWN_ACCOUNT)
    assert_refused(t, lambda: bulk_one(t, k.w, k.w, k.a, 1), c.SAME_ACCOUNT)
    assert_refused(t, lambda: bulk_one(t, k.wb, k.v, k.a, 1), c.ASSET_MISMATCH)
    assert_refused(t, lambda: bulk_one(t, k.v, k.wb, k.a, 1), c.ASSET_MISMATCH)
    assert_refused(t, lambda: bulk_one(t, k.w, k.wb, k.b, 1), c.ASSET_MISMATCH)
    assert_refused(t, lambda: bulk_one(t, k.wb, k.v, k.b, 10**9), c.WRONG_KIND)
    assert_refused(t, lambda: bulk_one(t, k.v, k.u, k.a, 51), c.INSUFFICIENT_FUNDS)
    assert bulk_one(t, k.v, k.u, k.a, 50) == c.OK  # credit to a frozen account is fine


@pytest.mark.parametrize("kind", ["memoryview", "bytes", "array_B", "lists", "array_i"])
def test_post_many_input_kinds(kind: str) -> None:
    k = Book()
    cols = [[k.u, k.co, k.v, k.w], [k.v, k.u, k.u, k.u], [k.a, k.a, k.b, k.a], [3, 4, 5, 6]]
    args: list[Any]
    out: Any = bytearray(4)
    if kind == "memoryview":
        args = [memoryview(q(col)) for col in cols]
    elif kind == "bytes":  # read-only int64 buffers
        args = [memoryview(q(col).tobytes()).cast("q") for col in cols]
    elif kind == "array_B":
        args = [q(col) for col in cols]
        out = array("B", bytes(4))
    elif kind == "lists":  # not buffers: the item-by-item path
        args = list(cols)
    else:
        args = [array("i", col) for col in cols]
    assert k.t.post_many(*args, out) == 2
    assert list(out) == [c.OK, c.OK, c.INSUFFICIENT_FUNDS, c.WRONG_KIND]
    assert k.t.available(k.u, k.a) == 900 - 3 + 4
    k.t.check_invariants()


def test_post_many_lists_take_any_int() -> None:
    k = Book()
    huge = [2**70, -(2**70), INT64_MAX + 1]
    out = bytearray(6)
    debit = [k.u, k.u, k.u, huge[0], k.u, k.u]
    credit = [k.v, k.v, k.v, k.v, huge[1], k.v]
    asset = [k.a, k.a, huge[2], k.a, k.a, k.a]
    amount = [huge[0], huge[1], 1, 1, 1, 2]
    before = k.t.export_state()
    assert k.t.post_many(debit, credit, asset, amount, out) == 1
    assert list(out) == [c.INVALID_AMOUNT] * 2 + [c.UNKNOWN_ASSET] + [c.UNKNOWN_ACCOUNT] * 2 + [0]
    assert k.t.export_state() != before
    assert k.t.available(k.v, k.a) == 52


def test_post_many_read_only_out_behaves_like_the_twin() -> None:
    for table in (Book().t, TwinTable.from_state(Book().t.export_state())):
        with pytest.raises(TypeError):
            table.post_many(q([2]), q([3]), q([0]), q([1]), bytes(1))
        # like the twin, the item was applied before its code could not be written
        assert table.available(3, 0) == 51


def test_post_many_strided_memoryview() -> None:
    k = Book()
    wide = q([k.u, -1, k.u, -1])
    out = bytearray(2)
    assert k.t.post_many(memoryview(wide)[::2], q([k.v, k.co]), q([k.a, k.a]), q([1, 2]), out) == 2
    assert k.t.available(k.co, k.a) == 12


def test_post_many_extreme_values() -> None:
    k = Book()
    lo, hi = -(2**63), INT64_MAX
    debit = q([lo, hi, k.u, k.u, k.u, k.v, k.u])
    credit = q([k.v, k.v, hi, k.v, k.v, k.u, k.v])
    asset = q([k.a, k.a, k.a, lo, hi, k.a, k.a])
    amount = q([1, 1, 1, 1, 1, hi, lo])
    out = bytearray(7)
    before = snapshot(k.t)
    assert k.t.post_many(debit, credit, asset, amount, out) == 0
    assert list(out) == [c.UNKNOWN_ACCOUNT] * 3 + [c.UNKNOWN_ASSET] * 2 + [
        c.INSUFFICIENT_FUNDS,
        c.INVALID_AMOUNT,
    ]
    assert snapshot(k.t) == before


def test_post_many_at_int64_max() -> None:
    t = BalanceTable()
    a = t.add_asset()
    w = t.add_account(c.KIND_WALLET, a)
    u, v = t.add_account(c.KIND_CUSTOMER), t.add_account(c.KIND_COMPANY)
    assert t.post(w, u, a, INT64_MAX) == c.OK
    out = bytearray(3)
    cols = [q([u, v, v]), q([v, u, u]), q([a] * 3), q([INT64_MAX, INT64_MAX, 1])]
    assert t.post_many(*cols, out) == 2
    assert list(out) == [c.OK, c.OK, c.INSUFFICIENT_FUNDS]
    assert (t.available(u, a), t.available(v, a)) == (INT64_MAX, 0)
    t.check_invariants()


@pytest.mark.parametrize("short", [0, 1, 2, 3, 4])
def test_post_many_length_mismatch(short: int) -> None:
    k = Book()
    cols: list[Any] = [q([k.u] * 3), q([k.v] * 3), q([k.a] * 3), q([1] * 3), bytearray(3)]
    cols[short] = cols[short][:2]
    before = snapshot(k.t)
    with pytest.raises(ValueError, match="equal lengths"):
        k.t.post_many(*cols)
    with pytest.raises(ValueError, match="equal lengths"):  # same on the list path
        k.t.post_many(*[list(col) for col in cols[:4]], cols[4])
    assert snapshot(k.t) == before


def test_post_many_empty_and_longer_out() -> None:
    k = Book()
    assert k.t.post_many(q([]), q([]), q([]), q([]), bytearray()) == 0
    out = bytearray(b"\x07" * 4)
    assert k.t.post_many(q([k.u]), q([k.v]), q([k.a]), q([1]), out) == 1
    assert out == bytearray([0, 7, 7, 7])


def test_post_many_none_is_not_a_column() -> None:
    k = Book()
    with pytest.raises(TypeError):
        k.t.post_many(None, None, None, None, None)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-1, 6), st.integers(-1, 6), st.integers(-1, 2), st.integers(-3, 400)),
        max_size=40,
    )
)
def test_post_many_paths_agree(items: list[tuple[int, int, int, int]]) -> None:
    """C loop, the compiled list path and the twin give the same codes and state."""
    fast, slow = Book().t, Book().t
    spec = TwinTable.from_state(fast.export_state())
    cols = [[it[j] for it in items] for j in range(4)]
    outs = [bytearray(len(items)) for _ in range(3)]
    applied = fast.post_many(*[q(col) for col in cols], outs[0])
    assert slow.post_many(*cols, outs[1]) == applied
    assert spec.post_many(*cols, outs[2]) == applied
    assert outs[0] == outs[1] == outs[2]
    assert applied == outs[0].count(c.OK)
    assert snapshot(fast) == snapshot(slow) == snapshot(spec)
    fast.check_invariants()


def test_liability_cap_binds_only_company_to_customer_credits() -> None:
    k = Book()
    t = k.t
    t.set_liability_cap(k.a, 1_055)  # room for 5 more of customer liabilities
    assert t.liability_cap(k.a) == 1_055
    assert t.post(k.co, k.u, k.a, 6) == c.COVERAGE
    assert t.post(k.co, k.u, k.a, 5) == c.OK
    assert t.post(k.co, k.v, k.a, 1) == c.COVERAGE
    # deposits and customer-to-customer transfers are not capped; a company
    # debit to a wallet (the company withdrawing) is not either
    assert t.post(k.w, k.u, k.a, 100) == c.OK
    assert t.post(k.u, k.v, k.a, 10) == c.OK
    assert t.post(k.co, k.w, k.a, 1) == c.OK
    with pytest.raises(ValueError):
        t.set_liability_cap(k.a, -1)
    with pytest.raises(ValueError):
        t.set_liability_cap(k.a, INT64_MAX + 1)
    t.set_liability_cap(k.a, INT64_MAX)
    assert t.post(k.co, k.u, k.a, 4) == c.OK
    t.check_invariants()
