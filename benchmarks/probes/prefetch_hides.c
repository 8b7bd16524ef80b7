/* prefetch_hides.c: whether a software prefetch, issued some rows ahead, hides the cost
 * of random access over a big region on this machine (a diagnostic for the kernel's
 * flatness figures, see docs/matching.md "Flatness"; not part of the library).
 *
 *   cc -O2 -o /tmp/prefetch_hides benchmarks/probes/prefetch_hides.c
 *   /tmp/prefetch_hides MIB DISTANCE LINES_PER_ROW [WORK]
 *       e.g. 1 16 1, 64 0 1, 64 16 1, 64 16 3, 64 16 4 0, 1 16 4 0
 *
 * Each of 4,000,000 rows reads and writes LINES_PER_ROW cache lines at random places in
 * a region of MIB MiB (advised as transparent huge pages, as the book's arrays are), then
 * does WORK steps of dependent arithmetic (default 20, about 20 ns, as a row of the
 * kernel does its own work). With DISTANCE > 0 the lines of row i + DISTANCE are
 * prefetched during row i. It prints the mean ns per row of the second of two passes.
 *
 * The lines are drawn before the timed passes: the timed loop only reads their indices
 * in order. (Until 2026-11-21 it computed each with a 64-bit modulo in the loop, a
 * division per line that gave the memory time to answer: with rows of little work, 1 MiB
 * and 64 MiB then cost the same.) Compare MIB 1 with MIB 64 at the same other arguments:
 * the difference is what the big region costs a row.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define HUGE_BYTES ((size_t)1 << 21)
#define ROWS 4000000UL

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s MIB DISTANCE LINES_PER_ROW [WORK]\n", argv[0]);
        return 2;
    }
    size_t mib = strtoul(argv[1], NULL, 10), dist = strtoul(argv[2], NULL, 10);
    size_t per_row = strtoul(argv[3], NULL, 10);
    long work = argc == 5 ? strtol(argv[4], NULL, 10) : 20;
    if (mib < 1 || mib > 4096 || dist > 1024 || per_row < 1 || per_row > 16 || work < 0
        || work > 10000) {
        fprintf(stderr, "MIB 1..4096, DISTANCE 0..1024, LINES_PER_ROW 1..16, WORK 0..10000\n");
        return 2;
    }
    size_t bytes = mib << 20, lines = bytes / 64;
    char *raw = mmap(NULL, bytes + HUGE_BYTES, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) { perror("mmap"); return 1; }
    char *base = (char *)(((uintptr_t)raw + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
    madvise(base, bytes, MADV_HUGEPAGE);
    memset(base, 1, bytes);
    size_t n_idx = ROWS * per_row;
    uint32_t *idx = malloc(n_idx * sizeof *idx);     /* row i's lines: idx[i * per_row + k] */
    if (idx == NULL) return 1;
    uint64_t rng = 88172645463325252ULL;
    for (size_t i = 0; i < n_idx; i++) {              /* xorshift64 */
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        idx[i] = (uint32_t)(rng % lines);
    }
    uint64_t acc = 0;
    double ns = 0;
    for (int pass = 0; pass < 2; pass++) {
        double t0 = seconds();
        for (size_t i = 0; i < ROWS; i++) {
            const uint32_t *row = idx + i * per_row;
            for (size_t k = 0; k < per_row; k++) {
                if (dist && i + dist < ROWS)
                    __builtin_prefetch(base + (size_t)row[dist * per_row + k] * 64, 1, 3);
                uint64_t *p = (uint64_t *)(base + (size_t)row[k] * 64);
                acc += *p;
                *p = acc;
            }
            for (long w = 0; w < work; w++)
                acc = acc * 6364136223846793005ULL + 1442695040888963407ULL;
        }
        ns = (seconds() - t0) / (double)ROWS * 1e9;
    }
    printf("{\"mib\": %zu, \"distance\": %zu, \"lines_per_row\": %zu, \"work\": %ld, "
           "\"ns_per_row\": %.2f, \"end\": %u}\n", mib, dist, per_row, work, ns,
           (unsigned)(acc & 1));
    free(idx);
    munmap(raw, bytes + HUGE_BYTES);
    return 0;
}
