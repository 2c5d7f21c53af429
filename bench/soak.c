/*
 * bench/soak.c — load and soak test: `lookalike serve` under mixed, partly
 * hostile traffic for a long time on loopback, watching that it keeps
 * answering correctly and does not leak memory or file descriptors.
 *
 *   soak --url http://127.0.0.1:PORT --pid PID --catalog CSV --images DIR
 *        --tokens FILE [--seconds 600] [--rate-rps 5] [--rate-burst 10]
 *        [--max-body BYTES] [--conn-timeout S] [--request-timeout S]
 *        [--reload-cmd CMD] [--new-sku SKU] [--rss-bound-mb 64]
 *        [--shoppers 6] [--bad 3] [--admins 2] [--burst 30] [--slowloris 12]
 *        [--catalog-db DATA/catalog.sqlite] [--json FILE]
 *
 * bench/soak (the driver) starts the server with the matching config and
 * passes these; run that, not this, by hand.
 *
 * ==== Who sends what ====
 * The server's rate limiter keys a client by its TCP source address (IPv4
 * address or IPv6 /64; src/server/ratelimit.c), never by a header, so the
 * only honest way to have several clients on one machine is several source
 * addresses.  All of 127.0.0.0/8 is loopback on Linux, so every traffic
 * class binds its own address (CURLOPT_INTERFACE "host!127.0.x.y", bind()
 * for raw sockets) and is a distinct client to the server, exactly as
 * distinct shoppers would be:
 *
 *   127.0.1.i  shoppers (--shoppers): valid JPEG and multipart-PNG searches,
 *              GET similar, POST events for their own search ids.  Each
 *              shopper paces itself to 80% of the per-client rate, so a 429
 *              on this traffic is a failure, not noise.
 *   127.0.2.i  bad clients (--bad): oversized bodies (413 by Content-Length,
 *              and a chunked body the server must cut off), wrong
 *              Content-Type and wrong magic bytes (415), corrupt JPEG/PNG
 *              (400), pixel bombs (422: JPEG and PNG headers claiming
 *              60000x60000 / 20000x20000), bad parameters (400), unknown
 *              routes (404), wrong methods (405), missing token (401),
 *              read token on an admin route (403).  Also paced under the rate.
 *   127.0.3.1  the back office (--admins handles): PATCH stock/price of
 *              random SKUs (200; an unknown SKU 404) with the admin token,
 *              which the rate limit exempts; the reload at mid-run.  Handle
 *              i patches only SKUs i, i+n, i+2n, ..., so each SKU's patches
 *              are sequential and the last acknowledged one is the value
 *              the catalog must hold at the end (--catalog-db check).
 *   127.0.4.1  the burst client: every 20 s, --burst GET similar requests at
 *              once, well past the bucket (rate_burst): 200 or 429, and every
 *              429 must carry Retry-After.
 *   127.0.5.1  monitoring: /healthz, /readyz, /metrics once a second.
 *   127.0.6.1  slowloris (--slowloris raw sockets, a thread of its own):
 *              a third connect and send nothing, a third drip request
 *              headers one byte a second forever, a third send headers
 *              with a 100 kB Content-Length and drip the body one byte a
 *              second.  The server must close each within its timeouts
 *              (idle/headers: conn-timeout; body: request-timeout; plus 5 s
 *              slack); a closed one is reopened at once, so the number
 *              held open stays bounded at --slowloris.
 *
 * Mid-run generation reload: at 1/2 of the run --reload-cmd runs (the
 * driver's: `lookalike index update` adding --new-sku to the data dir while
 * the server serves and PATCHes write the same catalog), then POST
 * /v1/index:reload (200), then GET similar of the new SKU (404 before, 200
 * after).  At 3/4 the server gets SIGHUP (the other reload path).
 *
 * ==== What is measured ====
 * Every 10 s: the server's VmRSS (/proc/PID/status) and open descriptors
 * (/proc/PID/fd), requests by status in the interval, and p50/p95/p99 of
 * valid searches (JPEG + multipart PNG, wall time from handing the request
 * to libcurl until the whole response arrived).  At the end: requests by
 * (kind, status) against the statuses expected for that kind, search
 * latency per minute, RSS before traffic / after warm-up / end / max, fds
 * before traffic and after all clients closed, slowloris hold times, and
 * (--catalog-db) no lost writes: the catalog database, read after the
 * traffic, holds the last acknowledged PATCH of every patched SKU and one
 * event row per 202 to POST /v1/events.  The 1-minute load average is
 * sampled too: the machine may be shared, and latency says little without
 * it.
 *
 * Exit status 1 (FAIL) on: any 5xx, any unexpected status (transport
 * errors included), RSS growth from the end of warm-up (the first 60 s or
 * 1/10 of the run) to the end beyond --rss-bound-mb, more descriptors after
 * the clients closed than before traffic started, a slowloris connection
 * held beyond its bound, a burst that never saw 429, a reload that failed,
 * a lost write.
 *
 * One client thread drives all HTTP traffic with a libcurl multi handle (at
 * 2 cores the server needs the CPU more than the client does).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lookalike/image.h"
#include "jpeg_encode.h"
#include "sysinfo.h"
#include "util.h"

extern char **environ;

#define INTERVAL_S 10.0
#define MAX_IMAGES 24
#define MAX_SAMPLES 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "soak: out of memory\n");
        exit(1);
    }
    return p;
}

/* ==== Request kinds and their expected statuses ======================== */

enum kind {
    K_SEARCH_JPEG, K_SEARCH_PNG_MULTIPART, K_SIMILAR, K_EVENT,
    K_HEALTHZ, K_READYZ, K_METRICS,
    K_OVERSIZED, K_OVERSIZED_CHUNKED, K_WRONG_TYPE, K_WRONG_MAGIC, K_CORRUPT_JPEG, K_CORRUPT_PNG,
    K_BOMB_JPEG, K_BOMB_PNG, K_BAD_PARAM, K_UNKNOWN_ROUTE, K_WRONG_METHOD, K_NO_TOKEN, K_WRONG_TOKEN,
    K_PATCH, K_PATCH_UNKNOWN, K_BURST, K_RELOAD, K_NEW_SKU_BEFORE, K_NEW_SKU_AFTER,
    K_COUNT
};

/* Status 0 = the connection ended without a response (transport error). */
static const struct kind_info {
    const char *name;
    int expect[2];      /* allowed statuses; second 0 = only the first ... */
    int n_expect;
} kinds[K_COUNT] = {
    [K_SEARCH_JPEG] = {"search jpeg", {200}, 1},
    [K_SEARCH_PNG_MULTIPART] = {"search png multipart", {200}, 1},
    [K_SIMILAR] = {"similar", {200}, 1},
    [K_EVENT] = {"event", {202}, 1},
    [K_HEALTHZ] = {"healthz", {200}, 1},
    [K_READYZ] = {"readyz", {200}, 1},
    [K_METRICS] = {"metrics", {200}, 1},
    [K_OVERSIZED] = {"oversized (Content-Length)", {413}, 1},
    /* The server closes a chunked body at the limit without a reply
     * (libmicrohttpd 0.9.75 cannot answer mid-body; docs/http-api.md). */
    [K_OVERSIZED_CHUNKED] = {"oversized chunked", {0, 413}, 2},
    [K_WRONG_TYPE] = {"wrong Content-Type", {415}, 1},
    [K_WRONG_MAGIC] = {"wrong magic bytes", {415}, 1},
    [K_CORRUPT_JPEG] = {"corrupt jpeg", {400}, 1},
    [K_CORRUPT_PNG] = {"corrupt png", {400}, 1},
    [K_BOMB_JPEG] = {"pixel bomb jpeg", {422}, 1},
    [K_BOMB_PNG] = {"pixel bomb png", {422}, 1},
    [K_BAD_PARAM] = {"bad parameter", {400}, 1},
    [K_UNKNOWN_ROUTE] = {"unknown route", {404}, 1},
    [K_WRONG_METHOD] = {"wrong method", {405}, 1},
    [K_NO_TOKEN] = {"no token", {401}, 1},
    [K_WRONG_TOKEN] = {"read token on admin", {403}, 1},
    [K_PATCH] = {"patch stock/price", {200}, 1},
    [K_PATCH_UNKNOWN] = {"patch unknown sku", {404}, 1},
    [K_BURST] = {"burst similar", {200, 429}, 2},
    [K_RELOAD] = {"index reload", {200}, 1},
    [K_NEW_SKU_BEFORE] = {"new sku before reload", {404}, 1},
    [K_NEW_SKU_AFTER] = {"new sku after reload", {200}, 1},
};

static const enum kind bad_kinds[] = {
    K_OVERSIZED, K_OVERSIZED_CHUNKED, K_WRONG_TYPE, K_WRONG_MAGIC, K_CORRUPT_JPEG, K_CORRUPT_PNG, K_BOMB_JPEG,
    K_BOMB_PNG, K_BAD_PARAM, K_UNKNOWN_ROUTE, K_WRONG_METHOD, K_NO_TOKEN, K_WRONG_TOKEN,
};
#define N_BAD (sizeof bad_kinds / sizeof bad_kinds[0])

static bool expected(enum kind k, int status)
{
    for (int i = 0; i < kinds[k].n_expect; i++)
        if (kinds[k].expect[i] == status)
            return true;
    return false;
}

/* Counts by (kind, status): statuses are few, a small list per kind. */
struct kcount {
    struct bench_statuses by;
    size_t total, unexpected, no_retry_after;
};
static struct kcount counts[K_COUNT];

static void count(enum kind k, int status, bool ok)
{
    struct kcount *c = &counts[k];
    c->total++;
    if (!ok)
        c->unexpected++;
    bench_statuses_add(&c->by, status);
}

/* ==== Test inputs ======================================================= */

struct blob {
    unsigned char *p;
    size_t n;
};

static struct {
    struct blob jpeg[MAX_IMAGES], png[MAX_IMAGES];
    int n_jpeg, n_png;
    struct blob bomb_jpeg, bomb_png, corrupt_jpeg, corrupt_png, gif, big;
    char **skus;
    size_t n_skus;
} in;

static uint32_t crc_table[256];

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Split one CSV line (RFC 4180 quoting) in place; returns the field count. */
static int csv_split(char *s, char **f, int max)
{
    int n = 0;
    while (n < max) {
        char *out = s;
        f[n++] = out;
        if (*s == '"') {
            s++;
            for (;;) {
                if (!*s)
                    break;
                if (*s == '"' && s[1] == '"') {
                    *out++ = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else
                    *out++ = *s++;
            }
        }
        while (*s && *s != ',' && *s != '\n' && *s != '\r')
            *out++ = *s++;
        char c = *s;
        *out = '\0';
        if (c != ',')
            break;
        s++;
    }
    return n;
}

/* SKUs and image paths from the demo catalog CSV; decodes up to MAX_IMAGES
 * photos spread over the catalog: each is posted as its PNG file (multipart)
 * and re-encoded as JPEG (q90; every third one upscaled to about 1
 * megapixel, a phone-photo sized upload). */
static int load_inputs(const char *csv, const char *images, size_t max_body)
{
    FILE *f = fopen(csv, "r");
    if (!f) {
        fprintf(stderr, "soak: cannot open %s\n", csv);
        return -1;
    }
    char line[16384], *fld[64];
    int sku_col = -1, img_col = -1;
    char **paths = NULL;
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int n = csv_split(line, fld, 64);
        if (sku_col < 0) {
            for (int i = 0; i < n; i++) {
                if (!strcmp(fld[i], "sku"))
                    sku_col = i;
                if (!strcmp(fld[i], "image"))
                    img_col = i;
            }
            if (sku_col < 0 || img_col < 0) {
                fprintf(stderr, "soak: %s has no sku/image columns\n", csv);
                fclose(f);
                return -1;
            }
            continue;
        }
        if (n <= sku_col || n <= img_col)
            continue;
        if (in.n_skus == cap) {
            cap = cap ? cap * 2 : 256;
            in.skus = realloc(in.skus, cap * sizeof *in.skus);
            paths = realloc(paths, cap * sizeof *paths);
            if (!in.skus || !paths)
                return -1;
        }
        char *bar = strchr(fld[img_col], '|');
        if (bar)
            *bar = '\0';
        in.skus[in.n_skus] = strdup(fld[sku_col]);
        paths[in.n_skus++] = strdup(fld[img_col]);
    }
    fclose(f);
    if (in.n_skus == 0) {
        fprintf(stderr, "soak: no products in %s\n", csv);
        return -1;
    }
    size_t step = in.n_skus / MAX_IMAGES ? in.n_skus / MAX_IMAGES : 1;
    for (size_t i = 0; i < in.n_skus && in.n_png < MAX_IMAGES; i += step) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", images, paths[i]);
        struct blob b;
        b.p = bench_slurp(p, &b.n);
        struct lk_image img = {0}, big = {0};
        if (!b.p || lk_image_decode(b.p, b.n, NULL, &img, NULL, NULL) != LK_OK) {
            free(b.p);
            continue;
        }
        in.png[in.n_png++] = b;
        const struct lk_image *src = &img;
        if (in.n_png % 3 == 0) {
            double s = sqrt(1e6 / ((double)img.width * img.height));
            if (lk_image_resize(&img, (uint32_t)lround(img.width * s), (uint32_t)lround(img.height * s), &big,
                                NULL) == LK_OK)
                src = &big;
        }
        struct blob j;
        j.p = bench_encode_jpeg(src, 90, &j.n);
        in.jpeg[in.n_jpeg++] = j;
        lk_image_free(&img);
        lk_image_free(&big);
    }
    for (size_t i = 0; i < in.n_skus; i++)
        free(paths[i]);
    free(paths);
    if (in.n_jpeg == 0 || in.n_png == 0) {
        fprintf(stderr, "soak: no decodable images under %s\n", images);
        return -1;
    }

    /* Pixel bomb (JPEG): a real small JPEG whose SOF0 header claims
     * 60000x60000 (3.6e9 pixels): refused from the header, 422. */
    const struct blob *j0 = &in.jpeg[0];
    in.bomb_jpeg.p = xmalloc(j0->n);
    memcpy(in.bomb_jpeg.p, j0->p, j0->n);
    in.bomb_jpeg.n = j0->n;
    for (size_t i = 2; i + 9 < j0->n; i++)
        if (in.bomb_jpeg.p[i] == 0xff && (in.bomb_jpeg.p[i + 1] == 0xc0 || in.bomb_jpeg.p[i + 1] == 0xc2)) {
            unsigned char *sof = in.bomb_jpeg.p + i + 5;    /* FF C0 len(2) precision(1) H(2) W(2) */
            sof[0] = 60000 >> 8;
            sof[1] = 60000 & 0xff;
            sof[2] = 60000 >> 8;
            sof[3] = 60000 & 0xff;
            break;
        }
    /* Pixel bomb (PNG): a real PNG whose IHDR (CRC fixed) claims
     * 20000x20000 (4e8 pixels). */
    const struct blob *p0 = &in.png[0];
    in.bomb_png.p = xmalloc(p0->n);
    memcpy(in.bomb_png.p, p0->p, p0->n);
    in.bomb_png.n = p0->n;
    if (p0->n > 33 && !memcmp(in.bomb_png.p + 12, "IHDR", 4)) {
        put_be32(in.bomb_png.p + 16, 20000);
        put_be32(in.bomb_png.p + 20, 20000);
        put_be32(in.bomb_png.p + 29, crc32_png(in.bomb_png.p + 12, 17));
    }
    /* Corrupt: the right signatures followed by noise (fixed seed). */
    in.corrupt_jpeg.n = in.corrupt_png.n = 4096;
    in.corrupt_jpeg.p = xmalloc(4096);
    in.corrupt_png.p = xmalloc(4096);
    uint32_t st = 12345;
    for (size_t i = 0; i < 4096; i++) {
        st = st * 1103515245u + 12345u;
        in.corrupt_jpeg.p[i] = in.corrupt_png.p[i] = (unsigned char)(st >> 16);
    }
    memcpy(in.corrupt_jpeg.p, "\xff\xd8\xff\xe0", 4);
    memcpy(in.corrupt_png.p, "\x89PNG\r\n\x1a\n", 8);
    /* Wrong magic: a GIF header, posted as image/jpeg. */
    static const char gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00"
                              "\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    in.gif.n = sizeof gif - 1;
    in.gif.p = xmalloc(in.gif.n);
    memcpy(in.gif.p, gif, in.gif.n);
    /* Oversized: one byte over the limit (never uploaded: the server
     * refuses it from Content-Length and curl waits for 100-continue). */
    in.big.n = max_body + 1;
    in.big.p = calloc(1, in.big.n);
    return in.big.p ? 0 : -1;
}

/* ==== Agents: one HTTP client identity with one request at a time ======= */

enum role { R_SHOPPER, R_BAD, R_ADMIN, R_BURST, R_MONITOR };

struct agent {
    enum role role;
    int index;
    char iface[40];             /* "host!127.0.x.y" */
    CURL *h;
    bool busy;
    double next;                /* earliest start of the next request (s) */
    double min_gap;             /* between starts (rate pacing) */
    double t0;
    enum kind kind;
    struct bench_buf body;
    bool retry_after;
    struct curl_slist *hdr;
    curl_mime *mime;
    size_t chunk_sent;          /* K_OVERSIZED_CHUNKED upload progress */
    char search_id[40], top_sku[80];
    unsigned rng;
    size_t patch_sku;           /* K_PATCH: which SKU and what it set (-1: unchanged) */
    long patch_stock, patch_price;
};

static struct {
    const char *url;
    char admin_auth[300], read_auth[300], wrong_auth[300];
    size_t max_body;
    const char *new_sku;
    int monitor_cycle;
    double start;
    /* mid-run reload state machine */
    bool want_new_before, want_reload, want_new_after;
    int n_admins;
    /* The last acknowledged PATCH per SKU (-1: never patched): checked
     * against the catalog database at the end (no lost update). */
    long *last_stock, *last_price;
    size_t events_acked;
} g;

static unsigned rnd(struct agent *a)
{
    a->rng = a->rng * 1664525u + 1013904223u;
    return a->rng >> 8;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct agent *a = ud;
    if (sz * n > 12 && !strncasecmp(p, "Retry-After:", 12))
        a->retry_after = true;
    return sz * n;
}

/* Chunked oversized upload: zeros until a little past the limit (the
 * server should have closed the connection long before the end). */
static size_t on_read_chunked(char *buf, size_t sz, size_t n, void *ud)
{
    struct agent *a = ud;
    size_t want = sz * n, total = g.max_body + (256u << 10);
    if (a->chunk_sent >= total)
        return 0;
    if (want > total - a->chunk_sent)
        want = total - a->chunk_sent;
    memset(buf, 0, want);
    if (a->chunk_sent == 0 && want >= 3)
        memcpy(buf, "\xff\xd8\xff", 3);
    a->chunk_sent += want;
    return want;
}

static void set_url(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_url(struct agent *a, const char *fmt, ...)
{
    char path[1024], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", g.url, path);
    curl_easy_setopt(a->h, CURLOPT_URL, full);
}

static void post_blob(struct agent *a, const struct blob *b, const char *ctype)
{
    char h[128];
    snprintf(h, sizeof h, "Content-Type: %s", ctype);
    a->hdr = curl_slist_append(a->hdr, h);
    curl_easy_setopt(a->h, CURLOPT_POST, 1L);
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, (const char *)b->p);
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->n);
}

static void post_json(struct agent *a, const char *method, const char *json)
{
    a->hdr = curl_slist_append(a->hdr, "Content-Type: application/json");
    curl_easy_setopt(a->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(a->h, CURLOPT_COPYPOSTFIELDS, json);
}

static enum kind pick(struct agent *a, double t)
{
    unsigned r = rnd(a) % 100;
    switch (a->role) {
    case R_SHOPPER:
        if (r < 50)
            return K_SEARCH_JPEG;
        if (r < 75)
            return K_SEARCH_PNG_MULTIPART;
        if (r < 90 || !a->search_id[0])
            return K_SIMILAR;
        return K_EVENT;
    case R_BAD:
        return bad_kinds[rnd(a) % N_BAD];
    case R_ADMIN:
        if (a->index == 0) {
            if (g.want_new_before) {
                g.want_new_before = false;
                return K_NEW_SKU_BEFORE;
            }
            if (g.want_reload) {
                g.want_reload = false;
                return K_RELOAD;
            }
            if (g.want_new_after) {
                g.want_new_after = false;
                return K_NEW_SKU_AFTER;
            }
        }
        return r < 95 ? K_PATCH : K_PATCH_UNKNOWN;
    case R_BURST:
        return K_BURST;
    case R_MONITOR:
        (void)t;
        switch (g.monitor_cycle++ % 3) {
        case 0: return K_HEALTHZ;
        case 1: return K_READYZ;
        default: return K_METRICS;
        }
    }
    return K_HEALTHZ;
}

/* Configure a->h for a->kind (after curl_easy_reset). */
static void prepare(struct agent *a)
{
    CURL *h = a->h;
    curl_easy_reset(h);
    curl_slist_free_all(a->hdr);
    a->hdr = NULL;
    a->body.len = 0;
    a->retry_after = false;
    a->chunk_sent = 0;
    curl_easy_setopt(h, CURLOPT_INTERFACE, a->iface);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_PRIVATE, a);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    const char *auth = a->role == R_ADMIN ? g.admin_auth : g.read_auth;
    const char *sku = in.skus[rnd(a) % in.n_skus];
    switch (a->kind) {
    case K_SEARCH_JPEG:
        set_url(a, "/v1/search?k=%u", 4 + rnd(a) % 20);
        post_blob(a, &in.jpeg[rnd(a) % (unsigned)in.n_jpeg], "image/jpeg");
        break;
    case K_SEARCH_PNG_MULTIPART: {
        static const char *const params[] = {"", "?in_stock=false", "?k=5", "?min_price=1.00&max_price=500"};
        set_url(a, "/v1/search%s", params[rnd(a) % 4]);
        const struct blob *b = &in.png[rnd(a) % (unsigned)in.n_png];
        a->mime = curl_mime_init(h);
        curl_mimepart *part = curl_mime_addpart(a->mime);
        curl_mime_name(part, "image");
        curl_mime_filename(part, "photo.png");
        curl_mime_type(part, "image/png");
        curl_mime_data(part, (const char *)b->p, b->n);
        curl_easy_setopt(h, CURLOPT_MIMEPOST, a->mime);
        break;
    }
    case K_SIMILAR:
    case K_BURST:
        set_url(a, "/v1/items/%s/similar?k=%u", sku, 4 + rnd(a) % 10);
        break;
    case K_EVENT: {
        static const char *const types[] = {"view", "add_to_cart", "purchase"};
        char json[256];
        snprintf(json, sizeof json, "{\"search_id\":\"%s\",\"sku\":\"%s\",\"type\":\"%s\",\"ts\":%lld}",
                 a->search_id, a->top_sku, types[rnd(a) % 3], (long long)time(NULL));
        set_url(a, "/v1/events");
        post_json(a, "POST", json);
        a->search_id[0] = '\0';     /* one event per search */
        break;
    }
    case K_HEALTHZ: set_url(a, "/healthz"); break;
    case K_READYZ: set_url(a, "/readyz"); break;
    case K_METRICS: set_url(a, "/metrics"); break;
    case K_OVERSIZED:
        set_url(a, "/v1/search");
        post_blob(a, &in.big, "image/jpeg");
        break;
    case K_OVERSIZED_CHUNKED:
        set_url(a, "/v1/search");
        a->hdr = curl_slist_append(a->hdr, "Content-Type: image/jpeg");
        a->hdr = curl_slist_append(a->hdr, "Transfer-Encoding: chunked");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read_chunked);
        curl_easy_setopt(h, CURLOPT_READDATA, a);
        break;
    case K_WRONG_TYPE:
        set_url(a, "/v1/search");
        post_blob(a, &in.gif, "image/gif");
        break;
    case K_WRONG_MAGIC:
        set_url(a, "/v1/search");
        post_blob(a, &in.gif, "image/jpeg");
        break;
    case K_CORRUPT_JPEG:
        set_url(a, "/v1/search");
        post_blob(a, &in.corrupt_jpeg, "image/jpeg");
        break;
    case K_CORRUPT_PNG:
        set_url(a, "/v1/search");
        post_blob(a, &in.corrupt_png, "image/png");
        break;
    case K_BOMB_JPEG:
        set_url(a, "/v1/search");
        post_blob(a, &in.bomb_jpeg, "image/jpeg");
        break;
    case K_BOMB_PNG:
        set_url(a, "/v1/search");
        post_blob(a, &in.bomb_png, "image/png");
        break;
    case K_BAD_PARAM: {
        static const char *const bad[] = {"k=0", "k=101", "k=abc", "in_stock=maybe", "instock=false",
                                          "min_price=1.234", "region=%21%21", "k=5&k=6"};
        set_url(a, "/v1/search?%s", bad[rnd(a) % (sizeof bad / sizeof bad[0])]);
        post_blob(a, &in.jpeg[0], "image/jpeg");
        break;
    }
    case K_UNKNOWN_ROUTE: set_url(a, "/v1/nothing/here/%u", rnd(a) % 1000); break;
    case K_WRONG_METHOD:
        set_url(a, "/v1/search");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    case K_NO_TOKEN:
        auth = NULL;
        set_url(a, "/v1/items/%s/similar", sku);
        break;
    case K_WRONG_TOKEN:
        set_url(a, "/v1/items/%s", sku);
        post_json(a, "PATCH", "{\"stock\": 1}");
        break;
    case K_PATCH: {
        /* Admin handle i patches only SKUs with index % n_admins == i, so
         * the PATCHes of one SKU are sequential and the last 200 is the
         * value the catalog must hold at the end. */
        char json[128];
        size_t si = rnd(a) % in.n_skus;
        si -= si % (size_t)g.n_admins;
        si += (size_t)a->index;
        if (si >= in.n_skus)
            si = (size_t)a->index;
        a->patch_sku = si;
        a->patch_stock = a->patch_price = -1;
        if (rnd(a) % 2) {
            a->patch_stock = rnd(a) % 40;
            snprintf(json, sizeof json, "{\"stock\": %ld}", a->patch_stock);
        } else {
            a->patch_price = 100 + rnd(a) % 20000;
            snprintf(json, sizeof json, "{\"price\": \"%ld.%02ld\"}", a->patch_price / 100, a->patch_price % 100);
        }
        set_url(a, "/v1/items/%s", in.skus[si]);
        post_json(a, "PATCH", json);
        break;
    }
    case K_PATCH_UNKNOWN:
        set_url(a, "/v1/items/NO-SUCH-SKU-%u", rnd(a) % 1000);
        post_json(a, "PATCH", "{\"stock\": 3}");
        break;
    case K_RELOAD:
        set_url(a, "/v1/index:reload");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        break;
    case K_NEW_SKU_BEFORE:
    case K_NEW_SKU_AFTER:
        set_url(a, "/v1/items/%s/similar", g.new_sku);
        break;
    case K_COUNT: break;
    }
    if (a->kind == K_WRONG_TOKEN)
        auth = g.read_auth;
    if (auth)
        a->hdr = curl_slist_append(a->hdr, auth);
    if (a->kind != K_OVERSIZED)
        a->hdr = curl_slist_append(a->hdr, "Expect:");  /* no 100-continue round trip */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, a->hdr);
}

/* Remember a search's id and top SKU for the shopper's next event. */
static void note_search(struct agent *a)
{
    const char *id = a->body.p ? strstr(a->body.p, "\"search_id\":\"") : NULL;
    const char *sku = a->body.p ? strstr(a->body.p, "\"sku\":\"") : NULL;
    if (!id || !sku)
        return;
    id += 13;
    sku += 7;
    size_t ni = strcspn(id, "\""), ns = strcspn(sku, "\"");
    if (ni >= sizeof a->search_id || ns >= sizeof a->top_sku)
        return;
    memcpy(a->search_id, id, ni);
    a->search_id[ni] = '\0';
    memcpy(a->top_sku, sku, ns);
    a->top_sku[ns] = '\0';
}

/* ==== Latency and interval records ===================================== */

struct lat {
    float t, ms;
};
static struct lat *lats;
static size_t n_lats, cap_lats;

struct sample {
    double t;
    long rss_kb;
    int fds;
    size_t reqs, s2xx, s4xx, s429, s5xx, s0;
    size_t searches;
    double p50, p95, p99;
    int slow_open;
    double load1;
};
static struct sample samples[MAX_SAMPLES];
static int n_samples;
static size_t iv_reqs, iv_2xx, iv_4xx, iv_429, iv_5xx, iv_0;
static size_t n_5xx, n_unexpected;

static long proc_rss_kb(int pid)
{
    char p[64], line[256];
    long kb = -1;
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static int proc_fds(int pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/fd", pid);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* ==== Slowloris (own thread, raw sockets) ============================== */

enum slow_type { S_IDLE, S_HEADERS, S_BODY, S_TYPES };
static const char *const slow_names[S_TYPES] = {"idle (sends nothing)", "headers dripped 1 B/s",
                                                "body dripped 1 B/s"};

struct slow_conn {
    int fd;
    enum slow_type type;
    double opened;
    size_t sent;
};

static struct {
    pthread_mutex_t mu;
    struct sockaddr_in server;
    int n;
    double bound[S_TYPES];      /* s: longest a connection of the type may live */
    volatile int stop;
    size_t opened[S_TYPES], cut[S_TYPES], over_bound[S_TYPES], connect_fail;
    double max_hold[S_TYPES];
    int open_now;
} slow;

static const char slow_hdr[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n";
/* With the read token (the server wants it for searches), or it would be a
 * 401 before the body. */
static char slow_body_hdr[600];

static int slow_open(struct slow_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.6.1", &me.sin_addr);
    if (bind(c->fd, (struct sockaddr *)&me, sizeof me) != 0 ||
        (connect(c->fd, (struct sockaddr *)&slow.server, sizeof slow.server) != 0 && errno != EINPROGRESS)) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->opened = now_s();
    c->sent = 0;
    if (c->type == S_BODY) {
        /* Headers in one go (the connection is ready by the time the first
         * drip is due; a short write here only makes the drip start later). */
        struct pollfd p = {c->fd, POLLOUT, 0};
        poll(&p, 1, 1000);
        ssize_t w = send(c->fd, slow_body_hdr, strlen(slow_body_hdr), MSG_NOSIGNAL);
        if (w > 0)
            c->sent = (size_t)w;
    }
    return 0;
}

static void slow_closed(struct slow_conn *c, double now)
{
    double held = now - c->opened;
    pthread_mutex_lock(&slow.mu);
    slow.cut[c->type]++;
    if (held > slow.max_hold[c->type])
        slow.max_hold[c->type] = held;
    if (held > slow.bound[c->type])
        slow.over_bound[c->type]++;
    slow.open_now--;
    pthread_mutex_unlock(&slow.mu);
    close(c->fd);
    c->fd = -1;
}

static void *slow_main(void *arg)
{
    (void)arg;
    struct slow_conn *cs = calloc((size_t)slow.n, sizeof *cs);
    if (!cs)
        return NULL;
    for (int i = 0; i < slow.n; i++) {
        cs[i].fd = -1;
        cs[i].type = (enum slow_type)(i % S_TYPES);
    }
    while (!slow.stop) {
        double now = now_s();
        for (int i = 0; i < slow.n; i++) {
            struct slow_conn *c = &cs[i];
            if (c->fd < 0) {
                if (slow_open(c) != 0) {
                    pthread_mutex_lock(&slow.mu);
                    slow.connect_fail++;
                    pthread_mutex_unlock(&slow.mu);
                    continue;
                }
                pthread_mutex_lock(&slow.mu);
                slow.opened[c->type]++;
                slow.open_now++;
                pthread_mutex_unlock(&slow.mu);
                continue;
            }
            /* Closed by the server?  (EOF, RST, or any bytes: a reply.) */
            char buf[512];
            ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                slow_closed(c, now);
                continue;
            }
            /* Drip one more byte. */
            /* Headers: the request line and a few headers, then an endless
             * series of "X-a: b" header lines, never the empty line. */
            char b = 'a';
            if (c->type == S_HEADERS)
                b = c->sent < sizeof slow_hdr - 1 ? slow_hdr[c->sent]
                                                  : "X-a: b\r\n"[(c->sent - (sizeof slow_hdr - 1)) % 8];
            if (c->type != S_IDLE) {
                ssize_t w = send(c->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w == 1)
                    c->sent++;
                else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    slow_closed(c, now);
                    continue;
                }
            }
        }
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    /* Connections still open at the end: check they are within bound. */
    double now = now_s();
    for (int i = 0; i < slow.n; i++)
        if (cs[i].fd >= 0) {
            double held = now - cs[i].opened;
            pthread_mutex_lock(&slow.mu);
            if (held > slow.bound[cs[i].type])
                slow.over_bound[cs[i].type]++;
            if (held > slow.max_hold[cs[i].type])
                slow.max_hold[cs[i].type] = held;
            slow.open_now--;
            pthread_mutex_unlock(&slow.mu);
            close(cs[i].fd);
        }
    free(cs);
    return NULL;
}

/* ==== Main loop ========================================================== */

static void usage(void)
{
    fprintf(stderr,
            "usage: soak --url http://127.0.0.1:PORT --pid PID --catalog CSV --images DIR --tokens FILE\n"
            "            [--seconds 600] [--rate-rps 5] [--rate-burst 10] [--max-body BYTES]\n"
            "            [--conn-timeout S] [--request-timeout S] [--reload-cmd CMD] [--new-sku SKU]\n"
            "            [--rss-bound-mb 64] [--shoppers 6] [--bad 3] [--admins 2] [--burst 30]\n"
            "            [--slowloris 12] [--json FILE]\n");
}

static int read_tokens(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "soak: cannot read token file %s\n", path);
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strncmp(line, "admin=", 6))
            snprintf(g.admin_auth, sizeof g.admin_auth, "Authorization: Bearer %.256s", line + 6);
        else if (!strncmp(line, "read=", 5))
            snprintf(g.read_auth, sizeof g.read_auth, "Authorization: Bearer %.256s", line + 5);
    }
    fclose(f);
    if (!g.admin_auth[0] || !g.read_auth[0]) {
        fprintf(stderr, "soak: %s needs admin= and read= lines\n", path);
        return -1;
    }
    return 0;
}

static void interval_latency(double t_from, double t_to, struct sample *s, double *buf)
{
    size_t n = 0;
    for (size_t i = 0; i < n_lats; i++)
        if (lats[i].t >= t_from && lats[i].t < t_to)
            buf[n++] = lats[i].ms;
    qsort(buf, n, sizeof *buf, bench_cmp_double);
    s->searches = n;
    s->p50 = bench_pct(buf, n, 50);
    s->p95 = bench_pct(buf, n, 95);
    s->p99 = bench_pct(buf, n, 99);
}

int main(int argc, char **argv)
{
    const char *catalog_db = NULL;
    const char *url = NULL, *csv = NULL, *images = NULL, *tokens = NULL, *reload_cmd = NULL, *json = NULL;
    int pid = 0, n_shoppers = 6, n_bad = 3, n_admins = 2, n_burst = 30, n_slow = 12;
    double seconds = 600, rate_rps = 5, rss_bound_mb = 64;
    unsigned rate_burst = 10, conn_timeout = 10, request_timeout = 20;
    size_t max_body = 2u << 20;
    g.new_sku = "SOAK-NEW-0001";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--pid")) pid = atoi(v);
        else if (!strcmp(a, "--catalog")) csv = v;
        else if (!strcmp(a, "--images")) images = v;
        else if (!strcmp(a, "--tokens")) tokens = v;
        else if (!strcmp(a, "--seconds")) seconds = strtod(v, NULL);
        else if (!strcmp(a, "--rate-rps")) rate_rps = strtod(v, NULL);
        else if (!strcmp(a, "--rate-burst")) rate_burst = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--max-body")) max_body = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--conn-timeout")) conn_timeout = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--request-timeout")) request_timeout = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--reload-cmd")) reload_cmd = v;
        else if (!strcmp(a, "--new-sku")) g.new_sku = v;
        else if (!strcmp(a, "--rss-bound-mb")) rss_bound_mb = strtod(v, NULL);
        else if (!strcmp(a, "--shoppers")) n_shoppers = atoi(v);
        else if (!strcmp(a, "--bad")) n_bad = atoi(v);
        else if (!strcmp(a, "--admins")) n_admins = atoi(v);
        else if (!strcmp(a, "--burst")) n_burst = atoi(v);
        else if (!strcmp(a, "--slowloris")) n_slow = atoi(v);
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--catalog-db")) catalog_db = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!url || pid <= 0 || !csv || !images || !tokens || seconds < 20 || !(rate_rps > 0) || n_shoppers < 1 ||
        n_shoppers > 250 || n_bad < 1 || n_bad > 250 || n_admins < 1 || n_admins > 8 || n_burst < 1 ||
        n_burst > 64 || n_slow < 0 || n_slow > 256) {
        usage();
        return 2;
    }
    unsigned port = 0;
    if (sscanf(url, "http://127.0.0.1:%u", &port) != 1 || port == 0 || port > 65535) {
        fprintf(stderr, "soak: the URL must be http://127.0.0.1:PORT (loopback only)\n");
        return 2;
    }
    g.url = url;
    g.max_body = max_body;
    g.n_admins = n_admins;
    if (read_tokens(tokens) != 0 || load_inputs(csv, images, max_body) != 0)
        return 1;
    g.last_stock = xmalloc(in.n_skus * sizeof *g.last_stock);
    g.last_price = xmalloc(in.n_skus * sizeof *g.last_price);
    for (size_t i = 0; i < in.n_skus; i++)
        g.last_stock[i] = g.last_price[i] = -1;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct bench_sysinfo si;
    bench_sysinfo_get(&si);
    FILE *js = bench_json_open(json);
    double warm_s = seconds / 10 < 60 ? seconds / 10 : 60;
    printf("# soak: %.0f s of mixed traffic against lookalike serve (pid %d) at %s\n", seconds, pid, url);
    bench_sysinfo_print(&si, stdout);
    printf("# server limits: rate %.1f requests/s per client address, burst %u; max body %zu bytes; "
           "idle timeout %u s; request body deadline %u s\n",
           rate_rps, rate_burst, max_body, conn_timeout, request_timeout);
    printf("# clients (one source address each, see bench/soak.c): %d shoppers paced at %.1f req/s each, %d bad "
           "clients paced likewise, %d admin handles (PATCH, reload), 1 burst client (%d at once every 20 s), "
           "1 monitor (1 req/s), %d slowloris sockets\n",
           n_shoppers, 0.8 * rate_rps, n_bad, n_admins, n_burst, n_slow);
    size_t jmin = SIZE_MAX, jmax = 0, pmin = SIZE_MAX, pmax = 0;
    for (int i = 0; i < in.n_jpeg; i++) {
        jmin = in.jpeg[i].n < jmin ? in.jpeg[i].n : jmin;
        jmax = in.jpeg[i].n > jmax ? in.jpeg[i].n : jmax;
    }
    for (int i = 0; i < in.n_png; i++) {
        pmin = in.png[i].n < pmin ? in.png[i].n : pmin;
        pmax = in.png[i].n > pmax ? in.png[i].n : pmax;
    }
    printf("# inputs: %zu SKUs; %d JPEG uploads (demo photos, q90, every third upscaled to ~1 MP; %zu..%zu bytes); "
           "%d PNG uploads (the demo files, %zu..%zu bytes)\n",
           in.n_skus, in.n_jpeg, jmin, jmax, in.n_png, pmin, pmax);
    fflush(stdout);

    /* Agents. */
    int n_agents = n_shoppers + n_bad + n_admins + n_burst + 1;
    struct agent *ag = calloc((size_t)n_agents, sizeof *ag);
    CURLM *m = curl_multi_init();
    if (!ag || !m)
        return 1;
    double pace = 1.0 / (0.8 * rate_rps);
    int ai = 0;
    for (int i = 0; i < n_shoppers; i++, ai++) {
        ag[ai].role = R_SHOPPER;
        ag[ai].index = i;
        snprintf(ag[ai].iface, sizeof ag[ai].iface, "host!127.0.1.%d", i + 1);
        ag[ai].min_gap = pace;
    }
    for (int i = 0; i < n_bad; i++, ai++) {
        ag[ai].role = R_BAD;
        ag[ai].index = i;
        snprintf(ag[ai].iface, sizeof ag[ai].iface, "host!127.0.2.%d", i + 1);
        ag[ai].min_gap = pace;
    }
    for (int i = 0; i < n_admins; i++, ai++) {
        ag[ai].role = R_ADMIN;
        ag[ai].index = i;
        snprintf(ag[ai].iface, sizeof ag[ai].iface, "host!127.0.3.1");
        ag[ai].min_gap = 0.1;
    }
    for (int i = 0; i < n_burst; i++, ai++) {
        ag[ai].role = R_BURST;
        ag[ai].index = i;
        snprintf(ag[ai].iface, sizeof ag[ai].iface, "host!127.0.4.1");
    }
    ag[ai].role = R_MONITOR;
    snprintf(ag[ai].iface, sizeof ag[ai].iface, "host!127.0.5.1");
    ag[ai].min_gap = 1.0;
    for (int i = 0; i < n_agents; i++) {
        ag[i].h = curl_easy_init();
        ag[i].rng = 0x9e3779b9u * (unsigned)(i + 1);
        if (!ag[i].h)
            return 1;
    }

    /* Slowloris thread. */
    pthread_mutex_init(&slow.mu, NULL);
    slow.n = n_slow;
    slow.server.sin_family = AF_INET;
    slow.server.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &slow.server.sin_addr);
    snprintf(slow_body_hdr, sizeof slow_body_hdr,
             "POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n%s\r\n"
             "Content-Length: 100000\r\n\r\n", g.read_auth);
    slow.bound[S_IDLE] = conn_timeout + 5.0;
    slow.bound[S_HEADERS] = conn_timeout + 5.0;
    slow.bound[S_BODY] = request_timeout + 5.0;

    long rss0 = proc_rss_kb(pid), rss_warm = -1, rss_max = rss0;
    int fd0 = proc_fds(pid), fd_max = fd0;
    if (rss0 < 0 || fd0 < 0) {
        fprintf(stderr, "soak: cannot read /proc/%d (is the server running?)\n", pid);
        return 1;
    }
    printf("# before traffic: RSS %.1f MB, %d open fds\n", rss0 / 1024.0, fd0);
    printf("\n## every %.0f s: server RSS and fds, requests in the interval, valid-search latency (ms)\n\n",
           INTERVAL_S);
    printf("| %5s | %7s | %4s | %5s | %5s | %5s | %5s | %3s | %4s | %5s | %7s | %7s | %7s | %4s | %5s |\n", "t s",
           "RSS MB", "fds", "reqs", "2xx", "4xx", "429", "5xx", "none", "srch", "p50", "p95", "p99", "slow", "load");
    printf("|------:|--------:|-----:|------:|------:|------:|------:|----:|-----:|------:|--------:|--------:|"
           "--------:|-----:|------:|\n");
    fflush(stdout);

    pthread_t slow_thread;
    if (n_slow > 0 && pthread_create(&slow_thread, NULL, slow_main, NULL) != 0)
        return 1;

    g.start = now_s();
    g.want_new_before = true;
    double t_end = g.start + seconds, next_sample = g.start + INTERVAL_S;
    double next_burst = g.start + 5.0;
    bool reload_started = false, sighup_sent = false, stopping = false;
    pid_t reload_pid = 0;
    int reload_rc = -1;
    double reload_t0 = 0, reload_cmd_s = -1, reload_http_t = -1, sighup_t = -1;
    bool reload_ok = false;
    int inflight = 0;
    double *lbuf = NULL;
    size_t lbuf_cap = 0;

    for (;;) {
        double now = now_s();
        if (!stopping && now >= t_end)
            stopping = true;
        /* Mid-run reload: the update command, then POST /v1/index:reload. */
        if (!reload_started && now >= g.start + seconds / 2) {
            reload_started = true;
            reload_t0 = now;
            if (reload_cmd) {
                char *sh_argv[] = {"sh", "-c", (char *)reload_cmd, NULL};
                if (posix_spawn(&reload_pid, "/bin/sh", NULL, NULL, sh_argv, environ) != 0)
                    reload_pid = 0;
            } else {
                g.want_reload = true;
            }
        }
        if (reload_pid > 0) {
            int wst;
            if (waitpid(reload_pid, &wst, WNOHANG) == reload_pid) {
                reload_rc = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128;
                reload_cmd_s = now - reload_t0;
                reload_pid = 0;
                g.want_reload = true;   /* reload either way; a failed update shows in reload_rc */
            }
        }
        if (!sighup_sent && now >= g.start + seconds * 3 / 4) {
            sighup_sent = true;
            sighup_t = now - g.start;
            kill(pid, SIGHUP);
        }
        if (now >= next_burst) {
            for (int i = 0; i < n_agents; i++)
                if (ag[i].role == R_BURST)
                    ag[i].next = now;
            next_burst += 20.0;
        }
        /* Start idle agents that are due. */
        double wake = now + 0.2;
        for (int i = 0; i < n_agents && !stopping; i++) {
            struct agent *a = &ag[i];
            if (a->busy)
                continue;
            if (a->role == R_BURST && a->next <= 0)
                continue;
            if (a->next > now) {
                if (a->next < wake)
                    wake = a->next;
                continue;
            }
            a->kind = pick(a, now - g.start);
            prepare(a);
            a->busy = true;
            a->t0 = now;
            a->next = a->role == R_BURST ? 0 : now + a->min_gap;
            curl_multi_add_handle(m, a->h);
            inflight++;
        }
        if (stopping && inflight == 0 && reload_pid == 0)
            break;

        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct agent *a;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
            double t = now_s();
            long status = 0;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(m, a->h);
            inflight--;
            a->busy = false;
            if (a->mime) {
                curl_mime_free(a->mime);
                a->mime = NULL;
            }
            bool ok = expected(a->kind, (int)status);
            if (status == 429 && !a->retry_after) {
                ok = false;
                counts[a->kind].no_retry_after++;
            }
            count(a->kind, (int)status, ok);
            if (!ok) {
                n_unexpected++;
                if (n_unexpected <= 20)
                    fprintf(stderr, "soak: t=%.1fs %s: status %ld (curl: %s) %.200s\n", t - g.start,
                            kinds[a->kind].name, status, curl_easy_strerror(msg->data.result),
                            a->body.p ? a->body.p : "");
            }
            iv_reqs++;
            if (status >= 500)
                iv_5xx++, n_5xx++;
            else if (status == 429)
                iv_429++;
            else if (status >= 400)
                iv_4xx++;
            else if (status >= 200 && status < 300)
                iv_2xx++;
            else if (status == 0)
                iv_0++;
            if ((a->kind == K_SEARCH_JPEG || a->kind == K_SEARCH_PNG_MULTIPART) && status == 200) {
                if (n_lats == cap_lats) {
                    cap_lats = cap_lats ? cap_lats * 2 : 4096;
                    lats = realloc(lats, cap_lats * sizeof *lats);
                    if (!lats)
                        return 1;
                }
                lats[n_lats].t = (float)(a->t0 - g.start);
                lats[n_lats++].ms = (float)((t - a->t0) * 1e3);
                note_search(a);
            }
            if (a->kind == K_PATCH && status == 200) {
                if (a->patch_stock >= 0)
                    g.last_stock[a->patch_sku] = a->patch_stock;
                if (a->patch_price >= 0)
                    g.last_price[a->patch_sku] = a->patch_price;
            }
            if (a->kind == K_EVENT && status == 202)
                g.events_acked++;
            if (a->kind == K_RELOAD) {
                reload_http_t = t - g.start;
                reload_ok = status == 200;
                if (reload_ok)
                    g.want_new_after = true;
            }
            /* The next request waits for the pace, and at least 10 ms. */
            if (a->role != R_BURST && a->next < t + 0.01)
                a->next = t + 0.01;
        }

        now = now_s();
        if (now >= next_sample && n_samples < MAX_SAMPLES) {
            struct sample *s = &samples[n_samples++];
            s->t = next_sample - g.start;
            s->rss_kb = proc_rss_kb(pid);
            s->fds = proc_fds(pid);
            s->reqs = iv_reqs;
            s->s2xx = iv_2xx;
            s->s4xx = iv_4xx;
            s->s429 = iv_429;
            s->s5xx = iv_5xx;
            s->s0 = iv_0;
            iv_reqs = iv_2xx = iv_4xx = iv_429 = iv_5xx = iv_0 = 0;
            if (lbuf_cap < n_lats + 1) {
                lbuf_cap = (n_lats + 1) * 2;
                lbuf = realloc(lbuf, lbuf_cap * sizeof *lbuf);
                if (!lbuf)
                    return 1;
            }
            interval_latency(s->t - INTERVAL_S, s->t, s, lbuf);
            pthread_mutex_lock(&slow.mu);
            s->slow_open = slow.open_now;
            pthread_mutex_unlock(&slow.mu);
            s->load1 = bench_loadavg();
            if (s->rss_kb > rss_max)
                rss_max = s->rss_kb;
            if (s->fds > fd_max)
                fd_max = s->fds;
            if (rss_warm < 0 && s->t >= warm_s - 1e-6)
                rss_warm = s->rss_kb;
            printf("| %5.0f | %7.1f | %4d | %5zu | %5zu | %5zu | %5zu | %3zu | %4zu | %5zu | %7.1f | %7.1f | %7.1f | "
                   "%4d | %5.2f |\n",
                   s->t, s->rss_kb / 1024.0, s->fds, s->reqs, s->s2xx, s->s4xx, s->s429, s->s5xx, s->s0,
                   s->searches, s->p50, s->p95, s->p99, s->slow_open, s->load1);
            fflush(stdout);
            if (js) {
                bench_json_begin(js, &si, "soak", "sample");
                fprintf(js,
                        ",\"t_s\":%.0f,\"rss_kb\":%ld,\"fds\":%d,\"requests\":%zu,\"status_2xx\":%zu,"
                        "\"status_4xx\":%zu,\"status_429\":%zu,\"status_5xx\":%zu,\"no_response\":%zu,"
                        "\"searches\":%zu,\"p50_ms\":%.2f,\"p95_ms\":%.2f,\"p99_ms\":%.2f,\"slowloris_open\":%d",
                        s->t, s->rss_kb, s->fds, s->reqs, s->s2xx, s->s4xx, s->s429, s->s5xx, s->s0, s->searches,
                        s->p50, s->p95, s->p99, s->slow_open);    /* load1 is in the sysinfo record */
                bench_json_end(js);
            }
            next_sample += INTERVAL_S;
        }
        double until = (next_sample < wake ? next_sample : wake) - now;
        int ms = until > 0 ? (int)(until * 1e3) + 1 : 0;
        if (ms > 200)
            ms = 200;
        curl_multi_poll(m, NULL, 0, ms, NULL);
    }
    double wall = now_s() - g.start;

    /* Quiesce: stop the slowloris thread, close every client connection,
     * give the server a moment to notice, then read RSS and fds. */
    slow.stop = 1;
    if (n_slow > 0)
        pthread_join(slow_thread, NULL);
    for (int i = 0; i < n_agents; i++) {
        curl_easy_cleanup(ag[i].h);
        curl_slist_free_all(ag[i].hdr);
        free(ag[i].body.p);
    }
    curl_multi_cleanup(m);
    struct timespec ts = {3, 0};
    nanosleep(&ts, NULL);
    long rss_end = proc_rss_kb(pid);
    int fd_end = proc_fds(pid);
    if (rss_end > rss_max)
        rss_max = rss_end;
    if (rss_warm < 0)
        rss_warm = rss0;

    /* No lost writes: every acknowledged PATCH (the last per SKU) and every
     * acknowledged event is in the catalog database, read after the
     * traffic, through the mid-run index update, reload and SIGHUP. */
    size_t db_checked = 0, db_mismatch = 0;
    long long db_events = -1;
    bool db_ok = true;
    if (catalog_db) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        if (sqlite3_open_v2(catalog_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "SELECT stock, price_minor FROM products WHERE sku = ?1", -1, &st, NULL) !=
                SQLITE_OK) {
            fprintf(stderr, "soak: cannot read %s: %s\n", catalog_db, db ? sqlite3_errmsg(db) : "?");
            db_ok = false;
        } else {
            sqlite3_busy_timeout(db, 5000);
            for (size_t i = 0; i < in.n_skus; i++) {
                if (g.last_stock[i] < 0 && g.last_price[i] < 0)
                    continue;
                db_checked++;
                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, in.skus[i], -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_ROW ||
                    (g.last_stock[i] >= 0 && sqlite3_column_int64(st, 0) != g.last_stock[i]) ||
                    (g.last_price[i] >= 0 && sqlite3_column_int64(st, 1) != g.last_price[i])) {
                    if (db_mismatch++ < 10)
                        fprintf(stderr, "soak: %s: catalog has stock %lld price_minor %lld, last PATCH set %ld / %ld\n",
                                in.skus[i], (long long)sqlite3_column_int64(st, 0),
                                (long long)sqlite3_column_int64(st, 1), g.last_stock[i], g.last_price[i]);
                }
            }
            sqlite3_finalize(st);
            st = NULL;
            if (sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW)
                db_events = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
            db_ok = db_mismatch == 0 && db_events == (long long)g.events_acked;
        }
        sqlite3_close(db);
    }

    /* ==== Report ==== */
    size_t total = 0;
    printf("\n## requests by kind and status (status 0 = connection closed without a response)\n\n");
    printf("| %-28s | %-9s | %-40s | %10s |\n", "kind", "expected", "status: count", "unexpected");
    printf("|------------------------------|-----------|------------------------------------------|-----------:|\n");
    for (int k = 0; k < K_COUNT; k++) {
        struct kcount *c = &counts[k];
        char ex[32] = "", by[256] = "";
        size_t off = 0;
        for (int i = 0; i < kinds[k].n_expect; i++)
            off += (size_t)snprintf(ex + off, sizeof ex - off, "%s%d", i ? "," : "", kinds[k].expect[i]);
        off = 0;
        for (int i = 0; i < c->by.distinct && off < sizeof by; i++)
            off += (size_t)snprintf(by + off, sizeof by - off, "%s%d: %zu", i ? ", " : "", c->by.status[i], c->by.n[i]);
        printf("| %-28s | %-9s | %-40s | %10zu |\n", kinds[k].name, ex, c->total ? by : "(none sent)",
               c->unexpected);
        total += c->total;
        if (js) {
            bench_json_begin(js, &si, "soak", "status");
            fputs(",\"kind\":", js);
            bench_json_str(js, kinds[k].name);
            fputs(",\"expected\":[", js);
            for (int i = 0; i < kinds[k].n_expect; i++)
                fprintf(js, "%s%d", i ? "," : "", kinds[k].expect[i]);
            fputs("],\"by_status\":{", js);
            for (int i = 0; i < c->by.distinct; i++)
                fprintf(js, "%s\"%d\":%zu", i ? "," : "", c->by.status[i], c->by.n[i]);
            fprintf(js, "},\"total\":%zu,\"unexpected\":%zu,\"429_without_retry_after\":%zu", c->total,
                    c->unexpected, c->no_retry_after);
            bench_json_end(js);
        }
    }
    printf("\n%zu requests in %.0f s (%.1f/s); 5xx: %zu; unexpected statuses: %zu\n", total, wall,
           (double)total / wall, n_5xx, n_unexpected);

    printf("\n## valid-search latency per minute (JPEG + multipart PNG, ms, upload to whole response)\n\n");
    printf("| %6s | %6s | %7s | %7s | %7s | %7s |\n", "minute", "n", "p50", "p95", "p99", "max");
    printf("|-------:|-------:|--------:|--------:|--------:|--------:|\n");
    if (lbuf_cap < n_lats + 1) {
        lbuf = realloc(lbuf, (n_lats + 1) * sizeof *lbuf);
        if (!lbuf)
            return 1;
    }
    for (int mi = 0; mi * 60.0 < wall - 1.0; mi++) {
        struct sample s;
        interval_latency(mi * 60.0, (mi + 1) * 60.0, &s, lbuf);
        double mx = s.searches ? lbuf[s.searches - 1] : 0;
        printf("| %6d | %6zu | %7.1f | %7.1f | %7.1f | %7.1f |\n", mi + 1, s.searches, s.p50, s.p95, s.p99, mx);
        if (js) {
            bench_json_begin(js, &si, "soak", "minute");
            fprintf(js, ",\"minute\":%d,\"searches\":%zu,\"p50_ms\":%.2f,\"p95_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f",
                    mi + 1, s.searches, s.p50, s.p95, s.p99, mx);
            bench_json_end(js);
        }
    }
    struct sample all;
    interval_latency(0, 1e9, &all, lbuf);
    printf("| %6s | %6zu | %7.1f | %7.1f | %7.1f | %7.1f |\n", "all", all.searches, all.p50, all.p95, all.p99,
           all.searches ? lbuf[all.searches - 1] : 0);

    double growth_mb = (rss_end - rss_warm) / 1024.0;
    bool rss_ok = growth_mb <= rss_bound_mb;
    bool fd_ok = fd_end <= fd0;
    size_t slow_over = 0, slow_opened = 0, slow_cut = 0;
    for (int t = 0; t < S_TYPES; t++) {
        slow_over += slow.over_bound[t];
        slow_opened += slow.opened[t];
        slow_cut += slow.cut[t];
    }
    bool burst_ok = false;
    for (int i = 0; i < counts[K_BURST].by.distinct; i++)
        if (counts[K_BURST].by.status[i] == 429 && counts[K_BURST].by.n[i] > 0)
            burst_ok = true;
    bool reload_pass = reload_ok && (reload_cmd == NULL || reload_rc == 0);

    printf("\n## server resources and the rest\n\n");
    printf("| %-52s | %-56s | %-4s |\n", "check", "measured", "pass");
    printf("|------------------------------------------------------|----------------------------------------------------------|------|\n");
    char buf[160];
    snprintf(buf, sizeof buf, "start %.1f, warm (%.0f s) %.1f, end %.1f, max %.1f", rss0 / 1024.0, warm_s,
             rss_warm / 1024.0, rss_end / 1024.0, rss_max / 1024.0);
    printf("| %-52s | %-56s | %-4s |\n", "RSS MB (VmRSS)", buf, "");
    snprintf(buf, sizeof buf, "RSS growth warm-up -> end <= %.0f MB", rss_bound_mb);
    char buf2[64];
    snprintf(buf2, sizeof buf2, "%+.1f MB", growth_mb);
    printf("| %-52s | %-56s | %-4s |\n", buf, buf2, rss_ok ? "yes" : "NO");
    snprintf(buf, sizeof buf, "before traffic %d, max %d, after clients closed %d", fd0, fd_max, fd_end);
    printf("| %-52s | %-56s | %-4s |\n", "open fds: end <= before traffic", buf, fd_ok ? "yes" : "NO");
    snprintf(buf, sizeof buf, "%zu", n_5xx);
    printf("| %-52s | %-56s | %-4s |\n", "5xx responses = 0", buf, n_5xx == 0 ? "yes" : "NO");
    snprintf(buf, sizeof buf, "%zu", n_unexpected);
    printf("| %-52s | %-56s | %-4s |\n", "unexpected statuses = 0", buf, n_unexpected == 0 ? "yes" : "NO");
    {
        size_t n429 = 0;
        for (int i = 0; i < counts[K_BURST].by.distinct; i++)
            if (counts[K_BURST].by.status[i] == 429)
                n429 = counts[K_BURST].by.n[i];
        snprintf(buf, sizeof buf, "%zu of %zu got 429%s", n429, counts[K_BURST].total,
                 counts[K_BURST].no_retry_after ? ", some WITHOUT Retry-After" : ", all with Retry-After");
    }
    printf("| %-52s | %-56s | %-4s |\n", "bursts past the rate limit get 429", buf, burst_ok ? "yes" : "NO");
    if (reload_cmd)
        snprintf(buf, sizeof buf, "update exit %d in %.1f s; reload %s at %.0f s", reload_rc, reload_cmd_s,
                 reload_ok ? "200" : "FAILED", reload_http_t);
    else
        snprintf(buf, sizeof buf, "reload %s at %.0f s", reload_ok ? "200" : "FAILED", reload_http_t);
    printf("| %-52s | %-56s | %-4s |\n", "mid-run index update + POST /v1/index:reload", buf,
           reload_pass ? "yes" : "NO");
    snprintf(buf, sizeof buf, "sent at %.0f s (server kept answering)", sighup_t);
    printf("| %-52s | %-56s | %-4s |\n", "SIGHUP reload", buf, "");
    if (catalog_db) {
        snprintf(buf, sizeof buf, "%zu SKUs patched, %zu differ; events %lld stored / %zu acked", db_checked,
                 db_mismatch, db_events, g.events_acked);
        printf("| %-52s | %-56s | %-4s |\n", "no lost writes (last PATCH per SKU, events in DB)", buf,
               db_ok ? "yes" : "NO");
    }
    for (int t = 0; t < S_TYPES; t++) {
        char name[96];
        snprintf(name, sizeof name, "slowloris %s: closed within %.0f s", slow_names[t], slow.bound[t]);
        snprintf(buf, sizeof buf, "opened %zu, cut %zu, max held %.1f s, over %zu", slow.opened[t], slow.cut[t],
                 slow.max_hold[t], slow.over_bound[t]);
        printf("| %-52s | %-56s | %-4s |\n", name, buf, slow.over_bound[t] ? "NO" : "yes");
    }
    bool pass = n_5xx == 0 && n_unexpected == 0 && rss_ok && fd_ok && slow_over == 0 && burst_ok && reload_pass &&
                db_ok;
    printf("\nRESULT: %s\n", pass ? "PASS" : "FAIL");

    if (js) {
        bench_json_begin(js, &si, "soak", "summary");
        fprintf(js,
                ",\"seconds\":%.0f,\"requests\":%zu,\"status_5xx\":%zu,\"unexpected\":%zu,\"rss_start_kb\":%ld,"
                "\"rss_warm_kb\":%ld,\"rss_end_kb\":%ld,\"rss_max_kb\":%ld,\"rss_growth_mb\":%.2f,"
                "\"rss_bound_mb\":%.0f,\"fds_start\":%d,\"fds_max\":%d,\"fds_end\":%d,\"search_p50_ms\":%.2f,"
                "\"search_p95_ms\":%.2f,\"search_p99_ms\":%.2f,\"searches\":%zu,\"rate_rps\":%.2f,"
                "\"rate_burst\":%u,\"reload_ok\":%s,\"reload_cmd_rc\":%d,\"slowloris_opened\":%zu,"
                "\"slowloris_cut\":%zu,\"slowloris_over_bound\":%zu,\"db_patched_skus\":%zu,\"db_mismatches\":%zu,"
                "\"events_acked\":%zu,\"events_stored\":%lld,\"pass\":%s",
                wall, total, n_5xx, n_unexpected, rss0, rss_warm, rss_end, rss_max, growth_mb, rss_bound_mb, fd0,
                fd_max, fd_end, all.p50, all.p95, all.p99, all.searches, rate_rps, rate_burst,
                reload_ok ? "true" : "false", reload_rc, slow_opened, slow_cut, slow_over, db_checked, db_mismatch,
                g.events_acked, db_events, pass ? "true" : "false");
        bench_json_end(js);
        fclose(js);
    }
    fflush(stdout);     /* before any exit-time report (sanitizer builds) */
    free(ag);
    for (int i = 0; i < in.n_jpeg; i++)
        free(in.jpeg[i].p);
    for (int i = 0; i < in.n_png; i++)
        free(in.png[i].p);
    free(in.bomb_jpeg.p);
    free(in.bomb_png.p);
    free(in.corrupt_jpeg.p);
    free(in.corrupt_png.p);
    free(in.gif.p);
    free(in.big.p);
    for (size_t i = 0; i < in.n_skus; i++)
        free(in.skus[i]);
    free(in.skus);
    free(g.last_stock);
    free(g.last_price);
    pthread_mutex_destroy(&slow.mu);
    free(lbuf);
    free(lats);
    curl_global_cleanup();
    return pass ? 0 : 1;
}
