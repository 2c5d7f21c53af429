/*
 * query.c — the query path: photo -> fused embedding -> guarded, filtered,
 * collapsed, ranked, banded results with fallback and facets.
 *
 * Business filters run INSIDE the index search: the catalog turns the
 * request's filter into an allow-list bitmap over image ids (one pass over
 * its in-memory snapshot, no SQL) and the HNSW search only admits allowed
 * ids into its result set (lk_search_opts.allow_fn), switching itself to an
 * exact scan of the allowed set when the filter is very selective.
 * Filtering after the search would return fewer than k results, or none,
 * whenever the nearest neighbours happen to be out of stock.
 *
 * Collapse: a product with several photos has several vectors; the index
 * is asked for k x (images-per-SKU bound of the generation) hits so that k
 * distinct products survive keeping only each product's best image.
 *
 * Stage timings reported (ms): decode, embed, guard, search, fallback, rank.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psearch.h"

static int allow_pred(uint64_t id, void *user)
{
    return lk_allow_test(user, id);
}

static float dot(const float *a, const float *b, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Cosine of the colour parts of two fused vectors (the last LK_COLOUR_DIM
 * floats, each sqrt(1 - w) times a unit histogram embedding). */
static float colour_cos(const float *a, const float *b, size_t dim)
{
    const float *x = a + dim - LK_COLOUR_DIM, *y = b + dim - LK_COLOUR_DIM;
    float xy = dot(x, y, LK_COLOUR_DIM), xx = dot(x, x, LK_COLOUR_DIM), yy = dot(y, y, LK_COLOUR_DIM);
    return xx > 0 && yy > 0 ? xy / sqrtf(xx * yy) : 0.0f;
}

static int cand_has(const struct lk__search_ctx *c, int64_t pid)
{
    for (size_t i = 0; i < c->n_cands; i++)
        if (c->cands[i].product_id == pid)
            return 1;
    return 0;
}

int lk__search_collapse(struct lk__search_ctx *c, const float *query, const struct lk_filter *f,
                        const char *category, size_t want, int tier, struct lk_err *err)
{
    struct lk_filter f2 = *f;
    f2.category = category && category[0] ? category : NULL;
    int rc = lk_catalog_allow_build(c->eng->cat, &f2, &c->allow, err);
    if (rc != LK_OK || c->allow.count == 0 || want == 0)
        return rc;
    const struct lk__meta *m = &c->g->meta;
    /* Products already listed (and the excluded one) will be skipped, so
     * ask for enough extra hits to still find `want` new ones. */
    size_t k_img = (want + c->n_cands + (c->exclude_product != 0)) * m->per_sku;
    if (k_img > LK__HITS_MAX)
        k_img = LK__HITS_MAX;
    if (k_img > c->allow.count)
        k_img = c->allow.count;
    struct lk_search_opts so = {0};
    so.ef_search = c->eng->opts.ef_search;
    if (so.ef_search && so.ef_search < k_img)
        so.ef_search = (uint32_t)k_img;
    so.allow_fn = allow_pred;
    so.allow_user = &c->allow;
    so.allowed_estimate = c->allow.count;
    size_t n = 0;
    rc = lk_index_search(c->g->idx, query, k_img, &so, c->ws->hits, &n, err);
    if (rc != LK_OK)
        return rc;
    size_t added = 0;
    for (size_t i = 0; i < n && added < want; i++) {
        struct lk_image_brief br;
        int64_t iid = (int64_t)c->ws->hits[i].id;
        if (lk_catalog_image_brief(c->eng->cat, iid, &br, NULL) != LK_OK)
            continue;   /* deleted since the allow-list was built */
        if (br.product_id == c->exclude_product || cand_has(c, br.product_id))
            continue;
        float sim = c->ws->hits[i].similarity, csim = 0.0f;
        if (lk_index_get_vector(c->g->idx, (uint64_t)iid, c->ws->vec3, NULL) == LK_OK) {
            if (query != c->query)
                sim = dot(c->query, c->ws->vec3, m->fused_dim);
            csim = colour_cos(c->query, c->ws->vec3, m->fused_dim);
        }
        if (lk__search_grow((void **)&c->cands, &c->cap_cands, c->n_cands, sizeof *c->cands) != LK_OK)
            return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        c->cands[c->n_cands++] = (struct lk__cand){br.product_id, iid, sim, csim, tier};
        added++;
    }
    return LK_OK;
}

static int add_results(struct lk__search_ctx *c, struct lk_err *err)
{
    size_t n = c->n_cands;
    if (n == 0)
        return LK_OK;
    struct lk_rank_item *items = calloc(n, sizeof *items);
    if (!items)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    const struct lk_bands *b = &c->g->meta.bands;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lk__cand *cd = &c->cands[i];
        struct lk_image_brief br;
        if (lk_catalog_image_brief(c->eng->cat, cd->image_id, &br, NULL) != LK_OK)
            continue;
        struct lk_rank_item *it = &items[m++];
        it->similarity = cd->similarity;
        it->basis = c->by_colour && lk_bands_classify(b, cd->similarity) == LK_BAND_LOW
                        ? cd->colour_similarity : cd->similarity;
        it->price_minor = br.price_minor;
        it->stock = br.stock;
        it->margin_tier = br.margin_tier;
        it->weak = lk__img_weak(c->eng, cd->image_id);
        /* Results are ordered by band, then score: a relaxed step's medium
         * match outranks a weak strict one.  Only when the CALLER named the
         * category do its own products come first whatever their band
         * (tier 0); in the colour fallback weak results compete on colour. */
        int strict = cd->tier == 0 && !(c->by_colour && lk_bands_classify(b, cd->similarity) == LK_BAND_LOW);
        it->tier = c->category_explicit && !strict ? 1 : 0;
        it->user = i;
    }
    lk_rank_apply(&c->eng->opts.rank, b, items, m);
    int rc = LK_OK;
    size_t k = c->req->k;
    for (size_t j = 0; j < m && c->resp->n_results < k && rc == LK_OK; j++) {
        const struct lk__cand *cd = &c->cands[items[j].user];
        struct lk__pinfo pi;
        if (lk__product_info(c->eng, cd->product_id, &pi, NULL) != LK_OK)
            continue;
        char image_id[24];
        snprintf(image_id, sizeof image_id, "%lld", (long long)cd->image_id);
        struct lk_search_result r = {0};
        r.sku = pi.sku;
        r.title = pi.title;
        r.category = pi.category;
        r.price_minor = items[j].price_minor;
        memcpy(r.currency, pi.currency, sizeof r.currency);
        r.stock = items[j].stock;
        r.image_id = image_id;
        r.score = items[j].score;
        r.band = items[j].band;
        rc = lk_search_response_add_result(c->resp, &r);
        lk__pinfo_clear(&pi);
    }
    free(items);
    return rc == LK_OK ? LK_OK : lk_err_set(err, rc, "out of memory");
}

int lk__search_run(struct lk__search_ctx *c, struct lk_err *err)
{
    double t = lk__now_ms();
    int rc = lk__guard(c, err);
    double t2 = lk__now_ms();
    lk_search_response_add_timing(c->resp, "guard", t2 - t);
    if (rc == LK_OK)
        rc = lk__search_collapse(c, c->query, &c->base, c->category, c->req->k, 0, err);
    double t3 = lk__now_ms();
    lk_search_response_add_timing(c->resp, "search", t3 - t2);
    if (rc == LK_OK)
        rc = lk__fallback(c, err);
    if (rc == LK_OK)
        rc = lk__facets(c, err);
    double t4 = lk__now_ms();
    lk_search_response_add_timing(c->resp, "fallback", t4 - t3);
    if (rc == LK_OK)
        rc = add_results(c, err);
    lk_search_response_add_timing(c->resp, "rank", lk__now_ms() - t4);
    return rc;
}

/* Business filter of a request (everything except the category). */
static int request_filter(const struct lk_search_request *req, struct lk_filter *f, char *region,
                          size_t region_size, struct lk_err *err)
{
    lk_filter_default(f);
    f->in_stock = req->in_stock != LK_TRI_NO;
    if (req->region && req->region[0]) {
        size_t n = strlen(req->region);
        if (n >= region_size)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "region code too long");
        for (size_t i = 0; i <= n; i++)
            region[i] = (char)toupper((unsigned char)req->region[i]);
        f->region = region;
    }
    if (req->min_price_minor != LK_PRICE_UNSET)
        f->min_price_minor = req->min_price_minor;
    if (req->max_price_minor != LK_PRICE_UNSET)
        f->max_price_minor = req->max_price_minor;
    if (f->min_price_minor > f->max_price_minor)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "min_price is above max_price");
    f->admin = req->include_restricted;
    f->allow_age_restricted = req->allow_age_restricted;
    return LK_OK;
}

static void ctx_free(struct lk__search_ctx *c)
{
    free(c->cands);
    lk_allow_free(&c->allow);
    free(c->votes);
    if (c->vote_info) {
        for (size_t i = 0; i < c->n_votes_alloc; i++)
            lk__pinfo_clear(&c->vote_info[i]);
        free(c->vote_info);
    }
}

/* Common set-up of search and similar.  Takes the generation and a
 * workspace; the caller releases them. */
static int ctx_init(struct lk_engine *eng, const struct lk_search_request *req,
                    struct lk_search_response *resp, struct lk__search_ctx *c, char *region,
                    size_t region_size, struct lk_err *err)
{
    memset(c, 0, sizeof *c);
    c->eng = eng;
    c->req = req;
    c->resp = resp;
    if (!req || req->k < LK_SEARCH_K_MIN || req->k > LK_SEARCH_K_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "k must be in [%d, %d]", LK_SEARCH_K_MIN,
                          LK_SEARCH_K_MAX);
    int rc = request_filter(req, &c->base, region, region_size, err);
    if (rc != LK_OK)
        return rc;
    if (req->category && req->category[0]) {
        rc = lk_category_normalise(req->category, c->category, sizeof c->category, err);
        if (rc != LK_OK)
            return rc;
        c->category_explicit = 1;
        resp->category_from_request = true;
    }
    /* Pick up writes made by other processes (CLI imports) at most once a
     * second: a tiny PRAGMA query, the snapshot reloads only on change. */
    long long now = (long long)lk__now_ms();
    long long last = atomic_load(&eng->last_refresh_ms);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&eng->last_refresh_ms, &last, now))
        lk_catalog_refresh(eng->cat, NULL);
    c->g = lk__gen_acquire(eng);
    if (!c->g)
        return lk_err_set(err, LK_ERR_STATE, "no index generation loaded yet");
    c->ws = lk__ws_acquire(eng, err);
    if (!c->ws)
        return err && err->code ? err->code : LK_ERR_NOMEM;
    return LK_OK;
}

static void ctx_done(struct lk__search_ctx *c)
{
    lk__ws_release(c->eng, c->ws);
    lk__gen_release(c->g);
    ctx_free(c);
}

int lk_engine_search(struct lk_engine *eng, const void *data, size_t len,
                     const struct lk_search_request *req, struct lk_search_response *resp,
                     struct lk_err *err)
{
    if (!eng || !resp || (!data && len))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "NULL argument");
    struct lk__search_ctx c;
    char region[16];
    int rc = ctx_init(eng, req, resp, &c, region, sizeof region, err);
    if (rc != LK_OK) {
        ctx_done(&c);
        return rc;
    }
    atomic_fetch_add(&eng->searches, 1);
    double t0 = lk__now_ms();
    struct lk_decode_opts o;
    lk__decode_opts(&o, eng->opts.max_image_bytes, eng->opts.max_pixels);
    struct lk_image img = {0};
    /* The upload is decoded in memory and never written anywhere. */
    rc = len == 0 ? lk_err_set(err, LK_ERR_EMPTY, "empty image")
                  : lk_image_decode(data, len, &o, &img, NULL, err);
    double t1 = lk__now_ms();
    lk_search_response_add_timing(resp, "decode", t1 - t0);
    if (rc == LK_OK) {
        rc = lk__describe(c.ws, &img, err);
        lk_image_free(&img);
    }
    if (rc == LK_OK)
        rc = lk_embed_fuse(c.g->params, c.ws->raw, c.ws->colour, c.ws->vec, err);
    lk_search_response_add_timing(resp, "embed", lk__now_ms() - t1);
    if (rc == LK_OK) {
        c.query = c.ws->vec;
        rc = lk__search_run(&c, err);
    }
    ctx_done(&c);
    return rc;
}

int lk_engine_similar(struct lk_engine *eng, const char *sku, const struct lk_search_request *req,
                      struct lk_search_response *resp, struct lk_err *err)
{
    if (!eng || !sku || !resp)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "NULL argument");
    struct lk__search_ctx c;
    char region[16];
    int rc = ctx_init(eng, req, resp, &c, region, sizeof region, err);
    struct lk_product p = {0};
    if (rc == LK_OK)
        rc = lk_catalog_get_product(eng->cat, sku, &p, err);
    if (rc == LK_OK) {
        int64_t ids[LK__PER_SKU_MAX * 4];
        size_t n = lk__img_of_product(eng, p.product_id, ids, sizeof ids / sizeof ids[0]);
        size_t i;
        for (i = 0; i < n; i++)
            if (lk_index_get_vector(c.g->idx, (uint64_t)ids[i], c.ws->vec, NULL) == LK_OK)
                break;
        if (i == n)
            rc = lk_err_set(err, LK_ERR_NOT_FOUND, "item %.64s has no indexed image", sku);
        c.exclude_product = p.product_id;
        if (rc == LK_OK && !c.category_explicit && p.category && p.category[0]) {
            /* The item's own category plays the guard's inferred one. */
            snprintf(c.category, sizeof c.category, "%s", p.category);
            c.category_preset = 1;
            rc = lk_search_response_set_category(resp, p.category, 1.0f);
            if (rc != LK_OK)
                rc = lk_err_set(err, rc, "out of memory");
        }
    }
    lk_product_clear(&p);
    if (rc == LK_OK) {
        c.query = c.ws->vec;
        rc = lk__search_run(&c, err);
    }
    ctx_done(&c);
    return rc;
}
