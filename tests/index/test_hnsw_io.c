/*
 * tests/index/test_hnsw_io.c — index/hnsw_io.c and crc32c.c: save/load
 * round trips (plain and mmap, every kind and storage); a small index file
 * truncated at EVERY offset, with random bit flips, with wrong magic or
 * version, or with hostile header values (valid CRC) loads with a clean
 * error and never crashes; save is atomic (no temp files left, old file
 * replaced whole) and reports I/O errors.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lk_test_index.h"
#include "pindex.h"

#define D 16

static char dir[64], path[128];

static void setup(void)
{
    /* tmpfs when available: the truncation test rewrites a file thousands
     * of times, which is slow on disks mounted with online discard */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/lk_io_%d_XXXXXX", base, (int)getpid());
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/index.lk", dir);
}
static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}
TestSuite(hnsw_io, .init = setup, .fini = teardown);

static unsigned char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}
static void spit(const char *p, const unsigned char *b, size_t len)
{
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

static struct lk_index *small_index(enum lk_index_kind kind, enum lk_storage st, size_t n, float **xo)
{
    float *x = lkt_clustered(n, D, 5, 42, 0, NULL);
    struct lk_index *ix = lkt_new(kind, D, LK_METRIC_L2, st);
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = i * 11 + 5;
    cr_assert_eq(lk_index_add_batch(ix, ids, x, n, 1, NULL), LK_OK);
    for (size_t i = 0; i < n; i += 7)
        cr_assert_eq(lk_index_remove(ix, ids[i], NULL), LK_OK);
    free(ids);
    if (xo)
        *xo = x;
    else
        free(x);
    return ix;
}

static void assert_same_results(const struct lk_index *a, const struct lk_index *b, const float *x, size_t nq)
{
    for (size_t q = 0; q < nq; q++) {
        struct lk_hit ha[10], hb[10];
        size_t na, nb;
        cr_assert_eq(lk_index_search(a, x + q * D, 10, NULL, ha, &na, NULL), LK_OK);
        cr_assert_eq(lk_index_search(b, x + q * D, 10, NULL, hb, &nb, NULL), LK_OK);
        cr_assert_eq(na, nb);
        for (size_t i = 0; i < na; i++) {
            cr_assert_eq(ha[i].id, hb[i].id);
            cr_assert_eq(ha[i].distance, hb[i].distance);
        }
    }
}

Test(hnsw_io, round_trip_all_kinds)
{
    for (int kind = 0; kind <= LK_INDEX_FLAT; kind++)
        for (int st = 0; st <= LK_STORAGE_I8; st++) {
            float *x;
            size_t n = 5000; /* > one 4096-slot chunk */
            struct lk_index *ix = small_index((enum lk_index_kind)kind, (enum lk_storage)st, n, &x);
            struct lk_err e = {0};
            cr_assert_eq(lk_index_save(ix, path, &e), LK_OK, "%s", e.msg);
            for (unsigned fl = 0; fl <= LK_LOAD_MMAP; fl++) {
                struct lk_index *g = NULL;
                cr_assert_eq(lk_index_load(path, fl, &g, &e), LK_OK, "kind %d storage %d flags %u: %s", kind, st,
                             fl, e.msg);
                cr_assert_eq(lk_index_check(g, &e), LK_OK, "%s", e.msg);
                cr_assert_eq(lk_index_count(g), lk_index_count(ix));
                struct lk_index_params pa, pb;
                lk_index_get_params(ix, &pa), lk_index_get_params(g, &pb);
                cr_assert(memcmp(&pa, &pb, sizeof pa) == 0);
                struct lk_index_stats st1;
                lk_index_stats(g, &st1);
                cr_assert_eq(st1.mapped, (int)fl);
                assert_same_results(ix, g, x, 50);
                /* the loaded index stays writable: reuse of a deleted slot, growth past the file */
                cr_assert_eq(lk_index_add(g, 1, x, NULL), LK_OK);
                for (size_t i = 0; i < 100; i++)
                    cr_assert_eq(lk_index_add(g, 10000000 + i, x + i * D, NULL), LK_OK);
                cr_assert_eq(lk_index_check(g, &e), LK_OK, "%s", e.msg);
                lk_index_free(g);
            }
            lk_index_free(ix);
            free(x);
        }
}

Test(hnsw_io, empty_index)
{
    struct lk_index *ix = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_IP, LK_STORAGE_F32), *g;
    cr_assert_eq(lk_index_save(ix, path, NULL), LK_OK);
    for (unsigned fl = 0; fl <= LK_LOAD_MMAP; fl++) {
        cr_assert_eq(lk_index_load(path, fl, &g, NULL), LK_OK);
        cr_assert_eq(lk_index_count(g), 0);
        float v[D] = {1};
        cr_assert_eq(lk_index_add(g, 3, v, NULL), LK_OK);
        lk_index_free(g);
    }
    lk_index_free(ix);
}

Test(hnsw_io, truncated_at_every_offset)
{
    struct lk_index *ix = small_index(LK_INDEX_HNSW, LK_STORAGE_F32, 60, NULL);
    cr_assert_eq(lk_index_save(ix, path, NULL), LK_OK);
    size_t len;
    unsigned char *b = slurp(path, &len);
    char tp[160];
    snprintf(tp, sizeof tp, "%s/trunc.lk", dir);
    for (size_t cut = 0; cut < len; cut++) {
        spit(tp, b, cut);
        struct lk_index *g = NULL;
        struct lk_err e = {0};
        int rc = lk_index_load(tp, cut & 1 ? LK_LOAD_MMAP : 0, &g, &e);
        cr_assert(rc == LK_ERR_TRUNCATED || rc == LK_ERR_FORMAT || rc == LK_ERR_CORRUPT || (cut == 0 && rc == LK_ERR_EMPTY),
                  "cut at %zu of %zu: rc %d (%s)", cut, len, rc, e.msg);
        cr_assert_null(g);
        cr_assert(e.msg[0]);
    }
    /* the file with one byte appended is rejected too */
    unsigned char *b2 = malloc(len + 1);
    memcpy(b2, b, len);
    b2[len] = 0;
    spit(tp, b2, len + 1);
    struct lk_index *g = NULL;
    cr_assert_eq(lk_index_load(tp, 0, &g, NULL), LK_ERR_CORRUPT);
    free(b), free(b2);
    lk_index_free(ix);
}

Test(hnsw_io, bit_flips)
{
    struct lk_index *ix = small_index(LK_INDEX_HNSW, LK_STORAGE_I8, 60, NULL);
    cr_assert_eq(lk_index_save(ix, path, NULL), LK_OK);
    size_t len;
    unsigned char *b = slurp(path, &len);
    char tp[160];
    snprintf(tp, sizeof tp, "%s/flip.lk", dir);
    uint64_t s = 99;
    for (int t = 0; t < 400; t++) {
        size_t pos = (size_t)(lkt_next(&s) % len);
        unsigned bit = (unsigned)(lkt_next(&s) % 8);
        b[pos] ^= (unsigned char)(1u << bit);
        spit(tp, b, len);
        b[pos] ^= (unsigned char)(1u << bit);
        struct lk_index *g = NULL;
        struct lk_err e = {0};
        int rc = lk_index_load(tp, t & 1 ? LK_LOAD_MMAP : 0, &g, &e);
        cr_assert(rc == LK_ERR_CHECKSUM || rc == LK_ERR_CORRUPT || rc == LK_ERR_FORMAT,
                  "flip at byte %zu bit %u was accepted (rc %d)", pos, bit, rc);
        cr_assert_null(g);
    }
    free(b);
    lk_index_free(ix);
}

static void rewrite_header_crc(unsigned char *b)
{
    uint32_t c = lk__crc32c(0, b, 252);
    memcpy(b + 252, &c, 4);
}

Test(hnsw_io, wrong_magic_version_and_hostile_headers)
{
    struct lk_index *ix = small_index(LK_INDEX_HNSW, LK_STORAGE_F32, 60, NULL);
    cr_assert_eq(lk_index_save(ix, path, NULL), LK_OK);
    size_t len;
    unsigned char *orig = slurp(path, &len), *b = malloc(len);
    char tp[160];
    snprintf(tp, sizeof tp, "%s/bad.lk", dir);
    struct lk_index *g = NULL;
    struct lk_err e = {0};

    memcpy(b, orig, len);
    memcpy(b, "GIF89a..", 8);
    spit(tp, b, len);
    cr_assert_eq(lk_index_load(tp, 0, &g, &e), LK_ERR_FORMAT);
    cr_assert(strstr(e.msg, "magic"));

    memcpy(b, orig, len);
    uint32_t v = 2;
    memcpy(b + 8, &v, 4);
    rewrite_header_crc(b);
    spit(tp, b, len);
    cr_assert_eq(lk_index_load(tp, 0, &g, &e), LK_ERR_FORMAT);
    cr_assert(strstr(e.msg, "version"), "%s", e.msg);

    /* hostile values with a valid header CRC: each must be refused */
    struct {
        size_t off;
        uint64_t val;
        int width;
    } cases[] = {
        {32, 0, 4},                  /* dim 0 */
        {32, 1u << 30, 4},           /* dim huge */
        {36, 1000, 4},               /* M out of range */
        {60, 8, 4},                  /* node size inconsistent */
        {68, 0xffffffffu, 4},        /* n_slots huge */
        {72, 1u << 20, 8},           /* n_live inconsistent */
        {88, ((uint64_t)31 << 32) | 5, 8}, /* entry point at a level nobody has */
        {88, 1000000, 8},            /* entry point out of range */
        {104, 1, 8},                 /* nodes offset overlapping the header */
        {104, (uint64_t)1 << 62, 8}, /* nodes offset beyond the file */
        {112, 1ull << 40, 8},        /* nodes length huge */
        {152, 1ull << 40, 8},        /* upper length huge */
        {20, 5, 4},                  /* unknown kind */
        {28, 9, 4},                  /* unknown storage */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, orig, len);
        if (cases[i].width == 4) {
            uint32_t w = (uint32_t)cases[i].val;
            memcpy(b + cases[i].off, &w, 4);
        } else {
            memcpy(b + cases[i].off, &cases[i].val, 8);
        }
        rewrite_header_crc(b);
        spit(tp, b, len);
        e.msg[0] = 0;
        int rc = lk_index_load(tp, i & 1 ? LK_LOAD_MMAP : 0, &g, &e);
        cr_assert(rc < 0 && rc != LK_ERR_NOMEM, "hostile case %zu accepted (rc %d)", i, rc);
        cr_assert_null(g);
        cr_assert(e.msg[0]);
    }
    /* a neighbour id out of range inside the (re-checksummed) node section */
    memcpy(b, orig, len);
    uint64_t noff;
    memcpy(&noff, b + 104, 8);
    uint32_t badlink = 100000;
    memcpy(b + noff + 8, &badlink, 4); /* node 0, first level-0 link */
    uint64_t nlen;
    memcpy(&nlen, b + 112, 8);
    uint32_t c = lk__crc32c(0, b + noff, nlen);
    memcpy(b + 120, &c, 4);
    rewrite_header_crc(b);
    spit(tp, b, len);
    cr_assert_eq(lk_index_load(tp, 0, &g, &e), LK_ERR_CORRUPT);
    cr_assert(strstr(e.msg, "link"), "%s", e.msg);

    /* missing file, not a regular index */
    cr_assert_eq(lk_index_load("/nonexistent/dir/x.lk", 0, &g, &e), LK_ERR_IO);
    spit(tp, (const unsigned char *)"", 0);
    cr_assert_eq(lk_index_load(tp, 0, &g, &e), LK_ERR_EMPTY);
    cr_assert_eq(lk_index_load(tp, 0x80, &g, &e), LK_ERR_INVALID_ARG);
    free(orig), free(b);
    lk_index_free(ix);
}

Test(hnsw_io, atomic_save)
{
    struct lk_index *a = small_index(LK_INDEX_HNSW, LK_STORAGE_F32, 200, NULL);
    struct lk_index *b = small_index(LK_INDEX_FLAT, LK_STORAGE_F32, 50, NULL);
    cr_assert_eq(lk_index_save(a, path, NULL), LK_OK);
    cr_assert_eq(lk_index_save(b, path, NULL), LK_OK); /* replaces */
    struct lk_index *g;
    cr_assert_eq(lk_index_load(path, 0, &g, NULL), LK_OK);
    cr_assert_eq(lk_index_count(g), lk_index_count(b));
    lk_index_free(g);
    /* only the index file is in the directory: no temp files left behind */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            files++;
    closedir(d);
    cr_assert_eq(files, 1);
    struct lk_err er = {0};
    cr_assert_eq(lk_index_save(a, "/nonexistent/dir/x.lk", &er), LK_ERR_IO);
    cr_assert(er.msg[0]);
    lk_index_free(a), lk_index_free(b);
}

Test(hnsw_io, crc32c_known_values)
{
    cr_assert_eq(lk__crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(lk__crc32c(0, "", 0), 0u);
    /* incremental == one shot; hardware == table (both paths) */
    unsigned char buf[1000];
    for (int i = 0; i < 1000; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    uint32_t one = lk__crc32c(0, buf, 1000);
    cr_assert_eq(lk__crc32c(lk__crc32c(0, buf, 333), buf + 333, 667), one);
    cr_assert_eq(lk__crc32c_sw(0, buf, 1000), one);
}
