/* tests/search/test_engine.c — the engine (src/search/engine.c): not-ready
 * state, reload under concurrent searches, live catalog writes, images,
 * events. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lookalike/catalog.h"
#include "util.h"

FX_HOOK_SETUP
FX_HOOK_TEARDOWN

Test(engine, data_dir_without_generation_is_not_ready, .timeout = 60)
{
    char dir[] = "/tmp/lk-engine-empty-XXXXXX";
    cr_assert(mkdtemp(dir));
    struct lk_engine_opts o;
    lk_engine_opts_default(&o);
    o.data_dir = dir;
    o.model_dir = fx_model_dir();
    o.workspaces = 1;
    struct lk_engine *eng = NULL;
    struct lk_err err = {0};
    cr_assert_eq(lk_engine_open(&o, &eng, &err), LK_OK, "%s", err.msg);
    cr_assert_eq(lk_engine_ready(eng, NULL), LK_ERR_STATE);
    cr_assert_eq(lk_engine_generation(eng), 0);
    struct lk_search_request req;
    lk_search_request_init(&req);
    struct lk_search_response r;
    lk_search_response_init(&r);
    uint8_t *buf;
    size_t len;
    fx_query_jpeg(0, &buf, &len);
    cr_assert_eq(lk_engine_search(eng, buf, len, &req, &r, NULL), LK_ERR_STATE);
    cr_assert_eq(lk_engine_reload(eng, NULL), LK_ERR_STATE);
    free(buf);
    lk_search_response_free(&r);
    lk_engine_close(eng);
    lk_engine_close(NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(engine, bad_options)
{
    struct lk_engine_opts o;
    lk_engine_opts_default(&o);
    struct lk_engine *eng = NULL;
    cr_assert_eq(lk_engine_open(&o, &eng, NULL), LK_ERR_INVALID_ARG);
    o.data_dir = "/tmp";
    o.model_dir = "/nonexistent-model-dir";
    cr_assert_neq(lk_engine_open(&o, &eng, NULL), LK_OK);
    o.model_dir = fx_model_dir();
    o.rank.price_weight = 1.0f;
    cr_assert_eq(lk_engine_open(&o, &eng, NULL), LK_ERR_INVALID_ARG);
}

struct loop_arg {
    struct lk_engine *eng;
    int failures, done;
};

static void *search_loop(void *p)
{
    struct loop_arg *a = p;
    uint8_t *buf;
    size_t len;
    fx_query_jpeg(fx_find("SHOE-YELLOW"), &buf, &len);
    for (int i = 0; i < 8; i++) {
        struct lk_search_request req;
        lk_search_request_init(&req);
        struct lk_search_response r;
        lk_search_response_init(&r);
        struct lk_err err = {0};
        int rc = lk_engine_search(a->eng, buf, len, &req, &r, &err);
        if (rc != LK_OK || r.n_results == 0 || strcmp(r.results[0].sku, "SHOE-YELLOW") != 0)
            __atomic_add_fetch(&a->failures, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&a->done, 1, __ATOMIC_SEQ_CST);
        lk_search_response_free(&r);
    }
    free(buf);
    return NULL;
}

Test(engine, reload_swaps_without_dropping_searches, .timeout = 180)
{
    struct lk_engine *eng = fx_engine();
    uint64_t gen = lk_engine_generation(eng);
    cr_assert_geq(gen, 1);
    struct loop_arg a = {.eng = eng};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, search_loop, &a), 0);
    for (int i = 0; i < 3; i++) {
        struct lk_err err = {0};
        cr_assert_eq(lk_engine_reload(eng, &err), LK_OK, "%s", err.msg);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(a.done, 24);
    cr_assert_eq(a.failures, 0);
    cr_assert_eq(lk_engine_generation(eng), gen);
    lk_engine_close(eng);
}

Test(engine, live_put_patch_delete, .timeout = 180)
{
    struct lk_engine *eng = fx_engine();
    struct lk_err err = {0};
    const char *imgs[] = {"BALL-GREEN-0.png"};
    struct lk_engine_item it = {.sku = "LIVE-1", .title = "Live ball", .category = "toys/balls",
                                .price_minor = 1800, .currency = "USD", .stock = 4, .regions = "",
                                .margin_tier = 2, .images = imgs, .n_images = 1};
    int created = 0;
    cr_assert_eq(lk_engine_item_put(eng, &it, &created, &err), LK_OK, "%s", err.msg);
    cr_assert_eq(created, 1);
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 3;
    struct lk_search_response r;
    search_sku(eng, "BALL-GREEN", &req, &r);
    cr_assert(has_sku(&r, "LIVE-1"), "new item not searchable");
    lk_search_response_free(&r);

    /* PATCH stock 0: gone from in-stock results at once. */
    struct lk_product_patch p = {.has_stock = 1, .stock = 0};
    cr_assert_eq(lk_engine_item_patch(eng, "LIVE-1", &p, NULL, &err), LK_OK, "%s", err.msg);
    search_sku(eng, "BALL-GREEN", &req, &r);
    cr_assert(!has_sku(&r, "LIVE-1"));
    lk_search_response_free(&r);
    cr_assert_eq(lk_engine_item_patch(eng, "NOPE", &p, NULL, NULL), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_engine_item_patch(eng, "LIVE-1", &(struct lk_product_patch){0}, "Renamed", &err), LK_OK);

    /* A reload keeps the live item (catch-up embeds it again). */
    p.stock = 9;
    cr_assert_eq(lk_engine_item_patch(eng, "LIVE-1", &p, NULL, &err), LK_OK);
    cr_assert_eq(lk_engine_reload(eng, &err), LK_OK, "%s", err.msg);
    search_sku(eng, "BALL-GREEN", &req, &r);
    cr_assert(has_sku(&r, "LIVE-1"), "live item lost by reload");
    for (size_t i = 0; i < r.n_results; i++)
        if (!strcmp(r.results[i].sku, "LIVE-1"))
            cr_assert_str_eq(r.results[i].title, "Renamed");
    lk_search_response_free(&r);

    /* Bad image: nothing written. */
    const char *bad[] = {"../../etc/passwd"};
    struct lk_engine_item it2 = it;
    it2.sku = "LIVE-2";
    it2.images = bad;
    cr_assert_eq(lk_engine_item_put(eng, &it2, NULL, &err), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_engine_similar(eng, "LIVE-2", &req, &r, NULL), LK_ERR_NOT_FOUND);
    lk_search_response_free(&r);

    cr_assert_eq(lk_engine_item_delete(eng, "LIVE-1", &err), LK_OK, "%s", err.msg);
    search_sku(eng, "BALL-GREEN", &req, &r);
    cr_assert(!has_sku(&r, "LIVE-1"));
    lk_search_response_free(&r);
    cr_assert_eq(lk_engine_item_delete(eng, "LIVE-1", NULL), LK_ERR_NOT_FOUND);
    lk_engine_close(eng);
}

Test(engine, images_events_metrics, .timeout = 120)
{
    struct lk_engine *eng = fx_engine();
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 1;
    struct lk_search_response r;
    search_sku(eng, "SOFA-GREY", &req, &r);
    int64_t id = strtoll(r.results[0].image_id, NULL, 10);
    lk_search_response_free(&r);
    void *data = NULL;
    size_t len = 0;
    const char *mime = NULL;
    cr_assert_eq(lk_engine_image(eng, id, &data, &len, &mime, NULL), LK_OK);
    cr_assert_gt(len, 8);
    cr_assert_str_eq(mime, "image/png");
    cr_assert_eq(memcmp(data, "\x89PNG", 4), 0);
    free(data);
    cr_assert_eq(lk_engine_image(eng, 999999, &data, &len, &mime, NULL), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_engine_record_event(eng, "0123456789abcdef0123456789abcdef", "SOFA-GREY", "add_to_cart",
                                        1700000000, NULL), LK_OK);
    cr_assert_neq(lk_engine_record_event(eng, "0123", "SOFA-GREY", "teleport", 1700000000, NULL), LK_OK);
    char buf[2048];
    size_t n = lk_engine_metrics_text(eng, buf, sizeof buf);
    cr_assert(n > 0 && n < sizeof buf);
    cr_assert(strstr(buf, "lookalike_index_vectors "));
    lk_engine_close(eng);
}
