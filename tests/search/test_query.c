/* tests/search/test_query.c — the query path (src/search/query.c) on the
 * fixture shop: right product first, business filters inside the search,
 * collapse per SKU, bands, timings, similar, bad input. */
#include <criterion/criterion.h>
#include <string.h>

#include "gen.h"
#include "util.h"

FX_HOOK_SETUP
FX_HOOK_TEARDOWN

static struct lk_engine *eng;
static void setup(void) { eng = fx_engine(); }
static void teardown(void) { lk_engine_close(eng); }

TestSuite(query, .init = setup, .fini = teardown, .timeout = 120);

Test(query, distorted_photo_finds_its_product_first)
{
    const char *skus[] = {"SOFA-BEIGE", "SOFA-BLUE", "BEAN-ORANGE", "SHOE-RED", "SHOE-WHITE", "BALL-BLUE"};
    int confident = 0;
    for (size_t i = 0; i < sizeof skus / sizeof skus[0]; i++) {
        struct lk_search_request req;
        lk_search_request_init(&req);
        struct lk_search_response r;
        search_sku(eng, skus[i], &req, &r);
        cr_assert_str_eq(r.results[0].sku, skus[i], "query %s: first is %s", skus[i], r.results[0].sku);
        /* A cropped, darkened, recompressed copy is at least a medium
         * match, and mostly high or exact. */
        cr_assert_geq(r.results[0].band, LK_BAND_MEDIUM, "%s: band %s", skus[i], lk_band_name(r.results[0].band));
        confident += r.results[0].band >= LK_BAND_HIGH;
        assert_bands_ordered(&r);
        for (size_t j = 0; j < r.n_results; j++)
            cr_assert(r.results[j].score >= 0.0f && r.results[j].score <= 1.0f);
        lk_search_response_free(&r);
    }
    cr_assert_geq(confident, 4, "only %d of 6 copies were high/exact matches", confident);
}

Test(query, collapse_one_result_per_sku_and_timings)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 20;
    req.in_stock = LK_TRI_NO;
    struct lk_search_response r;
    search_sku(eng, "SHOE-RED", &req, &r);  /* SHOE-RED has two photos */
    for (size_t i = 0; i < r.n_results; i++)
        for (size_t j = i + 1; j < r.n_results; j++)
            cr_assert_str_neq(r.results[i].sku, r.results[j].sku);
    const char *need[] = {"decode", "embed", "guard", "search", "rank"};
    for (size_t n = 0; n < 5; n++) {
        int found = 0;
        for (size_t t = 0; t < r.n_timings; t++)
            found |= !strcmp(r.timings[t].name, need[n]) && r.timings[t].ms >= 0;
        cr_assert(found, "no %s timing", need[n]);
    }
    lk_search_response_free(&r);
}

Test(query, in_stock_default_and_override)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    struct lk_search_response r;
    search_sku(eng, "SOFA-GREEN", &req, &r);    /* stock 0 */
    cr_assert(!has_sku(&r, "SOFA-GREEN"));
    for (size_t i = 0; i < r.n_results; i++)
        cr_assert_gt(r.results[i].stock, 0);
    lk_search_response_free(&r);
    req.in_stock = LK_TRI_NO;
    search_sku(eng, "SOFA-GREEN", &req, &r);
    cr_assert_str_eq(r.results[0].sku, "SOFA-GREEN");
    lk_search_response_free(&r);
}

Test(query, region_filter)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 30;
    req.region = "us";
    struct lk_search_response r;
    search_sku(eng, "SOFA-BLUE", &req, &r);     /* SOFA-BLUE: EU only */
    cr_assert(!has_sku(&r, "SOFA-BLUE"));
    for (size_t i = 0; i < r.n_results; i++) {
        const struct fx_product *p = &fx_products[fx_find(r.results[i].sku)];
        cr_assert(!p->regions[0] || strstr(p->regions, "US"), "%s sold in %s", p->sku, p->regions);
    }
    lk_search_response_free(&r);
    req.region = "EU";
    search_sku(eng, "SOFA-BLUE", &req, &r);
    cr_assert_str_eq(r.results[0].sku, "SOFA-BLUE");
    lk_search_response_free(&r);
}

Test(query, price_range_filter)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 30;
    req.min_price_minor = 5000;
    req.max_price_minor = 15000;
    struct lk_search_response r;
    search_sku(eng, "SHOE-RED", &req, &r);
    cr_assert_str_eq(r.results[0].sku, "SHOE-RED");
    for (size_t i = 0; i < r.n_results; i++)
        cr_assert(r.results[i].price_minor >= 5000 && r.results[i].price_minor <= 15000);
    lk_search_response_free(&r);
}

Test(query, restricted_never_unless_admin)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 30;
    struct lk_search_response r;
    search_sku(eng, "SHOE-PINK", &req, &r);
    cr_assert(!has_sku(&r, "SHOE-PINK"));
    lk_search_response_free(&r);
    req.include_restricted = true;
    search_sku(eng, "SHOE-PINK", &req, &r);
    cr_assert_str_eq(r.results[0].sku, "SHOE-PINK");
    lk_search_response_free(&r);
}

Test(query, similar_items)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 3;
    struct lk_search_response r;
    lk_search_response_init(&r);
    struct lk_err err = {0};
    cr_assert_eq(lk_engine_similar(eng, "SOFA-RED", &req, &r, &err), LK_OK, "%s", err.msg);
    cr_assert_eq(r.n_results, 3);
    cr_assert(!has_sku(&r, "SOFA-RED"));
    for (size_t i = 0; i < r.n_results; i++)
        cr_assert_str_eq(r.results[i].category, "home/furniture/sofas");
    lk_search_response_free(&r);
    cr_assert_eq(lk_engine_similar(eng, "NO-SUCH-SKU", &req, &r, NULL), LK_ERR_NOT_FOUND);
    lk_search_response_free(&r);
}

Test(query, bad_inputs)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    struct lk_search_response r;
    lk_search_response_init(&r);
    struct lk_err err = {0};
    const char text[] = "this is not an image";
    cr_assert_eq(lk_engine_search(eng, text, sizeof text, &req, &r, &err), LK_ERR_UNSUPPORTED_FORMAT);
    lk_search_response_free(&r);
    uint8_t *buf;
    size_t len;
    fx_query_jpeg(0, &buf, &len);
    int rc = lk_engine_search(eng, buf, len / 3, &req, &r, &err);   /* truncated JPEG */
    cr_assert(rc == LK_ERR_TRUNCATED || rc == LK_ERR_CORRUPT, "rc %d", rc);
    lk_search_response_free(&r);
    free(buf);
    gen_png_header_only(60000, 60000, &buf, &len);
    cr_assert_eq(lk_engine_search(eng, buf, len, &req, &r, &err), LK_ERR_DIMENSIONS);
    lk_search_response_free(&r);
    free(buf);
    cr_assert_eq(lk_engine_search(eng, "", 0, &req, &r, &err), LK_ERR_EMPTY);
    lk_search_response_free(&r);
    fx_query_jpeg(0, &buf, &len);
    req.category = "bad//category";
    cr_assert_eq(lk_engine_search(eng, buf, len, &req, &r, &err), LK_ERR_INVALID_ARG);
    lk_search_response_free(&r);
    req.category = NULL;
    req.k = 0;
    cr_assert_eq(lk_engine_search(eng, buf, len, &req, &r, &err), LK_ERR_INVALID_ARG);
    lk_search_response_free(&r);
    free(buf);
}
