/*
 * routes.c — the API surface: route table, path and query validation, body
 * intake (raw image, multipart/form-data, JSON) and one handler per route.
 *
 *   method  path                       auth   body   rate-limited  success
 *   POST    /v1/search                 read*  image  yes           200
 *   GET     /v1/items/{sku}/similar    read*  -      yes           200
 *   PUT     /v1/items/{sku}            admin  json   yes**         201 created / 200 replaced
 *   PATCH   /v1/items/{sku}            admin  json   yes**         200
 *   DELETE  /v1/items/{sku}            admin  -      yes**         204
 *   POST    /v1/items:batch            admin  json   yes**         200 (+ per-item errors)
 *   POST    /v1/index:reload           admin  -      yes**         200
 *   POST    /v1/events                 read*  json   yes           202
 *   GET     /v1/images/{image_id}      read*  -      no            200
 *   GET     /healthz /readyz           -      -      no            200 (readyz: 503 not ready)
 *   GET     /metrics                   read*  -      no            200
 *   GET     / /app.js /style.css       -      -      no            200 / 304
 *   (* read token only when search_requires_read_token; ** not for a valid
 *   admin token.  HEAD is accepted wherever GET is.)
 *
 * Anything else: 404 (unknown path) or 405 with Allow (known path, wrong
 * method).  Query parameters are validated strictly: unknown or repeated
 * parameters are refused, so a typo ("instock=0") is a 400 naming it
 * instead of a silently ignored filter.
 *
 * Backend failures go through errors.c's table; validation failures here
 * are 400 with the parameter named in the error body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "pserver.h"

static void handle_search(struct lk__request *r, struct lk__reply *out);
static void handle_similar(struct lk__request *r, struct lk__reply *out);
static void handle_item_put(struct lk__request *r, struct lk__reply *out);
static void handle_item_patch(struct lk__request *r, struct lk__reply *out);
static void handle_item_delete(struct lk__request *r, struct lk__reply *out);
static void handle_items_batch(struct lk__request *r, struct lk__reply *out);
static void handle_reload(struct lk__request *r, struct lk__reply *out);
static void handle_events(struct lk__request *r, struct lk__reply *out);
static void handle_image(struct lk__request *r, struct lk__reply *out);
static void handle_healthz(struct lk__request *r, struct lk__reply *out);
static void handle_readyz(struct lk__request *r, struct lk__reply *out);
static void handle_metrics(struct lk__request *r, struct lk__reply *out);
static void handle_static(struct lk__request *r, struct lk__reply *out);

/* ==== Route table ======================================================= */

static const struct lk__route routes[] = {
    {LK__R_SEARCH, "POST", "/v1/search", LK__AUTH_READ, LK__BODY_IMAGE, true, handle_search},
    {LK__R_SIMILAR, "GET", "/v1/items/{sku}/similar", LK__AUTH_READ, LK__BODY_NONE, true, handle_similar},
    {LK__R_ITEM_PUT, "PUT", "/v1/items/{sku}", LK__AUTH_ADMIN, LK__BODY_JSON, true, handle_item_put},
    {LK__R_ITEM_PATCH, "PATCH", "/v1/items/{sku}", LK__AUTH_ADMIN, LK__BODY_JSON, true, handle_item_patch},
    {LK__R_ITEM_DELETE, "DELETE", "/v1/items/{sku}", LK__AUTH_ADMIN, LK__BODY_NONE, true, handle_item_delete},
    {LK__R_ITEMS_BATCH, "POST", "/v1/items:batch", LK__AUTH_ADMIN, LK__BODY_JSON, true, handle_items_batch},
    {LK__R_RELOAD, "POST", "/v1/index:reload", LK__AUTH_ADMIN, LK__BODY_NONE, true, handle_reload},
    {LK__R_EVENTS, "POST", "/v1/events", LK__AUTH_READ, LK__BODY_JSON, true, handle_events},
    /* A result grid loads up to k images at once: not rate limited. */
    {LK__R_IMAGE, "GET", "/v1/images/{image_id}", LK__AUTH_READ, LK__BODY_NONE, false, handle_image},
    {LK__R_HEALTHZ, "GET", "/healthz", LK__AUTH_NONE, LK__BODY_NONE, false, handle_healthz},
    {LK__R_READYZ, "GET", "/readyz", LK__AUTH_NONE, LK__BODY_NONE, false, handle_readyz},
    {LK__R_METRICS, "GET", "/metrics", LK__AUTH_READ, LK__BODY_NONE, false, handle_metrics},
    {LK__R_STATIC, "GET", "{asset}", LK__AUTH_NONE, LK__BODY_NONE, false, handle_static},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Allow header per path pattern (must agree with the table above). */
static const struct {
    const char *pattern;
    const char *allow;
} allow_by_pattern[] = {
    {"/v1/search", "POST"},
    {"/v1/items/{sku}/similar", "GET, HEAD"},
    {"/v1/items/{sku}", "PUT, PATCH, DELETE"},
    {"/v1/items:batch", "POST"},
    {"/v1/index:reload", "POST"},
    {"/v1/events", "POST"},
    {"/v1/images/{image_id}", "GET, HEAD"},
    {"/healthz", "GET, HEAD"},
    {"/readyz", "GET, HEAD"},
    {"/metrics", "GET, HEAD"},
    {"{asset}", "GET, HEAD"},
};

const char *lk__route_name(enum lk__route_id id)
{
    static const char *const names[LK__R_COUNT] = {
        [LK__R_SEARCH] = "search",         [LK__R_SIMILAR] = "similar",   [LK__R_ITEM_PUT] = "item_put",
        [LK__R_ITEM_PATCH] = "item_patch", [LK__R_ITEM_DELETE] = "item_delete",
        [LK__R_ITEMS_BATCH] = "items_batch", [LK__R_RELOAD] = "index_reload", [LK__R_EVENTS] = "events",
        [LK__R_IMAGE] = "image",           [LK__R_HEALTHZ] = "healthz",   [LK__R_READYZ] = "readyz",
        [LK__R_METRICS] = "metrics",       [LK__R_STATIC] = "static",     [LK__R_UNMATCHED] = "unmatched",
    };
    return (unsigned)id < LK__R_COUNT && names[id] ? names[id] : "unmatched";
}

static const struct lk__asset *find_asset(const char *path)
{
    for (size_t i = 0; i < lk__assets_count; i++)
        if (strcmp(lk__assets[i].path, path) == 0)
            return &lk__assets[i];
    return NULL;
}

/* Copy one path segment [s, s+len) into m->param, flagging invalid ids. */
static void take_param(struct lk__match *m, const char *s, size_t len, bool (*valid)(const char *, size_t))
{
    if (len > LK__PATH_PARAM_MAX) {
        m->param_invalid = true;
        len = LK__PATH_PARAM_MAX;
    }
    memcpy(m->param, s, len);
    m->param[len] = '\0';
    if (!valid(s, len))
        m->param_invalid = true;
}

/* Which pattern the path has (NULL = none), extracting {sku}/{image_id}. */
static const char *classify(const char *url, struct lk__match *m)
{
    static const char *const exact[] = {"/v1/search", "/v1/items:batch", "/v1/index:reload", "/v1/events",
                                        "/healthz",   "/readyz",         "/metrics"};
    const char *rest, *slash;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(url, exact[i]) == 0)
            return exact[i];
    if (strncmp(url, "/v1/items/", 10) == 0) {
        rest = url + 10;
        slash = strchr(rest, '/');
        if (!slash) {
            if (!*rest)
                return NULL;
            take_param(m, rest, strlen(rest), lk__valid_sku);
            return "/v1/items/{sku}";
        }
        if (strcmp(slash, "/similar") == 0 && slash > rest) {
            take_param(m, rest, (size_t)(slash - rest), lk__valid_sku);
            return "/v1/items/{sku}/similar";
        }
        return NULL;
    }
    if (strncmp(url, "/v1/images/", 11) == 0) {
        rest = url + 11;
        if (!*rest || strchr(rest, '/'))
            return NULL;
        take_param(m, rest, strlen(rest), lk__valid_image_id);
        return "/v1/images/{image_id}";
    }
    if (find_asset(url)) {
        snprintf(m->param, sizeof m->param, "%s", url);
        return "{asset}";
    }
    return NULL;
}

void lk__route_match(const char *method, const char *url, struct lk__match *m)
{
    const char *pattern;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    memset(m, 0, sizeof *m);
    pattern = classify(url ? url : "", m);
    if (!pattern)
        return;
    for (size_t i = 0; i < N_ROUTES; i++)
        if (strcmp(routes[i].pattern, pattern) == 0 && strcmp(routes[i].method, want) == 0) {
            m->route = &routes[i];
            return;
        }
    for (size_t i = 0; i < sizeof allow_by_pattern / sizeof allow_by_pattern[0]; i++)
        if (strcmp(allow_by_pattern[i].pattern, pattern) == 0)
            m->allow = allow_by_pattern[i].allow;
    m->param_invalid = false;
}

/* ==== Body intake ======================================================= */

bool lk__body_append(struct lk__request *r, const char *data, size_t n)
{
    if (n > r->body_limit - r->body_len) {
        r->overflow = true;
        return false;
    }
    if (r->body_len + n > r->body_cap) {
        size_t nc = r->body_cap ? r->body_cap : 64u << 10;
        char *p;
        while (nc < r->body_len + n)
            nc *= 2;
        if (nc > r->body_limit)
            nc = r->body_limit;
        /* Capacity, not length, is what occupies memory: reserve the growth. */
        if (!lk__budget_reserve(r->srv, nc - r->body_cap)) {
            r->over_budget = true;
            return false;
        }
        p = realloc(r->body, nc);
        if (!p) {
            lk__budget_release(r->srv, nc - r->body_cap);
            r->over_budget = true;  /* out of memory: same answer, try later */
            return false;
        }
        r->body = p;
        r->body_cap = nc;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    return true;
}

/* multipart/form-data: the image is the field named "image"; any other
 * field is refused (flagged, answered 400 when the body is complete). */
static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size)
{
    struct lk__request *r = cls;
    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    if (!key || strcmp(key, "image") != 0) {
        if (!r->multipart_bad)
            snprintf(r->multipart_field, sizeof r->multipart_field, "%s", key ? key : "");
        r->multipart_bad = true;
        return MHD_YES;     /* keep consuming; the reply says what was wrong */
    }
    if (off == 0) {
        if (++r->image_parts > 1) {
            r->multipart_bad = true;
            snprintf(r->multipart_field, sizeof r->multipart_field, "image");
        }
    }
    if (r->multipart_bad || size == 0)
        return MHD_YES;
    return lk__body_append(r, data, size) ? MHD_YES : MHD_NO;     /* MHD_NO: limit or budget */
}

/* Media type of a Content-Type value, lowercased, without parameters. */
static void media_type(const char *ct, char *out, size_t cap)
{
    size_t n = 0;
    while (*ct == ' ')
        ct++;
    while (ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < cap) {
        char c = ct[n];
        out[n] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        n++;
    }
    out[n] = '\0';
}

unsigned lk__body_begin(struct lk__request *r, struct lk__reply *out)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    char mt[64];
    media_type(ct ? ct : "", mt, sizeof mt);
    if (r->route->body == LK__BODY_JSON) {
        if (strcmp(mt, "application/json") != 0) {
            lk__reply_error(out, 415, "unsupported_media_type", "Content-Type must be application/json",
                            "Content-Type");
            return 415;
        }
        return 0;
    }
    /* Image: raw JPEG/PNG (the decoder sniffs the magic bytes, so the
     * declared type only has to be plausible) or multipart. */
    if (!ct || strcmp(mt, "image/jpeg") == 0 || strcmp(mt, "image/png") == 0 ||
        strcmp(mt, "application/octet-stream") == 0)
        return 0;
    if (strcmp(mt, "multipart/form-data") == 0) {
        r->pp = MHD_create_post_processor(r->conn, 16u << 10, post_iter, r);
        if (!r->pp) {
            lk__reply_error(out, 400, "invalid_multipart", "multipart/form-data without a valid boundary",
                            "Content-Type");
            return 400;
        }
        return 0;
    }
    if (strncmp(mt, "image/", 6) == 0) {
        lk__reply_error(out, 415, "unsupported_format", "only JPEG and PNG images are supported", "image");
        return 415;
    }
    lk__reply_error(out, 415, "unsupported_media_type",
                    "Content-Type must be image/jpeg, image/png or multipart/form-data", "Content-Type");
    return 415;
}

bool lk__body_feed(struct lk__request *r, const char *data, size_t n)
{
    if (r->pp) {
        if (MHD_post_process(r->pp, data, n) == MHD_NO) {
            if (r->overflow || r->over_budget)
                return false;
            r->multipart_bad = true;    /* malformed framing; keep reading, answer 400 */
        }
        return true;
    }
    return lk__body_append(r, data, n);
}

void lk__body_end(struct lk__request *r)
{
    if (r->pp) {
        /* Destroying flushes the last part; MHD_NO means the body ended in
         * the middle of a part (truncated multipart). */
        if (MHD_destroy_post_processor(r->pp) == MHD_NO && !r->overflow)
            r->multipart_bad = true;
        r->pp = NULL;
        r->multipart_field[sizeof r->multipart_field - 1] = '\0';
        if (r->image_parts == 0 && !r->multipart_bad)
            r->multipart_bad = true;
    }
}

/* ==== Query parameters ================================================== */

enum qp {
    QP_K, QP_CATEGORY, QP_IN_STOCK, QP_REGION, QP_MIN_PRICE, QP_MAX_PRICE, QP_ALLOW_AGE, QP_INCLUDE_RESTRICTED,
    QP_COUNT
};
static const char *const qp_names[QP_COUNT] = {"k",         "category",  "in_stock",
                                               "region",    "min_price", "max_price",
                                               "allow_age_restricted", "include_restricted"};

struct qstate {
    struct lk__request *r;
    struct lk_search_request *req;
    bool seen[QP_COUNT];
    unsigned status;        /* 0 = fine so far */
    const char *code;
    char param[64];
    char msg[160];
};

static enum MHD_Result qfail(struct qstate *q, unsigned status, const char *code, const char *param,
                             const char *msg)
{
    q->status = status;
    q->code = code;
    snprintf(q->param, sizeof q->param, "%s", param);
    snprintf(q->msg, sizeof q->msg, "%s", msg);
    return MHD_NO;  /* stop iterating */
}

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                  const char *value, size_t value_size)
{
    struct qstate *q = cls;
    struct lk_search_request *req = q->req;
    int p = -1;
    uint64_t u;
    bool b;
    char shown[48];
    (void)kind;
    for (int i = 0; i < QP_COUNT; i++)
        if (strlen(qp_names[i]) == key_size && memcmp(qp_names[i], key, key_size) == 0)
            p = i;
    if (p < 0) {
        /* Name it (printable prefix only: it is echoed back). */
        size_t j = 0;
        for (; j < key_size && j < sizeof shown - 1; j++)
            shown[j] = (key[j] >= 0x20 && key[j] < 0x7f) ? key[j] : '?';
        shown[j] = '\0';
        return qfail(q, 400, "unknown_parameter", shown, "unknown query parameter");
    }
    if (q->seen[p])
        return qfail(q, 400, "invalid_parameter", qp_names[p], "parameter given more than once");
    q->seen[p] = true;
    if (!value)
        return qfail(q, 400, "invalid_parameter", qp_names[p], "parameter has no value");
    switch ((enum qp)p) {
    case QP_K:
        if (!lk__parse_uint(value, value_size, LK_SEARCH_K_MIN, LK_SEARCH_K_MAX, &u))
            return qfail(q, 400, "invalid_parameter", "k", "k must be an integer in 1..100");
        req->k = (uint32_t)u;
        break;
    case QP_CATEGORY:
        if (!lk__valid_category(value, value_size))
            return qfail(q, 400, "invalid_parameter", "category", "category must be 1..256 bytes of text");
        req->category = value;
        break;
    case QP_IN_STOCK:
        if (!lk__parse_bool(value, value_size, &b))
            return qfail(q, 400, "invalid_parameter", "in_stock", "in_stock must be true or false");
        req->in_stock = b ? LK_TRI_YES : LK_TRI_NO;
        break;
    case QP_REGION:
        if (!lk__valid_region(value, value_size))
            return qfail(q, 400, "invalid_parameter", "region", "region must be 1..16 characters of [A-Za-z0-9_-]");
        req->region = value;
        break;
    case QP_MIN_PRICE:
    case QP_MAX_PRICE: {
        int64_t minor;
        if (!lk__parse_price(value, value_size, &minor))
            return qfail(q, 400, "invalid_parameter", qp_names[p],
                         "price must be a non-negative decimal with at most 2 decimals, e.g. 49.90");
        if (p == QP_MIN_PRICE)
            req->min_price_minor = minor;
        else
            req->max_price_minor = minor;
        break;
    }
    case QP_ALLOW_AGE:
        if (!lk__parse_bool(value, value_size, &b))
            return qfail(q, 400, "invalid_parameter", "allow_age_restricted",
                         "allow_age_restricted must be true or false");
        req->allow_age_restricted = b;
        break;
    case QP_INCLUDE_RESTRICTED:
        if (!lk__parse_bool(value, value_size, &b))
            return qfail(q, 400, "invalid_parameter", "include_restricted", "include_restricted must be true or false");
        if (b && q->r->granted != LK__AUTH_ADMIN)
            return qfail(q, 403, "forbidden", "include_restricted", "include_restricted needs the admin token");
        req->include_restricted = b;
        break;
    case QP_COUNT:
        break;
    }
    return MHD_YES;
}

static void new_search_id(char out[LK_SEARCH_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[LK_SEARCH_ID_LEN / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* Entropy unavailable: unique enough for correlation. */
        uint64_t t = lk__now_ns();
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)(i * 131);
    }
    for (size_t i = 0; i < sizeof rnd; i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[LK_SEARCH_ID_LEN] = '\0';
}

/* Fill `req` from the query string; false with `out` set on a bad value. */
static bool parse_search_params(struct lk__request *r, struct lk_search_request *req, struct lk__reply *out)
{
    struct qstate q = {.r = r, .req = req};
    lk_search_request_init(req);
    new_search_id(req->search_id);
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, query_iter, &q);
    if (!q.status && req->min_price_minor != LK_PRICE_UNSET && req->max_price_minor != LK_PRICE_UNSET &&
        req->min_price_minor > req->max_price_minor)
        qfail(&q, 400, "invalid_parameter", "max_price", "max_price is below min_price");
    if (q.status) {
        lk__reply_error(out, q.status, q.code, q.msg, q.param);
        return false;
    }
    return true;
}

/* Routes without parameters refuse any query string. */
static enum MHD_Result no_query_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    const char **bad = cls;
    (void)kind;
    (void)value;
    *bad = key;
    return MHD_NO;
}

static bool refuse_query(struct lk__request *r, struct lk__reply *out)
{
    const char *bad = NULL;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, no_query_iter, &bad);
    if (bad) {
        lk__reply_error(out, 400, "unknown_parameter", "this route takes no query parameters", "query");
        return true;
    }
    return false;
}

/* ==== Handlers ========================================================== */

static bool not_implemented(bool missing, struct lk__reply *out)
{
    if (missing)
        lk__reply_error(out, 501, "not_implemented", "this server's backend does not implement this route", NULL);
    return missing;
}

/* Parameter blamed for a backend status on an image upload. */
static const char *image_param(int rc)
{
    switch (rc) {
    case LK_ERR_UNSUPPORTED_FORMAT:
    case LK_ERR_CORRUPT:
    case LK_ERR_TRUNCATED:
    case LK_ERR_DIMENSIONS:
    case LK_ERR_EMPTY:
    case LK_ERR_TOO_LARGE:
        return "image";
    default:
        return NULL;
    }
}

/* Serialise a search/similar response and record its metrics. */
static void answer_search(struct lk__request *r, const struct lk_search_request *req,
                          struct lk_search_response *resp, struct lk__reply *out)
{
    double upload_ms = r->t_body_ns > r->t_start_ns ? (double)(r->t_body_ns - r->t_start_ns) / 1e6 : 0.0;
    uint64_t now = lk__now_ns();
    double total_ms = (double)(now - r->t_start_ns) / 1e6;
    if (lk__json_search(out, req, resp, upload_ms, total_ms) != LK_OK) {
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
        return;
    }
    r->upload_to_result_ms = (double)(lk__now_ns() - r->t_start_ns) / 1e6;
    lk__metrics_search(r->srv->metrics, resp, r->upload_to_result_ms);
}

static void handle_search(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk_search_request req;
    struct lk_search_response resp;
    struct lk_err err = {0};
    int rc;

    if (not_implemented(!srv->be.search, out))
        return;
    if (r->multipart_bad) {
        char msg[160];
        if (r->multipart_field[0] && strcmp(r->multipart_field, "image") == 0)
            snprintf(msg, sizeof msg, "send exactly one 'image' field");
        else if (r->multipart_field[0])
            snprintf(msg, sizeof msg, "unexpected form field '%.40s' (send only 'image')", r->multipart_field);
        else if (r->image_parts == 0)
            snprintf(msg, sizeof msg, "multipart body has no 'image' field");
        else
            snprintf(msg, sizeof msg, "malformed multipart/form-data body");
        lk__reply_error(out, 400, "invalid_multipart", msg, "image");
        return;
    }
    if (!parse_search_params(r, &req, out))
        return;
    if (r->body_len == 0) {
        lk__reply_error(out, 400, "empty_input", "the request has no image (send JPEG or PNG bytes)", "image");
        return;
    }
    lk_search_response_init(&resp);
    rc = srv->be.search(srv->be.ctx, r->body, r->body_len, &req, &resp, &err);
    if (rc != LK_OK) {
        lk__reply_status(out, rc, &err, image_param(rc));
        if (lk__http_status(rc) >= 500)
            r->error_code = lk__error_code(rc);
    } else {
        answer_search(r, &req, &resp, out);
    }
    lk_search_response_free(&resp);
}

static void handle_similar(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk_search_request req;
    struct lk_search_response resp;
    struct lk_err err = {0};
    int rc;
    if (not_implemented(!srv->be.similar, out))
        return;
    if (!parse_search_params(r, &req, out))
        return;
    lk_search_response_init(&resp);
    rc = srv->be.similar(srv->be.ctx, r->param, &req, &resp, &err);
    if (rc != LK_OK)
        lk__reply_status(out, rc, &err, rc == LK_ERR_NOT_FOUND ? "sku" : NULL);
    else
        answer_search(r, &req, &resp, out);
    lk_search_response_free(&resp);
}

static void reply_perr(struct lk__reply *out, int rc, const struct lk__perr *pe)
{
    if (rc == LK_ERR_PARSE)
        lk__reply_error(out, 400, pe->code ? pe->code : "invalid_json", pe->msg, pe->param[0] ? pe->param : NULL);
    else
        lk__reply_status(out, rc, NULL, NULL);
}

static void reply_sku_status(struct lk__reply *out, unsigned status, const char *sku, const char *what)
{
    struct lk__jobj *o = lk__jobj_new();
    lk__jobj_str(o, "sku", sku);
    lk__jobj_str(o, "status", what);
    if (lk__jobj_reply(o, status, out) != LK_OK)
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
}

static void handle_item_put(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk__json_doc *doc = NULL;
    struct lk_server_item item;
    struct lk__perr pe = {0};
    struct lk_err err = {0};
    bool created = false;
    int rc;
    if (not_implemented(!srv->be.item_put, out) || refuse_query(r, out))
        return;
    rc = lk__json_parse_item(r->body, r->body_len, r->param, &doc, &item, &pe);
    if (rc != LK_OK) {
        reply_perr(out, rc, &pe);
        return;
    }
    rc = srv->be.item_put(srv->be.ctx, &item, &created, &err);
    if (rc != LK_OK)
        lk__reply_status(out, rc, &err, NULL);
    else
        reply_sku_status(out, created ? 201 : 200, item.sku, created ? "created" : "replaced");
    lk__json_doc_free(doc);
}

static void handle_item_patch(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk__json_doc *doc = NULL;
    struct lk_server_item_patch patch;
    struct lk__perr pe = {0};
    struct lk_err err = {0};
    int rc;
    if (not_implemented(!srv->be.item_patch, out) || refuse_query(r, out))
        return;
    rc = lk__json_parse_patch(r->body, r->body_len, &doc, &patch, &pe);
    if (rc != LK_OK) {
        reply_perr(out, rc, &pe);
        return;
    }
    rc = srv->be.item_patch(srv->be.ctx, r->param, &patch, &err);
    if (rc != LK_OK)
        lk__reply_status(out, rc, &err, rc == LK_ERR_NOT_FOUND ? "sku" : NULL);
    else
        reply_sku_status(out, 200, r->param, "updated");
    lk__json_doc_free(doc);
}

static void handle_item_delete(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk_err err = {0};
    int rc;
    if (not_implemented(!srv->be.item_delete, out) || refuse_query(r, out))
        return;
    rc = srv->be.item_delete(srv->be.ctx, r->param, &err);
    if (rc != LK_OK) {
        lk__reply_status(out, rc, &err, rc == LK_ERR_NOT_FOUND ? "sku" : NULL);
        return;
    }
    out->status = 204;
    out->body = NULL;
    out->len = 0;
}

static void handle_items_batch(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk__json_doc *doc = NULL;
    struct lk_server_item *items = NULL;
    struct lk__perr pe = {0};
    struct lk_err err = {0};
    struct lk_err *errs = NULL;
    int *statuses = NULL;
    size_t n = 0;
    int rc;
    if (not_implemented(!srv->be.items_batch, out) || refuse_query(r, out))
        return;
    rc = lk__json_parse_batch(r->body, r->body_len, &doc, &items, &n, &pe);
    if (rc != LK_OK) {
        reply_perr(out, rc, &pe);
        return;
    }
    statuses = calloc(n, sizeof *statuses);
    errs = calloc(n, sizeof *errs);
    if (!statuses || !errs) {
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
    } else {
        rc = srv->be.items_batch(srv->be.ctx, items, n, statuses, errs, &err);
        if (rc != LK_OK)
            lk__reply_status(out, rc, &err, NULL);
        else if (lk__json_batch_reply(out, items, n, statuses, errs) != LK_OK)
            lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
    }
    free(statuses);
    free(errs);
    lk__json_doc_free(doc);
}

static void handle_reload(struct lk__request *r, struct lk__reply *out)
{
    struct lk_err err = {0};
    struct lk__jobj *o;
    int rc;
    if (not_implemented(!r->srv->be.reload, out) || refuse_query(r, out))
        return;
    rc = lk_server_reload(r->srv, &err);
    if (rc != LK_OK) {
        lk__reply_status(out, rc, &err, NULL);
        return;
    }
    o = lk__jobj_new();
    lk__jobj_str(o, "status", "reloaded");
    if (lk__jobj_reply(o, 200, out) != LK_OK)
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
}

static void handle_events(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk_server_event ev;
    struct lk__perr pe = {0};
    struct lk_err err = {0};
    struct lk__jobj *o;
    int rc;
    if (not_implemented(!srv->be.record_event, out) || refuse_query(r, out))
        return;
    rc = lk__json_parse_event(r->body, r->body_len, (int64_t)time(NULL), &ev, &pe);
    if (rc != LK_OK) {
        reply_perr(out, rc, &pe);
        return;
    }
    rc = srv->be.record_event(srv->be.ctx, &ev, &err);
    if (rc != LK_OK) {
        lk__reply_status(out, rc, &err, NULL);
        return;
    }
    o = lk__jobj_new();
    lk__jobj_str(o, "status", "recorded");
    if (lk__jobj_reply(o, 202, out) != LK_OK)
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
}

static void handle_image(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk_err err = {0};
    void *data = NULL;
    size_t len = 0;
    const char *mime = NULL;
    int rc;
    if (not_implemented(!srv->be.image, out) || refuse_query(r, out))
        return;
    rc = srv->be.image(srv->be.ctx, r->param, &data, &len, &mime, &err);
    if (rc != LK_OK) {
        free(data);
        lk__reply_status(out, rc, &err, rc == LK_ERR_NOT_FOUND ? "image_id" : NULL);
        return;
    }
    out->status = 200;
    out->body = data;           /* malloc'ed by the backend; MHD frees it with free() */
    out->len = len;
    out->free_fn = free;
    out->content_type = mime ? mime : "application/octet-stream";
    out->cache_control = "private, max-age=300";
}

static void handle_healthz(struct lk__request *r, struct lk__reply *out)
{
    struct lk__jobj *o;
    (void)r;
    o = lk__jobj_new();
    lk__jobj_str(o, "status", "ok");
    if (lk__jobj_reply(o, 200, out) != LK_OK)
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
}

static void handle_readyz(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    struct lk_err err = {0};
    struct lk__jobj *o;
    int rc = srv->be.ready ? srv->be.ready(srv->be.ctx, &err) : LK_OK;
    if (rc != LK_OK) {
        lk__reply_error(out, 503, "not_ready", err.msg[0] ? err.msg : lk_status_str(rc), NULL);
        out->retry_after = 1;
        return;
    }
    o = lk__jobj_new();
    lk__jobj_str(o, "status", "ready");
    if (lk__jobj_reply(o, 200, out) != LK_OK)
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
}

static void handle_metrics(struct lk__request *r, struct lk__reply *out)
{
    struct lk_server *srv = r->srv;
    char small[4096], *extra = NULL, *text = NULL;
    size_t len = 0;
    if (srv->be.metrics_text) {
        size_t need = srv->be.metrics_text(srv->be.ctx, small, sizeof small);
        if (need < sizeof small) {
            extra = small;
        } else if (need < (16u << 20) && (extra = malloc(need + 1)) != NULL) {
            if (srv->be.metrics_text(srv->be.ctx, extra, need + 1) > need) {
                free(extra);
                extra = NULL;
            }
        }
    }
    if (lk__metrics_render(srv->metrics, atomic_load(&srv->inflight), atomic_load(&srv->buffered), srv->rl, extra,
                           &text, &len) != LK_OK) {
        lk__reply_error(out, 503, "out_of_memory", "out of memory", NULL);
    } else {
        out->status = 200;
        out->body = text;
        out->len = len;
        out->free_fn = free;
        out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    }
    if (extra != small)
        free(extra);
}

static void handle_static(struct lk__request *r, struct lk__reply *out)
{
    const struct lk__asset *a = find_asset(r->param);
    const char *inm;
    if (!a) {
        lk__reply_error(out, 404, "route_not_found", "no such route", NULL);
        return;
    }
    out->etag = a->etag;
    out->cache_control = "no-cache";    /* revalidate with the ETag: cheap 304s */
    inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && strcmp(inm, a->etag) == 0) {
        out->status = 304;
        out->body = NULL;
        out->len = 0;
        return;
    }
    out->status = 200;
    out->body = (char *)a->data;    /* static, lives as long as the program */
    out->len = a->len;
    out->free_fn = NULL;
    out->content_type = a->mime;
}
