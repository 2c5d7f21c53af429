/*
 * test_routes.c — the API through real HTTP: the server runs on a loopback
 * ephemeral port with the fake backend (fake_backend.h, a test double) and
 * every request goes through libcurl.  One server per test (Criterion runs
 * each test in its own process).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "test_images.h"

static struct th_server ts;

static void setup(void)
{
    th_start(&ts, NULL);
}

static void teardown(void)
{
    th_stop(&ts);
}

TestSuite(routes, .init = setup, .fini = teardown, .timeout = 60);

static const char *const JPEG_CT[] = {"Content-Type: image/jpeg", NULL};
static const char *const PNG_CT[] = {"Content-Type: image/png", NULL};
static const char *const JSON_CT[] = {"Content-Type: application/json", NULL};
static const char *const ADMIN_JSON[] = {"Content-Type: application/json", "Authorization: Bearer " TH_ADMIN, NULL};
static const char *const READ_JSON[] = {"Content-Type: application/json", "Authorization: Bearer " TH_READ, NULL};
static const char *const ADMIN[] = {"Authorization: Bearer " TH_ADMIN, NULL};

static void search_jpeg(const char *query, struct th_resp *r)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/search%s", query);
    th_req(&ts, "POST", path, JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, r);
}

/* Expect `status` and, when given, error.param == param. */
static void expect_error(struct th_resp *r, long status, const char *param)
{
    char buf[128];
    cr_assert_eq(r->status, status, "status %ld, want %ld: %s", r->status, status, r->body ? r->body : "");
    cr_assert(strncmp(r->content_type, "application/json", 16) == 0, "content type %s", r->content_type);
    cr_assert_neq(th_err_code(r, buf, sizeof buf)[0], '\0', "error.code missing: %s", r->body);
    if (param)
        cr_assert_str_eq(th_err_param(r, buf, sizeof buf), param, "body: %s", r->body);
}

static bool has_sku(cJSON *j, const char *sku)
{
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "results"))
    {
        if (strcmp(cJSON_GetObjectItem(e, "sku")->valuestring, sku) == 0)
            return true;
    }
    return false;
}

static int band_rank(const char *b)
{
    return !strcmp(b, "exact") ? 3 : !strcmp(b, "high") ? 2 : !strcmp(b, "medium") ? 1 : 0;
}

/* ==== Search ============================================================ */

Test(routes, search_raw_jpeg_returns_ranked_banded_results)
{
    struct th_resp r;
    cJSON *j, *results, *e, *t;
    double prev = 2.0;
    int prev_band = 4;
    search_jpeg("", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_assert_eq(strlen(cJSON_GetObjectItem(j, "search_id")->valuestring), LK_SEARCH_ID_LEN);
    cr_assert_eq(cJSON_GetObjectItem(j, "k")->valueint, 12);
    results = cJSON_GetObjectItem(j, "results");
    cr_assert_eq(cJSON_GetArraySize(results), 3, "in-stock sofas only: %s", r.body);
    cJSON_ArrayForEach(e, results)
    {
        double s = cJSON_GetObjectItem(e, "score")->valuedouble;
        int b = band_rank(cJSON_GetObjectItem(e, "band")->valuestring);
        cr_assert(s <= prev && s >= 0 && s <= 1, "scores descending in [0,1]");
        cr_assert(b <= prev_band, "bands ordered");
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "in_stock")));
        cr_assert_str_eq(cJSON_GetObjectItem(e, "category")->valuestring, "furniture/sofas");
        prev = s;
        prev_band = b;
    }
    e = cJSON_GetArrayItem(results, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "sku")->valuestring, "SOFA-1");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "price")->valuestring, "499.00");
    cr_assert_eq(cJSON_GetObjectItem(e, "price_minor")->valuedouble, 49900);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "currency")->valuestring, "EUR");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "image_id")->valuestring, "img-SOFA-1");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "band")->valuestring, "exact");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "best_band")->valuestring, "exact");
    t = cJSON_GetObjectItem(j, "timings_ms");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "decode")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "embed")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "upload")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "total")));
    e = cJSON_GetObjectItem(j, "inferred_category");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "category")->valuestring, "furniture/sofas");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "source")->valuestring, "inferred");
    cr_assert_float_eq(cJSON_GetObjectItem(e, "confidence")->valuedouble, 0.8, 1e-6);
    e = cJSON_GetObjectItem(j, "fallback");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(e, "applied")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "message")));
    cr_assert_gt(cJSON_GetArraySize(cJSON_GetObjectItem(j, "facets")), 0);
    cJSON_Delete(j);
    th_resp_free(&r);
}

Test(routes, search_multipart_png_infers_its_category)
{
    struct th_resp r;
    struct th_part part = {"image", lk_test_png, sizeof lk_test_png, "image/png"};
    cJSON *j;
    th_multipart(&ts, "/v1/search?k=5", &part, 1, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "inferred_category"), "category")->valuestring,
                     "lighting/lamps");
    cr_assert(has_sku(j, "LAMP-1") && has_sku(j, "LAMP-2"));
    cr_assert(!has_sku(j, "SOFA-1"), "category guard keeps sofas out of a lamp search");
    cJSON_Delete(j);
    th_resp_free(&r);
}

Test(routes, search_raw_png_and_octet_stream)
{
    struct th_resp r;
    static const char *const oct[] = {"Content-Type: application/octet-stream", NULL};
    th_req(&ts, "POST", "/v1/search", PNG_CT, lk_test_png, sizeof lk_test_png, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", oct, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
}

Test(routes, k_is_honoured_and_validated)
{
    struct th_resp r;
    cJSON *j;
    search_jpeg("?k=2", &r);
    cr_assert_eq(r.status, 200);
    j = th_json(&r);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")), 2);
    cJSON_Delete(j);
    th_resp_free(&r);

    static const char *const bad[] = {"?k=0", "?k=101", "?k=abc", "?k=-1", "?k=1.5", "?k=", "?k", "?k=%2012",
                                      "?k=99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        search_jpeg(bad[i], &r);
        expect_error(&r, 400, "k");
        th_resp_free(&r);
    }
    search_jpeg("?k=100", &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
}

Test(routes, in_stock_filter)
{
    struct th_resp r;
    cJSON *j;
    search_jpeg("?in_stock=false", &r);
    cr_assert_eq(r.status, 200);
    j = th_json(&r);
    cr_assert(has_sku(j, "SOFA-3"), "out-of-stock sofa shown when in_stock=false");
    cJSON_Delete(j);
    th_resp_free(&r);
    search_jpeg("?in_stock=true", &r);
    j = th_json(&r);
    cr_assert(!has_sku(j, "SOFA-3"));
    cJSON_Delete(j);
    th_resp_free(&r);
    search_jpeg("?in_stock=maybe", &r);
    expect_error(&r, 400, "in_stock");
    th_resp_free(&r);
}

Test(routes, price_region_and_category_filters)
{
    struct th_resp r;
    cJSON *j;
    search_jpeg("?min_price=500&max_price=700.00", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_assert(has_sku(j, "SOFA-4") && !has_sku(j, "SOFA-1") && !has_sku(j, "SOFA-2"));
    cJSON_Delete(j);
    th_resp_free(&r);

    search_jpeg("?region=US", &r);
    j = th_json(&r);
    cr_assert(!has_sku(j, "SOFA-4"), "EU-only sofa hidden for region US");
    cJSON_Delete(j);
    th_resp_free(&r);

    search_jpeg("?category=furniture%2Fbean-bags", &r);
    cr_assert_eq(r.status, 200);
    j = th_json(&r);
    cr_assert(has_sku(j, "BAG-1") && !has_sku(j, "SOFA-1"), "explicit category overrides inference");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "inferred_category"), "source")->valuestring,
                     "request");
    cJSON_Delete(j);
    th_resp_free(&r);
}

Test(routes, restricted_items_need_admin_and_age_flag)
{
    struct th_resp r;
    cJSON *j;
    static const char *const admin_jpeg[] = {"Content-Type: image/jpeg", "Authorization: Bearer " TH_ADMIN, NULL};
    search_jpeg("?k=100", &r);
    j = th_json(&r);
    cr_assert(!has_sku(j, "HELD-1"));
    cJSON_Delete(j);
    th_resp_free(&r);

    search_jpeg("?include_restricted=true", &r);
    expect_error(&r, 403, "include_restricted");
    th_resp_free(&r);

    th_req(&ts, "POST", "/v1/search?include_restricted=true", admin_jpeg, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 200);
    j = th_json(&r);
    cr_assert(has_sku(j, "HELD-1"));
    cJSON_Delete(j);
    th_resp_free(&r);

    search_jpeg("?category=kitchen&allow_age_restricted=true", &r);
    j = th_json(&r);
    cr_assert(has_sku(j, "WINE-1"));
    cJSON_Delete(j);
    th_resp_free(&r);
}

Test(routes, fallback_and_facets_when_filters_exclude_everything)
{
    struct th_resp r;
    cJSON *j, *fb;
    /* No sofa under 1.00: relax the category guard, still nothing. */
    search_jpeg("?max_price=1", &r);
    cr_assert_eq(r.status, 200);
    j = th_json(&r);
    fb = cJSON_GetObjectItem(j, "fallback");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(fb, "applied")));
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(fb, "relaxed"), 0)->valuestring, "category_guard");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(fb, "message")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")), 0);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "best_band")));
    cr_assert_gt(cJSON_GetArraySize(cJSON_GetObjectItem(j, "facets")), 0, "facets always present");
    cJSON_Delete(j);
    th_resp_free(&r);

    /* An empty category: fallback shows other categories. */
    search_jpeg("?category=garden", &r);
    j = th_json(&r);
    fb = cJSON_GetObjectItem(j, "fallback");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(fb, "applied")));
    cr_assert_gt(cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")), 0);
    cJSON_Delete(j);
    th_resp_free(&r);
}

Test(routes, bad_query_parameters_are_named)
{
    static const struct {
        const char *q;
        const char *param;
    } cases[] = {
        {"?min_price=abc", "min_price"},   {"?min_price=-5", "min_price"},   {"?max_price=1.234", "max_price"},
        {"?max_price=1e3", "max_price"},   {"?min_price=10&max_price=5", "max_price"},
        {"?region=E%20U", "region"},       {"?region=ABCDEFGHIJKLMNOPQ", "region"},
        {"?category=", "category"},        {"?category=a%0Ab", "category"},
        {"?instock=false", "instock"},     {"?k=3&k=4", "k"},
        {"?allow_age_restricted=yes", "allow_age_restricted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct th_resp r;
        search_jpeg(cases[i].q, &r);
        expect_error(&r, 400, cases[i].param);
        th_resp_free(&r);
    }
}

/* ==== Bad images ======================================================== */

Test(routes, bad_images_map_through_the_status_table)
{
    struct th_resp r;
    static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    static const char *const gif_ct[] = {"Content-Type: image/gif", NULL};
    static const char *const webp_ct[] = {"Content-Type: image/webp", NULL};
    static const char *const text_ct[] = {"Content-Type: text/plain", NULL};
    unsigned char bomb[64], corrupt[64];
    char code[64];

    /* Wrong magic under a JPEG label: the decoder's verdict -> 415. */
    th_req(&ts, "POST", "/v1/search", JPEG_CT, gif, sizeof gif - 1, &r);
    expect_error(&r, 415, "image");
    cr_assert_str_eq(th_err_code(&r, code, sizeof code), "unsupported_format");
    th_resp_free(&r);
    /* Declared unsupported types are refused before the body is read. */
    th_req(&ts, "POST", "/v1/search", gif_ct, gif, sizeof gif - 1, &r);
    expect_error(&r, 415, "image");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", webp_ct, gif, sizeof gif - 1, &r);
    expect_error(&r, 415, "image");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", text_ct, "hello", 5, &r);
    expect_error(&r, 415, "Content-Type");
    th_resp_free(&r);

    /* Decompression bomb -> 422; corrupt -> 400; truncated -> 400; empty -> 400. */
    memcpy(bomb, lk_test_jpeg, sizeof bomb);
    memcpy(bomb + 20, "LKBOMB", 6);
    th_req(&ts, "POST", "/v1/search", JPEG_CT, bomb, sizeof bomb, &r);
    expect_error(&r, 422, "image");
    th_resp_free(&r);
    memcpy(corrupt, lk_test_jpeg, sizeof corrupt);
    memcpy(corrupt + 20, "LKCORRUPT", 9);
    th_req(&ts, "POST", "/v1/search", JPEG_CT, corrupt, sizeof corrupt, &r);
    expect_error(&r, 400, "image");
    cr_assert_str_eq(th_err_code(&r, code, sizeof code), "corrupt_image");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, 10, &r);
    expect_error(&r, 400, "image");
    cr_assert_str_eq(th_err_code(&r, code, sizeof code), "truncated_image");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", JPEG_CT, "", 0, &r);
    expect_error(&r, 400, "image");
    th_resp_free(&r);
}

Test(routes, bad_multipart_bodies)
{
    struct th_resp r;
    struct th_part two[] = {{"image", lk_test_png, sizeof lk_test_png, "image/png"},
                            {"image", lk_test_png, sizeof lk_test_png, "image/png"}};
    struct th_part other = {"photo", lk_test_png, sizeof lk_test_png, "image/png"};
    struct th_part extra[] = {{"image", lk_test_png, sizeof lk_test_png, "image/png"}, {"k", "5", 1, NULL}};
    static const char *const no_boundary[] = {"Content-Type: multipart/form-data", NULL};
    static const char *const truncated_ct[] = {"Content-Type: multipart/form-data; boundary=XyZ", NULL};
    static const char truncated[] = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\xff\xd8\xff";

    th_multipart(&ts, "/v1/search", two, 2, &r);
    expect_error(&r, 400, "image");
    th_resp_free(&r);
    th_multipart(&ts, "/v1/search", &other, 1, &r);
    expect_error(&r, 400, "image");
    th_resp_free(&r);
    th_multipart(&ts, "/v1/search", extra, 2, &r);
    expect_error(&r, 400, "image");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", no_boundary, "x", 1, &r);
    expect_error(&r, 400, "Content-Type");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", truncated_ct, truncated, sizeof truncated - 1, &r);
    expect_error(&r, 400, "image");
    th_resp_free(&r);
}

/* ==== Routing =========================================================== */

Test(routes, unknown_route_404_wrong_method_405)
{
    struct th_resp r;
    static const char *const unknown[] = {"/v2/search", "/v1/search/", "/v1/items/SOFA-1/other", "/v1/items/",
                                          "/../etc/passwd", "/index.html", "/v1/images/"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        th_req(&ts, "GET", unknown[i], NULL, NULL, 0, &r);
        expect_error(&r, 404, NULL);
        th_resp_free(&r);
    }
    th_req(&ts, "GET", "/v1/search", NULL, NULL, 0, &r);
    expect_error(&r, 405, NULL);
    cr_assert_str_eq(r.allow, "POST");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/items/SOFA-1", ADMIN, NULL, 0, &r);
    expect_error(&r, 405, NULL);
    cr_assert_str_eq(r.allow, "PUT, PATCH, DELETE");
    th_resp_free(&r);
    th_req(&ts, "DELETE", "/healthz", NULL, NULL, 0, &r);
    expect_error(&r, 405, NULL);
    cr_assert_str_eq(r.allow, "GET, HEAD");
    th_resp_free(&r);
    th_req(&ts, "BREW", "/", NULL, NULL, 0, &r);
    cr_assert(r.status == 405 || r.status == 400 || r.status == 501, "status %ld", r.status);
    th_resp_free(&r);
}

Test(routes, invalid_sku_in_path_is_400)
{
    struct th_resp r;
    th_req(&ts, "GET", "/v1/items/bad%20sku/similar", NULL, NULL, 0, &r);
    expect_error(&r, 400, "sku");
    th_resp_free(&r);
    th_req(&ts, "GET", "/v1/items/..%2F..%2Fetc/similar", NULL, NULL, 0, &r);
    cr_assert(r.status == 400 || r.status == 404, "status %ld", r.status);
    th_resp_free(&r);
    th_req(&ts, "GET", "/v1/images/a%00b", NULL, NULL, 0, &r);
    cr_assert(r.status == 400 || r.status == 404, "status %ld", r.status);
    th_resp_free(&r);
}

/* ==== Similar, images ==================================================== */

Test(routes, similar_items)
{
    struct th_resp r;
    cJSON *j;
    th_req(&ts, "GET", "/v1/items/SOFA-1/similar?k=5", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_assert(!has_sku(j, "SOFA-1"), "the item itself is excluded");
    cr_assert(has_sku(j, "SOFA-2"));
    cJSON_Delete(j);
    th_resp_free(&r);
    th_req(&ts, "GET", "/v1/items/NOPE-9/similar", NULL, NULL, 0, &r);
    expect_error(&r, 404, "sku");
    th_resp_free(&r);
    th_req(&ts, "GET", "/v1/items/SOFA-1/similar?k=0", NULL, NULL, 0, &r);
    expect_error(&r, 400, "k");
    th_resp_free(&r);
}

Test(routes, catalog_images)
{
    struct th_resp r;
    th_req(&ts, "GET", "/v1/images/img-LAMP-1", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.content_type, "image/png");
    cr_assert_eq(r.len, sizeof lk_test_png);
    cr_assert_eq(memcmp(r.body, lk_test_png, r.len), 0);
    th_resp_free(&r);
    th_req(&ts, "GET", "/v1/images/img-NOPE", NULL, NULL, 0, &r);
    expect_error(&r, 404, "image_id");
    th_resp_free(&r);
}

/* ==== Admin ============================================================= */

static const char ITEM_JSON[] = "{\"title\":\"Red armchair\",\"category\":\"furniture/armchairs\",\"price\":\"249.90\","
                                "\"currency\":\"EUR\",\"stock\":3,\"regions\":[\"EU\"],"
                                "\"flags\":{\"age_restricted\":false},\"images\":[\"/data/photos/chair-1.jpg\"]}";

Test(routes, admin_auth_401_403)
{
    struct th_resp r;
    static const char *const wrong[] = {"Content-Type: application/json", "Authorization: Bearer wrong-token-0123456789", NULL};
    static const char *const basic[] = {"Content-Type: application/json", "Authorization: Basic YWRtaW46YWRtaW4=", NULL};
    static const char *const read_only[] = {"Authorization: Bearer " TH_READ, NULL};

    th_req(&ts, "PUT", "/v1/items/CHAIR-1", JSON_CT, ITEM_JSON, sizeof ITEM_JSON - 1, &r);
    expect_error(&r, 401, NULL);
    cr_assert(strncmp(r.www_auth, "Bearer", 6) == 0, "WWW-Authenticate: %s", r.www_auth);
    th_resp_free(&r);
    th_req(&ts, "PUT", "/v1/items/CHAIR-1", basic, ITEM_JSON, sizeof ITEM_JSON - 1, &r);
    expect_error(&r, 401, NULL);
    th_resp_free(&r);
    th_req(&ts, "PUT", "/v1/items/CHAIR-1", wrong, ITEM_JSON, sizeof ITEM_JSON - 1, &r);
    expect_error(&r, 403, NULL);
    th_resp_free(&r);
    th_req(&ts, "PUT", "/v1/items/CHAIR-1", READ_JSON, ITEM_JSON, sizeof ITEM_JSON - 1, &r);
    expect_error(&r, 403, NULL);
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/index:reload", read_only, NULL, 0, &r);
    expect_error(&r, 403, NULL);
    th_resp_free(&r);
    th_req(&ts, "DELETE", "/v1/items/SOFA-1", NULL, NULL, 0, &r);
    expect_error(&r, 401, NULL);
    th_resp_free(&r);
    cr_assert_eq(ts.fb.reloads, 0);
}

Test(routes, put_patch_delete_item)
{
    struct th_resp r;
    cJSON *j;
    th_req(&ts, "PUT", "/v1/items/CHAIR-1", ADMIN_JSON, ITEM_JSON, sizeof ITEM_JSON - 1, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    j = th_json(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "created");
    cJSON_Delete(j);
    th_resp_free(&r);
    th_req(&ts, "PUT", "/v1/items/CHAIR-1", ADMIN_JSON, ITEM_JSON, sizeof ITEM_JSON - 1, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);

    /* In stock now: visible in a search of its category. */
    search_jpeg("?category=furniture%2Farmchairs", &r);
    j = th_json(&r);
    cr_assert(has_sku(j, "CHAIR-1"));
    cJSON_Delete(j);
    th_resp_free(&r);

    /* PATCH stock to 0: gone from in-stock results at once. */
    th_req(&ts, "PATCH", "/v1/items/CHAIR-1", ADMIN_JSON, "{\"stock\":0}", 11, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    search_jpeg("?category=furniture%2Farmchairs", &r);
    j = th_json(&r);
    cr_assert(!has_sku(j, "CHAIR-1"), "out-of-stock item must disappear immediately");
    cJSON_Delete(j);
    th_resp_free(&r);

    th_req(&ts, "PATCH", "/v1/items/CHAIR-1", ADMIN_JSON, "{\"price\":199.5,\"flags\":{\"restricted\":true}}", 43, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    pthread_mutex_lock(&ts.fb.lock);
    for (int i = 0; i < FAKE_MAX_ITEMS; i++)
        if (ts.fb.items[i].used && !strcmp(ts.fb.items[i].sku, "CHAIR-1")) {
            cr_assert_eq(ts.fb.items[i].price_minor, 19950);
            cr_assert_eq(ts.fb.items[i].flags, LK_ITEM_RESTRICTED);
            cr_assert_str_eq(ts.fb.items[i].region, "EU");
        }
    pthread_mutex_unlock(&ts.fb.lock);

    th_req(&ts, "DELETE", "/v1/items/CHAIR-1", ADMIN, NULL, 0, &r);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.len, 0);
    th_resp_free(&r);
    th_req(&ts, "DELETE", "/v1/items/CHAIR-1", ADMIN, NULL, 0, &r);
    expect_error(&r, 404, "sku");
    th_resp_free(&r);
    th_req(&ts, "PATCH", "/v1/items/CHAIR-1", ADMIN_JSON, "{\"stock\":1}", 11, &r);
    expect_error(&r, 404, "sku");
    th_resp_free(&r);
}

Test(routes, bad_item_bodies_are_named)
{
    static const struct {
        const char *method, *body, *param;
        long status;
    } cases[] = {
        {"PUT", "{\"title\":\"x\"", "body", 400},
        {"PUT", "[]", "body", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\"}", "stock", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":-1,\"currency\":\"EUR\",\"stock\":1}", "price", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1.001,\"currency\":\"EUR\",\"stock\":1}", "price", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"eur\",\"stock\":1}", "currency", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1.5}", "stock", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1,\"colour\":1}", "colour", 400},
        {"PUT", "{\"title\":\"x\",\"title\":\"y\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1}", "title", 400},
        {"PUT", "{\"sku\":\"OTHER\",\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1}", "sku", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1,\"regions\":[\"E U\"]}", "regions[0]", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1,\"images\":[7]}", "images[0]", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1,\"flags\":{\"vip\":true}}", "flags.vip", 400},
        {"PUT", "{\"title\":\"a\\u0000b\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1}", "body", 400},
        {"PUT", "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1} trailing", "body", 400},
        {"PATCH", "{}", "body", 400},
        {"PATCH", "{\"stock\":\"5\"}", "stock", 400},
        {"PATCH", "{\"currency\":\"USD\"}", "currency", 400},
        {"PATCH", "{\"sku\":\"X\"}", "sku", 400},
        {"PATCH", "{\"stock\":1e300}", "stock", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct th_resp r;
        th_req(&ts, cases[i].method, "/v1/items/SOFA-1", ADMIN_JSON, cases[i].body, strlen(cases[i].body), &r);
        expect_error(&r, cases[i].status, cases[i].param);
        th_resp_free(&r);
    }
    /* The backend's refusal maps through the table: unreadable image path -> 500, message withheld. */
    {
        struct th_resp r;
        static const char b[] = "{\"title\":\"x\",\"category\":\"c\",\"price\":1,\"currency\":\"EUR\",\"stock\":1,"
                                "\"images\":[\"/secret/missing.jpg\"]}";
        th_req(&ts, "PUT", "/v1/items/NEW-1", ADMIN_JSON, b, sizeof b - 1, &r);
        expect_error(&r, 500, NULL);
        cr_assert_null(strstr(r.body, "/secret"), "5xx bodies must not leak internals: %s", r.body);
        th_resp_free(&r);
    }
    /* JSON routes need application/json. */
    {
        struct th_resp r;
        static const char *const text_admin[] = {"Content-Type: text/plain", "Authorization: Bearer " TH_ADMIN, NULL};
        th_req(&ts, "PATCH", "/v1/items/SOFA-1", text_admin, "{\"stock\":1}", 11, &r);
        expect_error(&r, 415, "Content-Type");
        th_resp_free(&r);
    }
}

Test(routes, batch_and_reload)
{
    struct th_resp r;
    cJSON *j;
    static const char batch[] =
        "{\"items\":[{\"sku\":\"B-1\",\"title\":\"One\",\"category\":\"c\",\"price\":\"1.00\",\"currency\":\"EUR\",\"stock\":1},"
        "{\"sku\":\"B-2\",\"title\":\"Two\",\"category\":\"c\",\"price\":2,\"currency\":\"EUR\",\"stock\":2,"
        "\"images\":[\"/x/missing.jpg\"]}]}";
    static const char bad_batch[] =
        "{\"items\":[{\"sku\":\"B-1\",\"title\":\"One\",\"category\":\"c\",\"price\":\"1.00\",\"currency\":\"EUR\",\"stock\":1},"
        "{\"sku\":\"B-2\",\"title\":\"Two\",\"category\":\"c\",\"price\":\"x\",\"currency\":\"EUR\",\"stock\":2}]}";
    th_req(&ts, "POST", "/v1/items:batch", ADMIN_JSON, batch, sizeof batch - 1, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_assert_eq(cJSON_GetObjectItem(j, "accepted")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(j, "failed")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "errors"), 0), "index")->valueint, 1);
    cJSON_Delete(j);
    th_resp_free(&r);

    th_req(&ts, "POST", "/v1/items:batch", ADMIN_JSON, bad_batch, sizeof bad_batch - 1, &r);
    expect_error(&r, 400, "items[1].price");
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/items:batch", ADMIN_JSON, "{\"items\":[]}", 12, &r);
    expect_error(&r, 400, "items");
    th_resp_free(&r);

    th_req(&ts, "POST", "/v1/index:reload", ADMIN, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    cr_assert_eq(ts.fb.reloads, 1);
    th_req(&ts, "POST", "/v1/index:reload?now=1", ADMIN, NULL, 0, &r);
    expect_error(&r, 400, "query");
    th_resp_free(&r);
}

/* ==== Events ============================================================ */

Test(routes, events_valid_and_invalid)
{
    char ok[256];
    long now = (long)time(NULL);
    struct th_resp r;
    snprintf(ok, sizeof ok, "{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"add_to_cart\",\"ts\":%ld}", now);
    th_req(&ts, "POST", "/v1/events", JSON_CT, ok, strlen(ok), &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    th_resp_free(&r);
    cr_assert_eq(ts.fb.events, 1);
    cr_assert_eq(ts.fb.last_event.type, LK_EVENT_ADD_TO_CART);
    cr_assert_eq(ts.fb.last_event.ts, now);

    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":", "body"},
        {"not json", "body"},
        {"{\"search_id\":\"0123456789ABCDEF0123456789ABCDEF\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":1700000000}", "search_id"},
        {"{\"search_id\":\"0123\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":1700000000}", "search_id"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SO FA\",\"type\":\"view\",\"ts\":1700000000}", "sku"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"like\",\"ts\":1700000000}", "type"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":\"1700000000\"}", "ts"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":1700000000.5}", "ts"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":1000}", "ts"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":99999999999}", "ts"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\"}", "ts"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"ts\":1700000000,\"user\":\"bob\"}", "user"},
        {"{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"SOFA-1\",\"type\":\"view\",\"type\":\"purchase\",\"ts\":1700000000}", "type"},
        {"[{\"search_id\":\"0123456789abcdef0123456789abcdef\"}]", "body"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        th_req(&ts, "POST", "/v1/events", JSON_CT, bad[i].body, strlen(bad[i].body), &r);
        expect_error(&r, 400, bad[i].param);
        th_resp_free(&r);
    }
    th_req(&ts, "POST", "/v1/events", NULL, ok, strlen(ok), &r);    /* curl default: form-urlencoded */
    expect_error(&r, 415, "Content-Type");
    th_resp_free(&r);
    /* Unknown SKU: the backend says 404. */
    snprintf(ok, sizeof ok, "{\"search_id\":\"0123456789abcdef0123456789abcdef\",\"sku\":\"NOPE\",\"type\":\"view\",\"ts\":%ld}", now);
    th_req(&ts, "POST", "/v1/events", JSON_CT, ok, strlen(ok), &r);
    expect_error(&r, 404, NULL);
    th_resp_free(&r);
    cr_assert_eq(ts.fb.events, 1, "no invalid event was recorded");
}

/* ==== Health, metrics, storefront ======================================= */

Test(routes, healthz_readyz)
{
    struct th_resp r;
    th_req(&ts, "GET", "/healthz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
    th_req(&ts, "GET", "/readyz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
    pthread_mutex_lock(&ts.fb.lock);
    ts.fb.not_ready = true;
    pthread_mutex_unlock(&ts.fb.lock);
    th_req(&ts, "GET", "/readyz", NULL, NULL, 0, &r);
    expect_error(&r, 503, NULL);
    cr_assert_str_eq(r.retry_after, "1");
    th_resp_free(&r);
    th_req(&ts, "HEAD", "/healthz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
}

Test(routes, metrics_report_requests_searches_and_bands)
{
    struct th_resp r;
    search_jpeg("", &r);
    th_resp_free(&r);
    search_jpeg("?max_price=1", &r);     /* zero results + fallback */
    th_resp_free(&r);
    search_jpeg("?k=0", &r);
    th_resp_free(&r);
    th_req(&ts, "GET", "/nope", NULL, NULL, 0, &r);
    th_resp_free(&r);
    static const char *const want[] = {
        "lookalike_http_requests_total{route=\"search\",status=\"200\"} 2\n",
        "lookalike_http_requests_total{route=\"search\",status=\"400\"} 1\n",
        "lookalike_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n",
        "lookalike_searches_total 2\n",
        "lookalike_search_zero_results_total 1\n",
        "lookalike_search_fallback_total 1\n",
        "lookalike_search_results_total{band=\"exact\"} 1\n",
        "lookalike_search_best_band_total{band=\"exact\"} 1\n",
        "lookalike_search_upload_to_result_ms_count 2\n",
        "lookalike_search_stage_ms_bucket{stage=\"embed\",le=\"2.5\"} 2\n",
        "lookalike_search_stage_ms_bucket{stage=\"embed\",le=\"+Inf\"} 2\n",
        "lookalike_rate_limited_total 0\n",
        "lookalike_catalog_items 9\n",     /* the backend's extra metrics */
        NULL};
    char *body = th_metrics_until(&ts, want, 2000);
    for (size_t i = 0; want[i]; i++)
        cr_assert_not_null(strstr(body, want[i]), "missing %s in:\n%s", want[i], body);
    free(body);
    th_req(&ts, "GET", "/metrics", NULL, NULL, 0, &r);
    cr_assert(strncmp(r.content_type, "text/plain; version=0.0.4", 25) == 0, "%s", r.content_type);
    th_resp_free(&r);
}

Test(routes, storefront_is_embedded)
{
    struct th_resp r;
    char etag[64];
    char inm[96];
    const char *hdr[2] = {inm, NULL};
    th_req(&ts, "GET", "/", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(r.content_type, "text/html", 9) == 0);
    cr_assert_not_null(strstr(r.body, "<script src=\"/app.js\""));
    cr_assert_not_null(strstr(r.csp, "default-src 'self'"));
    cr_assert_neq(r.etag[0], '\0');
    snprintf(etag, sizeof etag, "%s", r.etag);
    th_resp_free(&r);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    th_req(&ts, "GET", "/", hdr, NULL, 0, &r);
    cr_assert_eq(r.status, 304);
    th_resp_free(&r);
    th_req(&ts, "GET", "/app.js", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(r.content_type, "text/javascript", 15) == 0);
    cr_assert_not_null(strstr(r.body, "/v1/search"));
    th_resp_free(&r);
    th_req(&ts, "GET", "/style.css", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(r.content_type, "text/css", 8) == 0);
    th_resp_free(&r);
}

Test(routes, request_log_has_no_image_bytes_or_queries)
{
    struct th_resp r;
    char *log;
    search_jpeg("?category=secret-category-xyz", &r);
    th_resp_free(&r);
    cr_assert(th_log_wait("POST /v1/search 200 in=", 2000), "search logged");
    log = th_log_copy();
    cr_assert_null(strstr(log, "secret-category-xyz"), "query strings are not logged");
    cr_assert_null(strstr(log, "JFIF"), "image bytes are never logged");
    for (const char *p = log; *p; p++)
        cr_assert(*p == '\n' || (*p >= 0x20 && *p < 0x7f), "log is printable text");
    free(log);
}
