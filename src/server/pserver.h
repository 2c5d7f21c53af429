/*
 * pserver.h — internals shared by the files of src/server (lk__ names).
 *
 *   http.c       daemon life cycle, the MHD access handler, body limits,
 *                request log, signals
 *   routes.c     route table, query-parameter validation, handlers,
 *                multipart intake, static assets
 *   errors.c     THE table mapping LK_ERR_* to HTTP statuses
 *   json.c       the only file that includes cJSON.h
 *   auth.c       bearer tokens (constant-time compare), token loading
 *   ratelimit.c  per-client token buckets in a bounded table
 *   metrics.c    counters/histograms and the Prometheus text rendering
 *   validate.c   syntax of SKUs, search ids, regions, categories, prices
 *   config.c     options by name from text (flags, config files)
 *
 * Tests include this header to reach the units directly.
 */
#ifndef LOOKALIKE_PSERVER_H
#define LOOKALIKE_PSERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "lookalike/search_types.h"
#include "lookalike/server.h"
#include "lookalike/status.h"

/* ==== Replies =========================================================== */

/*
 * A response before it becomes an MHD_Response.  `body` is either static
 * (free_fn == NULL) or heap memory released by free_fn; ownership passes to
 * libmicrohttpd in lk__reply_send, which calls free_fn once the response
 * has been sent (MHD_create_response_from_buffer_with_free_callback).
 */
struct lk__reply {
    unsigned status;
    char *body;
    size_t len;
    void (*free_fn)(void *);
    const char *content_type;   /* static string */
    const char *allow;          /* 405: Allow header (static) */
    unsigned retry_after;       /* 429/503: Retry-After seconds, 0 = none */
    bool www_authenticate;      /* 401: WWW-Authenticate: Bearer */
    const char *cache_control;  /* static, NULL = "no-store" */
    const char *etag;           /* static, NULL = none */
    const char *error_code;     /* machine code of an error reply (for the log) */
};

/* Release the body of a reply that was never sent. */
void lk__reply_discard(struct lk__reply *r);

/* ==== Routes ============================================================ */

enum lk__route_id {
    LK__R_SEARCH,
    LK__R_SIMILAR,
    LK__R_ITEM_PUT,
    LK__R_ITEM_PATCH,
    LK__R_ITEM_DELETE,
    LK__R_ITEMS_BATCH,
    LK__R_RELOAD,
    LK__R_EVENTS,
    LK__R_IMAGE,
    LK__R_HEALTHZ,
    LK__R_READYZ,
    LK__R_METRICS,
    LK__R_STATIC,
    LK__R_UNMATCHED,            /* 404/405 and requests refused before routing */
    LK__R_COUNT
};

enum lk__auth_level {
    LK__AUTH_NONE = 0,          /* public */
    LK__AUTH_READ = 1,          /* read token (or admin) when the config asks for it */
    LK__AUTH_ADMIN = 2,         /* admin token */
};

enum lk__body_kind {
    LK__BODY_NONE,              /* GET/DELETE/reload: any body is refused (413 if huge) */
    LK__BODY_IMAGE,             /* raw image or multipart, limit max_body_bytes */
    LK__BODY_JSON,              /* application/json, limit max_json_bytes */
};

struct lk__request;

struct lk__route {
    enum lk__route_id id;
    const char *method;         /* "GET", "POST", ... */
    const char *pattern;        /* "/v1/items/{sku}" — what logs and metrics show */
    enum lk__auth_level auth;
    enum lk__body_kind body;
    bool rate_limited;
    void (*handle)(struct lk__request *r, struct lk__reply *out);
};

/* Name used as the `route` label in metrics ("search", "item_put", ...). */
const char *lk__route_name(enum lk__route_id id);

#define LK__PATH_PARAM_MAX 128

/* Result of matching a method + path. */
struct lk__match {
    const struct lk__route *route;  /* NULL: not found or wrong method */
    const char *allow;              /* when the path exists but not for this method */
    char param[LK__PATH_PARAM_MAX + 1]; /* {sku} or {image_id} or asset path */
    bool param_invalid;             /* path matched but the parameter is not a valid id */
};

/* Match `method` + `url` (MHD has already split off the query string).
 * HEAD matches GET routes. */
void lk__route_match(const char *method, const char *url, struct lk__match *m);

/* ==== Per-request state ================================================= */

struct lk_server;

struct lk__request {
    struct lk_server *srv;
    struct MHD_Connection *conn;
    const struct lk__route *route;      /* NULL until matched */
    enum lk__route_id route_id;
    char method[8];
    char param[LK__PATH_PARAM_MAX + 1];
    enum lk__auth_level granted;        /* what the presented token grants */

    uint64_t t_start_ns;                /* first access-handler call (headers in) */
    uint64_t t_body_ns;                 /* body complete */

    /* Body intake.  `body` holds the decoded payload (the image for
     * multipart), never more than body_limit bytes. */
    char *body;
    size_t body_len, body_cap, body_limit;  /* body_cap is reserved in srv->buffered */
    size_t bytes_in;                    /* raw bytes received on the wire */
    bool overflow;                      /* body over the limit: answered 413 */
    bool over_budget;                   /* server-wide body budget spent: 503 */
    struct MHD_PostProcessor *pp;       /* multipart/form-data decoder */
    unsigned image_parts;               /* multipart fields named `image` */
    bool multipart_bad;                 /* unexpected field / duplicate image */
    char multipart_field[64];           /* first unexpected field name */

    bool answered;                      /* a reply was queued */
    bool aborted;                       /* connection closed by us (limit/timeout) */
    unsigned status;                    /* status sent (for the log) */
    size_t bytes_out;
    const char *error_code;             /* for the log */
    double upload_to_result_ms;         /* search/similar only, < 0 otherwise */

    /* CPU-bound routes run on the server's job threads (http.c): the
     * connection is suspended, the handler fills job_reply on a job
     * thread, the connection is resumed and the reply sent from MHD's. */
    enum { LK__JOB_NONE, LK__JOB_QUEUED, LK__JOB_DONE } job;
    struct lk__reply job_reply;
    struct lk__request *job_next;       /* job queue link */
};

/* Body intake hooks of routes.c, called by http.c.  begin: decide raw vs
 * multipart from Content-Type (returns a reply status != 0 to refuse at
 * once: 415); feed: consume `n` wire bytes (false = refuse: the body is over
 * its limit or malformed, r->overflow tells which); end: finish decoding. */
unsigned lk__body_begin(struct lk__request *r, struct lk__reply *out);
bool lk__body_feed(struct lk__request *r, const char *data, size_t n);
void lk__body_end(struct lk__request *r);

/* Append decoded payload bytes; false (and r->overflow) when the limit would
 * be exceeded, r->over_budget when the server-wide budget is spent.  Grows
 * geometrically, never beyond body_limit. */
bool lk__body_append(struct lk__request *r, const char *data, size_t n);

/* Reserve / release `n` bytes of the server-wide body budget
 * (cfg.max_buffered_bytes).  Reserve fails (false) rather than exceed it. */
bool lk__budget_reserve(struct lk_server *srv, size_t n);
void lk__budget_release(struct lk_server *srv, size_t n);

/* ==== The server object ================================================= */

struct lk__metrics;
struct lk__ratelimit;
struct lk__conn;                        /* http.c: a connection, for the header deadline */

struct lk_server {
    struct lk_server_config cfg;
    char bind_address[64];              /* cfg.bind_address points here */
    struct lk_server_backend be;
    struct MHD_Daemon *daemon;
    uint16_t port;
    struct lk__ratelimit *rl;           /* NULL when rate limiting is off */
    struct lk__metrics *metrics;
    pthread_mutex_t reload_lock;        /* serialises backend reloads */
    atomic_int stop_requested;
    atomic_int reload_requested;
    atomic_long inflight;               /* requests between first call and completion */
    atomic_size_t buffered;             /* body bytes reserved by all requests (budget) */

    /* Header deadline (http.c): open connections and the watchdog thread
     * that cuts those whose request head is overdue (slowloris). */
    pthread_mutex_t conn_mu;            /* guards conns and watchdog_stop */
    pthread_cond_t conn_cv;
    struct lk__conn *conns;
    pthread_t watchdog;
    bool watchdog_started, watchdog_stop;
    atomic_uint_fast64_t header_timeouts;   /* connections cut for slow headers */

    /* Job threads for CPU-bound routes (search, similar, item writes that
     * embed images): one FIFO queue, cfg.threads threads. */
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv;
    struct lk__request *job_head, *job_tail;
    pthread_t *job_threads;
    unsigned n_job_threads;             /* set before the daemon starts, then constant */
    bool job_stop;                      /* under job_mu */
    bool jobs_joined;                   /* lk_server_stop's thread only */
};

/* Monotonic clock in nanoseconds. */
uint64_t lk__now_ns(void);

/* ==== Errors (errors.c) ================================================= */

/* HTTP status for an LK_ERR_* code (500 for unknown codes). */
unsigned lk__http_status(int lk_code);
/* Stable machine-readable code for an LK_ERR_* ("unsupported_format"). */
const char *lk__error_code(int lk_code);

/*
 * Turn a backend failure into an error reply: status from the table, the
 * backend message for 4xx, a generic message for 5xx (details stay in the
 * log), `param` named when given.  Always fills `out` (falls back to a static
 * body when out of memory).
 */
void lk__reply_status(struct lk__reply *out, int lk_code, const struct lk_err *err, const char *param);
/* Error reply with an explicit HTTP status and code. */
void lk__reply_error(struct lk__reply *out, unsigned http, const char *code, const char *message,
                     const char *param);

/* ==== JSON (json.c, the only user of cJSON) ============================= */

/* Free a string produced by json.c (cJSON's allocator). */
void lk__json_free(void *p);

/* {"error":{"code":..,"message":..,"param":..}} into `out` (status set).
 * Returns LK_OK or LK_ERR_NOMEM (out untouched). */
int lk__json_error(struct lk__reply *out, unsigned http, const char *code, const char *message,
                   const char *param);

/* Serialise a search/similar response; timings get the server's "upload"
 * and "total" stages appended. */
int lk__json_search(struct lk__reply *out, const struct lk_search_request *req,
                    const struct lk_search_response *resp, double upload_ms, double total_ms);

/* Small flat JSON objects for status replies. */
struct lk__jobj;
struct lk__jobj *lk__jobj_new(void);
void lk__jobj_str(struct lk__jobj *o, const char *key, const char *value);
void lk__jobj_int(struct lk__jobj *o, const char *key, int64_t value);
void lk__jobj_bool(struct lk__jobj *o, const char *key, bool value);
/* Print `o` into `out` with `status` and free `o` (always).  LK_OK/NOMEM. */
int lk__jobj_reply(struct lk__jobj *o, unsigned status, struct lk__reply *out);
void lk__jobj_free(struct lk__jobj *o);

/* Batch outcome: {"accepted":N,"failed":M,"errors":[{"index":i,"sku":..,
 * "error":{"code":..,"message":..}}]} (invalid items found by the parser
 * carry their own per-item errors in `statuses`/`errs`). */
int lk__json_batch_reply(struct lk__reply *out, const struct lk_server_item *items, size_t n,
                         const int *statuses, const struct lk_err *errs);

/* Why a JSON body was refused: machine code, the offending field and a
 * message (for a 400 naming the parameter). */
struct lk__perr {
    const char *code;           /* "invalid_json", "invalid_parameter", "unknown_field" ... */
    char param[64];
    char msg[192];
};

/* Parsed JSON document that owns the strings borrowed by the item structs. */
struct lk__json_doc;
void lk__json_doc_free(struct lk__json_doc *doc);

/* Strict parsers: unknown fields, wrong types, duplicate keys, out-of-range
 * values are errors (LK_ERR_PARSE with `pe` filled).  `now` (epoch seconds)
 * bounds event timestamps. */
int lk__json_parse_event(const char *body, size_t len, int64_t now, struct lk_server_event *ev,
                         struct lk__perr *pe);
/* `path_sku` is the {sku} of the URL; a "sku" field in the body must match it. */
int lk__json_parse_item(const char *body, size_t len, const char *path_sku,
                        struct lk__json_doc **doc, struct lk_server_item *item, struct lk__perr *pe);
int lk__json_parse_patch(const char *body, size_t len, struct lk__json_doc **doc,
                         struct lk_server_item_patch *patch, struct lk__perr *pe);
/* {"items":[item, ...]}: every item must be valid (the first invalid one is
 * reported with its index in pe->param, e.g. "items[3].price"). */
int lk__json_parse_batch(const char *body, size_t len, struct lk__json_doc **doc,
                         struct lk_server_item **items, size_t *n, struct lk__perr *pe);

/* ==== Validation (validate.c) =========================================== */

bool lk__valid_sku(const char *s, size_t len);
bool lk__valid_search_id(const char *s, size_t len);
bool lk__valid_region(const char *s, size_t len);       /* [A-Za-z0-9_-]{1,16} */
bool lk__valid_category(const char *s, size_t len);     /* printable UTF-8, 1..LK_ITEM_CATEGORY_MAX */
bool lk__valid_image_id(const char *s, size_t len);     /* [A-Za-z0-9._-]{1,128} */
bool lk__valid_utf8_text(const char *s, size_t len);    /* UTF-8 without control characters */
/* Decimal price "12", "12.5", "12.50" (at most 2 decimals, at most 12 integer
 * digits) to minor units.  False on anything else. */
bool lk__parse_price(const char *s, size_t len, int64_t *minor);
/* Unsigned decimal integer without sign/space, value in [lo, hi]. */
bool lk__parse_uint(const char *s, size_t len, uint64_t lo, uint64_t hi, uint64_t *out);
/* "true"/"false"/"1"/"0". */
bool lk__parse_bool(const char *s, size_t len, bool *out);

/* ==== Auth (auth.c) ===================================================== */

/* Constant-time equality of a configured token and a presented one: the
 * time depends only on the configured token's length. */
bool lk__token_equal(const char *expected, const char *given, size_t given_len);

/*
 * Decide access for a route needing `required` given the Authorization
 * header (NULL if absent).  Returns 0 when allowed (and sets *granted to
 * what the token grants, LK__AUTH_NONE without a token), or 401/403 with
 * *msg set to a static explanation.  Public routes also refuse a presented
 * token that is wrong (403), so a misconfigured client fails loudly.
 */
unsigned lk__auth_decide(const struct lk_server_tokens *t, enum lk__auth_level required,
                         const char *authorization, enum lk__auth_level *granted, const char **msg);

/* ==== Rate limit (ratelimit.c) ========================================== */

#define LK__RL_TABLE_DEFAULT 8192
#define LK__RL_TABLE_MAX (1u << 22)

/* `rps` tokens per second refill, `burst` bucket size, `capacity` clients
 * remembered (rounded up to a multiple of the associativity). */
int lk__ratelimit_new(double rps, unsigned burst, unsigned capacity, struct lk__ratelimit **out);
void lk__ratelimit_free(struct lk__ratelimit *rl);
/* Take one token for the client at `addr` at time `now_ns`.  True when
 * allowed; otherwise *retry_after_s is the whole seconds until a token. */
bool lk__ratelimit_take(struct lk__ratelimit *rl, const struct sockaddr *addr, uint64_t now_ns,
                        unsigned *retry_after_s);
/* Clients currently tracked (<= capacity) and evictions so far. */
size_t lk__ratelimit_tracked(struct lk__ratelimit *rl);
uint64_t lk__ratelimit_evictions(struct lk__ratelimit *rl);
size_t lk__ratelimit_capacity(const struct lk__ratelimit *rl);

/* ==== Metrics (metrics.c) =============================================== */

int lk__metrics_new(struct lk__metrics **out);
void lk__metrics_free(struct lk__metrics *m);
/* One finished request. */
void lk__metrics_request(struct lk__metrics *m, enum lk__route_id route, unsigned status,
                         double total_ms, size_t bytes_in);
/* One answered search/similar: result count, bands, fallback, stage timings
 * and the upload-to-result latency. */
void lk__metrics_search(struct lk__metrics *m, const struct lk_search_response *resp,
                        double upload_to_result_ms);
void lk__metrics_rate_limited(struct lk__metrics *m);
/* Render the Prometheus text exposition (format 0.0.4) into a malloc'ed
 * string (*out, freed with free()).  `extra` (may be NULL) is appended. */
int lk__metrics_render(struct lk__metrics *m, long inflight, size_t buffered, struct lk__ratelimit *rl,
                       const char *extra, char **out, size_t *len);

/* ==== Embedded storefront (generated www_assets.c) ====================== */

struct lk__asset {
    const char *path;           /* "/", "/app.js", ... */
    const char *mime;
    const unsigned char *data;
    size_t len;
    const char *etag;           /* quoted content hash */
};
extern const struct lk__asset lk__assets[];
extern const size_t lk__assets_count;

#endif /* LOOKALIKE_PSERVER_H */
