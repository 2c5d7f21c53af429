/* tests/search/test_guard.c — the category guard (src/search/guard.c):
 * the vote itself, and the guard inside real searches. */
#include <criterion/criterion.h>
#include <string.h>

#include "util.h"

FX_HOOK_SETUP
FX_HOOK_TEARDOWN

Test(guard, parent)
{
    char b[64];
    lk_category_parent("home/furniture/sofas", b, sizeof b);
    cr_assert_str_eq(b, "home/furniture");
    lk_category_parent("home", b, sizeof b);
    cr_assert_str_eq(b, "");
    lk_category_parent("", b, sizeof b);
    cr_assert_str_eq(b, "");
}

Test(guard, unanimous_vote_picks_deepest)
{
    struct lk_guard_vote v[] = {{"home/furniture/sofas", 0.9f}, {"home/furniture/sofas", 0.85f},
                                {"home/furniture/sofas", 0.8f}};
    char out[64];
    float conf;
    cr_assert_eq(lk_guard_infer(v, 3, 0.6f, out, sizeof out, &conf), 1);
    cr_assert_str_eq(out, "home/furniture/sofas");
    cr_assert_float_eq(conf, 1.0f, 1e-5);
}

Test(guard, split_between_siblings_goes_up_the_tree)
{
    struct lk_guard_vote v[] = {{"home/furniture/sofas", 0.90f}, {"home/furniture/armchairs", 0.90f},
                                {"home/furniture/sofas", 0.88f}, {"home/furniture/armchairs", 0.88f}};
    char out[64];
    float conf;
    cr_assert_eq(lk_guard_infer(v, 4, 0.6f, out, sizeof out, &conf), 1);
    cr_assert_str_eq(out, "home/furniture");
}

Test(guard, closer_neighbours_weigh_more)
{
    /* One very close sofa outweighs three distant bean bags. */
    struct lk_guard_vote v[] = {{"home/sofas", 0.95f}, {"home/beanbags", 0.70f}, {"home/beanbags", 0.69f},
                                {"home/beanbags", 0.68f}};
    char out[64];
    float conf;
    cr_assert_eq(lk_guard_infer(v, 4, 0.6f, out, sizeof out, &conf), 1);
    cr_assert_str_eq(out, "home/sofas");
    cr_assert_gt(conf, 0.9f);
}

Test(guard, no_confident_node)
{
    struct lk_guard_vote v[] = {{"a/x", 0.8f}, {"b/y", 0.8f}, {"c/z", 0.8f}};
    char out[64];
    float conf;
    cr_assert_eq(lk_guard_infer(v, 3, 0.6f, out, sizeof out, &conf), 0);
    cr_assert(conf < 0.6f);
    cr_assert_eq(lk_guard_infer(NULL, 0, 0.6f, out, sizeof out, &conf), 0);
    cr_assert_str_eq(out, "");
    struct lk_guard_vote u[] = {{"", 0.9f}};
    cr_assert_eq(lk_guard_infer(u, 1, 0.6f, out, sizeof out, &conf), 0);
}

/* The beige sofa photo must not return the beige bean bag: the guard infers
 * "sofas" and the results stay there. */
Test(guard, beige_sofa_does_not_return_beige_beanbag, .timeout = 120)
{
    struct lk_engine *eng = fx_engine();
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 4;
    struct lk_search_response r;
    search_sku(eng, "SOFA-BEIGE", &req, &r);
    cr_assert_str_eq(r.results[0].sku, "SOFA-BEIGE");
    cr_assert(r.inferred_category);
    cr_assert_str_eq(r.inferred_category, "home/furniture/sofas");
    cr_assert_geq(r.category_confidence, LK_GUARD_CONFIDENCE_DEFAULT);
    cr_assert(!r.category_from_request);
    cr_assert(!has_sku(&r, "BEAN-BEIGE"), "guard let the beige bean bag through");
    for (size_t i = 0; i < r.n_results; i++)
        cr_assert_str_eq(r.results[i].category, "home/furniture/sofas");
    lk_search_response_free(&r);
    lk_engine_close(eng);
}

Test(guard, explicit_category_overrides_inference, .timeout = 120)
{
    struct lk_engine *eng = fx_engine();
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 3;
    req.category = "home/furniture/beanbags";
    struct lk_search_response r;
    search_sku(eng, "SOFA-BEIGE", &req, &r);
    cr_assert(r.category_from_request);
    cr_assert_gt(r.n_results, 0);
    for (size_t i = 0; i < r.n_results; i++)
        cr_assert_str_eq(r.results[i].category, "home/furniture/beanbags");
    /* The inference is still reported, for information. */
    cr_assert(r.inferred_category && !strcmp(r.inferred_category, "home/furniture/sofas"));
    lk_search_response_free(&r);
    lk_engine_close(eng);
}
