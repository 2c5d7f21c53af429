/*
 * tests/index/test_concurrency.c — the documented thread-safety contract:
 * many threads search while one writer inserts, updates and deletes (and
 * another thread builds bitmaps and checks membership).  Run under
 * AddressSanitizer in the sanitizer build: no crash, no invalid read, every
 * result well-formed; afterwards the graph passes the integrity check and
 * recall holds.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lk_test_index.h"

#define D 16
#define N0 2000
#define NW 3000
#define READERS 3

static float *x;
static struct lk_index *h;
static atomic_int stop;
static atomic_long searches, bad;

static void *reader(void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    uint64_t s = 1000 + me;
    struct lk_hit out[10];
    size_t n;
    while (!atomic_load(&stop)) {
        size_t row = (size_t)(lkt_next(&s) % (N0 + NW));
        struct lk_search_opts o = {.ef_search = (uint32_t)(10 + lkt_next(&s) % 60)};
        if (lk_index_search(h, x + row * D, 10, &o, out, &n, NULL) != LK_OK || n > 10) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            /* ids are row numbers, or row + 10^6 after an update */
            uint64_t r = out[i].id % 1000000;
            if (r >= N0 + NW || !(out[i].distance >= 0) || (i && out[i].distance < out[i - 1].distance))
                atomic_fetch_add(&bad, 1);
        }
        atomic_fetch_add(&searches, 1);
    }
    return NULL;
}

static void *bitmapper(void *arg)
{
    (void)arg;
    uint64_t s = 5;
    while (!atomic_load(&stop)) {
        struct lk_bitmap *bm;
        if (lk_index_bitmap_new(h, &bm, NULL) != LK_OK) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        for (int i = 0; i < 200; i++)
            lk_bitmap_set_id(bm, h, lkt_next(&s) % (N0 + NW), NULL); /* NOT_FOUND is fine */
        struct lk_hit out[5];
        size_t n;
        struct lk_search_opts o = {.allow = bm};
        if (lk_index_search(h, x, 5, &o, out, &n, NULL) != LK_OK)
            atomic_fetch_add(&bad, 1);
        lk_bitmap_free(bm);
        lk_index_contains(h, lkt_next(&s) % N0);
        struct lk_index_stats st;
        lk_index_stats(h, &st);
    }
    return NULL;
}

Test(concurrency, search_during_writes, .timeout = 240)
{
    x = lkt_clustered(N0 + NW, D, 20, 8, 0, NULL);
    h = lkt_new(LK_INDEX_HNSW, D, LK_METRIC_L2, LK_STORAGE_F32);
    uint64_t *ids = malloc(N0 * sizeof *ids);
    for (size_t i = 0; i < N0; i++)
        ids[i] = i;
    cr_assert_eq(lk_index_add_batch(h, ids, x, N0, 2, NULL), LK_OK);
    pthread_t th[READERS + 1];
    for (uintptr_t i = 0; i < READERS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, reader, (void *)i), 0);
    cr_assert_eq(pthread_create(&th[READERS], NULL, bitmapper, NULL), 0);

    /* the writer: inserts (growing past a 4096-slot chunk), deletes, updates, reuse */
    uint64_t s = 77;
    for (size_t i = N0; i < N0 + NW; i++) {
        cr_assert_eq(lk_index_add(h, i, x + i * D, NULL), LK_OK);
        if (i % 4 == 0) {
            uint64_t victim = lkt_next(&s) % i;
            lk_index_remove(h, victim, NULL); /* may be gone already */
        }
        if (i % 5 == 0) {
            uint64_t u = lkt_next(&s) % i;
            if (lk_index_contains(h, u)) {
                lk_index_remove(h, u, NULL);
                cr_assert_eq(lk_index_add(h, u + 1000000, x + u * D, NULL), LK_OK);
            }
        }
    }
    /* a batch while readers run */
    uint64_t *b = malloc(500 * sizeof *b);
    for (size_t i = 0; i < 500; i++)
        b[i] = 2000000 + i;
    cr_assert_eq(lk_index_add_batch(h, b, x, 500, 2, NULL), LK_OK);
    atomic_store(&stop, 1);
    for (int i = 0; i <= READERS; i++)
        pthread_join(th[i], NULL);
    cr_log_info("%ld searches during writes", atomic_load(&searches));
    cr_assert_eq(atomic_load(&bad), 0, "%ld malformed results", atomic_load(&bad));
    cr_assert(atomic_load(&searches) > 0);
    struct lk_err e = {0};
    cr_assert_eq(lk_index_check(h, &e), LK_OK, "%s", e.msg);
    /* recall against an exact scan of the same index */
    double r = lkt_recall(h, h, x, 200, D, 10, NULL);
    cr_assert(r >= 0.95, "recall@10 after concurrent writes %.4f", r);
    lk_index_free(h);
    free(x), free(ids), free(b);
}
