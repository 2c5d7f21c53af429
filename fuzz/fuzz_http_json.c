/*
 * fuzz/fuzz_http_json.c — libFuzzer target: bytes -> the server's strict
 * JSON body parsers (src/server/json.c, reached through pserver.h, as the
 * server's own unit tests do): POST /v1/events, PUT /v1/items/{sku},
 * PATCH /v1/items/{sku} and POST /v1/items:batch.
 *
 * Byte 0 picks the parser, the rest is the body (not NUL-terminated: the
 * parsers take a length, and a body may contain NUL bytes).  A refused body
 * must come with an error code for the 400 reply; an accepted one must obey
 * the documented limits (the backend trusts them).  Accepted batches are
 * also rendered through lk__json_batch_reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lookalike/server.h"
#include "lookalike/status.h"
#include "pserver.h"

static void check_item(const struct lk_server_item *it)
{
    if (!it->sku || strlen(it->sku) == 0 || strlen(it->sku) > LK_HTTP_SKU_MAX ||
        !lk__valid_sku(it->sku, strlen(it->sku)))
        abort();
    if (it->title && strlen(it->title) > LK_ITEM_TITLE_MAX)
        abort();
    if (it->category && strlen(it->category) > LK_ITEM_CATEGORY_MAX)
        abort();
    if (it->price_minor < 0 || it->stock < 0 || it->n_regions > LK_ITEM_REGIONS_MAX ||
        it->n_images > LK_ITEM_IMAGES_MAX || strlen(it->currency) != 3)
        abort();
    for (size_t i = 0; i < it->n_regions; i++)
        if (!lk__valid_region(it->regions[i], strlen(it->regions[i])))
            abort();
    for (size_t i = 0; i < it->n_images; i++)
        if (!it->images[i] || strlen(it->images[i]) > LK_ITEM_PATH_MAX)
            abort();
}

static void check_refusal(int rc, const struct lk__perr *pe)
{
    if (rc == LK_ERR_NOMEM)
        return;
    if (rc != LK_ERR_PARSE && rc != LK_ERR_INVALID_ARG && rc != LK_ERR_TOO_LARGE)
        abort();
    if (!pe->code || !pe->code[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] & 3;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct lk__perr pe;
    memset(&pe, 0, sizeof pe);
    struct lk__json_doc *doc = NULL;
    int rc;

    switch (which) {
    case 0: {
        struct lk_server_event ev;
        rc = lk__json_parse_event(body, len, INT64_C(1767225600) /* 2026-01-01 */, &ev, &pe);
        if (rc != LK_OK) {
            check_refusal(rc, &pe);
            break;
        }
        if (strlen(ev.search_id) != LK_SEARCH_ID_LEN || strlen(ev.sku) == 0 ||
            ev.ts < LK_EVENT_TS_MIN || (unsigned)ev.type > LK_EVENT_PURCHASE)
            abort();
        break;
    }
    case 1: {
        struct lk_server_item it;
        rc = lk__json_parse_item(body, len, "SKU-1", &doc, &it, &pe);
        if (rc != LK_OK) {
            check_refusal(rc, &pe);
            if (doc)
                abort();    /* refused documents are freed by the parser */
            break;
        }
        check_item(&it);
        if (strcmp(it.sku, "SKU-1") != 0)
            abort();
        break;
    }
    case 2: {
        struct lk_server_item_patch p;
        rc = lk__json_parse_patch(body, len, &doc, &p, &pe);
        if (rc != LK_OK) {
            check_refusal(rc, &pe);
            if (doc)
                abort();
            break;
        }
        if (p.set == 0 || ((p.set & LK_PATCH_STOCK) && p.stock < 0) ||
            ((p.set & LK_PATCH_PRICE) && p.price_minor < 0) ||
            ((p.set & LK_PATCH_TITLE) && (!p.title || strlen(p.title) > LK_ITEM_TITLE_MAX)))
            abort();
        break;
    }
    default: {
        struct lk_server_item *items = NULL;
        size_t n = 0;
        rc = lk__json_parse_batch(body, len, &doc, &items, &n, &pe);
        if (rc != LK_OK) {
            check_refusal(rc, &pe);
            if (doc)
                abort();
            break;
        }
        if (n == 0 || n > LK_BATCH_MAX)
            abort();
        int *st = calloc(n, sizeof *st);
        struct lk_err *errs = calloc(n, sizeof *errs);
        if (!st || !errs)
            abort();
        for (size_t i = 0; i < n; i++) {
            check_item(&items[i]);
            if (i % 2) {
                st[i] = LK_ERR_NOT_FOUND;
                lk_err_set(&errs[i], LK_ERR_NOT_FOUND, "no such item %s", items[i].sku);
            }
        }
        struct lk__reply out;
        memset(&out, 0, sizeof out);
        if (lk__json_batch_reply(&out, items, n, st, errs) == LK_OK)
            lk__reply_discard(&out);
        free(st);
        free(errs);
        break;
    }
    }
    lk__json_doc_free(doc);
    return 0;
}
