"""Peer order books from PyPI, driven with the same order stream as ``solvent``'s kernel.

Each adapter module wraps one package (imported only if it is installed) behind
one interface, :class:`PeerBook`: ``apply(rows)`` runs rows of the standard mix,
one public-API call (or two, see below) per row, and returns how many rows it
ran. A row is ``(kind, order_id, side, price_ticks, qty_lots)``:

* ``LIMIT``: a GTC limit order; ``IOC``: a limit order whose remainder is
  cancelled (none of the peers has IOC: it is a limit order plus a cancel when
  something rests); ``MARKET``: a market order for ``qty_lots`` (a market buy by
  budget in solvent's stream carries the equivalent quantity here);
* ``CANCEL``: cancel ``order_id`` if the peer still has it;
* ``AMEND``: ``price_ticks``/``qty_lots`` are the new values (none of the peers
  has amend: a cancel plus a new limit order, so priority is always lost).

None of the peers has self-trade prevention or accounts; solvent's stream uses
``expire_maker`` with 1,000 accounts, which rarely triggers (two orders of the
same account meet about once in a thousand fills).

``load_peers()`` returns the adapters whose package imports, and a reason for
each one that does not (``solvent bench`` lists those in ``params``). Install them
with ``pip install limit-order-book cython-orderbook pyorderbook lightmatchingengine``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Protocol

LIMIT, IOC, MARKET, CANCEL, AMEND = 0, 1, 2, 3, 4
BUY, SELL = 0, 1
Row = tuple[int, int, int, int, int]

# peer name (the PyPI package) -> adapter module in this package
ADAPTERS: dict[str, str] = {
    "limit-order-book": "lob_cpp",
    "cython-orderbook": "cython_orderbook_peer",
    "pyorderbook": "pyorderbook_peer",
    "lightmatchingengine": "lightmatchingengine_peer",
}


class PeerBook(Protocol):
    name: str
    version: str

    def apply(self, rows: Sequence[Row]) -> int: ...


def load_peers() -> tuple[dict[str, Callable[[], PeerBook]], dict[str, str]]:
    """(name -> factory of a fresh peer book, name -> why it is missing)."""
    found: dict[str, Callable[[], PeerBook]] = {}
    missing: dict[str, str] = {}
    for name, module in ADAPTERS.items():
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
            factory = mod.make()
        except Exception as exc:  # an absent or broken package: reported, not fatal
            missing[name] = f"{type(exc).__name__}: {exc}"
            continue
        found[name] = factory
    return found, missing
