/*
 * metrics.c — counters and histograms for GET /metrics, rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Hot path is lock-free: every counter is a relaxed atomic add (the worker
 * threads never wait on each other to count).  Histograms are cumulative
 * only at render time: observation increments the one bucket the value
 * falls in, rendering sums them (so an observation is one atomic add, not
 * one per bucket).  Sums are kept in integer microseconds to stay atomic.
 *
 * Per-stage histograms are keyed by the stage names the backend reports
 * (static strings such as "decode", "embed").  Names are registered once
 * under a mutex into a small fixed table and looked up lock-free after
 * (the count is published with release order after the name is written);
 * stages beyond LK__STAGES_MAX are folded into "other".
 *
 * Exposed series (all prefixed lookalike_):
 *   http_requests_total{route,status}      counter
 *   http_request_duration_ms{route}        histogram (all requests)
 *   http_request_bytes_total               counter (body bytes received)
 *   http_requests_in_flight                gauge
 *   http_buffered_bytes                    gauge (request bodies held in memory)
 *   search_upload_to_result_ms             histogram (headers in -> JSON ready)
 *   search_stage_ms{stage}                 histogram
 *   searches_total / search_zero_results_total / search_fallback_total
 *   search_results_total{band}             counter (every returned result)
 *   search_best_band_total{band}           counter (best band per search)
 *   rate_limited_total, rate_limit_clients, rate_limit_evictions_total
 * Rates (zero-result rate, fallback rate) are ratios of these counters,
 * e.g. rate(search_zero_results_total[5m]) / rate(searches_total[5m]).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pserver.h"

/* Bucket upper bounds in ms.  Spans a cached 1 ms lookup to a 10 s stall. */
static const double bucket_ms[] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define N_BUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

/* HTTP statuses counted individually; anything else lands in "other". */
static const unsigned statuses[] = {200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 408, 409,
                                    413, 415, 422, 429, 431, 500, 501, 503, 507};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])

#define LK__STAGES_MAX 16
#define LK__STAGE_NAME_MAX 32

struct histogram {
    atomic_uint_fast64_t bucket[N_BUCKETS + 1];     /* last = +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
};

struct lk__metrics {
    atomic_uint_fast64_t requests[LK__R_COUNT][N_STATUSES + 1];
    struct histogram duration[LK__R_COUNT];
    atomic_uint_fast64_t bytes_in;
    struct histogram upload_to_result;
    pthread_mutex_t stage_lock;
    char stage_name[LK__STAGES_MAX + 1][LK__STAGE_NAME_MAX];    /* last slot = "other" */
    atomic_int n_stages;
    struct histogram stage[LK__STAGES_MAX + 1];
    atomic_uint_fast64_t searches, zero_results, fallbacks;
    atomic_uint_fast64_t results_by_band[LK_BAND_COUNT];
    atomic_uint_fast64_t best_band[LK_BAND_COUNT];
    atomic_uint_fast64_t rate_limited;
};

int lk__metrics_new(struct lk__metrics **out)
{
    /* calloc gives all-zero atomics, which is their valid initial state
     * for lock-free integer atomics on every platform we build for. */
    struct lk__metrics *m = calloc(1, sizeof *m);
    if (!m)
        return LK_ERR_NOMEM;
    pthread_mutex_init(&m->stage_lock, NULL);
    snprintf(m->stage_name[LK__STAGES_MAX], LK__STAGE_NAME_MAX, "other");
    *out = m;
    return LK_OK;
}

void lk__metrics_free(struct lk__metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->stage_lock);
    free(m);
}

static void inc(atomic_uint_fast64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void observe(struct histogram *h, double ms)
{
    size_t b = 0;
    if (!(ms >= 0))
        ms = 0;
    while (b < N_BUCKETS && ms > bucket_ms[b])
        b++;
    inc(&h->bucket[b], 1);
    inc(&h->count, 1);
    inc(&h->sum_us, (uint64_t)(ms * 1000.0 + 0.5));
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i < N_STATUSES; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUSES;
}

void lk__metrics_request(struct lk__metrics *m, enum lk__route_id route, unsigned status, double total_ms,
                         size_t bytes_in)
{
    if (!m || (unsigned)route >= LK__R_COUNT)
        return;
    inc(&m->requests[route][status_index(status)], 1);
    observe(&m->duration[route], total_ms);
    inc(&m->bytes_in, bytes_in);
}

/* Index of a stage name, registering it on first sight. */
static size_t stage_index(struct lk__metrics *m, const char *name)
{
    int n = atomic_load_explicit(&m->n_stages, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strncmp(m->stage_name[i], name, LK__STAGE_NAME_MAX - 1) == 0)
            return (size_t)i;
    pthread_mutex_lock(&m->stage_lock);
    n = atomic_load_explicit(&m->n_stages, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        if (strncmp(m->stage_name[i], name, LK__STAGE_NAME_MAX - 1) == 0) {
            pthread_mutex_unlock(&m->stage_lock);
            return (size_t)i;
        }
    if (n < LK__STAGES_MAX) {
        /* Keep label values safe: [a-z0-9_] only (uppercase folded). */
        size_t j = 0;
        for (; name[j] && j < LK__STAGE_NAME_MAX - 1; j++) {
            char c = name[j];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            m->stage_name[n][j] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
        }
        m->stage_name[n][j] = '\0';
        atomic_store_explicit(&m->n_stages, n + 1, memory_order_release);
        pthread_mutex_unlock(&m->stage_lock);
        return (size_t)n;
    }
    pthread_mutex_unlock(&m->stage_lock);
    return LK__STAGES_MAX;
}

void lk__metrics_search(struct lk__metrics *m, const struct lk_search_response *resp, double upload_to_result_ms)
{
    if (!m || !resp)
        return;
    inc(&m->searches, 1);
    observe(&m->upload_to_result, upload_to_result_ms);
    if (resp->n_results == 0)
        inc(&m->zero_results, 1);
    else if ((unsigned)resp->best_band < LK_BAND_COUNT)
        inc(&m->best_band[resp->best_band], 1);
    if (resp->fallback.applied)
        inc(&m->fallbacks, 1);
    for (size_t i = 0; i < resp->n_results; i++)
        if ((unsigned)resp->results[i].band < LK_BAND_COUNT)
            inc(&m->results_by_band[resp->results[i].band], 1);
    for (size_t i = 0; i < resp->n_timings && i < LK_SEARCH_STAGES_MAX; i++)
        if (resp->timings[i].name)
            observe(&m->stage[stage_index(m, resp->timings[i].name)], resp->timings[i].ms);
}

void lk__metrics_rate_limited(struct lk__metrics *m)
{
    if (m)
        inc(&m->rate_limited, 1);
}

/* ==== Rendering ========================================================= */

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

static void render_hist(struct buf *b, const char *name, const char *label, struct histogram *h)
{
    uint64_t cum = 0;
    const char *sep = label[0] ? "," : "";
    for (size_t i = 0; i <= N_BUCKETS; i++) {
        cum += get(&h->bucket[i]);
        if (i < N_BUCKETS)
            bprintf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, bucket_ms[i], (unsigned long long)cum);
        else
            bprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep, (unsigned long long)cum);
    }
    if (label[0]) {
        bprintf(b, "%s_sum{%s} %.3f\n", name, label, (double)get(&h->sum_us) / 1000.0);
        bprintf(b, "%s_count{%s} %llu\n", name, label, (unsigned long long)get(&h->count));
    } else {
        bprintf(b, "%s_sum %.3f\n", name, (double)get(&h->sum_us) / 1000.0);
        bprintf(b, "%s_count %llu\n", name, (unsigned long long)get(&h->count));
    }
}

int lk__metrics_render(struct lk__metrics *m, long inflight, size_t buffered, struct lk__ratelimit *rl,
                       const char *extra, char **out, size_t *len)
{
    struct buf b = {.p = malloc(16384), .cap = 16384};
    char label[96];
    int n_stages;
    if (!b.p)
        return LK_ERR_NOMEM;
    b.p[0] = '\0';

    bprintf(&b, "# HELP lookalike_http_requests_total HTTP requests by route and status.\n"
                "# TYPE lookalike_http_requests_total counter\n");
    for (int r = 0; r < LK__R_COUNT; r++)
        for (size_t s = 0; s <= N_STATUSES; s++) {
            uint64_t v = get(&m->requests[r][s]);
            if (!v)
                continue;
            if (s < N_STATUSES)
                bprintf(&b, "lookalike_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                        lk__route_name((enum lk__route_id)r), statuses[s], (unsigned long long)v);
            else
                bprintf(&b, "lookalike_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                        lk__route_name((enum lk__route_id)r), (unsigned long long)v);
        }

    bprintf(&b, "# HELP lookalike_http_request_duration_ms Time from request headers to response, ms.\n"
                "# TYPE lookalike_http_request_duration_ms histogram\n");
    for (int r = 0; r < LK__R_COUNT; r++) {
        if (!get(&m->duration[r].count))
            continue;
        snprintf(label, sizeof label, "route=\"%s\"", lk__route_name((enum lk__route_id)r));
        render_hist(&b, "lookalike_http_request_duration_ms", label, &m->duration[r]);
    }

    bprintf(&b, "# HELP lookalike_http_request_bytes_total Request body bytes received.\n"
                "# TYPE lookalike_http_request_bytes_total counter\n"
                "lookalike_http_request_bytes_total %llu\n",
            (unsigned long long)get(&m->bytes_in));
    bprintf(&b, "# HELP lookalike_http_requests_in_flight Requests being received or processed.\n"
                "# TYPE lookalike_http_requests_in_flight gauge\n"
                "lookalike_http_requests_in_flight %ld\n"
                "# HELP lookalike_http_buffered_bytes Request body bytes held in memory (bounded by max_buffered_bytes).\n"
                "# TYPE lookalike_http_buffered_bytes gauge\n"
                "lookalike_http_buffered_bytes %zu\n",
            inflight, buffered);

    bprintf(&b, "# HELP lookalike_search_upload_to_result_ms Search latency from request headers to result JSON, ms.\n"
                "# TYPE lookalike_search_upload_to_result_ms histogram\n");
    render_hist(&b, "lookalike_search_upload_to_result_ms", "", &m->upload_to_result);

    bprintf(&b, "# HELP lookalike_search_stage_ms Time per search pipeline stage, ms.\n"
                "# TYPE lookalike_search_stage_ms histogram\n");
    n_stages = atomic_load_explicit(&m->n_stages, memory_order_acquire);
    for (int i = 0; i <= LK__STAGES_MAX; i++) {
        if (i >= n_stages && i != LK__STAGES_MAX)
            continue;
        if (!get(&m->stage[i].count))
            continue;
        snprintf(label, sizeof label, "stage=\"%s\"", m->stage_name[i]);
        render_hist(&b, "lookalike_search_stage_ms", label, &m->stage[i]);
    }

    bprintf(&b,
            "# HELP lookalike_searches_total Searches answered (search and similar).\n"
            "# TYPE lookalike_searches_total counter\n"
            "lookalike_searches_total %llu\n"
            "# HELP lookalike_search_zero_results_total Searches that returned no result.\n"
            "# TYPE lookalike_search_zero_results_total counter\n"
            "lookalike_search_zero_results_total %llu\n"
            "# HELP lookalike_search_fallback_total Searches where the fallback relaxed a constraint.\n"
            "# TYPE lookalike_search_fallback_total counter\n"
            "lookalike_search_fallback_total %llu\n",
            (unsigned long long)get(&m->searches), (unsigned long long)get(&m->zero_results),
            (unsigned long long)get(&m->fallbacks));

    bprintf(&b, "# HELP lookalike_search_results_total Results returned, by confidence band.\n"
                "# TYPE lookalike_search_results_total counter\n");
    for (int i = LK_BAND_COUNT - 1; i >= 0; i--)
        bprintf(&b, "lookalike_search_results_total{band=\"%s\"} %llu\n", lk_band_name((enum lk_band)i),
                (unsigned long long)get(&m->results_by_band[i]));
    bprintf(&b, "# HELP lookalike_search_best_band_total Searches by the band of their best result.\n"
                "# TYPE lookalike_search_best_band_total counter\n");
    for (int i = LK_BAND_COUNT - 1; i >= 0; i--)
        bprintf(&b, "lookalike_search_best_band_total{band=\"%s\"} %llu\n", lk_band_name((enum lk_band)i),
                (unsigned long long)get(&m->best_band[i]));

    bprintf(&b,
            "# HELP lookalike_rate_limited_total Requests refused with 429.\n"
            "# TYPE lookalike_rate_limited_total counter\n"
            "lookalike_rate_limited_total %llu\n",
            (unsigned long long)get(&m->rate_limited));
    if (rl)
        bprintf(&b,
                "# HELP lookalike_rate_limit_clients Clients tracked by the rate limiter (bounded).\n"
                "# TYPE lookalike_rate_limit_clients gauge\n"
                "lookalike_rate_limit_clients %zu\n"
                "# HELP lookalike_rate_limit_capacity Clients the rate limiter can track.\n"
                "# TYPE lookalike_rate_limit_capacity gauge\n"
                "lookalike_rate_limit_capacity %zu\n"
                "# HELP lookalike_rate_limit_evictions_total Clients forgotten to make room.\n"
                "# TYPE lookalike_rate_limit_evictions_total counter\n"
                "lookalike_rate_limit_evictions_total %llu\n",
                lk__ratelimit_tracked(rl), lk__ratelimit_capacity(rl),
                (unsigned long long)lk__ratelimit_evictions(rl));
    if (extra && extra[0])
        bprintf(&b, "%s%s", extra, extra[strlen(extra) - 1] == '\n' ? "" : "\n");

    if (b.failed) {
        free(b.p);
        return LK_ERR_NOMEM;
    }
    *out = b.p;
    *len = b.len;
    return LK_OK;
}
