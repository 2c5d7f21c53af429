/*
 * bench/quality.c — search quality of the whole product, measured through
 * the real pipeline: catalogs are indexed with lk_index_build (what
 * `lookalike index build` runs) and queried with lk_engine_search (what
 * `POST /v1/search` runs), with default request parameters (k = 10, in
 * stock only, category guard on, fallback on).
 *
 *   quality [--data DIR] [--models DIR] [--work DIR] [--quick] [--json FILE]
 *
 * Data: DIR (default ../shared/data/products) with grocery/,
 * clothing-photos/ and fashion-small/ (labels.csv each).  Without it the
 * bench writes a "skipped" record and exits 0 (a fresh clone has no data).
 *
 * Everything below was fixed BEFORE the first run and is not tuned on the
 * reported queries (seed SEED, fractions and ranges as #defines):
 *
 * (a) grocery: per product_id, its photos are shuffled (seeded) and
 *     max(2, 20 %) are held out as shopper queries; the rest become the
 *     catalog images of one SKU per product_id, category
 *     "grocery/<department>/<category>".  Reported: recall@1 and @5 of the
 *     right SKU, and category accuracy (top-1 result's category, and the
 *     category guard's inferred category, against the truth).
 * (b) clothing-photos and fashion-small: every photo is its own product
 *     (these sets have one photo per product_id); 10 % held out (seeded) as
 *     queries.  Reported: category precision@10 (share of the top-10
 *     results in the query's category) and, on fashion-small, colour
 *     agreement@10 (share of labelled results with the query's colour).
 * (c) distortions: a seeded sample of grocery CATALOG photos, each
 *     distorted five ways, one at a time: crop (keep 60-85 % of each side,
 *     random offset), rotation (5-15 degrees either way, edge pixels
 *     replicated), JPEG re-encoding at quality 30-60, brightness x0.70-0.85
 *     or x1.15-1.30, and pasting onto a cluttered synthetic background
 *     (1.6 x the size, 60 random coloured blocks plus noise).  Every query
 *     is encoded as JPEG (quality 90 unless the JPEG distortion chose its
 *     own).  Reported: recall@1 of the original SKU.
 * (d) bands: over all queries of (a)-(c), per confidence band, how often a
 *     result in that band is the right product (a and c only: (b) queries
 *     have no product in the catalog) and the right category; plus the
 *     share of searches with zero results and with the fallback applied.
 *
 * Catalogs are built once into --work (default /tmp/lookalike-bench/quality)
 * and reused when the generated CSV is byte-identical (the build is the slow
 * part: every image is embedded).  --quick uses small subsets (CI smoke).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#include "embed_data.h"
#include "lookalike/catalog.h"
#include "lookalike/image.h"
#include "lookalike/search.h"
#include "jpeg_encode.h"
#include "sysinfo.h"

#ifndef LK_SOURCE_ROOT
#define LK_SOURCE_ROOT "."
#endif

#define SEED 20261125u
#define GROCERY_HOLDOUT 0.20
#define FASHION_HOLDOUT 0.10
#define K 10
#define N_DIST 5

static const char *const dist_names[N_DIST] = {"crop", "rotate", "jpeg", "brightness", "background"};

/* ==== Small helpers ===================================================== */

static uint64_t rng_state;
static uint64_t rnd(void)   /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double urand(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static double urange(double a, double b) { return a + (b - a) * urand(); }

static void shuffle(size_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd() % i), t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

static void die(const char *what, const struct lk_err *e)
{
    fprintf(stderr, "quality: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

/* CSV field, quoted. */
static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Relative image path: strip "<dir>/". */
static const char *rel(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && path[n] == '/' ? path + n + 1 : path;
}

/* ==== Image distortions ================================================= */

static int crop(const struct lk_image *s, struct lk_image *d)
{
    double fx = urange(0.60, 0.85), fy = urange(0.60, 0.85);
    uint32_t w = (uint32_t)(s->width * fx), h = (uint32_t)(s->height * fy);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    uint32_t x0 = (uint32_t)(urand() * (s->width - w)), y0 = (uint32_t)(urand() * (s->height - h));
    if (lk_image_init(d, w, h, NULL) != LK_OK)
        return -1;
    for (uint32_t y = 0; y < h; y++)
        memcpy(d->rgb + (size_t)y * w * 3, s->rgb + ((size_t)(y0 + y) * s->width + x0) * 3, (size_t)w * 3);
    return 0;
}

/* Bilinear rotation about the centre, same size, edges replicated. */
static int rotate(const struct lk_image *s, struct lk_image *d)
{
    double deg = urange(5, 15) * (rnd() & 1 ? 1 : -1), a = deg * M_PI / 180.0;
    double ca = cos(a), sa = sin(a), cx = (s->width - 1) / 2.0, cy = (s->height - 1) / 2.0;
    if (lk_image_init(d, s->width, s->height, NULL) != LK_OK)
        return -1;
    for (uint32_t y = 0; y < s->height; y++)
        for (uint32_t x = 0; x < s->width; x++) {
            double u = ca * (x - cx) + sa * (y - cy) + cx, v = -sa * (x - cx) + ca * (y - cy) + cy;
            if (u < 0) u = 0;
            if (v < 0) v = 0;
            if (u > s->width - 1) u = s->width - 1;
            if (v > s->height - 1) v = s->height - 1;
            uint32_t u0 = (uint32_t)u, v0 = (uint32_t)v;
            uint32_t u1 = u0 + 1 < s->width ? u0 + 1 : u0, v1 = v0 + 1 < s->height ? v0 + 1 : v0;
            double fu = u - u0, fv = v - v0;
            for (int c = 0; c < 3; c++) {
                double p00 = s->rgb[((size_t)v0 * s->width + u0) * 3 + c], p01 = s->rgb[((size_t)v0 * s->width + u1) * 3 + c];
                double p10 = s->rgb[((size_t)v1 * s->width + u0) * 3 + c], p11 = s->rgb[((size_t)v1 * s->width + u1) * 3 + c];
                double p = (p00 * (1 - fu) + p01 * fu) * (1 - fv) + (p10 * (1 - fu) + p11 * fu) * fv;
                d->rgb[((size_t)y * s->width + x) * 3 + c] = (uint8_t)lround(p);
            }
        }
    return 0;
}

static int brightness(const struct lk_image *s, struct lk_image *d)
{
    double f = rnd() & 1 ? urange(1.15, 1.30) : urange(0.70, 0.85);
    if (lk_image_init(d, s->width, s->height, NULL) != LK_OK)
        return -1;
    size_t n = (size_t)s->width * s->height * 3;
    for (size_t i = 0; i < n; i++) {
        double v = s->rgb[i] * f;
        d->rgb[i] = (uint8_t)(v > 255 ? 255 : lround(v));
    }
    return 0;
}

/* Product pasted at a random place on a 1.6x canvas of random coloured
 * blocks with pixel noise: the cluttered table or shelf around the item. */
static int background(const struct lk_image *s, struct lk_image *d)
{
    uint32_t W = (uint32_t)(s->width * 1.6), H = (uint32_t)(s->height * 1.6);
    if (lk_image_init(d, W, H, NULL) != LK_OK)
        return -1;
    for (int b = 0; b < 60; b++) {
        uint32_t bw = 1 + (uint32_t)(urange(0.05, 0.4) * W), bh = 1 + (uint32_t)(urange(0.05, 0.4) * H);
        uint32_t x0 = (uint32_t)(urand() * (W - bw + 1)), y0 = (uint32_t)(urand() * (H - bh + 1));
        uint8_t col[3] = {(uint8_t)(rnd() & 255), (uint8_t)(rnd() & 255), (uint8_t)(rnd() & 255)};
        for (uint32_t y = y0; y < y0 + bh && y < H; y++)
            for (uint32_t x = x0; x < x0 + bw && x < W; x++)
                memcpy(d->rgb + ((size_t)y * W + x) * 3, col, 3);
    }
    size_t n = (size_t)W * H * 3;
    for (size_t i = 0; i < n; i++) {
        int v = d->rgb[i] + (int)(rnd() % 41) - 20;
        d->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    uint32_t ox = (uint32_t)(urand() * (W - s->width + 1)), oy = (uint32_t)(urand() * (H - s->height + 1));
    for (uint32_t y = 0; y < s->height; y++)
        memcpy(d->rgb + ((size_t)(oy + y) * W + ox) * 3, s->rgb + (size_t)y * s->width * 3, (size_t)s->width * 3);
    return 0;
}

/* Distortion `k` of the photo in `bytes` -> JPEG bytes (malloc'ed). */
static unsigned char *distort(const unsigned char *bytes, size_t len, int k, size_t *out_len, char *desc, size_t dcap)
{
    struct lk_image src = {0}, dst = {0};
    if (lk_image_decode(bytes, len, NULL, &src, NULL, NULL) != LK_OK)
        return NULL;
    int q = 90, rc = 0;
    switch (k) {
    case 0: rc = crop(&src, &dst); break;
    case 1: rc = rotate(&src, &dst); break;
    case 2:
        q = 30 + (int)(rnd() % 31);
        rc = lk_image_init(&dst, src.width, src.height, NULL) == LK_OK ? 0 : -1;
        if (!rc)
            memcpy(dst.rgb, src.rgb, (size_t)src.width * src.height * 3);
        break;
    case 3: rc = brightness(&src, &dst); break;
    default: rc = background(&src, &dst); break;
    }
    unsigned char *out = NULL;
    if (rc == 0) {
        out = bench_encode_jpeg(&dst, q, out_len);
        snprintf(desc, dcap, "%s q%d %ux%u", dist_names[k], q, dst.width, dst.height);
    }
    lk_image_free(&src);
    lk_image_free(&dst);
    return out;
}

/* ==== Catalogs ========================================================== */

struct cat {
    const char *name;
    struct bench_set s;
    char dir[4096];             /* the set's directory (images relative to it) */
    char data[4096];            /* built catalog */
    unsigned char *is_query;    /* per image */
    char **cat_path;            /* normalised category path per category index */
    struct lk_engine *eng;
};

/* Category path of image i's category for set `name`. */
static void category_of(const struct cat *c, int ci, char *out, size_t cap)
{
    char raw[512];
    if (!strcmp(c->name, "grocery")) {
        /* grocery/<department>/<category>: the department is not in
         * bench_set; the coarse category is the unit of "right category". */
        snprintf(raw, sizeof raw, "grocery/%s", c->s.category_names[ci]);
    } else {
        snprintf(raw, sizeof raw, "%s/%s", !strcmp(c->name, "fashion-small") ? "fashion" : "clothing",
                 c->s.category_names[ci]);
    }
    struct lk_err e = {0};
    if (lk_category_normalise(raw, out, cap, &e) != LK_OK)
        die(raw, &e);
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static void progress(void *ud, const char *phase, size_t done, size_t total)
{
    const char *name = ud;
    if (total && (done == total || done % 500 == 0))
        fprintf(stderr, "  %s: %s %zu/%zu\n", name, phase, done, total);
}

/* Write the catalog CSV (all non-query images) and build it unless the
 * same CSV was built before. */
static int quick;

static void build_catalog(struct cat *c, const char *work, const char *models, int per_product)
{
    char csv[4200], tmp[4300];
    snprintf(c->data, sizeof c->data, "%s/%s", work, c->name);
    mkdir(work, 0755);
    mkdir(c->data, 0755);
    snprintf(csv, sizeof csv, "%s/catalog.csv", c->data);
    snprintf(tmp, sizeof tmp, "%s/catalog.csv.new", c->data);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die(tmp, NULL);
    fprintf(f, "sku,title,category,price,stock,image\n");
    c->cat_path = calloc((size_t)c->s.n_categories, sizeof *c->cat_path);
    for (int ci = 0; ci < c->s.n_categories; ci++) {
        c->cat_path[ci] = malloc(LK_CATEGORY_MAX + 1);
        category_of(c, ci, c->cat_path[ci], LK_CATEGORY_MAX + 1);
    }
    if (per_product) {
        /* One SKU per product_id with all its catalog photos. */
        for (int p = 0; p < c->s.n_products; p++) {
            int first = 1, ci = -1;
            for (size_t i = 0; i < c->s.n; i++) {
                if (c->s.product[i] != p || c->is_query[i])
                    continue;
                if (first) {
                    ci = c->s.category[i];
                    csv_field(f, c->s.product_names[p]);
                    fputc(',', f);
                    csv_field(f, c->s.product_names[p]);
                    fputc(',', f);
                    csv_field(f, c->cat_path[ci]);
                    fputs(",1.00,10,\"", f);
                    first = 0;
                } else {
                    fputc('|', f);
                }
                fputs(rel(c->s.paths[i], c->dir), f);
            }
            if (!first)
                fputs("\"\n", f);
        }
    } else {
        for (size_t i = 0; i < c->s.n; i++) {
            if (c->is_query[i])
                continue;
            csv_field(f, c->s.product_names[c->s.product[i]]);
            fputc(',', f);
            csv_field(f, c->s.product_names[c->s.product[i]]);
            fputc(',', f);
            csv_field(f, c->cat_path[c->s.category[i]]);
            fprintf(f, ",1.00,10,%s\n", rel(c->s.paths[i], c->dir));
        }
    }
    fclose(f);
    char stamp[4300];
    snprintf(stamp, sizeof stamp, "%s/built.csv", c->data);
    struct lk_generation g;
    struct lk_err e = {0};
    struct lk_engine_opts eo;
    lk_engine_opts_default(&eo);
    eo.data_dir = c->data;
    eo.model_dir = models;
    eo.images_dir = c->dir;
    eo.workspaces = 1;
    c->eng = NULL;
    int reuse = same_file(tmp, stamp) && lk_generation_current(c->data, &g, &e) == LK_OK;
    /* A cached catalog built by another version of the analysis does not
     * open (generation metadata version): rebuild it. */
    if (reuse && lk_engine_open(&eo, &c->eng, &e) != LK_OK) {
        fprintf(stderr, "quality: %s: cached catalog does not open (%s), rebuilding\n", c->name, e.msg);
        reuse = 0;
    }
    if (reuse) {
        fprintf(stderr, "quality: %s: catalog unchanged, reusing %s\n", c->name, c->data);
        remove(tmp);
    } else {
        rename(tmp, csv);
        struct lk_build_opts o;
        lk_build_opts_default(&o);
        o.catalog_path = csv;
        o.images_dir = c->dir;
        o.data_dir = c->data;
        o.model_dir = models;
        o.progress = progress;
        o.calib_samples = quick ? 20 : 0;   /* 0 = the product default (100) */
        o.progress_ud = (void *)c->name;
        struct lk_build_report rep;
        memset(&rep, 0, sizeof rep);
        fprintf(stderr, "quality: %s: building the catalog (embeds every photo)\n", c->name);
        if (lk_index_build(&o, &rep, &e) != LK_OK)
            die("index build", &e);
        fprintf(stderr, "quality: %s: %llu products, %llu vectors, %llu skipped, %.1f s\n", c->name,
                (unsigned long long)rep.products, (unsigned long long)rep.indexed,
                (unsigned long long)rep.skipped, rep.seconds_total);
        lk_build_report_free(&rep);
        /* Remember what was built (copy of the CSV). */
        size_t n;
        unsigned char *b = slurp(csv, &n);
        FILE *s = fopen(stamp, "wb");
        if (b && s)
            fwrite(b, 1, n, s);
        if (s)
            fclose(s);
        free(b);
    }
    if (!c->eng && lk_engine_open(&eo, &c->eng, &e) != LK_OK)
        die("engine open", &e);
}

/* ==== Scoring =========================================================== */

struct bandstat {
    size_t n, right_product, right_category, product_judged;
};
static struct bandstat bands[LK_BAND_COUNT];
static size_t n_searches, n_zero, n_fallback;

struct qres {
    int rank_sku;           /* 1-based rank of the right SKU, 0 = not in top-k */
    int top1_cat_ok, guard_cat_ok;
    size_t cat_hits, colour_hits, colour_judged, n;
};

/* SKU -> image index (for the colour of a result), by linear scan of a
 * sorted table. */
struct skuidx {
    const char *sku;
    size_t i;
};
static struct skuidx *sku_tab;
static size_t sku_n;
static int cmp_skuidx(const void *a, const void *b)
{
    return strcmp(((const struct skuidx *)a)->sku, ((const struct skuidx *)b)->sku);
}
static long find_sku(const char *sku)
{
    struct skuidx key = {sku, 0}, *r = bsearch(&key, sku_tab, sku_n, sizeof key, cmp_skuidx);
    return r ? (long)r->i : -1;
}

/* One search through the product's query path; scores it against the
 * truth (SKU, NULL when the query's product is not in the catalog;
 * category index; colour index or -1) and adds to the band statistics. */
static int search(struct cat *c, const unsigned char *bytes, size_t len, const char *truth_sku, int truth_cat,
                  int truth_colour, struct qres *q)
{
    memset(q, 0, sizeof *q);
    struct lk_search_request req;
    struct lk_search_response resp;
    struct lk_err e = {0};
    lk_search_request_init(&req);
    req.k = K;
    lk_search_response_init(&resp);
    if (lk_engine_search(c->eng, bytes, len, &req, &resp, &e) != LK_OK) {
        fprintf(stderr, "quality: search failed: %s\n", e.msg);
        lk_search_response_free(&resp);
        return -1;
    }
    const char *want_cat = c->cat_path[truth_cat];
    n_searches++;
    if (resp.n_results == 0)
        n_zero++;
    if (resp.fallback.applied)
        n_fallback++;
    q->n = resp.n_results;
    q->guard_cat_ok = resp.inferred_category && !strcmp(resp.inferred_category, want_cat);
    for (size_t r = 0; r < resp.n_results; r++) {
        const struct lk_search_result *x = &resp.results[r];
        int cat_ok = x->category && !strcmp(x->category, want_cat);
        int sku_ok = truth_sku && x->sku && !strcmp(x->sku, truth_sku);
        if (sku_ok && !q->rank_sku)
            q->rank_sku = (int)r + 1;
        if (r == 0)
            q->top1_cat_ok = cat_ok;
        if (getenv("LK_QUALITY_DEBUG"))
            fprintf(stderr, "  want %s/%s got %zu %s %s %s\n", truth_sku ? truth_sku : "-", want_cat, r,
                    x->sku ? x->sku : "?", x->category ? x->category : "(null)", lk_band_name(x->band));
        q->cat_hits += (size_t)cat_ok;
        if (truth_colour >= 0 && x->sku) {
            long i = find_sku(x->sku);
            if (i >= 0 && c->s.colour[i] >= 0) {
                q->colour_judged++;
                q->colour_hits += (size_t)(c->s.colour[i] == truth_colour);
            }
        }
        struct bandstat *b = &bands[x->band < LK_BAND_COUNT ? x->band : 0];
        b->n++;
        b->right_category += (size_t)cat_ok;
        if (truth_sku) {
            b->product_judged++;
            b->right_product += (size_t)sku_ok;
        }
    }
    lk_search_response_free(&resp);
    return 0;
}

/* ==== Main ============================================================== */

static FILE *js;
static struct bench_sysinfo si;

static void record(const char *phase, const char *set, const char *fmt_members, ...)
    __attribute__((format(printf, 3, 4)));
static void record(const char *phase, const char *set, const char *fmt_members, ...)
{
    if (!js)
        return;
    bench_json_begin(js, &si, "quality", phase);
    fputs(",\"set\":", js);
    bench_json_str(js, set);
    va_list ap;
    va_start(ap, fmt_members);
    vfprintf(js, fmt_members, ap);
    va_end(ap);
    bench_json_end(js);
}

static void load_set(struct cat *c, const char *data, const char *name)
{
    c->name = name;
    snprintf(c->dir, sizeof c->dir, "%s/%s", data, name);
    if (bench_set_load(c->dir, name, &c->s) != 0)
        exit(1);
    c->is_query = calloc(c->s.n, 1);
}

/* Keep a subset of a set (quick mode): the first `keep` images of a seeded
 * permutation, or whole products for grocery. */
static void subset(struct cat *c, size_t keep_products, size_t keep_images)
{
    size_t n = 0;
    unsigned char *keep = calloc(c->s.n, 1);
    if (keep_products) {
        for (size_t i = 0; i < c->s.n; i++)
            keep[i] = (size_t)c->s.product[i] < keep_products;
    } else {
        size_t *perm = malloc(c->s.n * sizeof *perm);
        for (size_t i = 0; i < c->s.n; i++)
            perm[i] = i;
        shuffle(perm, c->s.n);
        for (size_t i = 0; i < keep_images && i < c->s.n; i++)
            keep[perm[i]] = 1;
        free(perm);
    }
    for (size_t i = 0; i < c->s.n; i++) {
        if (keep[i]) {
            c->s.paths[n] = c->s.paths[i];
            c->s.product[n] = c->s.product[i];
            c->s.category[n] = c->s.category[i];
            c->s.colour[n] = c->s.colour[i];
            n++;
        } else {
            free(c->s.paths[i]);
        }
    }
    c->s.n = n;
    free(keep);
}

int main(int argc, char **argv)
{
    const char *data = "../shared/data/products", *json = NULL;
    const char *models = getenv("LOOKALIKE_MODELS") ? getenv("LOOKALIKE_MODELS") : LK_SOURCE_ROOT "/models/mobilenet_v2";
    const char *work = "/tmp/lookalike-bench/quality";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--data")) data = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--models")) models = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--work")) work = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--json")) json = argv[++i];
        else {
            fprintf(stderr, "usage: quality [--data DIR] [--models DIR] [--work DIR] [--quick] [--json FILE]\n");
            return 2;
        }
    }
    bench_sysinfo_get(&si);
    js = bench_json_open(json);
    printf("# quality: search quality through lk_index_build + lk_engine_search (k=%d, defaults)%s\n", K,
           quick ? " -- QUICK (small subsets; not the published figures)" : "");
    bench_sysinfo_print(&si, stdout);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/grocery/labels.csv", data);
    struct stat st;
    if (stat(probe, &st) != 0) {
        printf("# no product photos under %s: skipped\n", data);
        if (js) {
            bench_json_begin(js, &si, "quality", "skipped");
            fputs(",\"reason\":\"product photos not found\"", js);
            bench_json_end(js);
            fclose(js);
        }
        return 0;
    }
    char qwork[4200];
    snprintf(qwork, sizeof qwork, "%s%s", work, quick ? "-quick" : "");
    mkdir("/tmp/lookalike-bench", 0755);

    /* ---- (a) grocery --------------------------------------------------- */
    rng_state = SEED;
    struct cat g = {0};
    load_set(&g, data, "grocery");
    if (quick)
        subset(&g, 8, 0);
    for (int p = 0; p < g.s.n_products; p++) {
        size_t *idx = malloc(g.s.n * sizeof *idx), m = 0;
        for (size_t i = 0; i < g.s.n; i++)
            if (g.s.product[i] == p)
                idx[m++] = i;
        shuffle(idx, m);
        size_t h = (size_t)lround(GROCERY_HOLDOUT * (double)m);
        if (h < 2)
            h = 2;
        if (quick && h > 3)
            h = 3;
        for (size_t k = 0; k < h && k + 1 < m; k++)
            g.is_query[idx[k]] = 1;
        free(idx);
    }
    build_catalog(&g, qwork, models, 1);

    size_t nq = 0, r1 = 0, r5 = 0, c1 = 0, cg = 0;
    for (size_t i = 0; i < g.s.n; i++) {
        if (!g.is_query[i])
            continue;
        size_t len;
        unsigned char *b = slurp(g.s.paths[i], &len);
        struct qres q;
        if (!b || search(&g, b, len, g.s.product_names[g.s.product[i]], g.s.category[i], -1, &q) != 0)
            die(g.s.paths[i], NULL);
        free(b);
        nq++;
        r1 += q.rank_sku == 1;
        r5 += q.rank_sku >= 1 && q.rank_sku <= 5;
        c1 += (size_t)q.top1_cat_ok;
        cg += (size_t)q.guard_cat_ok;
    }
    int nprod = 0;
    for (int p = 0; p < g.s.n_products; p++)
        for (size_t i = 0; i < g.s.n; i++)
            if (g.s.product[i] == p) {
                nprod++;
                break;
            }
    printf("\n(a) grocery: %d products, held-out shopper photos as queries\n", nprod);
    printf("| %-8s | %-8s | %-9s | %-9s | %-15s | %-14s |\n", "queries", "catalog", "recall@1", "recall@5",
           "category top-1", "guard category");
    printf("|----------|----------|-----------|-----------|-----------------|----------------|\n");
    printf("| %8zu | %8zu | %9.3f | %9.3f | %15.3f | %14.3f |\n", nq, g.s.n - nq, (double)r1 / nq, (double)r5 / nq,
           (double)c1 / nq, (double)cg / nq);
    record("grocery", "grocery",
           ",\"products\":%d,\"queries\":%zu,\"catalog_images\":%zu,\"recall_at_1\":%.4f,\"recall_at_5\":%.4f,"
           "\"category_top1\":%.4f,\"category_guard\":%.4f,\"quick\":%s",
           nprod, nq, g.s.n - nq, (double)r1 / nq, (double)r5 / nq, (double)c1 / nq, (double)cg / nq,
           quick ? "true" : "false");

    /* ---- (c) distortions of grocery catalog photos --------------------- */
    {
        size_t *pool = malloc(g.s.n * sizeof *pool), m = 0;
        for (size_t i = 0; i < g.s.n; i++)
            if (!g.is_query[i])
                pool[m++] = i;
        rng_state = SEED + 3;
        shuffle(pool, m);
        size_t take = quick ? 5 : 150;
        if (take > m)
            take = m;
        size_t hit[N_DIST] = {0}, tot[N_DIST] = {0};
        for (size_t t = 0; t < take; t++) {
            size_t i = pool[t], len;
            unsigned char *b = slurp(g.s.paths[i], &len);
            if (!b)
                die(g.s.paths[i], NULL);
            for (int k = 0; k < N_DIST; k++) {
                size_t dl;
                char desc[128];
                unsigned char *d = distort(b, len, k, &dl, desc, sizeof desc);
                if (!d)
                    continue;
                struct qres q;
                if (search(&g, d, dl, g.s.product_names[g.s.product[i]], g.s.category[i], -1, &q) == 0) {
                    tot[k]++;
                    hit[k] += q.rank_sku == 1;
                }
                free(d);
            }
            free(b);
        }
        free(pool);
        printf("\n(c) distortions of grocery catalog photos: recall@1 of the original SKU (%zu photos each)\n", take);
        printf("| %-11s | %7s | %8s |\n|-------------|---------|----------|\n", "distortion", "queries", "recall@1");
        size_t ah = 0, at = 0;
        for (int k = 0; k < N_DIST; k++) {
            printf("| %-11s | %7zu | %8.3f |\n", dist_names[k], tot[k], tot[k] ? (double)hit[k] / tot[k] : 0);
            record("distortion", "grocery", ",\"distortion\":\"%s\",\"queries\":%zu,\"recall_at_1\":%.4f,\"quick\":%s",
                   dist_names[k], tot[k], tot[k] ? (double)hit[k] / tot[k] : 0, quick ? "true" : "false");
            ah += hit[k];
            at += tot[k];
        }
        printf("| %-11s | %7zu | %8.3f |\n", "all", at, at ? (double)ah / at : 0);
    }
    lk_engine_close(g.eng);

    /* ---- (b) clothing-photos and fashion-small ------------------------- */
    static const char *const fsets[] = {"clothing-photos", "fashion-small"};
    printf("\n(b) one photo per product; 10 %% held out as queries\n");
    printf("| %-16s | %7s | %7s | %13s | %14s | %14s |\n", "set", "queries", "catalog", "category P@10",
           "colour agr@10", "guard category");
    printf("|------------------|---------|---------|---------------|----------------|----------------|\n");
    for (int fs = 0; fs < 2; fs++) {
        struct cat c = {0};
        load_set(&c, data, fsets[fs]);
        rng_state = SEED + 10 + (uint64_t)fs;
        if (quick)
            subset(&c, 0, 200);
        size_t *perm = malloc(c.s.n * sizeof *perm);
        for (size_t i = 0; i < c.s.n; i++)
            perm[i] = i;
        shuffle(perm, c.s.n);
        size_t h = (size_t)lround(FASHION_HOLDOUT * (double)c.s.n);
        for (size_t k = 0; k < h; k++)
            c.is_query[perm[k]] = 1;
        free(perm);
        build_catalog(&c, qwork, models, 0);
        sku_n = 0;
        sku_tab = malloc(c.s.n * sizeof *sku_tab);
        for (size_t i = 0; i < c.s.n; i++)
            if (!c.is_query[i])
                sku_tab[sku_n++] = (struct skuidx){c.s.product_names[c.s.product[i]], i};
        qsort(sku_tab, sku_n, sizeof *sku_tab, cmp_skuidx);
        size_t q_n = 0, cat_hits = 0, res_n = 0, col_hits = 0, col_judged = 0, guard_ok = 0;
        for (size_t i = 0; i < c.s.n; i++) {
            if (!c.is_query[i])
                continue;
            size_t len;
            unsigned char *b = slurp(c.s.paths[i], &len);
            struct qres q;
            if (!b || search(&c, b, len, NULL, c.s.category[i], c.s.colour[i], &q) != 0)
                die(c.s.paths[i], NULL);
            free(b);
            q_n++;
            /* precision@10: a query with fewer than 10 results counts the
             * missing ones as misses (the shopper sees fewer matches). */
            cat_hits += q.cat_hits;
            res_n += K;
            col_hits += q.colour_hits;
            col_judged += q.colour_judged;
            guard_ok += (size_t)q.guard_cat_ok;
        }
        double p10 = res_n ? (double)cat_hits / (double)res_n : 0;
        double col = col_judged ? (double)col_hits / (double)col_judged : -1;
        char colbuf[32];
        if (col >= 0)
            snprintf(colbuf, sizeof colbuf, "%.3f", col);
        else
            snprintf(colbuf, sizeof colbuf, "n/a (no labels)");
        printf("| %-16s | %7zu | %7zu | %13.3f | %14s | %14.3f |\n", fsets[fs], q_n, c.s.n - q_n, p10, colbuf,
               q_n ? (double)guard_ok / q_n : 0);
        record("category", fsets[fs],
               ",\"queries\":%zu,\"catalog_images\":%zu,\"category_precision_at_10\":%.4f,"
               "\"colour_agreement_at_10\":%.4f,\"colour_judged\":%zu,\"category_guard\":%.4f,\"quick\":%s",
               q_n, c.s.n - q_n, p10, col, col_judged, q_n ? (double)guard_ok / q_n : 0, quick ? "true" : "false");
        free(sku_tab);
        sku_tab = NULL;
        lk_engine_close(c.eng);
        for (int ci = 0; ci < c.s.n_categories; ci++)
            free(c.cat_path[ci]);
        free(c.cat_path);
        free(c.is_query);
        bench_set_free(&c.s);
    }

    /* ---- (d) bands ----------------------------------------------------- */
    printf("\n(d) confidence bands over all %zu searches: zero results %.3f, fallback applied %.3f\n", n_searches,
           (double)n_zero / n_searches, (double)n_fallback / n_searches);
    printf("| %-6s | %8s | %15s | %16s |\n|--------|----------|-----------------|------------------|\n", "band",
           "results", "right product", "right category");
    for (int b = LK_BAND_COUNT - 1; b >= 0; b--) {
        const struct bandstat *x = &bands[b];
        double rp = x->product_judged ? (double)x->right_product / x->product_judged : -1;
        double rc = x->n ? (double)x->right_category / x->n : -1;
        printf("| %-6s | %8zu | %15.3f | %16.3f |\n", lk_band_name((enum lk_band)b), x->n, rp, rc);
        record("band", "all",
               ",\"band\":\"%s\",\"results\":%zu,\"product_judged\":%zu,\"precision_product\":%.4f,"
               "\"precision_category\":%.4f,\"quick\":%s",
               lk_band_name((enum lk_band)b), x->n, x->product_judged, rp, rc, quick ? "true" : "false");
    }
    printf("(right product is judged on grocery and distortion queries only; -1 = no results in the band)\n");
    record("rates", "all", ",\"searches\":%zu,\"zero_result_rate\":%.4f,\"fallback_rate\":%.4f,\"quick\":%s",
           n_searches, (double)n_zero / n_searches, (double)n_fallback / n_searches, quick ? "true" : "false");
    for (int ci = 0; ci < g.s.n_categories; ci++)
        free(g.cat_path[ci]);
    free(g.cat_path);
    free(g.is_query);
    bench_set_free(&g.s);
    if (js)
        fclose(js);
    return 0;
}
