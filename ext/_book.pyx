# cython: language_level=3
"""The compiled order book (``solvent._book``): a mirror of ``solvent/matching/twin.py``.

``twin.py`` is the readable specification (its docstring documents every
command, check order, event and limit); this module implements the same
``OrderBook`` over C structs, with Python objects only at the boundary. Read the
two side by side; the differential tests hold them to identical outputs.

Storage (all C memory from ``PyMem_Raw*``, so ``tracemalloc`` sees it; freed in
``__dealloc__``):

* **order pool**: an array of 32-byte ``Order`` structs (64-byte aligned, so an
  order never straddles two cache lines). Each order is linked into its price
  level's FIFO (``prev``/``next``, int32 indices). The pool is addressed by
  order id: its first ``_home_cap`` slots (a power of two, at least twice the
  resting orders, at most the power of two >= ``max_orders``) are *home slots*,
  and an order rests in the home slot of its id (``_home``: consecutive ids,
  consecutive slots) when that slot is free. Finding a resting order by id then
  touches one cache line, the order itself: no index to look up first (at 1M
  resting orders a lookup that misses the caches costs a main-memory latency per
  line). An order whose home slot is taken (by an older order whose id is
  ``_home_cap`` apart, or by an id pattern) rests in the **overflow region** after
  the home slots (free list, doubles when full), is indexed by the **order id
  table**, and is counted in its home slot's ``_ovf`` byte (255 sticks: "look in
  the table"), so a lookup whose home slot does not hold the order consults the
  table only when that count is not 0. Growing the home region moves every order
  (``_grow_home``, O(resting orders), like a rehash).
* **level pool**: ``Level`` structs with a free list. The levels of a side form a
  doubly linked list sorted best price first (``prev``/``next``), so the best
  price, the next best and ``depth`` are O(1) per level. A treap over the same
  levels (``left``/``right``/``parent``/``prio``, keyed by ``price`` for asks and
  ``-price`` for bids) finds where a new level goes when it is far from the touch
  (O(log levels)). A new level's neighbours are found by walking the list from
  the best (at most ``LEVEL_WALK`` steps), else by a search from the root; it is
  then linked in as a leaf beside one of them and rotated up, and an emptied
  level is rotated down and unlinked: both an expected O(1) rotations, so the
  levels that come and go at the touch cost the same in a book of 20 levels as
  of 20,000.
* **two open-addressing hash tables** (linear probing, backward-shift deletion,
  load <= 3/8): signed price key -> level (16-byte slots: int64 key, int32
  index), and order id -> order for the overflow region (8-byte slots: a 32-bit
  hash tag and the index; the key is the order's own ``order_id``). No Python
  object per order.
* the big arrays are advised as transparent huge pages before they are first
  touched (``solvent_big_alloc``), so random access over tens of MB does not miss
  the TLB on most rows.
* no per-account index: ``orders_of`` scans the pool (a read for audits and
  tests; the ledger keeps its own open orders per account), so the matching
  path touches no account lists.

Every command runs as: boundary checks (Python ints -> int64; an int that does
not fit becomes -1, which fails the same range check as in the twin), pure
checks, ``_reserve`` (grows pools and tables *before* anything changes; an
amend, which moves no order, only ``_reserve_levels``), then
the mutation, which cannot fail except when growing the event buffer (a
``MemoryError`` then leaves a consistent book with the command half applied).

Events are written as 8-int records (row index + the twin's 7-int event) to a
growable int64 buffer: the book's own, which ``submit`` turns into tuples, or in
``process_many`` the caller's ``array('q')`` itself, past the items it held, so
the records are written once and never copied (the array's length covers the
room while the loop runs and is set to what was written when it ends).
"""

cimport cython
from cpython cimport array as carray
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc, PyMem_RawRealloc
from cpython.bool cimport PyBool_Check
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, uint8_t
from libc.string cimport memset

import array as _pyarray

from solvent.matching import codes as c
from solvent.matching.bulk import events_can_grow

cdef extern from *:
    """
    static inline uint64_t solvent_mix64(uint64_t x) {
        x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; return x;
    }
    static inline uint32_t solvent_xorshift32(uint32_t *s) {
        uint32_t x = *s; x ^= x << 13; x ^= x >> 17; x ^= x << 5; *s = x; return x;
    }
    """
    uint64_t solvent_mix64(uint64_t x) noexcept nogil
    uint32_t solvent_xorshift32(uint32_t* s) noexcept nogil

cdef extern from *:
    """
    #define solvent_prefetch(p) __builtin_prefetch((const void*)(p), 1, 3)
    #include <stdint.h>
    #include <time.h>
    /* Nanoseconds of a monotonic clock, for the hint trials of process_many only
       (never for anything a book computes). */
    static inline int64_t solvent_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
    }
    #include <stddef.h>
    #include <string.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #define SOLVENT_HUGE ((size_t)1 << 21)
    /* The big arrays (order pool, level pool, hash tables). 64-byte aligned, so that a
       32-byte order or a 64-byte level never straddles two cache lines; from 4 MiB on,
       2 MiB aligned and advised huge *before* the first touch, so random access over
       tens of MB does not miss the TLB on most rows (growing by realloc instead would
       move the pages with mremap and split every huge page already there). The block
       from PyMem_RawMalloc (traced by tracemalloc) is kept just before the array. */
    static void *solvent_big_alloc(size_t bytes) {
        size_t align = bytes >= 2 * SOLVENT_HUGE ? SOLVENT_HUGE : 64;
        char *raw = (char *)PyMem_RawMalloc(bytes + align + sizeof(void *));
        if (raw == NULL) return NULL;
        uintptr_t a = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
        ((void **)a)[-1] = raw;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (align == SOLVENT_HUGE) madvise((void *)a, bytes & ~(SOLVENT_HUGE - 1), MADV_HUGEPAGE);
    #endif
        return (void *)a;
    }
    static void solvent_big_free(void *p) {
        if (p != NULL) PyMem_RawFree(((void **)p)[-1]);
    }
    /* A bigger array holding the first ``used`` bytes of ``p`` (freed); NULL (and ``p``
       left as it was) when out of memory. */
    static void *solvent_big_grow(void *p, size_t used, size_t bytes) {
        void *q = solvent_big_alloc(bytes);
        if (q == NULL) return NULL;
        if (used) memcpy(q, p, used);
        solvent_big_free(p);
        return q;
    }
    """
    void solvent_prefetch(const void* p) noexcept nogil
    int64_t solvent_now_ns() noexcept nogil
    void* solvent_big_alloc(size_t n) noexcept nogil
    void solvent_big_free(void* p) noexcept nogil
    void* solvent_big_grow(void* p, size_t used, size_t n) noexcept nogil
    void solvent_set_len "Py_SET_SIZE" (object a, Py_ssize_t n) noexcept


# Codes and constants: the values of ``solvent.matching.codes`` (checked at import).
cdef enum:
    OK = 0
    INVALID_ORDER_ID = 1
    INVALID_ACCOUNT = 2
    INVALID_PARAMS = 3
    INVALID_PRICE = 4
    INVALID_QTY = 5
    DUPLICATE_ORDER_ID = 6
    POST_ONLY_WOULD_TAKE = 7
    FOK_UNFILLABLE = 8
    BOOK_FULL = 9
    UNKNOWN_ORDER = 10
    AMEND_WOULD_CROSS = 11

cdef enum:
    BUY = 0
    SELL = 1
    LIMIT = 0
    MARKET = 1
    GTC = 0
    IOC = 1
    FOK = 2
    STP_NONE = 0
    EXPIRE_TAKER = 1
    EXPIRE_MAKER = 2
    EXPIRE_BOTH = 3
    EV_FILL = 1
    EV_MAKER_EXPIRED = 2
    EV_RESTING = 3
    EV_FILLED = 4
    EV_EXPIRED = 5
    EV_STP_EXPIRED = 6
    EV_CANCELED = 7
    EV_AMENDED = 8
    OP_LIMIT = 0
    OP_MARKET = 1
    OP_CANCEL = 2
    OP_AMEND = 3
    FLAG_TIF_MASK = 3
    FLAG_POST_ONLY = 4
    FLAG_STP_SHIFT = 3
    FLAGS_ALL = 31
    REC = 8                      # int64s per event record (row index + 7)
    MAX_ORDERS_LIMIT = 1 << 23
    DEFAULT_MAX_ORDERS = 1 << 21
    MIN_POOL = 1024               # home slots of a new book (fewer if max_orders is smaller)
    MIN_OVERFLOW = 64             # overflow slots of a new book
    PREFETCH_0 = 16               # rows ahead: the home slot of the order id
    PREFETCH_1 = 8                # rows ahead: a cancel/amend's level and neighbours (or id slot)
    PREFETCH_2 = 4                # rows ahead: an order in the overflow region
    PREFETCH_MIN_HOME = 65536     # home slots (2 MiB of orders) from which rows are prefetched
    HINT_EPOCH = 16384            # rows between two hint trials (on a book past PREFETCH_MIN_HOME)
    HINT_TRIAL = 512              # rows of a trial: with hints, then as many without
    HINT_WARM = 32                # rows at the start of a trial that are not timed (PREFETCH_0 ahead)
    PRICE_PREFETCH_MIN = 4096     # price table slots (64 KiB, past L1) from which limit rows prefetch theirs
    LEVEL_WALK = 8                # levels walked from the best to place a new level
    MIN_TABLE = 1024
    TABLE_LOAD_EIGHTHS = 3        # a hash table grows (doubles) past 3/8 full: at 5/8, a 1M
                                  # book's price table sat at 0.61 and probed and shifted
                                  # longer runs on every level made and dropped

cdef int64_t INT64_MAX_ = 0x7FFFFFFFFFFFFFFF
cdef int64_t MAX_ORDER_ID = 0x7FFFFFFFFFFFFFFF
cdef int64_t MAX_ACCOUNT = 0x7FFFFFFFFFFFFFFF
cdef int64_t MAX_PRICE_TICKS = 1000000000000
cdef int64_t MAX_QTY_LOTS = 1000000000000
cdef int64_t MAX_QUOTE_BUDGET = 0x7FFFFFFFFFFFFFFF

STATE_FORMAT = "solvent.book/1"


def _verify_constants():
    """Fail the import if the C constants above drift from ``matching/codes.py``."""
    pairs = (
        (OK, c.OK), (INVALID_ORDER_ID, c.INVALID_ORDER_ID), (INVALID_ACCOUNT, c.INVALID_ACCOUNT),
        (INVALID_PARAMS, c.INVALID_PARAMS), (INVALID_PRICE, c.INVALID_PRICE),
        (INVALID_QTY, c.INVALID_QTY), (DUPLICATE_ORDER_ID, c.DUPLICATE_ORDER_ID),
        (POST_ONLY_WOULD_TAKE, c.POST_ONLY_WOULD_TAKE), (FOK_UNFILLABLE, c.FOK_UNFILLABLE),
        (BOOK_FULL, c.BOOK_FULL), (UNKNOWN_ORDER, c.UNKNOWN_ORDER),
        (AMEND_WOULD_CROSS, c.AMEND_WOULD_CROSS),
        (BUY, c.BUY), (SELL, c.SELL), (LIMIT, c.LIMIT), (MARKET, c.MARKET), (GTC, c.GTC),
        (IOC, c.IOC), (FOK, c.FOK), (STP_NONE, c.STP_NONE), (EXPIRE_TAKER, c.EXPIRE_TAKER),
        (EXPIRE_MAKER, c.EXPIRE_MAKER), (EXPIRE_BOTH, c.EXPIRE_BOTH), (EV_FILL, c.EV_FILL),
        (EV_MAKER_EXPIRED, c.EV_MAKER_EXPIRED), (EV_RESTING, c.EV_RESTING),
        (EV_FILLED, c.EV_FILLED), (EV_EXPIRED, c.EV_EXPIRED),
        (EV_STP_EXPIRED, c.EV_STP_EXPIRED), (EV_CANCELED, c.EV_CANCELED),
        (EV_AMENDED, c.EV_AMENDED), (OP_LIMIT, c.OP_LIMIT), (OP_MARKET, c.OP_MARKET),
        (OP_CANCEL, c.OP_CANCEL), (OP_AMEND, c.OP_AMEND), (FLAG_TIF_MASK, c.FLAG_TIF_MASK),
        (FLAG_POST_ONLY, c.FLAG_POST_ONLY), (FLAG_STP_SHIFT, c.FLAG_STP_SHIFT),
        (FLAGS_ALL, c.FLAGS_ALL), (REC, c.BULK_EVENT_FIELDS),
        (MAX_ORDERS_LIMIT, c.MAX_ORDERS_LIMIT), (DEFAULT_MAX_ORDERS, c.DEFAULT_MAX_ORDERS),
        (MAX_ORDER_ID, c.MAX_ORDER_ID), (MAX_ACCOUNT, c.MAX_ACCOUNT),
        (MAX_PRICE_TICKS, c.MAX_PRICE_TICKS), (MAX_QTY_LOTS, c.MAX_QTY_LOTS),
        (MAX_QUOTE_BUDGET, c.MAX_QUOTE_BUDGET), (INT64_MAX_, c.INT64_MAX),
        (STATE_FORMAT, "solvent.book/1"),
    )
    for mine, theirs in pairs:
        if mine != theirs:
            raise ImportError(f"solvent._book constants out of date with codes.py: {pairs}")
    if len(c.CODE_NAMES) != AMEND_WOULD_CROSS + 1 or len(c.EVENT_NAMES) != EV_AMENDED:
        raise ImportError("solvent._book: codes.py has codes/events this book does not know")


_verify_constants()


# -- hash tables -----------------------------------------------------------------------------

cdef int _tbl_alloc(Table* t, Py_ssize_t cap) except -1:
    t.slots = <Slot*>solvent_big_alloc(<size_t>cap * sizeof(Slot))
    if t.slots == NULL:
        raise MemoryError("order book hash table")
    memset(t.slots, 0, <size_t>cap * sizeof(Slot))
    t.cap = cap
    t.count = 0
    return 0


cdef void _tbl_free(Table* t) noexcept:
    solvent_big_free(t.slots)
    t.slots = NULL
    t.cap = 0
    t.count = 0


cdef inline Py_ssize_t _tbl_home(const Table* t, int64_t key) noexcept nogil:
    return <Py_ssize_t>(solvent_mix64(<uint64_t>key) & <uint64_t>(t.cap - 1))


cdef inline Py_ssize_t _tbl_find(const Table* t, int64_t key) noexcept nogil:
    """Slot of ``key`` (never 0), or -1."""
    cdef Py_ssize_t mask = t.cap - 1
    cdef Py_ssize_t i = _tbl_home(t, key)
    cdef int64_t k
    while True:
        k = t.slots[i].key
        if k == key:
            return i
        if k == 0:
            return -1
        i = (i + 1) & mask


cdef inline int32_t _tbl_get(const Table* t, int64_t key) noexcept nogil:
    cdef Py_ssize_t i = _tbl_find(t, key)
    return t.slots[i].val if i >= 0 else -1


cdef inline void _tbl_put(Table* t, int64_t key, int32_t val) noexcept nogil:
    """Insert an absent key (room was reserved)."""
    cdef Py_ssize_t mask = t.cap - 1
    cdef Py_ssize_t i = _tbl_home(t, key)
    while t.slots[i].key != 0:
        i = (i + 1) & mask
    t.slots[i].key = key
    t.slots[i].val = val
    t.count += 1


cdef void _tbl_del_slot(Table* t, Py_ssize_t i) noexcept nogil:
    """Delete the entry in slot ``i`` (backward-shift deletion: no tombstones)."""
    cdef Py_ssize_t mask = t.cap - 1
    cdef Py_ssize_t j = i
    cdef Py_ssize_t h
    while True:
        j = (j + 1) & mask
        if t.slots[j].key == 0:
            break
        h = _tbl_home(t, t.slots[j].key)
        # the entry at j may stay if its home h lies cyclically in (i, j]
        if i <= j:
            if i < h <= j:
                continue
        elif i < h or h <= j:
            continue
        t.slots[i] = t.slots[j]
        i = j
    t.slots[i].key = 0
    t.count -= 1


cdef int _tbl_reserve(Table* t, Py_ssize_t extra) except -1:
    """Grow (rehash into twice the slots) so ``extra`` more keys keep the load at most
    ``TABLE_LOAD_EIGHTHS`` eighths."""
    if (t.count + extra) * 8 <= t.cap * TABLE_LOAD_EIGHTHS:
        return 0
    cdef Py_ssize_t new_cap = t.cap * 2
    while (t.count + extra) * 8 > new_cap * TABLE_LOAD_EIGHTHS:
        new_cap *= 2
    cdef Table old = t[0]
    _tbl_alloc(t, new_cap)
    cdef Py_ssize_t i
    for i in range(old.cap):
        if old.slots[i].key != 0:
            _tbl_put(t, old.slots[i].key, old.slots[i].val)
    _tbl_free(&old)
    return 0


# -- the order id table ---------------------------------------------------------------------------
# Open addressing like ``Table``, but a slot holds only a 32-bit tag (the low half of the
# id's hash, which also gives its home slot) and the order's index: the id itself is the
# order's ``order_id``, read (to confirm a tag match) from the order a lookup is after
# anyway. 8 bytes a slot instead of 16: half the memory, and a probe sequence stays in
# one cache line more often.

cdef inline uint32_t _id_hash(int64_t key) noexcept nogil:
    return <uint32_t>solvent_mix64(<uint64_t>key)


cdef inline Py_ssize_t _overflow_for(Py_ssize_t home_cap) noexcept nogil:
    """Overflow slots to give a home region of ``home_cap`` slots. Growing the overflow
    region copies the whole pool, so it starts at 1/8 of the home region: with at most
    home_cap / 2 resting orders and ids handed out in order, about a fifth of them end
    up displaced at steady state (measured: 17% at 1M, 16% at 100k)."""
    return home_cap // 8 if home_cap // 8 > MIN_OVERFLOW else MIN_OVERFLOW


cdef inline Py_ssize_t _home(int64_t order_id, Py_ssize_t cap) noexcept nogil:
    """The home slot of an order id in a home region of ``cap`` (a power of two) slots.
    Consecutive ids (the ledger hands them out increasing) get consecutive slots; the
    high bits are folded in so that ids like ``n << 32`` still spread. Any pattern only
    costs speed: orders whose home is taken live in the overflow region."""
    cdef uint64_t x = <uint64_t>order_id
    return <Py_ssize_t>((x + (x >> 24) + (x >> 48)) & <uint64_t>(cap - 1))


cdef int _ids_alloc(IdTable* t, Py_ssize_t cap) except -1:
    t.slots = <IdSlot*>solvent_big_alloc(<size_t>cap * sizeof(IdSlot))
    if t.slots == NULL:
        raise MemoryError("order book id table")
    memset(t.slots, 0xFF, <size_t>cap * sizeof(IdSlot))      # oi = -1 everywhere
    t.cap = cap
    t.count = 0
    return 0


cdef void _ids_free(IdTable* t) noexcept:
    solvent_big_free(t.slots)
    t.slots = NULL
    t.cap = 0
    t.count = 0


cdef inline Py_ssize_t _ids_find(const IdTable* t, const Order* O, int64_t key) noexcept nogil:
    """Slot of the resting order with id ``key``, or -1."""
    cdef Py_ssize_t mask = t.cap - 1
    cdef uint32_t h = _id_hash(key)
    cdef Py_ssize_t i = <Py_ssize_t>(h & <uint32_t>mask)
    cdef IdSlot s
    while True:
        s = t.slots[i]
        if s.oi < 0:
            return -1
        if s.tag == h and O[s.oi].order_id == key:
            return i
        i = (i + 1) & mask


cdef inline Py_ssize_t _ids_slot_of(const IdTable* t, int64_t key, int32_t oi) noexcept nogil:
    """Slot of resting order ``oi`` (whose id is ``key``)."""
    cdef Py_ssize_t mask = t.cap - 1
    cdef Py_ssize_t i = <Py_ssize_t>(_id_hash(key) & <uint32_t>mask)
    while t.slots[i].oi != oi:
        i = (i + 1) & mask
    return i


cdef inline void _ids_put_hash(IdTable* t, uint32_t h, int32_t oi) noexcept nogil:
    cdef Py_ssize_t mask = t.cap - 1
    cdef Py_ssize_t i = <Py_ssize_t>(h & <uint32_t>mask)
    while t.slots[i].oi >= 0:
        i = (i + 1) & mask
    t.slots[i].tag = h
    t.slots[i].oi = oi
    t.count += 1


cdef void _ids_del_slot(IdTable* t, Py_ssize_t i) noexcept nogil:
    """Delete the entry in slot ``i`` (backward-shift deletion, as ``_tbl_del_slot``)."""
    cdef Py_ssize_t mask = t.cap - 1
    cdef Py_ssize_t j = i
    cdef Py_ssize_t h
    while True:
        j = (j + 1) & mask
        if t.slots[j].oi < 0:
            break
        h = <Py_ssize_t>(t.slots[j].tag & <uint32_t>mask)
        if i <= j:
            if i < h <= j:
                continue
        elif i < h or h <= j:
            continue
        t.slots[i] = t.slots[j]
        i = j
    t.slots[i].oi = -1
    t.count -= 1


cdef int _ids_reserve(IdTable* t, Py_ssize_t extra) except -1:
    """Grow (rehash into twice the slots) so ``extra`` more ids keep the load at most
    ``TABLE_LOAD_EIGHTHS`` eighths."""
    if (t.count + extra) * 8 <= t.cap * TABLE_LOAD_EIGHTHS:
        return 0
    cdef Py_ssize_t new_cap = t.cap * 2
    while (t.count + extra) * 8 > new_cap * TABLE_LOAD_EIGHTHS:
        new_cap *= 2
    cdef IdTable old = t[0]
    _ids_alloc(t, new_cap)
    cdef Py_ssize_t i
    for i in range(old.cap):
        if old.slots[i].oi >= 0:
            _ids_put_hash(t, old.slots[i].tag, old.slots[i].oi)
    _ids_free(&old)
    return 0


# -- the treap of levels (one per side) ---------------------------------------------------------

cdef inline void _set_child(Level* L, int32_t* root, int32_t parent, int32_t old,
                            int32_t new) noexcept nogil:
    """Make ``new`` take ``old``'s place under ``parent`` (the root if ``parent`` is -1);
    ``new``'s own parent link is the caller's."""
    if parent < 0:
        root[0] = new
    elif L[parent].left == old:
        L[parent].left = new
    else:
        L[parent].right = new


cdef inline void _rotate_up(Level* L, int32_t* root, int32_t x) noexcept nogil:
    """Rotate node ``x`` above its parent (in-order unchanged; parent links kept)."""
    cdef int32_t p = L[x].parent
    cdef int32_t g = L[p].parent
    cdef int32_t b
    if L[p].left == x:
        b = L[x].right
        L[p].left = b
        L[x].right = p
    else:
        b = L[x].left
        L[p].right = b
        L[x].left = p
    if b >= 0:
        L[b].parent = p
    L[p].parent = x
    L[x].parent = g
    _set_child(L, root, g, p, x)


cdef void _treap_insert(Level* L, int32_t* root, int32_t x, int32_t pred,
                        int32_t succ) noexcept nogil:
    """Link a new node ``x`` whose in-order neighbours are ``pred`` and ``succ`` (-1 at an
    end): as a leaf beside one of them (pred's right or succ's left is free, as they are
    adjacent), then up by rotations while its priority beats its parent's (expected
    fewer than 2: O(1), not the tree's depth)."""
    L[x].left = -1
    L[x].right = -1
    if pred >= 0 and L[pred].right < 0:
        L[pred].right = x
        L[x].parent = pred
    elif succ >= 0:
        L[succ].left = x
        L[x].parent = succ
    else:
        L[x].parent = -1
        root[0] = x
        return
    while L[x].parent >= 0 and L[L[x].parent].prio < L[x].prio:
        _rotate_up(L, root, x)


cdef void _treap_remove(Level* L, int32_t* root, int32_t x) noexcept nogil:
    """Unlink node ``x``: down by rotations (its higher-priority child goes up, which
    keeps heap order; expected fewer than 2) until it has at most one child, which then
    takes its place."""
    cdef int32_t l, r, child, p
    while True:
        l = L[x].left
        r = L[x].right
        if l < 0 or r < 0:
            break
        _rotate_up(L, root, l if L[l].prio > L[r].prio else r)
    child = l if l >= 0 else r
    p = L[x].parent
    if child >= 0:
        L[child].parent = p
    _set_child(L, root, p, x, child)


cdef Py_ssize_t _treap_check(Level* L, int32_t t, int64_t lo, int64_t hi, int side) except -2:
    """Count the nodes of a treap, checking key order, heap order and side."""
    if t < 0:
        return 0
    if not (lo < L[t].key < hi) or L[t].side != side:
        raise AssertionError("treap order broken")
    if ((L[t].left >= 0 and L[L[t].left].parent != t)
            or (L[t].right >= 0 and L[L[t].right].parent != t)):
        raise AssertionError("treap parent links broken")
    if L[t].left >= 0 and L[L[t].left].prio > L[t].prio:
        raise AssertionError("treap heap order broken")
    if L[t].right >= 0 and L[L[t].right].prio > L[t].prio:
        raise AssertionError("treap heap order broken")
    return (1 + _treap_check(L, L[t].left, lo, L[t].key, side)
            + _treap_check(L, L[t].right, L[t].key, hi, side))


# -- boundary helpers ---------------------------------------------------------------------------

cdef inline int _need_int(object v) except -1:
    if not PyLong_CheckExact(v):
        raise TypeError(f"expected an int, got {type(v).__name__}")
    return 0


cdef inline int64_t _i64(object v) except? -2:
    """An exact int as int64; one that does not fit becomes -1 (fails every range check
    the same way the twin's unbounded int does)."""
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow != 0:
        return -1
    return x


cdef inline int64_t _key(int64_t side, int64_t price) noexcept nogil:
    return -price if side == BUY else price


cdef inline bint _crosses(int64_t side, bint has_limit, int64_t limit, int64_t lp) noexcept nogil:
    if not has_limit:
        return True
    return lp <= limit if side == BUY else lp >= limit


cdef object _column(object col):
    if isinstance(col, _pyarray.array) and col.typecode == "q":
        return col
    return _pyarray.array("q", col)


@cython.final
cdef class OrderBook:
    """The resting orders of one market, matched by price-time priority."""

    def __cinit__(self, *args, **kwargs):
        self._ord = NULL
        self._ovf = NULL
        self._lvl = NULL
        self._ev = NULL
        self._ids.slots = NULL
        self._prices.slots = NULL

    def __init__(self, max_orders=DEFAULT_MAX_ORDERS):
        _need_int(max_orders)
        if not 1 <= max_orders <= MAX_ORDERS_LIMIT:
            raise ValueError(f"max_orders must be in 1..{MAX_ORDERS_LIMIT}")
        if self._ord != NULL:
            raise RuntimeError("OrderBook.__init__ called twice")
        self._max_orders = max_orders
        self._home_max = 1
        while self._home_max < max_orders:
            self._home_max *= 2
        self._home_cap = MIN_POOL if self._home_max > MIN_POOL else self._home_max
        self._ord_cap = self._home_cap + _overflow_for(self._home_cap)
        self._ord = <Order*>solvent_big_alloc(<size_t>self._ord_cap * sizeof(Order))
        self._ovf = <uint8_t*>solvent_big_alloc(<size_t>self._home_cap)
        self._lvl_cap = 64
        self._lvl = <Level*>solvent_big_alloc(<size_t>self._lvl_cap * sizeof(Level))
        self._ev_cap = 64 * REC
        self._ev = <int64_t*>PyMem_RawMalloc(<size_t>self._ev_cap * sizeof(int64_t))
        self._hint_len = HINT_EPOCH       # process_many's hints: on until a trial says off
        if self._ord == NULL or self._lvl == NULL or self._ev == NULL or self._ovf == NULL:
            raise MemoryError("order book")
        memset(self._ord, 0, <size_t>self._home_cap * sizeof(Order))     # qty 0: free
        memset(self._ovf, 0, <size_t>self._home_cap)
        _ids_alloc(&self._ids, MIN_TABLE)
        _tbl_alloc(&self._prices, 256)
        self._ord_hw = self._home_cap
        self._ord_free = -1
        self._lvl_hw = 0
        self._lvl_free = -1
        self._best[0] = self._best[1] = -1
        self._root[0] = self._root[1] = -1
        self._nlev[0] = self._nlev[1] = 0
        self._n = 0
        self._rng = 2463534242u
        self._ev_len = 0
        self._row = 0

    def __dealloc__(self):
        solvent_big_free(self._ord)
        solvent_big_free(self._ovf)
        solvent_big_free(self._lvl)
        PyMem_RawFree(self._ev)
        _ids_free(&self._ids)
        _tbl_free(&self._prices)

    # -- memory ------------------------------------------------------------------------------

    cdef inline int _reserve(self) except -1:
        """Room for one more order, one more level and one more key per table, so the
        mutation that follows cannot fail. Growing the home region moves every order:
        no order index may be held across this call. (Inline: on nearly every row
        nothing needs to grow, and that is a handful of compares; ``_grow_for_order``
        does the growing.)"""
        if (((self._n + 1) * 2 <= self._home_cap or self._home_cap >= self._home_max)
                and (self._ord_free >= 0 or self._ord_hw < self._ord_cap)
                and (self._ids.count + 1) * 8 <= self._ids.cap * TABLE_LOAD_EIGHTHS
                and (self._lvl_free >= 0 or self._lvl_hw < self._lvl_cap)
                and (self._prices.count + 1) * 8 <= self._prices.cap * TABLE_LOAD_EIGHTHS):
            return 0
        return self._grow_for_order()

    cdef int _grow_for_order(self) except -1:
        """What ``_reserve`` found short: grow it (each step checks its own need)."""
        cdef Py_ssize_t over, cap
        cdef void* p
        if (self._n + 1) * 2 > self._home_cap and self._home_cap < self._home_max:
            self._grow_home(self._home_cap * 2)
        if self._ord_free < 0 and self._ord_hw >= self._ord_cap:
            over = self._ord_cap - self._home_cap
            cap = over * 2
            if cap > self._max_orders:
                cap = self._max_orders
            if cap <= over:
                cap = over + 1
            cap += self._home_cap
            p = solvent_big_grow(self._ord, <size_t>self._ord_hw * sizeof(Order),
                                 <size_t>cap * sizeof(Order))
            if p == NULL:
                raise MemoryError("order pool")
            self._ord = <Order*>p
            self._ord_cap = cap
        _ids_reserve(&self._ids, 1)
        return self._grow_for_level()

    cdef inline int _reserve_levels(self) except -1:
        """Room for one more level (all an amend needs: it moves no order); inline, as
        ``_reserve``, with ``_grow_for_level`` doing the growing."""
        if ((self._lvl_free >= 0 or self._lvl_hw < self._lvl_cap)
                and (self._prices.count + 1) * 8 <= self._prices.cap * TABLE_LOAD_EIGHTHS):
            return 0
        return self._grow_for_level()

    cdef int _grow_for_level(self) except -1:
        """What ``_reserve_levels`` found short: grow it."""
        cdef Py_ssize_t cap
        cdef void* p
        if self._lvl_free < 0 and self._lvl_hw >= self._lvl_cap:
            cap = self._lvl_cap * 2
            p = solvent_big_grow(self._lvl, <size_t>self._lvl_hw * sizeof(Level),
                                 <size_t>cap * sizeof(Level))
            if p == NULL:
                raise MemoryError("level pool")
            self._lvl = <Level*>p
            self._lvl_cap = cap
        _tbl_reserve(&self._prices, 1)
        return 0

    cdef int _grow_home(self, Py_ssize_t cap) except -1:
        """Double the home region. Every order moves: to its home in the bigger region
        (always free for the orders at home now: ids that share a home there shared one
        before), else to the compacted overflow region; then the queue links and the
        level heads and tails are rewritten through an old -> new index map. O(resting
        orders) like a hash table's rehash, and at most log2(max_orders) times a book."""
        cdef Order* old = self._ord
        cdef Py_ssize_t old_home = self._home_cap
        cdef Py_ssize_t old_hw = self._ord_hw
        cdef Py_ssize_t over_cap = self._ord_cap - old_home   # the overflow count only drops
        if over_cap < _overflow_for(cap):
            over_cap = _overflow_for(cap)
        cdef IdTable ids
        _ids_alloc(&ids, self._ids.cap)
        cdef Order* O = <Order*>solvent_big_alloc(<size_t>(cap + over_cap) * sizeof(Order))
        cdef uint8_t* ovf = <uint8_t*>solvent_big_alloc(<size_t>cap)
        cdef int32_t* remap = <int32_t*>PyMem_RawMalloc(<size_t>old_hw * sizeof(int32_t))
        if O == NULL or ovf == NULL or remap == NULL:
            solvent_big_free(O)
            solvent_big_free(ovf)
            PyMem_RawFree(remap)
            _ids_free(&ids)
            raise MemoryError("order pool")
        memset(O, 0, <size_t>cap * sizeof(Order))
        memset(ovf, 0, <size_t>cap)
        cdef Py_ssize_t hw = cap
        cdef Py_ssize_t oi, h, ni
        for oi in range(old_hw):     # the home region first, then the overflow region
            if old[oi].qty == 0:
                continue
            h = _home(old[oi].order_id, cap)
            if O[h].qty == 0:
                ni = h
            else:
                ni = hw
                hw += 1
                _ids_put_hash(&ids, _id_hash(old[oi].order_id), <int32_t>ni)
                if ovf[h] != 255:
                    ovf[h] += 1
            O[ni] = old[oi]
            remap[oi] = <int32_t>ni
        for oi in range(hw):
            if O[oi].qty != 0:
                if O[oi].prev >= 0:
                    O[oi].prev = remap[O[oi].prev]
                if O[oi].next >= 0:
                    O[oi].next = remap[O[oi].next]
        cdef Level* L = self._lvl
        for oi in range(self._lvl_hw):
            if L[oi].side >= 0:                      # a level in use (never empty)
                L[oi].head = remap[L[oi].head]
                L[oi].tail = remap[L[oi].tail]
        PyMem_RawFree(remap)
        solvent_big_free(old)
        solvent_big_free(self._ovf)
        _ids_free(&self._ids)
        self._ord = O
        self._ovf = ovf
        self._ids = ids
        self._home_cap = cap
        self._ord_cap = cap + over_cap
        self._ord_hw = hw
        self._ord_free = -1
        return 0

    cdef int _ev_grow(self) except -1:
        """Double the room for event records: the book's own buffer, or in
        ``process_many`` the caller's array (its length counts the room until the call
        ends, when it is set to the items written)."""
        cdef void* p
        cdef carray.array arr
        if self._ev_arr is None:
            p = PyMem_RawRealloc(self._ev, <size_t>(self._ev_cap * 2) * sizeof(int64_t))
            if p == NULL:
                raise MemoryError("order book event buffer")
            self._ev = <int64_t*>p
        else:
            arr = <carray.array>self._ev_arr
            carray.resize(arr, self._ev_base + self._ev_cap * 2)   # MemoryError: unchanged
            self._ev = <int64_t*>arr.data.as_voidptr + self._ev_base
        self._ev_cap *= 2
        return 0

    cdef inline int _emit(self, int64_t kind, int64_t a, int64_t b, int64_t acct, int64_t price,
                          int64_t qty, int64_t rem) except -1:
        cdef int64_t* r
        if self._ev_len + REC > self._ev_cap:
            self._ev_grow()
        r = self._ev + self._ev_len
        r[0] = self._row
        r[1] = kind
        r[2] = a
        r[3] = b
        r[4] = acct
        r[5] = price
        r[6] = qty
        r[7] = rem
        self._ev_len += REC
        return 0

    # -- levels -----------------------------------------------------------------------------

    cdef int32_t _level_for(self, int64_t side, int64_t price) noexcept:
        """The level of ``price`` on ``side``, created (and linked in order) if absent."""
        cdef Level* L = self._lvl
        cdef int64_t key = _key(side, price)
        cdef int32_t li = _tbl_get(&self._prices, key)
        if li >= 0:
            return li
        if self._lvl_free >= 0:
            li = self._lvl_free
            self._lvl_free = L[li].next
        else:
            li = <int32_t>self._lvl_hw
            self._lvl_hw += 1
        cdef Level* v = &L[li]
        v.key = key
        v.price = price
        v.total = 0
        v.count = 0
        v.head = -1
        v.tail = -1
        v.prio = solvent_xorshift32(&self._rng)
        v.side = <int32_t>side
        # its neighbours in price order: a new level is most often near the touch, so walk
        # the sorted list from the best (a few levels, hot in cache); past LEVEL_WALK steps,
        # search the treap from the root instead (O(log levels), reads only)
        cdef int32_t pred = -1
        cdef int32_t nxt = self._best[side]
        cdef int steps = 0
        while nxt >= 0 and L[nxt].key < key and steps < LEVEL_WALK:
            pred = nxt
            nxt = L[nxt].next
            steps += 1
        cdef int32_t t
        if nxt >= 0 and L[nxt].key < key:
            pred = -1
            t = self._root[side]
            while t >= 0:
                if L[t].key < key:
                    pred = t
                    t = L[t].right
                else:
                    t = L[t].left
            nxt = L[pred].next
        _treap_insert(L, &self._root[side], li, pred, nxt)
        if pred < 0:
            self._best[side] = li
        else:
            L[pred].next = li
        v.prev = pred
        v.next = nxt
        if nxt >= 0:
            L[nxt].prev = li
        _tbl_put(&self._prices, key, li)
        self._nlev[side] += 1
        return li

    cdef void _level_drop(self, int32_t li) noexcept:
        """Remove an empty level from its side."""
        cdef Level* L = self._lvl
        cdef Level* v = &L[li]
        cdef int32_t side = v.side
        _treap_remove(L, &self._root[side], li)
        if v.prev >= 0:
            L[v.prev].next = v.next
        else:
            self._best[side] = v.next
        if v.next >= 0:
            L[v.next].prev = v.prev
        _tbl_del_slot(&self._prices, _tbl_find(&self._prices, v.key))
        self._nlev[side] -= 1
        v.next = self._lvl_free
        v.side = -1
        self._lvl_free = li

    # -- orders -------------------------------------------------------------------------------

    cdef inline void _append(self, int32_t oi, int32_t li) noexcept:
        """Put order ``oi`` at the back of level ``li``."""
        cdef Order* o = &self._ord[oi]
        cdef Level* v = &self._lvl[li]
        o.level = li
        o.prev = v.tail
        o.next = -1
        if v.tail >= 0:
            self._ord[v.tail].next = oi
        else:
            v.head = oi
        v.tail = oi
        v.count += 1
        v.total += o.qty

    cdef inline void _unlink(self, int32_t oi) noexcept:
        """Take order ``oi`` out of its level's queue (dropping the level if emptied)."""
        cdef Order* o = &self._ord[oi]
        cdef int32_t li = o.level
        cdef Level* v = &self._lvl[li]
        if o.prev >= 0:
            self._ord[o.prev].next = o.next
        else:
            v.head = o.next
        if o.next >= 0:
            self._ord[o.next].prev = o.prev
        else:
            v.tail = o.prev
        v.count -= 1
        v.total -= o.qty
        if v.count == 0:
            self._level_drop(li)

    cdef int32_t _rest(self, int64_t order_id, int64_t account, int64_t side, int64_t price,
                       int64_t qty) noexcept:
        """A new resting order at the back of its level (room was reserved): in its home
        slot if that is free, else in the overflow region (and the id table)."""
        cdef Py_ssize_t h = _home(order_id, self._home_cap)
        cdef int32_t oi
        if self._ord[h].qty == 0:
            oi = <int32_t>h
        else:
            if self._ord_free >= 0:
                oi = self._ord_free
                self._ord_free = self._ord[oi].next
                if self._ord_free >= 0:          # the next displaced order goes there
                    solvent_prefetch(&self._ord[self._ord_free])
            else:
                oi = <int32_t>self._ord_hw
                self._ord_hw += 1
            _ids_put_hash(&self._ids, _id_hash(order_id), oi)
            if self._ovf[h] != 255:              # 255 sticks: "look in the id table"
                self._ovf[h] += 1
        cdef Order* o = &self._ord[oi]
        o.order_id = order_id
        o.qty = qty
        o.account = account
        self._append(oi, self._level_for(side, price))
        self._n += 1
        return oi

    cdef void _remove(self, int32_t oi) noexcept:
        """Take order ``oi`` out of the book and free its slot."""
        cdef Order* o = &self._ord[oi]
        cdef Py_ssize_t h
        self._unlink(oi)
        if oi >= self._home_cap:
            _ids_del_slot(&self._ids, _ids_slot_of(&self._ids, o.order_id, oi))
            h = _home(o.order_id, self._home_cap)
            if self._ovf[h] != 255:
                self._ovf[h] -= 1
            o.next = self._ord_free
            self._ord_free = oi
        o.qty = 0                    # marks the slot free
        self._n -= 1

    cdef inline int32_t _find(self, int64_t order_id) noexcept:
        """The resting order with this id, or -1: its home slot (one cache line), else,
        if orders of that home live in the overflow region, the id table."""
        if order_id <= 0:
            return -1
        cdef Py_ssize_t h = _home(order_id, self._home_cap)
        if self._ord[h].order_id == order_id and self._ord[h].qty != 0:
            return <int32_t>h
        if self._ovf[h] == 0:
            return -1
        cdef Py_ssize_t i = _ids_find(&self._ids, self._ord, order_id)
        return self._ids.slots[i].oi if i >= 0 else -1

    cdef inline void _prefetch_price(self, int64_t side, int64_t price) noexcept:
        """The price table slot of a limit row's price (a hint only; only for a big
        table, see PRICE_PREFETCH_MIN)."""
        if (side == BUY or side == SELL) and 1 <= price <= MAX_PRICE_TICKS:
            solvent_prefetch(&self._prices.slots[_tbl_home(&self._prices, _key(side, price))])

    cdef inline void _prefetch_row(self, int64_t op, int64_t order_id, int64_t qty, int64_t price,
                                   int stage) noexcept:
        """Software pipelining of ``process_many`` (a hint only: it changes nothing),
        which skips every hint while the home region is under ``PREFETCH_MIN_HOME``
        slots: a pool that small stays in cache, and there the hints only cost time. Past
        it, ``process_many`` runs them while a timed trial finds them faster (they cost
        time, too, when a big book's rows touch only recent orders).
        Stage 0: the order id's home slot (where a new order rests, and where a cancel or
        amend usually finds its order); stage 1, for a cancel or amend whose order is at
        home: its level, and its queue neighbours unless the row is an amend that keeps
        its place (``qty`` and ``price`` are the row's); for one in the overflow region,
        its id table slot; for a limit order whose home is taken, the id table slot it
        would rest in; stage 2: an order in the overflow region, and for an amend at home
        what it touches next: the level's tail for a raise that goes to the back, the new
        price's table slot for a move. (Measured slower: prefetching the level and tail
        of limit orders, and the first makers a taker will meet. A limit row's price
        table slot is prefetched by ``_prefetch_price``, only once the table outgrows L1:
        on a small table it only cost time.)"""
        if order_id <= 0:
            return
        cdef Py_ssize_t h = _home(order_id, self._home_cap)
        cdef Order* o = &self._ord[h]
        if stage == 0:
            solvent_prefetch(o)
            return
        if op == OP_LIMIT:
            if stage == 1 and o.qty != 0 and o.order_id != order_id:
                # its home is taken: should it rest, it goes in the id table
                solvent_prefetch(&self._ids.slots[_id_hash(order_id) & <uint32_t>(self._ids.cap - 1)])
            return
        if op != OP_CANCEL and op != OP_AMEND:
            return
        cdef Level* v
        if o.order_id == order_id and o.qty != 0:
            if stage == 1:
                solvent_prefetch(&self._lvl[o.level])
                if op == OP_AMEND and price == 0 and (qty <= o.qty or o.next < 0):
                    return           # keeps its place: no queue neighbour is written
                if o.prev >= 0:
                    solvent_prefetch(&self._ord[o.prev])
                if o.next >= 0:
                    solvent_prefetch(&self._ord[o.next])
            elif stage == 2 and op == OP_AMEND:
                v = &self._lvl[o.level]          # prefetched at stage 1
                if price == 0:
                    if qty > o.qty and o.next >= 0 and v.tail >= 0:
                        solvent_prefetch(&self._ord[v.tail])   # a raise goes behind it
                elif 1 <= price <= MAX_PRICE_TICKS and price != v.price:
                    solvent_prefetch(      # a move: its new level's table slot
                        &self._prices.slots[_tbl_home(&self._prices, _key(v.side, price))])
            return
        cdef uint32_t t = _id_hash(order_id)
        cdef Py_ssize_t mask = self._ids.cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(t & <uint32_t>mask)
        cdef int32_t oi
        if stage == 1:
            solvent_prefetch(&self._ids.slots[i])
            return
        while True:                  # the first tag match (a wrong one only wastes a hint)
            oi = self._ids.slots[i].oi
            if oi < 0:
                return
            if self._ids.slots[i].tag == t:
                break
            i = (i + 1) & mask
        solvent_prefetch(&self._ord[oi])

    # -- the commands, in C ---------------------------------------------------------------------

    cdef int _check_order(self, int64_t order_id, int64_t account, int64_t side, int64_t price,
                          int64_t qty, int64_t kind, int64_t tif, bint post, int64_t stp,
                          int64_t budget) noexcept:
        if not 1 <= order_id <= MAX_ORDER_ID:
            return INVALID_ORDER_ID
        if not 0 <= account <= MAX_ACCOUNT:
            return INVALID_ACCOUNT
        if (side != BUY and side != SELL) or (kind != LIMIT and kind != MARKET):
            return INVALID_PARAMS
        if tif < GTC or tif > FOK or stp < STP_NONE or stp > EXPIRE_BOTH:
            return INVALID_PARAMS
        if kind == LIMIT:
            if budget != 0 or (post and tif != GTC):
                return INVALID_PARAMS
            if not 1 <= price <= MAX_PRICE_TICKS:
                return INVALID_PRICE
            if not 1 <= qty <= MAX_QTY_LOTS:
                return INVALID_QTY
        else:
            if tif == GTC or post:
                return INVALID_PARAMS
            if budget != 0 and (side != BUY or tif != IOC):
                return INVALID_PARAMS
            if price != 0:
                return INVALID_PRICE
            if budget == 0:
                if not 1 <= qty <= MAX_QTY_LOTS:
                    return INVALID_QTY
            elif qty != 0 or not 1 <= budget <= MAX_QUOTE_BUDGET:
                return INVALID_QTY
        if self._find(order_id) >= 0:
            return DUPLICATE_ORDER_ID
        return OK

    cdef bint _fillable(self, int64_t side, bint has_limit, int64_t limit, int64_t qty,
                        int64_t account, int64_t stp) noexcept:
        cdef int64_t need = qty
        cdef int32_t li = self._best[1 - side]
        cdef int32_t mi
        cdef Order* O = self._ord
        while li >= 0:
            if not _crosses(side, has_limit, limit, self._lvl[li].price):
                return False
            mi = self._lvl[li].head
            while mi >= 0:
                if stp != STP_NONE and O[mi].account == account:
                    if stp != EXPIRE_MAKER:
                        return False
                else:
                    need -= O[mi].qty
                    if need <= 0:
                        return True
                mi = O[mi].next
            li = self._lvl[li].next
        return False

    cdef int _submit(self, int64_t order_id, int64_t account, int64_t side, int64_t price,
                     int64_t qty, int64_t kind, int64_t tif, bint post, int64_t stp,
                     int64_t budget) except -1:
        cdef int code = self._check_order(order_id, account, side, price, qty, kind, tif, post,
                                          stp, budget)
        if code:
            return code
        cdef bint has_limit = kind == LIMIT
        cdef int64_t opp = 1 - side
        if has_limit and tif == GTC and self._n >= self._max_orders:
            return BOOK_FULL
        if post and self._best[opp] >= 0 and _crosses(side, has_limit, price,
                                                       self._lvl[self._best[opp]].price):
            return POST_ONLY_WOULD_TAKE
        if tif == FOK and not self._fillable(side, has_limit, price, qty, account, stp):
            return FOK_UNFILLABLE
        self._reserve()
        # -- from here on the order is accepted ----------------------------------------------
        cdef bint by_budget = budget != 0
        cdef int64_t remaining = qty
        cdef int64_t filled = 0
        cdef int64_t can, q, lp
        cdef bint stopped = False
        cdef int32_t li, mi
        cdef Order* m
        while (budget > 0) if by_budget else (remaining > 0):
            li = self._best[opp]
            if li < 0:
                break
            lp = self._lvl[li].price
            if has_limit and (lp > price if side == BUY else lp < price):
                break
            can = budget // lp if by_budget else remaining
            if can == 0:
                break
            mi = self._lvl[li].head
            m = &self._ord[mi]
            if stp != STP_NONE and m.account == account:
                if stp == EXPIRE_TAKER:
                    stopped = True
                    break
                self._emit(EV_MAKER_EXPIRED, order_id, m.order_id, m.account, lp, m.qty, 0)
                self._remove(mi)
                if stp == EXPIRE_BOTH:
                    stopped = True
                    break
                continue
            q = can if can < m.qty else m.qty
            m.qty -= q
            self._lvl[li].total -= q
            filled += q
            if by_budget:
                budget -= q * lp
            else:
                remaining -= q
            self._emit(EV_FILL, order_id, m.order_id, m.account, lp, q, m.qty)
            if m.qty == 0:
                self._remove(mi)
        cdef int64_t unfilled = 0 if by_budget else remaining
        cdef bint done = (budget == 0) if by_budget else (remaining == 0)
        cdef int64_t final
        if stopped:
            final = EV_STP_EXPIRED
        elif done:
            final = EV_FILLED
        elif has_limit and tif == GTC:
            final = EV_RESTING
            self._rest(order_id, account, side, price, remaining)
        else:
            final = EV_EXPIRED
        self._emit(final, order_id, 0, account, price, filled, unfilled)
        return OK

    cdef int _cancel(self, int64_t order_id) except -1:
        cdef int32_t oi = self._find(order_id)
        if oi < 0:
            return UNKNOWN_ORDER
        cdef Order* o = &self._ord[oi]
        self._emit(EV_CANCELED, order_id, 0, o.account, self._lvl[o.level].price, o.qty, 0)
        self._remove(oi)
        return OK

    cdef int _amend(self, int64_t order_id, int64_t qty, int64_t price) except -1:
        """``qty``/``price`` 0: unchanged; anything else must be in range."""
        if qty == 0 and price == 0:
            return INVALID_PARAMS
        if qty != 0 and not 1 <= qty <= MAX_QTY_LOTS:
            return INVALID_QTY
        if price != 0 and not 1 <= price <= MAX_PRICE_TICKS:
            return INVALID_PRICE
        cdef int32_t oi = self._find(order_id)
        if oi < 0:
            return UNKNOWN_ORDER
        cdef Order* o = &self._ord[oi]
        cdef Level* v = &self._lvl[o.level]
        cdef int64_t side = v.side
        cdef int64_t old_price = v.price
        cdef int64_t old_qty = o.qty
        cdef int64_t new_qty = qty if qty != 0 else old_qty
        cdef int64_t new_price = price if price != 0 else old_price
        cdef int32_t ob
        if new_price != old_price:
            ob = self._best[1 - side]
            if ob >= 0 and _crosses(side, True, new_price, self._lvl[ob].price):
                return AMEND_WOULD_CROSS
        self._reserve_levels()                  # an amend moves no order
        o = &self._ord[oi]
        cdef int32_t li = o.level
        if new_price == old_price and (new_qty <= old_qty or self._lvl[li].tail == oi):
            self._lvl[li].total += new_qty - old_qty
            o.qty = new_qty          # keeps its place (a raise at the back stays there)
        elif new_price == old_price:
            self._unlink(oi)         # the level keeps its other orders
            o.qty = new_qty
            self._append(oi, li)     # the back of the level
        else:
            self._unlink(oi)
            o.qty = new_qty
            self._append(oi, self._level_for(side, new_price))   # the back of the level
        self._emit(EV_AMENDED, order_id, old_price, o.account, new_price, new_qty, old_qty)
        return OK

    # -- the Python API ---------------------------------------------------------------------------

    cdef list _events(self):
        cdef list out = []
        cdef Py_ssize_t i
        cdef int64_t* r
        for i in range(0, self._ev_len, REC):
            r = self._ev + i
            out.append((r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
        return out

    def submit(self, order_id, account, side, price_ticks, qty_lots, *, kind=LIMIT, tif=GTC,
               post_only=False, stp=STP_NONE, quote_budget=0):
        """Match an incoming order, then rest, fill or expire it (see twin.py)."""
        _need_int(order_id)
        _need_int(account)
        _need_int(side)
        _need_int(price_ticks)
        _need_int(qty_lots)
        _need_int(kind)
        _need_int(tif)
        _need_int(stp)
        _need_int(quote_budget)
        if not PyBool_Check(post_only) and not PyLong_CheckExact(post_only):
            raise TypeError(f"post_only must be a bool, got {type(post_only).__name__}")
        cdef bint post = bool(post_only)
        self._ev_len = 0
        self._row = 0
        cdef int code = self._submit(_i64(order_id), _i64(account), _i64(side), _i64(price_ticks),
                                     _i64(qty_lots), _i64(kind), _i64(tif), post, _i64(stp),
                                     _i64(quote_budget))
        if code:
            return code, []
        return code, self._events()

    def cancel(self, order_id):
        """Remove a resting order: ``(OK, remaining qty removed)`` or ``(UNKNOWN_ORDER, 0)``."""
        _need_int(order_id)
        self._ev_len = 0
        cdef int code = self._cancel(_i64(order_id))
        if code:
            return code, 0
        return code, self._ev[6]

    def amend(self, order_id, qty_lots=None, price_ticks=None):
        """Change a resting order's remaining qty and/or price (see twin.py)."""
        _need_int(order_id)
        cdef int64_t q = 0
        cdef int64_t p = 0
        if qty_lots is not None:
            _need_int(qty_lots)
            q = _i64(qty_lots)
            if q == 0:
                q = -1            # an explicit 0 is out of range, not "unchanged"
        if price_ticks is not None:
            _need_int(price_ticks)
            p = _i64(price_ticks)
            if p == 0:
                p = -1
        self._ev_len = 0
        return self._amend(_i64(order_id), q, p)

    def process_many(self, op, order_id, account, side, price, qty, flags, out, events):
        """Run one command per row (see "Bulk path" in twin.py); the loop runs in C.

        On a book past ``PREFETCH_MIN_HOME`` home slots the loop prefetches what rows
        ahead will touch (``_prefetch_row``) when that is faster: every epoch of
        ``HINT_EPOCH`` rows starts with a trial, ``HINT_TRIAL`` rows with the hints and as
        many without, timed with a monotonic clock, and the rest of the epoch runs the
        faster mode: the hints unless going without was more than 1/8 faster. After hints
        that won by more than a quarter the epoch is 4 times as long (a trial costs most
        where the hints matter most). A call too short for a trial keeps the last choice.
        The hints change nothing but timing: outputs, events and state never depend on
        the mode."""
        cols = [_column(col) for col in (op, order_id, account, side, price, qty, flags)]
        cdef Py_ssize_t n = len(cols[0])
        for col in cols:
            if len(col) != n:
                raise ValueError("process_many: columns must have equal lengths (out at least)")
        if len(out) < n:
            raise ValueError("process_many: columns must have equal lengths (out at least)")
        if not isinstance(events, _pyarray.array) or events.typecode != "q":
            raise TypeError("process_many: events must be an array('q')")
        events_can_grow(events, cols)    # the array is grown below without that check
        cdef const int64_t[::1] ops = cols[0]
        cdef const int64_t[::1] oids = cols[1]
        cdef const int64_t[::1] accts = cols[2]
        cdef const int64_t[::1] sides = cols[3]
        cdef const int64_t[::1] prices = cols[4]
        cdef const int64_t[::1] qtys = cols[5]
        cdef const int64_t[::1] flgs = cols[6]
        cdef unsigned char[:] ov = out
        cdef Py_ssize_t i
        cdef Py_ssize_t applied = 0
        cdef int64_t r, stop
        cdef Py_ssize_t start, end
        cdef int64_t t0 = 0
        cdef int64_t t_on = 0
        cdef int64_t t_off
        cdef bint hint
        cdef int code
        cdef int64_t o, f
        # events go straight into the caller's array (no copy at the end): its length
        # covers the room while the loop runs and is set to the items written after it.
        # Room for two events a row: the standard mix writes 1.4, and growing mid-call
        # is a realloc that may copy everything written so far
        cdef int64_t* own_ev = self._ev
        cdef Py_ssize_t own_cap = self._ev_cap
        cdef Py_ssize_t base = len(events)
        carray.resize(<carray.array>events, base + (2 * n + 64) * REC)
        self._ev_arr = events
        self._ev_base = base
        self._ev = <int64_t*>(<carray.array>events).data.as_voidptr + base
        self._ev_cap = (2 * n + 64) * REC
        self._ev_len = 0
        try:
            if self._hint_r <= 2 * HINT_TRIAL:   # a trial runs inside one call, or not at all
                self._hint_r = 0 if n >= 2 * HINT_TRIAL else 2 * HINT_TRIAL + 1
            i = 0
            while i < n:
                # the next run of rows in one hint mode, up to the next point of the epoch
                if self._home_cap < PREFETCH_MIN_HOME:
                    hint = False         # a small pool stays in cache: hints only cost time
                    end = n
                else:
                    r = self._hint_r
                    if r < HINT_TRIAL:                      # the trial's rows with hints
                        if r == HINT_WARM:
                            t0 = solvent_now_ns()
                        hint = True
                        stop = HINT_WARM if r < HINT_WARM else HINT_TRIAL
                    elif r < 2 * HINT_TRIAL:                # and as many without
                        if r == HINT_TRIAL:
                            t_on = solvent_now_ns() - t0
                        elif r == HINT_TRIAL + HINT_WARM:
                            t0 = solvent_now_ns()
                        hint = False
                        stop = (HINT_TRIAL + HINT_WARM if r < HINT_TRIAL + HINT_WARM
                                else 2 * HINT_TRIAL)
                    else:                                   # the rest: the faster mode
                        if r == 2 * HINT_TRIAL:
                            t_off = solvent_now_ns() - t0
                            # hints stay on unless going without is clearly faster;
                            # hints that win clearly are tried again 4 epochs later
                            self._hint_off = 8 * t_off < 7 * t_on
                            self._hint_len = 4 * HINT_EPOCH if 4 * t_off > 5 * t_on else HINT_EPOCH
                        hint = not self._hint_off
                        stop = self._hint_len
                    end = i + min(stop - r, n - i)
                    self._hint_r = r + (end - i) if r + (end - i) < self._hint_len else 0
                start = i
                for i in range(start, end):
                    self._row = i
                    if not hint:
                        pass
                    elif i + PREFETCH_0 < n:
                        self._prefetch_row(ops[i + PREFETCH_0], oids[i + PREFETCH_0], 0, 0, 0)
                        self._prefetch_row(ops[i + PREFETCH_1], oids[i + PREFETCH_1],
                                           qtys[i + PREFETCH_1], prices[i + PREFETCH_1], 1)
                        if ops[i + PREFETCH_1] == OP_LIMIT and self._prices.cap >= PRICE_PREFETCH_MIN:
                            self._prefetch_price(sides[i + PREFETCH_1], prices[i + PREFETCH_1])
                        self._prefetch_row(ops[i + PREFETCH_2], oids[i + PREFETCH_2],
                                           qtys[i + PREFETCH_2], prices[i + PREFETCH_2], 2)
                    elif i + PREFETCH_1 < n:
                        self._prefetch_row(ops[i + PREFETCH_1], oids[i + PREFETCH_1],
                                           qtys[i + PREFETCH_1], prices[i + PREFETCH_1], 1)
                        self._prefetch_row(ops[i + PREFETCH_2], oids[i + PREFETCH_2],
                                           qtys[i + PREFETCH_2], prices[i + PREFETCH_2], 2)
                    elif i + PREFETCH_2 < n:
                        self._prefetch_row(ops[i + PREFETCH_2], oids[i + PREFETCH_2],
                                           qtys[i + PREFETCH_2], prices[i + PREFETCH_2], 2)
                    o = ops[i]
                    if o == OP_LIMIT or o == OP_MARKET:
                        f = flgs[i]
                        if f & ~(<int64_t>FLAGS_ALL):
                            code = INVALID_PARAMS
                        elif o == OP_LIMIT:
                            code = self._submit(oids[i], accts[i], sides[i], prices[i], qtys[i], LIMIT,
                                                f & FLAG_TIF_MASK, (f & FLAG_POST_ONLY) != 0,
                                                f >> FLAG_STP_SHIFT, 0)
                        else:
                            code = self._submit(oids[i], accts[i], sides[i], 0, qtys[i], MARKET,
                                                f & FLAG_TIF_MASK, (f & FLAG_POST_ONLY) != 0,
                                                f >> FLAG_STP_SHIFT, prices[i])
                    elif o == OP_CANCEL:
                        code = self._cancel(oids[i])
                    elif o == OP_AMEND:
                        code = self._amend(oids[i], qtys[i], prices[i])
                    else:
                        code = INVALID_PARAMS
                    ov[i] = <unsigned char>code
                    if code == OK:
                        applied += 1
                i = end
        finally:
            solvent_set_len(events, base + self._ev_len)   # no reallocation: cannot fail
            self._ev = own_ev
            self._ev_cap = own_cap
            self._ev_arr = None
            self._ev_len = 0
        return applied

    # -- reads ----------------------------------------------------------------------------------

    @property
    def max_orders(self):
        return self._max_orders

    @property
    def n_orders(self):
        """Number of resting orders."""
        return self._n

    def __len__(self):
        return self._n

    def n_levels(self, side):
        """Number of price levels on ``side``."""
        _need_int(side)
        if side != BUY and side != SELL:
            raise ValueError("side must be BUY or SELL")
        return self._nlev[<int>side]

    def best_bid(self):
        return self._lvl[self._best[BUY]].price if self._best[BUY] >= 0 else None

    def best_ask(self):
        return self._lvl[self._best[SELL]].price if self._best[SELL] >= 0 else None

    cdef list _top(self, int side, Py_ssize_t levels):
        cdef list out = []
        cdef int32_t li = self._best[side]
        while li >= 0 and len(out) < levels:
            out.append((self._lvl[li].price, self._lvl[li].total))
            li = self._lvl[li].next
        return out

    def depth(self, levels):
        """Aggregated L2: the best ``levels`` levels per side as ``(price, total qty)``."""
        _need_int(levels)
        if levels < 0:
            raise ValueError("levels must be >= 0")
        cdef Py_ssize_t k = levels if levels < self._n + 1 else self._n + 1
        return self._top(BUY, k), self._top(SELL, k)

    def order(self, order_id):
        """``(account, side, price_ticks, remaining_lots)`` of a resting order, else None."""
        _need_int(order_id)
        cdef int32_t oi = self._find(_i64(order_id))
        if oi < 0:
            return None
        cdef Order* o = &self._ord[oi]
        return (o.account, self._lvl[o.level].side, self._lvl[o.level].price, o.qty)

    def orders_of(self, account):
        """The account's resting orders as ``(order_id, side, price_ticks, remaining_lots)``,
        by order id."""
        _need_int(account)
        cdef int64_t a = _i64(account)
        if a < 0:
            return []
        cdef list out = []
        cdef Order* o
        cdef Py_ssize_t oi
        for oi in range(self._ord_hw):      # a read, not on the matching path: O(slots)
            o = &self._ord[oi]
            if o.qty > 0 and o.account == a:
                out.append((o.order_id, self._lvl[o.level].side, self._lvl[o.level].price,
                            o.qty))
        out.sort()
        return out

    def level_orders(self, side, price_ticks):
        """The queue at one price: ``(order_id, account, remaining_lots)`` first in first."""
        _need_int(side)
        _need_int(price_ticks)
        if side != BUY and side != SELL:
            raise ValueError("side must be BUY or SELL")
        cdef int64_t p = _i64(price_ticks)
        cdef list out = []
        if p <= 0:
            return out
        cdef int32_t li = _tbl_get(&self._prices, _key(side, p))
        if li < 0:
            return out
        cdef int32_t oi = self._lvl[li].head
        while oi >= 0:
            out.append((self._ord[oi].order_id, self._ord[oi].account, self._ord[oi].qty))
            oi = self._ord[oi].next
        return out

    @property
    def allocated_bytes(self):
        """C memory held by this book (pools, tables, event buffer), in bytes."""
        return (self._ord_cap * sizeof(Order) + self._home_cap + self._lvl_cap * sizeof(Level)
                + self._ids.cap * sizeof(IdSlot) + self._prices.cap * sizeof(Slot)
                + self._ev_cap * sizeof(int64_t))

    # -- invariants and state transfer ------------------------------------------------------------

    def check_invariants(self):
        """Raise AssertionError if the book's structure is inconsistent."""
        cdef Order* O = self._ord
        cdef Level* L = self._lvl
        cdef Py_ssize_t seen = 0
        cdef Py_ssize_t levels, count
        cdef int side
        cdef int32_t li, prev_li, oi, prev_oi
        cdef int64_t total
        for side in range(2):
            levels = 0
            prev_li = -1
            li = self._best[side]
            while li >= 0:
                levels += 1
                if L[li].side != side or L[li].prev != prev_li or L[li].key != _key(side, L[li].price):
                    raise AssertionError(f"bad level {L[li].price}")
                if prev_li >= 0 and L[prev_li].key >= L[li].key:
                    raise AssertionError("levels out of order")
                if _tbl_get(&self._prices, L[li].key) != li:
                    raise AssertionError("level not indexed")
                total = 0
                count = 0
                prev_oi = -1
                oi = L[li].head
                while oi >= 0:
                    if O[oi].level != li or O[oi].prev != prev_oi or O[oi].qty <= 0:
                        raise AssertionError(f"order {O[oi].order_id} inconsistent")
                    if self._find(O[oi].order_id) != oi:
                        raise AssertionError(f"order {O[oi].order_id} not indexed")
                    total += O[oi].qty
                    count += 1
                    prev_oi = oi
                    oi = O[oi].next
                if L[li].tail != prev_oi or count != L[li].count or count == 0:
                    raise AssertionError(f"level {L[li].price}: queue links broken")
                if total != L[li].total:
                    raise AssertionError(f"level {L[li].price}: total != sum of orders")
                seen += count
                prev_li = li
                li = L[li].next
            if levels != self._nlev[side]:
                raise AssertionError("level count mismatch")
            if self._root[side] >= 0 and L[self._root[side]].parent != -1:
                raise AssertionError("treap root has a parent")
            if _treap_check(L, self._root[side], -INT64_MAX_, INT64_MAX_, side) != levels:
                raise AssertionError("treap and level list differ")
        if seen != self._n or seen > self._max_orders:
            raise AssertionError("order count mismatch")
        if self._prices.count != self._nlev[0] + self._nlev[1]:
            raise AssertionError("level index mismatch")
        if (self._prices.count * 8 > self._prices.cap * TABLE_LOAD_EIGHTHS
                or self._ids.count * 8 > self._ids.cap * TABLE_LOAD_EIGHTHS):
            raise AssertionError("a hash table is fuller than TABLE_LOAD_EIGHTHS allows")
        # a home slot holds an order of that home or nothing; an overflow slot is resting
        # (indexed by the id table, counted in its home's _ovf) or on the free list
        cdef Py_ssize_t i, h
        cdef Py_ssize_t resting = 0
        cdef Py_ssize_t over = 0
        over_of = {}
        for i in range(self._ord_hw):
            if O[i].qty == 0:
                continue
            resting += 1
            h = _home(O[i].order_id, self._home_cap)
            if i < self._home_cap:
                if h != i:
                    raise AssertionError(f"order {O[i].order_id} away from its home slot")
            else:
                over += 1
                over_of[h] = over_of.get(h, 0) + 1
        if resting != self._n or over != self._ids.count:
            raise AssertionError("order count mismatch")
        for i in range(self._home_cap):
            if self._ovf[i] != 255 and self._ovf[i] != over_of.get(i, 0):
                raise AssertionError(f"overflow count of home slot {i} is wrong")
        cdef Py_ssize_t free = 0
        oi = self._ord_free
        while oi >= 0:
            if oi < self._home_cap or O[oi].qty != 0 or free > self._ord_hw:
                raise AssertionError("free list broken")
            free += 1
            oi = O[oi].next
        if free + over != self._ord_hw - self._home_cap:
            raise AssertionError("order slots leaked")
        bid = self.best_bid()
        ask = self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise AssertionError(f"crossed book: bid {bid} >= ask {ask}")

    def export_state(self):
        """The whole book, queue order included (see twin.py)."""
        cdef list rows = []
        cdef int side
        cdef int32_t li, oi
        for side in range(2):
            li = self._best[side]
            while li >= 0:
                oi = self._lvl[li].head
                while oi >= 0:
                    rows.append((self._ord[oi].order_id, self._ord[oi].account, side,
                                 self._lvl[li].price, self._ord[oi].qty))
                    oi = self._ord[oi].next
                li = self._lvl[li].next
        return {"format": STATE_FORMAT, "max_orders": self._max_orders, "orders": rows}

    @classmethod
    def from_state(cls, state):
        """Rebuild a book from ``export_state()`` output; raise ValueError if it is not valid."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} state")
        cdef OrderBook book = cls(state["max_orders"])
        rows = state["orders"]
        if len(rows) > book._max_orders:
            raise ValueError("more orders than max_orders")
        for row in rows:
            order_id, account, side, price, qty = row
            for v in (order_id, account, side, price, qty):
                _need_int(v)
            if not (1 <= order_id <= MAX_ORDER_ID and 0 <= account <= MAX_ACCOUNT
                    and (side == BUY or side == SELL) and 1 <= price <= MAX_PRICE_TICKS
                    and 1 <= qty <= MAX_QTY_LOTS):
                raise ValueError(f"order {row!r} out of range")
            if book._find(order_id) >= 0:
                raise ValueError(f"duplicate order id {order_id}")
            book._reserve()
            book._rest(order_id, account, side, price, qty)
        bid = book.best_bid()
        ask = book.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise ValueError(f"crossed book: bid {bid} >= ask {ask}")
        return book
