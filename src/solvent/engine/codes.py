"""Constants of the market engine, shared by both engines.

The market engine (compiled: ``solvent._engine``, built from ``ext/_engine.pyx``;
twin: :mod:`solvent.engine.twin`) runs orders against one market's book and the
balance core. It takes rows of plain ints and writes rows of plain ints; the
journal stores them as little-endian int64 columns (``OrdersSubmitted``). Values
never change: new ones are only appended.

**Input row** (``IN_FIELDS`` ints, the tuple ``Ledger.submit_orders`` takes):

====  ===============  ====================================================
0     ``op``           ``OP_LIMIT``, ``OP_MARKET``, ``OP_CANCEL``, ``OP_AMEND``
1     ``market``       the market's number (``Ledger.market_id``)
2     ``order_id``     cancel/amend: the order; new orders: 0 (the engine numbers them)
3     ``account``      the account's number (``Ledger.account_id``)
4     ``side``         ``BUY`` 0 / ``SELL`` 1 (new orders; else 0)
5     ``price_ticks``  limit price; amend: new price or 0 for unchanged
6     ``qty_lots``     limit and market sell qty; amend: new qty or 0 for unchanged
7     ``quote_minor``  market buy: the budget in quote minor units, fees included
8     ``flags``        ``tif | post_only << 2 | stp << 3`` (new orders; else 0)
====  ===============  ====================================================

**Result row** (``OUT_FIELDS`` ints, one per input row):
``code, order_id, status, filled_lots, remaining_lots, amount_minor`` where
``status`` is an ``EV_*`` final event of :mod:`solvent.matching.codes`
(``EV_CANCELED`` for a cancel, ``EV_AMENDED`` for an amend, 0 when refused) and
``amount_minor`` is what the order held at placement (a cancel: what it
released; an amend: the hold's change, negative when released).

**Event row** (``EVENT_FIELDS`` ints, in order, for the rows that traded):
``row, kind, maker_order_id, maker_account, price_ticks, qty_lots,
maker_remaining_lots, maker_fee_minor, taker_fee_minor`` with ``kind``
``EV_FILL`` or ``EV_MAKER_EXPIRED`` (self-trade prevention; fees 0). A fill's
notional is ``price_ticks * qty_lots * notional_per_tick_lot``.
"""

from __future__ import annotations

from typing import Final

from solvent.matching import codes as mc

IN_FIELDS: Final = 9
OUT_FIELDS: Final = 6
EVENT_FIELDS: Final = 9

OP_LIMIT: Final = mc.OP_LIMIT
OP_MARKET: Final = mc.OP_MARKET
OP_CANCEL: Final = mc.OP_CANCEL
OP_AMEND: Final = mc.OP_AMEND

# -- result codes: each is also the ``code`` of the Rejected the single path raises -------
OK: Final = 0
INVALID_ARGUMENT: Final = 1  # unknown op/side/tif/stp/flags or a combination not allowed
INVALID_AMOUNT: Final = 2  # price or qty out of range, or an amount beyond int64
UNKNOWN_ACCOUNT: Final = 3  # an account number the ledger does not know
PERMISSION_DENIED: Final = 4  # a customer acting for another account
MARKET_HALTED: Final = 5
ASSET_HALTED: Final = 6  # base or quote is halted by custody
NOT_RECONCILED: Final = 7  # base or quote has no fresh attestation
PRICE_OUTSIDE_BAND: Final = 8
BELOW_MIN_NOTIONAL: Final = 9
LIMIT_EXCEEDED: Final = 10  # open orders per account, or the book is full
ACCOUNT_FROZEN: Final = 11
INSUFFICIENT_FUNDS: Final = 12
POST_ONLY_WOULD_TAKE: Final = 13
FOK_UNFILLABLE: Final = 14
UNKNOWN_ORDER: Final = 15  # cancel/amend of an order that is not resting in this market
AMEND_WOULD_CROSS: Final = 16  # an amend never trades

CODE_NAMES: Final[dict[int, str]] = {
    OK: "ok",
    INVALID_ARGUMENT: "invalid_argument",
    INVALID_AMOUNT: "invalid_amount",
    UNKNOWN_ACCOUNT: "unknown_account",
    PERMISSION_DENIED: "permission_denied",
    MARKET_HALTED: "market_halted",
    ASSET_HALTED: "asset_halted",
    NOT_RECONCILED: "not_reconciled",
    PRICE_OUTSIDE_BAND: "price_outside_band",
    BELOW_MIN_NOTIONAL: "below_min_notional",
    LIMIT_EXCEEDED: "limit_exceeded",
    ACCOUNT_FROZEN: "account_frozen",
    INSUFFICIENT_FUNDS: "insufficient_funds",
    POST_ONLY_WOULD_TAKE: "post_only_would_take",
    FOK_UNFILLABLE: "fok_unfillable",
    UNKNOWN_ORDER: "unknown_order",
    AMEND_WOULD_CROSS: "amend_would_cross",
}

PPM: Final = 1_000_000
MAX_FEE_PPM: Final = 100_000  # 10 %
INT64_MAX: Final = 2**63 - 1
MAX_OPEN_ORDERS_PER_ACCOUNT: Final = 1_000
MAX_SUBMIT_ROWS: Final = 100_000  # rows per engine call (and per OrdersSubmitted record)
#: order ids are numbered from 1; a call may start numbering at most here, so that no
#: id it hands out can pass int64
MAX_FIRST_ORDER_ID: Final = 2**62
