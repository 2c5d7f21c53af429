/*
 * test_alloc_index.c — allocation-failure injection in the vector index:
 * create + insert (single and batch), search (first search of a fresh index
 * allocates its pooled context; filtered search with a bitmap), delete +
 * compact, reorder, save, load (read and mmap).  malloc-family calls and mmap (the
 * node storage is carved from anonymous mappings) are failed in turn.
 * Each call must return LK_ERR_NOMEM with a message (or succeed), leave the
 * index usable and consistent (lk_index_check, strictly: including
 * reachability after 2-thread batch builds) when it had one, and leak
 * nothing.  An update (lk_index_add on an existing id) that fails must keep
 * the old vector, retrievable and searchable; a batch that fails must
 * leave the live contents exactly as they were (rolled back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_fail.h"
#include "lookalike/index.h"

#define DIM 12
#define N 300
#define MAXN 5000

static float vecs[N * DIM];

static void make_vecs(void)
{
    uint32_t s = 12345;
    for (size_t i = 0; i < N * DIM; i++) {
        s = s * 1664525u + 1013904223u;
        vecs[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

static void params(struct lk_index_params *p, enum lk_index_kind kind, enum lk_storage st)
{
    lk_index_params_default(p, DIM);
    p->kind = kind;
    p->storage = st;
    p->M = 6;
    p->ef_construction = 32;
}

struct build_ctx {
    enum lk_index_kind kind;
    enum lk_storage st;
    int batch;          /* 0: lk_index_add one by one; else lk_index_add_batch with `batch` threads */
};

/* new + N inserts; on an injected failure the partly built index must stay
 * consistent and be freed cleanly. */
static int op_build(void *ctx, struct lk_err *err)
{
    const struct build_ctx *b = ctx;
    struct lk_index_params p;
    params(&p, b->kind, b->st);
    struct lk_index *idx = NULL;
    int rc = lk_index_new(&p, &idx, err);
    if (rc != LK_OK)
        return rc;
    if (b->batch) {
        uint64_t ids[N];
        for (unsigned i = 0; i < N; i++)
            ids[i] = 100 + i;
        rc = lk_index_add_batch(idx, ids, vecs, N, (unsigned)b->batch, err);
    } else {
        for (unsigned i = 0; i < N && rc == LK_OK; i++)
            rc = lk_index_add(idx, 100 + i, vecs + (size_t)i * DIM, err);
    }
    bool fired = af_disarm();    /* the check itself must not be failed */
    struct lk_err e2 = {0};
    int crc = lk_index_check(idx, &e2);
    lk_index_free(idx);
    cr_assert_eq(crc, LK_OK, "index inconsistent after %s insert: %s", fired ? "failed" : "clean", e2.msg);
    return rc;
}

Test(alloc_index, hnsw_f32_insert, .init = make_vecs)
{
    struct build_ctx b = {LK_INDEX_HNSW, LK_STORAGE_F32, 0};
    unsigned long n = af_sweep("hnsw insert", op_build, &b, MAXN, false, 0);
    cr_log_info("hnsw insert: %lu allocations", n);
    af_sweep("hnsw insert", op_build, &b, MAXN, true, 0);
}

Test(alloc_index, hnsw_i8_f16_flat_insert, .init = make_vecs)
{
    struct build_ctx b = {LK_INDEX_HNSW, LK_STORAGE_I8, 0};
    af_sweep("hnsw i8 insert", op_build, &b, MAXN, false, 0);
    b.st = LK_STORAGE_F16;
    af_sweep("hnsw f16 insert", op_build, &b, MAXN, false, 0);
    b = (struct build_ctx){LK_INDEX_FLAT, LK_STORAGE_F32, 0};
    af_sweep("flat insert", op_build, &b, MAXN, false, 0);
}

Test(alloc_index, batch_insert, .init = make_vecs)
{
    struct build_ctx b = {LK_INDEX_HNSW, LK_STORAGE_F32, 1};
    af_sweep("hnsw batch insert", op_build, &b, MAXN, false, 0);
    af_sweep("hnsw batch insert", op_build, &b, MAXN, true, 0);
}

/* Failures on worker threads: which allocation fails depends on scheduling,
 * so this is a randomised sweep; statuses and leaks are checked as above. */
Test(alloc_index, batch_insert_threads, .init = make_vecs)
{
    struct build_ctx b = {LK_INDEX_HNSW, LK_STORAGE_F32, 2};
    af_sweep("hnsw batch insert (2 threads)", op_build, &b, MAXN, false, 0);
}

static struct lk_index *built_n(enum lk_index_kind kind, unsigned n_items);
static struct lk_index *built(enum lk_index_kind kind)
{
    return built_n(kind, N);
}

static struct lk_index *built_n(enum lk_index_kind kind, unsigned n_items)
{
    struct lk_index_params p;
    params(&p, kind, LK_STORAGE_F32);
    struct lk_index *idx;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_new(&p, &idx, &err), LK_OK, "%s", err.msg);
    for (unsigned i = 0; i < n_items; i++)
        cr_assert_eq(lk_index_add(idx, 100 + i, vecs + (size_t)i * DIM, &err), LK_OK, "%s", err.msg);
    return idx;
}

/* Update = replace the vector of an existing id.  Every injected failure
 * must leave the OLD vector in place: returned by lk_index_get_vector and
 * found (exact match, top-1) by search; a success must show the new one.
 * Each attempt runs on a fresh index (built disarmed), so attempt n fails
 * exactly the n-th allocation of the same update.  Cases: `n_items` ids,
 * `holes` of them removed first (the new vector then takes a reused slot). */
static void sweep_update(const char *what, unsigned n_items, bool holes, bool persistent)
{
    const uint64_t id = 100 + 7;
    const float *oldv = vecs + 7 * DIM;
    float newv[DIM];
    for (unsigned d = 0; d < DIM; d++)
        newv[d] = oldv[d] + 0.25f;
    for (unsigned long n = 1; n <= MAXN; n++) {
        struct lk_index *idx = built_n(LK_INDEX_HNSW, n_items);
        size_t count = n_items;
        for (unsigned i = 0; holes && i < n_items; i += 10, count--)
            cr_assert_eq(lk_index_remove(idx, 100 + i + 1, NULL), LK_OK);
        struct lk_err err = {0};
        if (persistent)
            af_arm_persistent(n);
        else
            af_arm(n);
        int rc = lk_index_add(idx, id, newv, &err);
        bool fired = af_disarm();
        cr_assert(rc == LK_OK || (fired && rc == LK_ERR_NOMEM && err.msg[0]), "%s n=%lu: %d %s", what, n, rc,
                  err.msg);
        float got[DIM];
        struct lk_hit h[1];
        size_t k = 0;
        struct lk_search_opts o = {.ef_search = 64};
        const float *want = rc == LK_OK ? newv : oldv;
        cr_assert_eq(lk_index_get_vector(idx, id, got, NULL), LK_OK, "%s n=%lu (rc %d): id lost", what, n, rc);
        cr_assert_arr_eq(got, want, sizeof got, "%s n=%lu (rc %d): wrong vector stored", what, n, rc);
        cr_assert_eq(lk_index_search(idx, want, 1, &o, h, &k, NULL), LK_OK);
        cr_assert(k == 1 && h[0].id == id, "%s n=%lu (rc %d): vector not found by search", what, n, rc);
        cr_assert_eq(lk_index_count(idx), count);
        struct lk_err e2 = {0};
        cr_assert_eq(lk_index_check(idx, &e2), LK_OK, "%s n=%lu (rc %d): %s", what, n, rc, e2.msg);
        lk_index_free(idx);
        if (!fired) {
            cr_log_info("%s: %lu allocations", what, n - 1);
            return;
        }
    }
    cr_assert_fail("%s: still allocating after %d allocations", what, MAXN);
}

Test(alloc_index, update_keeps_old_vector_on_failure, .init = make_vecs)
{
    for (int persistent = 0; persistent < 2; persistent++) {
        sweep_update("update", N, false, persistent);
        sweep_update("update (slot reuse)", N, true, persistent);
        /* 256 ids: the id map is exactly at its growth threshold, so
         * recording the id's new slot rehashes it — an allocation made
         * after the new node is linked */
        sweep_update("update (id map growth)", 256, false, persistent);
    }
}

/* lk_index_add_batch rolls back: after an injected failure the live
 * contents are exactly those before the call (updated ids keep their old
 * vectors, new ids are absent); after success every row is applied.  Base:
 * 200 ids; batch: 40 updates + 60 new ids, 1 and 2 threads. */
static void sweep_batch_rollback(unsigned threads, bool persistent)
{
    enum { BASE = 200, UPD = 40, NEW = 60 };
    uint64_t ids[UPD + NEW];
    static float bv[(UPD + NEW) * DIM];
    for (unsigned i = 0; i < UPD + NEW; i++) {
        ids[i] = i < UPD ? 100 + i : 5000 + i;
        for (unsigned d = 0; d < DIM; d++)
            bv[i * DIM + d] = vecs[(size_t)(BASE + i) * DIM + d] + 0.5f;
    }
    for (unsigned long n = 1; n <= MAXN; n++) {
        struct lk_index *idx = built_n(LK_INDEX_HNSW, BASE);
        struct lk_err err = {0};
        if (persistent)
            af_arm_persistent(n);
        else
            af_arm(n);
        int rc = lk_index_add_batch(idx, ids, bv, UPD + NEW, threads, &err);
        bool fired = af_disarm();
        cr_assert(rc == LK_OK || (fired && rc == LK_ERR_NOMEM && err.msg[0]), "batch n=%lu: %d %s", n, rc,
                  err.msg);
        float got[DIM];
        for (unsigned i = 0; i < BASE; i++) {
            const float *want = rc == LK_OK && i < UPD ? bv + (size_t)i * DIM : vecs + (size_t)i * DIM;
            cr_assert_eq(lk_index_get_vector(idx, 100 + i, got, NULL), LK_OK, "batch n=%lu (rc %d): id lost", n, rc);
            cr_assert_arr_eq(got, want, sizeof got, "batch n=%lu (rc %d): id %u has the wrong vector", n, rc,
                             100 + i);
        }
        for (unsigned i = UPD; i < UPD + NEW; i++)
            cr_assert_eq(lk_index_contains(idx, ids[i]), rc == LK_OK, "batch n=%lu (rc %d): new id %s", n, rc,
                         rc == LK_OK ? "missing" : "left behind");
        cr_assert_eq(lk_index_count(idx), rc == LK_OK ? (size_t)BASE + NEW : (size_t)BASE);
        struct lk_err e2 = {0};
        cr_assert_eq(lk_index_check(idx, &e2), LK_OK, "batch n=%lu (rc %d): %s", n, rc, e2.msg);
        lk_index_free(idx);
        if (!fired) {
            cr_log_info("batch rollback (%u threads): %lu allocations", threads, n - 1);
            return;
        }
    }
    cr_assert_fail("batch: still allocating after %d allocations", MAXN);
}

Test(alloc_index, batch_failure_rolls_back, .init = make_vecs)
{
    for (int persistent = 0; persistent < 2; persistent++) {
        sweep_batch_rollback(1, persistent);
        sweep_batch_rollback(2, persistent);
    }
}

/* Filtered search through a bitmap on a copy made by rebuild, so the first
 * search of a fresh index (context allocation) is under test each time. */
static int op_search(void *ctx, struct lk_err *err)
{
    const struct lk_index *src = ctx;
    struct lk_index *idx = NULL;
    int rc = lk_index_rebuild(src, 1, &idx, err);
    if (rc != LK_OK)
        return rc;
    struct lk_bitmap *bm = NULL;
    struct lk_hit hits[10];
    size_t n = 0;
    rc = lk_index_search(idx, vecs, 10, NULL, hits, &n, err);
    if (rc == LK_OK)
        rc = lk_index_bitmap_new(idx, &bm, err);
    for (unsigned i = 0; rc == LK_OK && i < N; i += 2)
        rc = lk_bitmap_set_id(bm, idx, 100 + i, err);
    if (rc == LK_OK) {
        struct lk_search_opts o = {.allow = bm};
        rc = lk_index_search(idx, vecs + DIM, 10, &o, hits, &n, err);
        if (rc == LK_OK)
            cr_assert_eq(n, 10);
    }
    lk_bitmap_free(bm);
    lk_index_free(idx);
    return rc;
}

Test(alloc_index, rebuild_and_search, .init = make_vecs)
{
    struct lk_index *idx = built(LK_INDEX_HNSW);
    af_sweep("rebuild+search", op_search, idx, MAXN, false, 0);
    af_sweep("rebuild+search", op_search, idx, MAXN, true, 0);
    lk_index_free(idx);
}

/* remove every third item, then compact; the index is built disarmed so
 * only remove + compact allocations are failed.  The index must be
 * consistent after every failure. */
Test(alloc_index, delete_and_compact, .init = make_vecs)
{
    /* Arm around remove + compact only: build disarmed, then re-arm. */
    for (unsigned long n = 1; n <= MAXN; n++) {
        struct lk_index *idx = built(LK_INDEX_HNSW);
        struct lk_err err = {0};
        af_arm(n);
        int rc = LK_OK;
        for (unsigned i = 0; i < N && rc == LK_OK; i += 3)
            rc = lk_index_remove(idx, 100 + i, &err);
        if (rc == LK_OK)
            rc = lk_index_compact(idx, 1, &err);
        bool fired = af_disarm();
        struct lk_err e2 = {0};
        cr_assert_eq(lk_index_check(idx, &e2), LK_OK, "n=%lu: inconsistent after delete/compact: %s", n, e2.msg);
        lk_index_free(idx);
        if (!fired) {
            cr_assert_eq(rc, LK_OK, "%s", err.msg);
            break;
        }
        cr_assert(rc == LK_OK || rc == LK_ERR_NOMEM, "n=%lu: %d %s", n, rc, err.msg);
    }
}

/* lk_index_reorder allocates everything before touching the index: a
 * failed allocation gives LK_ERR_NOMEM and the index exactly as it was
 * (same hits), a clean run a consistent index with the same hits. */
Test(alloc_index, reorder, .init = make_vecs)
{
    for (unsigned long n = 1; n <= MAXN; n++) {
        struct lk_index *idx = built(LK_INDEX_HNSW);
        for (unsigned i = 0; i < N; i += 4)
            cr_assert_eq(lk_index_remove(idx, 100 + i, NULL), LK_OK);
        struct lk_hit before[10], after[10];
        size_t nb, na;
        cr_assert_eq(lk_index_search(idx, vecs + 7 * DIM, 10, NULL, before, &nb, NULL), LK_OK);
        struct lk_err err = {0};
        af_arm(n);
        int rc = lk_index_reorder(idx, &err);
        bool fired = af_disarm();
        struct lk_err e2 = {0};
        cr_assert_eq(lk_index_check(idx, &e2), LK_OK, "n=%lu: inconsistent after reorder: %s", n, e2.msg);
        cr_assert_eq(lk_index_search(idx, vecs + 7 * DIM, 10, NULL, after, &na, NULL), LK_OK);
        cr_assert_eq(na, nb);
        for (size_t i = 0; i < na; i++)
            cr_assert(after[i].id == before[i].id && after[i].distance == before[i].distance, "n=%lu hit %zu", n, i);
        lk_index_free(idx);
        if (!fired) {
            cr_assert_eq(rc, LK_OK, "%s", err.msg);
            break;
        }
        cr_assert_eq(rc, LK_ERR_NOMEM, "n=%lu: %d %s", n, rc, err.msg);
        cr_assert(err.msg[0]);
    }
}

struct io_ctx {
    const struct lk_index *idx;
    char path[256];
    unsigned flags;
};

static int op_save(void *ctx, struct lk_err *err)
{
    struct io_ctx *c = ctx;
    return lk_index_save(c->idx, c->path, err);
}

static int op_load(void *ctx, struct lk_err *err)
{
    struct io_ctx *c = ctx;
    struct lk_index *idx = NULL;
    int rc = lk_index_load(c->path, c->flags, &idx, err);
    if (rc == LK_OK) {
        struct lk_hit hits[5];
        size_t n;
        rc = lk_index_search(idx, vecs, 5, NULL, hits, &n, err);
        if (rc == LK_OK)
            rc = lk_index_add(idx, 99999, vecs, err);  /* copy-on-write growth after load */
        lk_index_free(idx);
    } else {
        cr_assert_null(idx);
    }
    return rc;
}

Test(alloc_index, save_and_load, .init = make_vecs)
{
    struct lk_index *idx = built(LK_INDEX_HNSW);
    struct io_ctx c = {.idx = idx};
    snprintf(c.path, sizeof c.path, "%s/lk-fault-index-%d.lkidx", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    af_sweep("save", op_save, &c, MAXN, false, 0);
    /* the file left by the last (clean) save loads */
    af_sweep("load", op_load, &c, MAXN, false, 0);
    af_sweep("load", op_load, &c, MAXN, true, 0);
    c.flags = LK_LOAD_MMAP;
    af_sweep("load mmap", op_load, &c, MAXN, false, 0);
    unlink(c.path);
    lk_index_free(idx);
}
