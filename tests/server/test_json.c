/*
 * test_json.c — json.c: strict request parsing and response serialisation.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pserver.h"

#define NOW 1700000000
#define SID "0123456789abcdef0123456789abcdef"

static int event(const char *body, struct lk_server_event *ev, struct lk__perr *pe)
{
    memset(pe, 0, sizeof *pe);
    return lk__json_parse_event(body, strlen(body), NOW, ev, pe);
}

Test(json, event_valid)
{
    struct lk_server_event ev;
    struct lk__perr pe;
    cr_assert_eq(event("{\"search_id\":\"" SID "\",\"sku\":\"A-1\",\"type\":\"purchase\",\"ts\":1699999999}", &ev, &pe), LK_OK,
                 "%s", pe.msg);
    cr_assert_str_eq(ev.search_id, SID);
    cr_assert_str_eq(ev.sku, "A-1");
    cr_assert_eq(ev.type, LK_EVENT_PURCHASE);
    cr_assert_eq(ev.ts, 1699999999);
    /* Key order is free, whitespace around the value too. */
    cr_assert_eq(event(" {\"ts\":1700000000,\"type\":\"view\",\"sku\":\"b\",\"search_id\":\"" SID "\"}\n ", &ev, &pe), LK_OK);
    /* Up to a day of clock skew. */
    cr_assert_eq(event("{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1700086400}", &ev, &pe), LK_OK);
}

Test(json, event_invalid_names_the_field)
{
    static const struct {
        const char *body, *param, *code;
    } cases[] = {
        {"", "body", "invalid_json"},
        {"{", "body", "invalid_json"},
        {"null", "body", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1700086401}", "ts", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":-1}", "ts", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1e400}", "ts", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":true}", "ts", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"VIEW\",\"ts\":1700000000}", "type", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":[\"view\"],\"ts\":1700000000}", "type", "invalid_parameter"},
        {"{\"search_id\":\"" SID "0\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1700000000}", "search_id", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"\",\"type\":\"view\",\"ts\":1700000000}", "sku", "invalid_parameter"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"a/b\",\"type\":\"view\",\"ts\":1700000000}", "sku", "invalid_parameter"},
        {"{\"sku\":\"b\",\"type\":\"view\",\"ts\":1700000000}", "search_id", "missing_field"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1700000000,\"x\":1}", "x", "unknown_field"},
        {"{\"search_id\":\"" SID "\",\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1700000000}", "search_id",
         "duplicate_field"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\\u0000c\",\"type\":\"view\",\"ts\":1700000000}", "body", "invalid_json"},
        {"{\"search_id\":\"" SID "\",\"sku\":\"b\",\"type\":\"view\",\"ts\":1700000000}{}", "body", "invalid_json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lk_server_event ev;
        struct lk__perr pe;
        cr_assert_eq(event(cases[i].body, &ev, &pe), LK_ERR_PARSE, "case %zu accepted", i);
        cr_assert_str_eq(pe.param, cases[i].param, "case %zu: %s", i, pe.msg);
        cr_assert_str_eq(pe.code, cases[i].code, "case %zu", i);
        cr_assert_neq(pe.msg[0], '\0');
    }
}

Test(json, event_with_embedded_nul_byte)
{
    static const char body[] = "{\"search_id\":\"" SID "\",\"sku\":\"b\0\",\"type\":\"view\",\"ts\":1700000000}";
    struct lk_server_event ev;
    struct lk__perr pe = {0};
    cr_assert_eq(lk__json_parse_event(body, sizeof body - 1, NOW, &ev, &pe), LK_ERR_PARSE);
}

Test(json, deep_nesting_is_refused_without_crashing)
{
    size_t depth = 100000;
    char *s = malloc(2 * depth + 1);
    struct lk_server_event ev;
    struct lk__perr pe = {0};
    cr_assert_not_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    cr_assert_eq(lk__json_parse_event(s, 2 * depth, NOW, &ev, &pe), LK_ERR_PARSE);
    free(s);
}

Test(json, item_full)
{
    static const char b[] = "{\"sku\":\"S-1\",\"title\":\"Sofa \xc3\xa9l\xc3\xa9gant\",\"category\":\"furniture/sofas\","
                            "\"price\":\"1299.9\",\"currency\":\"EUR\",\"stock\":0,\"regions\":[\"EU\",\"UK\"],"
                            "\"flags\":{\"restricted\":false,\"age_restricted\":true},\"images\":[\"/a.jpg\",\"/b.png\"]}";
    struct lk__json_doc *doc = NULL;
    struct lk_server_item it;
    struct lk__perr pe = {0};
    cr_assert_eq(lk__json_parse_item(b, sizeof b - 1, "S-1", &doc, &it, &pe), LK_OK, "%s %s", pe.param, pe.msg);
    cr_assert_str_eq(it.sku, "S-1");
    cr_assert_eq(it.price_minor, 129990);
    cr_assert_str_eq(it.currency, "EUR");
    cr_assert_eq(it.stock, 0);
    cr_assert_eq(it.n_regions, 2);
    cr_assert_str_eq(it.regions[1], "UK");
    cr_assert_eq(it.flags, LK_ITEM_AGE_RESTRICTED);
    cr_assert_eq(it.n_images, 2);
    cr_assert_str_eq(it.images[0], "/a.jpg");
    lk__json_doc_free(doc);
    lk__json_doc_free(NULL);
}

Test(json, item_price_forms)
{
    static const struct {
        const char *price;
        int64_t minor;
        bool ok;
    } cases[] = {
        {"19.99", 1999, true}, {"\"19.99\"", 1999, true}, {"0", 0, true}, {"\"0.5\"", 50, true}, {"1e2", 10000, true},
        {"19.999", 0, false}, {"\"19.999\"", 0, false}, {"-1", 0, false}, {"\"1,50\"", 0, false}, {"null", 0, false},
        {"\" 1\"", 0, false}, {"1e13", 0, false}, {"\".5\"", 0, false}, {"\"5.\"", 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[256];
        struct lk__json_doc *doc = NULL;
        struct lk_server_item it;
        struct lk__perr pe = {0};
        int rc;
        snprintf(b, sizeof b, "{\"title\":\"t\",\"category\":\"c\",\"price\":%s,\"currency\":\"USD\",\"stock\":1}",
                 cases[i].price);
        rc = lk__json_parse_item(b, strlen(b), "X", &doc, &it, &pe);
        if (cases[i].ok) {
            cr_assert_eq(rc, LK_OK, "%s: %s", cases[i].price, pe.msg);
            cr_assert_eq(it.price_minor, cases[i].minor, "%s", cases[i].price);
        } else {
            cr_assert_eq(rc, LK_ERR_PARSE, "%s accepted", cases[i].price);
            cr_assert_str_eq(pe.param, "price");
        }
        lk__json_doc_free(doc);
    }
}

Test(json, item_text_fields_reject_control_and_bad_utf8)
{
    static const char *const titles[] = {"\"a\\nb\"", "\"\"", "\"\xff\xfe\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"a\\u007fb\""};
    for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++) {
        char b[256];
        struct lk__json_doc *doc = NULL;
        struct lk_server_item it;
        struct lk__perr pe = {0};
        snprintf(b, sizeof b, "{\"title\":%s,\"category\":\"c\",\"price\":1,\"currency\":\"USD\",\"stock\":1}", titles[i]);
        cr_assert_neq(lk__json_parse_item(b, strlen(b), "X", &doc, &it, &pe), LK_OK, "title %zu accepted", i);
        lk__json_doc_free(doc);
    }
}

Test(json, patch_fields)
{
    static const char b[] = "{\"stock\":7,\"price\":12,\"currency\":\"GBP\",\"flags\":{\"retired\":true,\"restricted\":false},\"title\":\"New\"}";
    struct lk__json_doc *doc = NULL;
    struct lk_server_item_patch p;
    struct lk__perr pe = {0};
    cr_assert_eq(lk__json_parse_patch(b, sizeof b - 1, &doc, &p, &pe), LK_OK, "%s", pe.msg);
    cr_assert_eq(p.set, LK_PATCH_STOCK | LK_PATCH_PRICE | LK_PATCH_FLAGS | LK_PATCH_TITLE);
    cr_assert_eq(p.stock, 7);
    cr_assert_eq(p.price_minor, 1200);
    cr_assert_str_eq(p.currency, "GBP");
    cr_assert_eq(p.flags_mask, LK_ITEM_RETIRED | LK_ITEM_RESTRICTED);
    cr_assert_eq(p.flags, LK_ITEM_RETIRED);
    cr_assert_str_eq(p.title, "New");
    lk__json_doc_free(doc);
}

Test(json, batch_reports_the_index)
{
    static const char b[] = "{\"items\":[{\"sku\":\"A\",\"title\":\"t\",\"category\":\"c\",\"price\":1,\"currency\":\"USD\",\"stock\":1},"
                            "{\"title\":\"t\",\"category\":\"c\",\"price\":1,\"currency\":\"USD\",\"stock\":1}]}";
    struct lk__json_doc *doc = NULL;
    struct lk_server_item *items = NULL;
    size_t n = 0;
    struct lk__perr pe = {0};
    cr_assert_eq(lk__json_parse_batch(b, sizeof b - 1, &doc, &items, &n, &pe), LK_ERR_PARSE);
    cr_assert_str_eq(pe.param, "items[1].sku");
    cr_assert_null(doc);
}

Test(json, search_response_serialisation)
{
    struct lk_search_request req;
    struct lk_search_response resp;
    struct lk_search_result r = {0};
    struct lk__reply out = {0};
    cJSON *j, *e;
    lk_search_request_init(&req);
    memcpy(req.search_id, SID, sizeof SID);
    req.k = 5;
    lk_search_response_init(&resp);
    r.sku = "S\"1";     /* needs escaping */
    r.title = "T\xc3\xa9";
    r.price_minor = 1205;
    memcpy(r.currency, "EUR", 4);
    r.stock = 2;
    r.score = 0.81234567f;
    r.band = LK_BAND_HIGH;
    cr_assert_eq(lk_search_response_add_result(&resp, &r), LK_OK);
    r.sku = "S2";
    r.title = NULL;
    r.score = 0.0f / 0.0f;     /* NaN from a broken ranker must not break the JSON */
    r.band = LK_BAND_LOW;
    r.stock = 0;
    cr_assert_eq(lk_search_response_add_result(&resp, &r), LK_OK);
    cr_assert_eq(lk_search_response_add_timing(&resp, "embed", 3.14159), LK_OK);
    cr_assert_eq(lk_search_response_add_relaxed(&resp, "category_guard"), LK_OK);
    cr_assert_eq(lk_search_response_set_message(&resp, "Showing close matches."), LK_OK);
    cr_assert_eq(lk_search_response_add_facet(&resp, "sofas", 4), LK_OK);
    cr_assert_eq(lk_search_response_set_category(&resp, "sofas", 0.66f), LK_OK);

    cr_assert_eq(lk__json_search(&out, &req, &resp, 1.5, 20.25), LK_OK);
    cr_assert_eq(out.status, 200);
    j = cJSON_Parse(out.body);
    cr_assert_not_null(j, "%s", out.body);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "search_id")->valuestring, SID);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "best_band")->valuestring, "high");
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "results"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "sku")->valuestring, "S\"1");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "price")->valuestring, "12.05");
    cr_assert_float_eq(cJSON_GetObjectItem(e, "score")->valuedouble, 0.8123, 1e-9);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "band")->valuestring, "high");
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "results"), 1);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "title")));
    cr_assert_eq(cJSON_GetObjectItem(e, "score")->valuedouble, 0.0);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(e, "in_stock")));
    e = cJSON_GetObjectItem(j, "timings_ms");
    cr_assert_float_eq(cJSON_GetObjectItem(e, "embed")->valuedouble, 3.142, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(e, "total")->valuedouble, 20.25, 1e-9);
    e = cJSON_GetObjectItem(j, "fallback");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "applied")));
    cr_assert_str_eq(cJSON_GetObjectItem(e, "message")->valuestring, "Showing close matches.");
    cJSON_Delete(j);
    lk__reply_discard(&out);
    lk_search_response_free(&resp);
    lk_search_response_free(&resp);     /* reusable after free */
    lk_search_response_free(NULL);
}

Test(json, error_body_shape)
{
    struct lk__reply out = {0};
    cJSON *j, *e;
    cr_assert_eq(lk__json_error(&out, 400, "invalid_parameter", "k must be \"1..100\"", "k"), LK_OK);
    j = cJSON_Parse(out.body);
    e = cJSON_GetObjectItem(j, "error");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "code")->valuestring, "invalid_parameter");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "message")->valuestring, "k must be \"1..100\"");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "param")->valuestring, "k");
    cJSON_Delete(j);
    lk__reply_discard(&out);
    cr_assert_eq(lk__json_error(&out, 404, "route_not_found", "no such route", NULL), LK_OK);
    cr_assert_null(strstr(out.body, "param"));
    lk__reply_discard(&out);
}
