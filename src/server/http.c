/*
 * http.c — the HTTP daemon: libmicrohttpd set-up, the access handler that
 * drives every request, body limits, the request log, and the life cycle
 * (start, graceful stop, signals, reload).
 *
 * ==== Threading model ====
 * libmicrohttpd runs with MHD_USE_INTERNAL_POLLING_THREAD and a thread pool
 * of `threads` workers (default: one per online CPU).  Each worker owns an
 * epoll loop and a share of the connections; a connection stays on one
 * worker for its life, so the callbacks for one request (access handler,
 * post processor, completion) run on that worker's thread, one at a time.
 * The CPU-bound route handlers (search, similar, item writes that embed
 * images) are the exception: they run on `threads` job threads while the
 * connection is suspended (see "Job threads" below), and the worker sends
 * the reply after the resume, so a request is still handled by one thread
 * at a time.  Per-request state (struct lk__request) is therefore never
 * shared and needs no lock.  Shared state is: the metrics (atomics), the
 * rate limiter (a mutex per set), the in-flight counter (atomic), the job
 * queue (a mutex) and the backend, which must be thread-safe because up to
 * `threads` searches run at once.  A slow client does not pin a worker,
 * since sockets are non-blocking and a worker only runs a request when its
 * bytes have arrived.
 * Signals: workers are created with SIGINT/SIGTERM/SIGHUP/SIGPIPE blocked,
 * so those are consumed only by lk_server_run (sigtimedwait) on the caller's
 * thread; the backend reload runs there, never inside a signal handler.
 *
 * ==== Request flow ====
 * MHD calls the access handler (1) once the headers are in, (2) once per
 * chunk of body, (3) once more with no data when the body is complete.
 *   (1) route, rate limit, auth, Content-Length/Content-Type checks.  A
 *       refusal here is queued at once, before any body byte is read; MHD
 *       then skips the body (no "100 Continue" is sent, so a well-behaved
 *       client never uploads it) and closes the connection.
 *   (2) body bytes are counted against the route's limit as they arrive.
 *       Over the limit (a chunked body that lied by omission, or a
 *       multipart body that grew past its allowance), libmicrohttpd 0.9.75
 *       cannot queue a response mid-body, so the connection is closed on
 *       the spot: nothing more is read, nothing more is buffered, and the
 *       request is logged and counted as 413.  The same happens when the
 *       body is still arriving after request_timeout_s (slow drip).
 *   (3) the route handler runs and its reply is queued.
 * Idle connections are closed after connection_timeout_s (MHD), and the
 * connection counts are capped globally and per IP, so slow clients cannot
 * exhaust sockets or memory either.
 *   (0) before (1): MHD's connection timeout is an IDLE timeout, reset by
 *       every byte, and MHD calls us only once the headers are complete,
 *       so a client dripping header bytes (slowloris) held its connection
 *       forever.  The header deadline below closes a connection whose
 *       request head is not complete connection_timeout_s after the
 *       connection became ready for it (accepted, or previous request done).
 *
 * ==== Privacy / retention ====
 * Uploaded images exist only in the request's memory buffer and are freed
 * when the request completes.  They are never written to disk and never
 * logged: the request log records method, route pattern (never the raw
 * URL or query), status, byte counts and timings only, and nothing else is
 * logged per request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "pserver.h"

uint64_t lk__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double ms_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e6 : 0.0;
}

/* ==== Logging =========================================================== */

void lk_server_log_stderr(void *cls, const char *line)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    (void)cls;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* One fprintf per line: stdio locks the stream, so lines from different
     * workers never interleave. */
    fprintf(stderr, "%s lookalike: %s\n", ts, line);
}

static void log_line(struct lk_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(struct lk_server *srv, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (!srv->cfg.log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    srv->cfg.log(srv->cfg.log_cls, line);
}

/* libmicrohttpd's own diagnostics (protocol errors, resource limits). */
static void mhd_logger(void *cls, const char *fm, va_list ap)
{
    struct lk_server *srv = cls;
    char msg[384];
    size_t n;
    if (!srv->cfg.log)
        return;
    vsnprintf(msg, sizeof msg, fm, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_line(srv, "mhd: %s", msg);
}

/* ==== Replies =========================================================== */

/* Queue `rep`.  Ownership of rep->body passes to libmicrohttpd here: with a
 * free_fn the buffer is wrapped by
 * MHD_create_response_from_buffer_with_free_callback and MHD calls free_fn
 * when the response is destroyed (after sending, or when the connection
 * dies); a static body (free_fn == NULL) is used in place. */
static enum MHD_Result reply_send(struct lk__request *r, struct lk__reply *rep)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char num[24];
    static char empty[] = "";
    const char *ct = rep->content_type;

    if (!rep->body) {
        rep->body = empty;
        rep->len = 0;
        rep->free_fn = NULL;
    }
    if (rep->free_fn)
        resp = MHD_create_response_from_buffer_with_free_callback(rep->len, rep->body, rep->free_fn);
    else
        resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        lk__reply_discard(rep);     /* MHD did not take it */
        return MHD_NO;
    }
    rep->body = NULL;               /* owned by `resp` now */

    if (rep->len || ct)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct ? ct : "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, rep->cache_control ? rep->cache_control : "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (ct && strncmp(ct, "text/html", 9) == 0) {
        /* The storefront loads nothing from elsewhere; uploaded previews are blob: URLs. */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (rep->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->retry_after) {
        snprintf(num, sizeof num, "%u", rep->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (rep->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"lookalike\"");
    if (rep->etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, rep->etag);
    if (atomic_load(&r->srv->stop_requested))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");

    ret = MHD_queue_response(r->conn, rep->status, resp);
    MHD_destroy_response(resp);     /* drops our reference; MHD keeps its own */
    r->answered = true;
    r->status = rep->status;
    r->bytes_out = rep->len;
    if (rep->error_code)
        r->error_code = rep->error_code;
    return ret;
}

static enum MHD_Result refuse(struct lk__request *r, unsigned http, const char *code, const char *msg,
                              const char *param)
{
    struct lk__reply rep = {0};
    lk__reply_error(&rep, http, code, msg, param);
    return reply_send(r, &rep);
}

/* 503: the server-wide body budget is spent (many large uploads at once). */
static enum MHD_Result refuse_busy(struct lk__request *r)
{
    struct lk__reply rep = {0};
    lk__reply_error(&rep, 503, "server_busy", "too many uploads in progress; retry shortly", NULL);
    rep.retry_after = 1;
    return reply_send(r, &rep);
}

/* ==== Body budget ======================================================= */

bool lk__budget_reserve(struct lk_server *srv, size_t n)
{
    size_t cur = atomic_load_explicit(&srv->buffered, memory_order_relaxed);
    do {
        if (n > srv->cfg.max_buffered_bytes || cur > srv->cfg.max_buffered_bytes - n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&srv->buffered, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void lk__budget_release(struct lk_server *srv, size_t n)
{
    atomic_fetch_sub_explicit(&srv->buffered, n, memory_order_relaxed);
}

/* ==== Header deadline (slowloris) ======================================= */

/*
 * Every connection is registered here by MHD's connection-notify callback
 * (its socket context).  `waiting_since_ns` is set when the connection is
 * ready for a request head (accepted, or the previous request completed)
 * and cleared when the head is complete (first access-handler call).  The
 * watchdog thread scans the list every 250 ms and shutdown(2)s the socket of
 * a connection that has waited longer than connection_timeout_s; it never
 * closes it: the fd stays MHD's, which sees EOF, closes the connection and
 * unregisters it as usual.  conn_mu is held by registration, removal and
 * the scan, so a removed connection is never touched; the peer address is
 * compared before the shutdown in case MHD closed the fd before notifying
 * us and the number was reused by a new connection.
 */
struct lk__conn {
    struct lk__conn *prev, *next;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    atomic_uint_fast64_t waiting_since_ns;  /* 0: a request is in progress */
    bool cut;
};

static struct lk__conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_waiting(struct MHD_Connection *conn, bool waiting)
{
    struct lk__conn *c = conn_of(conn);
    if (c)
        atomic_store(&c->waiting_since_ns, waiting ? lk__now_ns() : 0);
}

static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct lk_server *srv = cls;
    struct lk__conn *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = fi ? calloc(1, sizeof *c) : NULL;
        if (!c)
            return;     /* untracked: only the idle timeout applies to it */
        c->fd = fi->connect_fd;
        c->peer_len = sizeof c->peer;
        if (getpeername(c->fd, (struct sockaddr *)&c->peer, &c->peer_len) != 0)
            c->peer_len = 0;
        atomic_init(&c->waiting_since_ns, lk__now_ns());
        pthread_mutex_lock(&srv->conn_mu);
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        pthread_mutex_unlock(&srv->conn_mu);
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    pthread_mutex_lock(&srv->conn_mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&srv->conn_mu);
    free(c);
    *socket_context = NULL;
}

/* Still the socket we registered?  (Same peer address and port.) */
static bool same_peer(const struct lk__conn *c)
{
    struct sockaddr_storage now;
    socklen_t len = sizeof now;
    if (c->peer_len == 0 || getpeername(c->fd, (struct sockaddr *)&now, &len) != 0)
        return false;
    return len == c->peer_len && memcmp(&now, &c->peer, len) == 0;
}

static void *watchdog_main(void *arg)
{
    struct lk_server *srv = arg;
    const uint64_t limit = (uint64_t)srv->cfg.connection_timeout_s * 1000000000ull;
    pthread_mutex_lock(&srv->conn_mu);
    while (!srv->watchdog_stop) {
        uint64_t now = lk__now_ns();
        unsigned cut = 0;
        struct timespec until;
        for (struct lk__conn *c = srv->conns; c; c = c->next) {
            uint64_t since = atomic_load(&c->waiting_since_ns);
            if (!c->cut && since && now > since && now - since > limit && same_peer(c)) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = true;
                cut++;
            }
        }
        if (cut) {
            atomic_fetch_add(&srv->header_timeouts, cut);
            log_line(srv, "closed %u connection(s) whose request headers were not complete after %us "
                          "(slow client)", cut, srv->cfg.connection_timeout_s);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->conn_cv, &srv->conn_mu, &until);
    }
    pthread_mutex_unlock(&srv->conn_mu);
    return NULL;
}

/* ==== Access handler ==================================================== */

static const char *header(struct lk__request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Body limit on the wire for a route (multipart framing gets a little
 * allowance over the image limit; the decoded image is still capped). */
static size_t wire_limit(const struct lk_server *srv, enum lk__body_kind kind)
{
    switch (kind) {
    case LK__BODY_IMAGE: return srv->cfg.max_body_bytes + (64u << 10);
    case LK__BODY_JSON: return srv->cfg.max_json_bytes;
    default: return 0;
    }
}

static size_t payload_limit(const struct lk_server *srv, enum lk__body_kind kind)
{
    switch (kind) {
    case LK__BODY_IMAGE: return srv->cfg.max_body_bytes;
    case LK__BODY_JSON: return srv->cfg.max_json_bytes;
    default: return 0;
    }
}

/* First call for a request: everything that can be decided from the
 * request line and headers. */
static enum MHD_Result begin_request(struct lk__request *r, const char *url, const char *method)
{
    struct lk_server *srv = r->srv;
    struct lk__match m;
    struct lk__reply rep = {0};
    enum lk__auth_level required;
    const char *auth_msg = NULL, *cl, *te;
    unsigned auth_status, retry = 0;
    uint64_t content_length = 0;
    bool has_length = false, chunked = false;

    snprintf(r->method, sizeof r->method, "%s", method);
    lk__route_match(method, url, &m);
    if (!m.route) {
        r->route_id = LK__R_UNMATCHED;
        if (m.allow) {
            lk__reply_error(&rep, 405, "method_not_allowed", "method not allowed on this route", NULL);
            rep.allow = m.allow;
            return reply_send(r, &rep);
        }
        return refuse(r, 404, "route_not_found", "no such route", NULL);
    }
    r->route = m.route;
    r->route_id = m.route->id;
    memcpy(r->param, m.param, sizeof r->param);

    /* Auth is evaluated first (cheap, no side effects) so that a valid admin
     * token can bypass the rate limit (bulk stock updates from the store's
     * back office); the refusal itself comes after the rate limit, so token
     * guessing is throttled like everything else. */
    required = m.route->auth;
    if (required == LK__AUTH_READ && !srv->cfg.search_requires_read_token)
        required = LK__AUTH_NONE;
    auth_status = lk__auth_decide(&srv->cfg.tokens, required, header(r, MHD_HTTP_HEADER_AUTHORIZATION),
                                  &r->granted, &auth_msg);

    if (m.route->rate_limited && srv->rl && r->granted != LK__AUTH_ADMIN) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && !lk__ratelimit_take(srv->rl, ci->client_addr, lk__now_ns(), &retry)) {
            lk__metrics_rate_limited(srv->metrics);
            lk__reply_error(&rep, 429, "rate_limited", "too many requests; retry later", NULL);
            rep.retry_after = retry;
            return reply_send(r, &rep);
        }
    }
    if (auth_status) {
        lk__reply_error(&rep, auth_status, auth_status == 401 ? "unauthorized" : "forbidden", auth_msg, NULL);
        rep.www_authenticate = auth_status == 401;
        return reply_send(r, &rep);
    }
    if (m.param_invalid) {
        const char *p = m.route->id == LK__R_IMAGE ? "image_id" : "sku";
        return refuse(r, 400, "invalid_parameter",
                      m.route->id == LK__R_IMAGE ? "image_id must be 1..128 characters of [A-Za-z0-9._-]"
                                                 : "sku must be 1..64 characters of [A-Za-z0-9._-]",
                      p);
    }

    /* Body size: refuse by Content-Length before reading a byte. */
    cl = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl) {
        char *end;
        errno = 0;
        content_length = strtoull(cl, &end, 10);
        has_length = errno == 0 && end != cl;
    }
    chunked = te && strcasecmp(te, "identity") != 0;
    if (m.route->body == LK__BODY_NONE) {
        if ((has_length && content_length > 0) || chunked)
            return refuse(r, 413, "payload_too_large", "this route takes no request body", "body");
        return MHD_YES;
    }

    /* Content-Type first (415 needs no body either), then the size: a raw
     * body is the payload itself; multipart framing gets a small allowance
     * on the wire (the decoded image is still held to the payload limit). */
    r->body_limit = payload_limit(srv, m.route->body);
    if (lk__body_begin(r, &rep))
        return reply_send(r, &rep);
    if (has_length && content_length > (r->pp ? wire_limit(srv, m.route->body) : r->body_limit)) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %zu bytes",
                 (unsigned long long)content_length, r->body_limit);
        return refuse(r, 413, "payload_too_large", msg, m.route->body == LK__BODY_IMAGE ? "image" : "body");
    }
    /* Known length: reserve it in the server-wide budget and allocate once
     * instead of doubling.  (malloc of a large block is mmap-backed, so
     * pages are only committed as the bytes arrive.) */
    if (has_length && !r->pp && content_length > 0) {
        size_t n = (size_t)content_length;
        if (!lk__budget_reserve(srv, n))
            return refuse_busy(r);
        r->body = malloc(n);
        if (!r->body) {
            lk__budget_release(srv, n);
            return refuse_busy(r);
        }
        r->body_cap = n;
    }
    return MHD_YES;
}

/* ==== Job threads ========================================================
 * libmicrohttpd keeps a connection on one worker thread for its life, and a
 * worker runs its connections' handlers one at a time.  If the CPU-bound
 * routes ran on the workers, two busy keep-alive connections that happened
 * to land on the same worker would take turns on one core while the other
 * core idled (measured: concurrency 2 gave the throughput of concurrency 1,
 * and 32 connections less than 8).  So those routes run on job threads
 * instead: the access handler suspends the connection (MHD_suspend_
 * connection) and queues the request; a job thread runs the handler, stores
 * the reply and resumes the connection (MHD_resume_connection wakes the
 * worker through its inter-thread channel), and the worker sends the reply.
 * The queue is FIFO, so requests are served in arrival order whatever
 * worker their connection is on, and the workers stay free for I/O, health
 * checks and cheap routes.  A suspended connection has no body left to read
 * and is not timed out by MHD; the queue is bounded by the connection
 * limits (one request per connection at a time). */
static bool cpu_bound(enum lk__route_id id)
{
    return id == LK__R_SEARCH || id == LK__R_SIMILAR || id == LK__R_ITEM_PUT || id == LK__R_ITEMS_BATCH;
}

/* Queue `r` and suspend its connection; false when the job threads are
 * stopping (shutdown): the caller then runs the handler itself. */
static bool job_submit(struct lk_server *srv, struct lk__request *r)
{
    pthread_mutex_lock(&srv->job_mu);
    if (srv->job_stop) {
        pthread_mutex_unlock(&srv->job_mu);
        return false;
    }
    r->job = LK__JOB_QUEUED;
    r->job_next = NULL;
    MHD_suspend_connection(r->conn);
    if (srv->job_tail)
        srv->job_tail->job_next = r;
    else
        srv->job_head = r;
    srv->job_tail = r;
    pthread_cond_signal(&srv->job_cv);
    pthread_mutex_unlock(&srv->job_mu);
    return true;
}

/* Runs queued requests until stopped; on stop, drains the queue first so no
 * connection stays suspended (MHD_stop_daemon needs them resumed). */
static void *job_main(void *arg)
{
    struct lk_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->job_mu);
        while (!srv->job_head && !srv->job_stop)
            pthread_cond_wait(&srv->job_cv, &srv->job_mu);
        struct lk__request *r = srv->job_head;
        if (!r) {
            pthread_mutex_unlock(&srv->job_mu);
            return NULL;
        }
        srv->job_head = r->job_next;
        if (!srv->job_head)
            srv->job_tail = NULL;
        pthread_mutex_unlock(&srv->job_mu);
        memset(&r->job_reply, 0, sizeof r->job_reply);
        r->route->handle(r, &r->job_reply);
        r->job = LK__JOB_DONE;
        MHD_resume_connection(r->conn);
    }
}

static void jobs_stop(struct lk_server *srv)
{
    pthread_mutex_lock(&srv->job_mu);
    srv->job_stop = true;
    pthread_cond_broadcast(&srv->job_cv);
    pthread_mutex_unlock(&srv->job_mu);
    if (!srv->jobs_joined) {
        for (unsigned i = 0; i < srv->n_job_threads; i++)
            pthread_join(srv->job_threads[i], NULL);
        srv->jobs_joined = true;
    }
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                      const char *version, const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    struct lk_server *srv = cls;
    struct lk__request *r = *con_cls;
    struct lk__reply rep = {0};
    (void)version;

    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->srv = srv;
        r->conn = conn;
        r->t_start_ns = lk__now_ns();
        r->upload_to_result_ms = -1;
        r->route_id = LK__R_UNMATCHED;
        atomic_fetch_add(&srv->inflight, 1);
        conn_waiting(conn, false);     /* the request head is complete */
        return begin_request(r, url, method);
    }

    if (r->answered) {
        /* An early refusal is queued; MHD discards whatever body follows. */
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->bytes_in += n;
        if (srv->cfg.request_timeout_s &&
            lk__now_ns() - r->t_start_ns > (uint64_t)srv->cfg.request_timeout_s * 1000000000ull) {
            r->aborted = true;
            r->status = 408;
            r->error_code = "request_timeout";
            return MHD_NO;  /* close: the client is dripping the body */
        }
        if (r->bytes_in > wire_limit(srv, r->route ? r->route->body : LK__BODY_NONE) ||
            !lk__body_feed(r, upload_data, n)) {
            /* See the file comment: 0.9.75 cannot answer mid-body, so the
             * connection is closed and the request counted as 413/503. */
            r->aborted = true;
            r->status = r->over_budget ? 503 : 413;
            r->error_code = r->over_budget ? "server_busy" : "payload_too_large";
            return MHD_NO;
        }
        return MHD_YES;
    }

    if (r->job == LK__JOB_DONE) {       /* resumed: the job thread's reply */
        r->job = LK__JOB_NONE;          /* reply_send owns the body from here */
        return reply_send(r, &r->job_reply);
    }
    if (r->job == LK__JOB_QUEUED)       /* spurious call while suspended */
        return MHD_YES;

    /* Body complete (or none): run the route. */
    r->t_body_ns = lk__now_ns();
    lk__body_end(r);
    if (cpu_bound(r->route->id) && job_submit(srv, r))
        return MHD_YES;
    r->route->handle(r, &rep);
    return reply_send(r, &rep);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct lk_server *srv = cls;
    struct lk__request *r = *con_cls;
    uint64_t now = lk__now_ns();
    double total_ms;
    unsigned status;
    const char *pattern;
    if (!r)
        return;
    *con_cls = NULL;
    conn_waiting(conn, true);          /* keep-alive: the next head is due */
    total_ms = ms_between(r->t_start_ns, now);
    status = r->answered || r->aborted ? r->status : 0;
    if (!status && toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
        status = 408;
        r->error_code = "idle_timeout";
    }
    lk__metrics_request(srv->metrics, r->route_id, status, total_ms, r->bytes_in);

    pattern = r->route ? r->route->pattern : "-";
    if (r->upload_to_result_ms >= 0)
        log_line(srv, "%s %s %u in=%zuB out=%zuB upload=%.1fms result=%.1fms total=%.1fms%s%s", r->method,
                 pattern, status, r->bytes_in, r->bytes_out,
                 r->t_body_ns ? ms_between(r->t_start_ns, r->t_body_ns) : 0.0, r->upload_to_result_ms, total_ms,
                 r->error_code ? " error=" : "", r->error_code ? r->error_code : "");
    else
        log_line(srv, "%s %s %u in=%zuB out=%zuB total=%.1fms%s%s%s", r->method, pattern, status, r->bytes_in,
                 r->bytes_out, total_ms, r->error_code ? " error=" : "", r->error_code ? r->error_code : "",
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");

    /* A job's reply that was never sent: the client went away between the
     * resume and the send (found by fuzz_multipart as a leaked JSON body). */
    if (r->job == LK__JOB_DONE)
        lk__reply_discard(&r->job_reply);
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    free(r->body);      /* the only copy of an uploaded image: gone now */
    lk__budget_release(srv, r->body_cap);
    free(r);
    atomic_fetch_sub(&srv->inflight, 1);
}

/* ==== Configuration and life cycle ====================================== */

void lk_server_config_default(struct lk_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind_address = "127.0.0.1";
    cfg->port = LK_SERVER_PORT_DEFAULT;
    cfg->threads = 0;
    cfg->max_body_bytes = LK_SERVER_MAX_BODY_DEFAULT;
    cfg->max_json_bytes = LK_SERVER_MAX_JSON_DEFAULT;
    cfg->max_buffered_bytes = LK_SERVER_BUFFERED_DEFAULT;
    cfg->connection_timeout_s = LK_SERVER_TIMEOUT_DEFAULT;
    cfg->request_timeout_s = LK_SERVER_REQUEST_TIMEOUT_DEFAULT;
    cfg->max_connections = LK_SERVER_CONN_LIMIT_DEFAULT;
    cfg->max_connections_per_ip = LK_SERVER_PER_IP_LIMIT_DEFAULT;
    cfg->connection_memory_bytes = LK_SERVER_CONN_MEMORY_DEFAULT;
    cfg->rate_rps = LK_SERVER_RATE_RPS_DEFAULT;
    cfg->rate_burst = LK_SERVER_RATE_BURST_DEFAULT;
    cfg->rate_table_size = LK__RL_TABLE_DEFAULT;
    cfg->search_requires_read_token = false;
    cfg->shutdown_grace_ms = LK_SERVER_GRACE_MS_DEFAULT;
    cfg->log = lk_server_log_stderr;
    cfg->log_cls = NULL;
}

static int check_config(const struct lk_server_config *c, struct lk_err *err)
{
    if (c->threads > LK_SERVER_THREADS_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "threads must be 0..%d", LK_SERVER_THREADS_MAX);
    if (c->max_body_bytes < LK_SERVER_MAX_BODY_MIN || c->max_body_bytes > LK_SERVER_MAX_BODY_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "max_body_bytes must be %zu..%zu", LK_SERVER_MAX_BODY_MIN,
                          LK_SERVER_MAX_BODY_MAX);
    if (c->max_json_bytes < 1024 || c->max_json_bytes > ((size_t)64 << 20))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "max_json_bytes must be 1 KiB..64 MiB");
    if (c->max_buffered_bytes < c->max_body_bytes || c->max_buffered_bytes < c->max_json_bytes)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "max_buffered_bytes must be >= max_body_bytes and max_json_bytes");
    if (c->connection_timeout_s < 1 || c->connection_timeout_s > 3600)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "connection_timeout_s must be 1..3600");
    if (c->request_timeout_s < 1 || c->request_timeout_s > 3600)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "request_timeout_s must be 1..3600");
    if (c->max_connections < 1 || c->max_connections > 65536)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "max_connections must be 1..65536");
    if (c->max_connections_per_ip < 1 || c->max_connections_per_ip > c->max_connections)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "max_connections_per_ip must be 1..max_connections");
    if (c->connection_memory_bytes < (16u << 10) || c->connection_memory_bytes > (16u << 20))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "connection_memory_bytes must be 16 KiB..16 MiB");
    if (!(c->rate_rps >= 0) || !isfinite(c->rate_rps) || c->rate_rps > 1e6)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "rate_rps must be 0..1e6 (0 = off)");
    if (c->rate_rps > 0 && (c->rate_burst < 1 || c->rate_burst > 1000000))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "rate_burst must be 1..1000000");
    if (c->search_requires_read_token && !c->tokens.read[0] && !c->tokens.admin[0])
        return lk_err_set(err, LK_ERR_INVALID_ARG, "search_requires_read_token is set but no token is configured");
    if (c->shutdown_grace_ms > 600000)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "shutdown_grace_ms must be <= 600000");
    return LK_OK;
}

static void block_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

int lk_server_signals_block(struct lk_err *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return lk_err_set(err, LK_ERR_INTERNAL, "pthread_sigmask failed");
    return LK_OK;
}

int lk_server_start(const struct lk_server_config *cfg, const struct lk_server_backend *backend,
                    struct lk_server **out, struct lk_err *err)
{
    struct lk_server *srv;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    unsigned threads;
    const union MHD_DaemonInfo *info;
    sigset_t old;
    int rc;

    if (!cfg || !backend || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_server_start: NULL argument");
    *out = NULL;
    if ((rc = check_config(cfg, err)) != LK_OK)
        return rc;

    memset(&addr, 0, sizeof addr);
    const char *bind = cfg->bind_address ? cfg->bind_address : "127.0.0.1";
    if (strlen(bind) >= 64)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "bind address too long");
    if (inet_pton(AF_INET, bind, &addr.in4.sin_addr) == 1) {
        addr.in4.sin_family = AF_INET;
        addr.in4.sin_port = htons(cfg->port);
    } else if (inet_pton(AF_INET6, bind, &addr.in6.sin6_addr) == 1) {
        addr.in6.sin6_family = AF_INET6;
        addr.in6.sin6_port = htons(cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        return lk_err_set(err, LK_ERR_INVALID_ARG, "bind address '%s' is not a numeric IPv4/IPv6 address", bind);
    }

    srv = calloc(1, sizeof *srv);
    if (!srv)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    srv->cfg = *cfg;
    snprintf(srv->bind_address, sizeof srv->bind_address, "%s", bind);
    srv->cfg.bind_address = srv->bind_address;
    srv->be = *backend;
    pthread_mutex_init(&srv->reload_lock, NULL);
    pthread_mutex_init(&srv->conn_mu, NULL);
    pthread_cond_init(&srv->conn_cv, NULL);
    pthread_mutex_init(&srv->job_mu, NULL);
    pthread_cond_init(&srv->job_cv, NULL);
    atomic_init(&srv->header_timeouts, 0);
    atomic_init(&srv->stop_requested, 0);
    atomic_init(&srv->reload_requested, 0);
    atomic_init(&srv->inflight, 0);
    atomic_init(&srv->buffered, 0);

    if (lk__metrics_new(&srv->metrics) != LK_OK) {
        lk_server_stop(srv);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    if (cfg->rate_rps > 0 &&
        lk__ratelimit_new(cfg->rate_rps, cfg->rate_burst, cfg->rate_table_size, &srv->rl) != LK_OK) {
        lk_server_stop(srv);
        return lk_err_set(err, LK_ERR_NOMEM, "cannot create the rate limiter");
    }

    threads = cfg->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)(n > LK_SERVER_THREADS_MAX ? LK_SERVER_THREADS_MAX : n) : 1;
    }
    srv->cfg.threads = threads;

    /* Workers inherit this mask: signals stay with lk_server_run. */
    block_signals(&old);
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        lk_server_stop(srv);
        return lk_err_set(err, LK_ERR_NOMEM, "cannot start the header-deadline thread");
    }
    srv->watchdog_started = true;
    srv->job_threads = calloc(threads, sizeof *srv->job_threads);
    for (unsigned i = 0; srv->job_threads && i < threads; i++) {
        if (pthread_create(&srv->job_threads[i], NULL, job_main, srv) != 0)
            break;
        srv->n_job_threads++;
    }
    if (srv->n_job_threads == 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        lk_server_stop(srv);
        return lk_err_set(err, LK_ERR_NOMEM, "cannot start the job threads");
    }
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv,
        MHD_OPTION_SOCK_ADDR, &addr.sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->connection_memory_bytes,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, conn_notify, srv,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!srv->daemon) {
        int e = errno;
        lk_server_stop(srv);
        return lk_err_set(err, LK_ERR_IO, "cannot listen on %s:%u: %s", bind, (unsigned)cfg->port,
                          e ? strerror(e) : "libmicrohttpd failed to start");
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    log_line(srv, "listening on %s%s%s:%u with %u worker threads", strchr(bind, ':') ? "[" : "", bind,
             strchr(bind, ':') ? "]" : "", (unsigned)srv->port, threads);
    *out = srv;
    return LK_OK;
}

uint16_t lk_server_port(const struct lk_server *srv)
{
    return srv ? srv->port : 0;
}

void lk_server_stop(struct lk_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stop_requested, 1);
    if (srv->daemon) {
        /* Stop accepting, let in-flight requests finish (replies now carry
         * Connection: close), then tear down. */
        MHD_socket lsock = MHD_quiesce_daemon(srv->daemon);
        uint64_t deadline = lk__now_ns() + (uint64_t)srv->cfg.shutdown_grace_ms * 1000000ull;
        while (atomic_load(&srv->inflight) > 0 && lk__now_ns() < deadline) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        jobs_stop(srv);     /* drains the queue: every suspended connection is resumed */
        MHD_stop_daemon(srv->daemon);
        if (lsock != MHD_INVALID_SOCKET)
            close(lsock);   /* quiesce hands the listening socket to us */
        log_line(srv, "stopped");
    }
    jobs_stop(srv);         /* no-op when already stopped above */
    free(srv->job_threads);
    pthread_cond_destroy(&srv->job_cv);
    pthread_mutex_destroy(&srv->job_mu);
    lk__ratelimit_free(srv->rl);
    lk__metrics_free(srv->metrics);
    if (srv->watchdog_started) {
        pthread_mutex_lock(&srv->conn_mu);
        srv->watchdog_stop = true;
        pthread_cond_signal(&srv->conn_cv);
        pthread_mutex_unlock(&srv->conn_mu);
        pthread_join(srv->watchdog, NULL);
    }
    pthread_mutex_destroy(&srv->reload_lock);
    pthread_cond_destroy(&srv->conn_cv);
    pthread_mutex_destroy(&srv->conn_mu);
    free(srv);
}

void lk_server_request_stop(struct lk_server *srv)
{
    if (srv)
        atomic_store(&srv->stop_requested, 1);
}

void lk_server_request_reload(struct lk_server *srv)
{
    if (srv)
        atomic_store(&srv->reload_requested, 1);
}

int lk_server_reload(struct lk_server *srv, struct lk_err *err)
{
    int rc;
    uint64_t t0;
    if (!srv)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "server is NULL");
    if (!srv->be.reload)
        return lk_err_set(err, LK_ERR_STATE, "this backend cannot reload");
    t0 = lk__now_ns();
    pthread_mutex_lock(&srv->reload_lock);
    rc = srv->be.reload(srv->be.ctx, err);
    pthread_mutex_unlock(&srv->reload_lock);
    if (rc == LK_OK)
        log_line(srv, "reload done in %.1fms", ms_between(t0, lk__now_ns()));
    else
        log_line(srv, "reload failed: %s: %s", lk_status_str(rc), err ? err->msg : "");
    return rc;
}

int lk_server_run(struct lk_server *srv, struct lk_err *err)
{
    sigset_t set;
    if (!srv)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "server is NULL");
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return lk_err_set(err, LK_ERR_INTERNAL, "pthread_sigmask failed");
    while (!atomic_load(&srv->stop_requested)) {
        struct timespec tick = {0, 100 * 1000000L};   /* also polls the request flags */
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            log_line(srv, "%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            atomic_store(&srv->stop_requested, 1);
            break;
        }
        if (sig == SIGHUP) {
            log_line(srv, "SIGHUP received, reloading");
            atomic_store(&srv->reload_requested, 1);
        }
        if (sig < 0 && errno != EAGAIN && errno != EINTR)
            return lk_err_set(err, LK_ERR_INTERNAL, "sigtimedwait: %s", strerror(errno));
        if (atomic_exchange(&srv->reload_requested, 0)) {
            struct lk_err e = {0};
            (void)lk_server_reload(srv, &e);    /* logged; the old generation keeps serving */
        }
    }
    return LK_OK;
}
