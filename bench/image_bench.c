/*
 * bench/image_bench.c — what shrink-on-load buys: decode + resize time per
 * image for large JPEGs, with a full decode versus libjpeg-turbo DCT scaling
 * (lk_decode_opts.min_side_hint), both followed by the 224 x 224 centre crop
 * the CNN descriptor needs.
 *
 *   image_bench [--runs N] [--data DIR]
 *
 * Inputs: the largest photos listed in DIR/{clothing-photos,grocery}/labels.csv
 * (default DIR = /work/shared/data/products; benchmarks may read it, tests
 * never do), plus a 12-megapixel "phone photo" (4032 x 3024) made by
 * upscaling the largest real photo and re-encoding it at quality 92 with
 * libjpeg.  Files are read into memory first, so the timings are decode +
 * resize only.  Each figure is the median of N runs (default 15).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>   /* LIBJPEG_TURBO_VERSION_NUMBER for the report */

#include "lookalike/image.h"
#include "jpeg_encode.h"
#include "sysinfo.h"

#define TARGET 224u
#define MAX_INPUTS 8

struct input {
    char name[96];
    uint8_t *data;
    size_t len;
    int w, h;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ---- labels.csv: pick the k largest images by width*height ------------- */

struct cand {
    char path[512];
    long px;
    int w, h;
};

static int split_csv(char *line, char **f, int max)
{
    /* image_path/width/height never contain quotes or commas in these files;
     * quoted fields elsewhere are skipped over correctly for our columns
     * only if they come after them, so handle quotes minimally. */
    int n = 0, q = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '"')
            q = !q;
        else if (*p == ',' && !q) {
            *p = '\0';
            f[n++] = p + 1;
        } else if ((*p == '\n' || *p == '\r') && !q)
            *p = '\0';
    }
    return n;
}

static int largest_from(const char *dir, int k, struct cand *out)
{
    char path[512];
    if (snprintf(path, sizeof path, "%s/labels.csv", dir) >= (int)sizeof path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[8192];
    char *fld[64];
    int ci = -1, cw = -1, ch = -1, n = 0;
    if (fgets(line, sizeof line, f)) {
        int m = split_csv(line, fld, 64);
        for (int i = 0; i < m; i++) {
            if (!strcmp(fld[i], "image_path")) ci = i;
            if (!strcmp(fld[i], "width")) cw = i;
            if (!strcmp(fld[i], "height")) ch = i;
        }
    }
    if (ci < 0 || cw < 0 || ch < 0) {
        fclose(f);
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        int m = split_csv(line, fld, 64);
        if (m <= ci || m <= cw || m <= ch)
            continue;
        struct cand c;
        if (snprintf(c.path, sizeof c.path, "%s/%s", dir, fld[ci]) >= (int)sizeof c.path)
            continue;
        c.w = atoi(fld[cw]);
        c.h = atoi(fld[ch]);
        c.px = (long)c.w * c.h;
        /* keep the k largest (insertion into a small sorted array) */
        int pos = n < k ? n : k;
        while (pos > 0 && out[pos - 1].px < c.px) {
            if (pos < k)
                out[pos] = out[pos - 1];
            pos--;
        }
        if (pos < k) {
            out[pos] = c;
            if (n < k)
                n++;
        }
    }
    fclose(f);
    return n;
}

/* ---- 12-megapixel phone photo ------------------------------------------ */

/* ---- measurement --------------------------------------------------------- */

struct timing {
    double decode, resize, total;
    uint32_t dw, dh, num, denom;
};

static int run(const struct input *in, uint32_t hint, int runs, struct timing *t)
{
    double *d = malloc(sizeof(double) * (size_t)runs), *r = malloc(sizeof(double) * (size_t)runs),
           *s = malloc(sizeof(double) * (size_t)runs);
    struct lk_decode_opts o;
    lk_decode_opts_default(&o);
    o.min_side_hint = hint;
    int rc = LK_OK;
    for (int i = 0; i < runs && rc == LK_OK; i++) {
        struct lk_image img, crop;
        struct lk_image_info info;
        struct lk_err e = {0};
        double t0 = now_ms();
        rc = lk_image_decode(in->data, in->len, &o, &img, &info, &e);
        double t1 = now_ms();
        if (rc != LK_OK) {
            fprintf(stderr, "%s: %s\n", in->name, e.msg);
            break;
        }
        rc = lk_image_center_crop(&img, TARGET, TARGET, &crop, &e);
        double t2 = now_ms();
        d[i] = t1 - t0;
        r[i] = t2 - t1;
        s[i] = t2 - t0;
        t->dw = img.width;
        t->dh = img.height;
        t->num = info.scale_num;
        t->denom = info.scale_denom;
        lk_image_free(&img);
        lk_image_free(&crop);
    }
    if (rc == LK_OK) {
        t->decode = median(d, runs);
        t->resize = median(r, runs);
        t->total = median(s, runs);
    }
    free(d);
    free(r);
    free(s);
    return rc;
}

static struct bench_sysinfo si;

static void print_env(void)
{
    bench_sysinfo_get(&si);
    const char *jsimd = getenv("JSIMD_FORCENONE");
    printf("image_bench — decode + %ux%u centre crop, median per image\n", TARGET, TARGET);
    bench_sysinfo_print(&si, stdout);
    printf("simd (decode): libjpeg-turbo %d.%d SIMD %s (its own runtime CPU dispatch); "
           "stb_image_resize scalar C\n\n",
           LIBJPEG_TURBO_VERSION_NUMBER / 1000000, LIBJPEG_TURBO_VERSION_NUMBER / 1000 % 1000,
           jsimd && *jsimd == '1' ? "disabled (JSIMD_FORCENONE=1)" : "enabled");
}

int main(int argc, char **argv)
{
    int runs = 15;
    const char *data = "/work/shared/data/products";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else {
            fprintf(stderr, "usage: image_bench [--runs N] [--data DIR]\n");
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;

    print_env();

    struct input in[MAX_INPUTS];
    int n = 0;
    static const struct { const char *sub; int k; } sets[] = {{"clothing-photos", 3}, {"grocery", 2}};
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        char dir[512];
        if (snprintf(dir, sizeof dir, "%s/%s", data, sets[s].sub) >= (int)sizeof dir)
            continue;
        struct cand c[4];
        int m = largest_from(dir, sets[s].k, c);
        for (int i = 0; i < m && n < MAX_INPUTS - 1; i++) {
            size_t len;
            uint8_t *b = read_file(c[i].path, &len);
            if (!b)
                continue;
            const char *base = strrchr(c[i].path, '/');
            snprintf(in[n].name, sizeof in[n].name, "%s/%.40s", sets[s].sub, base ? base + 1 : c[i].path);
            in[n].data = b;
            in[n].len = len;
            in[n].w = c[i].w;
            in[n].h = c[i].h;
            n++;
        }
    }
    if (n == 0) {
        fprintf(stderr, "image_bench: no photos found under %s (pass --data DIR)\n", data);
        return 1;
    }

    /* 12 Mpx phone photo from the largest real photo (in[0]). */
    {
        struct lk_image src, big;
        struct lk_err e = {0};
        if (lk_image_decode(in[0].data, in[0].len, NULL, &src, NULL, &e) == LK_OK) {
            int portrait = src.height > src.width;
            uint32_t bw = portrait ? 3024 : 4032, bh = portrait ? 4032 : 3024;
            if (lk_image_resize(&src, bw, bh, &big, &e) == LK_OK) {
                size_t len;
                uint8_t *b = bench_encode_jpeg(&big, 92, &len);
                snprintf(in[n].name, sizeof in[n].name, "12Mpx phone photo (upscaled %s)", "clothing");
                in[n].data = b;
                in[n].len = len;
                in[n].w = (int)bw;
                in[n].h = (int)bh;
                n++;
                lk_image_free(&big);
            }
            lk_image_free(&src);
        }
    }

    printf("%-48s %11s %9s | %-28s | %-28s | %s\n", "image", "size", "bytes", "full decode: dec+rsz=total ms",
           "DCT scaled: dec+rsz=total ms", "speed-up");
    double sum_full = 0, sum_dct = 0;
    FILE *js = bench_json_open(NULL);
    for (int i = 0; i < n; i++) {
        struct timing full = {0}, dct = {0};
        int r = in[i].w * in[i].h > 4000000 ? (runs + 1) / 2 : runs;   /* fewer runs at 12 Mpx */
        if (run(&in[i], 0, r, &full) != LK_OK || run(&in[i], TARGET, r, &dct) != LK_OK)
            continue;
        char sz[32];
        snprintf(sz, sizeof sz, "%dx%d", in[i].w, in[i].h);
        printf("%-48s %11s %9zu | %6.2f + %6.2f = %7.2f    | %6.2f + %6.2f = %7.2f %u/%u | x%.2f\n", in[i].name, sz,
               in[i].len, full.decode, full.resize, full.total, dct.decode, dct.resize, dct.total, dct.num, dct.denom,
               full.total / dct.total);
        if (js) {
            bench_json_begin(js, &si, "image", "decode_resize");
            fputs(",\"image\":", js);
            bench_json_str(js, in[i].name);
            fprintf(js, ",\"width\":%d,\"height\":%d,\"bytes\":%zu,\"full_ms\":%.3f,\"dct_ms\":%.3f,"
                        "\"dct_num\":%u,\"dct_denom\":%u,\"runs\":%d", in[i].w, in[i].h, in[i].len, full.total, dct.total,
                    dct.num, dct.denom, r);
            bench_json_end(js);
        }
        sum_full += full.total;
        sum_dct += dct.total;
    }
    printf("\nall images: full %.2f ms, DCT-scaled %.2f ms, speed-up x%.2f (runs=%d, medians)\n", sum_full, sum_dct,
           sum_full / sum_dct, runs);
    if (js)
        fclose(js);
    for (int i = 0; i < n; i++)
        free(in[i].data);
    return 0;
}
