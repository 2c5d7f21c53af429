/*
 * test_http.c — the transport: body limits enforced while reading, slow
 * clients, rate limiting, read-token mode, connection limits, concurrency,
 * life cycle (ephemeral port, bind errors, run/reload/stop), and the server
 * still healthy after the abuse.  Real server on loopback, fake backend.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "test_images.h"

static const char *const JPEG_CT[] = {"Content-Type: image/jpeg", NULL};

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void expect_healthy(struct th_server *ts)
{
    struct th_resp r;
    th_req(ts, "GET", "/healthz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "server must stay healthy");
    th_resp_free(&r);
    th_req(ts, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 200, "search must still work");
    th_resp_free(&r);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ==== Body limits ======================================================= */

Test(http, content_length_over_limit_is_413_before_the_body)
{
    struct th_server ts;
    char buf[4096];
    const char req[] = "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                       "Content-Length: 52428800\r\n\r\n";
    int fd;
    long n;
    th_start(&ts, NULL);
    /* Raw socket: send only the headers.  The answer must come without a
     * single body byte sent. */
    fd = th_connect(&ts, 5000);
    send_all(fd, req, sizeof req - 1);
    n = th_read_all(fd, buf, sizeof buf);
    close(fd);
    cr_assert_gt(n, 0, "no response");
    cr_assert(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "\"code\":\"payload_too_large\""), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"param\":\"image\""), "%s", buf);
    expect_healthy(&ts);
    th_stop(&ts);
}

Test(http, raw_body_just_over_the_limit_is_413_at_once)
{
    struct th_server ts;
    char buf[4096];
    char req[256];
    int fd;
    th_start(&ts, NULL);
    /* 1 MiB + 1 byte: no multipart allowance for a raw image body. */
    snprintf(req, sizeof req, "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                              "Content-Length: %u\r\n\r\n", (1u << 20) + 1);
    fd = th_connect(&ts, 5000);
    send_all(fd, req, strlen(req));
    th_read_all(fd, buf, sizeof buf);
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
    th_stop(&ts);
}

static void small_budget(struct lk_server_config *cfg)
{
    cfg->max_buffered_bytes = 2u << 20;     /* two max-size uploads */
}

Test(http, body_budget_bounds_memory_across_connections)
{
    struct th_server ts;
    char buf[4096];
    const char req[] = "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                       "Content-Length: 1000000\r\n\r\n\xff\xd8\xff";
    int a, b, c;
    th_start(&ts, small_budget);
    /* Two uploads in progress reserve ~1.9 MiB of the 2 MiB budget... */
    a = th_connect(&ts, 3000);
    send_all(a, req, sizeof req - 1);
    b = th_connect(&ts, 3000);
    send_all(b, req, sizeof req - 1);
    {
        static const char *const want[] = {"lookalike_http_buffered_bytes 2000000\n", NULL};
        char *body = th_metrics_until(&ts, want, 2000);
        cr_assert_not_null(strstr(body, want[0]), "%s", body);
        free(body);
    }
    /* ...so a third is told to come back, instead of growing memory. */
    c = th_connect(&ts, 3000);
    send_all(c, req, sizeof req - 1);
    th_read_all(c, buf, sizeof buf);
    close(c);
    cr_assert(strncmp(buf, "HTTP/1.1 503", 12) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "Retry-After: 1"), "%s", buf);
    cr_assert_not_null(strstr(buf, "server_busy"), "%s", buf);
    close(a);
    close(b);
    {
        static const char *const want[] = {"lookalike_http_buffered_bytes 0\n", NULL};
        char *body = th_metrics_until(&ts, want, 3000);
        cr_assert_not_null(strstr(body, want[0]), "budget released when the uploads go away: %s", body);
        free(body);
    }
    expect_healthy(&ts);
    th_stop(&ts);
}

Test(http, curl_upload_over_limit_is_refused_without_uploading)
{
    struct th_server ts;
    struct th_resp r;
    size_t big = 3u << 20;      /* limit is 1 MiB */
    char *body = malloc(big);
    cr_assert_not_null(body);
    memcpy(body, lk_test_jpeg, sizeof lk_test_jpeg);
    memset(body + sizeof lk_test_jpeg, 0x5a, big - sizeof lk_test_jpeg);
    th_start(&ts, NULL);
    th_req(&ts, "POST", "/v1/search", JPEG_CT, body, big, &r);
    cr_assert_eq(r.status, 413, "status %ld curl %d", r.status, r.curl_rc);
    cr_assert_lt(r.uploaded, (double)big, "the server must not take the whole body (uploaded %.0f)", r.uploaded);
    th_resp_free(&r);
    expect_healthy(&ts);
    th_stop(&ts);
    free(body);
}

Test(http, chunked_body_over_limit_is_cut_off)
{
    struct th_server ts;
    static const char *const chunked[] = {"Content-Type: image/jpeg", "Transfer-Encoding: chunked", NULL};
    struct th_resp r;
    size_t big = 8u << 20;
    char *body = malloc(big);
    cr_assert_not_null(body);
    memset(body, 0x5a, big);
    memcpy(body, lk_test_jpeg, sizeof lk_test_jpeg);
    th_start(&ts, NULL);
    th_req(&ts, "POST", "/v1/search", chunked, body, big, &r);
    /* libmicrohttpd 0.9.75 cannot answer in the middle of a body, so the
     * server closes the connection as soon as the limit is passed. */
    cr_assert(r.status == 413 || r.curl_rc != CURLE_OK, "status %ld curl %d", r.status, r.curl_rc);
    cr_assert_neq(r.status, 200);
    cr_assert_lt(r.uploaded, (double)big, "reading stopped early (uploaded %.0f)", r.uploaded);
    th_resp_free(&r);
    {
        static const char *const want[] = {"lookalike_http_requests_total{route=\"search\",status=\"413\"} 1\n", NULL};
        char *body = th_metrics_until(&ts, want, 2000);
        cr_assert_not_null(strstr(body, want[0]), "%s", body);
        free(body);
    }
    expect_healthy(&ts);
    th_stop(&ts);
    free(body);
}

Test(http, json_and_bodyless_routes_have_their_own_limits)
{
    struct th_server ts;
    struct th_resp r;
    static const char *const json[] = {"Content-Type: application/json", NULL};
    size_t big = (1u << 20) + 10;   /* max_json_bytes default is 1 MiB */
    char *body = malloc(big);
    cr_assert_not_null(body);
    memset(body, ' ', big);
    th_start(&ts, NULL);
    th_req(&ts, "POST", "/v1/events", json, body, big, &r);
    cr_assert_eq(r.status, 413);
    th_resp_free(&r);
    th_req(&ts, "GET", "/healthz", NULL, "abc", 3, &r);
    cr_assert_eq(r.status, 413, "GET with a body");
    th_resp_free(&r);
    expect_healthy(&ts);
    th_stop(&ts);
    free(body);
}

/* ==== Slow clients ====================================================== */

static void short_timeouts(struct lk_server_config *cfg)
{
    cfg->connection_timeout_s = 1;
    cfg->request_timeout_s = 2;
}

Test(http, idle_client_is_disconnected, .timeout = 30)
{
    struct th_server ts;
    char buf[512];
    double t0;
    int fd;
    long n;
    th_start(&ts, short_timeouts);
    fd = th_connect(&ts, 10000);
    send_all(fd, "GET /heal", 9);   /* half a request line, then silence */
    t0 = now_s();
    n = th_read_all(fd, buf, sizeof buf);
    close(fd);
    cr_assert_eq(n, 0, "closed without a response: %s", buf);
    cr_assert_lt(now_s() - t0, 8.0, "closed by the idle timeout, not the test's");
    expect_healthy(&ts);
    th_stop(&ts);
}

Test(http, slow_drip_body_is_cut_off, .timeout = 30)
{
    struct th_server ts;
    char buf[512];
    const char req[] = "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n";
    double t0;
    int fd;
    bool closed = false;
    th_start(&ts, short_timeouts);
    fd = th_connect(&ts, 300);
    send_all(fd, req, sizeof req - 1);
    t0 = now_s();
    /* One byte every 0.3 s: never idle for a whole second, but the request
     * as a whole must not outlive request_timeout_s (2 s). */
    while (now_s() - t0 < 8.0) {
        ssize_t got;
        if (send(fd, "\xff", 1, MSG_NOSIGNAL) <= 0) {
            closed = true;
            break;
        }
        got = recv(fd, buf, sizeof buf, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            closed = true;
            break;
        }
    }
    close(fd);
    cr_assert(closed, "a dripping client must be disconnected");
    cr_assert_lt(now_s() - t0, 6.0);
    expect_healthy(&ts);
    th_stop(&ts);
}

/* Slowloris: request headers dripped one byte at a time, never idle for a
 * whole connection_timeout_s.  MHD's idle timeout never fires and the access
 * handler is never called, so only the header deadline can end it (found by
 * bench/soak: such a client held its connection forever).  Keep-alive is
 * covered too: a second head dripped after a completed request. */
static bool drip_headers_until_closed(int fd, double limit_s)
{
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    char buf[512];
    double t0 = now_s();
    size_t i = 0;
    while (now_s() - t0 < limit_s) {
        char b = i < sizeof head - 1 ? head[i] : "X-a: b\r\n"[(i - (sizeof head - 1)) % 8];
        ssize_t got;
        if (send(fd, &b, 1, MSG_NOSIGNAL) <= 0)
            return true;
        i++;
        got = recv(fd, buf, sizeof buf, 0);     /* SO_RCVTIMEO 300 ms: the pace */
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
    return false;
}

Test(http, slow_drip_headers_are_cut_off, .timeout = 30)
{
    struct th_server ts;
    double t0;
    int fd;
    th_start(&ts, short_timeouts);
    fd = th_connect(&ts, 300);
    t0 = now_s();
    cr_assert(drip_headers_until_closed(fd, 8.0), "a client dripping headers must be disconnected");
    cr_assert_lt(now_s() - t0, 6.0, "closed by the header deadline (connection_timeout_s = 1)");
    close(fd);

    /* Keep-alive: one complete request, then a dripped second head. */
    fd = th_connect(&ts, 300);
    {
        static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        char buf[512];
        send_all(fd, req, sizeof req - 1);
        ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
        cr_assert_gt(got, 0, "the first request is answered");
        buf[got] = '\0';
        cr_assert(strstr(buf, " 200 ") != NULL, "%s", buf);
    }
    t0 = now_s();
    cr_assert(drip_headers_until_closed(fd, 8.0), "a dripped second head must be cut off too");
    cr_assert_lt(now_s() - t0, 6.0);
    close(fd);
    expect_healthy(&ts);
    th_stop(&ts);
}

/* ==== Rate limiting ===================================================== */

static void limited(struct lk_server_config *cfg)
{
    cfg->rate_rps = 0.5;
    cfg->rate_burst = 3;
}

Test(http, rate_limit_429_with_retry_after)
{
    struct th_server ts;
    struct th_resp r;
    static const char *const admin[] = {"Content-Type: image/jpeg", "Authorization: Bearer " TH_ADMIN, NULL};
    th_start(&ts, limited);
    for (int i = 0; i < 3; i++) {
        th_req(&ts, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
        cr_assert_eq(r.status, 200, "request %d within the burst", i);
        th_resp_free(&r);
    }
    th_req(&ts, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 429);
    cr_assert(atoi(r.retry_after) >= 1 && atoi(r.retry_after) <= 2, "Retry-After: '%s'", r.retry_after);
    th_resp_free(&r);
    /* Health checks and the admin token are not throttled. */
    th_req(&ts, "GET", "/healthz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", admin, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
    {
        static const char *const want[] = {"lookalike_rate_limited_total 1\n",
                                           "lookalike_http_requests_total{route=\"search\",status=\"429\"} 1\n", NULL};
        char *body = th_metrics_until(&ts, want, 2000);
        cr_assert_not_null(strstr(body, want[0]), "%s", body);
        cr_assert_not_null(strstr(body, want[1]), "%s", body);
        free(body);
    }
    th_stop(&ts);
}

/* ==== Read token mode =================================================== */

static void read_protected(struct lk_server_config *cfg)
{
    cfg->search_requires_read_token = true;
}

Test(http, read_token_mode)
{
    struct th_server ts;
    struct th_resp r;
    static const char *const with_read[] = {"Content-Type: image/jpeg", "Authorization: Bearer " TH_READ, NULL};
    static const char *const with_wrong[] = {"Content-Type: image/jpeg", "Authorization: Bearer not-the-token-000000", NULL};
    th_start(&ts, read_protected);
    th_req(&ts, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 401);
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", with_wrong, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 403);
    th_resp_free(&r);
    th_req(&ts, "POST", "/v1/search", with_read, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 200);
    th_resp_free(&r);
    th_req(&ts, "GET", "/metrics", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 401);
    th_resp_free(&r);
    th_req(&ts, "GET", "/healthz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "health stays public");
    th_resp_free(&r);
    th_req(&ts, "GET", "/", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "storefront stays public");
    th_resp_free(&r);
    th_stop(&ts);
}

/* ==== Abuse at the connection level ===================================== */

Test(http, oversized_headers_and_garbage_do_not_hurt)
{
    struct th_server ts;
    char *huge = malloc(300000);
    char buf[2048];
    int fd;
    cr_assert_not_null(huge);
    th_start(&ts, NULL);
    /* 300 kB of header: over the per-connection memory pool. */
    fd = th_connect(&ts, 5000);
    strcpy(huge, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + strlen(huge), 'a', 299000 - strlen(huge));
    memcpy(huge + 299000, "\r\n\r\n", 5);
    send_all(fd, huge, strlen(huge));
    th_read_all(fd, buf, sizeof buf);
    close(fd);
    cr_assert(buf[0] == '\0' || strncmp(buf, "HTTP/1.1 431", 12) == 0 || strncmp(buf, "HTTP/1.1 413", 12) == 0 ||
                  strncmp(buf, "HTTP/1.1 400", 12) == 0,
              "%.60s", buf);
    /* Binary garbage instead of HTTP. */
    fd = th_connect(&ts, 5000);
    send_all(fd, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15);
    th_read_all(fd, buf, sizeof buf);
    close(fd);
    cr_assert(buf[0] == '\0' || strncmp(buf, "HTTP/1.1 400", 12) == 0, "%.60s", buf);
    /* Conflicting Content-Length headers (request smuggling shape). */
    fd = th_connect(&ts, 5000);
    send_all(fd, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
                 "Content-Length: 50\r\n\r\n{}{}{", 113);
    th_read_all(fd, buf, sizeof buf);
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 202", 12) != 0, "%.60s", buf);
    expect_healthy(&ts);
    th_stop(&ts);
    free(huge);
}

static void few_connections(struct lk_server_config *cfg)
{
    cfg->max_connections = 8;
    cfg->max_connections_per_ip = 3;
}

Test(http, per_ip_connection_limit)
{
    struct th_server ts;
    int fds[3], extra;
    char buf[256];
    long n;
    th_start(&ts, few_connections);
    for (int i = 0; i < 3; i++)
        fds[i] = th_connect(&ts, 2000);
    usleep(200000);     /* let the server accept them */
    extra = th_connect(&ts, 2000);
    send_all(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35);
    n = th_read_all(extra, buf, sizeof buf);
    close(extra);
    cr_assert(n <= 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0, "4th connection from one IP must be refused: %s", buf);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    usleep(200000);
    expect_healthy(&ts);
    th_stop(&ts);
}

/* ==== Concurrency ======================================================= */

struct worker {
    struct th_server *ts;
    int ok;
};

static void *search_worker(void *p)
{
    struct worker *w = p;
    for (int i = 0; i < 15; i++) {
        struct th_resp r;
        th_req(w->ts, "POST", "/v1/search?k=3", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
        w->ok += r.status == 200;
        th_resp_free(&r);
    }
    return NULL;
}

Test(http, concurrent_searches)
{
    struct th_server ts;
    pthread_t th[8];
    struct worker w[8];
    int total = 0;
    th_start(&ts, NULL);
    for (int i = 0; i < 8; i++) {
        w[i].ts = &ts;
        w[i].ok = 0;
        cr_assert_eq(pthread_create(&th[i], NULL, search_worker, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }
    cr_assert_eq(total, 8 * 15);
    cr_assert_eq(ts.fb.searches, 8 * 15);
    th_stop(&ts);
}

/* ==== Life cycle ======================================================== */

Test(http, bind_errors_and_bad_config)
{
    struct th_server ts;
    struct lk_server_config cfg;
    struct lk_server_backend be = {0};
    struct lk_server *srv = NULL;
    struct lk_err err = {0};
    th_start(&ts, NULL);

    lk_server_config_default(&cfg);
    cfg.log = NULL;
    cfg.port = ts.port;     /* taken */
    cr_assert_eq(lk_server_start(&cfg, &be, &srv, &err), LK_ERR_IO);
    cr_assert_null(srv);
    cr_assert_neq(err.msg[0], '\0');

    lk_server_config_default(&cfg);
    cfg.log = NULL;
    cfg.bind_address = "localhost";
    cr_assert_eq(lk_server_start(&cfg, &be, &srv, &err), LK_ERR_INVALID_ARG);
    lk_server_config_default(&cfg);
    cfg.log = NULL;
    cfg.max_body_bytes = 10;
    cr_assert_eq(lk_server_start(&cfg, &be, &srv, &err), LK_ERR_INVALID_ARG);
    cr_assert_not_null(strstr(err.msg, "max_body_bytes"));
    lk_server_config_default(&cfg);
    cfg.log = NULL;
    cfg.search_requires_read_token = true;
    cr_assert_eq(lk_server_start(&cfg, &be, &srv, &err), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_server_start(NULL, &be, &srv, &err), LK_ERR_INVALID_ARG);
    lk_server_stop(NULL);
    th_stop(&ts);
}

Test(http, ipv6_loopback_and_empty_backend)
{
    struct lk_server_config cfg;
    struct lk_server_backend be = {0};     /* nothing implemented */
    struct lk_server *srv = NULL;
    struct lk_err err = {0};
    struct th_server fake = {0};
    struct th_resp r;
    lk_server_config_default(&cfg);
    cfg.log = NULL;
    cfg.port = 0;
    cfg.threads = 1;
    if (lk_server_start(&cfg, &be, &srv, &err) != LK_OK)
        cr_assert_fail("start: %s", err.msg);
    fake.port = lk_server_port(srv);
    th_req(&fake, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    cr_assert_eq(r.status, 501);
    th_resp_free(&r);
    th_req(&fake, "GET", "/readyz", NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "no ready() means ready");
    th_resp_free(&r);
    th_req(&fake, "PUT", "/v1/items/X", NULL, "{}", 2, &r);
    cr_assert_eq(r.status, 403, "admin API disabled without an admin token");
    th_resp_free(&r);
    lk_server_stop(srv);

    cfg.bind_address = "::1";
    if (lk_server_start(&cfg, &be, &srv, &err) == LK_OK) {    /* IPv6 may be off in a container */
        cr_assert_neq(lk_server_port(srv), 0);
        lk_server_stop(srv);
    }
}

struct runner {
    struct lk_server *srv;
    int rc;
};

static void *run_thread(void *p)
{
    struct runner *rn = p;
    struct lk_err err = {0};
    rn->rc = lk_server_run(rn->srv, &err);
    return NULL;
}

Test(http, run_reload_and_stop)
{
    struct th_server ts;
    struct runner rn;
    pthread_t th;
    th_start(&ts, NULL);
    rn.srv = ts.srv;
    rn.rc = -1;
    cr_assert_eq(pthread_create(&th, NULL, run_thread, &rn), 0);
    lk_server_request_reload(ts.srv);
    for (int i = 0; i < 100; i++) {
        int n;
        pthread_mutex_lock(&ts.fb.lock);
        n = ts.fb.reloads;
        pthread_mutex_unlock(&ts.fb.lock);
        if (n)
            break;
        usleep(20000);
    }
    cr_assert_eq(ts.fb.reloads, 1, "reload requested -> backend reloaded");
    /* SIGHUP, sent to the thread running lk_server_run, does the same. */
    pthread_kill(th, SIGHUP);
    for (int i = 0; i < 100 && ts.fb.reloads < 2; i++)
        usleep(20000);
    cr_assert_eq(ts.fb.reloads, 2, "SIGHUP -> reload");
    expect_healthy(&ts);
    lk_server_request_stop(ts.srv);
    pthread_join(th, NULL);
    cr_assert_eq(rn.rc, LK_OK);
    th_stop(&ts);
}

Test(http, many_requests_then_healthy)
{
    /* A mixed burst of every refusal on one server, then a normal search. */
    struct th_server ts;
    struct th_resp r;
    static const char *const gif_ct[] = {"Content-Type: image/gif", NULL};
    th_start(&ts, NULL);
    for (int i = 0; i < 20; i++) {
        th_req(&ts, "POST", "/v1/search?k=0", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
        cr_assert_eq(r.status, 400);
        th_resp_free(&r);
        th_req(&ts, "POST", "/v1/search", gif_ct, "GIF89a", 6, &r);
        cr_assert_eq(r.status, 415);
        th_resp_free(&r);
        th_req(&ts, "PUT", "/v1/items/X", NULL, "{}", 2, &r);
        cr_assert_eq(r.status, 401);
        th_resp_free(&r);
        th_req(&ts, "GET", "/nope", NULL, NULL, 0, &r);
        cr_assert_eq(r.status, 404);
        th_resp_free(&r);
    }
    expect_healthy(&ts);
    /* Completion callbacks run just after the response is sent, so give
     * the previous request a moment to be counted out. */
    bool settled = false;
    for (int i = 0; i < 50 && !settled; i++) {
        th_req(&ts, "GET", "/metrics", NULL, NULL, 0, &r);
        settled = strstr(r.body, "lookalike_http_requests_in_flight 1\n") != NULL;
        th_resp_free(&r);
        if (!settled)
            usleep(20000);
    }
    cr_assert(settled, "in-flight gauge returns to just the metrics request itself");
    th_stop(&ts);
}

struct slow_client {
    struct th_server *ts;
    long status;
};

static void *slow_search(void *p)
{
    struct slow_client *c = p;
    struct th_resp r;
    th_req(c->ts, "POST", "/v1/search", JPEG_CT, lk_test_jpeg, sizeof lk_test_jpeg, &r);
    c->status = r.status;
    th_resp_free(&r);
    return NULL;
}

Test(http, stop_lets_in_flight_requests_finish)
{
    struct th_server ts;
    struct slow_client c = {&ts, 0};
    pthread_t th;
    th_start(&ts, NULL);
    ts.fb.search_delay_ms = 500;
    cr_assert_eq(pthread_create(&th, NULL, slow_search, &c), 0);
    usleep(200000);     /* the search is now inside the backend */
    lk_server_stop(ts.srv);
    ts.srv = NULL;
    pthread_join(th, NULL);
    cr_assert_eq(c.status, 200, "the in-flight search completed during the graceful stop");
    fake_backend_destroy(&ts.fb);
}
