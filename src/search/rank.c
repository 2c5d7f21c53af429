/*
 * rank.c — the ranking policy, kept apart from similarity.
 *
 * Similarity says how alike two photos look; ranking says in which order a
 * storefront should show the products that look alike.  The policy
 * (documented in lookalike/search.h, struct lk_rank_params):
 *
 *   score = clamp(similarity, 0, 1) + sum of bounded adjustments, clamped
 *           to [0, 1].  A score is therefore "visual similarity, nudged by
 *           business rules by at most a few hundredths per rule".
 *   order = tier (set by the caller: products of a category the shopper
 *           named before those of relaxed fallback steps), then band
 *           (exact > high > medium > low: a confident match is never pushed
 *           below a weaker one by a business rule), then score, then raw
 *           similarity, then the order the index returned them in.
 *
 * Every weight is bounded by LK_RANK_WEIGHT_MAX so a configuration typo
 * cannot make margin or stock outrank the photo the shopper uploaded.
 */
#include <math.h>
#include <stdlib.h>

#include "psearch.h"

void lk_rank_params_default(struct lk_rank_params *p)
{
    p->in_stock_boost = 0.02f;
    p->low_stock_penalty = 0.01f;
    p->low_stock_units = 3;
    p->margin_weight = 0.02f;
    p->price_weight = 0.02f;
    p->weak_image_penalty = 0.03f;
}

int lk_rank_params_check(const struct lk_rank_params *p, struct lk_err *err)
{
    const struct { const char *name; float v; } w[] = {
        {"in_stock_boost", p->in_stock_boost},       {"low_stock_penalty", p->low_stock_penalty},
        {"margin_weight", p->margin_weight},         {"price_weight", p->price_weight},
        {"weak_image_penalty", p->weak_image_penalty},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (!(w[i].v >= 0.0f && w[i].v <= LK_RANK_WEIGHT_MAX))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "rank.%s must be in [0, %.2f]", w[i].name,
                              (double)LK_RANK_WEIGHT_MAX);
    if (p->low_stock_units < 0)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "rank.low_stock_units must be >= 0");
    return LK_OK;
}

static float clamp01(float x)
{
    return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
}

/* Sort key comparison; `pos` (the original position) breaks ties so the
 * order is deterministic whatever qsort does. */
struct keyed {
    struct lk_rank_item it;
    size_t pos;
};

static int cmp_keyed(const void *pa, const void *pb)
{
    const struct keyed *a = pa, *b = pb;
    if (a->it.tier != b->it.tier)
        return a->it.tier < b->it.tier ? -1 : 1;
    if (a->it.band != b->it.band)
        return a->it.band > b->it.band ? -1 : 1;
    if (a->it.score != b->it.score)
        return a->it.score > b->it.score ? -1 : 1;
    if (a->it.similarity != b->it.similarity)
        return a->it.similarity > b->it.similarity ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

void lk_rank_apply(const struct lk_rank_params *p, const struct lk_bands *b,
                   struct lk_rank_item *items, size_t n)
{
    if (n == 0)
        return;
    /* Reference price: the most similar candidate's (the likely product). */
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (items[i].similarity > items[best].similarity)
            best = i;
    double ref = (double)items[best].price_minor;

    for (size_t i = 0; i < n; i++) {
        struct lk_rank_item *it = &items[i];
        float s = clamp01(it->basis);
        float adj = 0.0f;
        if (it->stock > 0)
            adj += p->in_stock_boost;
        if (it->stock > 0 && it->stock <= p->low_stock_units)
            adj -= p->low_stock_penalty;
        int tier = it->margin_tier < LK_MARGIN_TIER_MIN ? LK_MARGIN_TIER_MIN
                 : it->margin_tier > LK_MARGIN_TIER_MAX ? LK_MARGIN_TIER_MAX : it->margin_tier;
        adj += p->margin_weight * (float)tier / (float)LK_MARGIN_TIER_MAX;
        if (ref > 0 && it->price_minor > 0) {
            double d = fabs(log2((double)it->price_minor / ref));
            adj -= p->price_weight * (float)(d > 1.0 ? 1.0 : d);
        }
        if (it->weak)
            adj -= p->weak_image_penalty;
        it->score = clamp01(s + adj);
        it->band = lk_bands_classify(b, it->similarity);
    }

    struct keyed *k = malloc(n * sizeof *k);
    if (!k) {
        /* Out of memory: keep the similarity order the caller gave (already
         * a valid ranking, only without the tie-breaks). */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        k[i].it = items[i];
        k[i].pos = i;
    }
    qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t i = 0; i < n; i++)
        items[i] = k[i].it;
    free(k);
}
