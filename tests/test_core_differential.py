"""Differential tests: the compiled core against its Python twin (the spec).

Hypothesis generates command streams (registration, freezing, the four checked
operations, small ``post_many`` batches and reads) with invalid indices and
amounts that are zero, negative, huge or close to INT64_MAX. Both
``solvent._core.BalanceTable`` and ``solvent.core.twin.BalanceTable`` run the
same stream; every command must give the same result (or raise the same
exception), the state dumps must agree after every command, and at the end the
totals agree and both tables pass ``check_invariants()``.
"""

from __future__ import annotations

from array import array
from typing import Any

from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from solvent._core import BalanceTable as Compiled
from solvent.core import codes as c
from solvent.core.twin import BalanceTable as Twin

INT64_MAX = c.INT64_MAX
INT64_MIN = -(2**63)

Command = tuple[Any, ...]

# no "explain" phase: it re-runs failing streams under a tracer, which is slow here
PHASES = [phase for phase in Phase if phase is not Phase.explain]

# -- strategies ----------------------------------------------------------------------------

# Any Python int: the single-op methods must not raise on ints they cannot hold.
# Mostly numbers that exist (the funded prefix has 2 assets and 6 accounts, and
# streams add more), sometimes just out of range, sometimes far out.
_HUGE = [INT64_MAX, INT64_MIN, 2**31, 2**32, 2**63, 2**70, -(2**70)]
_I64_HUGE = [INT64_MAX, INT64_MIN, 2**31, 2**32]
accounts = st.one_of(
    st.integers(0, 7),
    st.integers(0, 7),
    st.integers(0, 7),
    st.integers(-2, 12),
    st.sampled_from(_HUGE),
)
assets = st.one_of(
    st.integers(0, 1),
    st.integers(0, 1),
    st.integers(0, 2),
    st.integers(-2, 4),
    st.sampled_from(_HUGE),
)
indices = st.one_of(st.integers(-3, 9), st.sampled_from(_HUGE))
amounts = st.one_of(
    st.integers(1, 300),
    st.integers(1, 300),
    st.integers(1, 2**20),
    st.sampled_from([0, -1, INT64_MAX, INT64_MAX + 1, 2**64, 2**70, INT64_MIN, -(2**70)]),
    st.integers(INT64_MAX - 2**20, INT64_MAX),
    st.integers(1, INT64_MAX),
)
_modest = st.integers(1, 400)
# what an int64 column of post_many can hold
i64_accounts = st.one_of(
    st.integers(0, 7), st.integers(0, 7), st.integers(-2, 12), st.sampled_from(_I64_HUGE)
)
i64_assets = st.one_of(
    st.integers(0, 1), st.integers(0, 1), st.integers(-2, 4), st.sampled_from(_I64_HUGE)
)
i64_amounts = st.one_of(
    st.integers(1, 300),
    st.integers(1, 300),
    st.integers(1, 2**20),
    st.sampled_from([0, -1, INT64_MIN, INT64_MAX]),
    st.integers(INT64_MAX - 2**20, INT64_MAX),
    st.integers(INT64_MIN, INT64_MAX),
)

_post = st.tuples(st.sampled_from(["post", "post_held"]), accounts, accounts, assets, amounts)
# custody moves on the funded prefix (wallets 0 and 1): deposits and withdrawals,
# so OK and OVERFLOW outcomes are common, not lucky
_deposit = st.tuples(
    st.just("post"), st.integers(0, 1), st.integers(2, 7), st.integers(0, 1), amounts
)
_withdraw = st.tuples(
    st.just("post"), st.integers(2, 7), st.integers(0, 1), st.integers(0, 1), amounts
)
_people = st.integers(2, 7)
_transfer = st.one_of(
    st.tuples(st.sampled_from(["post", "post_held"]), _people, _people, st.integers(0, 1), _modest),
    st.tuples(st.sampled_from(["hold", "release"]), _people, st.integers(0, 1), _modest),
)
_single = st.tuples(st.sampled_from(["hold", "release"]), accounts, assets, amounts)
_batch = st.tuples(
    st.just("post_many"),
    st.lists(st.tuples(i64_accounts, i64_accounts, i64_assets, i64_amounts), max_size=8),
    st.sampled_from(["buffers", "buffers", "lists", "mismatch"]),
)

registrations = st.one_of(
    st.tuples(st.just("add_asset")),
    st.tuples(st.just("add_account"), st.sampled_from([0, 0, 1, 2]), st.integers(-1, 2)),
)

commands = st.one_of(
    _post,
    _post,
    _post,
    _deposit,
    _withdraw,
    _transfer,
    _transfer,
    _single,
    _single,
    _batch,
    st.tuples(st.just("add_asset")),
    st.tuples(st.just("add_account"), st.sampled_from([0, 0, 1, 2, 2, 3, -1]), st.integers(-2, 4)),
    st.tuples(st.just("set_frozen"), accounts, st.one_of(st.booleans(), st.integers(0, 2))),
    st.tuples(
        st.just("set_liability_cap"),
        st.integers(-1, 3),
        st.sampled_from([0, 1, 500, 5_000, 10**6, INT64_MAX, -1, INT64_MAX + 1]),
    ),
    st.tuples(st.just("liability_cap"), st.integers(-1, 3)),
    st.tuples(st.sampled_from(["available", "held"]), indices, indices),
    st.tuples(st.just("total"), indices, st.integers(-4, 3)),
    st.tuples(st.sampled_from(["kind", "wallet_asset", "is_frozen"]), indices),
)


# -- driving both cores --------------------------------------------------------------------


def outcome(table: Any, name: str, args: tuple[Any, ...]) -> Any:
    """The result of one call, or the exception it raised (type, and message when
    it is one of the twin's own messages rather than one of CPython's list errors)."""
    try:
        return ("returned", getattr(table, name)(*args))
    except IndexError:
        return ("raised", IndexError)
    except (ValueError, OverflowError) as e:
        return ("raised", type(e), str(e))


def run_batch(table: Any, items: list[tuple[int, int, int, int]], mode: str, compiled: bool) -> Any:
    cols: list[Any] = [[it[j] for it in items] for j in range(4)]
    if compiled and mode != "lists":
        cols = [array("q", col) for col in cols]
    out = bytearray(b"\xee" * (len(items) + 1))
    if mode == "mismatch":
        if not items:
            cols[0] = array("q", [0]) if compiled else [0]
        elif len(items) % 5 == 4:
            out = bytearray(len(items) - 1)  # out may be longer than the columns, not shorter
        else:
            cols[len(items) % 5] = cols[len(items) % 5][:-1]
    try:
        applied = table.post_many(*cols, out)
    except ValueError as e:
        return ("raised", ValueError, str(e))
    return ("returned", applied, bytes(out))


def run_command(table: Any, cmd: Command, compiled: bool) -> Any:
    name = cmd[0]
    if name == "post_many":
        return run_batch(table, cmd[1], cmd[2], compiled)
    return outcome(table, name, cmd[1:])


def full_view(table: Any) -> dict[str, Any]:
    view = table.export_state()
    view["n_accounts"] = table.n_accounts
    view["totals"] = [
        [table.total(a, k) for k in sorted(c.KIND_NAMES)] for a in range(table.n_assets)
    ]
    view["caps"] = [table.liability_cap(a) for a in range(table.n_assets)]
    view["reads"] = [
        (table.available(acct, a), table.held(acct, a))
        for a in range(table.n_assets)
        for acct in range(-1, table.n_accounts + 1)
    ]
    return view


def describe(name: str, result: Any) -> None:
    """Record what a command did (``pytest --hypothesis-show-statistics``)."""
    if result[0] == "raised":
        event(f"{name}: {result[1].__name__}")
    elif name == "post_many":
        for code in sorted(set(result[2][:-1])):
            event(f"post_many item: {c.CODE_NAMES[code]}")
    elif name in ("post", "post_held", "hold", "release"):
        event(f"{name}: {c.CODE_NAMES[result[1]]}")


def drive(stream: list[Command]) -> tuple[Compiled, Twin]:
    fast, spec = Compiled(), Twin()
    for step, cmd in enumerate(stream):
        got = run_command(fast, cmd, compiled=True)
        want = run_command(spec, cmd, compiled=False)
        assert got == want, f"step {step}: {cmd!r}: compiled {got!r} != twin {want!r}"
        describe(cmd[0], got)
        assert fast.export_state() == spec.export_state(), f"state after step {step}: {cmd!r}"
    assert full_view(fast) == full_view(spec)
    spec.check_invariants()
    fast.check_invariants()
    assert Compiled.from_state(fast.export_state()).export_state() == spec.export_state()
    return fast, spec


def prefix(big: int) -> list[Command]:
    """Two assets, a wallet per asset, three customers, a company, some deposits
    (one of them ``big``, to bring custody of asset 0 near INT64_MAX) and holds."""
    cmds: list[Command] = [("add_asset",), ("add_asset",)]
    cmds += [("add_account", 2, 0), ("add_account", 2, 1)]  # wallets 0, 1
    cmds += [("add_account", 0, -1)] * 3 + [("add_account", 1, -1)]  # 2, 3, 4 and company 5
    cmds += [("post", 0, 2, 0, 1000), ("post", 0, 3, 0, 500), ("post", 1, 4, 1, 700)]
    cmds += [("post", 0, 5, 0, 50), ("hold", 2, 0, 100), ("hold", 5, 0, 50)]  # 5: held only
    if big:
        cmds.append(("post", 0, 4, 0, big))
    return cmds


# -- the tests -----------------------------------------------------------------------------


@settings(max_examples=600, deadline=None, phases=PHASES)
@given(
    st.sampled_from([0, 0, INT64_MAX // 2, INT64_MAX - 1550 - 2**19, INT64_MAX - 1550]),
    st.lists(commands, min_size=20, max_size=100),
)
def test_same_results_on_a_funded_table(big: int, stream: list[Command]) -> None:
    drive(prefix(big) + stream)


@settings(max_examples=400, deadline=None, phases=PHASES)
@given(st.lists(st.one_of(registrations, commands, commands), min_size=20, max_size=100))
def test_same_results_from_empty(stream: list[Command]) -> None:
    drive(stream)


@settings(max_examples=300, deadline=None, phases=PHASES)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["post", "post_held", "hold", "release"]),
            st.integers(0, 6),
            st.integers(0, 6),
            st.integers(0, 1),
            st.one_of(st.integers(1, 60), st.integers(1, 1200)),
        ),
        min_size=10,
        max_size=100,
    ),
    st.lists(st.integers(0, 6), max_size=3),
)
def test_same_results_valid_operations(ops: list[Command], frozen: list[int]) -> None:
    """Mostly valid operations on known accounts, so the balance checks decide."""
    stream = prefix(0) + [("set_frozen", acct, True) for acct in frozen]
    for name, x, y, a, amount in ops:
        stream.append(
            (name, x, a, amount) if name in ("hold", "release") else (name, x, y, a, amount)
        )
    drive(stream)


@settings(max_examples=200, deadline=None, phases=PHASES)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 1), st.integers(1, 600)),
        max_size=60,
    ),
    st.integers(1, 6),
)
def test_same_results_big_batches(items: list[tuple[int, int, int, int]], chunks: int) -> None:
    """Valid-looking transfers in a few post_many batches against item-by-item twin posts."""
    stream = prefix(0)
    size = max(1, len(items) // chunks)
    for i in range(0, len(items), size):
        stream.append(("post_many", items[i : i + size], "buffers"))
    drive(stream)
