/* tests/search/test_rank.c — the ranking policy (src/search/rank.c). */
#include <criterion/criterion.h>

#include "lookalike/search.h"

static struct lk_bands bands(void)
{
    return (struct lk_bands){.exact = 0.95f, .high = 0.85f, .medium = 0.7f, .floor = 0.5f, .calibrated = 1};
}

static struct lk_rank_item item(float s, int64_t stock, size_t tag)
{
    return (struct lk_rank_item){.similarity = s, .basis = s, .price_minor = 1000, .stock = stock,
                                 .user = tag};
}

Test(rank, defaults_pass_check_and_bad_weights_fail)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    cr_assert_eq(lk_rank_params_check(&p, NULL), LK_OK);
    p.margin_weight = 0.5f;
    struct lk_err e = {0};
    cr_assert_eq(lk_rank_params_check(&p, &e), LK_ERR_INVALID_ARG);
    cr_assert(strstr(e.msg, "margin_weight"));
    lk_rank_params_default(&p);
    p.low_stock_units = -1;
    cr_assert_eq(lk_rank_params_check(&p, NULL), LK_ERR_INVALID_ARG);
}

Test(rank, similarity_first_band_never_overtaken)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    p.margin_weight = LK_RANK_WEIGHT_MAX;
    struct lk_bands b = bands();
    struct lk_rank_item it[3] = {item(0.86f, 5, 0), item(0.84f, 5, 1), item(0.96f, 5, 2)};
    it[1].margin_tier = 9;  /* big boost, but medium band stays below high */
    lk_rank_apply(&p, &b, it, 3);
    cr_assert_eq(it[0].user, 2);
    cr_assert_eq(it[0].band, LK_BAND_EXACT);
    cr_assert_eq(it[1].user, 0);
    cr_assert_eq(it[1].band, LK_BAND_HIGH);
    cr_assert_eq(it[2].user, 1);
    cr_assert_eq(it[2].band, LK_BAND_MEDIUM);
}

Test(rank, adjustments_reorder_within_band)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    struct lk_bands b = bands();
    struct lk_rank_item it[2] = {item(0.905f, 5, 0), item(0.90f, 5, 1)};
    it[0].weak = 1;             /* weak image: -0.03 */
    lk_rank_apply(&p, &b, it, 2);
    cr_assert_eq(it[0].user, 1);
    cr_assert(it[0].score > it[1].score);
}

Test(rank, stock_rules)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    struct lk_bands b = bands();
    struct lk_rank_item it[3] = {item(0.75f, 0, 0), item(0.75f, 2, 1), item(0.75f, 50, 2)};
    lk_rank_apply(&p, &b, it, 3);
    /* in stock with plenty > low stock > out of stock */
    cr_assert_eq(it[0].user, 2);
    cr_assert_eq(it[1].user, 1);
    cr_assert_eq(it[2].user, 0);
}

Test(rank, price_band_proximity)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    struct lk_bands b = bands();
    struct lk_rank_item it[3] = {item(0.99f, 5, 0), item(0.75f, 5, 1), item(0.75f, 5, 2)};
    it[0].price_minor = 10000;
    it[1].price_minor = 80000;  /* 3 octaves away */
    it[2].price_minor = 11000;
    lk_rank_apply(&p, &b, it, 3);
    cr_assert_eq(it[1].user, 2);
    cr_assert_eq(it[2].user, 1);
}

Test(rank, scores_in_unit_interval_and_tiers_first)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    struct lk_bands b = bands();
    struct lk_rank_item it[4] = {item(1.2f, 5, 0), item(-0.3f, 0, 1), item(0.99f, 5, 2), item(0.5f, 5, 3)};
    it[2].tier = 1;
    lk_rank_apply(&p, &b, it, 4);
    for (int i = 0; i < 4; i++)
        cr_assert(it[i].score >= 0.0f && it[i].score <= 1.0f);
    cr_assert_eq(it[0].tier, 0);
    cr_assert_eq(it[3].tier, 1);
}

Test(rank, empty_is_fine)
{
    struct lk_rank_params p;
    lk_rank_params_default(&p);
    struct lk_bands b = bands();
    lk_rank_apply(&p, &b, NULL, 0);
}
