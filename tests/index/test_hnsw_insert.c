/*
 * tests/index/test_hnsw_insert.c — index/hnsw_insert.c: incremental
 * inserts (Algorithm 1) keep recall >= 0.95 against the oracle, including
 * with many exact duplicate vectors; update = delete + insert under the
 * same id; bad vectors are rejected without changing the index.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lk_test_index.h"

#define D 24

Test(hnsw_insert, incremental_recall)
{
    size_t n = 3000;
    float *x = lkt_clustered(n, D, 30, 21, 0, NULL);
    struct lk_index *h = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    struct lk_index *f = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    /* half by batch, half one by one afterwards */
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = i;
    cr_assert_eq(lk_index_add_batch(h, ids, x, n / 2, 2, NULL), LK_OK);
    for (size_t i = n / 2; i < n; i++)
        cr_assert_eq(lk_index_add(h, ids[i], x + i * D, NULL), LK_OK);
    cr_assert_eq(lk_index_add_batch(f, ids, x, n, 1, NULL), LK_OK);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    float *q = lkt_clustered(150, D, 30, 21, 0, NULL);
    uint64_t s = 1;
    for (size_t i = 0; i < 150 * D; i++)
        q[i] += 0.1f * lkt_gauss(&s);
    double r = lkt_recall(h, f, q, 150, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 after incremental inserts %.4f", r);
    lk_index_free(h), lk_index_free(f), free(x), free(q), free(ids);
}

Test(hnsw_insert, duplicates)
{
    /* 400 distinct vectors, each inserted 5 times under different ids */
    size_t base = 400, rep = 5, n = base * rep;
    float *b = lkt_clustered(base, D, 10, 4, 0, NULL);
    float *x = malloc(n * D * sizeof *x);
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        memcpy(x + i * D, b + (i % base) * D, D * sizeof *x);
        ids[i] = 50000 + i;
    }
    struct lk_index *h = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    struct lk_index *f = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(lk_index_add(h, ids[i], x + i * D, NULL), LK_OK);
    cr_assert_eq(lk_index_add_batch(f, ids, x, n, 1, NULL), LK_OK);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    double r = lkt_recall(h, f, b, 100, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 with duplicates %.4f", r);
    /* each query vector has 5 exact copies: the first 5 hits are at distance 0 */
    struct lk_hit out[10];
    size_t k;
    for (size_t q = 0; q < 50; q++) {
        cr_assert_eq(lk_index_search(h, b + q * D, 10, NULL, out, &k, NULL), LK_OK);
        cr_assert_eq(k, 10);
        for (size_t i = 0; i < rep; i++)
            cr_assert(out[i].distance <= 1e-6f, "query %zu hit %zu distance %g", q, i, out[i].distance);
    }
    lk_index_free(h), lk_index_free(f), free(x), free(b), free(ids);
}

Test(hnsw_insert, update_same_id)
{
    float *x = lkt_clustered(600, D, 6, 9, 0, NULL);
    struct lk_index *h = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    for (size_t i = 0; i < 500; i++)
        cr_assert_eq(lk_index_add(h, i, x + i * D, NULL), LK_OK);
    /* move ids 0..99 to the vectors 500..599 */
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(lk_index_add(h, i, x + (500 + i) * D, NULL), LK_OK);
    cr_assert_eq(lk_index_count(h), 500);
    struct lk_hit out[1];
    size_t k;
    for (size_t i = 0; i < 100; i++) {
        cr_assert_eq(lk_index_search(h, x + (500 + i) * D, 1, NULL, out, &k, NULL), LK_OK);
        cr_assert_eq(out[0].id, i);
        cr_assert(out[0].distance < 1e-6f);
        float v[D];
        cr_assert_eq(lk_index_get_vector(h, i, v, NULL), LK_OK);
        cr_assert(memcmp(v, x + (500 + i) * D, sizeof v) == 0);
    }
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    cr_assert(lk_index_contains(h, 5));
    cr_assert(!lk_index_contains(h, 100000));
    cr_assert(!lk_index_contains(NULL, 5));
    lk_index_free(h), free(x);
}

Test(hnsw_insert, rejects_bad_vectors)
{
    struct lk_index *h = lkt_new(LK_INDEX_HNSW, 4, LK_METRIC_COSINE, LK_STORAGE_F32);
    float ok[4] = {1, 2, 3, 4}, zero[4] = {0}, nan[4] = {1, NAN, 0, 0};
    struct lk_err e = {0};
    cr_assert_eq(lk_index_add(h, 1, ok, &e), LK_OK);
    cr_assert_eq(lk_index_add(h, 2, zero, &e), LK_ERR_INVALID_ARG);
    cr_assert(e.msg[0]);
    cr_assert_eq(lk_index_add(h, 3, nan, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_add(h, 4, NULL, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_add(NULL, 4, ok, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_index_count(h), 1);
    /* COSINE normalises: stored vector has unit norm, self-similarity 1 */
    float v[4];
    cr_assert_eq(lk_index_get_vector(h, 1, v, NULL), LK_OK);
    cr_assert_float_eq(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3], 1.0f, 1e-5);
    struct lk_hit out[2];
    size_t k;
    float scaled[4] = {10, 20, 30, 40};
    cr_assert_eq(lk_index_search(h, scaled, 2, NULL, out, &k, NULL), LK_OK);
    cr_assert_eq(k, 1);
    cr_assert_float_eq(out[0].similarity, 1.0f, 1e-5);
    lk_index_free(h);
}
