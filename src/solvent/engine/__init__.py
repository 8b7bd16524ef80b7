"""The market engine: holds, matching and settlement of one market's orders.

``compiled`` is ``solvent._engine.MarketEngine`` (Cython, built from
``ext/_engine.pyx``, over the compiled balance core and book); ``python`` is
:class:`solvent.engine.twin.MarketEngine`, the readable specification, over the
twin core and book. ``tests/test_engine_differential.py`` holds the two to
identical output bytes. Row layouts and result codes live in
:mod:`solvent.engine.codes`.
"""

from __future__ import annotations

from typing import Any

ENGINES = ("compiled", "python")


def engine_class(core: str) -> Any:
    """Return the MarketEngine class that runs over the named core."""
    if core == "python":
        from solvent.engine.twin import MarketEngine

        return MarketEngine
    if core == "compiled":
        from solvent import _engine

        return _engine.MarketEngine
    raise ValueError(f"unknown core {core!r}: choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "engine_class"]
