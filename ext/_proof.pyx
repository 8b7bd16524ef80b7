# cython: language_level=3
"""The compiled helper of ``solvent.proof`` (``solvent._proof``): the tree build and
batch leaf keys in C, with SHA-256 and HMAC-SHA256 from OpenSSL's libcrypto.

``solvent/proof.py`` is the specification: ``build_levels`` here is its
``_build_levels_py`` (same checks in the same order, same result codes, same
bytes out) and ``leaf_keys`` is its Python loop over ``account_nonce`` and
``leaf_key``. The tests hold both to identical output. The tags and the
padding hash come in as arguments, so the format's constants live in
``proof.py`` only.

Hashing and sorting run without the GIL. SHA-256 uses one ``EVP_MD`` fetched at
import and a reused ``EVP_MD_CTX`` per worker (``EVP_DigestInit_ex2``): OpenSSL
picks the SHA-NI or AVX2 code path of the CPU. On a machine with two cores or
more, a level of at least ``PARALLEL_MIN`` hashes, the leaf keys and the sort are
split in two halves by index, the upper half on a second thread (the sorted
halves are then merged): every output byte is the one a single thread writes,
which the tests check. ``workers=1`` forces one thread.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcmp, memcpy, memset

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef extern from *:
    """
    #include <openssl/evp.h>
    #include <string.h>
    #include <stdint.h>

    typedef struct { unsigned char key[32]; int64_t balance; } solvent_leaf;

    static inline void solvent_put_u64(unsigned char *p, uint64_t v) {
        v = __builtin_bswap64(v);
        memcpy(p, &v, 8);
    }
    static inline uint64_t solvent_get_u64(const unsigned char *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return __builtin_bswap64(v);
    }
    /* memcmp order of the 32-byte keys: the first 8 bytes as a big-endian number
       decide all but about one pair in 2^64, the other 24 bytes the rest */
    static inline int solvent_key_cmp(const unsigned char *a, const unsigned char *b) {
        uint64_t x = solvent_get_u64(a), y = solvent_get_u64(b);
        if (x != y) return x < y ? -1 : 1;
        return memcmp(a + 8, b + 8, 24);
    }
    static int solvent_leaf_cmp(const void *a, const void *b) {
        return solvent_key_cmp(((const solvent_leaf *)a)->key, ((const solvent_leaf *)b)->key);
    }
    /* merge the sorted runs [0, mid) and [mid, n) of src into dst */
    static void solvent_merge(const solvent_leaf *src, Py_ssize_t mid, Py_ssize_t n,
                              solvent_leaf *dst) {
        Py_ssize_t i = 0, j = mid, k = 0;
        while (i < mid && j < n)
            dst[k++] = solvent_key_cmp(src[j].key, src[i].key) < 0 ? src[j++] : src[i++];
        while (i < mid) dst[k++] = src[i++];
        while (j < n) dst[k++] = src[j++];
    }

    #include <pthread.h>
    #include <unistd.h>
    typedef void (*solvent_range_fn)(void *arg, Py_ssize_t lo, Py_ssize_t hi, int worker);
    typedef struct { solvent_range_fn fn; void *arg; Py_ssize_t lo, hi; } solvent_half;
    static void *solvent_half_run(void *p) {
        solvent_half *h = (solvent_half *)p;
        h->fn(h->arg, h->lo, h->hi, 1);
        return NULL;
    }
    /* fn over [0, n): with two workers the upper half runs on a new thread (worker 1)
       while this one does the lower half (worker 0); if the thread cannot start,
       this thread does both halves, worker 0 then worker 1, so every index is done
       exactly once by the worker whose state it was given. Returns the number of
       ranges the work was done in: 1 ([0, n) whole) or 2 (the two halves). */
    static int solvent_split(solvent_range_fn fn, void *arg, Py_ssize_t n, int workers) {
        Py_ssize_t mid = n / 2;
        pthread_t t;
        solvent_half h = {fn, arg, mid, n};
        if (workers < 2 || n < 2) {
            fn(arg, 0, n, 0);
            return 1;
        }
        if (pthread_create(&t, NULL, solvent_half_run, &h) != 0) {
            fn(arg, 0, mid, 0);
            fn(arg, mid, n, 1);
            return 2;
        }
        fn(arg, 0, mid, 0);
        pthread_join(t, NULL);
        return 2;
    }
    static long solvent_cpus(void) { return sysconf(_SC_NPROCESSORS_ONLN); }
    """
    ctypedef struct solvent_leaf:
        unsigned char key[32]
        long long balance
    int solvent_leaf_cmp(const void* a, const void* b) noexcept nogil
    void solvent_merge(const solvent_leaf* src, Py_ssize_t mid, Py_ssize_t n,
                       solvent_leaf* dst) noexcept nogil
    void solvent_put_u64(unsigned char* p, unsigned long long v) noexcept nogil
    unsigned long long solvent_get_u64(const unsigned char* p) noexcept nogil
    ctypedef void (*solvent_range_fn)(void* arg, Py_ssize_t lo, Py_ssize_t hi,
                                      int worker) noexcept nogil
    int solvent_split(solvent_range_fn fn, void* arg, Py_ssize_t n, int workers) noexcept nogil
    long solvent_cpus() noexcept nogil

    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    EVP_MD_CTX* EVP_MD_CTX_new() nogil
    void EVP_MD_CTX_free(EVP_MD_CTX* ctx) nogil
    int EVP_MD_CTX_copy_ex(EVP_MD_CTX* out, const EVP_MD_CTX* inp) nogil
    EVP_MD* EVP_MD_fetch(void* libctx, const char* algorithm, const char* properties) nogil
    int EVP_DigestInit_ex2(EVP_MD_CTX* ctx, const EVP_MD* md, void* params) nogil
    int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* d, size_t n) nogil
    int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* md, unsigned int* n) nogil

cdef enum:
    HASH = 32
    ENTRY = 40  # hash || u64(sum)
    MAX_TAG = 64
    BLOCK = 64  # SHA-256 block size (HMAC key padding)
    MAX_ID_BYTES = 4 * 256
    PARALLEL_MIN = 8192  # fewer hashes than this: one thread (starting one costs more)

# Result codes: solvent.proof's _OK, _BAD_LEAF, ... (same values, same order of checks).
cdef enum:
    OK = 0
    BAD_LEAF = 1
    BAD_KEY = 2
    BAD_BALANCE_TYPE = 3
    BALANCE_RANGE = 4
    TOTAL_OVERFLOW = 5
    DUPLICATE_KEY = 6

cdef long long INT64_MAX_ = 9223372036854775807

cdef EVP_MD* SHA256_MD = EVP_MD_fetch(NULL, b"SHA256", NULL)
if SHA256_MD == NULL:
    raise ImportError("OpenSSL has no SHA256 digest")


cdef inline int sha256(EVP_MD_CTX* ctx, const unsigned char* data, size_t n,
                       unsigned char* out) noexcept nogil:
    cdef unsigned int size
    if EVP_DigestInit_ex2(ctx, SHA256_MD, NULL) != 1:
        return 1
    if EVP_DigestUpdate(ctx, data, n) != 1:
        return 1
    if EVP_DigestFinal_ex(ctx, out, &size) != 1:
        return 1
    return 0


cdef EVP_MD_CTX* new_ctx() except NULL:
    cdef EVP_MD_CTX* ctx = EVP_MD_CTX_new()
    if ctx == NULL:
        raise MemoryError()
    return ctx


cdef bytes new_bytes(Py_ssize_t size):
    return PyBytes_FromStringAndSize(NULL, size)


cdef int hash_level_leaves(EVP_MD_CTX* ctx, const solvent_leaf* leaves, Py_ssize_t n,
                           const unsigned char* tag, Py_ssize_t tag_len,
                           unsigned char* out) noexcept nogil:
    """out[40 i] = SHA-256(tag || key || u64(balance)) || u64(balance)"""
    cdef unsigned char buf[MAX_TAG + HASH + 8]
    cdef Py_ssize_t i
    cdef int failed = 0
    memcpy(buf, tag, tag_len)
    for i in range(n):
        memcpy(buf + tag_len, leaves[i].key, HASH)
        solvent_put_u64(buf + tag_len + HASH, <unsigned long long>leaves[i].balance)
        failed |= sha256(ctx, buf, tag_len + HASH + 8, out + ENTRY * i)
        memcpy(out + ENTRY * i + HASH, buf + tag_len + HASH, 8)
    return failed


cdef int hash_level_nodes(EVP_MD_CTX* ctx, const unsigned char* prev, Py_ssize_t pairs,
                          const unsigned char* tag, Py_ssize_t tag_len,
                          unsigned char* out) noexcept nogil:
    """out[40 j] = SHA-256(tag || prev[80 j .. 80 j + 80]) || u64(left_sum + right_sum)"""
    cdef unsigned char buf[MAX_TAG + 2 * ENTRY]
    cdef Py_ssize_t j
    cdef int failed = 0
    cdef const unsigned char* pair
    memcpy(buf, tag, tag_len)
    for j in range(pairs):
        pair = prev + 2 * ENTRY * j
        memcpy(buf + tag_len, pair, 2 * ENTRY)
        failed |= sha256(ctx, buf, tag_len + 2 * ENTRY, out + ENTRY * j)
        # both sums <= the checked total <= INT64_MAX: no overflow
        solvent_put_u64(out + ENTRY * j + HASH,
                        solvent_get_u64(pair + HASH) + solvent_get_u64(pair + ENTRY + HASH))
    return failed


# -- two workers -----------------------------------------------------------------------
# Every hash of a level (and every leaf key) is independent of the others, so the
# work is split in two halves by index, each half with its own EVP_MD_CTX; the
# bytes out are the same whichever worker wrote them (tests build with 1 and 2).

cdef int AUTO_WORKERS = 2 if solvent_cpus() >= 2 else 1
PARALLEL_MIN_HASHES = PARALLEL_MIN  # (for the tests)


cdef int _workers(Py_ssize_t n, int workers) noexcept:
    if workers <= 0:
        workers = AUTO_WORKERS
    return 2 if workers >= 2 and n >= PARALLEL_MIN else 1


ctypedef struct LevelJob:
    EVP_MD_CTX* ctx[2]
    const solvent_leaf* leaves   # the leaf level's input (NULL for a node level)
    const unsigned char* prev    # a node level's input: the level below
    const unsigned char* tag
    Py_ssize_t tag_len
    unsigned char* out
    int failed[2]


cdef void _level_range(void* arg, Py_ssize_t lo, Py_ssize_t hi, int worker) noexcept nogil:
    cdef LevelJob* job = <LevelJob*>arg
    if job.leaves != NULL:
        job.failed[worker] |= hash_level_leaves(job.ctx[worker], job.leaves + lo, hi - lo,
                                                job.tag, job.tag_len, job.out + ENTRY * lo)
    else:
        job.failed[worker] |= hash_level_nodes(job.ctx[worker], job.prev + 2 * ENTRY * lo,
                                               hi - lo, job.tag, job.tag_len,
                                               job.out + ENTRY * lo)


cdef void _sort_range(void* arg, Py_ssize_t lo, Py_ssize_t hi, int worker) noexcept nogil:
    qsort((<solvent_leaf*>arg) + lo, hi - lo, sizeof(solvent_leaf), solvent_leaf_cmp)


cdef int _sort_leaves(solvent_leaf** arr, Py_ssize_t n, int workers) noexcept nogil:
    """Sort by key; with two workers, each half on its own thread, then one merge into a
    new array (``arr`` then points at it; the old one is freed). -1: out of memory."""
    cdef solvent_leaf* merged
    if solvent_split(_sort_range, arr[0], n, workers) == 1:
        return 0
    merged = <solvent_leaf*>malloc(n * sizeof(solvent_leaf))
    if merged == NULL:
        return -1
    solvent_merge(arr[0], n // 2, n, merged)
    free(arr[0])
    arr[0] = merged
    return 0


ctypedef struct KeysJob:
    EVP_MD_CTX* ctx[2]
    EVP_MD_CTX* ictx[2]          # HMAC inner state after the padded key, per worker
    EVP_MD_CTX* octx[2]          # HMAC outer state after the padded key, per worker
    const char** raws            # each id's UTF-8 bytes (borrowed from its str)
    Py_ssize_t* sizes
    const unsigned char* nonce_tag
    Py_ssize_t ntag_len
    const unsigned char* key_tag
    Py_ssize_t ktag_len
    unsigned char* out           # 32 bytes per id
    int failed[2]


cdef void _keys_range(void* arg, Py_ssize_t lo, Py_ssize_t hi, int worker) noexcept nogil:
    """leaf key = SHA-256(key_tag || u16(len(id)) || id || HMAC(secret, nonce_tag || id))"""
    cdef KeysJob* job = <KeysJob*>arg
    cdef EVP_MD_CTX* ctx = job.ctx[worker]
    cdef unsigned char inner[HASH]
    cdef unsigned char nonce[HASH]
    cdef unsigned char buf[MAX_TAG + 2 + MAX_ID_BYTES + HASH]
    cdef unsigned int outlen
    cdef Py_ssize_t i, size, k = job.ktag_len
    cdef const char* raw
    cdef int failed = 0
    memcpy(buf, job.key_tag, k)
    for i in range(lo, hi):
        raw = job.raws[i]
        size = job.sizes[i]
        failed |= EVP_MD_CTX_copy_ex(ctx, job.ictx[worker]) != 1
        failed |= EVP_DigestUpdate(ctx, job.nonce_tag, job.ntag_len) != 1
        failed |= EVP_DigestUpdate(ctx, raw, size) != 1
        failed |= EVP_DigestFinal_ex(ctx, inner, &outlen) != 1
        failed |= EVP_MD_CTX_copy_ex(ctx, job.octx[worker]) != 1
        failed |= EVP_DigestUpdate(ctx, inner, HASH) != 1
        failed |= EVP_DigestFinal_ex(ctx, nonce, &outlen) != 1
        buf[k] = <unsigned char>(size >> 8)
        buf[k + 1] = <unsigned char>(size & 0xff)
        memcpy(buf + k + 2, raw, size)
        memcpy(buf + k + 2 + size, nonce, HASH)
        failed |= sha256(ctx, buf, k + 2 + size + HASH, job.out + HASH * i)
    job.failed[worker] |= failed


def build_levels(object leaves, bytes leaf_tag, bytes node_tag, bytes pad_hash,
                 int workers=0):
    """``solvent.proof._build_levels_py`` in C: ``(code, index, keys, levels)``.
    ``workers``: hash on 1 or 2 threads (0: 2 where the machine has 2 cores or more;
    levels of fewer than ``PARALLEL_MIN`` hashes always take one)."""
    cdef list items = leaves if type(leaves) is list else list(leaves)
    cdef Py_ssize_t n = len(items)
    cdef Py_ssize_t i, m, padded, pairs
    cdef object item, k, b
    cdef long long v
    cdef int of
    cdef unsigned long long total = 0
    cdef bint overflow = False
    cdef solvent_leaf* arr
    cdef unsigned char* out
    cdef const unsigned char* prev
    cdef LevelJob job
    cdef int w, sorted_ok
    cdef bytes keys, level, pad_entry
    cdef list levels
    cdef const unsigned char* ltag = <const unsigned char*>PyBytes_AS_STRING(leaf_tag)
    cdef const unsigned char* ntag = <const unsigned char*>PyBytes_AS_STRING(node_tag)
    cdef Py_ssize_t ltag_len = PyBytes_GET_SIZE(leaf_tag), ntag_len = PyBytes_GET_SIZE(node_tag)
    if ltag_len > MAX_TAG or ntag_len > MAX_TAG or PyBytes_GET_SIZE(pad_hash) != HASH:
        raise ValueError("tags of at most 64 bytes and a 32-byte padding hash expected")
    pad_entry = pad_hash + bytes(8)
    if n == 0:
        return OK, 0, b"", [pad_entry]
    arr = <solvent_leaf*>malloc(n * sizeof(solvent_leaf))
    if arr == NULL:
        raise MemoryError()
    memset(&job, 0, sizeof(LevelJob))
    try:
        for i in range(n):
            item = items[i]
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                return BAD_LEAF, i, b"", []
            k = item[0]
            b = item[1]
            if not isinstance(k, bytes) or PyBytes_GET_SIZE(k) != HASH:
                return BAD_KEY, i, b"", []
            if not isinstance(b, int) or isinstance(b, bool):
                return BAD_BALANCE_TYPE, i, b"", []
            of = 0
            v = PyLong_AsLongLongAndOverflow(b, &of)
            if of != 0 or v < 0:
                return BALANCE_RANGE, i, b"", []
            memcpy(arr[i].key, PyBytes_AS_STRING(k), HASH)
            arr[i].balance = v
            total += <unsigned long long>v  # each <= INT64_MAX: a flagged sum never wraps
            if total > <unsigned long long>INT64_MAX_:
                overflow = True
                total = 0
        if overflow:
            return TOTAL_OVERFLOW, -1, b"", []
        w = _workers(n, workers)
        with nogil:
            sorted_ok = _sort_leaves(&arr, n, w)
        if sorted_ok != 0:
            raise MemoryError()
        for i in range(n - 1):
            if memcmp(arr[i].key, arr[i + 1].key, HASH) == 0:
                return DUPLICATE_KEY, -1, PyBytes_FromStringAndSize(<char*>arr[i].key, HASH), []
        keys = new_bytes(HASH * n)
        out = <unsigned char*>PyBytes_AS_STRING(keys)
        for i in range(n):
            memcpy(out + HASH * i, arr[i].key, HASH)
        job.ctx[0] = new_ctx()
        job.ctx[1] = new_ctx()
        m = n
        padded = m + 1 if m > 1 and m & 1 else m
        level = new_bytes(ENTRY * padded)
        out = <unsigned char*>PyBytes_AS_STRING(level)
        job.leaves = arr
        job.tag = ltag
        job.tag_len = ltag_len
        job.out = out
        w = _workers(n, workers)
        with nogil:
            solvent_split(_level_range, &job, n, w)
        if padded != m:
            memcpy(out + ENTRY * m, PyBytes_AS_STRING(pad_entry), ENTRY)
        levels = [level]
        job.leaves = NULL
        job.tag = ntag
        job.tag_len = ntag_len
        while padded > 1:
            prev = <const unsigned char*>PyBytes_AS_STRING(level)
            pairs = padded // 2
            m = pairs
            padded = m + 1 if m > 1 and m & 1 else m
            level = new_bytes(ENTRY * padded)
            out = <unsigned char*>PyBytes_AS_STRING(level)
            job.prev = prev
            job.out = out
            w = _workers(pairs, workers)
            with nogil:
                solvent_split(_level_range, &job, pairs, w)
            if padded != m:
                memcpy(out + ENTRY * m, PyBytes_AS_STRING(pad_entry), ENTRY)
            levels.append(level)
        if job.failed[0] or job.failed[1]:
            raise RuntimeError("OpenSSL SHA-256 failed")
        return OK, 0, keys, levels
    finally:
        free(arr)
        EVP_MD_CTX_free(job.ctx[0])  # (NULL is allowed)
        EVP_MD_CTX_free(job.ctx[1])


def leaf_keys(bytes secret_key, list account_ids, bytes nonce_tag, bytes key_tag,
              Py_ssize_t max_chars, int workers=0):
    """``(bad_index, keys)``: ``keys[i] = leaf_key(id, account_nonce(secret_key, id))``
    for every id, or ``bad_index`` >= 0, the first id that is not a str of
    1..``max_chars`` characters encodable as UTF-8 (then ``keys`` is empty).
    ``workers`` as for ``build_levels``."""
    cdef Py_ssize_t n, i, size, j
    cdef Py_ssize_t ntag_len = PyBytes_GET_SIZE(nonce_tag), ktag_len = PyBytes_GET_SIZE(key_tag)
    cdef unsigned char block[BLOCK]
    cdef unsigned char pad[BLOCK]
    cdef int failed = 0, w
    cdef object account
    cdef list out
    cdef bytes digests
    cdef const char* raw_all
    cdef KeysJob job
    # a list of our own: its strs (whose UTF-8 bytes the hashing borrows without the
    # GIL) stay alive whatever another thread does to the caller's list
    cdef list ids = list(account_ids)
    n = len(ids)
    if ntag_len > MAX_TAG or ktag_len > MAX_TAG or max_chars > 256:
        raise ValueError("tags of at most 64 bytes and ids of at most 256 characters expected")
    for i in range(n):  # check every id first (the Python twin raises for the first bad one)
        account = ids[i]
        if not isinstance(account, str) or not 0 < PyUnicode_GET_LENGTH(account) <= max_chars:
            return i, []
        try:
            PyUnicode_AsUTF8AndSize(account, &size)
        except UnicodeEncodeError:
            return i, []
    memset(&job, 0, sizeof(KeysJob))
    job.raws = <const char**>malloc((n if n else 1) * sizeof(const char*))
    job.sizes = <Py_ssize_t*>malloc((n if n else 1) * sizeof(Py_ssize_t))
    try:
        if job.raws == NULL or job.sizes == NULL:
            raise MemoryError()
        for i in range(n):  # the UTF-8 bytes stay owned by the strs that ids holds
            job.raws[i] = PyUnicode_AsUTF8AndSize(ids[i], &job.sizes[i])
        for j in range(2):
            job.ctx[j] = new_ctx()
            job.ictx[j] = new_ctx()
            job.octx[j] = new_ctx()
        # HMAC (RFC 2104): the key padded to one block (hashed first if longer)
        memset(block, 0, BLOCK)
        if PyBytes_GET_SIZE(secret_key) > BLOCK:
            failed |= sha256(job.ctx[0], <const unsigned char*>PyBytes_AS_STRING(secret_key),
                             PyBytes_GET_SIZE(secret_key), block)
        else:
            memcpy(block, PyBytes_AS_STRING(secret_key), PyBytes_GET_SIZE(secret_key))
        for j in range(BLOCK):
            pad[j] = block[j] ^ 0x36
        failed |= EVP_DigestInit_ex2(job.ictx[0], SHA256_MD, NULL) != 1
        failed |= EVP_DigestUpdate(job.ictx[0], pad, BLOCK) != 1
        for j in range(BLOCK):
            pad[j] = block[j] ^ 0x5c
        failed |= EVP_DigestInit_ex2(job.octx[0], SHA256_MD, NULL) != 1
        failed |= EVP_DigestUpdate(job.octx[0], pad, BLOCK) != 1
        failed |= EVP_MD_CTX_copy_ex(job.ictx[1], job.ictx[0]) != 1
        failed |= EVP_MD_CTX_copy_ex(job.octx[1], job.octx[0]) != 1
        if failed:
            raise RuntimeError("OpenSSL SHA-256 failed")
        job.nonce_tag = <const unsigned char*>PyBytes_AS_STRING(nonce_tag)
        job.ntag_len = ntag_len
        job.key_tag = <const unsigned char*>PyBytes_AS_STRING(key_tag)
        job.ktag_len = ktag_len
        digests = new_bytes(HASH * n)
        job.out = <unsigned char*>PyBytes_AS_STRING(digests)
        w = _workers(n, workers)
        with nogil:
            solvent_split(_keys_range, &job, n, w)
        if job.failed[0] or job.failed[1]:
            raise RuntimeError("OpenSSL SHA-256 failed")
        raw_all = PyBytes_AS_STRING(digests)
        out = [PyBytes_FromStringAndSize(raw_all + HASH * i, HASH) for i in range(n)]
        return -1, out
    finally:
        memset(block, 0, BLOCK)
        memset(pad, 0, BLOCK)
        for j in range(2):
            EVP_MD_CTX_free(job.ctx[j])
            EVP_MD_CTX_free(job.ictx[j])
            EVP_MD_CTX_free(job.octx[j])
        free(job.raws)
        free(job.sizes)
