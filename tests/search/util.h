/* tests/search/util.h — small helpers shared by the engine-level suites. */
#ifndef LK_TEST_SEARCH_UTIL_H
#define LK_TEST_SEARCH_UTIL_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

/* Search with a distorted JPEG of product `sku`; asserts success. */
static inline void search_sku(struct lk_engine *eng, const char *sku, const struct lk_search_request *req,
                              struct lk_search_response *resp)
{
    uint8_t *buf;
    size_t len;
    fx_query_jpeg(fx_find(sku), &buf, &len);
    struct lk_err err = {0};
    lk_search_response_init(resp);
    int rc = lk_engine_search(eng, buf, len, req, resp, &err);
    free(buf);
    cr_assert_eq(rc, LK_OK, "search %s: %s", sku, err.msg);
}

static inline int has_sku(const struct lk_search_response *r, const char *sku)
{
    for (size_t i = 0; i < r->n_results; i++)
        if (!strcmp(r->results[i].sku, sku))
            return 1;
    return 0;
}

static inline int has_relaxed(const struct lk_search_response *r, const char *step)
{
    for (size_t i = 0; i < r->fallback.n_relaxed; i++)
        if (!strcmp(r->fallback.relaxed[i], step))
            return 1;
    return 0;
}

/* Bands never increase down the list of strict (first-tier) results and
 * best_band is the first result's. */
static inline void assert_bands_ordered(const struct lk_search_response *r)
{
    cr_assert_gt(r->n_results, 0);
    cr_assert_eq(r->best_band, r->results[0].band);
    for (size_t i = 1; i < r->n_results; i++)
        cr_assert(r->results[i].band <= r->results[i - 1].band, "band order broken at %zu", i);
}

#endif
