"""The replay loop ``replay_transfers``: compiled core against the twin.

Both cores must apply exactly the same prefix of a run of ``Transferred``
records, stop at the same record, and leave identical balances and refs (each
core with its own ``TransferRefs``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent import records as r
from solvent._core import BalanceTable as Compiled
from solvent._core import TransferRefs as CompiledRefs
from solvent.core import codes as c
from solvent.core import refs_class
from solvent.core.refs import MAX_REF_TEXT_BYTES
from solvent.core.refs import TransferRefs as TwinRefs
from solvent.core.twin import BalanceTable as Twin
from solvent.errors import TamperDetected
from solvent.state import LedgerState

REFS = {Twin: TwinRefs, Compiled: CompiledRefs}

NAMES = ["w", "a", "b", "c", "co", "ghost"]  # "w" is a wallet, "co" a company account,
# "ghost" is not registered
# the actors' roles: a customer may transfer from its own customer account only ("co" is
# a customer actor named like a company account), an auditor never; "ghost" is none
ACTORS = {"system": "system", "ops": "operator", "a": "customer", "b": "customer",
          "co": "customer", "aud": "auditor"}


def _setup(cls: Any) -> tuple[Any, dict[str, int], dict[str, int], set[int]]:
    t = cls()
    t.add_asset()
    w = t.add_account(c.KIND_WALLET, 0)
    accounts = {"w": w}
    for name in ("a", "b", "c", "co"):
        accounts[name] = t.add_account(c.KIND_COMPANY if name == "co" else c.KIND_CUSTOMER)
        assert t.post(w, accounts[name], 0, 1_000) == c.OK
    return t, accounts, {"BTC": 0}, {w}


# refs and memos the index must refuse (and the loop stop at): a lone surrogate,
# text past the limit, a non-str
LONG = "x" * (MAX_REF_TEXT_BYTES + 1)
record = st.builds(
    lambda frm, to, asset, amount, ref, memo, dpos, dt, actor: (
        frm, to, asset, amount, ref, memo, dpos, dt, actor),
    st.sampled_from(NAMES),
    st.sampled_from(NAMES),
    st.sampled_from(["BTC", "BTC", "BTC", "ETH"]),
    st.one_of(st.integers(1, 1_500), st.sampled_from([0, -1, 2**63, 2**63 - 1])),
    st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6", "ré", "r\ud800", LONG, 7]),
    st.sampled_from(["", "", "m", "é ✓", "\udfff", LONG, None]),
    st.sampled_from([1, 1, 1, 1, 0, 2]),
    st.integers(-5, 5),
    st.sampled_from(["system", "system", "system", "ops", "a", "b", "co", "aud", "ghost"]),
)


def _records(spec: list[tuple[Any, ...]]) -> list[r.Transferred | r.AccountFrozen]:
    out: list[r.Transferred | r.AccountFrozen] = []
    pos, t = 0, 1_000
    for frm, to, asset, amount, ref, memo, dpos, dt, actor in spec:
        pos += dpos
        t += dt
        if ref == "r6":  # another record kind stops the loop
            out.append(r.AccountFrozen(position=pos, time_ns=t, actor="system", account="a",
                                       reason="x"))
            continue
        out.append(r.Transferred(position=pos, time_ns=t, actor=actor, ref=ref, from_account=frm,
                                 to_account=to, asset=asset, amount_minor=amount, memo=memo))
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(record, max_size=12), st.integers(0, 3), st.sampled_from([2, 3, 100]),
       st.booleans())
def test_compiled_replay_loop_matches_twin(
    spec: list[tuple[Any, ...]], start: int, max_refs: int, check_actors: bool
) -> None:
    recs = _records(spec)
    start = min(start, len(recs))
    results = []
    for cls in (Twin, Compiled):
        table, accounts, assets, wallets = _setup(cls)
        refs = REFS[cls](max_refs=max_refs)
        out = table.replay_transfers(recs, start, r.Transferred, accounts, assets, wallets,
                                     refs, 0, 999, ACTORS if check_actors else None)
        table.check_invariants()
        results.append((tuple(out), table.export_state(), refs.export()))
    assert results[0] == results[1]
    # every record before the stop was applied, each one position further
    stop, position, _ = results[0][0]
    assert start <= stop <= len(recs)
    assert position == stop - start
    assert len(results[0][2]) == stop - start


def test_replay_loop_stops_at_refused_record_and_changes_nothing_for_it() -> None:
    for cls in (Twin, Compiled):
        table, accounts, assets, wallets = _setup(cls)
        recs = [
            r.Transferred(position=1, time_ns=5, actor="system", ref="t1", from_account="a",
                          to_account="b", asset="BTC", amount_minor=600),
            r.Transferred(position=2, time_ns=4, actor="system", ref="t2", from_account="a",
                          to_account="b", asset="BTC", amount_minor=600),  # overdraws a
        ]
        refs = REFS[cls]()
        assert table.replay_transfers(recs, 0, r.Transferred, accounts, assets, wallets,
                                      refs, 0, 0) == (1, 1, 5)
        assert [row[0] for row in refs.export()] == ["t1"]
        assert table.available(accounts["a"], 0) == 400
        assert table.available(accounts["b"], 0) == 1_600


def test_replay_loop_stops_at_a_time_going_back_or_an_actor_never_registered() -> None:
    """The ledger's times never go back and every command's actor was registered: a
    record that breaks either is left to the slow path, which calls it tampering."""
    def transfer(position: int, time_ns: int, actor: str) -> r.Transferred:
        return r.Transferred(position=position, time_ns=time_ns, actor=actor, ref=f"t{position}",
                             from_account="a", to_account="b", asset="BTC", amount_minor=1)

    for cls in (Twin, Compiled):
        for recs, stop in (([transfer(1, 5, "system"), transfer(2, 4, "system")], 1),
                           ([transfer(1, 5, "system"), transfer(2, 5, "ops")], 1),
                           ([transfer(1, 5, "system"), transfer(2, 5, "system")], 2)):
            table, accounts, assets, wallets = _setup(cls)
            refs = REFS[cls]()
            out = table.replay_transfers(recs, 0, r.Transferred, accounts, assets, wallets,
                                         refs, 0, 0, {"system": "system"})
            assert out == (stop, stop, 5), (cls, recs, out)
            assert len(refs.export()) == stop


@pytest.mark.parametrize("cls", [Twin, Compiled])
@pytest.mark.parametrize(("actor", "frm", "applies"), [
    ("system", "a", True), ("ops", "a", True), ("ops", "co", True),
    ("a", "a", True),  # a customer from its own account
    ("a", "b", False),  # ... from another customer's
    ("co", "co", False),  # a customer actor named like a company account
    ("aud", "a", False), ("ghost", "a", False),
])
def test_replay_loop_stops_at_a_transfer_its_actor_could_not_have_made(
    cls: Any, actor: str, frm: str, applies: bool
) -> None:
    """``Ledger._authorize``'s rule for a transfer, in the loop: the record it cannot
    apply is left to the slow path, which calls it tampering."""
    table, accounts, assets, wallets = _setup(cls)
    refs = REFS[cls]()
    recs = [r.Transferred(position=1, time_ns=5, actor=actor, ref="t1", from_account=frm,
                          to_account="c", asset="BTC", amount_minor=1)]
    before = table.export_state()
    out = table.replay_transfers(recs, 0, r.Transferred, accounts, assets, wallets, refs, 0, 0,
                                 ACTORS)
    assert out == ((1, 1, 5) if applies else (0, 0, 0))
    if not applies:
        assert table.export_state() == before and not refs.export()


@pytest.mark.parametrize("core", ["compiled", "python"])
@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"ref": 7}, "not a str"),
        ({"memo": None}, "not a str"),
        ({"ref": "r\ud800"}, "does not apply"),
        ({"memo": "x" * (MAX_REF_TEXT_BYTES + 1)}, "does not apply"),
        ({"ref": "t1"}, "repeats a transfer ref"),
        ({"max_refs": 1}, "overflows the transfer-ref index"),
        ({"time_ns": 0}, "before the record before it"),
        ({"actor": "nobody"}, "never registered"),
    ],
)
def test_slow_path_refuses_what_the_index_cannot_take(
    core: str, fields: dict[str, Any], words: str
) -> None:
    """A record the replay loop stops at goes through ``LedgerState.apply``, which
    reports it as tampering (never a bare TypeError) and changes nothing."""
    state = LedgerState(core)
    state.do_register_asset("BTC", 8)
    w = state.core.add_account(c.KIND_WALLET, 0)
    state.account_names.append("w")
    state.account_index["w"] = w
    state.wallet_accounts.add(w)
    for name in ("a", "b"):
        state.do_open_account(name, c.KIND_CUSTOMER)
        assert state.do_post(w, state.account_index[name], 0, 1_000) == c.OK
    first = r.Transferred(position=1, time_ns=1, actor="system", ref="t1", from_account="a",
                          to_account="b", asset="BTC", amount_minor=5)
    state.apply_records([first])
    fields = dict(fields)  # (the parameter is shared by both cores' runs)
    if "max_refs" in fields:  # a full index: the same entries in one with no more room
        full = refs_class(core)(max_refs=fields.pop("max_refs"))
        for row in state.transfer_refs.export():
            full.add(*row)
        state.transfer_refs = full
    before = (state.core.export_state(), state.transfer_refs.export(), state.position)
    rec = r.Transferred(**{**msgspec.structs.asdict(first), "position": 2, "ref": "t2",
                           **fields})
    with pytest.raises(TamperDetected, match=words):
        state.apply_records([rec])
    assert (state.core.export_state(), state.transfer_refs.export(), state.position) == before


# The compiled loop reads a record's fields straight from their slots (offsets from the
# record class's member descriptors). Records are msgspec Structs, whose fields are such
# slots; the two tests below hold the loop to its fallbacks for anything else.
FIELDS = ("position", "time_ns", "actor", "ref", "from_account", "to_account", "asset",
          "amount_minor", "memo")


class _Slotted:
    __slots__ = FIELDS

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)


class _Plain:  # fields in the instance __dict__, no descriptors
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _transfer(cls: Any, n: int, **extra: Any) -> Any:
    fields = {"position": n, "time_ns": 10 + n, "actor": "x", "ref": f"t{n}",
              "from_account": "a", "to_account": "b", "asset": "BTC", "amount_minor": 100,
              "memo": ""}
    fields.update(extra)
    return cls(**{k: v for k, v in fields.items() if v is not _EMPTY})


_EMPTY = object()


def test_compiled_loop_stops_at_a_record_with_an_empty_field_slot() -> None:
    table, accounts, assets, wallets = _setup(Compiled)
    refs = CompiledRefs()
    recs = [_transfer(_Slotted, 1), _transfer(_Slotted, 2),
            _transfer(_Slotted, 3, memo=_EMPTY), _transfer(_Slotted, 4)]
    assert table.replay_transfers(recs, 0, _Slotted, accounts, assets, wallets, refs,
                                  0, 0) == (2, 2, 12)
    assert [row[0] for row in refs.export()] == ["t1", "t2"]
    assert table.available(accounts["a"], 0) == 800
    for name in ("position", "ref", "from_account", "amount_minor"):
        table, accounts, assets, wallets = _setup(Compiled)
        refs = CompiledRefs()
        recs = [_transfer(_Slotted, 1, **{name: _EMPTY})]
        assert table.replay_transfers(recs, 0, _Slotted, accounts, assets, wallets, refs,
                                      0, 0) == (0, 0, 0)
        assert refs.export() == [] and table.available(accounts["a"], 0) == 1_000


def test_compiled_loop_leaves_records_without_field_slots_to_the_slow_path() -> None:
    table, accounts, assets, wallets = _setup(Compiled)
    refs = CompiledRefs()
    recs = [_transfer(_Plain, 1), _transfer(_Plain, 2)]
    assert table.replay_transfers(recs, 0, _Plain, accounts, assets, wallets, refs,
                                  0, 7) == (0, 0, 7)
    assert refs.export() == [] and table.available(accounts["a"], 0) == 1_000


class _Other:  # the same layout as _Slotted under other names
    __slots__ = tuple(f"other_{name}" for name in FIELDS)


def test_compiled_loop_refuses_field_slots_borrowed_from_another_class() -> None:
    # _Slotted's member descriptors set on a class that does not derive from it:
    # reading them from its instances is a TypeError, so the loop must not read at
    # their offsets either (here those offsets would even find a valid transfer)
    borrowed = type("_Borrowed", (_Other,),
                    {"__slots__": (), **{name: _Slotted.__dict__[name] for name in FIELDS}})
    recs = []
    for n in (1, 2):
        rec = borrowed()
        for name, value in zip(FIELDS, (n, 10 + n, "x", f"t{n}", "a", "b", "BTC", 100, ""),
                               strict=True):
            setattr(rec, f"other_{name}", value)
        recs.append(rec)
    with pytest.raises(TypeError):
        _ = recs[0].position
    table, accounts, assets, wallets = _setup(Compiled)
    refs = CompiledRefs()
    assert table.replay_transfers(recs, 0, borrowed, accounts, assets, wallets, refs,
                                  0, 7) == (0, 0, 7)
    assert refs.export() == [] and table.available(accounts["a"], 0) == 1_000
