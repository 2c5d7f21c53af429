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

/* ==== The filtered-search planner (graph first, bail-out to exact) ==== */

/* Per-query correlated allow-list: the rows of the clusters holding the
 * query's exact nearest rows, grown cluster by cluster (in the order the
 * query's exact neighbours reach them) until about sel * N rows. */
static size_t correlated_allow(const float *qv, double sel, unsigned char *ok)
{
    static struct lk_hit nn[512];
    size_t nn_n = 0;
    struct lk_search_opts ex = {.flags = LK_SEARCH_FORCE_EXACT};
    cr_assert_eq(lk_index_search(h, qv, 512, &ex, nn, &nn_n, NULL), LK_OK);
    memset(ok, 0, N);
    size_t quota = (size_t)(sel * N + 0.5), n = 0;
    for (size_t j = 0; j < nn_n + NCL && n < quota; j++) {
        /* the clusters of the query's nearest rows, then (large quotas)
         * the others */
        uint32_t c = j < nn_n ? cl[(nn[j].id - 1) / 2] : (uint32_t)(j - nn_n);
        for (size_t i = 0; i < N && n < quota; i++)
            if (cl[i] == c && !ok[i])
                ok[i] = 1, n++;
    }
    return n;
}

static struct lk_bitmap *bitmap_of(const unsigned char *ok)
{
    struct lk_bitmap *bm;
    cr_assert_eq(lk_index_bitmap_new(h, &bm, NULL), LK_OK);
    for (size_t i = 0; i < N; i++)
        if (ok[i])
            cr_assert_eq(lk_bitmap_set_id(bm, h, ids[i], NULL), LK_OK);
    return bm;
}

/* Query qv for 10 with the planner (ef, bitmap bm) into a[] and with the
 * exact scan of the same bitmap (the oracle) into b[]; the planner's
 * lk_search_info goes to *info. */
static void planner_and_oracle(const float *qv, const struct lk_bitmap *bm, uint32_t ef,
                               struct lk_search_info *info, struct lk_hit a[10], size_t *na,
                               struct lk_hit b[10], size_t *nb)
{
    struct lk_search_opts o = {.allow = bm, .ef_search = ef, .info = info};
    struct lk_search_opts ex = {.allow = bm, .flags = LK_SEARCH_FORCE_EXACT};
    cr_assert_eq(lk_index_search(h, qv, 10, &o, a, na, NULL), LK_OK);
    cr_assert_eq(lk_index_search(h, qv, 10, &ex, b, nb, NULL), LK_OK);
}

/* A scan (also after a bail-out) returns exactly the oracle's hits. */
static void assert_same_hits(const struct lk_hit *a, size_t na, const struct lk_hit *b, size_t nb,
                             size_t qi)
{
    cr_assert_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        cr_assert_eq(a[i].id, b[i].id, "query %zu rank %zu", qi, i);
        cr_assert_eq(a[i].distance, b[i].distance);
    }
}

/* Recall@10 of the planner's choice against the exact scan of the same
 * filter, per query, with correlated (per-query) or random allow-lists;
 * counts the paths taken into paths[]. */
static double planner_recall(double sel, int correlated, uint32_t ef, size_t paths[4])
{
    static unsigned char ok[N];
    size_t hit = 0, total = 0;
    struct lk_bitmap *bm = NULL;
    if (!correlated) {
        make_allow(ok, sel, 0, 99 + (uint64_t)(sel * 1e4));
        bm = bitmap_of(ok);
    }
    for (size_t qi = 0; qi < NQ; qi++) {
        const float *qv = q + qi * D;
        if (correlated) {
            correlated_allow(qv, sel, ok);
            bm = bitmap_of(ok);
        }
        struct lk_search_info info = {0};
        struct lk_hit a[10], b[10];
        size_t na, nb;
        planner_and_oracle(qv, bm, ef, &info, a, &na, b, &nb);
        cr_assert_eq(na, nb);
        cr_assert(info.path <= LK_PATH_COMPLETED);
        cr_assert_eq(info.allowed, lk_bitmap_count(bm));
        paths[info.path]++;
        for (size_t i = 0; i < na; i++) {
            cr_assert(ok[(a[i].id - 1) / 2]);
            hit += a[i].distance <= b[nb - 1].distance * (1 + 1e-5f) + 1e-6f;
        }
        total += nb;
        if (info.path == LK_PATH_BAILOUT || info.path == LK_PATH_EXACT)
            assert_same_hits(a, na, b, nb, qi);
        if (correlated)
            lk_bitmap_free(bm);
    }
    if (!correlated)
        lk_bitmap_free(bm);
    return total ? (double)hit / (double)total : 1.0;
}

Test(hnsw_search, planner_recall_all_selectivities)
{
    static const double sels[] = {0.5, 0.1, 0.01, 0.001};
    static const uint32_t efs[] = {64};
    for (int correlated = 0; correlated < 2; correlated++)
        for (size_t s = 0; s < 4; s++)
            for (size_t e = 0; e < 1; e++) {
                size_t paths[4] = {0};
                double r = planner_recall(sels[s], correlated, efs[e], paths);
                cr_log_info("planner %s %.1f%% ef %u: recall@10 %.4f, paths graph %zu exact %zu "
                            "bail-out %zu completed %zu",
                            correlated ? "correlated" : "random", sels[s] * 100, efs[e], r, paths[0],
                            paths[1], paths[2], paths[3]);
                cr_assert(r >= 0.95, "%s %.3f ef %u: recall@10 %.4f",
                          correlated ? "correlated" : "random", sels[s], efs[e], r);
                if (sels[s] <= 0.01)
                    cr_assert_eq(paths[LK_PATH_EXACT], NQ); /* rule 1: tiny allowed sets */
            }
}

/* The rule of index.h's planner that applies to A allowed rows of N at ef
 * (dim D <= 128: the _LOWDIM constants; k = 10). */
static int planner_rule(size_t A, uint32_t ef)
{
    struct lk_index_params p;
    struct lk_index_stats st;
    cr_assert_eq(lk_index_get_params(h, &p), LK_OK);
    cr_assert_eq(lk_index_stats(h, &st), LK_OK);
    double K = LK_FILTER_GRAPH_EVAL_COST_LOWDIM, E = LK_FILTER_GRAPH_EVALS_PER_EF_LOWDIM;
    double s = (double)A / N, scan = (double)A / K, unf = E * ef, descent = (double)p.M * (st.max_level + 1);
    if (A <= LK_FILTER_EXACT_MIN_COUNT_PER_K * 10 || scan < LK_FILTER_GRAPH_MIN_GAIN * unf)
        return 1;
    if (unf / s <= LK_FILTER_GRAPH_MARGIN * scan)
        return 2;
    return descent > LK_FILTER_PROBE_MAX_SHARE * scan ? 3 : 4;
}

/* An (sel, ef) pair among a few selectivities and ef 10..400 where `rule`
 * applies to a random allow-list of sel * N rows: the middle of the first
 * ef range found, so allow-lists a few rows larger or smaller (the
 * correlated ones) fall under the same rule. */
static void find_rule(int rule, double *sel, uint32_t *ef)
{
    static const double sels[] = {0.75, 0.7, 0.6, 0.5, 0.4, 0.25};
    static unsigned char ok[N];
    for (size_t i = 0; i < sizeof sels / sizeof sels[0]; i++) {
        size_t A = make_allow(ok, sels[i], 0, 99 + (uint64_t)(sels[i] * 1e4));
        uint32_t lo = 0, hi = 0;
        for (uint32_t e = 10; e <= 400; e++)
            if (planner_rule(A, e) == rule) {
                lo = lo ? lo : e;
                hi = e;
            } else if (lo) {
                break;
            }
        if (lo) {
            *sel = sels[i];
            *ef = (lo + hi) / 2;
            return;
        }
    }
    cr_assert_fail("no (selectivity, ef) reaches planner rule %d on this index", rule);
}

Test(hnsw_search, planner_rule4_probe_keeps_graph_for_correlated_only)
{
    /* Rule 4: only a filter that follows the query lets the graph win, and
     * the probe is cheap enough.  A random allow-list shows its global
     * selectivity around allowed nodes, fails probe (a) and goes to the
     * scan up front (path exact, answer exactly the oracle's, checked by
     * planner_recall); one that follows the query (whole clusters nearest
     * it) passes (a), and passes (b) and keeps the traversal unless the
     * query sits where clusters meet (then: bail-out, also exact).  On
     * this small index rule 4 needs ~75 % selectivity, where a correlated
     * filter can only be 1.33x denser than a random one around the query,
     * so not every correlated query passes. */
    double sel;
    uint32_t ef;
    find_rule(4, &sel, &ef);
    size_t pc[4] = {0}, pr[4] = {0};
    double rc = planner_recall(sel, 1, ef, pc), rr = planner_recall(sel, 0, ef, pr);
    cr_log_info("rule 4 at %.0f%% ef %u: correlated %.4f paths %zu/%zu/%zu/%zu, random %.4f paths "
                "%zu/%zu/%zu/%zu", sel * 100, ef, rc, pc[0], pc[1], pc[2], pc[3], rr, pr[0], pr[1],
                pr[2], pr[3]);
    cr_assert(pc[LK_PATH_GRAPH] >= NQ / 3, "correlated: graph %zu of %d", pc[LK_PATH_GRAPH], NQ);
    cr_assert_eq(pc[LK_PATH_EXACT], 0, "correlated: probe (a) failed");
    cr_assert_eq(pr[LK_PATH_EXACT], NQ, "random: exact %zu of %d", pr[LK_PATH_EXACT], NQ);
    cr_assert(rc >= 0.95 && rr >= 0.95, "recall correlated %.4f random %.4f", rc, rr);
}

Test(hnsw_search, planner_rule4b_predicate_probe_after_descent)
{
    /* A predicate with allowed_estimate has no bitmap for probe (a): a
     * random one is judged after the descent by probe (b), goes to the
     * scan (bail-out with no level-0 distance) and returns exactly the
     * oracle's answer. */
    double sel;
    uint32_t ef;
    find_rule(4, &sel, &ef);
    static unsigned char ok[N];
    size_t n = make_allow(ok, sel, 0, 99 + (uint64_t)(sel * 1e4));
    struct allow al = {ok};
    size_t probed_out = 0;
    for (size_t qi = 0; qi < NQ; qi++) {
        const float *qv = q + qi * D;
        struct lk_search_info info = {0};
        struct lk_search_opts o = {.allow_fn = pred, .allow_user = &al, .allowed_estimate = n,
                                   .ef_search = ef, .info = &info};
        struct lk_search_opts ex = {.allow_fn = pred, .allow_user = &al, .flags = LK_SEARCH_FORCE_EXACT};
        struct lk_hit a[10], b[10];
        size_t na, nb;
        cr_assert_eq(lk_index_search(h, qv, 10, &o, a, &na, NULL), LK_OK);
        cr_assert_eq(lk_index_search(h, qv, 10, &ex, b, &nb, NULL), LK_OK);
        if (info.path == LK_PATH_BAILOUT) {
            probed_out += info.graph_evals == 0;
            assert_same_hits(a, na, b, nb, qi);
        }
    }
    cr_assert(probed_out >= NQ * 8 / 10, "probe (b) sent %zu of %d to the scan", probed_out, NQ);
}

Test(hnsw_search, planner_rule2_graph_for_random_when_cheaper)
{
    /* Rule 2: the traversal is cheaper even at the global selectivity, so a
     * random filter gets the graph (the budget may still abandon a few). */
    double sel;
    uint32_t ef;
    find_rule(2, &sel, &ef);
    size_t pr[4] = {0};
    double rr = planner_recall(sel, 0, ef, pr);
    cr_log_info("rule 2 at %.0f%% ef %u: random %.4f paths %zu/%zu/%zu/%zu", sel * 100, ef, rr, pr[0],
                pr[1], pr[2], pr[3]);
    cr_assert(pr[LK_PATH_GRAPH] >= NQ * 9 / 10, "random: graph %zu of %d", pr[LK_PATH_GRAPH], NQ);
}

Test(hnsw_search, planner_budget_bailout_is_exact)
{
    /* A filter that avoids the query's neighbourhood (every cluster of its
     * 512 nearest rows disallowed) at a size where rule 2 sends it to the
     * graph: the traversal meets almost no allowed node, its budget
     * abandons it mid-way (graph_evals > 0), and the scan that completes it
     * from the traversal's heap, skipping the visited nodes, must return
     * exactly the oracle's answer. */
    double sel;
    uint32_t ef;
    find_rule(2, &sel, &ef);
    static unsigned char ok[N];
    static struct lk_hit nn[512];
    size_t bailed = 0;
    for (size_t qi = 0; qi < NQ; qi++) {
        const float *qv = q + qi * D;
        size_t nn_n = 0;
        struct lk_search_opts ex0 = {.flags = LK_SEARCH_FORCE_EXACT};
        cr_assert_eq(lk_index_search(h, qv, 512, &ex0, nn, &nn_n, NULL), LK_OK);
        static unsigned char near[NCL];
        memset(near, 0, sizeof near);
        for (size_t j = 0; j < nn_n; j++)
            near[cl[(nn[j].id - 1) / 2]] = 1;
        size_t quota = (size_t)(sel * N + 0.5), n = 0;
        memset(ok, 0, N);
        for (size_t i = 0; i < N && n < quota; i++)
            if (!near[cl[i]])
                ok[i] = 1, n++;
        struct lk_bitmap *bm = bitmap_of(ok);
        struct lk_search_info info = {0};
        struct lk_hit a[10], b[10];
        size_t na, nb;
        planner_and_oracle(qv, bm, ef, &info, a, &na, b, &nb);
        if (info.path == LK_PATH_BAILOUT && info.graph_evals > 0) {
            bailed++;
            assert_same_hits(a, na, b, nb, qi);
        }
        lk_bitmap_free(bm);
    }
    cr_log_info("budget bail-outs at %.0f%% ef %u: %zu of %d", sel * 100, ef, bailed, NQ);
    cr_assert(bailed >= NQ / 2, "budget bail-outs %zu of %d", bailed, NQ);
}

Test(hnsw_search, planner_rule3_exact_when_probe_too_costly)
{
    /* Rule 3: the graph could only win for a correlated filter and the
     * descent to find out costs more than LK_FILTER_PROBE_MAX_SHARE of the
     * scan: exact scan up front for every filter, correlated or not. */
    double sel;
    uint32_t ef;
    find_rule(3, &sel, &ef);
    size_t pc[4] = {0}, pr[4] = {0};
    planner_recall(sel, 1, ef, pc);
    planner_recall(sel, 0, ef, pr);
    cr_assert_eq(pc[LK_PATH_EXACT], NQ);
    cr_assert_eq(pr[LK_PATH_EXACT], NQ);
}

Test(hnsw_search, planner_forced_and_unknown_paths)
{
    static unsigned char ok[N];
    size_t n = make_allow(ok, 0.001, 0, 5);
    struct lk_bitmap *bm = bitmap_of(ok);
    struct allow a = {ok};
    struct lk_search_info info;
    struct lk_hit out[10];
    size_t k;
    struct lk_search_opts o = {.allow = bm, .flags = LK_SEARCH_FORCE_GRAPH, .info = &info};
    cr_assert_eq(lk_index_search(h, q, 10, &o, out, &k, NULL), LK_OK);
    /* forced graph at 0.1 %: the traversal may find fewer than k and be completed */
    cr_assert(info.path == LK_PATH_GRAPH || info.path == LK_PATH_COMPLETED);
    cr_assert_eq(k, n < 10 ? n : 10);
    o = (struct lk_search_opts){.allow_fn = pred, .allow_user = &a, .info = &info};
    cr_assert_eq(lk_index_search(h, q, 10, &o, out, &k, NULL), LK_OK);
    cr_assert_eq(info.allowed, SIZE_MAX); /* predicate without estimate: unknown A, no budget */
    cr_assert(info.path == LK_PATH_GRAPH || info.path == LK_PATH_COMPLETED);
    o.allowed_estimate = n;
    cr_assert_eq(lk_index_search(h, q, 10, &o, out, &k, NULL), LK_OK);
    cr_assert_eq(info.path, LK_PATH_EXACT);
    o = (struct lk_search_opts){.info = &info};
    cr_assert_eq(lk_index_search(h, q, 10, &o, out, &k, NULL), LK_OK);
    cr_assert_eq(info.path, LK_PATH_GRAPH);
    lk_bitmap_free(bm);
}
