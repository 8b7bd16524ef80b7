"""Argument checks of the bulk path (``OrderBook.process_many``) shared by both books.

The compiled book (``ext/_book.pyx``) and the twin (``twin.py``) call the same
function, so that both refuse the same ``events`` arrays with the same errors.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence


def events_can_grow(events: array[int], cols: Sequence[object]) -> None:
    """Refuse, before any row runs, an ``events`` array that ``process_many`` could not
    append to: one that is also an input column (``ValueError``), or one exporting its
    buffer (a live ``memoryview``), which ``array`` refuses to resize (``BufferError``).
    Checked by growing it by one item and shrinking it back. The compiled book depends
    on this check: it resizes the array with Cython's ``cpython.array`` helpers, which
    reallocate without ``array``'s own check for exports and would leave a live view
    on freed memory."""
    if any(col is events for col in cols):
        raise ValueError("process_many: events must not be one of the input columns")
    try:
        events.append(0)
    except BufferError:
        raise BufferError("process_many: events is exporting its buffer (a memoryview of it "
                          "is alive), so it cannot grow; release the view first") from None
    events.pop()
