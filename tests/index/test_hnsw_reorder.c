/*
 * tests/index/test_hnsw_reorder.c — index/hnsw_reorder.c: after
 * lk_index_reorder the graph passes lk_index_check, every search returns
 * the same ids and distances as before (F32, F16, I8, COSINE, with
 * tombstones, filtered), deleted ids stay deleted, inserts/deletes/updates
 * and save/load keep working, the renumbering really brings neighbours
 * closer (through index/pindex.h), and the edge cases (NULL, empty, one
 * node, flat) are no-ops or clean errors.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lk_test_index.h"
#include "pindex.h"

#define N 3000
#define D 24
#define NQ 200
#define K 10

static uint64_t idbase(size_t i) { return 500000 + 7 * (uint64_t)i; }

static struct lk_index *build(enum lk_metric metric, enum lk_storage storage, const float *x, size_t n,
                              unsigned threads)
{
    struct lk_index *ix = lkt_new(LK_INDEX_HNSW, D, metric, storage);
    cr_assert(ix);
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = idbase(i);
    cr_assert_eq(lk_index_add_batch(ix, ids, x, n, threads, NULL), LK_OK);
    free(ids);
    return ix;
}

static int hit_cmp(const void *a, const void *b)
{
    const struct lk_hit *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance < y->distance ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* All NQ searches' hits (K per query, padded with zeros), each query's list
 * sorted by (distance, id) so hits tied at equal distance compare equal in
 * any order.  Caller frees. */
static struct lk_hit *all_hits(const struct lk_index *ix, const float *q, const struct lk_search_opts *opts,
                               size_t *counts)
{
    struct lk_hit *out = calloc(NQ * K, sizeof *out);
    for (size_t i = 0; i < NQ; i++) {
        struct lk_search_opts o = opts ? *opts : (struct lk_search_opts){0};
        struct lk_err e = {0};
        cr_assert_eq(lk_index_search(ix, q + i * D, K, &o, out + i * K, &counts[i], &e), LK_OK, "%s", e.msg);
        qsort(out + i * K, counts[i], sizeof *out, hit_cmp);
    }
    return out;
}

static void assert_same(const struct lk_hit *a, const size_t *na, const struct lk_hit *b, const size_t *nb)
{
    for (size_t i = 0; i < NQ; i++) {
        cr_assert_eq(na[i], nb[i], "query %zu: %zu hits before, %zu after", i, na[i], nb[i]);
        for (size_t j = 0; j < na[i]; j++) {
            cr_assert_eq(a[i * K + j].id, b[i * K + j].id, "query %zu hit %zu: id %llu before, %llu after", i, j,
                         (unsigned long long)a[i * K + j].id, (unsigned long long)b[i * K + j].id);
            cr_assert_eq(a[i * K + j].distance, b[i * K + j].distance, "query %zu hit %zu: distance changed", i, j);
        }
    }
}

static void check_ok(const struct lk_index *ix)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(ix, &e), LK_OK, "%s", e.msg);
}

static void reorder_ok(struct lk_index *ix)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_index_reorder(ix, &e), LK_OK, "%s", e.msg);
    check_ok(ix);
}

/* Search before, reorder, search after: same hits. */
static void same_hits_across_reorder(struct lk_index *ix, const float *q, const struct lk_search_opts *opts)
{
    size_t na[NQ], nb[NQ];
    struct lk_hit *a = all_hits(ix, q, opts, na);
    reorder_ok(ix);
    struct lk_hit *b = all_hits(ix, q, opts, nb);
    assert_same(a, na, b, nb);
    free(a), free(b);
}

/* Mean |slot(a) - slot(b)| over level-0 links: the locality the reorder is for. */
static double mean_link_span(const struct lk_index *ix)
{
    const struct lk__ctab *t = lk__tab(ix);
    uint32_t ns = atomic_load(&ix->s.n_slots);
    double sum = 0.0;
    size_t cnt = 0;
    for (uint32_t id = 0; id < ns; id++) {
        char *n = lk__node_t(ix, t, id);
        for (uint32_t i = 0; i < *lk__count0(n); i++) {
            uint32_t nb = lk__links0(n)[i];
            sum += nb > id ? nb - id : id - nb;
            cnt++;
        }
    }
    return cnt ? sum / (double)cnt : 0.0;
}

Test(hnsw_reorder, same_hits_and_locality_f32_l2)
{
    float *x = lkt_clustered(N, D, 30, 11, 0, NULL);
    float *q = lkt_clustered(NQ, D, 30, 12, 0, NULL);
    struct lk_index *ix = build(LK_METRIC_L2, LK_STORAGE_F32, x, N, 1);
    struct lk_index_stats st0, st1;
    lk_index_stats(ix, &st0);
    double span0 = mean_link_span(ix);
    same_hits_across_reorder(ix, q, NULL);
    double span1 = mean_link_span(ix);
    lk_index_stats(ix, &st1);
    cr_assert_eq(st1.count, st0.count);
    cr_assert_eq(st1.slots, st0.slots);
    cr_assert_eq(st1.max_level, st0.max_level);
    cr_assert_eq((uint32_t)atomic_load(&ix->s.ep), 0u, "the entry point becomes slot 0");
    cr_assert(span1 < 0.85 * span0, "mean link span %.1f before, %.1f after", span0, span1);
    /* every id still maps to its own vector */
    float v[D];
    for (size_t i = 0; i < N; i += 37) {
        cr_assert_eq(lk_index_get_vector(ix, idbase(i), v, NULL), LK_OK);
        cr_assert_arr_eq(v, x + i * D, sizeof v);
    }
    /* a second reorder of an already ordered index is harmless */
    same_hits_across_reorder(ix, q, NULL);
    lk_index_free(ix), free(x), free(q);
}

Test(hnsw_reorder, same_hits_compressed_and_cosine)
{
    float *x = lkt_clustered(N, D, 30, 21, 0, NULL);
    float *q = lkt_clustered(NQ, D, 30, 22, 0, NULL);
    const struct { enum lk_metric m; enum lk_storage s; } cfg[] = {
        {LK_METRIC_L2, LK_STORAGE_F16}, {LK_METRIC_L2, LK_STORAGE_I8}, {LK_METRIC_COSINE, LK_STORAGE_F32},
        {LK_METRIC_COSINE, LK_STORAGE_I8}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        struct lk_index *ix = build(cfg[c].m, cfg[c].s, x, N, 1);
        same_hits_across_reorder(ix, q, NULL);
        /* the float32 copies moved with their nodes */
        float v[D];
        cr_assert_eq(lk_index_get_vector(ix, idbase(5), v, NULL), LK_OK);
        if (cfg[c].m == LK_METRIC_L2)
            cr_assert_arr_eq(v, x + 5 * D, sizeof v);
        lk_index_free(ix);
    }
    free(x), free(q);
}

static int deleted_row(uint64_t id) { return ((id - 500000) / 7) % 10 < 3; }

Test(hnsw_reorder, tombstones_then_inserts_and_deletes)
{
    float *x = lkt_clustered(N + 500, D, 30, 31, 0, NULL);
    float *q = lkt_clustered(NQ, D, 30, 32, 0, NULL);
    struct lk_index *ix = build(LK_METRIC_L2, LK_STORAGE_F32, x, N, 2);
    for (size_t i = 0; i < N; i++)
        if (deleted_row(idbase(i)))
            cr_assert_eq(lk_index_remove(ix, idbase(i), NULL), LK_OK);
    size_t live = lk_index_count(ix);
    struct lk_index_stats st0, st1;
    lk_index_stats(ix, &st0);
    same_hits_across_reorder(ix, q, NULL);
    lk_index_stats(ix, &st1);
    cr_assert_eq(lk_index_count(ix), live);
    cr_assert_eq(st1.deleted, st0.deleted);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(lk_index_contains(ix, idbase(i)), !deleted_row(idbase(i)));
    struct lk_hit out[K];
    size_t n;
    for (size_t i = 0; i < NQ; i++) {
        cr_assert_eq(lk_index_search(ix, q + i * D, K, NULL, out, &n, NULL), LK_OK);
        cr_assert_eq(n, (size_t)K);
        for (size_t j = 0; j < n; j++)
            cr_assert(!deleted_row(out[j].id), "deleted id %llu returned", (unsigned long long)out[j].id);
    }
    /* inserts reuse the renamed free slots (no new slots while tombstones last) */
    for (size_t i = N; i < N + 500; i++)
        cr_assert_eq(lk_index_add(ix, idbase(i), x + i * D, NULL), LK_OK);
    lk_index_stats(ix, &st1);
    cr_assert_eq(st1.slots, st0.slots, "inserts after reorder reuse tombstoned slots");
    cr_assert_eq(st1.deleted, st0.deleted - 500);
    /* more deletes and an update */
    for (size_t i = 5; i < N; i += 10)
        cr_assert_eq(lk_index_remove(ix, idbase(i), NULL), LK_OK);
    cr_assert_eq(lk_index_add(ix, idbase(9), x + 10 * D, NULL), LK_OK);
    check_ok(ix);
    /* recall against an oracle of the same live items */
    struct lk_index *f = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    for (size_t i = 0; i < N + 500; i++)
        if (lk_index_contains(ix, idbase(i))) {
            float v[D];
            cr_assert_eq(lk_index_get_vector(ix, idbase(i), v, NULL), LK_OK);
            cr_assert_eq(lk_index_add(f, idbase(i), v, NULL), LK_OK);
        }
    cr_assert_eq(lk_index_count(f), lk_index_count(ix));
    double r = lkt_recall(ix, f, q, NQ, D, K, NULL);
    cr_assert(r >= 0.95, "recall@10 after reorder + churn = %.4f", r);
    /* reorder again with everything mixed */
    same_hits_across_reorder(ix, q, NULL);
    lk_index_free(ix), lk_index_free(f), free(x), free(q);
}

Test(hnsw_reorder, save_load_round_trip)
{
    float *x = lkt_clustered(N, D, 30, 41, 0, NULL);
    float *q = lkt_clustered(NQ, D, 30, 42, 0, NULL);
    struct lk_index *ix = build(LK_METRIC_L2, LK_STORAGE_I8, x, N, 2);
    for (size_t i = 0; i < N; i += 5)
        cr_assert_eq(lk_index_remove(ix, idbase(i), NULL), LK_OK);
    reorder_ok(ix);
    size_t na[NQ], nb[NQ], nc[NQ];
    struct lk_hit *a = all_hits(ix, q, NULL, na);
    char path[] = "/tmp/lk_test_reorder_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_save(ix, path, &e), LK_OK, "%s", e.msg);
    struct lk_index *lx = NULL, *mx = NULL;
    cr_assert_eq(lk_index_load(path, 0, &lx, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_index_load(path, LK_LOAD_MMAP, &mx, &e), LK_OK, "%s", e.msg);
    unlink(path);
    check_ok(lx);
    struct lk_hit *b = all_hits(lx, q, NULL, nb);
    assert_same(a, na, b, nb);
    /* a mapped index can be reordered too (its pages become private) */
    for (size_t i = 2; i < N; i += 9)
        lk_index_remove(mx, idbase(i), NULL);
    struct lk_hit *c0 = all_hits(mx, q, NULL, nc);
    same_hits_across_reorder(mx, q, NULL);
    cr_assert_eq(lk_index_add(mx, 1, x, NULL), LK_OK);
    check_ok(mx);
    free(a), free(b), free(c0);
    lk_index_free(ix), lk_index_free(lx), lk_index_free(mx), free(x), free(q);
}

static int allow_mod(uint64_t id, void *user)
{
    return ((id - 500000) / 7) % *(unsigned *)user == 0;
}

Test(hnsw_reorder, filtered_search_matches_oracle)
{
    float *x = lkt_clustered(N, D, 30, 51, 0, NULL);
    float *q = lkt_clustered(NQ, D, 30, 52, 0, NULL);
    struct lk_index *ix = build(LK_METRIC_L2, LK_STORAGE_F32, x, N, 2);
    struct lk_index *f = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(lk_index_add(f, idbase(i), x + i * D, NULL), LK_OK);
    unsigned mods[] = {2, 10, 100};
    for (size_t m = 0; m < 3; m++) {
        struct lk_search_opts o = {.allow_fn = allow_mod, .allow_user = &mods[m], .allowed_estimate = N / mods[m]};
        same_hits_across_reorder(ix, q, &o);
        double r = lkt_recall(ix, f, q, NQ, D, K, &o);
        cr_assert(r >= 0.95, "filtered recall@10 at 1/%u after reorder = %.4f", mods[m], r);
    }
    /* bitmaps made after the reorder: exact path equals the oracle */
    struct lk_bitmap *bm = NULL;
    cr_assert_eq(lk_index_bitmap_new(ix, &bm, NULL), LK_OK);
    unsigned every = 100;
    for (size_t i = 0; i < N; i++)
        if (allow_mod(idbase(i), &every))
            cr_assert_eq(lk_bitmap_set_id(bm, ix, idbase(i), NULL), LK_OK);
    struct lk_search_opts ob = {.allow = bm}, of = {.allow_fn = allow_mod, .allow_user = &every};
    for (size_t i = 0; i < NQ; i++) {
        struct lk_hit a[K], b[K];
        size_t na, nb;
        cr_assert_eq(lk_index_search(ix, q + i * D, K, &ob, a, &na, NULL), LK_OK);
        of.flags = LK_SEARCH_FORCE_EXACT;
        cr_assert_eq(lk_index_search(f, q + i * D, K, &of, b, &nb, NULL), LK_OK);
        cr_assert_eq(na, nb);
        qsort(a, na, sizeof *a, hit_cmp), qsort(b, nb, sizeof *b, hit_cmp);
        for (size_t j = 0; j < na; j++)
            cr_assert(a[j].id == b[j].id && a[j].distance == b[j].distance, "query %zu hit %zu differs", i, j);
    }
    lk_bitmap_free(bm);
    lk_index_free(ix), lk_index_free(f), free(x), free(q);
}

Test(hnsw_reorder, edge_cases)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_index_reorder(NULL, &e), LK_ERR_INVALID_ARG);
    struct lk_index *ix = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    reorder_ok(ix); /* empty */
    float *x = lkt_clustered(3, D, 1, 61, 0, NULL);
    cr_assert_eq(lk_index_add(ix, 42, x, NULL), LK_OK);
    reorder_ok(ix); /* one node */
    struct lk_hit out[2];
    size_t n;
    cr_assert_eq(lk_index_search(ix, x, 2, NULL, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 1u);
    cr_assert_eq(out[0].id, 42u);
    /* two nodes, the entry point deleted: the tombstone keeps its place */
    cr_assert_eq(lk_index_add(ix, 43, x + D, NULL), LK_OK);
    cr_assert_eq(lk_index_remove(ix, 42, NULL), LK_OK);
    reorder_ok(ix);
    cr_assert_eq(lk_index_search(ix, x, 2, NULL, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 1u);
    cr_assert_eq(out[0].id, 43u);
    cr_assert_eq(lk_index_add(ix, 44, x + 2 * D, NULL), LK_OK);
    check_ok(ix);
    lk_index_free(ix);
    /* flat: nothing to reorder */
    struct lk_index *f = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    cr_assert_eq(lk_index_add(f, 1, x, NULL), LK_OK);
    cr_assert_eq(lk_index_add(f, 2, x + D, NULL), LK_OK);
    reorder_ok(f);
    cr_assert_eq(lk_index_count(f), 2u);
    lk_index_free(f);
    free(x);
}
