/* prefetch_hides.c: whether a software prefetch, issued some rows ahead, hides the cost
 * of random access over a big region on this machine (a diagnostic for the kernel's
 * flatness figures, see docs/matching.md "Flatness"; not part of the library).
 *
 *   cc -O2 -o /tmp/prefetch_hides benchmarks/probes/prefetch_hides.c
 *   /tmp/prefetch_hides MIB DISTANCE LINES_PER_ROW     e.g. 1 16 1, 64 0 1, 64 16 1, 64 16 3
 *
 * Each of 4,000,000 rows reads and writes LINES_PER_ROW cache lines at random places in
 * a region of MIB MiB (advised as transparent huge pages, as the book's arrays are), then
 * does about 20 ns of arithmetic, as a row of the kernel does its own work. With DISTANCE
 * > 0 the lines of row i + DISTANCE are prefetched during row i. It prints the mean ns
 * per row of the second of two passes.
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
#define WORK 20

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The k-th line of row i: a fixed pseudo-random function of (i, k). */
static size_t line_of(const uint32_t *idx, size_t i, size_t k, size_t lines) {
    return ((size_t)idx[i] * 2654435761u + k * 40503u) % lines;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MIB DISTANCE LINES_PER_ROW\n", argv[0]);
        return 2;
    }
    size_t mib = strtoul(argv[1], NULL, 10), dist = strtoul(argv[2], NULL, 10);
    size_t per_row = strtoul(argv[3], NULL, 10);
    if (mib < 1 || mib > 4096 || dist > 1024 || per_row < 1 || per_row > 16) {
        fprintf(stderr, "MIB 1..4096, DISTANCE 0..1024, LINES_PER_ROW 1..16\n");
        return 2;
    }
    size_t bytes = mib << 20, lines = bytes / 64;
    char *raw = mmap(NULL, bytes + HUGE_BYTES, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) { perror("mmap"); return 1; }
    char *base = (char *)(((uintptr_t)raw + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
    madvise(base, bytes, MADV_HUGEPAGE);
    memset(base, 1, bytes);
    uint32_t *idx = malloc(ROWS * sizeof *idx);
    if (idx == NULL) return 1;
    uint64_t rng = 88172645463325252ULL;
    for (size_t i = 0; i < ROWS; i++) {                /* xorshift64 */
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        idx[i] = (uint32_t)rng;
    }
    uint64_t acc = 0;
    double ns = 0;
    for (int pass = 0; pass < 2; pass++) {
        double t0 = seconds();
        for (size_t i = 0; i < ROWS; i++) {
            for (size_t k = 0; k < per_row; k++) {
                if (dist && i + dist < ROWS)
                    __builtin_prefetch(base + line_of(idx, i + dist, k, lines) * 64, 1, 3);
                uint64_t *p = (uint64_t *)(base + line_of(idx, i, k, lines) * 64);
                acc += *p;
                *p = acc;
            }
            for (int w = 0; w < WORK; w++)
                acc = acc * 6364136223846793005ULL + 1442695040888963407ULL;
        }
        ns = (seconds() - t0) / (double)ROWS * 1e9;
    }
    printf("{\"mib\": %zu, \"distance\": %zu, \"lines_per_row\": %zu, \"ns_per_row\": %.2f, "
           "\"end\": %u}\n", mib, dist, per_row, ns, (unsigned)(acc & 1));
    return 0;
}
