/*
 * fallback.c — never a blank screen.
 *
 * After the strict search (business filters + category restriction, be it
 * inferred by the guard or named by the caller), if there are fewer than k
 * products or none above the `low` band, the restriction is relaxed one
 * step at a time, each step adding up to k new products and being recorded
 * in the response's fallback object:
 *
 *   1. "sibling_categories"  the parent of the category (its siblings join)
 *   2. "category_guard"      no category restriction at all
 *                            ("category" when the caller had named it)
 *   3. "colour_adjacent"     when still nothing is above `low`: products
 *                            closest by the COLOUR part of the embedding
 *                            alone, and weak results are then ranked by
 *                            colour similarity (an honest, explainable
 *                            signal when no product looks like the photo)
 *   4. "price_range", "in_stock", "region"   only when nothing at all
 *                            matched: the shopper's own filters, in that
 *                            order.  Policy filters (restricted, retired,
 *                            age-restricted) are never relaxed.
 *
 * Results of all steps are then ranked together by band and score
 * (rank.c), except that products of a category the caller named stay
 * ahead of those added by widening it.
 *
 * So zero results happen only when no product is visible at all (empty
 * catalog, or everything restricted).  Facets (category counts among the
 * close matches of the photo, ignoring stock) are always filled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psearch.h"

static int above_low(const struct lk__search_ctx *c)
{
    for (size_t i = 0; i < c->n_cands; i++)
        if (lk_bands_classify(&c->g->meta.bands, c->cands[i].similarity) > LK_BAND_LOW)
            return 1;
    return 0;
}

static int need_more(const struct lk__search_ctx *c)
{
    return c->n_cands < c->req->k || !above_low(c);
}

static int step(struct lk__search_ctx *c, const char *name, const float *query,
                const struct lk_filter *f, const char *category, int tier, struct lk_err *err)
{
    size_t before = c->n_cands;
    int rc = lk__search_collapse(c, query, f, category, c->req->k, tier, err);
    if (rc != LK_OK)
        return rc;
    if (c->n_cands > before || !strcmp(name, "colour_adjacent")) {
        rc = lk_search_response_add_relaxed(c->resp, name);
        if (rc != LK_OK)
            return lk_err_set(err, rc, "out of memory");
    }
    return LK_OK;
}

int lk__fallback(struct lk__search_ctx *c, struct lk_err *err)
{
    int rc = LK_OK, tier = 1;
    if (!need_more(c))
        return LK_OK;
    int was_empty = c->n_cands == 0;
    if (c->category[0]) {
        char parent[LK_CATEGORY_MAX + 1];
        lk_category_parent(c->category, parent, sizeof parent);
        if (parent[0])
            rc = step(c, "sibling_categories", c->query, &c->base, parent, tier++, err);
        /* A category the caller named is the shopper's choice: widened
         * only when it cannot fill the page, never because its matches
         * are weak. */
        if (rc == LK_OK && (c->category_explicit ? c->n_cands < c->req->k : need_more(c)))
            rc = step(c, c->category_explicit ? "category" : "category_guard", c->query, &c->base,
                      NULL, tier++, err);
    }
    if (rc == LK_OK && c->n_cands > 0 && !above_low(c)) {
        /* Colour-only query: the fused layout is [cnn ; colour]; zeroing
         * the CNN part makes the inner product rank by colour alone. */
        size_t dim = c->g->meta.fused_dim;
        memset(c->ws->vec2, 0, (dim - LK_COLOUR_DIM) * sizeof *c->ws->vec2);
        memcpy(c->ws->vec2 + dim - LK_COLOUR_DIM, c->query + dim - LK_COLOUR_DIM,
               LK_COLOUR_DIM * sizeof *c->ws->vec2);
        float nn = 0.0f;
        for (size_t i = dim - LK_COLOUR_DIM; i < dim; i++)
            nn += c->ws->vec2[i] * c->ws->vec2[i];
        if (nn > 0.0f) {
            rc = step(c, "colour_adjacent", c->ws->vec2, &c->base,
                      c->category_explicit ? c->category : NULL, tier++, err);
            c->by_colour = 1;
        }
    }
    /* Nothing visible under the shopper's filters: relax them in turn. */
    struct lk_filter f = c->base;
    if (rc == LK_OK && c->n_cands == 0 && (f.min_price_minor != LK_PRICE_ANY_MIN ||
                                           f.max_price_minor != LK_PRICE_ANY_MAX)) {
        f.min_price_minor = LK_PRICE_ANY_MIN;
        f.max_price_minor = LK_PRICE_ANY_MAX;
        rc = step(c, "price_range", c->query, &f, NULL, tier++, err);
    }
    if (rc == LK_OK && c->n_cands == 0 && f.in_stock) {
        f.in_stock = 0;
        rc = step(c, "in_stock", c->query, &f, NULL, tier++, err);
    }
    if (rc == LK_OK && c->n_cands == 0 && f.region) {
        f.region = NULL;
        rc = step(c, "region", c->query, &f, NULL, tier++, err);
    }
    if (rc != LK_OK)
        return rc;

    const char *msg = NULL;
    if (c->n_cands == 0)
        msg = "No products are available to show.";
    else if (was_empty && c->resp->fallback.n_relaxed)
        msg = "Nothing matched your filters exactly; showing the closest products we have.";
    else if (!above_low(c))
        msg = "No close match for this photo; showing products with similar colours and style.";
    else if (c->resp->fallback.n_relaxed)
        msg = "Few close matches in this category; showing related products too.";
    if (msg) {
        rc = lk_search_response_set_message(c->resp, msg);
        if (rc != LK_OK)
            return lk_err_set(err, rc, "out of memory");
        if (!c->resp->fallback.n_relaxed)
            c->resp->fallback.applied = true;
    }
    return LK_OK;
}

/* ==== Facets ============================================================ */

struct facet {
    const char *cat;
    uint32_t count;
};

static int cmp_facet(const void *a, const void *b)
{
    const struct facet *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->cat, y->cat);
}

int lk__facets(struct lk__search_ctx *c, struct lk_err *err)
{
    /* Close matches: the guard's neighbours at or above the floor; when
     * none is that close, all of them (facets are never empty while the
     * catalog has visible products). */
    size_t nv = c->n_votes, close = 0;
    for (size_t i = 0; i < nv; i++)
        close += c->votes[i].similarity >= c->g->meta.bands.floor;
    struct facet *fs = calloc(nv ? nv : 1, sizeof *fs);
    if (!fs)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    size_t nf = 0;
    for (size_t i = 0; i < nv; i++) {
        if (close && c->votes[i].similarity < c->g->meta.bands.floor)
            continue;
        const char *cat = c->votes[i].category;
        if (!cat || !cat[0])
            continue;
        size_t j;
        for (j = 0; j < nf; j++)
            if (!strcmp(fs[j].cat, cat))
                break;
        if (j == nf)
            fs[nf++] = (struct facet){cat, 0};
        fs[j].count++;
    }
    qsort(fs, nf, sizeof *fs, cmp_facet);
    int rc = LK_OK;
    for (size_t j = 0; j < nf && rc == LK_OK; j++)
        rc = lk_search_response_add_facet(c->resp, fs[j].cat, fs[j].count);
    free(fs);
    return rc == LK_OK ? LK_OK : lk_err_set(err, rc, "out of memory");
}
