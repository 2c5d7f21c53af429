/*
 * fuzz/fuzz_index_load.c — libFuzzer target: bytes -> index file ->
 * lk_index_load (read or mmap) -> lk_index_check, a search and an insert.
 *
 * Input: byte 0 is a mode, the rest is the file.  Mode bit 0: repair the
 * CRC-32C fields (each section whose offset/length lie inside the file, then
 * the header) before loading, so mutations get past the checksums and reach
 * the structural validation; without it, nearly every mutation stops at
 * LK_ERR_CHECKSUM.  Bit 1: load with LK_LOAD_MMAP.
 *
 * The file is a memfd (no disk traffic), opened by path through
 * /proc/self/fd.  The loader must refuse anything inconsistent; a file it
 * accepts must survive lk_index_check (which may still report CORRUPT, e.g.
 * an unreachable node, as the loader does not promise reachability), a
 * search and an insert without any sanitizer report.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lookalike/index.h"
#include "lookalike/status.h"
#include "pindex.h"

static int fd = -1;
static char path[64];

static uint64_t get64(const uint8_t *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
    memcpy(b + off, &v, 4);
}

static void fix_crcs(uint8_t *b, size_t size)
{
    if (size < 256)
        return;
    for (int s = 0; s < 3; s++) {
        uint64_t off = get64(b, 104 + 24 * (size_t)s), len = get64(b, 112 + 24 * (size_t)s);
        if (off <= size && len <= size - off)
            put32(b, 120 + 24 * (size_t)s, lk__crc32c(0, b + off, (size_t)len));
    }
    put32(b, 252, lk__crc32c(0, b, 252));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (fd < 0) {
        fd = memfd_create("fuzz_index", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    unsigned mode = data[0];
    data++;
    size--;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (mode & 1)
        fix_crcs(buf, size);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, size, 0) != (ssize_t)size)
        abort();
    free(buf);

    struct lk_index *idx = NULL;
    struct lk_err err = {0};
    int rc = lk_index_load(path, (mode & 2) ? LK_LOAD_MMAP : 0, &idx, &err);
    if (rc != LK_OK) {
        if (rc > 0 || idx || err.msg[0] == '\0')
            abort();
        return 0;
    }
    (void)lk_index_check(idx, &err);

    struct lk_index_params p;
    if (lk_index_get_params(idx, &p) != LK_OK)
        abort();
    float *q = calloc(p.dim, sizeof *q);
    if (!q)
        abort();
    for (uint32_t i = 0; i < p.dim; i++)
        q[i] = (float)(i % 7) * 0.25f - 0.5f;
    struct lk_hit hits[8];
    size_t n = 0;
    rc = lk_index_search(idx, q, 8, NULL, hits, &n, &err);
    if (rc != LK_OK && rc != LK_ERR_NOMEM)
        abort();        /* a loaded index answers every valid query */
    if (n > 8)
        abort();
    (void)lk_index_add(idx, UINT64_C(0xfeedfacecafe), q, &err);
    rc = lk_index_search(idx, q, 8, NULL, hits, &n, &err);
    if (rc != LK_OK && rc != LK_ERR_NOMEM)
        abort();
    free(q);
    lk_index_free(idx);
    return 0;
}
