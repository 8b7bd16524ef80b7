"""The transfer-ref index: compiled ``solvent._core.TransferRefs`` against the twin
``solvent.core.refs.TransferRefs``, every rejection path, and its limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent._core import TransferRefs as Compiled
from solvent.core import codes as c
from solvent.core.refs import MAX_REF_TEXT_BYTES, MAX_TRANSFER_REFS
from solvent.core.refs import TransferRefs as Twin

BOTH = pytest.mark.parametrize("cls", [Twin, Compiled], ids=["twin", "compiled"])

ref_text = st.one_of(
    st.sampled_from(["a", "b", "pay-1", "pay-1 ", "ré", "日本", "\ud800", "", 5, None]),
    st.text(max_size=12),
)
number = st.one_of(
    st.integers(-2, 40),
    st.sampled_from([c.MAX_ACCOUNTS - 1, c.MAX_ACCOUNTS, c.MAX_ASSETS, c.INT64_MAX,
                     c.INT64_MAX + 1, True, 1.0, "3"]),
)
op = st.one_of(
    st.tuples(st.just("add"), ref_text, number, number, number, number,
              st.one_of(ref_text, st.just("x" * (MAX_REF_TEXT_BYTES + 1))), number),
    st.tuples(st.just("reserve"), ref_text,
              st.one_of(ref_text, st.just("x" * (MAX_REF_TEXT_BYTES + 1)))),
    st.tuples(st.just("get"), ref_text),
    st.tuples(st.just("contains"), ref_text),
)


def _run(index: Any, step: tuple[Any, ...]) -> object:
    name, *args = step
    try:
        if name == "add":
            return index.add(*args)
        if name == "reserve":
            return index.reserve(*args)
        if name == "get":
            return index.get(args[0])
        return args[0] in index
    except (TypeError, ValueError, OverflowError) as exc:
        return (type(exc), str(exc))


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40), st.sampled_from([0, 1, 5, 1_000]))
def test_compiled_index_matches_twin(steps: list[tuple[Any, ...]], max_refs: int) -> None:
    twin, comp = Twin(max_refs=max_refs), Compiled(max_refs=max_refs)
    for step in steps:
        assert _run(twin, step) == _run(comp, step), step
        assert len(twin) == len(comp)
    assert twin.export() == comp.export()


@BOTH
def test_entries_by_number_in_order_added(cls: Any) -> None:
    refs = cls()
    refs.add("pay-1", 3, 4, 0, 10_000_000, "rent", 12)
    refs.add("loyer-é", 4, 3, 1, 1, "mars é ✓", 13)
    assert refs.get("pay-1") == (3, 4, 0, 10_000_000, "rent", 12)
    assert refs.get("loyer-é") == (4, 3, 1, 1, "mars é ✓", 13)
    assert refs.get("pay-2") is None and refs.get("\ud800") is None
    assert "pay-1" in refs and "pay-2" not in refs and 5 not in refs
    assert refs.export() == [("pay-1", 3, 4, 0, 10_000_000, "rent", 12),
                             ("loyer-é", 4, 3, 1, 1, "mars é ✓", 13)]
    assert len(refs) == 2


@BOTH
@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        ((5, 1, 2, 0, 1, "", 1), TypeError, "str"),
        (("r", 1, 2, 0, 1, None, 1), TypeError, "str"),
        (("r", True, 2, 0, 1, "", 1), TypeError, "debit must be an int"),
        (("r", 1, 2.0, 0, 1, "", 1), TypeError, "credit must be an int"),
        (("r", -1, 2, 0, 1, "", 1), ValueError, "debit -1"),
        (("r", 1, c.MAX_ACCOUNTS, 0, 1, "", 1), ValueError, "credit"),
        (("r", 1, 2, c.MAX_ASSETS, 1, "", 1), ValueError, "asset"),
        (("r", 1, 2, 0, 0, "", 1), ValueError, "amount_minor 0"),
        (("r", 1, 2, 0, c.INT64_MAX + 1, "", 1), ValueError, "amount_minor"),
        (("r", 1, 2, 0, 1, "", 0), ValueError, "position 0"),
        (("r\ud800", 1, 2, 0, 1, "", 1), ValueError, "UTF-8"),
        (("r", 1, 2, 0, 1, "\udfff", 1), ValueError, "UTF-8"),
        (("x" * (MAX_REF_TEXT_BYTES + 1), 1, 2, 0, 1, "", 1), ValueError, "ref of"),
        (("r", 1, 2, 0, 1, "é" * (MAX_REF_TEXT_BYTES // 2 + 1), 1), ValueError, "memo of"),
        (("dup", 1, 2, 0, 1, "", 1), ValueError, "already"),
    ],
)
def test_each_rejection_changes_nothing(cls: Any, args: tuple[Any, ...], error: type,
                                        words: str) -> None:
    refs = cls()
    refs.add("dup", 0, 1, 0, 5, "", 1)
    before = refs.export()
    with pytest.raises(error, match=words):
        refs.add(*args)
    assert refs.export() == before and len(refs) == 1


@BOTH
def test_limits_are_exact(cls: Any) -> None:
    refs = cls(max_refs=2)
    assert refs.max_refs == 2
    refs.add("x" * MAX_REF_TEXT_BYTES, 0, 1, 0, c.INT64_MAX, "é" * (MAX_REF_TEXT_BYTES // 2),
             c.INT64_MAX)
    refs.add("b", c.MAX_ACCOUNTS - 1, 0, c.MAX_ASSETS - 1, 1, "", 2)
    with pytest.raises(OverflowError, match="full"):
        refs.add("c", 0, 1, 0, 1, "", 3)
    assert len(refs) == 2 and "c" not in refs
    assert cls().max_refs == MAX_TRANSFER_REFS == (1 << 31) - 2
    with pytest.raises(ValueError):
        cls(max_refs=MAX_TRANSFER_REFS + 1)
    with pytest.raises(ValueError):
        cls(max_refs=-1)
    with pytest.raises(TypeError):
        cls(max_refs=2.0)


@BOTH
def test_many_refs_grow_and_stay_found(cls: Any) -> None:
    refs = cls()
    n = 20_000
    for i in range(n):
        refs.add(f"t-{i}", i % 1_000, (i + 1) % 1_000, i % 3, i + 1, "m" if i % 7 else "", i + 1)
    assert len(refs) == n
    for i in range(0, n, 97):
        assert refs.get(f"t-{i}") == (i % 1_000, (i + 1) % 1_000, i % 3, i + 1,
                                      "m" if i % 7 else "", i + 1)
    assert all(f"u-{i}" not in refs for i in range(0, n, 13))
    assert [row[0] for row in refs.export()] == [f"t-{i}" for i in range(n)]


def test_compiled_index_memory_per_entry() -> None:
    """About 100 bytes an entry for short refs (56 of entry, 16-32 of table, the text),
    where keeping each ``Transferred`` record cost about 490."""
    refs = Compiled()
    n = 100_000
    for i in range(n):
        refs.add(f"t-{i:08d}", 1, 2, 0, 5, "", i + 1)
    per_entry = refs.allocated_bytes / n
    assert 56 + 10 < per_entry < 140, per_entry
