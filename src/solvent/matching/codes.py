"""Constants of the order-book kernel, shared by both books.

The compiled book (``solvent._book``, built from ``ext/_book.pyx``) and the
Python twin (``solvent.matching.twin``) take and return these integers. They
are checked against each other when ``solvent._book`` is imported, and, like
the balance codes, their values never change: new ones are only appended.

Result codes: ``OK`` (0) means the command was applied; any other code means
the book was left exactly as it was.
"""

from __future__ import annotations

from typing import Final

# -- result codes ---------------------------------------------------------------------------
OK: Final = 0
INVALID_ORDER_ID: Final = 1  # order id outside 1..MAX_ORDER_ID
INVALID_ACCOUNT: Final = 2  # account outside 0..MAX_ACCOUNT
INVALID_PARAMS: Final = 3  # unknown side/kind/tif/stp/op, or a combination not allowed
INVALID_PRICE: Final = 4  # price outside 1..MAX_PRICE_TICKS (or non-zero on a market order)
INVALID_QTY: Final = 5  # qty outside 1..MAX_QTY_LOTS, or a bad quote budget
DUPLICATE_ORDER_ID: Final = 6  # an order with this id is resting in the book
POST_ONLY_WOULD_TAKE: Final = 7  # a post-only order's price crosses the opposite best
FOK_UNFILLABLE: Final = 8  # a fill-or-kill order cannot be filled completely now
BOOK_FULL: Final = 9  # a GTC limit order while max_orders orders are resting
UNKNOWN_ORDER: Final = 10  # cancel/amend of an order id that is not resting
AMEND_WOULD_CROSS: Final = 11  # an amended price would cross the opposite best

CODE_NAMES: Final[dict[int, str]] = {
    OK: "ok",
    INVALID_ORDER_ID: "invalid_order_id",
    INVALID_ACCOUNT: "invalid_account",
    INVALID_PARAMS: "invalid_params",
    INVALID_PRICE: "invalid_price",
    INVALID_QTY: "invalid_qty",
    DUPLICATE_ORDER_ID: "duplicate_order_id",
    POST_ONLY_WOULD_TAKE: "post_only_would_take",
    FOK_UNFILLABLE: "fok_unfillable",
    BOOK_FULL: "book_full",
    UNKNOWN_ORDER: "unknown_order",
    AMEND_WOULD_CROSS: "amend_would_cross",
}

# -- order parameters -------------------------------------------------------------------------
BUY: Final = 0
SELL: Final = 1
SIDE_NAMES: Final[dict[int, str]] = {BUY: "buy", SELL: "sell"}

LIMIT: Final = 0
MARKET: Final = 1
KIND_NAMES: Final[dict[int, str]] = {LIMIT: "limit", MARKET: "market"}

GTC: Final = 0  # good till cancelled: the remainder rests
IOC: Final = 1  # immediate or cancel: the remainder expires
FOK: Final = 2  # fill or kill: completely filled now, or rejected with nothing changed
TIF_NAMES: Final[dict[int, str]] = {GTC: "GTC", IOC: "IOC", FOK: "FOK"}

# Self-trade prevention: what happens when the incoming order meets a resting
# order of the same account (the incoming order's mode applies).
STP_NONE: Final = 0  # they trade with each other
EXPIRE_TAKER: Final = 1  # the incoming order's remainder expires; the resting one stays
EXPIRE_MAKER: Final = 2  # the resting order expires (removed); matching goes on
EXPIRE_BOTH: Final = 3  # both expire
STP_NAMES: Final[dict[int, str]] = {
    STP_NONE: "none",
    EXPIRE_TAKER: "expire_taker",
    EXPIRE_MAKER: "expire_maker",
    EXPIRE_BOTH: "expire_both",
}

# -- events: 7-int tuples (kind, order_id, maker_order_id, account, price_ticks,
#    qty_lots, remaining_lots); see twin.py for the meaning of each field per kind.
EV_FILL: Final = 1
EV_MAKER_EXPIRED: Final = 2
EV_RESTING: Final = 3
EV_FILLED: Final = 4
EV_EXPIRED: Final = 5
EV_STP_EXPIRED: Final = 6
EV_CANCELED: Final = 7
EV_AMENDED: Final = 8
EVENT_NAMES: Final[dict[int, str]] = {
    EV_FILL: "fill",
    EV_MAKER_EXPIRED: "maker_expired",
    EV_RESTING: "resting",
    EV_FILLED: "filled",
    EV_EXPIRED: "expired",
    EV_STP_EXPIRED: "stp_expired",
    EV_CANCELED: "canceled",
    EV_AMENDED: "amended",
}
EVENT_FIELDS: Final = 7  # ints per event tuple
BULK_EVENT_FIELDS: Final = 8  # ints per event record of process_many: op index + event

# -- the bulk path (process_many) --------------------------------------------------------------
OP_LIMIT: Final = 0
OP_MARKET: Final = 1
OP_CANCEL: Final = 2
OP_AMEND: Final = 3
OP_NAMES: Final[dict[int, str]] = {
    OP_LIMIT: "limit",
    OP_MARKET: "market",
    OP_CANCEL: "cancel",
    OP_AMEND: "amend",
}
# flags column: bits 0-1 tif, bit 2 post_only, bits 3-4 stp; other bits must be 0.
FLAG_TIF_MASK: Final = 0b11
FLAG_POST_ONLY: Final = 0b100
FLAG_STP_SHIFT: Final = 3
FLAG_STP_MASK: Final = 0b11 << 3
FLAGS_ALL: Final = 0b11111


def flags(tif: int = GTC, post_only: bool = False, stp: int = STP_NONE) -> int:
    """The flags column value of one bulk order."""
    return (tif & FLAG_TIF_MASK) | (FLAG_POST_ONLY if post_only else 0) | (
        (stp & 0b11) << FLAG_STP_SHIFT
    )


# -- limits (TigerBeetle style: a limit on everything, each one tested) -----------------------
INT64_MAX: Final = (1 << 63) - 1
MAX_ORDER_ID: Final = INT64_MAX  # order ids are 1..MAX_ORDER_ID
MAX_ACCOUNT: Final = INT64_MAX  # accounts are 0..MAX_ACCOUNT (ledger account numbers)
MAX_PRICE_TICKS: Final = 10**12  # prices are 1..MAX_PRICE_TICKS
MAX_QTY_LOTS: Final = 10**12  # quantities are 1..MAX_QTY_LOTS
MAX_QUOTE_BUDGET: Final = INT64_MAX  # a market buy's budget: 1..MAX_QUOTE_BUDGET tick-lots
#: Hard cap of a book's ``max_orders`` (resting orders). With MAX_QTY_LOTS it
#: keeps every level total and every side total below INT64_MAX:
#: 2**23 * 10**12 < 2**63.
MAX_ORDERS_LIMIT: Final = 1 << 23
DEFAULT_MAX_ORDERS: Final = 1 << 21  # 2,097,152 resting orders per book
