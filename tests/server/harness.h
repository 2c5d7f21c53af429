/*
 * harness.h — test helpers: start the real server on 127.0.0.1 with an
 * ephemeral port and the fake backend, and talk HTTP to it with libcurl
 * (or a raw socket where curl would be too polite).  Loopback only.
 */
#ifndef LK_TEST_HARNESS_H
#define LK_TEST_HARNESS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "fake_backend.h"
#include "lookalike/server.h"

#define TH_ADMIN "admin-token-0123456789abcdef"
#define TH_READ "read-token-0123456789abcdef"

struct th_resp {
    long status;            /* 0 when no HTTP response arrived */
    int curl_rc;            /* CURLcode */
    char *body;
    size_t len;
    double uploaded;        /* request body bytes curl managed to send */
    char retry_after[32];
    char allow[64];
    char www_auth[96];
    char content_type[96];
    char etag[64];
    char csp[256];
    char connection[32];
};

struct th_server {
    struct lk_server *srv;
    struct fake_backend fb;
    unsigned short port;
};

/* Log lines captured from the server (process-wide): a malloc'ed copy. */
char *th_log_copy(void);
/* Wait until the captured log contains `needle` (lines are written when a
 * request completes, just after its response was sent). */
bool th_log_wait(const char *needle, int timeout_ms);

/* Start with test defaults (port 0, 2 threads, tokens TH_ADMIN/TH_READ,
 * rate limit off, 1 MiB body limit, log captured), then `tweak` (may be NULL). */
void th_start(struct th_server *ts, void (*tweak)(struct lk_server_config *cfg));
void th_stop(struct th_server *ts);

/* One request.  `headers`: NULL-terminated "Name: value" list or NULL. */
void th_req(struct th_server *ts, const char *method, const char *path, const char *const *headers,
            const void *body, size_t len, struct th_resp *r);
/* multipart/form-data POST with the given fields (name, data, len, mime). */
struct th_part {
    const char *name;
    const void *data;
    size_t len;
    const char *mime;
};
void th_multipart(struct th_server *ts, const char *path, const struct th_part *parts, size_t n, struct th_resp *r);
void th_resp_free(struct th_resp *r);

/* Parse the body as JSON (criterion-asserts it parses).  cJSON_Delete it. */
cJSON *th_json(const struct th_resp *r);
/* error.param / error.code of an error body ("" if absent). */
const char *th_err_param(const struct th_resp *r, char *buf, size_t cap);
const char *th_err_code(const struct th_resp *r, char *buf, size_t cap);

/* GET /metrics until every string of the NULL-terminated `needles` is in
 * it or `timeout_ms` passed (requests are counted when they complete, just
 * after their response was sent).  Returns the last body; free() it. */
char *th_metrics_until(struct th_server *ts, const char *const *needles, int timeout_ms);

/* Raw TCP connection to the server (blocking, with receive timeout in ms). */
int th_connect(struct th_server *ts, int recv_timeout_ms);
/* Read until EOF/timeout; returns bytes read (-1 if nothing and error). */
long th_read_all(int fd, char *buf, size_t cap);

#endif
