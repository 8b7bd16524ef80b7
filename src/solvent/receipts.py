"""What a journaled command returns."""

from __future__ import annotations

import msgspec


class Receipt(msgspec.Struct, frozen=True):
    """What a journaled command returns: its record's position. ``replayed`` is
    True when the command repeated an earlier one (same ref, same content)."""

    position: int
    ref: str
    replayed: bool = False
