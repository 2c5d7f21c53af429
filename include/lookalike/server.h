/*
 * lookalike/server.h — the HTTP API server (libmicrohttpd + cJSON).
 *
 * src/server is the only code that knows HTTP.  It knows nothing of how
 * search works: everything behind the API is reached through
 * `struct lk_server_backend`, a table of function pointers plus an opaque
 * context, which the `serve` command fills with the real search pipeline and
 * the tests fill with an in-memory fake.
 *
 * Routes (see src/server/routes.c for the full table):
 *   POST   /v1/search                 image body (image/jpeg, image/png or
 *                                     multipart/form-data field `image`)
 *   GET    /v1/items/{sku}/similar    visually similar products
 *   PUT    /v1/items/{sku}            admin: create/replace an item
 *   PATCH  /v1/items/{sku}            admin: stock/price/flags/title, live
 *   DELETE /v1/items/{sku}            admin
 *   POST   /v1/items:batch            admin: many PUTs
 *   POST   /v1/index:reload           admin: load the newest index generation
 *   POST   /v1/events                 storefront feedback (view/add_to_cart/purchase)
 *   GET    /v1/images/{image_id}      catalog image bytes (for the result grid)
 *   GET    /healthz /readyz /metrics  liveness, readiness, Prometheus text
 *   GET    / /app.js /style.css       the storefront, embedded in the binary
 *
 * Privacy: uploaded images live in memory only for the duration of their
 * request; they are never written to disk and never logged.  Logs carry the
 * method, route pattern, status, sizes and timings only.
 *
 * Errors: functions return LK_OK or a negative LK_ERR_* (lookalike/status.h)
 * and describe the failure in the caller's `struct lk_err` (may be NULL).
 */
#ifndef LOOKALIKE_SERVER_H
#define LOOKALIKE_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookalike/search_types.h"
#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Catalog items as the admin API sees them ========================== */

/* SKU syntax accepted by the API: 1..LK_HTTP_SKU_MAX characters from
 * [A-Za-z0-9._-].  Anything else (slashes, spaces, control bytes) is a 400. */
#define LK_HTTP_SKU_MAX 64

/* Item flags (bit set). */
enum lk_item_flag {
    LK_ITEM_RESTRICTED = 1u << 0,       /* never shown to shoppers (legal/brand hold) */
    LK_ITEM_AGE_RESTRICTED = 1u << 1,   /* shown only when the request allows it */
    LK_ITEM_RETIRED = 1u << 2,          /* discontinued; kept for history, never shown */
};

/* Limits of one item document, enforced by the JSON parser (400 beyond). */
#define LK_ITEM_TITLE_MAX 512       /* bytes */
#define LK_ITEM_CATEGORY_MAX 256    /* bytes, e.g. "furniture/sofas/two-seat" */
#define LK_ITEM_REGIONS_MAX 64
#define LK_ITEM_IMAGES_MAX 32
#define LK_ITEM_PATH_MAX 4096
#define LK_BATCH_MAX 10000          /* items per POST /v1/items:batch */

/*
 * A full item (PUT /v1/items/{sku}, and each element of a batch).  All
 * pointers are BORROWED from the server's parsed request and valid only for
 * the duration of the backend call; the backend copies what it keeps.
 */
struct lk_server_item {
    const char *sku;
    const char *title;
    const char *category;       /* category path, '/'-separated */
    int64_t price_minor;        /* >= 0, minor units of `currency` */
    char currency[4];           /* ISO 4217, 3 uppercase letters */
    int64_t stock;              /* >= 0 units */
    const char *const *regions; /* region codes where the item is sold; n_regions == 0 means everywhere */
    size_t n_regions;
    unsigned flags;             /* enum lk_item_flag bits */
    const char *const *images;  /* local file paths of the item's photos (read by the backend) */
    size_t n_images;
};

/* Fields of a PATCH; only those whose bit is set in `set` are changed. */
enum lk_patch_field {
    LK_PATCH_STOCK = 1u << 0,
    LK_PATCH_PRICE = 1u << 1,   /* price_minor (and currency if non-empty) */
    LK_PATCH_FLAGS = 1u << 2,   /* flags bits named in flags_mask take values from flags */
    LK_PATCH_TITLE = 1u << 3,
};

struct lk_server_item_patch {
    unsigned set;               /* enum lk_patch_field bits */
    int64_t stock;
    int64_t price_minor;
    char currency[4];           /* "" = unchanged */
    unsigned flags_mask;        /* which enum lk_item_flag bits are being changed */
    unsigned flags;             /* their new values */
    const char *title;          /* borrowed */
};

/* What a shopper did after a visual search (POST /v1/events). */
enum lk_event_type {
    LK_EVENT_VIEW = 0,
    LK_EVENT_ADD_TO_CART = 1,
    LK_EVENT_PURCHASE = 2,
};

/* Earliest timestamp accepted (2020-01-01T00:00:00Z); the latest is now + 1 day. */
#define LK_EVENT_TS_MIN INT64_C(1577836800)
#define LK_EVENT_TS_FUTURE_SLACK INT64_C(86400)

struct lk_server_event {
    char search_id[LK_SEARCH_ID_LEN + 1];   /* 32 lowercase hex digits */
    char sku[LK_HTTP_SKU_MAX + 1];
    enum lk_event_type type;
    int64_t ts;                 /* Unix epoch seconds */
};

/* ==== Backend interface ================================================= */

/*
 * Everything behind the HTTP API.  Any function pointer may be NULL: its
 * routes then answer 501 (not implemented), except `ready` (NULL = always
 * ready) and `metrics_text` (NULL = no extra metrics).
 *
 * Threading: the server calls these concurrently from its worker and job threads
 * (up to 2 x lk_server_config.threads at once), so every function must be
 * thread-safe.  `reload` is never called concurrently with itself.
 *
 * Status mapping (one table, src/server/errors.c): a returned LK_ERR_* code
 * becomes the HTTP status; e.g. LK_ERR_UNSUPPORTED_FORMAT -> 415,
 * LK_ERR_DIMENSIONS -> 422, LK_ERR_CORRUPT/TRUNCATED/EMPTY -> 400,
 * LK_ERR_TOO_LARGE -> 413, LK_ERR_NOT_FOUND -> 404, LK_ERR_EXISTS -> 409,
 * LK_ERR_STATE -> 503, others -> 500.  The message in `err` is sent to the
 * client, so it must not contain secrets or file-system internals.
 */
struct lk_server_backend {
    void *ctx;

    /* Visual search.  `image`/`len`: the encoded upload as received (never
     * stored).  Fill `resp` (initialised by the server, freed by the server
     * with lk_search_response_free even on error). */
    int (*search)(void *ctx, const void *image, size_t len, const struct lk_search_request *req,
                  struct lk_search_response *resp, struct lk_err *err);

    /* Products that look like catalog item `sku` (the item itself excluded).
     * LK_ERR_NOT_FOUND for an unknown SKU. */
    int (*similar)(void *ctx, const char *sku, const struct lk_search_request *req,
                   struct lk_search_response *resp, struct lk_err *err);

    /* Create or replace an item; set *created when it did not exist. */
    int (*item_put)(void *ctx, const struct lk_server_item *item, bool *created, struct lk_err *err);
    /* Partial update, visible to the next search.  LK_ERR_NOT_FOUND if unknown. */
    int (*item_patch)(void *ctx, const char *sku, const struct lk_server_item_patch *patch,
                      struct lk_err *err);
    /* Remove an item.  LK_ERR_NOT_FOUND if unknown. */
    int (*item_delete)(void *ctx, const char *sku, struct lk_err *err);
    /* Create or replace `n` items.  Per-item outcome in statuses[i] (LK_OK or
     * LK_ERR_*) and errs[i]; both arrays have n elements, owned by the
     * server.  Return LK_OK when the batch was processed (even if some items
     * failed) or an error for the batch as a whole. */
    int (*items_batch)(void *ctx, const struct lk_server_item *items, size_t n, int *statuses,
                       struct lk_err *errs, struct lk_err *err);

    /* Load the newest index generation / catalog without downtime. */
    int (*reload)(void *ctx, struct lk_err *err);

    /* Store a storefront event (already validated by the server). */
    int (*record_event)(void *ctx, const struct lk_server_event *ev, struct lk_err *err);

    /* LK_OK when searches can be served; LK_ERR_STATE (+ reason) while
     * loading.  Drives GET /readyz (503 when not ready). */
    int (*ready)(void *ctx, struct lk_err *err);

    /* Bytes of catalog image `image_id` (as named in search results).  On
     * LK_OK *data is malloc'ed and owned by the caller (the server frees it
     * with free()); *mime is a static string ("image/jpeg"). */
    int (*image)(void *ctx, const char *image_id, void **data, size_t *len, const char **mime,
                 struct lk_err *err);

    /* Extra Prometheus text lines (e.g. catalog size, index generation):
     * writes at most `cap` bytes including a NUL, returns the length it needs
     * (snprintf semantics). */
    size_t (*metrics_text)(void *ctx, char *buf, size_t cap);
};

/* ==== Configuration ===================================================== */

/* Bearer tokens: visible ASCII (0x21..0x7e), LK_TOKEN_MIN..LK_TOKEN_MAX
 * characters; short tokens are refused because they can be guessed. */
#define LK_TOKEN_MIN 16
#define LK_TOKEN_MAX 256

struct lk_server_tokens {
    char admin[LK_TOKEN_MAX + 1];   /* "" = admin API disabled (403) */
    char read[LK_TOKEN_MAX + 1];    /* "" = no read token configured */
};

/*
 * Load tokens from a file (if `token_file` is not NULL) or else from the
 * environment variables LOOKALIKE_ADMIN_TOKEN and LOOKALIKE_READ_TOKEN.
 * Secrets never come from the command line (visible in `ps`).
 * File format: lines `admin=TOKEN` and `read=TOKEN`; blank lines and lines
 * starting with '#' are ignored.  The file must not be accessible to group
 * or others (chmod 600).
 * Errors: LK_ERR_IO (cannot open/stat), LK_ERR_INVALID_ARG (permissions,
 * malformed line, token too short/long or with bad characters).
 */
int lk_server_tokens_load(struct lk_server_tokens *tokens, const char *token_file, struct lk_err *err);

/* Log sink: one line per request (no trailing newline), e.g.
 * `POST /v1/search 200 in=52311B out=2048B upload=1.2ms total=18.4ms`. */
typedef void (*lk_server_log_fn)(void *cls, const char *line);

/* Writes the line to stderr with a timestamp.  The default sink. */
void lk_server_log_stderr(void *cls, const char *line);

/* Tunables with DEFAULT/MIN/MAX.  Bounds exist so a typo cannot turn the
 * server into a memory sink or a thread bomb. */
#define LK_SERVER_PORT_DEFAULT 8080
#define LK_SERVER_THREADS_MAX 256
#define LK_SERVER_MAX_BODY_DEFAULT ((size_t)10 << 20)   /* 10 MiB: a phone photo is 2-6 MiB */
#define LK_SERVER_MAX_BODY_MIN ((size_t)1 << 10)
#define LK_SERVER_MAX_BODY_MAX ((size_t)256 << 20)
#define LK_SERVER_MAX_JSON_DEFAULT ((size_t)1 << 20)    /* admin/event JSON bodies */
#define LK_SERVER_TIMEOUT_DEFAULT 15        /* s idle per connection */
#define LK_SERVER_REQUEST_TIMEOUT_DEFAULT 60 /* s from first byte of a request to its last */
#define LK_SERVER_CONN_LIMIT_DEFAULT 512
#define LK_SERVER_PER_IP_LIMIT_DEFAULT 32
#define LK_SERVER_CONN_MEMORY_DEFAULT ((size_t)128 << 10) /* MHD pool: headers + read buffer */
#define LK_SERVER_RATE_RPS_DEFAULT 20.0
#define LK_SERVER_RATE_BURST_DEFAULT 40
#define LK_SERVER_GRACE_MS_DEFAULT 5000
#define LK_SERVER_BUFFERED_DEFAULT ((size_t)256 << 20) /* all request bodies in memory at once */

struct lk_server_config {
    const char *bind_address;       /* numeric IPv4/IPv6 address; default "127.0.0.1" */
    uint16_t port;                  /* default 8080; 0 = ephemeral (see lk_server_port) */
    unsigned threads;               /* libmicrohttpd I/O workers, and as many job threads for
                                     * the CPU-bound routes; 0 = number of online CPUs */
    size_t max_body_bytes;          /* image upload limit; 413 beyond */
    size_t max_json_bytes;          /* JSON body limit; 413 beyond */
    size_t max_buffered_bytes;      /* request bodies held in memory by all connections
                                       together (>= max_body_bytes); a request that would
                                       exceed it gets 503 + Retry-After, so memory stays
                                       bounded however many uploads arrive at once */
    unsigned connection_timeout_s;  /* idle connection timeout (MHD) */
    unsigned request_timeout_s;     /* a request body must arrive within this, else the
                                       connection is closed (slow-drip uploads) */
    unsigned max_connections;       /* total concurrent connections */
    unsigned max_connections_per_ip;
    size_t connection_memory_bytes; /* per-connection MHD memory pool */
    double rate_rps;                /* token refill per client IP; 0 disables rate limiting */
    unsigned rate_burst;            /* bucket size */
    unsigned rate_table_size;       /* clients remembered (bounded memory); default 8192 */
    struct lk_server_tokens tokens;
    bool search_requires_read_token;/* when true, /v1/search, similar, events, images and
                                       metrics need the read (or admin) token */
    unsigned shutdown_grace_ms;     /* how long lk_server_stop waits for in-flight requests */
    lk_server_log_fn log;           /* NULL = no request log */
    void *log_cls;
};

/* Fill `cfg` with the defaults above (tokens empty, log = lk_server_log_stderr). */
void lk_server_config_default(struct lk_server_config *cfg);

/*
 * Set one option by name from text, for flags and config files:
 * "bind" (numeric address; `value` is BORROWED and must outlive the config),
 * "port", "threads", "max_body_bytes"/"max_json_bytes"/"max_buffered_bytes"/
 * "connection_memory_bytes" (sizes: "10MiB", "512k", "1048576"),
 * "connection_timeout_s", "request_timeout_s", "max_connections",
 * "max_connections_per_ip", "rate_rps" (0 = off), "rate_burst",
 * "rate_table_size", "search_requires_read_token" (true/false),
 * "shutdown_grace_ms".  Tokens are refused (environment or token file only).
 * Errors: LK_ERR_INVALID_ARG naming the option (unknown, malformed, out of
 * range).  Cross-field checks happen in lk_server_start.
 */
int lk_server_config_set(struct lk_server_config *cfg, const char *key, const char *value, struct lk_err *err);

/* Name of the i-th settable option (NULL past the end) and a one-line help
 * text in *help (may be NULL), for `serve --help`.  Static strings. */
const char *lk_server_config_option(size_t i, const char **help);

/* ==== Life cycle ======================================================== */

struct lk_server;

/*
 * Bind and start serving.  The config is copied; `backend` is copied too,
 * but backend->ctx must outlive the server.  Worker threads are created with
 * SIGINT/SIGTERM/SIGHUP/SIGPIPE blocked so signals reach lk_server_run.
 * Errors: LK_ERR_INVALID_ARG (bad config value, named in the message),
 * LK_ERR_IO (cannot bind: address in use, permission), LK_ERR_NOMEM.
 */
int lk_server_start(const struct lk_server_config *cfg, const struct lk_server_backend *backend,
                    struct lk_server **out, struct lk_err *err);

/* The bound TCP port (the real one when the config asked for port 0). */
uint16_t lk_server_port(const struct lk_server *srv);

/*
 * Graceful stop: stop accepting, wait up to shutdown_grace_ms for in-flight
 * requests, close everything and free the server.  NULL is a no-op.  Must
 * not be called from a request handler.
 */
void lk_server_stop(struct lk_server *srv);

/*
 * Block the signals lk_server_run handles (SIGINT, SIGTERM, SIGHUP) and
 * SIGPIPE in the calling thread.  Call it at the start of main(), before
 * any thread is created, so every thread inherits the mask and the signals
 * are only ever consumed by lk_server_run.
 */
int lk_server_signals_block(struct lk_err *err);

/*
 * Serve until SIGINT/SIGTERM or lk_server_request_stop(); SIGHUP or
 * lk_server_request_reload() reloads the backend (logged, errors do not stop
 * the server).  Does not stop the server: call lk_server_stop afterwards.
 * Returns LK_OK, or an error if waiting for signals failed.
 */
int lk_server_run(struct lk_server *srv, struct lk_err *err);

/* Ask lk_server_run to return / to reload.  Async-signal-safe (an atomic
 * store), callable from any thread. */
void lk_server_request_stop(struct lk_server *srv);
void lk_server_request_reload(struct lk_server *srv);

/* Reload the backend now (serialised with other reloads).  Returns the
 * backend's status; LK_ERR_STATE when the backend has no reload. */
int lk_server_reload(struct lk_server *srv, struct lk_err *err);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_SERVER_H */
