/*
 * json.c — every JSON the server reads or writes; the ONLY file that
 * includes cJSON.h (as decode_jpeg.c is the only one that includes
 * jpeglib.h), so the JSON library can be swapped in one place.
 *
 * Parsing is strict, because these bodies come from the network: unknown
 * fields, duplicate keys, wrong types, trailing garbage, NUL bytes and
 * out-of-range numbers are refused with the offending field named
 * (`struct lk__perr`), and the HTTP layer answers 400 with that name.
 * cJSON limits nesting to CJSON_NESTING_LIMIT (1000), and bodies are
 * bounded by max_json_bytes before they reach this file.
 *
 * Ownership: cJSON_Add*ToObject transfers the item to the parent, so only
 * the root is ever deleted.  Replies are printed with cJSON_PrintUnformatted
 * into cJSON-allocated memory; that buffer is handed to libmicrohttpd with
 * lk__json_free as its free callback (see lk__reply_send in http.c), so it
 * is released exactly once, after the response has been sent.
 *
 * Parsed item documents keep the cJSON tree alive (struct lk__json_doc) so
 * the `struct lk_server_item` fields can borrow its strings without copies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pserver.h"

void lk__json_free(void *p)
{
    cJSON_free(p);
}

/* ==== Output ============================================================ */

static int print_into(cJSON *root, unsigned status, struct lk__reply *out)
{
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);     /* deletes every child added to it */
    if (!s)
        return LK_ERR_NOMEM;
    out->status = status;
    out->body = s;
    out->len = strlen(s);
    out->free_fn = lk__json_free;
    out->content_type = "application/json";
    return LK_OK;
}

int lk__json_error(struct lk__reply *out, unsigned http, const char *code, const char *message,
                   const char *param)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (!e || !cJSON_AddStringToObject(e, "code", code ? code : "error") ||
        !cJSON_AddStringToObject(e, "message", message ? message : "") ||
        (param && !cJSON_AddStringToObject(e, "param", param))) {
        cJSON_Delete(root);
        return LK_ERR_NOMEM;
    }
    return print_into(root, http, out);
}

/* Round for display: cJSON prints doubles with up to 17 significant digits,
 * so 0.8123f would come out as 0.81230002641677856. */
static double round_to(double x, double scale)
{
    if (!isfinite(x))
        return 0.0;
    return round(x * scale) / scale;
}

static void price_text(int64_t minor, char *buf, size_t cap)
{
    if (minor < 0)
        minor = 0;
    snprintf(buf, cap, "%lld.%02lld", (long long)(minor / 100), (long long)(minor % 100));
}

/* cJSON_AddStringToObject with NULL -> JSON null. */
static bool add_str_or_null(cJSON *o, const char *k, const char *v)
{
    return v ? cJSON_AddStringToObject(o, k, v) != NULL : cJSON_AddNullToObject(o, k) != NULL;
}

static bool add_result(cJSON *arr, const struct lk_search_result *r)
{
    char price[32];
    double score = r->score;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {     /* arr owns o from here */
        cJSON_Delete(o);
        return false;
    }
    if (!(score >= 0.0))
        score = 0.0;    /* also catches NaN */
    if (score > 1.0)
        score = 1.0;
    price_text(r->price_minor, price, sizeof price);
    return add_str_or_null(o, "sku", r->sku) && add_str_or_null(o, "title", r->title) &&
           add_str_or_null(o, "category", r->category) && cJSON_AddStringToObject(o, "price", price) &&
           cJSON_AddNumberToObject(o, "price_minor", (double)r->price_minor) &&
           add_str_or_null(o, "currency", r->currency[0] ? r->currency : NULL) &&
           cJSON_AddNumberToObject(o, "stock", (double)r->stock) &&
           cJSON_AddBoolToObject(o, "in_stock", r->stock > 0) &&
           add_str_or_null(o, "image_id", r->image_id) &&
           cJSON_AddNumberToObject(o, "score", round_to(score, 1e4)) &&
           cJSON_AddStringToObject(o, "band", lk_band_name(r->band));
}

int lk__json_search(struct lk__reply *out, const struct lk_search_request *req,
                    const struct lk_search_response *resp, double upload_ms, double total_ms)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *t, *arr, *fb, *rel, *cat;
    bool ok = root != NULL;
    /* The backend may echo its own id; anything that is not a well-formed
     * id would make the storefront's events unreportable, so fall back to
     * the server's. */
    const char *sid = lk__valid_search_id(resp->search_id, strnlen(resp->search_id, sizeof resp->search_id))
                          ? resp->search_id
                          : req->search_id;

    ok = ok && cJSON_AddStringToObject(root, "search_id", sid);
    ok = ok && cJSON_AddNumberToObject(root, "k", req->k);

    t = ok ? cJSON_AddObjectToObject(root, "timings_ms") : NULL;
    ok = ok && t;
    for (size_t i = 0; ok && i < resp->n_timings && i < LK_SEARCH_STAGES_MAX; i++)
        if (resp->timings[i].name && !cJSON_GetObjectItemCaseSensitive(t, resp->timings[i].name))
            ok = cJSON_AddNumberToObject(t, resp->timings[i].name, round_to(resp->timings[i].ms, 1e3)) != NULL;
    ok = ok && cJSON_AddNumberToObject(t, "upload", round_to(upload_ms, 1e3));
    ok = ok && cJSON_AddNumberToObject(t, "total", round_to(total_ms, 1e3));

    if (ok && resp->inferred_category) {
        cat = cJSON_AddObjectToObject(root, "inferred_category");
        ok = cat && cJSON_AddStringToObject(cat, "category", resp->inferred_category) &&
             cJSON_AddNumberToObject(cat, "confidence", round_to(resp->category_confidence, 1e4)) &&
             cJSON_AddStringToObject(cat, "source", resp->category_from_request ? "request" : "inferred");
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "inferred_category") != NULL;
    }

    ok = ok && add_str_or_null(root, "best_band", resp->n_results ? lk_band_name(resp->best_band) : NULL);

    arr = ok ? cJSON_AddArrayToObject(root, "results") : NULL;
    ok = ok && arr;
    for (size_t i = 0; ok && i < resp->n_results; i++)
        ok = add_result(arr, &resp->results[i]);

    fb = ok ? cJSON_AddObjectToObject(root, "fallback") : NULL;
    ok = ok && fb && cJSON_AddBoolToObject(fb, "applied", resp->fallback.applied);
    rel = ok ? cJSON_AddArrayToObject(fb, "relaxed") : NULL;
    ok = ok && rel;
    for (size_t i = 0; ok && i < resp->fallback.n_relaxed; i++) {
        cJSON *s = cJSON_CreateString(resp->fallback.relaxed[i] ? resp->fallback.relaxed[i] : "");
        ok = s && cJSON_AddItemToArray(rel, s);
        if (!ok)
            cJSON_Delete(s);
    }
    ok = ok && add_str_or_null(fb, "message", resp->fallback.message);

    arr = ok ? cJSON_AddArrayToObject(root, "facets") : NULL;
    ok = ok && arr;
    for (size_t i = 0; ok && i < resp->n_facets; i++) {
        cJSON *f = cJSON_CreateObject();
        ok = f && cJSON_AddItemToArray(arr, f);
        if (!ok) {
            cJSON_Delete(f);
            break;
        }
        ok = add_str_or_null(f, "category", resp->facets[i].category) &&
             cJSON_AddNumberToObject(f, "count", resp->facets[i].count);
    }
    if (!ok) {
        cJSON_Delete(root);
        return LK_ERR_NOMEM;
    }
    return print_into(root, 200, out);
}

struct lk__jobj {
    cJSON *o;
    bool failed;
};

struct lk__jobj *lk__jobj_new(void)
{
    struct lk__jobj *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->o = cJSON_CreateObject();
    if (!j->o) {
        free(j);
        return NULL;
    }
    return j;
}

void lk__jobj_str(struct lk__jobj *j, const char *key, const char *value)
{
    if (j && !add_str_or_null(j->o, key, value))
        j->failed = true;
}

void lk__jobj_int(struct lk__jobj *j, const char *key, int64_t value)
{
    if (j && !cJSON_AddNumberToObject(j->o, key, (double)value))
        j->failed = true;
}

void lk__jobj_bool(struct lk__jobj *j, const char *key, bool value)
{
    if (j && !cJSON_AddBoolToObject(j->o, key, value))
        j->failed = true;
}

void lk__jobj_free(struct lk__jobj *j)
{
    if (!j)
        return;
    cJSON_Delete(j->o);
    free(j);
}

int lk__jobj_reply(struct lk__jobj *j, unsigned status, struct lk__reply *out)
{
    cJSON *o;
    if (!j)
        return LK_ERR_NOMEM;
    if (j->failed) {
        lk__jobj_free(j);
        return LK_ERR_NOMEM;
    }
    o = j->o;
    free(j);
    return print_into(o, status, out);
}

int lk__json_batch_reply(struct lk__reply *out, const struct lk_server_item *items, size_t n,
                         const int *statuses, const struct lk_err *errs)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr;
    size_t failed = 0;
    bool ok = root != NULL;
    for (size_t i = 0; i < n; i++)
        failed += statuses[i] != LK_OK;
    ok = ok && cJSON_AddNumberToObject(root, "accepted", (double)(n - failed));
    ok = ok && cJSON_AddNumberToObject(root, "failed", (double)failed);
    arr = ok ? cJSON_AddArrayToObject(root, "errors") : NULL;
    ok = ok && arr;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *o, *e;
        if (statuses[i] == LK_OK)
            continue;
        o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        e = NULL;
        ok = cJSON_AddNumberToObject(o, "index", (double)i) && add_str_or_null(o, "sku", items[i].sku) &&
             (e = cJSON_AddObjectToObject(o, "error")) != NULL &&
             cJSON_AddStringToObject(e, "code", lk__error_code(statuses[i])) &&
             cJSON_AddStringToObject(e, "message", lk__http_status(statuses[i]) < 500 && errs[i].msg[0]
                                                       ? errs[i].msg
                                                       : lk_status_str(statuses[i]));
    }
    if (!ok) {
        cJSON_Delete(root);
        return LK_ERR_NOMEM;
    }
    return print_into(root, 200, out);
}

/* ==== Input ============================================================= */

struct lk__json_doc {
    cJSON *root;
    void **allocs;      /* arrays of borrowed pointers made for the items */
    size_t n_allocs, cap_allocs;
};

void lk__json_doc_free(struct lk__json_doc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n_allocs; i++)
        free(doc->allocs[i]);
    free(doc->allocs);
    cJSON_Delete(doc->root);
    free(doc);
}

/* calloc tracked by the document (freed with it). */
static void *doc_alloc(struct lk__json_doc *doc, size_t n, size_t size)
{
    void *p;
    if (doc->n_allocs == doc->cap_allocs) {
        size_t nc = doc->cap_allocs ? doc->cap_allocs * 2 : 8;
        void **a = realloc(doc->allocs, nc * sizeof *a);
        if (!a)
            return NULL;
        doc->allocs = a;
        doc->cap_allocs = nc;
    }
    p = calloc(n ? n : 1, size);
    if (p)
        doc->allocs[doc->n_allocs++] = p;
    return p;
}

static int perr(struct lk__perr *pe, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(struct lk__perr *pe, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;
    if (pe) {
        pe->code = code;
        snprintf(pe->param, sizeof pe->param, "%s", param ? param : "");
        va_start(ap, fmt);
        vsnprintf(pe->msg, sizeof pe->msg, fmt, ap);
        va_end(ap);
    }
    return LK_ERR_PARSE;
}

/* Parse a whole body as one JSON value: no NUL bytes, no "\u0000" escapes
 * (cJSON would silently truncate the string there), nothing after it. */
static int parse_body(const char *body, size_t len, cJSON **out, struct lk__perr *pe)
{
    const char *end = NULL;
    cJSON *root;
    if (len == 0)
        return perr(pe, "invalid_json", "body", "request body is empty");
    if (memchr(body, '\0', len))
        return perr(pe, "invalid_json", "body", "request body contains a NUL byte");
    for (size_t i = 0; i + 6 <= len; i++)
        if (body[i] == '\\' && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0)
            return perr(pe, "invalid_json", "body", "\\u0000 is not allowed in strings");
    root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return perr(pe, "invalid_json", "body", "malformed JSON near byte %zu", at);
    }
    if (end) {
        while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if (end != body + len) {
            cJSON_Delete(root);
            return perr(pe, "invalid_json", "body", "unexpected data after the JSON value");
        }
    }
    *out = root;
    return LK_OK;
}

/* Refuse keys outside `allowed` (NULL-terminated) and duplicate keys. */
static int check_keys(const cJSON *obj, const char *const *allowed, const char *prefix, struct lk__perr *pe)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool known = false;
        for (const char *const *a = allowed; *a; a++)
            if (c->string && strcmp(c->string, *a) == 0)
                known = true;
        if (!known) {
            char p[64];
            snprintf(p, sizeof p, "%s%.40s", prefix, c->string ? c->string : "");
            return perr(pe, "unknown_field", p, "unknown field '%.40s'", c->string ? c->string : "");
        }
        for (const cJSON *d = c->next; d; d = d->next)
            if (d->string && strcmp(d->string, c->string) == 0) {
                char p[64];
                snprintf(p, sizeof p, "%s%.40s", prefix, c->string);
                return perr(pe, "duplicate_field", p, "field '%.40s' appears twice", c->string);
            }
    }
    return LK_OK;
}

/* An integral JSON number in [lo, hi]. */
static bool get_int(const cJSON *v, double lo, double hi, int64_t *out)
{
    double d;
    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
        return false;
    *out = (int64_t)d;
    return true;
}

/* Price as a decimal string ("12.50") or a JSON number with at most two
 * decimals; to minor units. */
static bool get_price(const cJSON *v, int64_t *minor)
{
    if (cJSON_IsString(v))
        return lk__parse_price(v->valuestring, strlen(v->valuestring), minor);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble, c;
        if (!isfinite(d) || d < 0 || d > 1e12)
            return false;
        c = round(d * 100.0);
        if (fabs(d * 100.0 - c) > 1e-6 * (c > 1 ? c : 1))
            return false;
        *minor = (int64_t)c;
        return true;
    }
    return false;
}

static bool get_currency(const cJSON *v, char out[4])
{
    const char *s;
    if (!cJSON_IsString(v))
        return false;
    s = v->valuestring;
    if (strlen(s) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    memcpy(out, s, 4);
    return true;
}

static const struct {
    const char *name;
    unsigned bit;
} flag_names[] = {
    {"restricted", LK_ITEM_RESTRICTED},
    {"age_restricted", LK_ITEM_AGE_RESTRICTED},
    {"retired", LK_ITEM_RETIRED},
};

/* {"restricted":bool,...}: sets *mask to the bits named and *flags to values. */
static int get_flags(const cJSON *v, const char *prefix, unsigned *mask, unsigned *flags, struct lk__perr *pe)
{
    static const char *const allowed[] = {"restricted", "age_restricted", "retired", NULL};
    char p[64];
    int rc;
    snprintf(p, sizeof p, "%sflags", prefix);
    if (!cJSON_IsObject(v))
        return perr(pe, "invalid_parameter", p, "flags must be an object of booleans");
    snprintf(p, sizeof p, "%sflags.", prefix);
    if ((rc = check_keys(v, allowed, p, pe)) != LK_OK)
        return rc;
    *mask = 0;
    *flags = 0;
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, flag_names[i].name);
        if (!f)
            continue;
        if (!cJSON_IsBool(f)) {
            snprintf(p, sizeof p, "%sflags.%s", prefix, flag_names[i].name);
            return perr(pe, "invalid_parameter", p, "flag %s must be true or false", flag_names[i].name);
        }
        *mask |= flag_names[i].bit;
        if (cJSON_IsTrue(f))
            *flags |= flag_names[i].bit;
    }
    return LK_OK;
}

/* Array of strings -> doc-owned array of borrowed pointers. */
static int get_str_array(struct lk__json_doc *doc, const cJSON *v, const char *prefix, const char *name,
                         size_t max, bool (*valid)(const char *, size_t), const char *what,
                         const char *const **out, size_t *n, struct lk__perr *pe)
{
    char p[64];
    size_t count = 0, i = 0;
    const char **arr;
    const cJSON *e;
    snprintf(p, sizeof p, "%s%s", prefix, name);
    if (!cJSON_IsArray(v))
        return perr(pe, "invalid_parameter", p, "%s must be an array of strings", name);
    cJSON_ArrayForEach(e, v) count++;
    if (count > max)
        return perr(pe, "invalid_parameter", p, "%s has %zu entries (at most %zu)", name, count, max);
    arr = doc_alloc(doc, count, sizeof *arr);
    if (!arr)
        return LK_ERR_NOMEM;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !valid(e->valuestring, strlen(e->valuestring))) {
            snprintf(p, sizeof p, "%s%s[%zu]", prefix, name, i);
            return perr(pe, "invalid_parameter", p, "%s[%zu] is not a valid %s", name, i, what);
        }
        arr[i++] = e->valuestring;
    }
    *out = arr;
    *n = count;
    return LK_OK;
}

static bool valid_path(const char *s, size_t len)
{
    return len > 0 && len <= LK_ITEM_PATH_MAX && lk__valid_utf8_text(s, len);
}

static bool valid_title(const char *s, size_t len)
{
    return len > 0 && len <= LK_ITEM_TITLE_MAX && lk__valid_utf8_text(s, len);
}

static bool valid_region_str(const char *s, size_t len)
{
    return lk__valid_region(s, len);
}

/* One item object.  `path_sku` (may be NULL) is the SKU from the URL;
 * `prefix` names the item in error params ("items[3]."). */
static int parse_item_obj(struct lk__json_doc *doc, const cJSON *o, const char *path_sku, const char *prefix,
                          struct lk_server_item *it, struct lk__perr *pe)
{
    static const char *const allowed[] = {"sku",   "title",   "category", "price", "currency",
                                          "stock", "regions", "flags",    "images", NULL};
    static const char *const required[] = {"title", "category", "price", "currency", "stock", NULL};
    const cJSON *v;
    char p[64];
    int rc;
    unsigned mask;

    memset(it, 0, sizeof *it);
    if (!cJSON_IsObject(o))
        return perr(pe, "invalid_parameter", prefix[0] ? prefix : "body", "an item must be a JSON object");
    if ((rc = check_keys(o, allowed, prefix, pe)) != LK_OK)
        return rc;
    for (const char *const *r = required; *r; r++)
        if (!cJSON_GetObjectItemCaseSensitive(o, *r)) {
            snprintf(p, sizeof p, "%s%s", prefix, *r);
            return perr(pe, "missing_field", p, "field '%s' is required", *r);
        }

    snprintf(p, sizeof p, "%ssku", prefix);
    v = cJSON_GetObjectItemCaseSensitive(o, "sku");
    if (v) {
        if (!cJSON_IsString(v) || !lk__valid_sku(v->valuestring, strlen(v->valuestring)))
            return perr(pe, "invalid_parameter", p, "sku must be 1..%d characters of [A-Za-z0-9._-]",
                        LK_HTTP_SKU_MAX);
        if (path_sku && strcmp(path_sku, v->valuestring) != 0)
            return perr(pe, "invalid_parameter", p, "sku in the body differs from the URL");
        it->sku = v->valuestring;
    } else if (path_sku) {
        it->sku = path_sku;
    } else {
        return perr(pe, "missing_field", p, "field 'sku' is required");
    }

    v = cJSON_GetObjectItemCaseSensitive(o, "title");
    snprintf(p, sizeof p, "%stitle", prefix);
    if (!cJSON_IsString(v) || !valid_title(v->valuestring, strlen(v->valuestring)))
        return perr(pe, "invalid_parameter", p, "title must be 1..%d bytes of text", LK_ITEM_TITLE_MAX);
    it->title = v->valuestring;

    v = cJSON_GetObjectItemCaseSensitive(o, "category");
    snprintf(p, sizeof p, "%scategory", prefix);
    if (!cJSON_IsString(v) || !lk__valid_category(v->valuestring, strlen(v->valuestring)))
        return perr(pe, "invalid_parameter", p, "category must be 1..%d bytes of text",
                    LK_ITEM_CATEGORY_MAX);
    it->category = v->valuestring;

    snprintf(p, sizeof p, "%sprice", prefix);
    if (!get_price(cJSON_GetObjectItemCaseSensitive(o, "price"), &it->price_minor))
        return perr(pe, "invalid_parameter", p, "price must be a non-negative decimal with at most 2 decimals");

    snprintf(p, sizeof p, "%scurrency", prefix);
    if (!get_currency(cJSON_GetObjectItemCaseSensitive(o, "currency"), it->currency))
        return perr(pe, "invalid_parameter", p, "currency must be an ISO 4217 code like \"EUR\"");

    snprintf(p, sizeof p, "%sstock", prefix);
    if (!get_int(cJSON_GetObjectItemCaseSensitive(o, "stock"), 0, 1e9, &it->stock))
        return perr(pe, "invalid_parameter", p, "stock must be an integer in 0..1000000000");

    if ((v = cJSON_GetObjectItemCaseSensitive(o, "regions")) != NULL &&
        (rc = get_str_array(doc, v, prefix, "regions", LK_ITEM_REGIONS_MAX, valid_region_str,
                            "region code", &it->regions, &it->n_regions, pe)) != LK_OK)
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "images")) != NULL &&
        (rc = get_str_array(doc, v, prefix, "images", LK_ITEM_IMAGES_MAX, valid_path, "file path",
                            &it->images, &it->n_images, pe)) != LK_OK)
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "flags")) != NULL &&
        (rc = get_flags(v, prefix, &mask, &it->flags, pe)) != LK_OK)
        return rc;
    return LK_OK;
}

static int new_doc(const char *body, size_t len, struct lk__json_doc **doc, struct lk__perr *pe)
{
    cJSON *root;
    int rc = parse_body(body, len, &root, pe);
    if (rc != LK_OK)
        return rc;
    *doc = calloc(1, sizeof **doc);
    if (!*doc) {
        cJSON_Delete(root);
        return LK_ERR_NOMEM;
    }
    (*doc)->root = root;
    return LK_OK;
}

int lk__json_parse_item(const char *body, size_t len, const char *path_sku, struct lk__json_doc **doc,
                        struct lk_server_item *item, struct lk__perr *pe)
{
    int rc = new_doc(body, len, doc, pe);
    if (rc != LK_OK)
        return rc;
    rc = parse_item_obj(*doc, (*doc)->root, path_sku, "", item, pe);
    if (rc != LK_OK) {
        lk__json_doc_free(*doc);
        *doc = NULL;
    }
    return rc;
}

int lk__json_parse_patch(const char *body, size_t len, struct lk__json_doc **doc,
                         struct lk_server_item_patch *patch, struct lk__perr *pe)
{
    static const char *const allowed[] = {"stock", "price", "currency", "flags", "title", NULL};
    const cJSON *o, *v;
    int rc = new_doc(body, len, doc, pe);
    if (rc != LK_OK)
        return rc;
    o = (*doc)->root;
    memset(patch, 0, sizeof *patch);
    if (!cJSON_IsObject(o)) {
        rc = perr(pe, "invalid_parameter", "body", "a patch must be a JSON object");
        goto fail;
    }
    if ((rc = check_keys(o, allowed, "", pe)) != LK_OK)
        goto fail;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "stock")) != NULL) {
        if (!get_int(v, 0, 1e9, &patch->stock)) {
            rc = perr(pe, "invalid_parameter", "stock", "stock must be an integer in 0..1000000000");
            goto fail;
        }
        patch->set |= LK_PATCH_STOCK;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "price")) != NULL) {
        if (!get_price(v, &patch->price_minor)) {
            rc = perr(pe, "invalid_parameter", "price", "price must be a non-negative decimal with at most 2 decimals");
            goto fail;
        }
        patch->set |= LK_PATCH_PRICE;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "currency")) != NULL) {
        if (!(patch->set & LK_PATCH_PRICE)) {
            rc = perr(pe, "invalid_parameter", "currency", "currency can only change together with price");
            goto fail;
        }
        if (!get_currency(v, patch->currency)) {
            rc = perr(pe, "invalid_parameter", "currency", "currency must be an ISO 4217 code like \"EUR\"");
            goto fail;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "flags")) != NULL) {
        if ((rc = get_flags(v, "", &patch->flags_mask, &patch->flags, pe)) != LK_OK)
            goto fail;
        patch->set |= LK_PATCH_FLAGS;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "title")) != NULL) {
        if (!cJSON_IsString(v) || !valid_title(v->valuestring, strlen(v->valuestring))) {
            rc = perr(pe, "invalid_parameter", "title", "title must be 1..%d bytes of text", LK_ITEM_TITLE_MAX);
            goto fail;
        }
        patch->title = v->valuestring;
        patch->set |= LK_PATCH_TITLE;
    }
    if (patch->set == 0) {
        rc = perr(pe, "invalid_parameter", "body", "a patch must change at least one of stock, price, flags, title");
        goto fail;
    }
    return LK_OK;
fail:
    lk__json_doc_free(*doc);
    *doc = NULL;
    return rc;
}

int lk__json_parse_batch(const char *body, size_t len, struct lk__json_doc **doc, struct lk_server_item **items,
                         size_t *n, struct lk__perr *pe)
{
    static const char *const allowed[] = {"items", NULL};
    const cJSON *o, *arr, *e;
    size_t count = 0, i = 0;
    struct lk_server_item *its;
    int rc = new_doc(body, len, doc, pe);
    if (rc != LK_OK)
        return rc;
    o = (*doc)->root;
    if (!cJSON_IsObject(o)) {
        rc = perr(pe, "invalid_parameter", "body", "a batch must be {\"items\":[...]}");
        goto fail;
    }
    if ((rc = check_keys(o, allowed, "", pe)) != LK_OK)
        goto fail;
    arr = cJSON_GetObjectItemCaseSensitive(o, "items");
    if (!cJSON_IsArray(arr)) {
        rc = perr(pe, "missing_field", "items", "field 'items' must be an array of items");
        goto fail;
    }
    cJSON_ArrayForEach(e, arr) count++;
    if (count == 0 || count > LK_BATCH_MAX) {
        rc = perr(pe, "invalid_parameter", "items", "a batch holds 1..%d items", LK_BATCH_MAX);
        goto fail;
    }
    its = doc_alloc(*doc, count, sizeof *its);
    if (!its) {
        rc = LK_ERR_NOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(e, arr)
    {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "items[%zu].", i);
        if ((rc = parse_item_obj(*doc, e, NULL, prefix, &its[i], pe)) != LK_OK)
            goto fail;
        i++;
    }
    *items = its;
    *n = count;
    return LK_OK;
fail:
    lk__json_doc_free(*doc);
    *doc = NULL;
    return rc;
}

int lk__json_parse_event(const char *body, size_t len, int64_t now, struct lk_server_event *ev,
                         struct lk__perr *pe)
{
    static const char *const allowed[] = {"search_id", "sku", "type", "ts", NULL};
    static const struct {
        const char *name;
        enum lk_event_type type;
    } types[] = {{"view", LK_EVENT_VIEW}, {"add_to_cart", LK_EVENT_ADD_TO_CART}, {"purchase", LK_EVENT_PURCHASE}};
    const cJSON *v;
    cJSON *root = NULL;
    int rc = parse_body(body, len, &root, pe);
    bool found = false;
    if (rc != LK_OK)
        return rc;
    memset(ev, 0, sizeof *ev);
    if (!cJSON_IsObject(root)) {
        rc = perr(pe, "invalid_parameter", "body", "an event must be a JSON object");
        goto out;
    }
    if ((rc = check_keys(root, allowed, "", pe)) != LK_OK)
        goto out;

    v = cJSON_GetObjectItemCaseSensitive(root, "search_id");
    if (!v) {
        rc = perr(pe, "missing_field", "search_id", "field 'search_id' is required");
        goto out;
    }
    if (!cJSON_IsString(v) || !lk__valid_search_id(v->valuestring, strlen(v->valuestring))) {
        rc = perr(pe, "invalid_parameter", "search_id", "search_id must be %d lowercase hex digits",
                  LK_SEARCH_ID_LEN);
        goto out;
    }
    memcpy(ev->search_id, v->valuestring, LK_SEARCH_ID_LEN + 1);

    v = cJSON_GetObjectItemCaseSensitive(root, "sku");
    if (!v) {
        rc = perr(pe, "missing_field", "sku", "field 'sku' is required");
        goto out;
    }
    if (!cJSON_IsString(v) || !lk__valid_sku(v->valuestring, strlen(v->valuestring))) {
        rc = perr(pe, "invalid_parameter", "sku", "sku must be 1..%d characters of [A-Za-z0-9._-]", LK_HTTP_SKU_MAX);
        goto out;
    }
    memcpy(ev->sku, v->valuestring, strlen(v->valuestring) + 1);

    v = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (!v) {
        rc = perr(pe, "missing_field", "type", "field 'type' is required");
        goto out;
    }
    for (size_t i = 0; cJSON_IsString(v) && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(v->valuestring, types[i].name) == 0) {
            ev->type = types[i].type;
            found = true;
        }
    if (!found) {
        rc = perr(pe, "invalid_parameter", "type", "type must be one of view, add_to_cart, purchase");
        goto out;
    }

    v = cJSON_GetObjectItemCaseSensitive(root, "ts");
    if (!v) {
        rc = perr(pe, "missing_field", "ts", "field 'ts' is required");
        goto out;
    }
    if (!get_int(v, (double)LK_EVENT_TS_MIN, (double)(now + LK_EVENT_TS_FUTURE_SLACK), &ev->ts)) {
        rc = perr(pe, "invalid_parameter", "ts",
                  "ts must be an integer Unix time in seconds between 2020-01-01 and now + 1 day");
        goto out;
    }
    rc = LK_OK;
out:
    cJSON_Delete(root);
    return rc;
}
