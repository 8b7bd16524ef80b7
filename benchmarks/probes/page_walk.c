/* page_walk.c: what a random access costs when the lines it reads are spread over
 * many pages, with and without transparent huge pages (a diagnostic for the kernel's
 * flatness figures, see docs/matching.md "Flatness"; not part of the library).
 *
 *   cc -O2 -o /tmp/page_walk benchmarks/probes/page_walk.c
 *   /tmp/page_walk LINES STRIDE_BYTES HUGE      e.g. 16384 64 1, then 16384 4160 1
 *
 * It chases a pointer through LINES cache lines placed STRIDE_BYTES apart, in a random
 * cycle, and prints the mean ns per load. With STRIDE_BYTES 64 the lines are dense; with
 * 4160 (a page and a line, so that they do not share cache sets) each line is on its
 * own 4 KiB page. The same data then costs more only because of address translation.
 * HUGE 1 advises the region as transparent huge pages before it is touched (as the
 * book does), HUGE 0 forbids them; the AnonHugePages it prints says what was granted.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define HUGE_BYTES ((size_t)1 << 21)
#define LOADS 20000000UL

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long anon_huge_kib(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kib = -1;
    if (f == NULL) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "AnonHugePages:", 14) == 0) kib = atol(line + 14);
    fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s LINES STRIDE_BYTES HUGE(0|1)\n", argv[0]);
        return 2;
    }
    size_t lines = strtoul(argv[1], NULL, 10), stride = strtoul(argv[2], NULL, 10);
    int huge = atoi(argv[3]);
    if (lines < 2 || stride < 64 || stride % 8 != 0 || stride > ((size_t)1 << 20)
        || lines > ((size_t)1 << 32) / stride) {
        fprintf(stderr, "LINES >= 2, STRIDE_BYTES 64..1 MiB and a multiple of 8, "
                        "LINES x STRIDE_BYTES <= 4 GiB\n");
        return 2;
    }
    size_t bytes = (lines * stride + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
    char *raw = mmap(NULL, bytes + HUGE_BYTES, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) { perror("mmap"); return 1; }
    char *base = (char *)(((uintptr_t)raw + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
    madvise(base, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    memset(base, 1, bytes);
    size_t *order = malloc(lines * sizeof *order);
    if (order == NULL) return 1;
    for (size_t i = 0; i < lines; i++) order[i] = i;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (size_t i = lines - 1; i > 0; i--) {           /* Fisher-Yates, xorshift64 */
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        size_t j = (size_t)(rng % (i + 1)), t = order[i];
        order[i] = order[j]; order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)                 /* one cycle through every line */
        *(char **)(base + order[i] * stride) = base + order[(i + 1) % lines] * stride;
    char *p = base + order[0] * stride;
    for (size_t i = 0; i < lines; i++) p = *(char **)p;   /* warm the caches */
    double t0 = seconds();
    for (size_t i = 0; i < LOADS; i++) p = *(char **)p;
    double ns = (seconds() - t0) / (double)LOADS * 1e9;
    printf("{\"lines\": %zu, \"stride_bytes\": %zu, \"span_mib\": %zu, \"huge\": %d, "
           "\"anon_huge_kib\": %ld, \"ns_per_load\": %.2f, \"end\": %d}\n",
           lines, stride, (lines * stride) >> 20, huge, anon_huge_kib(), ns, p == NULL);
    free(order);
    munmap(raw, bytes + HUGE_BYTES);
    return 0;
}
