/*
 * fake_backend.h — TEST DOUBLE.  An in-memory stand-in for the search
 * pipeline, used only by the server's tests and tests/server/fake_server.c
 * so the HTTP layer can be exercised before src/search exists.  It is not
 * product code and must never be linked into the `lookalike` binary.
 *
 * Behaviour (deterministic, just enough to observe the HTTP contract):
 *  - sniffs magic bytes: JPEG (FF D8 FF) or PNG (89 'P' 'N' 'G' ...),
 *    anything else -> LK_ERR_UNSUPPORTED_FORMAT (415); a body containing
 *    "LKBOMB" -> LK_ERR_DIMENSIONS (422), "LKCORRUPT" -> LK_ERR_CORRUPT
 *    (400), a JPEG shorter than 32 bytes -> LK_ERR_TRUNCATED (400);
 *  - "category guard": JPEG queries infer "furniture/sofas", PNG queries
 *    "lighting/lamps" (confidence 0.8); an explicit category overrides;
 *  - honours k, in_stock (default on), region, min/max price, hides
 *    restricted/retired items unless include_restricted, age-restricted
 *    unless allow_age_restricted;
 *  - scores fall by 0.1 per rank from 0.95; bands from the score;
 *  - when the guarded search finds nothing, relaxes the category guard
 *    ("category_guard") and says so; facets count categories of in-stock
 *    items.
 */
#ifndef LK_FAKE_BACKEND_H
#define LK_FAKE_BACKEND_H

#include <pthread.h>

#include "lookalike/server.h"

#define FAKE_MAX_ITEMS 128

struct fake_item {
    bool used;
    char sku[LK_HTTP_SKU_MAX + 1];
    char title[128];
    char category[64];
    char region[17];        /* "" = everywhere */
    int64_t price_minor;
    char currency[4];
    int64_t stock;
    unsigned flags;
    char image_id[64];
};

struct fake_backend {
    pthread_mutex_t lock;
    struct fake_item items[FAKE_MAX_ITEMS];
    int reloads;
    int events;
    struct lk_server_event last_event;
    bool not_ready;
    int searches;
    int search_delay_ms;    /* simulate a slow pipeline (graceful-stop test) */
};

/* Fill with a small demo catalog (sofas, lamps, an out-of-stock sofa, a
 * restricted item, an age-restricted item). */
void fake_backend_init(struct fake_backend *fb);
void fake_backend_destroy(struct fake_backend *fb);
/* The interface table pointing at `fb`. */
struct lk_server_backend fake_backend_table(struct fake_backend *fb);

#endif
