"""The transfer-ref index, pure-Python twin: which ref each journaled transfer used.

A ``Transferred`` record's ``ref`` is idempotent: a retry with the same content
returns the original receipt, and the same ref with other content is refused
(``DuplicateRef``). So the ledger keeps, for every transfer it has journaled,
what the transfer moved. This index keeps exactly that, by number, not the
record::

    ref -> (debit, credit, asset, amount_minor, memo, position)

``debit``/``credit`` are account numbers and ``asset`` an asset number of the
balance core (names are the registries' business). Entries are never removed,
and ``export()`` lists them in the order they were added, which is the journal's
order, so a snapshot of the index is deterministic.

The compiled core (``solvent._core.TransferRefs``, ``ext/_core.pyx``) mirrors
this class name for name over C arrays and a text arena, at about a fifth of the
memory of keeping the records (``docs/ledger.md``, the transfer-ref index); the
differential tests hold the two to identical results, errors included.

Limits: at most ``max_refs`` entries (``MAX_TRANSFER_REFS`` unless the constructor
is given fewer; ``OverflowError`` beyond), and a
ref or memo of at most ``MAX_REF_TEXT_BYTES`` bytes of UTF-8 (``ValueError``).
The ledger's own limits on refs (128 characters) and memos (1,024) sit well
inside them; these bound what a forged journal can make the index hold.
"""

from __future__ import annotations

from typing import Final

from solvent.core import codes as c

# (debit, credit, asset, amount_minor, memo, position)
RefEntry = tuple[int, int, int, int, str, int]

MAX_TRANSFER_REFS: Final = (1 << 31) - 2
MAX_REF_TEXT_BYTES: Final = 1 << 16


def text_bytes(value: str, what: str) -> int:
    """UTF-8 length of ``value``; ValueError past the limit or for a lone surrogate."""
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("text is not encodable as UTF-8") from None
    if size > MAX_REF_TEXT_BYTES:
        raise ValueError(f"{what} of {size} bytes exceeds {MAX_REF_TEXT_BYTES}")
    return size


def _number(value: int, name: str, low: int, top: int) -> None:
    """TypeError unless an int (not a bool), ValueError unless in ``low..top``."""
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= top:
        raise ValueError(f"{name} {value} is outside {low}..{top}")


class TransferRefs:
    """ref -> what the transfer journaled under it moved (see the module docstring)."""

    __slots__ = ("_max", "_refs")

    def __init__(self, max_refs: int = MAX_TRANSFER_REFS) -> None:
        if type(max_refs) is not int:
            raise TypeError(f"max_refs must be an int, got {type(max_refs).__name__}")
        if not 0 <= max_refs <= MAX_TRANSFER_REFS:
            raise ValueError(f"max_refs {max_refs} is outside 0..{MAX_TRANSFER_REFS}")
        self._max = max_refs
        self._refs: dict[str, RefEntry] = {}

    def __len__(self) -> int:
        return len(self._refs)

    @property
    def max_refs(self) -> int:
        """The most entries this index takes (``add`` raises OverflowError beyond)."""
        return self._max

    def __contains__(self, ref: object) -> bool:
        return type(ref) is str and ref in self._refs

    def get(self, ref: str) -> RefEntry | None:
        """The entry of ``ref``, or None if no transfer used it."""
        if type(ref) is not str:
            raise TypeError(f"ref must be a str, got {type(ref).__name__}")
        return self._refs.get(ref)

    def add(self, ref: str, debit: int, credit: int, asset: int, amount_minor: int,
            memo: str, position: int) -> None:
        """Record that the transfer at ``position`` used ``ref``.

        Raises (and changes nothing): TypeError for a non-str ref or memo or a
        non-int number; ValueError for a number out of range, a text past
        ``MAX_REF_TEXT_BYTES`` or not encodable, or a ref already present;
        OverflowError past ``max_refs`` entries.
        """
        if type(ref) is not str or type(memo) is not str:
            raise TypeError("ref and memo must be str")
        _number(debit, "debit", 0, c.MAX_ACCOUNTS - 1)
        _number(credit, "credit", 0, c.MAX_ACCOUNTS - 1)
        _number(asset, "asset", 0, c.MAX_ASSETS - 1)
        _number(amount_minor, "amount_minor", 1, c.INT64_MAX)
        _number(position, "position", 1, c.INT64_MAX)
        text_bytes(ref, "ref")
        text_bytes(memo, "memo")
        if ref in self._refs:
            raise ValueError(f"ref {ref!r} is already in the index")
        if len(self._refs) >= self._max:
            raise OverflowError(f"the transfer-ref index is full ({self._max} refs)")
        self._put(ref, debit, credit, asset, amount_minor, memo, position)

    def reserve(self, ref: str, memo: str) -> None:
        """Make room for one more entry with these texts, so that an ``add`` of them
        right after cannot fail for lack of memory (the ledger calls this before it
        posts). Raises as ``add`` for a non-str, a text it would refuse, or a full
        index (OverflowError); changes no entry."""
        if type(ref) is not str or type(memo) is not str:
            raise TypeError("ref and memo must be str")
        text_bytes(ref, "ref")
        text_bytes(memo, "memo")
        if len(self._refs) >= self._max:
            raise OverflowError(f"the transfer-ref index is full ({self._max} refs)")
        # (a dict has no reservation: the twin only checks)

    def _room_for(self, ref: str, memo: str) -> bool:
        """Whether ``add`` would take a new entry with these texts: the ref is new,
        both texts encode within ``MAX_REF_TEXT_BYTES`` and there is room (the replay
        loop's check; it then calls ``_put``)."""
        if ref in self._refs or len(self._refs) >= self._max:
            return False
        if (ref.isascii() and memo.isascii() and len(ref) <= MAX_REF_TEXT_BYTES
                and len(memo) <= MAX_REF_TEXT_BYTES):
            return True  # (ASCII: one byte a character)
        try:
            text_bytes(ref, "ref")
            text_bytes(memo, "memo")
        except ValueError:
            return False
        return True

    def _put(self, ref: str, debit: int, credit: int, asset: int, amount_minor: int,
             memo: str, position: int) -> None:
        """``add`` without its checks, for a caller that has made them (the replay loop:
        a new ref, texts that fit, room left, numbers the balance core accepted)."""
        self._refs[ref] = (debit, credit, asset, amount_minor, memo, position)

    def export(self) -> list[tuple[str, int, int, int, int, str, int]]:
        """Every entry as ``(ref, debit, credit, asset, amount_minor, memo, position)``,
        in the order added."""
        return [(ref, *entry) for ref, entry in self._refs.items()]
