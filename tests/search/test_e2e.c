/* tests/search/test_e2e.c — end to end: the real build pipeline (fixture),
 * the real engine behind the real HTTP server on 127.0.0.1 (ephemeral
 * port), talked to with libcurl: uploads (JPEG body, multipart PNG), every
 * filter, the category guard, bands, fallback, live PATCH, admin auth, bad
 * inputs with their statuses, and the server still healthy afterwards. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "lookalike/server.h"
#include "util.h"

FX_HOOK_SETUP
FX_HOOK_TEARDOWN

#define ADMIN "e2e-admin-token-0123456789abcdef"
#define BAD_ADMIN "e2e-wrong-token-0123456789abcdef"

static struct lk_engine *eng;
static struct lk_server *srv;
static unsigned short port;

static void quiet_log(void *cls, const char *line)
{
    (void)cls;
    (void)line;
}

static void start(void)
{
    eng = fx_engine();
    struct lk_server_backend be;
    lk_search_backend(eng, &be);
    struct lk_server_config cfg;
    lk_server_config_default(&cfg);
    cfg.port = 0;
    cfg.threads = 2;
    cfg.rate_rps = 0;
    cfg.max_body_bytes = 1u << 20;
    cfg.log = quiet_log;
    snprintf(cfg.tokens.admin, sizeof cfg.tokens.admin, "%s", ADMIN);
    struct lk_err err = {0};
    cr_assert_eq(lk_server_start(&cfg, &be, &srv, &err), LK_OK, "%s", err.msg);
    port = lk_server_port(srv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void stop(void)
{
    lk_server_stop(srv);
    lk_engine_close(eng);
    curl_global_cleanup();
}

TestSuite(e2e, .init = start, .fini = stop, .timeout = 180);

/* ==== HTTP helpers ====================================================== */

struct resp {
    long status;
    char *body;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, sz * n);
    r->body = nb;
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

/* expect_continue: send "Expect: 100-continue" and wait for the server's
 * verdict before uploading (what curl does by default for large bodies);
 * otherwise the body is sent at once. */
static struct resp req_x(const char *method, const char *path, const char *ctype, const char *token,
                         const void *body, size_t len, int expect_continue)
{
    struct resp r = {0};
    CURL *c = curl_easy_init();
    char url[512], h1[128], h2[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    struct curl_slist *hs = NULL;
    if (ctype) {
        snprintf(h1, sizeof h1, "Content-Type: %s", ctype);
        hs = curl_slist_append(hs, h1);
    }
    if (token) {
        snprintf(h2, sizeof h2, "Authorization: Bearer %s", token);
        hs = curl_slist_append(hs, h2);
    }
    hs = curl_slist_append(hs, expect_continue ? "Expect: 100-continue" : "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return r;
}

static struct resp req(const char *method, const char *path, const char *ctype, const char *token,
                       const void *body, size_t len)
{
    return req_x(method, path, ctype, token, body, len, 0);
}

static struct resp search_jpeg(const char *sku, const char *query)
{
    uint8_t *buf;
    size_t len;
    fx_query_jpeg(fx_find(sku), &buf, &len);
    char path[256];
    snprintf(path, sizeof path, "/v1/search%s", query ? query : "");
    struct resp r = req("POST", path, "image/jpeg", NULL, buf, len);
    free(buf);
    return r;
}

static cJSON *json_ok(struct resp *r)
{
    cr_assert_eq(r->status, 200, "status %ld: %s", r->status, r->body ? r->body : "");
    cJSON *j = cJSON_Parse(r->body);
    cr_assert(j, "not JSON: %s", r->body);
    free(r->body);
    r->body = NULL;
    return j;
}

static cJSON *results(cJSON *j)
{
    cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "results");
    cr_assert(cJSON_IsArray(a));
    return a;
}

static const char *sget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double nget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "no %s", k);
    return v->valuedouble;
}

static int json_has_sku(cJSON *j, const char *sku)
{
    cJSON *e;
    cJSON_ArrayForEach(e, results(j)) if (!strcmp(sget(e, "sku"), sku)) return 1;
    return 0;
}

static int band_rank(const char *b)
{
    return !strcmp(b, "exact") ? 3 : !strcmp(b, "high") ? 2 : !strcmp(b, "medium") ? 1 : 0;
}

static void expect_status(struct resp r, long status, const char *what)
{
    cr_assert_eq(r.status, status, "%s: got %ld %s", what, r.status, r.body ? r.body : "");
    free(r.body);
}

/* ==== Tests ============================================================= */

Test(e2e, jpeg_upload_right_sku_first_with_bands)
{
    struct resp r = search_jpeg("SHOE-BLACK", "?k=5");
    cJSON *j = json_ok(&r);
    cJSON *a = results(j);
    cr_assert_gt(cJSON_GetArraySize(a), 0);
    cr_assert_str_eq(sget(cJSON_GetArrayItem(a, 0), "sku"), "SHOE-BLACK");
    cr_assert(sget(j, "search_id") && strlen(sget(j, "search_id")) == 32);
    cr_assert_str_eq(sget(j, "best_band"), sget(cJSON_GetArrayItem(a, 0), "band"));
    int prev = 4;
    cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const char *b = sget(e, "band");
        cr_assert(b, "result without band");
        cr_assert_leq(band_rank(b), prev, "bands out of order");
        prev = band_rank(b);
        double s = nget(e, "score");
        cr_assert(s >= 0 && s <= 1);
    }
    cr_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "timings_ms")));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "facets")));
    cJSON_Delete(j);
}

Test(e2e, multipart_png_upload)
{
    uint8_t *buf;
    size_t len;
    fx_query_png(fx_find("BEAN-BLUE"), &buf, &len);
    struct resp r = {0};
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/search?k=3", port);
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(m);
    curl_mime_name(part, "image");
    curl_mime_filename(part, "photo.png");
    curl_mime_type(part, "image/png");
    curl_mime_data(part, (const char *)buf, len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_mime_free(m);
    curl_easy_cleanup(c);
    free(buf);
    cJSON *j = json_ok(&r);
    cr_assert_str_eq(sget(cJSON_GetArrayItem(results(j), 0), "sku"), "BEAN-BLUE");
    cJSON_Delete(j);
}

Test(e2e, filters)
{
    /* in_stock (default on) */
    struct resp r = search_jpeg("BALL-WHITE", "?k=20");
    cJSON *j = json_ok(&r);
    cr_assert(!json_has_sku(j, "BALL-WHITE"));
    cJSON *e;
    cJSON_ArrayForEach(e, results(j)) cr_assert_gt(nget(e, "stock"), 0);
    cJSON_Delete(j);
    r = search_jpeg("BALL-WHITE", "?k=20&in_stock=false");
    j = json_ok(&r);
    cr_assert_str_eq(sget(cJSON_GetArrayItem(results(j), 0), "sku"), "BALL-WHITE");
    cJSON_Delete(j);
    /* region */
    r = search_jpeg("BALL-RED", "?k=20&region=US");
    j = json_ok(&r);
    cr_assert(!json_has_sku(j, "BALL-RED"));   /* EU only */
    cJSON_ArrayForEach(e, results(j)) {
        const struct fx_product *p = &fx_products[fx_find(sget(e, "sku"))];
        cr_assert(!p->regions[0] || strstr(p->regions, "US"));
    }
    cJSON_Delete(j);
    /* price range */
    r = search_jpeg("SOFA-BLUE", "?k=20&min_price=100&max_price=900");
    j = json_ok(&r);
    cJSON_ArrayForEach(e, results(j)) {
        double p = nget(e, "price_minor");
        cr_assert(p >= 10000 && p <= 90000, "price %f", p);
    }
    cr_assert(!json_has_sku(j, "SOFA-BLUE"));   /* 999.00 */
    cJSON_Delete(j);
    /* explicit category */
    r = search_jpeg("SOFA-BLUE", "?k=3&category=apparel/shoes");
    j = json_ok(&r);
    cJSON_ArrayForEach(e, results(j)) cr_assert_str_eq(sget(e, "category"), "apparel/shoes");
    cJSON_Delete(j);
}

Test(e2e, category_guard)
{
    struct resp r = search_jpeg("SOFA-RED", "?k=4");
    cJSON *j = json_ok(&r);
    cJSON *ic = cJSON_GetObjectItemCaseSensitive(j, "inferred_category");
    cr_assert(ic && !cJSON_IsNull(ic));
    cr_assert_str_eq(sget(ic, "category"), "home/furniture/sofas");
    cr_assert_geq(nget(ic, "confidence"), 0.6);
    cr_assert(!json_has_sku(j, "BEAN-RED"), "red bean bag leaked through the guard");
    cJSON_Delete(j);
}

Test(e2e, fallback_when_filters_exclude_everything)
{
    struct resp r = search_jpeg("SHOE-YELLOW", "?k=5&max_price=0.01");
    cJSON *j = json_ok(&r);
    cr_assert_gt(cJSON_GetArraySize(results(j)), 0);
    cJSON *fb = cJSON_GetObjectItemCaseSensitive(j, "fallback");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fb, "applied")));
    cr_assert_gt(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(fb, "relaxed")), 0);
    cr_assert(sget(fb, "message"));
    cr_assert_gt(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "facets")), 0);
    cJSON_Delete(j);
}

Test(e2e, patch_stock_hides_item_at_once_and_admin_auth)
{
    const char *patch = "{\"stock\": 0}";
    expect_status(req("PATCH", "/v1/items/SOFA-BROWN", "application/json", NULL, patch, strlen(patch)), 401,
                  "no token");
    expect_status(req("PATCH", "/v1/items/SOFA-BROWN", "application/json", BAD_ADMIN, patch, strlen(patch)),
                  403, "wrong token");
    struct resp r = search_jpeg("SOFA-BROWN", "?k=3");
    cJSON *j = json_ok(&r);
    cr_assert_str_eq(sget(cJSON_GetArrayItem(results(j), 0), "sku"), "SOFA-BROWN");
    cJSON_Delete(j);
    expect_status(req("PATCH", "/v1/items/SOFA-BROWN", "application/json", ADMIN, patch, strlen(patch)), 200,
                  "admin patch");
    r = search_jpeg("SOFA-BROWN", "?k=12");
    j = json_ok(&r);
    cr_assert(!json_has_sku(j, "SOFA-BROWN"), "out-of-stock item still shown");
    cJSON_Delete(j);
    expect_status(req("PATCH", "/v1/items/NO-SUCH", "application/json", ADMIN, patch, strlen(patch)), 404,
                  "unknown sku");
    expect_status(req("POST", "/v1/index:reload", NULL, ADMIN, "", 0), 200, "reload");
    expect_status(req("DELETE", "/v1/items/BALL-GREEN", NULL, NULL, NULL, 0), 401, "delete without token");
}

Test(e2e, similar_and_events_and_images)
{
    struct resp r = req("GET", "/v1/items/SHOE-RED/similar?k=3", NULL, NULL, NULL, 0);
    cJSON *j = json_ok(&r);
    cr_assert(!json_has_sku(j, "SHOE-RED"));
    cr_assert_gt(cJSON_GetArraySize(results(j)), 0);
    const char *img = sget(cJSON_GetArrayItem(results(j), 0), "image_id");
    char path[128];
    snprintf(path, sizeof path, "/v1/images/%s", img);
    cJSON_Delete(j);
    r = req("GET", path, NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(r.len > 8);
    free(r.body);
    expect_status(req("GET", "/v1/items/NO-SUCH/similar", NULL, NULL, NULL, 0), 404, "similar unknown");
    const char *ev = "{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SHOE-RED\","
                     "\"type\":\"add_to_cart\",\"ts\":1700000000}";
    expect_status(req("POST", "/v1/events", "application/json", NULL, ev, strlen(ev)), 202, "event");
    const char *bad = "{\"search_id\":\"x\",\"sku\":\"SHOE-RED\",\"type\":\"teleport\",\"ts\":1700000000}";
    expect_status(req("POST", "/v1/events", "application/json", NULL, bad, strlen(bad)), 400, "bad event");
}

Test(e2e, bad_inputs_then_still_healthy)
{
    const char text[] = "GIF89a not really";
    expect_status(req("POST", "/v1/search", "image/gif", NULL, text, sizeof text), 415, "gif");
    uint8_t *buf;
    size_t len;
    fx_query_jpeg(0, &buf, &len);
    expect_status(req("POST", "/v1/search", "image/jpeg", NULL, buf, len / 2), 400, "truncated jpeg");
    expect_status(req("POST", "/v1/search?k=0", "image/jpeg", NULL, buf, len), 400, "k=0");
    expect_status(req("POST", "/v1/search?k=abc", "image/jpeg", NULL, buf, len), 400, "k=abc");
    expect_status(req("POST", "/v1/search?min_price=-3", "image/jpeg", NULL, buf, len), 400, "min_price");
    free(buf);
    gen_png_header_only(30000, 30000, &buf, &len);
    expect_status(req("POST", "/v1/search", "image/png", NULL, buf, len), 422, "pixel bomb");
    free(buf);
    size_t big = (1u << 20) + 4096;
    char *huge = calloc(1, big);
    memcpy(huge, "\xff\xd8\xff", 3);
    /* Refused from Content-Length, before the body is read.  The client
     * waits for that verdict (Expect: 100-continue): a client that streams
     * the body regardless may see the connection reset instead of the 413,
     * because the server closes without reading what it refused. */
    expect_status(req_x("POST", "/v1/search", "image/jpeg", NULL, huge, big, 1), 413, "too large");
    free(huge);
    expect_status(req("POST", "/v1/search", "image/jpeg", NULL, "", 0), 400, "empty");
    expect_status(req("GET", "/v1/nope", NULL, NULL, NULL, 0), 404, "unknown route");
    expect_status(req("GET", "/v1/search", NULL, NULL, NULL, 0), 405, "wrong method");
    expect_status(req("GET", "/healthz", NULL, NULL, NULL, 0), 200, "healthz");
    expect_status(req("GET", "/readyz", NULL, NULL, NULL, 0), 200, "readyz");
    struct resp r = search_jpeg("BALL-ORANGE", "?k=1");
    cJSON *j = json_ok(&r);
    cr_assert_str_eq(sget(cJSON_GetArrayItem(results(j), 0), "sku"), "BALL-ORANGE");
    cJSON_Delete(j);
    r = req("GET", "/metrics", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "lookalike_index_vectors"));
    free(r.body);
}
