/*
 * bench/e2e.c — end-to-end load generator: upload-to-result latency and
 * throughput of `POST /v1/search` against a running `lookalike serve`.
 *
 *   e2e --url http://127.0.0.1:PORT [--image FILE.jpg | --photos DIR]
 *       [--conc 1,2,8,32] [--requests N] [--seconds S] [--warmup N]
 *       [--k K] [--catalog NAME] [--json FILE]
 *
 * What is measured: the wall time from handing a request to libcurl until
 * its whole response body has arrived, per request, for a 1-megapixel JPEG
 * posted as `image/jpeg`; requests run on persistent connections (keep-
 * alive, as a storefront's backend would).  For each concurrency C, C
 * transfers are kept in flight with one libcurl multi handle (one client
 * thread: at 2 cores the server needs the CPU more than the client), until
 * N requests completed or S seconds passed, after W warm-up requests that
 * are not counted.  Reported: p50/p95/p99/max latency, searches/s (completed
 * requests / wall time of the level) and errors: every non-200 response,
 * counted by status, and transport failures (status 0), plus 200s whose body
 * is not a JSON object with "results" (counted as status -1).
 *
 * The image: by default the largest real photo found in DIR/grocery and
 * DIR/clothing-photos (labels.csv; DIR defaults to ../shared/data/products)
 * is decoded and resized to about 1,000,000 pixels (its aspect kept) and
 * re-encoded at JPEG quality 90 with libjpeg; without the data set, a
 * synthetic 1-megapixel test card (gradients and blocks) stands in, and the
 * output says which.  --image posts a given file unchanged.
 *
 * Loopback only: the URL must name 127.0.0.1, [::1] or localhost, so the
 * bench can never be pointed at somebody else's server by mistake.
 * The server's rate limit must be off (`rate_rps = 0` in its config;
 * bench/run does that), or the 429s show up as errors.
 */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lookalike/image.h"
#include "jpeg_encode.h"
#include "sysinfo.h"
#include "util.h"

#define MAX_LEVELS 16

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ==== The 1-megapixel JPEG ============================================== */

/* Largest photo (by pixels, from labels.csv's width/height columns) in
 * DIR/<set>/labels.csv; path written to `out`.  Returns its pixel count. */
static long largest_photo(const char *dir, const char *set, char *out, size_t cap)
{
    char p[4096];
    snprintf(p, sizeof p, "%.2000s/%.64s/labels.csv", dir, set);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    char line[8192];
    int wcol = -1, hcol = -1;
    long best = 0;
    if (fgets(line, sizeof line, f)) {
        int col = 0;
        for (char *t = strtok(line, ",\r\n"); t; t = strtok(NULL, ",\r\n"), col++) {
            if (!strcmp(t, "width"))
                wcol = col;
            if (!strcmp(t, "height"))
                hcol = col;
        }
    }
    while (wcol >= 0 && hcol >= 0 && fgets(line, sizeof line, f)) {
        /* image_path is the first column and has no commas; width/height
         * are numeric.  Titles with quoted commas may shift later columns,
         * so rows whose width/height do not parse are skipped. */
        char *fields[32];
        int nf = 0;
        for (char *s = line, *t; nf < 32 && (t = strsep(&s, ",")) != NULL;)
            fields[nf++] = t;
        if (nf <= wcol || nf <= hcol)
            continue;
        long w = strtol(fields[wcol], NULL, 10), h = strtol(fields[hcol], NULL, 10);
        if (w > 0 && h > 0 && w * h > best) {
            best = w * h;
            snprintf(out, cap, "%.2000s/%.64s/%.1000s", dir, set, fields[0]);
        }
    }
    fclose(f);
    return best;
}

/* Resize `src` to about 1e6 pixels with its aspect ratio. */
static int to_megapixel(const struct lk_image *src, struct lk_image *dst)
{
    double s = sqrt(1e6 / ((double)src->width * (double)src->height));
    uint32_t w = (uint32_t)lround(src->width * s), h = (uint32_t)lround(src->height * s);
    return lk_image_resize(src, w, h, dst, NULL);
}

/* Synthetic 1000x1000 test card: smooth gradients plus hard-edged blocks,
 * so the JPEG has realistic entropy. */
static int test_card(struct lk_image *img)
{
    uint32_t w = 1000, h = 1000;
    size_t stride = (size_t)w * 3;
    if (lk_image_init(img, w, h, NULL) != LK_OK)
        return -1;
    unsigned char *px = img->rgb;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            unsigned char *p = px + y * stride + x * 3;
            int block = ((x / 125) + (y / 125)) % 3;
            p[0] = (unsigned char)(block == 0 ? 200 : x * 255 / w);
            p[1] = (unsigned char)(block == 1 ? 40 : y * 255 / h);
            p[2] = (unsigned char)((x ^ y) & 0xff);
        }
    return 0;
}

/* ==== The load loop ===================================================== */

struct xfer {
    CURL *h;
    double t0;
    struct bench_buf body;
    int counted;            /* 0 during warm-up */
};

struct level {
    int conc;
    size_t done, errors;
    double wall_s, p50, p95, p99, max, mean;
    struct bench_statuses st;       /* non-200 statuses seen */
};

static void count_error(struct level *L, int status)
{
    L->errors++;
    bench_statuses_add(&L->st, status);
}

static int inflight;     /* transfers added to the multi handle and not done */

static void start(CURLM *m, struct xfer *x, int counted)
{
    inflight++;
    x->body.len = 0;
    x->counted = counted;
    x->t0 = now_ms();
    curl_multi_add_handle(m, x->h);
}

static int run_level(const char *url, const unsigned char *img, size_t img_len, int conc, size_t requests,
                     double seconds, size_t warmup, struct level *L)
{
    memset(L, 0, sizeof *L);
    L->conc = conc;
    CURLM *m = curl_multi_init();
    struct xfer *xs = calloc((size_t)conc, sizeof *xs);
    double *lat = malloc((requests + (size_t)conc) * sizeof *lat);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: image/jpeg");
    hdr = curl_slist_append(hdr, "Expect:");   /* no 100-continue round trip */
    if (!m || !xs || !lat || !hdr)
        return -1;
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
    for (int i = 0; i < conc; i++) {
        CURL *h = curl_easy_init();
        xs[i].h = h;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)img);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)img_len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_buf_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &xs[i].body);
        curl_easy_setopt(h, CURLOPT_PRIVATE, &xs[i]);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    }
    /* Warm-up (connections opened, server caches warm): `warmup` requests,
     * `conc` at a time, not counted. */
    size_t issued = 0, warm_issued = 0, nlat = 0;
    double sum = 0;
    int running = 0;
    for (int i = 0; i < conc; i++) {
        if (warm_issued < warmup) {
            start(m, &xs[i], 0);
            warm_issued++;
        } else if (issued < requests) {
            start(m, &xs[i], 1);
            issued++;
        }
    }
    double t_begin = now_ms(), deadline = 0;
    int timing = warmup == 0;
    if (timing)
        deadline = t_begin + seconds * 1e3;
    for (;;) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode rc = msg->data.result;
            double t = now_ms() - x->t0;
            long status = 0;
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(m, x->h);
            inflight--;
            if (x->counted) {
                if (rc != CURLE_OK)
                    count_error(L, 0);
                else if (status != 200)
                    count_error(L, (int)status);
                else if (!x->body.p || x->body.p[0] != '{' || !strstr(x->body.p, "\"results\""))
                    count_error(L, -1);
                lat[nlat++] = t;
                sum += t;
            }
            /* Next request on this handle. */
            if (warm_issued < warmup) {
                start(m, x, 0);
                warm_issued++;
            } else {
                if (!timing) {
                    /* Warm-up issued completely: the clock starts when the
                     * first counted request is handed out. */
                    timing = 1;
                    t_begin = now_ms();
                    deadline = t_begin + seconds * 1e3;
                }
                if (issued < requests && now_ms() < deadline) {
                    start(m, x, 1);
                    issued++;
                }
            }
        }
        if (inflight == 0)
            break;
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    L->wall_s = (now_ms() - t_begin) / 1e3;
    qsort(lat, nlat, sizeof *lat, bench_cmp_double);
    L->done = nlat;
    L->p50 = bench_pct(lat, nlat, 50);
    L->p95 = bench_pct(lat, nlat, 95);
    L->p99 = bench_pct(lat, nlat, 99);
    L->max = nlat ? lat[nlat - 1] : 0;
    L->mean = nlat ? sum / (double)nlat : 0;
    for (int i = 0; i < conc; i++) {
        curl_easy_cleanup(xs[i].h);
        free(xs[i].body.p);
    }
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
    free(xs);
    free(lat);
    return 0;
}

static int loopback_url(const char *url)
{
    static const char *const ok[] = {"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:",
                                     "http://localhost/", "http://[::1]:", "http://[::1]/"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strncmp(url, ok[i], strlen(ok[i])))
            return 1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: e2e --url http://127.0.0.1:PORT [--image FILE | --photos DIR] [--conc 1,2,8,32]\n"
                    "           [--requests N] [--seconds S] [--warmup N] [--k K] [--catalog NAME] [--json FILE]\n");
}

int main(int argc, char **argv)
{
    const char *url = NULL, *image = NULL, *photos = NULL, *catalog = "unnamed", *json = NULL;
    const char *conc_list = "1,2,8,32";
    size_t requests = 300, warmup = 10;
    double seconds = 30;
    int k = 12;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--image")) image = v;
        else if (!strcmp(a, "--photos")) photos = v;
        else if (!strcmp(a, "--conc")) conc_list = v;
        else if (!strcmp(a, "--requests")) requests = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seconds")) seconds = strtod(v, NULL);
        else if (!strcmp(a, "--warmup")) warmup = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--k")) k = atoi(v);
        else if (!strcmp(a, "--catalog")) catalog = v;
        else if (!strcmp(a, "--json")) json = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!url || requests < 1 || seconds <= 0 || k < 1 || k > 100) {
        usage();
        return 2;
    }
    if (!loopback_url(url)) {
        fprintf(stderr, "e2e: %s is not a loopback URL (127.0.0.1, [::1], localhost)\n", url);
        return 2;
    }
    int levels[MAX_LEVELS], nlev = 0;
    for (const char *p = conc_list; *p && nlev < MAX_LEVELS;) {
        int c = atoi(p);
        if (c < 1 || c > 1024) {
            fprintf(stderr, "e2e: bad concurrency in %s\n", conc_list);
            return 2;
        }
        levels[nlev++] = c;
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }

    /* The upload. */
    unsigned char *img = NULL;
    size_t img_len = 0;
    char source[4200] = "";
    uint32_t iw = 0, ih = 0;
    if (image) {
        img = bench_slurp(image, &img_len);
        if (!img) {
            fprintf(stderr, "e2e: cannot read %s\n", image);
            return 1;
        }
        snprintf(source, sizeof source, "%s (as given)", image);
    } else {
        char dir[2048], best[4096] = "", cand[4096];
        snprintf(dir, sizeof dir, "%s", photos ? photos : "../shared/data/products");
        long bp = 0;
        static const char *const sets[] = {"grocery", "clothing-photos"};
        for (size_t s = 0; s < 2; s++) {
            long p = largest_photo(dir, sets[s], cand, sizeof cand);
            if (p > bp) {
                bp = p;
                snprintf(best, sizeof best, "%s", cand);
            }
        }
        struct lk_image src = {0}, big = {0};
        int have = 0;
        if (bp > 0) {
            size_t len;
            unsigned char *b = bench_slurp(best, &len);
            if (b && lk_image_decode(b, len, NULL, &src, NULL, NULL) == LK_OK && to_megapixel(&src, &big) == LK_OK) {
                have = 1;
                snprintf(source, sizeof source, "real photo %s (%ux%u) resized to %ux%u, JPEG q90 (libjpeg)", best,
                         src.width, src.height, big.width, big.height);
            }
            free(b);
            lk_image_free(&src);
        }
        if (!have) {
            if (test_card(&big) != 0)
                return 1;
            snprintf(source, sizeof source, "SYNTHETIC 1000x1000 test card (no product photos under %s), JPEG q90",
                     dir);
        }
        iw = big.width;
        ih = big.height;
        img = bench_encode_jpeg(&big, 90, &img_len);
        lk_image_free(&big);
    }

    char full[4096];
    snprintf(full, sizeof full, "%s/v1/search?k=%d", url, k);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct bench_sysinfo si;
    bench_sysinfo_get(&si);
    FILE *js = bench_json_open(json);
    printf("# e2e: POST /v1/search, upload-to-result latency, catalog %s\n", catalog);
    bench_sysinfo_print(&si, stdout);
    printf("# client: libcurl %s multi, one thread, keep-alive; up to %zu requests or %.0f s per level, "
           "%zu warm-up\n",
           curl_version_info(CURLVERSION_NOW)->version, requests, seconds, warmup);
    printf("# image: %s, %zu bytes\n", source, img_len);
    printf("| %-5s | %6s | %8s | %8s | %8s | %8s | %10s | %6s | %s\n", "conc", "n", "p50 ms", "p95 ms", "p99 ms",
           "max ms", "searches/s", "errors", "by status");
    printf("|-------|--------|----------|----------|----------|----------|------------|--------|\n");
    size_t total_errors = 0;
    for (int l = 0; l < nlev; l++) {
        struct level L;
        if (run_level(full, img, img_len, levels[l], requests, seconds, warmup, &L) != 0) {
            fprintf(stderr, "e2e: out of memory\n");
            return 1;
        }
        double tput = L.wall_s > 0 ? (double)L.done / L.wall_s : 0;
        char by[256] = "";
        size_t off = 0;
        for (int i = 0; i < L.st.distinct && off < sizeof by; i++)
            off += (size_t)snprintf(by + off, sizeof by - off, "%s%d:%zu", i ? " " : "", L.st.status[i],
                                    L.st.n[i]);
        printf("| %5d | %6zu | %8.2f | %8.2f | %8.2f | %8.2f | %10.1f | %6zu | %s\n", L.conc, L.done, L.p50, L.p95,
               L.p99, L.max, tput, L.errors, by);
        fflush(stdout);
        total_errors += L.errors;
        if (js) {
            bench_json_begin(js, &si, "e2e", "level");
            fputs(",\"catalog\":", js);
            bench_json_str(js, catalog);
            fputs(",\"image\":", js);
            bench_json_str(js, source);
            fprintf(js,
                    ",\"image_bytes\":%zu,\"image_width\":%u,\"image_height\":%u,\"k\":%d,\"concurrency\":%d,"
                    "\"requests\":%zu,\"wall_s\":%.3f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
                    "\"max_ms\":%.3f,\"mean_ms\":%.3f,\"searches_per_s\":%.2f,\"errors\":%zu,\"errors_by_status\":{",
                    img_len, iw, ih, k, L.conc, L.done, L.wall_s, L.p50, L.p95, L.p99, L.max, L.mean, tput, L.errors);
            for (int i = 0; i < L.st.distinct; i++)
                fprintf(js, "%s\"%d\":%zu", i ? "," : "", L.st.status[i], L.st.n[i]);
            fputc('}', js);
            bench_json_end(js);
        }
    }
    printf("# status -1 = 200 without a JSON result body, 0 = transport error\n");
    if (js)
        fclose(js);
    free(img);
    curl_global_cleanup();
    return total_errors ? 1 : 0;
}
