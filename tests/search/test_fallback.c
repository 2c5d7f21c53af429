/* tests/search/test_fallback.c — never a blank screen (src/search/fallback.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "gen.h"
#include "util.h"

FX_HOOK_SETUP
FX_HOOK_TEARDOWN

static struct lk_engine *eng;
static void setup(void) { eng = fx_engine(); }
static void teardown(void) { lk_engine_close(eng); }

TestSuite(fallback, .init = setup, .fini = teardown, .timeout = 120);

Test(fallback, none_when_strict_search_is_enough)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 3;
    struct lk_search_response r;
    search_sku(eng, "SOFA-BLUE", &req, &r);
    cr_assert(!r.fallback.applied);
    cr_assert_eq(r.fallback.n_relaxed, 0);
    cr_assert_eq(r.n_results, 3);
    cr_assert_gt(r.n_facets, 0);
    lk_search_response_free(&r);
}

Test(fallback, filters_excluding_everything_still_answer)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.min_price_minor = 1;
    req.max_price_minor = 2;    /* nothing costs 1-2 cents */
    struct lk_search_response r;
    search_sku(eng, "BALL-ORANGE", &req, &r);
    cr_assert(r.fallback.applied);
    cr_assert(has_relaxed(&r, "price_range"));
    cr_assert(r.fallback.message && r.fallback.message[0]);
    cr_assert_gt(r.n_results, 0);
    cr_assert_str_eq(r.results[0].sku, "BALL-ORANGE");
    cr_assert_gt(r.n_facets, 0);
    int balls = 0;
    for (size_t i = 0; i < r.n_facets; i++)
        balls |= !strcmp(r.facets[i].category, "toys/balls");
    cr_assert(balls, "facets should offer toys/balls");
    lk_search_response_free(&r);
}

Test(fallback, small_category_is_widened_and_explained)
{
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 8;
    req.category = "toys/balls";    /* 4 balls in stock */
    struct lk_search_response r;
    search_sku(eng, "BALL-BLUE", &req, &r);
    cr_assert_str_eq(r.results[0].sku, "BALL-BLUE");
    cr_assert(r.fallback.applied);
    cr_assert(has_relaxed(&r, "category"), "relaxed: %zu steps", r.fallback.n_relaxed);
    cr_assert_eq(r.n_results, 8);
    /* strict results come first: all balls before anything else */
    size_t i = 0;
    while (i < r.n_results && !strcmp(r.results[i].category, "toys/balls"))
        i++;
    cr_assert_geq(i, 4);
    for (; i < r.n_results; i++)
        cr_assert_str_neq(r.results[i].category, "toys/balls");
    lk_search_response_free(&r);
}

Test(fallback, unlike_photo_gets_results_and_facets)
{
    /* Random noise looks like nothing in the shop. */
    struct lk_image im = gen_solid(256, 256, 128, 128, 128);
    gen_noise(&im, 99, 120);
    uint8_t *buf;
    size_t len;
    struct gen_png_opts o = {.color_type = 2, .bit_depth = 8};
    gen_png(&im, &o, &buf, &len);
    lk_image_free(&im);
    struct lk_search_request req;
    lk_search_request_init(&req);
    struct lk_search_response r;
    lk_search_response_init(&r);
    struct lk_err err = {0};
    cr_assert_eq(lk_engine_search(eng, buf, len, &req, &r, &err), LK_OK, "%s", err.msg);
    free(buf);
    cr_assert_gt(r.n_results, 0);
    cr_assert_gt(r.n_facets, 0);
    if (r.best_band == LK_BAND_LOW) {
        cr_assert(r.fallback.applied);
        cr_assert(r.fallback.message);
        cr_assert(has_relaxed(&r, "colour_adjacent"));
    }
    lk_search_response_free(&r);
}

Test(fallback, unknown_region_still_answers)
{
    /* Products with no region list are sold everywhere, so an unknown
     * region still has answers. */
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 5;
    req.region = "ZZ";          /* nobody sells there, but "" regions pass */
    struct lk_search_response r;
    search_sku(eng, "SHOE-TEAL", &req, &r);
    cr_assert_gt(r.n_results, 0);
    lk_search_response_free(&r);
}
