# cython: language_level=3
"""The compiled balance core (``solvent._core``): a mirror of ``solvent/core/twin.py``.

``twin.py`` is the readable specification; this module implements the same
``BalanceTable`` state machine over C arrays so the hot path (``post_many``)
runs as a plain C loop. Every public method, every internal helper
(``_check_pair``, ``_post``, ``_check_single``) and every result code, check
order and exception is the twin's; read the two side by side. The
differential tests (``tests/test_core_differential.py``) hold both cores to
identical results.

Storage (all C, freed in ``__dealloc__``):

* per account: ``uint8 kind``, ``uint8 frozen``, ``int32 wallet_asset`` in
  growable arrays;
* per asset (an ``AssetBook``): ``int64 available[]`` and ``int64 held[]``
  indexed by account number and grown lazily (an account beyond an array's
  length reads as 0; arrays grow geometrically when written) plus
  ``int64 totals[3]`` (customer, company, custody).

Amounts and indices arriving from Python are range-checked in Python-object
space (``PyLong_AsLongLongAndOverflow``), so an amount that does not fit an
int64 gives ``INVALID_AMOUNT`` and an index that does not fit is simply
unknown -- nothing raises, exactly like the twin. Overflow never wraps: the
custody total of an asset is compared against ``INT64_MAX`` before anything is
applied, and every balance in that asset is bounded by it (see twin.py).

``post_many`` takes int64 buffers (``array('q')``, ``memoryview``, numpy
``int64``...) and a writable uint8 buffer (``bytearray``, ``array('B')``) and
runs in C. Columns that are not such buffers (plain lists, ``array('i')``...)
are still accepted and take the twin's per-item path, with the twin's results.
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc, PyMem_RawRealloc
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport INT32_MIN, INT64_MAX, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy, memset

from solvent.core import codes as c

cdef extern from *:
    """
    static inline int solvent_add_overflow(int64_t a, int64_t b, int64_t *r) {
        return __builtin_add_overflow(a, b, r);
    }
    """
    bint solvent_add_overflow(int64_t a, int64_t b, int64_t* r) noexcept nogil

cdef extern from *:
    """
    #define solvent_prefetch_read(p) __builtin_prefetch((const void*)(p), 0, 3)
    """
    void solvent_prefetch_read(const void* p) noexcept nogil

cdef extern from *:
    """
    #include <structmember.h>
    /* The offset of the object slot that ``descr`` (a member descriptor of an
       object-valued slot, as msgspec gives each Struct field) reads, or -1. */
    static Py_ssize_t solvent_slot_offset(PyObject *descr) {
        PyMemberDef *m;
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != T_OBJECT_EX || m->offset < (Py_ssize_t)sizeof(PyObject)) return -1;
        return m->offset;
    }
    /* The object in that slot of ``obj`` (borrowed; NULL when the slot is empty). */
    static inline PyObject *solvent_slot(PyObject *obj, Py_ssize_t offset) {
        return *(PyObject **)((char *)obj + offset);
    }
    """
    Py_ssize_t solvent_slot_offset(object descr)
    PyObject* solvent_slot(object obj, Py_ssize_t offset) noexcept


# The fields of a ``Transferred`` record that ``replay_transfers`` reads, in this order.
REPLAY_FIELDS = ("position", "time_ns", "ref", "memo", "from_account", "to_account", "asset",
                 "amount_minor", "actor")
cdef enum:
    F_POSITION = 0
    F_TIME_NS = 1
    F_REF = 2
    F_MEMO = 3
    F_FROM = 4
    F_TO = 5
    F_ASSET = 6
    F_AMOUNT = 7
    F_ACTOR = 8
    N_REPLAY_FIELDS = 9


cdef bint _replay_slots(object cls, Py_ssize_t* out) except -1:
    """``out[k]``: the slot offset of ``REPLAY_FIELDS[k]`` in instances of ``cls``, so that
    the replay loop reads each field straight from its slot instead of by name (generic
    attribute reads, a type lookup and a descriptor call each, took 14 % of an open's
    samples on the Intel host of docs/benchmarks.md). False
    when ``cls`` does not read its fields by plain object slots (then no record takes the
    loop: each goes through ``_apply_transfer``)."""
    cdef Py_ssize_t k, off
    if getattr(cls, "__getattribute__", None) is not object.__getattribute__:
        return False
    for k in range(N_REPLAY_FIELDS):
        name = REPLAY_FIELDS[k]
        for base in cls.__mro__:
            descr = base.__dict__.get(name)
            if descr is not None:
                break
        else:
            return False
        # a descriptor reads the layout of the class that made it (``__objclass__``):
        # one set on an unrelated class would point outside its instances (the
        # attribute read refuses it with TypeError; the loop must not read it)
        if not isinstance(cls, type) or not issubclass(cls, getattr(descr, "__objclass__", ())):
            return False
        off = solvent_slot_offset(descr)
        if off < 0:
            return False
        out[k] = off
    return True


cdef inline object _slot(object rec, Py_ssize_t offset):
    """The field in that slot of ``rec``; None for an empty slot (every caller's type
    check refuses None, and the record then takes the slow path)."""
    cdef PyObject* v = solvent_slot(rec, offset)
    if v == NULL:
        return None
    return <object>v


# Result codes, kinds and limits: the values of ``solvent.core.codes`` (checked
# against it at import time, below).
cdef enum:
    OK = 0
    INSUFFICIENT_FUNDS = 1
    ACCOUNT_FROZEN = 2
    ASSET_MISMATCH = 3
    OVERFLOW = 4
    INVALID_AMOUNT = 5
    UNKNOWN_ACCOUNT = 6
    UNKNOWN_ASSET = 7
    SAME_ACCOUNT = 8
    INSUFFICIENT_HELD = 9
    WRONG_KIND = 10
    COVERAGE = 11

cdef enum:
    KIND_CUSTOMER = 0
    KIND_COMPANY = 1
    KIND_WALLET = 2

cdef enum:
    MAX_ACCOUNTS = 1 << 24
    MAX_ASSETS = 1 << 10

cdef enum:
    MIN_ARRAY_LEN = 16


def _verify_constants():
    """Fail the import if the C constants above drift from ``codes.py``."""
    pairs = (
        (OK, c.OK), (INSUFFICIENT_FUNDS, c.INSUFFICIENT_FUNDS),
        (ACCOUNT_FROZEN, c.ACCOUNT_FROZEN), (ASSET_MISMATCH, c.ASSET_MISMATCH),
        (OVERFLOW, c.OVERFLOW), (INVALID_AMOUNT, c.INVALID_AMOUNT),
        (UNKNOWN_ACCOUNT, c.UNKNOWN_ACCOUNT), (UNKNOWN_ASSET, c.UNKNOWN_ASSET),
        (SAME_ACCOUNT, c.SAME_ACCOUNT), (INSUFFICIENT_HELD, c.INSUFFICIENT_HELD),
        (WRONG_KIND, c.WRONG_KIND), (COVERAGE, c.COVERAGE),
        (KIND_CUSTOMER, c.KIND_CUSTOMER),
        (KIND_COMPANY, c.KIND_COMPANY), (KIND_WALLET, c.KIND_WALLET),
        (MAX_ACCOUNTS, c.MAX_ACCOUNTS), (MAX_ASSETS, c.MAX_ASSETS),
        (INT64_MAX, c.INT64_MAX),
    )
    for mine, theirs in pairs:
        if mine != theirs:
            raise ImportError(f"solvent._core constants out of date with codes.py: {pairs}")
    if len(c.CODE_NAMES) != COVERAGE + 1 or set(c.KIND_NAMES) != {0, 1, 2}:
        raise ImportError("solvent._core: codes.py has codes/kinds this core does not know")


_verify_constants()


def _verify_ref_limits():
    """Fail the import if the ref index's C limits drift from ``core/refs.py``."""
    from solvent.core import refs
    if (MAX_TRANSFER_REFS, MAX_REF_TEXT_BYTES) != (refs.MAX_TRANSFER_REFS,
                                                   refs.MAX_REF_TEXT_BYTES):
        raise ImportError("solvent._core ref limits out of date with core/refs.py")




# -- small C helpers -------------------------------------------------------------

cdef inline int64_t _get(const int64_t* arr, Py_ssize_t length, int64_t i) noexcept nogil:
    """``dict.get(i, 0)`` of the twin: cells beyond the array read as 0."""
    return arr[i] if i < length else 0


cdef int _grow(int64_t** arr, Py_ssize_t* length, int64_t need) except -1:
    """Make ``arr[need - 1]`` addressable; new cells are 0. Changes no balance."""
    cdef Py_ssize_t old = length[0]
    cdef Py_ssize_t new_len = old * 2
    if new_len > MAX_ACCOUNTS:
        new_len = MAX_ACCOUNTS
    if new_len < MIN_ARRAY_LEN:
        new_len = MIN_ARRAY_LEN
    if new_len < need:
        new_len = <Py_ssize_t>need
    cdef int64_t* p = <int64_t*>realloc(arr[0], <size_t>new_len * sizeof(int64_t))
    if p == NULL:
        raise MemoryError("balance array")
    memset(p + old, 0, <size_t>(new_len - old) * sizeof(int64_t))
    arr[0] = p
    length[0] = new_len
    return 0


cdef inline int _arg_amount(object amount, int64_t* out) except -1:
    """1 and ``out[0] = amount`` when ``0 < amount <= INT64_MAX``, else 0 (never raises
    for an int, however large)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(amount, &overflow)
    if overflow != 0 or v <= 0:
        return 0
    out[0] = v
    return 1


cdef inline int64_t _arg_index(object index) except? -2:
    """An account/asset number as int64; one that does not fit becomes -1 (unknown)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(index, &overflow)
    if overflow != 0:
        return -1
    return v


cdef inline Py_ssize_t _list_index(object index, Py_ssize_t n, bint assign) except -1:
    """Python list indexing (the twin's reads index lists): negative indices count
    from the end, anything else out of range raises IndexError."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(index, &overflow)
    if overflow == 0:
        if v < 0:
            v += n
        if 0 <= v < n:
            return <Py_ssize_t>v
    if assign:
        raise IndexError("list assignment index out of range")
    raise IndexError("list index out of range")


cdef inline int64_t _state_int(object value) except? -1:
    """A balance from a state dump; one that does not fit an int64 cannot satisfy the
    invariants (every balance is bounded by a custody total <= INT64_MAX)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0:
        raise AssertionError(f"balance {value} out of range")
    return v


# -- the transfer-ref index (mirror of ``solvent/core/refs.py``) ---------------------

cdef extern from "Python.h":
    # declared here without Cython's exception check: a NULL return is handled
    # where it is called (the replay loop stops instead of raising)
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size)
    void PyErr_Clear()

cdef enum:
    MAX_TRANSFER_REFS = 2147483646      # (1 << 31) - 2, as in refs.py
    MAX_REF_TEXT_BYTES = 1 << 16
    REFS_MIN_SLOTS = 16
    REPLAY_PREFETCH_AHEAD = 4

ctypedef struct RefEntry:
    int64_t hash            # the ref's Python str hash (kept for rehashing)
    int64_t position
    int64_t amount
    int64_t text_off        # the ref's UTF-8 bytes, then the memo's, in the text arena
    int32_t debit
    int32_t credit
    int32_t asset
    int32_t ref_len
    int32_t memo_len
    int32_t _pad

ctypedef struct RefSlot:
    int32_t entry           # index into the entries, -1 for an empty slot
    uint32_t tag            # the high 32 bits of the hash: most probes stop here


cdef inline const char* _utf8(object text, Py_ssize_t* size) except NULL:
    """The UTF-8 bytes of a str (borrowed from the str); ValueError if not encodable."""
    cdef const char* p = PyUnicode_AsUTF8AndSize(text, size)
    if p == NULL:
        PyErr_Clear()
        raise ValueError("text is not encodable as UTF-8")
    return p


cdef int64_t _ref_number(object value, str name, int64_t low, int64_t top) except? -1:
    """An int in ``low..top`` for ``TransferRefs.add``; the twin's TypeError/ValueError."""
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0 or not low <= v <= top:
        raise ValueError(f"{name} {value} is outside {low}..{top}")
    return v


@cython.final
cdef class TransferRefs:
    """ref -> what the transfer journaled under it moved (see ``core/refs.py``).

    Storage: ``RefEntry`` rows in the order added (56 bytes each); the refs and
    memos as UTF-8 in one text arena; an open-addressing table of ``RefSlot``
    (linear probing, load at most 1/2, never a deletion) keyed by the ref's
    Python ``hash()``, so a lookup costs the str hash that Python caches on the
    object, one slot read and, only when the 32-bit tag matches, the entry and a
    ``memcmp``. Everything is allocated with ``PyMem_Raw*`` (traced by
    tracemalloc) and grown before anything is written, so an ``add`` that fails
    (``MemoryError`` included) changes nothing.
    """

    cdef RefEntry* _entries
    cdef Py_ssize_t _n
    cdef Py_ssize_t _cap
    cdef RefSlot* _slots
    cdef Py_ssize_t _n_slots            # a power of two
    cdef char* _text
    cdef Py_ssize_t _text_len
    cdef Py_ssize_t _text_cap
    cdef Py_ssize_t _max

    def __cinit__(self):
        self._max = MAX_TRANSFER_REFS
        self._entries = NULL
        self._n = 0
        self._cap = 0
        self._slots = NULL
        self._n_slots = 0
        self._text = NULL
        self._text_len = 0
        self._text_cap = 0

    def __dealloc__(self):
        PyMem_RawFree(self._entries)
        PyMem_RawFree(self._slots)
        PyMem_RawFree(self._text)

    def __init__(self, max_refs=MAX_TRANSFER_REFS):
        if type(max_refs) is not int:
            raise TypeError(f"max_refs must be an int, got {type(max_refs).__name__}")
        if not 0 <= max_refs <= MAX_TRANSFER_REFS:
            raise ValueError(f"max_refs {max_refs} is outside 0..{MAX_TRANSFER_REFS}")
        self._max = max_refs

    def __len__(self):
        return self._n

    @property
    def max_refs(self):
        """The most entries this index takes (``add`` raises OverflowError beyond)."""
        return self._max

    @property
    def allocated_bytes(self):
        """Bytes this index has allocated (entries, slots, text arena)."""
        return (self._cap * sizeof(RefEntry) + self._n_slots * sizeof(RefSlot)
                + self._text_cap)

    cdef Py_ssize_t _find(self, Py_hash_t h, const char* ref, Py_ssize_t ref_len,
                          Py_ssize_t* slot_out) noexcept:
        """The entry of this ref, or -1 with ``slot_out`` the empty slot it would take."""
        if self._n_slots == 0:
            slot_out[0] = -1
            return -1
        cdef size_t mask = <size_t>(self._n_slots - 1)
        cdef size_t i = <size_t>h & mask
        cdef uint32_t tag = <uint32_t>((<uint64_t>h) >> 32)
        cdef int32_t e
        cdef RefEntry* row
        while True:
            e = self._slots[i].entry
            if e < 0:
                slot_out[0] = <Py_ssize_t>i
                return -1
            if self._slots[i].tag == tag:
                row = &self._entries[e]
                if (row.hash == h and row.ref_len == ref_len
                        and memcmp(self._text + row.text_off, ref, <size_t>ref_len) == 0):
                    return e
            i = (i + 1) & mask

    cdef inline void _prefetch(self, Py_hash_t h) noexcept:
        """Ask for the slot where a lookup of this hash starts (a hint only)."""
        if self._n_slots:
            solvent_prefetch_read(&self._slots[<size_t>h & <size_t>(self._n_slots - 1)])

    cdef int _reserve(self, Py_ssize_t text_bytes) except -1:
        """Room for one more entry and ``text_bytes`` more text. MemoryError leaves the
        index as it was (a rehash only happens once its new table is allocated)."""
        cdef Py_ssize_t cap, n_slots, j
        cdef size_t mask, i
        cdef RefEntry* entries
        cdef RefSlot* slots
        cdef char* text
        if self._n >= self._max:
            raise OverflowError(f"the transfer-ref index is full ({self._max} refs)")
        if self._n == self._cap:
            cap = self._cap * 2 if self._cap else 64
            if cap > MAX_TRANSFER_REFS:
                cap = MAX_TRANSFER_REFS
            entries = <RefEntry*>PyMem_RawRealloc(self._entries, <size_t>cap * sizeof(RefEntry))
            if entries == NULL:
                raise MemoryError("transfer-ref entries")
            self._entries = entries
            self._cap = cap
        if self._text_len + text_bytes > self._text_cap:
            cap = self._text_cap * 2 if self._text_cap else 4096
            while cap < self._text_len + text_bytes:
                cap *= 2
            text = <char*>PyMem_RawRealloc(self._text, <size_t>cap)
            if text == NULL:
                raise MemoryError("transfer-ref text")
            self._text = text
            self._text_cap = cap
        if 2 * (self._n + 1) > self._n_slots:
            n_slots = self._n_slots * 2 if self._n_slots else REFS_MIN_SLOTS
            slots = <RefSlot*>PyMem_RawMalloc(<size_t>n_slots * sizeof(RefSlot))
            if slots == NULL:
                raise MemoryError("transfer-ref table")
            memset(slots, 0xFF, <size_t>n_slots * sizeof(RefSlot))
            mask = <size_t>(n_slots - 1)
            for j in range(self._n):
                i = <size_t>self._entries[j].hash & mask
                while slots[i].entry >= 0:
                    i = (i + 1) & mask
                slots[i].entry = <int32_t>j
                slots[i].tag = <uint32_t>((<uint64_t>self._entries[j].hash) >> 32)
            PyMem_RawFree(self._slots)
            self._slots = slots
            self._n_slots = n_slots
        return 0

    cdef void _put(self, Py_ssize_t slot, Py_hash_t h, const char* ref, Py_ssize_t ref_len,
                   const char* memo, Py_ssize_t memo_len, int64_t debit, int64_t credit,
                   int64_t asset, int64_t amount, int64_t position) noexcept:
        """Write a new entry into ``slot`` (from ``_find``, after ``_reserve``)."""
        cdef RefEntry* row = &self._entries[self._n]
        row.hash = h
        row.position = position
        row.amount = amount
        row.text_off = self._text_len
        row.debit = <int32_t>debit
        row.credit = <int32_t>credit
        row.asset = <int32_t>asset
        row.ref_len = <int32_t>ref_len
        row.memo_len = <int32_t>memo_len
        row._pad = 0
        memcpy(self._text + self._text_len, ref, <size_t>ref_len)
        memcpy(self._text + self._text_len + ref_len, memo, <size_t>memo_len)
        self._text_len += ref_len + memo_len
        self._slots[slot].entry = <int32_t>self._n
        self._slots[slot].tag = <uint32_t>((<uint64_t>h) >> 32)
        self._n += 1

    cdef object _row(self, Py_ssize_t e):
        cdef RefEntry* row = &self._entries[e]
        memo = PyUnicode_DecodeUTF8(self._text + row.text_off + row.ref_len, row.memo_len, NULL)
        return (row.debit, row.credit, row.asset, row.amount, memo, row.position)

    def __contains__(self, ref):
        if type(ref) is not str:
            return False
        cdef Py_ssize_t n = 0, slot
        cdef const char* p = PyUnicode_AsUTF8AndSize(ref, &n)
        if p == NULL:
            PyErr_Clear()  # not encodable: cannot have been added
            return False
        return self._find(hash(ref), p, n, &slot) >= 0

    def get(self, ref):
        """The entry of ``ref`` as (debit, credit, asset, amount_minor, memo,
        position), or None if no transfer used it."""
        if type(ref) is not str:
            raise TypeError(f"ref must be a str, got {type(ref).__name__}")
        cdef Py_ssize_t n = 0, slot, e
        cdef const char* p = PyUnicode_AsUTF8AndSize(ref, &n)
        if p == NULL:
            PyErr_Clear()
            return None
        e = self._find(hash(ref), p, n, &slot)
        return None if e < 0 else self._row(e)

    def add(self, ref, debit, credit, asset, amount_minor, memo, position):
        """Record that the transfer at ``position`` used ``ref`` (errors as the twin's)."""
        if type(ref) is not str or type(memo) is not str:
            raise TypeError("ref and memo must be str")
        cdef int64_t d = _ref_number(debit, "debit", 0, MAX_ACCOUNTS - 1)
        cdef int64_t cr = _ref_number(credit, "credit", 0, MAX_ACCOUNTS - 1)
        cdef int64_t a = _ref_number(asset, "asset", 0, MAX_ASSETS - 1)
        cdef int64_t am = _ref_number(amount_minor, "amount_minor", 1, INT64_MAX)
        cdef int64_t pos = _ref_number(position, "position", 1, INT64_MAX)
        cdef Py_ssize_t ref_len = 0, memo_len = 0, slot
        cdef const char* rp = _utf8(ref, &ref_len)
        if ref_len > MAX_REF_TEXT_BYTES:
            raise ValueError(f"ref of {ref_len} bytes exceeds {MAX_REF_TEXT_BYTES}")
        cdef const char* mp = _utf8(memo, &memo_len)
        if memo_len > MAX_REF_TEXT_BYTES:
            raise ValueError(f"memo of {memo_len} bytes exceeds {MAX_REF_TEXT_BYTES}")
        cdef Py_hash_t h = hash(ref)
        if self._find(h, rp, ref_len, &slot) >= 0:
            raise ValueError(f"ref {ref!r} is already in the index")
        self._reserve(ref_len + memo_len)
        self._find(h, rp, ref_len, &slot)  # the table may have been rebuilt
        self._put(slot, h, rp, ref_len, mp, memo_len, d, cr, a, am, pos)

    def reserve(self, ref, memo):
        """Room for one more entry with these texts, so that an ``add`` of them right
        after allocates nothing (errors as the twin's; changes no entry)."""
        if type(ref) is not str or type(memo) is not str:
            raise TypeError("ref and memo must be str")
        cdef Py_ssize_t ref_len = 0, memo_len = 0
        _utf8(ref, &ref_len)
        if ref_len > MAX_REF_TEXT_BYTES:
            raise ValueError(f"ref of {ref_len} bytes exceeds {MAX_REF_TEXT_BYTES}")
        _utf8(memo, &memo_len)
        if memo_len > MAX_REF_TEXT_BYTES:
            raise ValueError(f"memo of {memo_len} bytes exceeds {MAX_REF_TEXT_BYTES}")
        self._reserve(ref_len + memo_len)

    def export(self):
        """Every entry as (ref, debit, credit, asset, amount_minor, memo, position),
        in the order added."""
        cdef Py_ssize_t e
        cdef RefEntry* row
        out = []
        for e in range(self._n):
            row = &self._entries[e]
            ref = PyUnicode_DecodeUTF8(self._text + row.text_off, row.ref_len, NULL)
            out.append((ref, *self._row(e)))
        return out


_verify_ref_limits()


@cython.final
cdef class BalanceTable:
    """Balances of every account in every asset, with checked operations."""

    def __cinit__(self):
        self._kinds = NULL
        self._wallet_assets = NULL
        self._frozen = NULL
        self._n_accounts = 0
        self._accounts_cap = 0
        self._books = NULL
        self._n_assets = 0
        self._assets_cap = 0

    def __dealloc__(self):
        cdef Py_ssize_t a
        if self._books != NULL:
            for a in range(self._n_assets):
                free(self._books[a].available)
                free(self._books[a].held)
            free(self._books)
        free(self._kinds)
        free(self._wallet_assets)
        free(self._frozen)

    def __reduce__(self):
        # the twin pickles through its slots; here the state dump is the pickle
        return (BalanceTable.from_state, (self.export_state(),))

    # -- registration -----------------------------------------------------

    @property
    def n_accounts(self):
        return self._n_accounts

    @property
    def n_assets(self):
        return self._n_assets

    def add_asset(self):
        """Register the next asset number and return it."""
        if self._n_assets >= MAX_ASSETS:
            raise OverflowError("asset limit reached")
        cdef Py_ssize_t cap
        cdef AssetBook* books
        if self._n_assets == self._assets_cap:
            cap = self._assets_cap * 2 if self._assets_cap else 8
            books = <AssetBook*>realloc(self._books, <size_t>cap * sizeof(AssetBook))
            if books == NULL:
                raise MemoryError("asset table")
            self._books = books
            self._assets_cap = cap
        memset(&self._books[self._n_assets], 0, sizeof(AssetBook))
        self._books[self._n_assets].cap = INT64_MAX
        self._n_assets += 1
        return self._n_assets - 1

    def add_account(self, kind, wallet_asset=-1):
        """Register the next account number (a wallet is bound to one asset)."""
        if kind not in c.KIND_NAMES:
            raise ValueError(f"unknown account kind {kind}")
        if (kind == c.KIND_WALLET) != (wallet_asset >= 0) or wallet_asset < -1:
            raise ValueError("a wallet, and only a wallet, is bound to an asset")
        if wallet_asset >= self._n_assets:
            raise ValueError(f"unknown asset number {wallet_asset}")
        if self._n_accounts >= MAX_ACCOUNTS:
            raise OverflowError("account limit reached")
        cdef uint8_t k = <uint8_t>int(kind)
        cdef int32_t wa = <int32_t>int(wallet_asset)
        if self._n_accounts == self._accounts_cap:
            self._grow_accounts()
        self._kinds[self._n_accounts] = k
        self._wallet_assets[self._n_accounts] = wa
        self._frozen[self._n_accounts] = 0
        self._n_accounts += 1
        return self._n_accounts - 1

    cdef int _grow_accounts(self) except -1:
        cdef Py_ssize_t cap = self._accounts_cap * 2 if self._accounts_cap else 64
        if cap > MAX_ACCOUNTS:
            cap = MAX_ACCOUNTS
        cdef uint8_t* kinds = <uint8_t*>realloc(self._kinds, <size_t>cap)
        if kinds == NULL:
            raise MemoryError("account table")
        self._kinds = kinds
        cdef uint8_t* frozen = <uint8_t*>realloc(self._frozen, <size_t>cap)
        if frozen == NULL:
            raise MemoryError("account table")
        self._frozen = frozen
        cdef int32_t* was = <int32_t*>realloc(self._wallet_assets, <size_t>cap * sizeof(int32_t))
        if was == NULL:
            raise MemoryError("account table")
        self._wallet_assets = was
        self._accounts_cap = cap
        return 0

    def set_liability_cap(self, asset, cap):
        """Cap customer liabilities of ``asset`` for company-funded credits (see the twin)."""
        cdef Py_ssize_t a = _list_index(asset, self._n_assets, True)
        if not 0 <= cap <= INT64_MAX:
            raise ValueError(f"cap {cap} is outside 0..INT64_MAX")
        self._books[a].cap = cap

    def liability_cap(self, asset):
        return self._books[_list_index(asset, self._n_assets, False)].cap

    def kind(self, account):
        return self._kinds[_list_index(account, self._n_accounts, False)]

    def wallet_asset(self, account):
        return self._wallet_assets[_list_index(account, self._n_accounts, False)]

    def set_frozen(self, account, frozen):
        self._frozen[_list_index(account, self._n_accounts, True)] = 1 if frozen else 0

    def is_frozen(self, account):
        return self._frozen[_list_index(account, self._n_accounts, False)] != 0

    # -- reads --------------------------------------------------------------

    def available(self, account, asset):
        cdef AssetBook* book = &self._books[_list_index(asset, self._n_assets, False)]
        cdef int64_t acct = _arg_index(account)
        if acct < 0:
            return 0
        return _get(book.available, book.available_len, acct)

    def held(self, account, asset):
        cdef AssetBook* book = &self._books[_list_index(asset, self._n_assets, False)]
        cdef int64_t acct = _arg_index(account)
        if acct < 0:
            return 0
        return _get(book.held, book.held_len, acct)

    def total(self, asset, kind):
        """Sum of available + held over all accounts of ``kind`` in ``asset``."""
        cdef AssetBook* book = &self._books[_list_index(asset, self._n_assets, False)]
        return book.totals[_list_index(kind, 3, False)]

    # -- checked operations ---------------------------------------------------

    cdef inline int _check_pair(
        self, int64_t debit, int64_t credit, int64_t asset, int64_t amount
    ) noexcept:
        if amount <= 0:  # (> INT64_MAX cannot reach an int64_t: see _arg_amount)
            return INVALID_AMOUNT
        if asset < 0 or asset >= self._n_assets:
            return UNKNOWN_ASSET
        cdef int64_t n = self._n_accounts
        if debit < 0 or debit >= n or credit < 0 or credit >= n:
            return UNKNOWN_ACCOUNT
        if debit == credit:
            return SAME_ACCOUNT
        if self._kinds[debit] == KIND_WALLET and self._wallet_assets[debit] != asset:
            return ASSET_MISMATCH
        if self._kinds[credit] == KIND_WALLET and self._wallet_assets[credit] != asset:
            return ASSET_MISMATCH
        return OK

    def post(self, debit, credit, asset, amount):
        """Debit one account and credit another by ``amount`` of ``asset``."""
        cdef int64_t am = 0
        if not _arg_amount(amount, &am):
            return INVALID_AMOUNT
        cdef int64_t a = _arg_index(asset)
        if a < 0 or a >= self._n_assets:  # (checked before the accounts are read)
            return UNKNOWN_ASSET
        cdef int64_t d = _arg_index(debit)
        cdef int64_t cr = _arg_index(credit)
        cdef int code = self._check_pair(d, cr, a, am)
        if code:
            return code
        return self._post(d, cr, a, am, False)

    def post_held(self, debit, credit, asset, amount):
        """Like ``post``, but the debit comes out of the debit account's held part.

        This settles a hold (a fill, a completed withdrawal). The debit account
        must be a customer or company account; freezing does not block it,
        because the funds were already committed by an earlier, checked hold.
        """
        cdef int64_t am = 0
        if not _arg_amount(amount, &am):
            return INVALID_AMOUNT
        cdef int64_t a = _arg_index(asset)
        if a < 0 or a >= self._n_assets:  # (checked before the accounts are read)
            return UNKNOWN_ASSET
        return self._post_held(_arg_index(debit), _arg_index(credit), a, am)

    cdef int _post_held(self, int64_t d, int64_t cr, int64_t a, int64_t am) except -1:
        """``post_held`` past its argument conversion (``a`` is a known asset)."""
        cdef int code = self._check_pair(d, cr, a, am)
        if code:
            return code
        if self._kinds[d] == KIND_WALLET:
            return WRONG_KIND
        return self._post(d, cr, a, am, True)

    cdef inline int _post(
        self, int64_t debit, int64_t credit, int64_t asset, int64_t amount, bint from_held
    ) except -1:
        cdef AssetBook* book = &self._books[asset]
        cdef uint8_t dk = self._kinds[debit]
        cdef uint8_t ck = self._kinds[credit]
        if dk != KIND_WALLET:
            if not from_held and self._frozen[debit]:
                return ACCOUNT_FROZEN
            if from_held:
                if _get(book.held, book.held_len, debit) < amount:
                    return INSUFFICIENT_HELD
            elif _get(book.available, book.available_len, debit) < amount:
                return INSUFFICIENT_FUNDS
        if ck == KIND_WALLET and _get(book.available, book.available_len, credit) < amount:
            return INSUFFICIENT_FUNDS
        if (dk == KIND_COMPANY and ck == KIND_CUSTOMER
                and book.totals[KIND_CUSTOMER] > book.cap - amount):
            return COVERAGE
        cdef int64_t custody_delta = (amount if dk == KIND_WALLET else 0) - (
            amount if ck == KIND_WALLET else 0
        )
        # totals[KIND_WALLET] + custody_delta > INT64_MAX, written so it cannot wrap
        if custody_delta > 0 and book.totals[KIND_WALLET] > INT64_MAX - custody_delta:
            return OVERFLOW
        # make room for the cells that will be written (changes no balance)
        if dk == KIND_WALLET and debit >= book.available_len:
            _grow(&book.available, &book.available_len, debit + 1)
        if ck != KIND_WALLET and credit >= book.available_len:
            _grow(&book.available, &book.available_len, credit + 1)
        # apply: nothing above this line changed state
        if dk == KIND_WALLET:
            book.available[debit] += amount
        elif from_held:
            book.held[debit] -= amount
        else:
            book.available[debit] -= amount
        if ck == KIND_WALLET:
            book.available[credit] -= amount
        else:
            book.available[credit] += amount
        book.totals[dk] += amount if dk == KIND_WALLET else -amount
        book.totals[ck] += -amount if ck == KIND_WALLET else amount
        return OK

    cdef inline int _check_single(self, int64_t account, int64_t asset, int64_t amount) noexcept:
        if amount <= 0:
            return INVALID_AMOUNT
        if asset < 0 or asset >= self._n_assets:
            return UNKNOWN_ASSET
        if account < 0 or account >= self._n_accounts:
            return UNKNOWN_ACCOUNT
        if self._kinds[account] == KIND_WALLET:
            return WRONG_KIND
        return OK

    def hold(self, account, asset, amount):
        """Move ``amount`` from available to held (refused when frozen)."""
        cdef int64_t am = 0
        if not _arg_amount(amount, &am):
            return INVALID_AMOUNT
        cdef int64_t a = _arg_index(asset)
        if a < 0 or a >= self._n_assets:
            return UNKNOWN_ASSET
        return self._hold(_arg_index(account), a, am)

    cdef int _hold(self, int64_t acct, int64_t a, int64_t am) except -1:
        """``hold`` past its argument conversion (``a`` is a known asset)."""
        cdef int code = self._check_single(acct, a, am)
        if code:
            return code
        if self._frozen[acct]:
            return ACCOUNT_FROZEN
        cdef AssetBook* book = &self._books[a]
        if _get(book.available, book.available_len, acct) < am:
            return INSUFFICIENT_FUNDS
        if acct >= book.held_len:
            _grow(&book.held, &book.held_len, acct + 1)
        book.available[acct] -= am
        book.held[acct] += am
        return OK

    def release(self, account, asset, amount):
        """Move ``amount`` from held back to available (allowed when frozen)."""
        cdef int64_t am = 0
        if not _arg_amount(amount, &am):
            return INVALID_AMOUNT
        cdef int64_t a = _arg_index(asset)
        if a < 0 or a >= self._n_assets:
            return UNKNOWN_ASSET
        return self._release(_arg_index(account), a, am)

    cdef int _release(self, int64_t acct, int64_t a, int64_t am) except -1:
        """``release`` past its argument conversion (``a`` is a known asset)."""
        cdef int code = self._check_single(acct, a, am)
        if code:
            return code
        cdef AssetBook* book = &self._books[a]
        if _get(book.held, book.held_len, acct) < am:
            return INSUFFICIENT_HELD
        if acct >= book.available_len:
            _grow(&book.available, &book.available_len, acct + 1)
        book.held[acct] -= am
        book.available[acct] += am
        return OK

    cdef inline int _post_many_item(
        self, int64_t debit, int64_t credit, int64_t asset, int64_t amount
    ) except -1:
        """One item of ``post_many`` (the body of the twin's loop)."""
        cdef int code = self._check_pair(debit, credit, asset, amount)
        if code == OK:
            if self._kinds[debit] == KIND_WALLET or self._kinds[credit] == KIND_WALLET:
                code = WRONG_KIND
            else:
                code = self._post(debit, credit, asset, amount, False)
        return code

    def replay_transfers(
        self, records, Py_ssize_t start, object transferred, dict account_index,
        dict asset_index, set wallets, TransferRefs refs, position, last_time_ns,
        dict actors=None
    ):
        """Replay consecutive ``Transferred`` journal records (see the twin)."""
        cdef list recs = records
        cdef Py_ssize_t i, n = len(recs)
        cdef object rec, ref, memo, d_obj, c_obj, a_obj, p_obj, t_obj, am_obj, ahead, ahead_ref
        cdef object actor, role
        cdef bint customer = False
        cdef int64_t pos, last, p, t, d, cr, a, am = 0
        cdef int overflow = 0
        cdef Py_ssize_t ref_len = 0, memo_len = 0, slot = 0
        cdef const char* rp
        cdef const char* mp
        cdef Py_hash_t h
        cdef Py_ssize_t off[N_REPLAY_FIELDS]
        if not _replay_slots(transferred, off):
            return start, position, last_time_ns
        pos = PyLong_AsLongLongAndOverflow(position, &overflow)
        if overflow:
            return start, position, last_time_ns
        last = PyLong_AsLongLongAndOverflow(last_time_ns, &overflow)
        if overflow:
            return start, position, last_time_ns
        for i in range(start, n):
            rec = recs[i]
            if type(rec) is not transferred:
                return i, pos, last
            if i + REPLAY_PREFETCH_AHEAD < n:
                # the ref table is too big for the cache on a long journal: ask for the
                # slot of a later record's ref now (its str caches the hash)
                ahead = recs[i + REPLAY_PREFETCH_AHEAD]
                if type(ahead) is transferred:
                    ahead_ref = _slot(ahead, off[F_REF])
                    if type(ahead_ref) is str:
                        refs._prefetch(hash(ahead_ref))
            p_obj = _slot(rec, off[F_POSITION])
            t_obj = _slot(rec, off[F_TIME_NS])
            if type(p_obj) is not int or type(t_obj) is not int:
                return i, pos, last
            p = PyLong_AsLongLongAndOverflow(p_obj, &overflow)
            if overflow or p != pos + 1:
                return i, pos, last
            t = PyLong_AsLongLongAndOverflow(t_obj, &overflow)
            if overflow or t < last:  # dated before the record before it
                return i, pos, last
            if actors is not None:  # ``_may_transfer`` (the twin): the actor's role
                actor = _slot(rec, off[F_ACTOR])
                role = actors.get(actor)
                if role is None:
                    return i, pos, last
                customer = role != "operator" and role != "system"
                if customer and (role != "customer" or actor != _slot(rec, off[F_FROM])):
                    return i, pos, last
            ref = _slot(rec, off[F_REF])
            memo = _slot(rec, off[F_MEMO])
            if type(ref) is not str or type(memo) is not str:
                return i, pos, last
            rp = PyUnicode_AsUTF8AndSize(ref, &ref_len)
            if rp == NULL:
                PyErr_Clear()
                return i, pos, last
            mp = PyUnicode_AsUTF8AndSize(memo, &memo_len)
            if mp == NULL:
                PyErr_Clear()
                return i, pos, last
            if (ref_len > MAX_REF_TEXT_BYTES or memo_len > MAX_REF_TEXT_BYTES
                    or refs._n >= refs._max):
                return i, pos, last
            # room first (MemoryError here has changed nothing), then the slot
            refs._reserve(ref_len + memo_len)
            h = hash(ref)
            if refs._find(h, rp, ref_len, &slot) >= 0:
                return i, pos, last
            d_obj = account_index.get(_slot(rec, off[F_FROM]))
            c_obj = account_index.get(_slot(rec, off[F_TO]))
            a_obj = asset_index.get(_slot(rec, off[F_ASSET]))
            if d_obj is None or c_obj is None or a_obj is None:
                return i, pos, last
            if d_obj in wallets or c_obj in wallets:
                return i, pos, last
            am_obj = _slot(rec, off[F_AMOUNT])
            if type(am_obj) is not int or not _arg_amount(am_obj, &am):
                return i, pos, last
            d = _arg_index(d_obj)
            cr = _arg_index(c_obj)
            a = _arg_index(a_obj)
            if customer and (d < 0 or d >= self._n_accounts or self._kinds[d] != KIND_CUSTOMER):
                return i, pos, last
            if self._check_pair(d, cr, a, am) != OK or self._post(d, cr, a, am, False) != OK:
                return i, pos, last
            refs._put(slot, h, rp, ref_len, mp, memo_len, d, cr, a, am, p)
            pos = p
            if t > last:
                last = t
        return n, pos, last

    def post_many(self, debit, credit, asset, amount, out):
        """Apply ``post`` item by item; write each item's code to ``out``.

        The bulk path moves money between customer and company accounts only:
        an item naming a custody wallet on either side is WRONG_KIND (checked
        after ``_check_pair``, before ACCOUNT_FROZEN), so no bulk item can create
        or destroy liabilities. Items are independent: a failing item changes
        nothing and the next one is tried. Returns the number of items applied.

        Fast path: the four columns are 1-D int64 buffers (``array('q')``,
        ``memoryview``...) and ``out`` a writable 1-D uint8 buffer (``bytearray``,
        ``array('B')``); the loop then runs in C. Anything else (lists, other
        dtypes, a read-only ``out``) takes the same loop item by item in Python.
        """
        cdef const int64_t[:] dv
        cdef const int64_t[:] cv
        cdef const int64_t[:] av
        cdef const int64_t[:] mv
        cdef uint8_t[:] ov
        if debit is None or credit is None or asset is None or amount is None or out is None:
            return self._post_many_items(debit, credit, asset, amount, out)
        try:
            dv = debit
            cv = credit
            av = asset
            mv = amount
            ov = out
        except (TypeError, ValueError, BufferError):
            return self._post_many_items(debit, credit, asset, amount, out)
        cdef Py_ssize_t n = dv.shape[0]
        if not (cv.shape[0] == av.shape[0] == mv.shape[0] == n) or ov.shape[0] < n:
            raise ValueError("post_many: columns must have equal lengths")
        cdef Py_ssize_t i
        cdef Py_ssize_t applied = 0
        cdef int code
        for i in range(n):
            code = self._post_many_item(dv[i], cv[i], av[i], mv[i])
            ov[i] = <uint8_t>code
            if code == 0:
                applied += 1
        return applied

    cdef object _post_many_items(self, debit, credit, asset, amount, out):
        """``post_many`` for columns that are not int64 buffers: the twin's loop
        over Python objects (any int: one that does not fit an int64 is an
        invalid amount or an unknown number, as in ``post``)."""
        n = len(debit)
        if not (len(credit) == len(asset) == len(amount) == n) or len(out) < n:
            raise ValueError("post_many: columns must have equal lengths")
        applied = 0
        cdef int code
        cdef int64_t a, am = 0
        for i in range(n):
            d, cr, a_obj, amt = debit[i], credit[i], asset[i], amount[i]
            if not _arg_amount(amt, &am):
                code = INVALID_AMOUNT
            else:
                a = _arg_index(a_obj)
                if a < 0 or a >= self._n_assets:
                    code = UNKNOWN_ASSET
                else:
                    code = self._post_many_item(_arg_index(d), _arg_index(cr), a, am)
            out[i] = code
            if code == 0:
                applied += 1
        return applied

    # -- invariants and state transfer -----------------------------------------

    def check_invariants(self):
        """Raise AssertionError if any balance invariant is broken.

        (Explicit raises, not ``assert``: this holds under ``python -O`` too.)
        """
        cdef Py_ssize_t a, acct
        cdef AssetBook* book
        cdef int64_t v
        cdef int64_t sums[3]
        cdef uint8_t k
        for a in range(self._n_assets):
            book = &self._books[a]
            sums[0] = sums[1] = sums[2] = 0
            for acct in range(book.available_len):
                v = book.available[acct]
                if v < 0:
                    raise AssertionError(f"negative available: account {acct} asset {a}")
                if acct >= self._n_accounts:
                    if v != 0:
                        raise AssertionError(f"balance of unknown account {acct} asset {a}")
                    continue
                k = self._kinds[acct]
                if solvent_add_overflow(sums[k], v, &sums[k]):
                    raise AssertionError(f"asset {a}: sum of balances exceeds INT64_MAX")
            for acct in range(book.held_len):
                v = book.held[acct]
                if v < 0:
                    raise AssertionError(f"negative held: account {acct} asset {a}")
                if v == 0:
                    continue
                if acct >= self._n_accounts:
                    raise AssertionError(f"balance of unknown account {acct} asset {a}")
                k = self._kinds[acct]
                if k == KIND_WALLET:
                    raise AssertionError("wallet with held funds")
                if solvent_add_overflow(sums[k], v, &sums[k]):
                    raise AssertionError(f"asset {a}: sum of balances exceeds INT64_MAX")
            totals = [book.totals[0], book.totals[1], book.totals[2]]
            if sums[0] != book.totals[0] or sums[1] != book.totals[1] or sums[2] != book.totals[2]:
                raise AssertionError(
                    f"asset {a}: totals {totals} != sums {[sums[0], sums[1], sums[2]]}"
                )
            # customer + company computed in Python ints: it must not wrap
            if totals[KIND_WALLET] != totals[KIND_CUSTOMER] + totals[KIND_COMPANY]:
                raise AssertionError(f"asset {a}: custody != customer + company")
            for acct in range(min(book.available_len, self._n_accounts)):
                if (self._kinds[acct] == KIND_WALLET and self._wallet_assets[acct] != a
                        and book.available[acct] != 0):
                    raise AssertionError(f"wallet {acct} holds asset {a}, not its own")

    def export_state(self):
        """A plain, deterministic description of the whole table (for snapshots)."""
        cdef Py_ssize_t a, acct, length
        cdef AssetBook* book
        cdef int64_t av, hd
        balances = []
        for a in range(self._n_assets):
            book = &self._books[a]
            length = book.available_len
            if book.held_len > length:
                length = book.held_len
            for acct in range(length):
                av = _get(book.available, book.available_len, acct)
                hd = _get(book.held, book.held_len, acct)
                if av or hd:
                    balances.append((acct, a, av, hd))
        return {
            "n_assets": self._n_assets,
            "kinds": [self._kinds[i] for i in range(self._n_accounts)],
            "wallet_assets": [self._wallet_assets[i] for i in range(self._n_accounts)],
            "frozen": [self._frozen[i] for i in range(self._n_accounts)],
            "balances": balances,
        }

    @classmethod
    def from_state(cls, state):
        """Rebuild a table from ``export_state()`` output, checking invariants."""
        cdef BalanceTable t = cls()
        for _ in range(state["n_assets"]):
            t.add_asset()
        for kind, wa in zip(state["kinds"], state["wallet_assets"], strict=True):
            t.add_account(kind, wa)
        if len(state["frozen"]) != t._n_accounts:
            raise ValueError("frozen flags and accounts differ in number")
        for acct, f in enumerate(state["frozen"]):
            t._frozen[_list_index(acct, t._n_accounts, True)] = 1 if f else 0
        cdef Py_ssize_t i, a
        cdef int64_t av, hd, amount = 0
        cdef AssetBook* book
        cdef uint8_t k
        for row_acct, row_a, row_av, row_hd in state["balances"]:
            # (the twin indexes lists here, so a negative number would count from
            # the end; a state dump never holds one, and this core refuses it)
            i = _list_index(row_acct, t._n_accounts, False) if row_acct >= 0 else -1
            a = _list_index(row_a, t._n_assets, False) if row_a >= 0 else -1
            if i < 0 or a < 0:
                raise IndexError(f"balance row {(row_acct, row_a)} names no account/asset")
            book = &t._books[a]
            k = t._kinds[i]
            av = _state_int(row_av)
            hd = _state_int(row_hd)
            if av:
                if i >= book.available_len:
                    _grow(&book.available, &book.available_len, i + 1)
                book.available[i] = av
            if hd:
                if i >= book.held_len:
                    _grow(&book.held, &book.held_len, i + 1)
                book.held[i] = hd
            if solvent_add_overflow(av, hd, &amount) or solvent_add_overflow(
                book.totals[k], amount, &book.totals[k]
            ):
                raise AssertionError(f"asset {a}: totals exceed INT64_MAX")
        t.check_invariants()
        return t
