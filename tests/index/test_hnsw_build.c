/*
 * tests/index/test_hnsw_build.c — index/hnsw_build.c: a threaded batch
 * build reaches recall@10 >= 0.95 against the flat oracle on a seeded
 * clustered set, passes the integrity check, and a single-threaded build is
 * deterministic (same seed + order => byte-identical saved file).  Many
 * small 2-thread builds all pass the integrity check (every live node
 * reachable from the entry point), and the reachability repair that ends a
 * threaded build re-links nodes cut off by hand (internals via pindex.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lk_test_index.h"
#include "pindex.h"

#define N 4000
#define D 32
#define NQ 200

static uint64_t ids[N];

static void build_pair(enum lk_metric metric, enum lk_storage st, unsigned threads, struct lk_index **h,
                       struct lk_index **f, float **x, float **q)
{
    *x = lkt_clustered(N, D, 40, 101, metric != LK_METRIC_L2, NULL);
    *q = lkt_clustered(NQ, D, 40, 101, metric != LK_METRIC_L2, NULL); /* same centres, new points */
    uint64_t s = 17;
    for (size_t i = 0; i < NQ * D; i++)
        (*q)[i] += 0.05f * lkt_gauss(&s);
    for (size_t i = 0; i < N; i++)
        ids[i] = 0xabc000000ULL + i * 13;
    *h = lkt_new(LK_INDEX_HNSW, D, metric, st);
    *f = lkt_new(LK_INDEX_FLAT, D, metric, LK_STORAGE_F32);
    cr_assert_eq(lk_index_add_batch(*h, ids, *x, N, threads, NULL), LK_OK);
    cr_assert_eq(lk_index_add_batch(*f, ids, *x, N, 1, NULL), LK_OK);
}

Test(hnsw_build, recall_l2_two_threads)
{
    struct lk_index *h, *f;
    float *x, *q;
    build_pair(LK_METRIC_L2, LK_STORAGE_F32, 2, &h, &f, &x, &q);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_index_count(h), N);
    struct lk_search_opts o = {.ef_search = 64};
    double r = lkt_recall(h, f, q, NQ, D, 10, &o);
    cr_log_info("recall@10 (L2, ef 64, 2 threads) = %.4f", r);
    cr_assert(r >= 0.95, "recall@10 %.4f < 0.95", r);
    struct lk_index_stats st;
    cr_assert_eq(lk_index_stats(h, &st), LK_OK);
    cr_assert_eq(st.count, N);
    cr_assert_eq(st.deleted, 0);
    cr_assert(st.memory_bytes >= (size_t)N * D * 4);
    lk_index_free(h), lk_index_free(f), free(x), free(q);
}

Test(hnsw_build, recall_cosine_and_ip)
{
    for (int m = LK_METRIC_IP; m <= LK_METRIC_COSINE; m++) {
        struct lk_index *h, *f;
        float *x, *q;
        build_pair((enum lk_metric)m, LK_STORAGE_F32, 2, &h, &f, &x, &q);
        cr_assert_eq(lk_index_check(h, NULL), LK_OK);
        double r = lkt_recall(h, f, q, NQ, D, 10, NULL);
        cr_assert(r >= 0.95, "metric %d recall@10 %.4f < 0.95", m, r);
        lk_index_free(h), lk_index_free(f), free(x), free(q);
    }
}

Test(hnsw_build, recall_compressed_storage)
{
    for (int st = LK_STORAGE_F16; st <= LK_STORAGE_I8; st++) {
        struct lk_index *h, *f;
        float *x, *q;
        build_pair(LK_METRIC_L2, (enum lk_storage)st, 2, &h, &f, &x, &q);
        cr_assert_eq(lk_index_check(h, NULL), LK_OK);
        double r = lkt_recall(h, f, q, NQ, D, 10, NULL);
        cr_log_info("storage %d recall@10 = %.4f", st, r);
        cr_assert(r >= 0.95, "storage %d recall@10 %.4f < 0.95", st, r);
        /* re-ranked distances are exact float32 */
        struct lk_hit a[5], b[5];
        size_t na, nb;
        lk_index_search(h, q, 5, NULL, a, &na, NULL);
        lk_index_search(f, q, 5, NULL, b, &nb, NULL);
        cr_assert_eq(a[0].id, b[0].id);
        cr_assert_float_eq(a[0].distance, b[0].distance, 1e-5);
        float v[D];
        cr_assert_eq(lk_index_get_vector(h, ids[3], v, NULL), LK_OK);
        for (size_t j = 0; j < D; j++)
            cr_assert_eq(v[j], x[3 * D + j]);
        lk_index_free(h), lk_index_free(f), free(x), free(q);
    }
}

static long file_size(const char *p)
{
    FILE *fp = fopen(p, "rb");
    if (!fp)
        return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

static int same_file(const char *a, const char *b)
{
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int same = x && y;
    while (same) {
        int c = fgetc(x), d = fgetc(y);
        if (c != d)
            same = 0;
        if (c == EOF || d == EOF)
            break;
    }
    if (x)
        fclose(x);
    if (y)
        fclose(y);
    return same;
}

Test(hnsw_build, deterministic_single_thread)
{
    size_t n = 1500;
    float *x = lkt_clustered(n, D, 20, 3, 0, NULL);
    uint64_t *id = malloc(n * sizeof *id);
    for (size_t i = 0; i < n; i++)
        id[i] = i * 7;
    char pa[64], pb[64], pc[64];
    snprintf(pa, sizeof pa, "/tmp/lk_det_a_%d.idx", (int)getpid());
    snprintf(pb, sizeof pb, "/tmp/lk_det_b_%d.idx", (int)getpid());
    snprintf(pc, sizeof pc, "/tmp/lk_det_c_%d.idx", (int)getpid());
    struct lk_index *a = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    struct lk_index *b = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    cr_assert_eq(lk_index_add_batch(a, id, x, n, 1, NULL), LK_OK);
    /* same order through the incremental path must give the same graph */
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(lk_index_add(b, id[i], x + i * D, NULL), LK_OK);
    cr_assert_eq(lk_index_save(a, pa, NULL), LK_OK);
    cr_assert_eq(lk_index_save(b, pb, NULL), LK_OK);
    cr_assert(file_size(pa) > 0);
    cr_assert(same_file(pa, pb), "same seed and order gave different graphs");
    /* another seed gives another graph */
    struct lk_index_params p;
    lk_index_get_params(a, &p);
    p.seed = 12345;
    struct lk_index *c;
    cr_assert_eq(lk_index_new(&p, &c, NULL), LK_OK);
    cr_assert_eq(lk_index_add_batch(c, id, x, n, 1, NULL), LK_OK);
    cr_assert_eq(lk_index_save(c, pc, NULL), LK_OK);
    cr_assert(!same_file(pa, pc));
    unlink(pa), unlink(pb), unlink(pc);
    lk_index_free(a), lk_index_free(b), lk_index_free(c);
    free(x), free(id);
}

Test(hnsw_build, bad_params_and_batch)
{
    struct lk_index_params p;
    lk_index_params_default(&p, 0);
    struct lk_index *ix = NULL;
    struct lk_err e = {0};
    cr_assert_eq(lk_index_new(&p, &ix, &e), LK_ERR_INVALID_ARG);
    cr_assert_null(ix);
    lk_index_params_default(&p, 8);
    p.M = 1;
    cr_assert_eq(lk_index_new(&p, &ix, NULL), LK_ERR_INVALID_ARG);
    p.M = LK_HNSW_M_MAX + 1;
    cr_assert_eq(lk_index_new(&p, &ix, NULL), LK_ERR_INVALID_ARG);
    p.M = 16;
    p.ef_search = 0;
    cr_assert_eq(lk_index_new(&p, &ix, NULL), LK_ERR_INVALID_ARG);
    p.ef_search = 10;
    p.metric = (enum lk_metric)7;
    cr_assert_eq(lk_index_new(&p, &ix, NULL), LK_ERR_INVALID_ARG);
    p.metric = LK_METRIC_L2;
    cr_assert_eq(lk_index_new(&p, &ix, NULL), LK_OK);
    /* a NaN in row 3 rejects the whole batch, index unchanged */
    float v[5 * 8];
    uint64_t id[5] = {1, 2, 3, 4, 5};
    for (size_t i = 0; i < 40; i++)
        v[i] = (float)i;
    v[3 * 8 + 2] = INFINITY;
    cr_assert_eq(lk_index_add_batch(ix, id, v, 5, 2, &e), LK_ERR_INVALID_ARG);
    cr_assert(strstr(e.msg, "row 3") != NULL, "%s", e.msg);
    cr_assert_eq(lk_index_count(ix), 0);
    v[3 * 8 + 2] = 0;
    /* duplicate ids inside a batch: last one wins */
    id[4] = 2;
    cr_assert_eq(lk_index_add_batch(ix, id, v, 5, 2, NULL), LK_OK);
    cr_assert_eq(lk_index_count(ix), 4);
    float got[8];
    cr_assert_eq(lk_index_get_vector(ix, 2, got, NULL), LK_OK);
    cr_assert_eq(got[0], v[4 * 8]);
    cr_assert_eq(lk_index_check(ix, NULL), LK_OK);
    lk_index_free(ix);
}

/* Regression for a concurrent-build race (orphan repair ignoring a
 * decrement that reached zero): about 1 in 3000 such builds used to leave
 * a node unreachable.  A few hundred builds cannot prove its absence, but
 * with the repair pass every one of them must pass lk_index_check. */
Test(hnsw_build, two_thread_builds_stay_reachable)
{
    enum { BN = 300, BD = 12, BUILDS = 300 };
    uint64_t bid[BN];
    for (unsigned i = 0; i < BN; i++)
        bid[i] = 100 + i;
    for (unsigned b = 0; b < BUILDS; b++) {
        float *x = lkt_clustered(BN, BD, 8, 1000 + b, 0, NULL);
        struct lk_index_params p;
        lk_index_params_default(&p, BD);
        p.M = 6;
        p.ef_construction = 32;
        struct lk_index *ix;
        struct lk_err e = {0};
        cr_assert_eq(lk_index_new(&p, &ix, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(lk_index_add_batch(ix, bid, x, BN, 2, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(lk_index_check(ix, &e), LK_OK, "build %u: %s", b, e.msg);
        lk_index_free(ix);
        free(x);
    }
}

/* Cut every level-0 in-link of a few nodes (as a lost race would), check
 * that lk_index_check reports them, run the repair and expect a valid
 * index in which each of them is found again by its own vector. */
Test(hnsw_build, repair_relinks_unreachable_nodes)
{
    enum { BN = 500, BD = 16 };
    float *x = lkt_clustered(BN, BD, 10, 77, 0, NULL);
    uint64_t bid[BN];
    for (unsigned i = 0; i < BN; i++)
        bid[i] = 1 + i;
    struct lk_index_params p;
    lk_index_params_default(&p, BD);
    p.M = 6;
    p.ef_construction = 32;
    struct lk_index *ix;
    cr_assert_eq(lk_index_new(&p, &ix, NULL), LK_OK);
    cr_assert_eq(lk_index_add_batch(ix, bid, x, BN, 1, NULL), LK_OK);
    cr_assert_eq(lk_index_check(ix, NULL), LK_OK);
    uint32_t ep = (uint32_t)atomic_load(&ix->s.ep);
    uint32_t cut[3] = {ep == 11 ? 12 : 11, ep == 222 ? 223 : 222, ep == 433 ? 434 : 433};
    uint32_t ns = atomic_load(&ix->s.n_slots);
    for (uint32_t i = 0; i < ns; i++) {
        char *n = lk__node(ix, i);
        uint32_t c = *lk__count0(n), k = 0, *l = lk__links0(n);
        for (uint32_t j = 0; j < c; j++)
            if (l[j] != cut[0] && l[j] != cut[1] && l[j] != cut[2])
                l[k++] = l[j];
        *lk__count0(n) = k;
    }
    for (int j = 0; j < 3; j++)
        *lk__indeg(lk__node(ix, cut[j])) = 0;
    struct lk_err e = {0};
    int rc = lk_index_check(ix, &e);
    cr_assert_eq(rc, LK_ERR_CORRUPT);
    cr_assert(strstr(e.msg, "unreachable") != NULL, "%s", e.msg);
    uint32_t *q = malloc(ns * sizeof *q);
    uint64_t *seen = malloc((ns + 63) / 64 * sizeof *seen);
    pthread_mutex_lock(&ix->write_mu);
    lk__repair_reachability(ix, q, seen, ns);
    pthread_mutex_unlock(&ix->write_mu);
    free(q), free(seen);
    cr_assert_eq(lk_index_check(ix, &e), LK_OK, "after repair: %s", e.msg);
    for (int j = 0; j < 3; j++) {
        struct lk_hit h[1];
        size_t n = 0;
        struct lk_search_opts o = {.ef_search = 64};
        cr_assert_eq(lk_index_search(ix, x + (size_t)cut[j] * BD, 1, &o, h, &n, NULL), LK_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(h[0].id, bid[cut[j]], "cut node %u not found", cut[j]);
    }
    lk_index_free(ix);
    free(x);
}
