/*
 * tests/index/test_hnsw_delete.c — index/hnsw_delete.c: after deleting
 * 30 % recall stays >= 0.95 against an oracle holding only the live items,
 * tombstones never take result slots (k live results when k exist), slots
 * are reused, compaction/rebuild drop tombstones and keep recall.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lk_test_index.h"

#define N 3000
#define D 24

static float *x;
static uint64_t ids[N];
static struct lk_index *h, *f;

static void setup(void)
{
    x = lkt_clustered(N, D, 30, 77, 0, NULL);
    for (size_t i = 0; i < N; i++)
        ids[i] = 900000 + i;
    h = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    f = lkt_new(LK_INDEX_FLAT, D, LK_METRIC_L2, LK_STORAGE_F32);
    cr_assert_eq(lk_index_add_batch(h, ids, x, N, 2, NULL), LK_OK);
    cr_assert_eq(lk_index_add_batch(f, ids, x, N, 1, NULL), LK_OK);
    /* delete 30 %: every id with i % 10 < 3 */
    for (size_t i = 0; i < N; i++)
        if (i % 10 < 3) {
            cr_assert_eq(lk_index_remove(h, ids[i], NULL), LK_OK);
            cr_assert_eq(lk_index_remove(f, ids[i], NULL), LK_OK);
        }
}

static void teardown(void)
{
    lk_index_free(h), lk_index_free(f), free(x);
}

static void assert_no_deleted(const struct lk_hit *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t row = (size_t)(out[i].id - 900000);
        cr_assert(row < N && row % 10 >= 3, "deleted id %llu returned", (unsigned long long)out[i].id);
    }
}

TestSuite(hnsw_delete, .init = setup, .fini = teardown);

Test(hnsw_delete, recall_after_30pct)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_index_count(h), N - N * 3 / 10);
    double r = lkt_recall(h, f, x, 300, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 after deleting 30%% = %.4f", r);
    struct lk_index_stats st;
    lk_index_stats(h, &st);
    cr_assert_eq(st.deleted, N * 3 / 10);
    cr_assert_eq(st.needs_compaction, 0); /* exactly 30 %, threshold is "above" */
}

Test(hnsw_delete, tombstones_never_take_slots)
{
    static struct lk_hit out[N];
    size_t n;
    /* querying with deleted vectors themselves: they must not come back */
    for (size_t i = 0; i < 100; i++) {
        cr_assert_eq(lk_index_search(h, x + i * 10 * D, 10, NULL, out, &n, NULL), LK_OK);
        cr_assert_eq(n, 10);
        assert_no_deleted(out, n);
    }
    /* k = all live items: get them all, none deleted */
    size_t live = lk_index_count(h);
    struct lk_search_opts o = {.ef_search = 16};
    cr_assert_eq(lk_index_search(h, x, live, &o, out, &n, NULL), LK_OK);
    cr_assert_eq(n, live);
    assert_no_deleted(out, n);
    /* delete all but 5: a k = 10 query returns the 5 survivors */
    for (size_t i = 0; i < N; i++)
        if (i % 10 >= 3 && i >= 5 * 10)
            lk_index_remove(h, ids[i], NULL);
    cr_assert_eq(lk_index_count(h), 5 * 7);
    cr_assert_eq(lk_index_search(h, x + 2000 * D, 40, NULL, out, &n, NULL), LK_OK);
    cr_assert_eq(n, 35);
    assert_no_deleted(out, n);
}

Test(hnsw_delete, slot_reuse_and_update)
{
    struct lk_index_stats a, b;
    lk_index_stats(h, &a);
    /* re-insert 500 deleted rows under new ids: slots are reused */
    for (size_t i = 0, k = 0; k < 500; i++)
        if (i % 10 < 3) {
            cr_assert_eq(lk_index_add(h, 5000000 + i, x + i * D, NULL), LK_OK);
            cr_assert_eq(lk_index_add(f, 5000000 + i, x + i * D, NULL), LK_OK);
            k++;
        }
    lk_index_stats(h, &b);
    cr_assert_eq(b.slots, a.slots, "slots grew from %zu to %zu despite free slots", a.slots, b.slots);
    cr_assert_eq(b.deleted, a.deleted - 500);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    double r = lkt_recall(h, f, x, 300, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 after slot reuse = %.4f", r);
    /* reused ids are found at their vectors */
    struct lk_hit out[1];
    size_t n;
    cr_assert_eq(lk_index_search(h, x, 1, NULL, out, &n, NULL), LK_OK);
    cr_assert_eq(out[0].id, 5000000);
}

Test(hnsw_delete, compaction)
{
    /* push the deleted fraction over the threshold */
    for (size_t i = 0; i < N; i++)
        if (i % 10 == 3) {
            lk_index_remove(h, ids[i], NULL);
            lk_index_remove(f, ids[i], NULL);
        }
    struct lk_index_stats st;
    lk_index_stats(h, &st);
    cr_assert(st.needs_compaction);
    struct lk_index *copy;
    cr_assert_eq(lk_index_rebuild(h, 2, &copy, NULL), LK_OK);
    cr_assert_eq(lk_index_count(copy), lk_index_count(h));
    cr_assert_eq(lk_index_compact(h, 2, NULL), LK_OK);
    lk_index_stats(h, &st);
    cr_assert_eq(st.deleted, 0);
    cr_assert_eq(st.slots, st.count);
    cr_assert_eq(st.needs_compaction, 0);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_index_check(copy, &e), LK_OK, "%s", e.msg);
    double r = lkt_recall(h, f, x, 300, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 after compaction = %.4f", r);
    r = lkt_recall(copy, f, x, 300, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 of rebuilt copy = %.4f", r);
    /* the compacted index keeps working: inserts, removes */
    cr_assert_eq(lk_index_add(h, 1, x, NULL), LK_OK);
    cr_assert_eq(lk_index_remove(h, 1, NULL), LK_OK);
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    lk_index_free(copy);
}
