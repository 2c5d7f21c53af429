/*
 * tests/index/test_hnsw_search.c — index/hnsw_search.c: filtered search
 * (bitmap and predicate, random and cluster-correlated allow-lists) keeps
 * recall@10 >= 0.95 at 50 %, 10 %, 1 % and 0.1 % selectivity, both on the
 * automatic path and with the graph traversal forced; thresholds; ef_search;
 * argument errors.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lk_test_index.h"

#define N 6000
#define D 24
#define NQ 100
#define NCL 50

static float *x, *q;
static uint32_t cl[N];
static uint64_t ids[N];
static struct lk_index *h;

static void setup(void)
{
    x = lkt_clustered(N, D, NCL, 555, 0, cl);
    q = lkt_clustered(NQ, D, NCL, 556, 0, NULL);
    for (size_t i = 0; i < N; i++)
        ids[i] = i * 2 + 1;
    h = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    cr_assert_eq(lk_index_add_batch(h, ids, x, N, 2, NULL), LK_OK);
}
static void teardown(void)
{
    lk_index_free(h), free(x), free(q);
}
TestSuite(hnsw_search, .init = setup, .fini = teardown);

struct allow {
    const unsigned char *ok; /* by row */
};
static int pred(uint64_t id, void *user)
{
    const struct allow *a = user;
    return a->ok[(id - 1) / 2];
}

/* allow-list of about `sel` * N rows: random, or whole clusters */
static size_t make_allow(unsigned char *ok, double sel, int clustered, uint64_t seed)
{
    uint64_t s = seed;
    size_t n = 0;
    if (clustered) {
        /* take clusters in a fixed pseudo-random order until the quota */
        size_t quota = (size_t)(sel * N + 0.5);
        memset(ok, 0, N);
        for (uint32_t c = (uint32_t)(lkt_next(&s) % NCL), k = 0; n < quota && k < NCL; c = (c + 7) % NCL, k++)
            for (size_t i = 0; i < N && n < quota; i++)
                if (cl[i] == c)
                    ok[i] = 1, n++;
    } else {
        for (size_t i = 0; i < N; i++) {
            ok[i] = lkt_uniform(&s) < sel;
            n += ok[i];
        }
        if (!n)
            ok[lkt_next(&s) % N] = 1, n = 1;
    }
    return n;
}

static void run_selectivity(double sel, unsigned flags)
{
    static unsigned char ok[N];
    for (int clustered = 0; clustered < 2; clustered++) {
        size_t n = make_allow(ok, sel, clustered, 1234 + (uint64_t)(sel * 1e4));
        struct lk_bitmap *bm;
        cr_assert_eq(lk_index_bitmap_new(h, &bm, NULL), LK_OK);
        for (size_t i = 0; i < N; i++)
            if (ok[i])
                cr_assert_eq(lk_bitmap_set_id(bm, h, ids[i], NULL), LK_OK);
        cr_assert_eq(lk_bitmap_count(bm), n);
        struct allow a = {ok};
        struct lk_search_opts variants[3] = {
            {.allow = bm, .flags = flags},
            {.allow_fn = pred, .allow_user = &a, .flags = flags},
            {.allow_fn = pred, .allow_user = &a, .allowed_estimate = n, .flags = flags},
        };
        for (int v = 0; v < 3; v++) {
            /* the oracle is the same index with an exact scan and the same filter */
            double r = lkt_recall(h, h, q, NQ, D, 10, &variants[v]);
            cr_log_info("selectivity %.3f %s filter variant %d flags %u: recall@10 %.4f", sel,
                        clustered ? "clustered" : "random", v, flags, r);
            cr_assert(r >= 0.95, "selectivity %.3f %s variant %d flags %u: recall@10 %.4f", sel,
                      clustered ? "clustered" : "random", v, flags, r);
            /* every hit passes the filter; k hits when k allowed exist */
            struct lk_hit out[10];
            size_t k;
            cr_assert_eq(lk_index_search(h, q, 10, &variants[v], out, &k, NULL), LK_OK);
            cr_assert_eq(k, n < 10 ? n : 10);
            for (size_t i = 0; i < k; i++)
                cr_assert(ok[(out[i].id - 1) / 2]);
        }
        lk_bitmap_free(bm);
    }
}

Test(hnsw_search, filtered_50pct) { run_selectivity(0.5, 0); }
Test(hnsw_search, filtered_10pct) { run_selectivity(0.1, 0); }
Test(hnsw_search, filtered_1pct) { run_selectivity(0.01, 0); }
Test(hnsw_search, filtered_0_1pct) { run_selectivity(0.001, 0); }
Test(hnsw_search, filtered_graph_forced)
{
    /* the in-traversal filter itself, without the exact-scan switch */
    run_selectivity(0.5, LK_SEARCH_FORCE_GRAPH);
    run_selectivity(0.1, LK_SEARCH_FORCE_GRAPH);
    run_selectivity(0.01, LK_SEARCH_FORCE_GRAPH);
}

Test(hnsw_search, unfiltered_recall_and_ef)
{
    struct lk_search_opts lo = {.ef_search = 10}, hi = {.ef_search = 200};
    double rl = lkt_recall(h, h, q, NQ, D, 10, &lo), rh = lkt_recall(h, h, q, NQ, D, 10, &hi);
    cr_assert(rh >= 0.95 && rh >= rl - 0.01, "ef 10 -> %.4f, ef 200 -> %.4f", rl, rh);
    /* k above ef_search is served (ef = max(ef, k)) */
    static struct lk_hit out[500];
    size_t n;
    cr_assert_eq(lk_index_search(h, q, 500, &lo, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 500);
    for (size_t i = 1; i < n; i++)
        cr_assert(out[i].distance >= out[i - 1].distance);
}

Test(hnsw_search, thresholds)
{
    struct lk_hit out[50], ref[50];
    size_t n, nr;
    cr_assert_eq(lk_index_search(h, x, 50, NULL, ref, &nr, NULL), LK_OK);
    struct lk_search_opts o = {.flags = LK_SEARCH_MAX_DISTANCE, .max_distance = ref[9].distance};
    cr_assert_eq(lk_index_search(h, x, 50, &o, out, &n, NULL), LK_OK);
    cr_assert(n >= 10 && n <= 50);
    for (size_t i = 0; i < n; i++)
        cr_assert(out[i].distance <= ref[9].distance);
    o.flags = LK_SEARCH_MIN_SIMILARITY;
    o.min_similarity = 2.0f; /* nothing is that similar */
    cr_assert_eq(lk_index_search(h, x, 50, &o, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 0);
    o.min_similarity = ref[4].similarity;
    cr_assert_eq(lk_index_search(h, x, 50, &o, out, &n, NULL), LK_OK);
    cr_assert(n >= 5);
    for (size_t i = 0; i < n; i++)
        cr_assert(out[i].similarity >= ref[4].similarity);
}

Test(hnsw_search, errors)
{
    struct lk_hit out[4];
    size_t n = 7;
    struct lk_err e = {0};
    struct lk_search_opts o = {.ef_search = LK_HNSW_EF_SEARCH_MAX + 1};
    cr_assert_eq(lk_index_search(h, q, 4, &o, out, &n, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(n, 0);
    cr_assert_eq(lk_index_search(h, q, LK_INDEX_K_MAX + 1, NULL, out, &n, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_search(h, NULL, 4, NULL, out, &n, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_search(h, q, 4, NULL, NULL, &n, NULL), LK_ERR_INVALID_ARG);
    struct lk_bitmap *bm;
    cr_assert_eq(lk_index_bitmap_new(h, &bm, NULL), LK_OK);
    cr_assert_eq(lk_bitmap_set_id(bm, h, 2, NULL), LK_ERR_NOT_FOUND); /* even ids do not exist */
    /* an empty allow-list gives no hits, not an error */
    o = (struct lk_search_opts){.allow = bm};
    cr_assert_eq(lk_index_search(h, q, 4, &o, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 0);
    lk_bitmap_free(bm);
}
