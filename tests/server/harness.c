/*
 * harness.c — see harness.h.  Test-only code.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_buf;
static size_t log_len, log_cap;

static void capture_log(void *cls, const char *line)
{
    size_t n = strlen(line);
    (void)cls;
    pthread_mutex_lock(&log_lock);
    if (log_len + n + 2 > log_cap) {
        size_t nc = (log_cap ? log_cap * 2 : 4096) + n + 2;
        char *p = realloc(log_buf, nc);
        if (!p) {
            pthread_mutex_unlock(&log_lock);
            return;
        }
        log_buf = p;
        log_cap = nc;
    }
    memcpy(log_buf + log_len, line, n);
    log_len += n;
    log_buf[log_len++] = '\n';
    log_buf[log_len] = '\0';
    pthread_mutex_unlock(&log_lock);
}

char *th_log_copy(void)
{
    char *c;
    pthread_mutex_lock(&log_lock);
    c = strdup(log_buf ? log_buf : "");
    pthread_mutex_unlock(&log_lock);
    cr_assert_not_null(c);
    return c;
}

bool th_log_wait(const char *needle, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        bool found;
        pthread_mutex_lock(&log_lock);
        found = log_buf && strstr(log_buf, needle);
        pthread_mutex_unlock(&log_lock);
        if (found)
            return true;
        if (waited >= timeout_ms)
            return false;
        usleep(10000);
    }
}

void th_start(struct th_server *ts, void (*tweak)(struct lk_server_config *cfg))
{
    struct lk_server_config cfg;
    struct lk_server_backend be;
    struct lk_err err = {0};
    int rc;
    memset(ts, 0, sizeof *ts);
    curl_global_init(CURL_GLOBAL_DEFAULT);     /* before any thread uses curl */
    fake_backend_init(&ts->fb);
    be = fake_backend_table(&ts->fb);
    lk_server_config_default(&cfg);
    cfg.bind_address = "127.0.0.1";
    cfg.port = 0;
    cfg.threads = 2;
    cfg.max_body_bytes = 1u << 20;
    cfg.rate_rps = 0;
    cfg.log = capture_log;
    snprintf(cfg.tokens.admin, sizeof cfg.tokens.admin, "%s", TH_ADMIN);
    snprintf(cfg.tokens.read, sizeof cfg.tokens.read, "%s", TH_READ);
    if (tweak)
        tweak(&cfg);
    rc = lk_server_start(&cfg, &be, &ts->srv, &err);
    cr_assert_eq(rc, LK_OK, "lk_server_start: %s", err.msg);
    ts->port = lk_server_port(ts->srv);
    cr_assert_neq(ts->port, 0);
}

void th_stop(struct th_server *ts)
{
    lk_server_stop(ts->srv);
    ts->srv = NULL;
    fake_backend_destroy(&ts->fb);
}

static size_t on_body(char *p, size_t size, size_t n, void *cls)
{
    struct th_resp *r = cls;
    size_t add = size * n;
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static void grab(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
    size_t k = strlen(name);
    if (n > k + 1 && strncasecmp(line, name, k) == 0 && line[k] == ':') {
        const char *v = line + k + 1;
        size_t vl = n - k - 1;
        while (vl && (*v == ' '))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        if (vl >= cap)
            vl = cap - 1;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *cls)
{
    struct th_resp *r = cls;
    size_t len = size * n;
    grab(p, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    grab(p, len, "Allow", r->allow, sizeof r->allow);
    grab(p, len, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    grab(p, len, "Content-Type", r->content_type, sizeof r->content_type);
    grab(p, len, "ETag", r->etag, sizeof r->etag);
    grab(p, len, "Content-Security-Policy", r->csp, sizeof r->csp);
    grab(p, len, "Connection", r->connection, sizeof r->connection);
    return len;
}

static CURL *prepare(struct th_server *ts, const char *path, struct th_resp *r)
{
    char url[512];
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", ts->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    return c;
}

static void finish(CURL *c, struct th_resp *r)
{
    curl_off_t up = 0;
    r->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
    r->uploaded = (double)up;
    curl_easy_cleanup(c);
}

void th_req(struct th_server *ts, const char *method, const char *path, const char *const *headers,
            const void *body, size_t len, struct th_resp *r)
{
    CURL *c = prepare(ts, path, r);
    struct curl_slist *hl = NULL;
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    finish(c, r);
    curl_slist_free_all(hl);
}

void th_multipart(struct th_server *ts, const char *path, const struct th_part *parts, size_t n, struct th_resp *r)
{
    CURL *c = prepare(ts, path, r);
    curl_mime *mime = curl_mime_init(c);
    for (size_t i = 0; i < n; i++) {
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, parts[i].name);
        curl_mime_data(p, parts[i].data, parts[i].len);
        if (parts[i].mime) {
            curl_mime_type(p, parts[i].mime);
            curl_mime_filename(p, "photo");
        }
    }
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    finish(c, r);
    curl_mime_free(mime);
}

void th_resp_free(struct th_resp *r)
{
    free(r->body);
    r->body = NULL;
}

cJSON *th_json(const struct th_resp *r)
{
    cJSON *j;
    cr_assert_not_null(r->body, "empty body (status %ld)", r->status);
    j = cJSON_Parse(r->body);
    cr_assert_not_null(j, "body is not JSON: %s", r->body);
    return j;
}

static const char *err_field(const struct th_resp *r, const char *name, char *buf, size_t cap)
{
    cJSON *j = th_json(r);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    cJSON *v = cJSON_GetObjectItem(e, name);
    snprintf(buf, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
    cJSON_Delete(j);
    return buf;
}

const char *th_err_param(const struct th_resp *r, char *buf, size_t cap)
{
    return err_field(r, "param", buf, cap);
}

const char *th_err_code(const struct th_resp *r, char *buf, size_t cap)
{
    return err_field(r, "code", buf, cap);
}

int th_connect(struct th_server *ts, int recv_timeout_ms)
{
    struct sockaddr_in a = {0};
    struct timeval tv = {recv_timeout_ms / 1000, (recv_timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    a.sin_family = AF_INET;
    a.sin_port = htons(ts->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

long th_read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got >= cap - 1)
            break;
    }
    buf[got] = '\0';
    return (long)got;
}

char *th_metrics_until(struct th_server *ts, const char *const *needles, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        struct th_resp r;
        bool all = true;
        th_req(ts, "GET", "/metrics", NULL, NULL, 0, &r);
        cr_assert_eq(r.status, 200);
        for (size_t i = 0; needles[i]; i++)
            if (!strstr(r.body, needles[i]))
                all = false;
        if (all || waited >= timeout_ms)
            return r.body;     /* caller frees */
        th_resp_free(&r);
        usleep(20000);
    }
}
