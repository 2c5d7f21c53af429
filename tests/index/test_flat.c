/*
 * tests/index/test_flat.c — index/flat.c: the exact index returns exactly
 * the k nearest live items (checked against a naive computation in the
 * test), honours filters, thresholds and deletions, and reports errors.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "lk_test_index.h"

#define N 1500
#define D 20

static int by_dist(const void *a, const void *b)
{
    const struct lk_hit *x = a, *y = b;
    return x->distance < y->distance ? -1 : x->distance > y->distance;
}

static void naive(const float *x, const uint64_t *ids, const int *alive, size_t n, const float *q, int ip,
                  struct lk_hit *out)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < D; j++)
            s += ip ? (double)x[i * D + j] * q[j] : ((double)x[i * D + j] - q[j]) * ((double)x[i * D + j] - q[j]);
        out[i].id = ids[i];
        out[i].distance = alive[i] ? (ip ? (float)(1.0 - s) : (float)s) : INFINITY;
    }
    qsort(out, n, sizeof *out, by_dist);
}

Test(flat, exact_l2_and_ip)
{
    for (int ip = 0; ip < 2; ip++) {
        float *x = lkt_clustered(N, D, 10, 11 + ip, ip, NULL);
        uint64_t ids[N];
        int alive[N];
        for (size_t i = 0; i < N; i++)
            ids[i] = 1000 + i * 3, alive[i] = 1;
        struct lk_index *ix = lkt_new(LK_INDEX_FLAT, D, ip ? LK_METRIC_IP : LK_METRIC_L2, LK_STORAGE_F32);
        cr_assert_eq(lk_index_add_batch(ix, ids, x, N, 2, NULL), LK_OK);
        cr_assert_eq(lk_index_count(ix), N);
        static struct lk_hit ref[N];
        struct lk_hit out[10];
        size_t n;
        for (size_t q = 0; q < 50; q++) {
            naive(x, ids, alive, N, x + q * 7 * D, ip, ref);
            cr_assert_eq(lk_index_search(ix, x + q * 7 * D, 10, NULL, out, &n, NULL), LK_OK);
            cr_assert_eq(n, 10);
            for (size_t i = 0; i < 10; i++) {
                cr_assert(fabsf(out[i].distance - ref[i].distance) <= 1e-4f * (1 + fabsf(ref[i].distance)));
                if (i)
                    cr_assert(out[i].distance >= out[i - 1].distance);
                float sim = ip ? 1.0f - out[i].distance : 1.0f - out[i].distance / 2;
                cr_assert_float_eq(out[i].similarity, sim, 1e-6);
            }
            cr_assert_eq(out[0].id, ids[q * 7]); /* a stored vector finds itself */
        }
        cr_assert_eq(lk_index_check(ix, NULL), LK_OK);
        lk_index_free(ix);
        free(x);
    }
}

Test(flat, deletes_filters_thresholds)
{
    float *x = lkt_clustered(N, D, 10, 5, 0, NULL);
    uint64_t ids[N];
    int alive[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = i, alive[i] = 1;
    struct lk_index *ix = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    cr_assert_eq(lk_index_add_batch(ix, ids, x, N, 1, NULL), LK_OK);
    for (size_t i = 0; i < N; i += 2) {
        cr_assert_eq(lk_index_remove(ix, ids[i], NULL), LK_OK);
        alive[i] = 0;
    }
    cr_assert_eq(lk_index_remove(ix, ids[0], NULL), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_index_count(ix), N / 2);
    static struct lk_hit ref[N];
    struct lk_hit out[20];
    size_t n;
    naive(x, ids, alive, N, x, 0, ref);
    cr_assert_eq(lk_index_search(ix, x, 20, NULL, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 20);
    for (size_t i = 0; i < n; i++) {
        cr_assert(out[i].id % 2 == 1, "deleted id %llu returned", (unsigned long long)out[i].id);
        cr_assert_eq(out[i].id, ref[i].id);
    }
    /* bitmap: only multiples of 3 that are alive (odd) */
    struct lk_bitmap *bm;
    cr_assert_eq(lk_index_bitmap_new(ix, &bm, NULL), LK_OK);
    size_t allowed = 0;
    for (size_t i = 0; i < N; i++)
        if (i % 3 == 0 && alive[i]) {
            cr_assert_eq(lk_bitmap_set_id(bm, ix, ids[i], NULL), LK_OK);
            allowed++;
        }
    cr_assert_eq(lk_bitmap_set_id(bm, ix, ids[0], NULL), LK_ERR_NOT_FOUND); /* deleted */
    cr_assert_eq(lk_bitmap_count(bm), allowed);
    struct lk_search_opts o = {0};
    o.allow = bm;
    cr_assert_eq(lk_index_search(ix, x, 20, &o, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 20);
    for (size_t i = 0; i < n; i++)
        cr_assert(out[i].id % 3 == 0 && out[i].id % 2 == 1);
    /* threshold: max_distance = distance of the 5th hit => exactly 5 (no ties in random data) */
    o.flags = LK_SEARCH_MAX_DISTANCE;
    o.max_distance = out[4].distance;
    struct lk_hit out2[20];
    cr_assert_eq(lk_index_search(ix, x, 20, &o, out2, &n, NULL), LK_OK);
    cr_assert_eq(n, 5);
    o.flags = LK_SEARCH_MIN_SIMILARITY;
    o.min_similarity = out[2].similarity;
    cr_assert_eq(lk_index_search(ix, x, 20, &o, out2, &n, NULL), LK_OK);
    cr_assert_eq(n, 3);
    /* k larger than the live set */
    static struct lk_hit all[N];
    cr_assert_eq(lk_index_search(ix, x, N, NULL, all, &n, NULL), LK_OK);
    cr_assert_eq(n, N / 2);
    lk_bitmap_free(bm);
    lk_index_free(ix);
    free(x);
}

static int even_only(uint64_t id, void *user)
{
    (void)user;
    return id % 2 == 0;
}

Test(flat, predicate_and_errors)
{
    float *x = lkt_clustered(200, D, 4, 8, 0, NULL);
    uint64_t ids[200];
    for (size_t i = 0; i < 200; i++)
        ids[i] = i;
    struct lk_index *ix = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    struct lk_hit out[10];
    size_t n = 99;
    /* empty index */
    cr_assert_eq(lk_index_search(ix, x, 10, NULL, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(lk_index_add_batch(ix, ids, x, 200, 1, NULL), LK_OK);
    struct lk_search_opts o = {0};
    o.allow_fn = even_only;
    cr_assert_eq(lk_index_search(ix, x + D, 10, &o, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++)
        cr_assert(out[i].id % 2 == 0);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_search(ix, x, 0, NULL, out, &n, &e), LK_ERR_INVALID_ARG);
    cr_assert(e.msg[0]);
    cr_assert_eq(lk_index_search(NULL, x, 1, NULL, out, &n, NULL), LK_ERR_INVALID_ARG);
    float bad[D] = {0};
    bad[3] = NAN;
    cr_assert_eq(lk_index_search(ix, bad, 1, NULL, out, &n, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_add(ix, 5000, bad, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_count(ix), 200);
    struct lk_index *other = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    struct lk_bitmap *bm;
    cr_assert_eq(lk_index_bitmap_new(other, &bm, NULL), LK_OK);
    o.allow_fn = NULL;
    o.allow = bm;
    cr_assert_eq(lk_index_search(ix, x, 1, &o, out, &n, NULL), LK_ERR_INVALID_ARG);
    lk_bitmap_free(bm);
    lk_bitmap_free(NULL);
    lk_index_free(other);
    lk_index_free(ix);
    lk_index_free(NULL);
    free(x);
}
