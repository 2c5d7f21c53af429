/*
 * backend.c — struct lk_server_backend (lookalike/server.h) implemented on
 * the engine: the glue between the HTTP layer's request structs and the
 * engine/catalog API.  No HTTP here; no search logic either.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psearch.h"

#include "lookalike/server.h"

static int be_search(void *ctx, const void *image, size_t len, const struct lk_search_request *req,
                     struct lk_search_response *resp, struct lk_err *err)
{
    return lk_engine_search(ctx, image, len, req, resp, err);
}

static int be_similar(void *ctx, const char *sku, const struct lk_search_request *req,
                      struct lk_search_response *resp, struct lk_err *err)
{
    return lk_engine_similar(ctx, sku, req, resp, err);
}

static int put_one(struct lk_engine *eng, const struct lk_server_item *it, int *created,
                   struct lk_err *err)
{
    /* Regions: the API gives a list, the catalog stores "A|B". */
    char regions[LK_ITEM_REGIONS_MAX * 17 + 1];
    size_t off = 0;
    regions[0] = '\0';
    for (size_t i = 0; i < it->n_regions; i++) {
        int n = snprintf(regions + off, sizeof regions - off, "%s%s", i ? "|" : "", it->regions[i]);
        if (n < 0 || (size_t)n >= sizeof regions - off)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "too many regions");
        off += (size_t)n;
    }
    struct lk_engine_item e = {
        .sku = it->sku,
        .title = it->title,
        .category = it->category,
        .price_minor = it->price_minor,
        .currency = it->currency[0] ? it->currency : NULL,
        .stock = it->stock,
        .regions = regions,
        .flags = it->flags & LK_FLAG_ALL,
        .margin_tier = -1,
        .images = it->images,
        .n_images = it->n_images,
    };
    return lk_engine_item_put(eng, &e, created, err);
}

static int be_item_put(void *ctx, const struct lk_server_item *item, bool *created, struct lk_err *err)
{
    int c = 0;
    int rc = put_one(ctx, item, &c, err);
    if (created)
        *created = c != 0;
    return rc;
}

static int be_item_patch(void *ctx, const char *sku, const struct lk_server_item_patch *patch,
                         struct lk_err *err)
{
    struct lk_engine *eng = ctx;
    struct lk_product_patch p = {0};
    if (patch->set & LK_PATCH_STOCK) {
        p.has_stock = 1;
        p.stock = patch->stock;
    }
    if (patch->set & LK_PATCH_PRICE) {
        p.has_price = 1;
        p.price_minor = patch->price_minor;
        p.currency = patch->currency[0] ? patch->currency : NULL;
    }
    if (patch->set & LK_PATCH_FLAGS) {
        struct lk_product cur = {0};
        int rc = lk_catalog_get_product(eng->cat, sku, &cur, err);
        if (rc != LK_OK)
            return rc;
        p.has_flags = 1;
        p.flags = ((cur.flags & ~patch->flags_mask) | (patch->flags & patch->flags_mask)) & LK_FLAG_ALL;
        lk_product_clear(&cur);
    }
    return lk_engine_item_patch(eng, sku, &p, (patch->set & LK_PATCH_TITLE) ? patch->title : NULL, err);
}

static int be_item_delete(void *ctx, const char *sku, struct lk_err *err)
{
    return lk_engine_item_delete(ctx, sku, err);
}

static int be_items_batch(void *ctx, const struct lk_server_item *items, size_t n, int *statuses,
                          struct lk_err *errs, struct lk_err *err)
{
    (void)err;
    for (size_t i = 0; i < n; i++)
        statuses[i] = put_one(ctx, &items[i], NULL, &errs[i]);
    return LK_OK;
}

static int be_reload(void *ctx, struct lk_err *err)
{
    return lk_engine_reload(ctx, err);
}

static int be_record_event(void *ctx, const struct lk_server_event *ev, struct lk_err *err)
{
    static const char *const types[] = {"view", "add_to_cart", "purchase"};
    if ((unsigned)ev->type > LK_EVENT_PURCHASE)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "unknown event type");
    return lk_engine_record_event(ctx, ev->search_id, ev->sku, types[ev->type], ev->ts, err);
}

static int be_ready(void *ctx, struct lk_err *err)
{
    return lk_engine_ready(ctx, err);
}

static int be_image(void *ctx, const char *image_id, void **data, size_t *len, const char **mime,
                    struct lk_err *err)
{
    int64_t id = 0;
    size_t n = image_id ? strlen(image_id) : 0;
    if (n == 0 || n > 18)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "no such image");
    for (size_t i = 0; i < n; i++) {
        if (image_id[i] < '0' || image_id[i] > '9')
            return lk_err_set(err, LK_ERR_NOT_FOUND, "no such image");
        id = id * 10 + (image_id[i] - '0');
    }
    return lk_engine_image(ctx, id, data, len, mime, err);
}

static size_t be_metrics(void *ctx, char *buf, size_t cap)
{
    return lk_engine_metrics_text(ctx, buf, cap);
}

void lk_search_backend(struct lk_engine *eng, struct lk_server_backend *be)
{
    memset(be, 0, sizeof *be);
    be->ctx = eng;
    be->search = be_search;
    be->similar = be_similar;
    be->item_put = be_item_put;
    be->item_patch = be_item_patch;
    be->item_delete = be_item_delete;
    be->items_batch = be_items_batch;
    be->reload = be_reload;
    be->record_event = be_record_event;
    be->ready = be_ready;
    be->image = be_image;
    be->metrics_text = be_metrics;
}
