/*
 * fake_backend.c — TEST DOUBLE for the server tests; see fake_backend.h.
 * Not product code: the real backend is the search pipeline (src/search).
 */
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_images.h"

static void add(struct fake_backend *fb, const char *sku, const char *title, const char *cat, int64_t price,
                int64_t stock, unsigned flags, const char *region)
{
    for (int i = 0; i < FAKE_MAX_ITEMS; i++) {
        struct fake_item *it = &fb->items[i];
        if (it->used)
            continue;
        it->used = true;
        snprintf(it->sku, sizeof it->sku, "%s", sku);
        snprintf(it->title, sizeof it->title, "%s", title);
        snprintf(it->category, sizeof it->category, "%s", cat);
        snprintf(it->region, sizeof it->region, "%s", region ? region : "");
        it->price_minor = price;
        memcpy(it->currency, "EUR", 4);
        it->stock = stock;
        it->flags = flags;
        snprintf(it->image_id, sizeof it->image_id, "img-%s", sku);
        return;
    }
}

void fake_backend_init(struct fake_backend *fb)
{
    memset(fb, 0, sizeof *fb);
    pthread_mutex_init(&fb->lock, NULL);
    add(fb, "SOFA-1", "Beige two-seat sofa", "furniture/sofas", 49900, 5, 0, NULL);
    add(fb, "SOFA-2", "Grey corner sofa", "furniture/sofas", 89900, 2, 0, NULL);
    add(fb, "SOFA-3", "Green velvet sofa", "furniture/sofas", 69900, 0, 0, NULL);      /* out of stock */
    add(fb, "SOFA-4", "Blue sofa (EU only)", "furniture/sofas", 59900, 3, 0, "EU");
    add(fb, "LAMP-1", "Brass floor lamp", "lighting/lamps", 12900, 10, 0, NULL);
    add(fb, "LAMP-2", "Paper table lamp", "lighting/lamps", 3900, 4, 0, NULL);
    add(fb, "BAG-1", "Beige bean bag", "furniture/bean-bags", 7900, 8, 0, NULL);
    add(fb, "HELD-1", "Recalled sofa", "furniture/sofas", 29900, 9, LK_ITEM_RESTRICTED, NULL);
    add(fb, "WINE-1", "Red wine rack with wine", "kitchen/wine", 4900, 6, LK_ITEM_AGE_RESTRICTED, NULL);
}

void fake_backend_destroy(struct fake_backend *fb)
{
    pthread_mutex_destroy(&fb->lock);
}

static struct fake_item *find(struct fake_backend *fb, const char *sku)
{
    for (int i = 0; i < FAKE_MAX_ITEMS; i++)
        if (fb->items[i].used && strcmp(fb->items[i].sku, sku) == 0)
            return &fb->items[i];
    return NULL;
}

static bool contains(const void *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    const char *h = hay;
    for (size_t i = 0; h && i + k <= n; i++)
        if (memcmp(h + i, needle, k) == 0)
            return true;
    return false;
}

static enum lk_band band_of(float s)
{
    return s >= 0.9f ? LK_BAND_EXACT : s >= 0.75f ? LK_BAND_HIGH : s >= 0.5f ? LK_BAND_MEDIUM : LK_BAND_LOW;
}

/* Business filters of the request (category handled by the caller). */
static bool visible(const struct fake_item *it, const struct lk_search_request *req)
{
    if ((it->flags & (LK_ITEM_RESTRICTED | LK_ITEM_RETIRED)) && !req->include_restricted)
        return false;
    if ((it->flags & LK_ITEM_AGE_RESTRICTED) && !req->allow_age_restricted)
        return false;
    if (req->in_stock != LK_TRI_NO && it->stock <= 0)
        return false;
    if (req->region && it->region[0] && strcmp(req->region, it->region) != 0)
        return false;
    if (req->min_price_minor != LK_PRICE_UNSET && it->price_minor < req->min_price_minor)
        return false;
    if (req->max_price_minor != LK_PRICE_UNSET && it->price_minor > req->max_price_minor)
        return false;
    return true;
}

static int collect(struct fake_backend *fb, const char *category, const char *exclude,
                   const struct lk_search_request *req, struct lk_search_response *resp)
{
    float score = 0.95f;
    for (int i = 0; i < FAKE_MAX_ITEMS && resp->n_results < req->k; i++) {
        const struct fake_item *it = &fb->items[i];
        struct lk_search_result r;
        if (!it->used || !visible(it, req) || (exclude && strcmp(exclude, it->sku) == 0))
            continue;
        if (category && strncmp(it->category, category, strlen(category)) != 0)
            continue;
        memset(&r, 0, sizeof r);
        r.sku = (char *)it->sku;
        r.title = (char *)it->title;
        r.category = (char *)it->category;
        r.price_minor = it->price_minor;
        memcpy(r.currency, it->currency, 4);
        r.stock = it->stock;
        r.image_id = (char *)it->image_id;
        r.score = score;
        r.band = band_of(score);
        score -= 0.1f;
        if (lk_search_response_add_result(resp, &r) != LK_OK)
            return LK_ERR_NOMEM;
    }
    return LK_OK;
}

static int facets(struct fake_backend *fb, struct lk_search_response *resp)
{
    const char *seen[FAKE_MAX_ITEMS];
    uint32_t count[FAKE_MAX_ITEMS];
    size_t n = 0;
    for (int i = 0; i < FAKE_MAX_ITEMS; i++) {
        const struct fake_item *it = &fb->items[i];
        size_t j;
        if (!it->used || it->stock <= 0 || it->flags)
            continue;
        for (j = 0; j < n && strcmp(seen[j], it->category) != 0; j++)
            ;
        if (j == n) {
            seen[n] = it->category;
            count[n++] = 0;
        }
        count[j]++;
    }
    for (size_t j = 0; j < n; j++)
        if (lk_search_response_add_facet(resp, seen[j], count[j]) != LK_OK)
            return LK_ERR_NOMEM;
    return LK_OK;
}

/* Shared by search and similar: guarded search, then fallback. */
static int run(struct fake_backend *fb, const char *inferred, const char *exclude,
               const struct lk_search_request *req, struct lk_search_response *resp, struct lk_err *err)
{
    const char *cat = req->category ? req->category : inferred;
    int rc;
    (void)err;
    lk_search_response_add_timing(resp, "decode", 0.4);
    lk_search_response_add_timing(resp, "embed", 2.5);
    lk_search_response_add_timing(resp, "search", 0.3);
    pthread_mutex_lock(&fb->lock);
    fb->searches++;
    rc = lk_search_response_set_category(resp, cat, req->category ? 1.0f : 0.8f);
    resp->category_from_request = req->category != NULL;
    if (rc == LK_OK)
        rc = collect(fb, cat, exclude, req, resp);
    if (rc == LK_OK && resp->n_results == 0) {
        rc = lk_search_response_add_relaxed(resp, "category_guard");
        if (rc == LK_OK)
            rc = collect(fb, NULL, exclude, req, resp);
        if (rc == LK_OK)
            rc = lk_search_response_set_message(
                resp, resp->n_results ? "No close match in this category; showing similar products from other categories."
                                      : "No products match these filters.");
    }
    if (rc == LK_OK)
        rc = facets(fb, resp);
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

static int fake_search(void *ctx, const void *image, size_t len, const struct lk_search_request *req,
                       struct lk_search_response *resp, struct lk_err *err)
{
    static const unsigned char jpeg_magic[3] = {0xff, 0xd8, 0xff};
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    bool jpeg = len >= 3 && memcmp(image, jpeg_magic, 3) == 0;
    bool png = len >= 8 && memcmp(image, png_magic, 8) == 0;
    if (!jpeg && !png)
        return lk_err_set(err, LK_ERR_UNSUPPORTED_FORMAT, "not a JPEG or PNG image (magic bytes)");
    if (contains(image, len, "LKBOMB"))
        return lk_err_set(err, LK_ERR_DIMENSIONS, "image is 100000 x 100000 pixels, over the 50 Mpx limit");
    if (contains(image, len, "LKCORRUPT"))
        return lk_err_set(err, LK_ERR_CORRUPT, "corrupt JPEG data: bad Huffman code");
    if (jpeg && len < 32)
        return lk_err_set(err, LK_ERR_TRUNCATED, "JPEG ends before the first scan");
    struct fake_backend *fb = ctx;
    int delay;
    pthread_mutex_lock(&fb->lock);
    delay = fb->search_delay_ms;
    pthread_mutex_unlock(&fb->lock);
    if (delay)
        usleep((useconds_t)delay * 1000);
    return run(ctx, jpeg ? "furniture/sofas" : "lighting/lamps", NULL, req, resp, err);
}

static int fake_similar(void *ctx, const char *sku, const struct lk_search_request *req,
                        struct lk_search_response *resp, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    char cat[64];
    struct fake_item *it;
    pthread_mutex_lock(&fb->lock);
    it = find(fb, sku);
    if (it)
        snprintf(cat, sizeof cat, "%s", it->category);
    pthread_mutex_unlock(&fb->lock);
    if (!it)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "no item with SKU %s", sku);
    return run(fb, cat, sku, req, resp, err);
}

static void copy_item(struct fake_item *dst, const struct lk_server_item *it)
{
    dst->used = true;
    snprintf(dst->sku, sizeof dst->sku, "%s", it->sku);
    snprintf(dst->title, sizeof dst->title, "%s", it->title);
    snprintf(dst->category, sizeof dst->category, "%s", it->category);
    snprintf(dst->region, sizeof dst->region, "%s", it->n_regions ? it->regions[0] : "");
    dst->price_minor = it->price_minor;
    memcpy(dst->currency, it->currency, 4);
    dst->stock = it->stock;
    dst->flags = it->flags;
    snprintf(dst->image_id, sizeof dst->image_id, "img-%s", it->sku);
}

static int put_locked(struct fake_backend *fb, const struct lk_server_item *item, bool *created, struct lk_err *err)
{
    struct fake_item *it = find(fb, item->sku);
    *created = it == NULL;
    for (int i = 0; !it && i < FAKE_MAX_ITEMS; i++)
        if (!fb->items[i].used)
            it = &fb->items[i];
    if (!it)
        return lk_err_set(err, LK_ERR_LIMIT, "fake catalog is full");
    for (size_t i = 0; i < item->n_images; i++)
        if (strstr(item->images[i], "missing"))
            return lk_err_set(err, LK_ERR_IO, "cannot read image %s", item->images[i]);
    copy_item(it, item);
    return LK_OK;
}

static int fake_item_put(void *ctx, const struct lk_server_item *item, bool *created, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    int rc;
    pthread_mutex_lock(&fb->lock);
    rc = put_locked(fb, item, created, err);
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

static int fake_item_patch(void *ctx, const char *sku, const struct lk_server_item_patch *p, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    struct fake_item *it;
    pthread_mutex_lock(&fb->lock);
    it = find(fb, sku);
    if (it) {
        if (p->set & LK_PATCH_STOCK)
            it->stock = p->stock;
        if (p->set & LK_PATCH_PRICE) {
            it->price_minor = p->price_minor;
            if (p->currency[0])
                memcpy(it->currency, p->currency, 4);
        }
        if (p->set & LK_PATCH_FLAGS)
            it->flags = (it->flags & ~p->flags_mask) | (p->flags & p->flags_mask);
        if (p->set & LK_PATCH_TITLE)
            snprintf(it->title, sizeof it->title, "%s", p->title);
    }
    pthread_mutex_unlock(&fb->lock);
    return it ? LK_OK : lk_err_set(err, LK_ERR_NOT_FOUND, "no item with SKU %s", sku);
}

static int fake_item_delete(void *ctx, const char *sku, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    struct fake_item *it;
    pthread_mutex_lock(&fb->lock);
    it = find(fb, sku);
    if (it)
        memset(it, 0, sizeof *it);
    pthread_mutex_unlock(&fb->lock);
    return it ? LK_OK : lk_err_set(err, LK_ERR_NOT_FOUND, "no item with SKU %s", sku);
}

static int fake_items_batch(void *ctx, const struct lk_server_item *items, size_t n, int *statuses,
                            struct lk_err *errs, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    (void)err;
    pthread_mutex_lock(&fb->lock);
    for (size_t i = 0; i < n; i++) {
        bool created;
        statuses[i] = put_locked(fb, &items[i], &created, &errs[i]);
    }
    pthread_mutex_unlock(&fb->lock);
    return LK_OK;
}

static int fake_reload(void *ctx, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    (void)err;
    pthread_mutex_lock(&fb->lock);
    fb->reloads++;
    pthread_mutex_unlock(&fb->lock);
    return LK_OK;
}

static int fake_record_event(void *ctx, const struct lk_server_event *ev, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    int rc = LK_OK;
    pthread_mutex_lock(&fb->lock);
    if (!find(fb, ev->sku)) {
        rc = lk_err_set(err, LK_ERR_NOT_FOUND, "no item with SKU %s", ev->sku);
    } else {
        fb->events++;
        fb->last_event = *ev;
    }
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

static int fake_ready(void *ctx, struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    bool nr;
    pthread_mutex_lock(&fb->lock);
    nr = fb->not_ready;
    pthread_mutex_unlock(&fb->lock);
    return nr ? lk_err_set(err, LK_ERR_STATE, "index is loading") : LK_OK;
}

static int fake_image(void *ctx, const char *image_id, void **data, size_t *len, const char **mime,
                      struct lk_err *err)
{
    struct fake_backend *fb = ctx;
    bool found = false;
    pthread_mutex_lock(&fb->lock);
    for (int i = 0; i < FAKE_MAX_ITEMS; i++)
        if (fb->items[i].used && strcmp(fb->items[i].image_id, image_id) == 0)
            found = true;
    pthread_mutex_unlock(&fb->lock);
    if (!found)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "no image %s", image_id);
    *data = malloc(sizeof lk_test_png);
    if (!*data)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    memcpy(*data, lk_test_png, sizeof lk_test_png);
    *len = sizeof lk_test_png;
    *mime = "image/png";
    return LK_OK;
}

static size_t fake_metrics_text(void *ctx, char *buf, size_t cap)
{
    struct fake_backend *fb = ctx;
    int n = 0, w;
    pthread_mutex_lock(&fb->lock);
    for (int i = 0; i < FAKE_MAX_ITEMS; i++)
        n += fb->items[i].used;
    pthread_mutex_unlock(&fb->lock);
    w = snprintf(buf, cap, "# TYPE lookalike_catalog_items gauge\nlookalike_catalog_items %d\n", n);
    return w < 0 ? 0 : (size_t)w;
}

struct lk_server_backend fake_backend_table(struct fake_backend *fb)
{
    struct lk_server_backend be = {
        .ctx = fb,
        .search = fake_search,
        .similar = fake_similar,
        .item_put = fake_item_put,
        .item_patch = fake_item_patch,
        .item_delete = fake_item_delete,
        .items_batch = fake_items_batch,
        .reload = fake_reload,
        .record_event = fake_record_event,
        .ready = fake_ready,
        .image = fake_image,
        .metrics_text = fake_metrics_text,
    };
    return be;
}
