/*
 * build.c — the indexing pipeline: catalog -> new index generation.
 *
 * Lives in src/search (not src/catalog) because it needs everything the
 * query path needs — the same decode limits, the same embedder, the
 * engine's band calibration — and the catalog module must stay free of the
 * image/embedding stack.  The catalog provides the import, the store and the
 * generation directory/MANIFEST mechanism; this file drives them.
 *
 * Phases of lk_index_build:
 *   1. import     the CSV/JSONL (lk_catalog_import_file) into SQLite
 *   2. embed      decode + quality + CNN descriptor + colour histogram for
 *                 every catalog image, on `threads` threads each with its
 *                 own CNN workspace; images are handed out by an atomic
 *                 counter, so a slow (large) photo never stalls the others
 *   3. learn      embedding post-processing (mean, optional PCA) from the
 *                 catalog's own descriptors (lk_embed_params_learn)
 *   4. index      fuse and insert with lk_index_add_batch (parallel build),
 *                 then lk_index_reorder (graph neighbours adjacent in memory)
 *   5. calibrate  distorted copies of a sample of catalog images against
 *                 the new index -> band thresholds (bands.c)
 *   6. report     weak images by SKU; near-duplicate products (different
 *                 SKUs whose photos are closer than the `exact` threshold),
 *                 found by searching the new index with every vector
 *   7. commit     files fsynced into gen-N, MANIFEST switched atomically
 *                 (lk_generation_commit); only then are the catalog's
 *                 per-image quality signals and indexed generation written.
 *
 * Stage accounting (lk_build_report.stage[], lookalike/search.h): each
 * worker keeps its own per-stage sums for the per-image stages (no shared
 * counters, no atomics on the hot path) and run_job adds them up after the
 * join; one clock pair (monotonic + thread CPU) is read at each stage
 * boundary, 6 pairs per image, against ~20 ms of work per image.  Whole
 * phases are timed on the calling thread with the process CPU clock, so the
 * threads lk_index_add_batch starts are counted too.  The embedding is
 * lk_embed_describe's three steps (resize once, CNN, colour) called one by
 * one so that each gets its own clock; the resize counts as decode.
 *
 * A failure before the commit leaves the previous generation current and
 * the half-written directory is removed (lk_gen_build_free); a crash leaves
 * garbage that the next lk_generation_begin collects.
 *
 * Distortions for calibration: centre crop to 80 %, brightness x0.8 and
 * x1.2, down-sampling to a third and back (the loss of detail that heavy
 * JPEG recompression and small uploads cause; src/ has no JPEG encoder, so
 * resampling stands in for it), rotation by 6 degrees.  Brightness counts
 * as "mild" (a near-duplicate photo) for the `exact` threshold.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "psearch.h"

void lk_build_opts_default(struct lk_build_opts *o)
{
    memset(o, 0, sizeof *o);
    o->keep_old = 1;
    o->precision = LK_CNN_PRECISION_DEFAULT;
}

/* ==== Catalog images ==================================================== */

struct bimg {
    int64_t id, product_id;
    char *sku, *path;
    uint64_t indexed_gen;
    int status;                 /* LK_OK once embedded */
    struct lk_catalog_quality q;
    int has_q;
};

struct blist {
    struct bimg *v;
    size_t n, cap;
};

static int collect(const struct lk_catalog_image *im, void *ud)
{
    struct blist *l = ud;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        struct bimg *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return LK_ERR_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    struct bimg *b = &l->v[l->n];
    memset(b, 0, sizeof *b);
    b->id = im->image_id;
    b->product_id = im->product_id;
    b->indexed_gen = im->indexed_gen;
    b->sku = strdup(im->sku ? im->sku : "");
    b->path = strdup(im->path ? im->path : "");
    b->status = LK_ERR_STATE;
    if (!b->sku || !b->path) {
        free(b->sku);
        free(b->path);
        return LK_ERR_NOMEM;
    }
    l->n++;
    return 0;
}

static void blist_free(struct blist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].sku);
        free(l->v[i].path);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Index into l->v of image `id` (the list is in image_id order), or -1. */
static ssize_t find_img(const struct blist *l, int64_t id)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].id == id ? (ssize_t)lo : -1;
}

/* ==== Stage clocks ====================================================== */

struct clk {
    double wall, cpu;           /* ms */
};

/* Monotonic time and `cpu_clock` (CLOCK_THREAD_CPUTIME_ID for per-image
 * stages on a worker, CLOCK_PROCESS_CPUTIME_ID for whole phases). */
static struct clk clk_now(clockid_t cpu_clock)
{
    struct timespec w, c;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(cpu_clock, &c);
    return (struct clk){(double)w.tv_sec * 1e3 + (double)w.tv_nsec / 1e6,
                        (double)c.tv_sec * 1e3 + (double)c.tv_nsec / 1e6};
}

/* Add the time since *since to *t and restart *since from now, so that
 * consecutive stages share their boundary reads. */
static void clk_lap(struct lk_build_time *t, struct clk *since, clockid_t cpu_clock)
{
    struct clk n = clk_now(cpu_clock);
    t->wall_ms += n.wall - since->wall;
    t->cpu_ms += n.cpu - since->cpu;
    *since = n;
}

#define PHASE_CLOCK CLOCK_PROCESS_CPUTIME_ID
#define IMAGE_CLOCK CLOCK_THREAD_CPUTIME_ID

const char *lk_build_stage_str(int stage)
{
    static const char *const names[LK_BUILD_STAGE_COUNT] = {
        "setup", "import", "decode", "quality", "colour", "cnn",
        "fuse", "index", "calibrate", "dups", "commit",
    };
    return stage >= 0 && stage < LK_BUILD_STAGE_COUNT ? names[stage] : "unknown";
}

/* ==== Parallel work ===================================================== */

struct pool {
    struct lk_cnn_model *model;
    unsigned threads;
    struct lk__ws **ws;
};

static int pool_init(struct pool *p, const char *model_dir, enum lk_cnn_precision precision, unsigned threads,
                     struct lk_err *err)
{
    memset(p, 0, sizeof *p);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    if (threads > 64)
        threads = 64;
    struct lk_cnn_options co;
    lk_cnn_options_init(&co);
    co.precision = precision;
    int rc = lk_cnn_load_opts(model_dir, &co, &p->model, err);
    if (rc != LK_OK)
        return rc;
    p->ws = calloc(threads, sizeof *p->ws);
    if (!p->ws)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    p->threads = threads;
    for (unsigned t = 0; t < threads; t++) {
        rc = lk__ws_new(p->model, &p->ws[t], err);
        if (rc != LK_OK)
            return rc;
    }
    return LK_OK;
}

static void pool_free(struct pool *p)
{
    for (unsigned t = 0; p->ws && t < p->threads; t++)
        lk__ws_free(p->ws[t]);
    free(p->ws);
    lk_cnn_free(p->model);
    memset(p, 0, sizeof *p);
}

struct job;
/* Work item i on a worker with workspace ws; acc is the worker's own
 * per-stage sums (LK_BUILD_STAGE_COUNT entries). */
typedef void (*job_fn)(struct job *j, struct lk__ws *ws, struct lk_build_time *acc, size_t i);

struct job {
    job_fn fn;
    size_t n;
    atomic_size_t next, done;
    struct pool *pool;
    void *ud;
};

struct worker_arg {
    struct job *j;
    struct lk__ws *ws;
    struct lk_build_time acc[LK_BUILD_STAGE_COUNT];
};

static void *worker(void *arg)
{
    struct worker_arg *a = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&a->j->next, 1);
        if (i >= a->j->n)
            break;
        a->j->fn(a->j, a->ws, a->acc, i);
        atomic_fetch_add(&a->j->done, 1);
    }
    return NULL;
}

/* Run fn(i) for i in [0, n) on the pool's threads; report progress from
 * this thread every 200 ms.  The workers' per-stage sums are added to
 * stages[] (NULL: dropped). */
static void run_job(struct pool *p, job_fn fn, size_t n, void *ud, const struct lk_build_opts *o,
                    const char *phase, struct lk_build_time *stages)
{
    struct job j = {.fn = fn, .n = n, .pool = p, .ud = ud};
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    pthread_t th[64];
    struct worker_arg args[64];
    unsigned started = 0;
    memset(args, 0, sizeof args);
    for (unsigned t = 0; t < p->threads; t++) {
        args[t].j = &j;
        args[t].ws = p->ws[t];
        if (pthread_create(&th[t], NULL, worker, &args[t]) == 0)
            started++;
        else
            break;
    }
    if (started == 0) {
        args[0].j = &j;
        args[0].ws = p->ws[0];
        worker(&args[0]);
    }
    if (o->progress) {
        /* Wake every 10 ms so a short phase is not stretched to the 200 ms
         * reporting period (the stage wall clocks would show it). */
        o->progress(o->progress_ud, phase, 0, n);
        double last = lk__now_ms();
        while (atomic_load(&j.done) < n && started) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (lk__now_ms() - last >= 200) {
                last = lk__now_ms();
                o->progress(o->progress_ud, phase, atomic_load(&j.done), n);
            }
        }
    }
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    for (unsigned t = 0; stages && t < (started ? started : 1); t++)
        for (int s = 0; s < LK_BUILD_STAGE_COUNT; s++) {
            stages[s].wall_ms += args[t].acc[s].wall_ms;
            stages[s].cpu_ms += args[t].acc[s].cpu_ms;
        }
    if (o->progress)
        o->progress(o->progress_ud, phase, n, n);
}

/* ==== Phase: embed ====================================================== */

struct embed_ctx {
    struct blist *l;
    size_t *todo;               /* indexes into l->v */
    const char *images_dir;
    size_t cnn_dim;
    float *raw;                 /* [n_todo][cnn_dim] */
    float *colour;              /* [n_todo][LK_COLOUR_DIM] */
};

static void embed_one(struct job *j, struct lk__ws *ws, struct lk_build_time *acc, size_t i)
{
    struct embed_ctx *e = j->ud;
    struct bimg *b = &e->l->v[e->todo[i]];
    char path[4200];
    struct lk_err err = {0};
    struct clk c = clk_now(IMAGE_CLOCK);
    int rc = lk__image_path(e->images_dir, b->path, path, sizeof path, &err);
    struct lk_image img = {0};
    struct lk_image_info info;
    struct lk_decode_opts o;
    lk__decode_opts(&o, 0, 0);
    if (rc == LK_OK)
        rc = lk_image_load_file(path, &o, &img, &info, &err);
    clk_lap(&acc[LK_BUILD_STAGE_DECODE], &c, IMAGE_CLOCK);
    if (rc == LK_OK) {
        struct lk_image_quality q;
        if (lk_image_quality_orig(&img, info.orig_width, info.orig_height, &q, NULL) == LK_OK) {
            b->q.blur = q.blur;
            b->q.contrast = q.contrast;
            b->q.border_uniformity = q.border_uniformity;
            b->q.plain_background = q.plain_background;
            b->q.weak_flags = q.weak_flags;
            b->has_q = 1;
        }
        clk_lap(&acc[LK_BUILD_STAGE_QUALITY], &c, IMAGE_CLOCK);
        /* The steps of lk_embed_describe (= lk__describe), one clock each:
         * the single resize to the network input (counted as decode), then
         * the CNN descriptor and the colour histogram of that copy.
         * test_build checks the stored vectors equal the query path's. */
        uint32_t w = 0, h = 0;
        lk_cnn_input_size(ws->model, &w, &h);
        struct lk_image sized = {0};
        rc = lk_image_resize_area(&img, w, h, &sized, &err);
        clk_lap(&acc[LK_BUILD_STAGE_DECODE], &c, IMAGE_CLOCK);
        if (rc == LK_OK) {
            rc = lk_cnn_describe(ws->cnn, &sized, ws->raw, &err);
            clk_lap(&acc[LK_BUILD_STAGE_CNN], &c, IMAGE_CLOCK);
        }
        if (rc == LK_OK) {
            rc = lk_colour_embed(&sized, ws->colour, &err);
            clk_lap(&acc[LK_BUILD_STAGE_COLOUR], &c, IMAGE_CLOCK);
        }
        lk_image_free(&sized);
        if (rc == LK_OK) {
            memcpy(e->raw + i * e->cnn_dim, ws->raw, e->cnn_dim * sizeof(float));
            memcpy(e->colour + i * LK_COLOUR_DIM, ws->colour, LK_COLOUR_DIM * sizeof(float));
        }
    }
    lk_image_free(&img);
    b->status = rc;
}

/* ==== Phase: calibrate ================================================== */

#define N_DISTORT 5

static int distort(const struct lk_image *src, int kind, struct lk_image *out)
{
    uint32_t w = src->width, h = src->height;
    switch (kind) {
    case 0: {   /* centre crop 80 % */
        uint32_t cw = w * 4 / 5 ? w * 4 / 5 : 1, ch = h * 4 / 5 ? h * 4 / 5 : 1;
        uint32_t x0 = (w - cw) / 2, y0 = (h - ch) / 2;
        if (lk_image_init(out, cw, ch, NULL) != LK_OK)
            return -1;
        for (uint32_t y = 0; y < ch; y++)
            memcpy(out->rgb + (size_t)y * cw * 3, src->rgb + ((size_t)(y + y0) * w + x0) * 3, (size_t)cw * 3);
        return 0;
    }
    case 1:
    case 2: {   /* brightness */
        double f = kind == 1 ? 0.8 : 1.2;
        if (lk_image_init(out, w, h, NULL) != LK_OK)
            return -1;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) {
            double v = src->rgb[i] * f;
            out->rgb[i] = (uint8_t)(v > 255 ? 255 : v);
        }
        return 0;
    }
    case 3: {   /* down to a third and back */
        struct lk_image small = {0};
        uint32_t sw = w / 3 ? w / 3 : 1, sh = h / 3 ? h / 3 : 1;
        if (lk_image_resize(src, sw, sh, &small, NULL) != LK_OK)
            return -1;
        int rc = lk_image_resize(&small, w, h, out, NULL);
        lk_image_free(&small);
        return rc == LK_OK ? 0 : -1;
    }
    default: {  /* rotate 6 degrees about the centre, bilinear, edges replicated */
        if (lk_image_init(out, w, h, NULL) != LK_OK)
            return -1;
        double a = 6.0 * M_PI / 180.0, ca = cos(a), sa = sin(a);
        double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                double sx = ca * (x - cx) + sa * (y - cy) + cx;
                double sy = -sa * (x - cx) + ca * (y - cy) + cy;
                if (sx < 0) sx = 0;
                if (sy < 0) sy = 0;
                if (sx > w - 1) sx = w - 1;
                if (sy > h - 1) sy = h - 1;
                uint32_t x0 = (uint32_t)sx, y0 = (uint32_t)sy;
                uint32_t x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
                double fx = sx - x0, fy = sy - y0;
                for (int c = 0; c < 3; c++) {
                    double v = (1 - fx) * (1 - fy) * src->rgb[((size_t)y0 * w + x0) * 3 + c] +
                               fx * (1 - fy) * src->rgb[((size_t)y0 * w + x1) * 3 + c] +
                               (1 - fx) * fy * src->rgb[((size_t)y1 * w + x0) * 3 + c] +
                               fx * fy * src->rgb[((size_t)y1 * w + x1) * 3 + c];
                    out->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v + 0.5);
                }
            }
        return 0;
    }
    }
}

struct calib_ctx {
    struct blist *l;
    size_t *sample;             /* indexes into l->v */
    const char *images_dir;
    const struct lk_embed_params *params;
    const struct lk_index *idx;
    uint32_t per_sku;
    float *own, *other;         /* [n_sample * N_DISTORT], NAN = not measured */
};

static void calib_one(struct job *j, struct lk__ws *ws, struct lk_build_time *acc, size_t i)
{
    (void)acc;      /* the whole phase is one stage */
    struct calib_ctx *c = j->ud;
    const struct bimg *b = &c->l->v[c->sample[i]];
    for (int d = 0; d < N_DISTORT; d++) {
        c->own[i * N_DISTORT + d] = NAN;
        c->other[i * N_DISTORT + d] = NAN;
    }
    char path[4200];
    struct lk_image img = {0};
    struct lk_decode_opts o;
    lk__decode_opts(&o, 0, 0);
    if (lk__image_path(c->images_dir, b->path, path, sizeof path, NULL) != LK_OK ||
        lk_image_load_file(path, &o, &img, NULL, NULL) != LK_OK)
        return;
    size_t k = (size_t)c->per_sku * 2 + 16;
    if (k > LK__HITS_MAX)
        k = LK__HITS_MAX;
    for (int d = 0; d < N_DISTORT; d++) {
        struct lk_image dimg = {0};
        size_t n = 0;
        if (distort(&img, d, &dimg) != 0)
            continue;
        int ok = lk__describe(ws, &dimg, NULL) == LK_OK &&
                 lk_embed_fuse(c->params, ws->raw, ws->colour, ws->vec, NULL) == LK_OK &&
                 lk_index_search(c->idx, ws->vec, k, NULL, ws->hits, &n, NULL) == LK_OK;
        lk_image_free(&dimg);
        if (!ok)
            continue;
        float own = NAN, other = NAN;
        for (size_t h = 0; h < n; h++) {
            ssize_t at = find_img(c->l, (int64_t)ws->hits[h].id);
            if (at < 0)
                continue;
            float s = ws->hits[h].similarity;
            if (c->l->v[at].product_id == b->product_id) {
                if (isnan(own))
                    own = s;
            } else if (isnan(other)) {
                other = s;
            }
        }
        if (!isnan(own) && !isnan(other)) {
            c->own[i * N_DISTORT + d] = own;
            c->other[i * N_DISTORT + d] = other;
        }
    }
    lk_image_free(&img);
}

/* ==== Phase: near-duplicates ============================================ */

/* The report lists at most DUPS_REPORT_MAX pairs (the most similar first);
 * up to DUPS_COLLECT_MAX raw findings are kept before merging. */
#define DUPS_REPORT_MAX 10000u
#define DUPS_COLLECT_MAX (4u * DUPS_REPORT_MAX)

static int cmp_dup(const void *x, const void *y)
{
    const struct lk_build_dup *a = x, *b = y;
    int c = strcmp(a->sku_a, b->sku_a);
    if (!c)
        c = strcmp(a->sku_b, b->sku_b);
    if (!c)
        c = (a->similarity < b->similarity) - (a->similarity > b->similarity);
    return c;
}

static int cmp_dup_sim(const void *x, const void *y)
{
    const struct lk_build_dup *a = x, *b = y;
    int c = (a->similarity < b->similarity) - (a->similarity > b->similarity);
    return c ? c : cmp_dup(x, y);
}

struct dup_ctx {
    struct blist *l;
    size_t *ok;                 /* indexes of embedded images */
    const struct lk_index *idx;
    size_t dim;
    float exact;
    uint32_t per_sku;
    pthread_mutex_t mu;
    struct lk_build_dup *dups;
    size_t n, cap;
};

static void dup_one(struct job *j, struct lk__ws *ws, struct lk_build_time *acc, size_t i)
{
    (void)acc;      /* the whole phase is one stage */
    struct dup_ctx *c = j->ud;
    const struct bimg *b = &c->l->v[c->ok[i]];
    size_t n = 0, k = (size_t)c->per_sku + 4;
    if (lk_index_get_vector(c->idx, (uint64_t)b->id, ws->vec, NULL) != LK_OK ||
        lk_index_search(c->idx, ws->vec, k, NULL, ws->hits, &n, NULL) != LK_OK)
        return;
    for (size_t h = 0; h < n; h++) {
        if (ws->hits[h].similarity < c->exact)
            break;
        ssize_t at = find_img(c->l, (int64_t)ws->hits[h].id);
        if (at < 0 || c->l->v[at].product_id == b->product_id)
            continue;
        const char *a = b->sku, *o = c->l->v[at].sku;
        if (strcmp(a, o) > 0)
            continue;   /* each pair once: reported from its smaller SKU */
        pthread_mutex_lock(&c->mu);
        /* Appended as found; pairs found twice (a product with several
         * photos) are merged by sort + unique in find_dups, so this stays
         * O(1) per hit even when a catalog has 100k shared-photo variants. */
        if (c->n < DUPS_COLLECT_MAX) {
            if (c->n == c->cap) {
                size_t nc = c->cap ? c->cap * 2 : 64;
                struct lk_build_dup *nd = realloc(c->dups, nc * sizeof *nd);
                if (nd) {
                    c->dups = nd;
                    c->cap = nc;
                }
            }
            if (c->n < c->cap) {
                c->dups[c->n].sku_a = strdup(a);
                c->dups[c->n].sku_b = strdup(o);
                c->dups[c->n].similarity = ws->hits[h].similarity;
                if (c->dups[c->n].sku_a && c->dups[c->n].sku_b)
                    c->n++;
                else {
                    free(c->dups[c->n].sku_a);
                    free(c->dups[c->n].sku_b);
                }
            }
        }
        pthread_mutex_unlock(&c->mu);
    }
}

/* ==== Driver ============================================================ */

static double now_s(void)
{
    return lk__now_ms() / 1e3;
}

static uint32_t per_sku_bound(const struct blist *l)
{
    /* l is in image_id order, not grouped by product: count per product
     * with a small sort of product ids. */
    size_t n = 0;
    int64_t *p = malloc((l->n ? l->n : 1) * sizeof *p);
    if (!p)
        return LK__PER_SKU_MAX;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].status == LK_OK)
            p[n++] = l->v[i].product_id;
    /* insertion-free counting: sort then scan */
    for (size_t gap = n / 2; gap > 0; gap /= 2)   /* shell sort: no comparator boilerplate */
        for (size_t i = gap; i < n; i++)
            for (size_t k = i; k >= gap && p[k - gap] > p[k]; k -= gap) {
                int64_t t = p[k];
                p[k] = p[k - gap];
                p[k - gap] = t;
            }
    uint32_t best = 1, run = 1;
    for (size_t i = 1; i < n; i++) {
        run = p[i] == p[i - 1] ? run + 1 : 1;
        if (run > best)
            best = run;
    }
    free(p);
    return best > LK__PER_SKU_MAX ? LK__PER_SKU_MAX : best;
}

struct weak_list {
    struct lk_build_report *rep;
};

static int report_weak(struct lk_build_report *rep, const struct blist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct bimg *b = &l->v[i];
        if (b->status != LK_OK || !b->has_q || !b->q.weak_flags)
            continue;
        struct lk_build_weak *nw = realloc(rep->weak, (rep->n_weak + 1) * sizeof *nw);
        if (!nw)
            return LK_ERR_NOMEM;
        rep->weak = nw;
        nw[rep->n_weak].sku = strdup(b->sku);
        nw[rep->n_weak].image_id = b->id;
        nw[rep->n_weak].flags = b->q.weak_flags;
        if (!nw[rep->n_weak].sku)
            return LK_ERR_NOMEM;
        rep->n_weak++;
    }
    return LK_OK;
}

/* Everything both build flavours share once the catalog is ready:
 * embed `todo`, (learn params when *params is NULL), add to *idx (created
 * when NULL), calibrate when `calibrate`, report, save, commit. */
struct run {
    const struct lk_build_opts *o;
    struct lk_catalog *cat;
    struct blist l;
    struct pool pool;
    struct lk_gen_build *gb;
    struct lk_embed_params *params;
    struct lk_index *idx;
    struct lk__meta meta;
    struct clk start;           /* PHASE_CLOCK at the start of the build */
    struct clk mark;            /* end of the last stage timed on this thread */
};

/* rep->total (and seconds_total) = from the start until now. */
static void total_now(const struct run *r, struct lk_build_report *rep)
{
    struct clk n = clk_now(PHASE_CLOCK);
    rep->total.wall_ms = n.wall - r->start.wall;
    rep->total.cpu_ms = n.cpu - r->start.cpu;
    rep->seconds_total = rep->total.wall_ms / 1e3;
}

struct path_key {
    const char *path;
    size_t k;
};

/* By path, then by todo position (so the first of equal paths sorts first). */
static int cmp_path_key(const void *x, const void *y)
{
    const struct path_key *a = x, *b = y;
    int c = strcmp(a->path, b->path);
    return c ? c : (a->k > b->k) - (a->k < b->k);
}

static int embed_and_index(struct run *r, struct lk_build_report *rep, int learn, struct lk_err *err)
{
    const struct lk_build_opts *o = r->o;
    size_t cnn_dim = lk_cnn_dim(r->pool.model);
    size_t n_todo = 0;
    size_t *todo = malloc((r->l.n ? r->l.n : 1) * sizeof *todo);
    if (!todo)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < r->l.n; i++) {
        struct bimg *b = &r->l.v[i];
        if (!learn && lk_index_contains(r->idx, (uint64_t)b->id) && b->indexed_gen != 0) {
            b->status = LK_OK;      /* carried over from the previous generation */
            rep->reused++;
            continue;
        }
        todo[n_todo++] = i;
    }
    /* Catalog images that name the same photo file (variants of a product
     * listed with one shared catalog photo) are decoded and embedded once:
     * uniq[] holds the first todo entry of each distinct path (in todo
     * order, so a catalog without shared photos is processed exactly as
     * before), row[k] the uniq row of todo entry k. */
    size_t n_u = 0, *uniq = NULL, *row = NULL, *first = NULL;
    struct path_key *keys = NULL;
    struct embed_ctx e = {.l = &r->l, .images_dir = o->images_dir, .cnn_dim = cnn_dim};
    size_t nn = n_todo ? n_todo : 1;
    uniq = malloc(nn * sizeof *uniq);
    row = malloc(nn * sizeof *row);
    first = malloc(nn * sizeof *first);
    keys = malloc(nn * sizeof *keys);
    if (uniq && row && first && keys) {
        for (size_t k = 0; k < n_todo; k++)
            keys[k] = (struct path_key){r->l.v[todo[k]].path, k};
        if (n_todo)
            qsort(keys, n_todo, sizeof *keys, cmp_path_key);
        for (size_t i = 0; i < n_todo; i++)
            first[keys[i].k] = i && !strcmp(keys[i].path, keys[i - 1].path) ? first[keys[i - 1].k] : keys[i].k;
        for (size_t k = 0; k < n_todo; k++) {
            if (first[k] == k) {
                row[k] = n_u;
                uniq[n_u++] = todo[k];
            } else {
                row[k] = row[first[k]];
            }
        }
        e.todo = uniq;
        e.raw = malloc((n_u ? n_u : 1) * cnn_dim * sizeof(float));
        e.colour = malloc((n_u ? n_u : 1) * LK_COLOUR_DIM * sizeof(float));
    }
    free(keys);
    if (!uniq || !row || !first || !e.raw || !e.colour) {
        free(todo);
        free(uniq);
        free(row);
        free(first);
        free(e.raw);
        free(e.colour);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    double t0 = now_s();
    run_job(&r->pool, embed_one, n_u, &e, o, "embed", rep->stage);
    rep->seconds_embed = now_s() - t0;
    rep->stage_images += n_u;
    rep->shared_photos += n_todo - n_u;
    rep->images_per_second = rep->seconds_embed > 0 ? (double)n_u / rep->seconds_embed : 0;
    for (size_t k = 0; k < n_todo; k++) {
        if (first[k] != k) {
            struct bimg *b = &r->l.v[todo[k]];
            const struct bimg *src = &r->l.v[todo[first[k]]];
            b->status = src->status;
            b->q = src->q;
            b->has_q = src->has_q;
        }
    }

    /* Compact the successfully embedded photos (rows), then list every
     * catalog image whose photo succeeded with the row it uses. */
    size_t n_rows = 0, n_ok = 0;
    uint64_t *ids = malloc(nn * sizeof *ids);
    size_t *src_row = malloc(nn * sizeof *src_row);
    int rc = ids && src_row ? LK_OK : lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    /* first[] is reused as the uniq-row -> compact-row map (n_u <= n_todo). */
    for (size_t u = 0; rc == LK_OK && u < n_u; u++) {
        if (r->l.v[uniq[u]].status != LK_OK) {
            first[u] = SIZE_MAX;
            continue;
        }
        if (n_rows != u) {
            memmove(e.raw + n_rows * cnn_dim, e.raw + u * cnn_dim, cnn_dim * sizeof(float));
            memmove(e.colour + n_rows * LK_COLOUR_DIM, e.colour + u * LK_COLOUR_DIM,
                    LK_COLOUR_DIM * sizeof(float));
        }
        first[u] = n_rows++;
    }
    for (size_t k = 0; rc == LK_OK && k < n_todo; k++) {
        struct bimg *b = &r->l.v[todo[k]];
        if (b->status != LK_OK) {
            rep->skipped++;
            rep->skipped_by_reason[lk__skip_reason(b->status)]++;
            continue;
        }
        src_row[n_ok] = first[row[k]];
        ids[n_ok++] = (uint64_t)b->id;
    }
    double t1 = now_s();
    struct clk c = clk_now(PHASE_CLOCK);
    if (rc == LK_OK && learn) {
        /* Learned from each distinct photo once, however many SKUs share it. */
        if (n_rows == 0)
            rc = lk_err_set(err, LK_ERR_EMPTY, "no catalog image could be indexed");
        else {
            size_t pca = o->pca_dim && o->pca_dim < n_rows && o->pca_dim <= cnn_dim ? o->pca_dim : 0;
            rc = lk_embed_params_learn(e.raw, n_rows, cnn_dim, pca, o->w > 0 ? o->w : LK_EMBED_W_DEFAULT,
                                       &r->params, err);
            if (rc == LK_OK)
                rc = lk_embed_params_set_cnn_precision(r->params, lk_cnn_precision(r->pool.model), err);
        }
        clk_lap(&rep->stage[LK_BUILD_STAGE_FUSE], &c, PHASE_CLOCK);
        if (rc == LK_OK) {
            struct lk_index_params ip;
            lk_index_params_default(&ip, (uint32_t)lk_embed_fused_dim(r->params));
            ip.metric = LK_METRIC_IP;   /* fused vectors have unit norm: IP = cosine */
            rc = lk_index_new(&ip, &r->idx, err);
        }
    }
    float *vecs = NULL;
    size_t fdim = r->params ? lk_embed_fused_dim(r->params) : 0;
    if (rc == LK_OK && n_ok) {
        vecs = malloc(n_ok * fdim * sizeof *vecs);
        if (!vecs)
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        for (size_t i = 0; rc == LK_OK && i < n_ok; i++)
            rc = lk_embed_fuse(r->params, e.raw + src_row[i] * cnn_dim, e.colour + src_row[i] * LK_COLOUR_DIM,
                               vecs + i * fdim, err);
        clk_lap(&rep->stage[LK_BUILD_STAGE_FUSE], &c, PHASE_CLOCK);
        if (o->progress && rc == LK_OK)
            o->progress(o->progress_ud, "index", 0, n_ok);
        if (rc == LK_OK)
            rc = lk_index_add_batch(r->idx, ids, vecs, n_ok, r->pool.threads, err);
        /* Renumber the graph for memory locality (lk_index_reorder needs
         * exclusive access: r->idx is this run's private copy — new, or
         * loaded from the current generation's file — and no worker thread
         * searches it before calibration starts).  The order is saved with
         * the index, so the server's searches get it.  Only an optimisation:
         * out of memory leaves the index unchanged and valid, so the build
         * goes on. */
        if (rc == LK_OK)
            (void)lk_index_reorder(r->idx, NULL);
        if (o->progress && rc == LK_OK)
            o->progress(o->progress_ud, "index", n_ok, n_ok);
    }
    clk_lap(&rep->stage[LK_BUILD_STAGE_INDEX], &c, PHASE_CLOCK);   /* incl. lk_index_new */
    rep->seconds_index = now_s() - t1;
    free(vecs);
    free(ids);
    free(src_row);
    free(todo);
    free(uniq);
    free(row);
    free(first);
    free(e.raw);
    free(e.colour);
    return rc;
}

/* Drop vectors of images that left the catalog (incremental builds).
 * Image ids are never reused, so a stale id is either below the highest
 * catalog id (a gap) or above it (the newest images were deleted); the
 * scan above stops once the index holds exactly the catalog's vectors. */
static void drop_stale(struct run *r)
{
    int64_t max_id = r->l.n ? r->l.v[r->l.n - 1].id : 0;
    size_t live = 0;
    for (size_t i = 0; i < r->l.n; i++)
        live += lk_index_contains(r->idx, (uint64_t)r->l.v[i].id) != 0;
    for (int64_t id = 1; id <= max_id; id++)
        if (find_img(&r->l, id) < 0 && lk_index_contains(r->idx, (uint64_t)id))
            lk_index_remove(r->idx, (uint64_t)id, NULL);
    for (uint64_t id = (uint64_t)max_id + 1; lk_index_count(r->idx) > live && id < (uint64_t)max_id + (1u << 24);
         id++)
        if (lk_index_contains(r->idx, id))
            lk_index_remove(r->idx, id, NULL);
}

static int calibrate(struct run *r, struct lk_build_report *rep, struct lk_err *err)
{
    const struct lk_build_opts *o = r->o;
    size_t n_ok = 0;
    for (size_t i = 0; i < r->l.n; i++)
        n_ok += r->l.v[i].status == LK_OK;
    size_t want = o->calib_samples ? o->calib_samples : 100;
    if (want > n_ok)
        want = n_ok;
    size_t *sample = malloc((want ? want : 1) * sizeof *sample);
    float *own = malloc((want ? want : 1) * N_DISTORT * sizeof *own);
    float *other = malloc((want ? want : 1) * N_DISTORT * sizeof *other);
    unsigned char *mild = malloc((want ? want : 1) * N_DISTORT);
    if (!sample || !own || !other || !mild) {
        free(sample);
        free(own);
        free(other);
        free(mild);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    /* Evenly spaced over the embedded images: deterministic. */
    size_t s = 0, seen = 0;
    for (size_t i = 0; i < r->l.n && s < want; i++) {
        if (r->l.v[i].status != LK_OK)
            continue;
        if (seen * want / n_ok == s)
            sample[s++] = i;
        seen++;
    }
    struct calib_ctx c = {.l = &r->l, .sample = sample, .images_dir = o->images_dir,
                          .params = r->params, .idx = r->idx, .per_sku = r->meta.per_sku,
                          .own = own, .other = other};
    double t0 = now_s();
    struct clk ck = clk_now(PHASE_CLOCK);
    run_job(&r->pool, calib_one, s, &c, o, "calibrate", NULL);
    size_t m = 0;
    for (size_t i = 0; i < s * N_DISTORT; i++) {
        if (isnan(own[i]))
            continue;
        own[m] = own[i];
        other[m] = other[i];
        int d = (int)(i % N_DISTORT);
        mild[m] = d == 1 || d == 2;     /* brightness only: near-duplicates */
        m++;
    }
    int rc = lk_bands_from_samples(own, mild, other, m, &r->meta.bands, err);
    rep->seconds_calibrate = now_s() - t0;
    clk_lap(&rep->stage[LK_BUILD_STAGE_CALIBRATE], &ck, PHASE_CLOCK);
    free(sample);
    free(own);
    free(other);
    free(mild);
    return rc;
}

static int find_dups(struct run *r, struct lk_build_report *rep, struct lk_err *err)
{
    struct dup_ctx d = {.l = &r->l, .idx = r->idx, .exact = r->meta.bands.exact,
                        .per_sku = r->meta.per_sku};
    d.ok = malloc((r->l.n ? r->l.n : 1) * sizeof *d.ok);
    if (!d.ok)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < r->l.n; i++)
        if (r->l.v[i].status == LK_OK)
            d.ok[n++] = i;
    struct clk c = clk_now(PHASE_CLOCK);
    pthread_mutex_init(&d.mu, NULL);
    run_job(&r->pool, dup_one, n, &d, r->o, "duplicates", NULL);
    pthread_mutex_destroy(&d.mu);
    /* Each pair once (its highest similarity), most similar first, capped. */
    size_t u = 0;
    if (d.n)
        qsort(d.dups, d.n, sizeof *d.dups, cmp_dup);
    for (size_t i = 0; i < d.n; i++) {
        if (u && !strcmp(d.dups[u - 1].sku_a, d.dups[i].sku_a) && !strcmp(d.dups[u - 1].sku_b, d.dups[i].sku_b)) {
            free(d.dups[i].sku_a);
            free(d.dups[i].sku_b);
            continue;
        }
        d.dups[u++] = d.dups[i];
    }
    if (u)
        qsort(d.dups, u, sizeof *d.dups, cmp_dup_sim);
    for (size_t i = DUPS_REPORT_MAX; i < u; i++) {
        free(d.dups[i].sku_a);
        free(d.dups[i].sku_b);
    }
    clk_lap(&rep->stage[LK_BUILD_STAGE_DUPS], &c, PHASE_CLOCK);
    free(d.ok);
    rep->dups = d.dups;
    rep->n_dups = u < DUPS_REPORT_MAX ? u : DUPS_REPORT_MAX;
    return LK_OK;
}

static int save_and_commit(struct run *r, struct lk_build_report *rep, struct lk_err *err)
{
    const char *dir = lk_gen_build_dir(r->gb);
    struct clk c = clk_now(PHASE_CLOCK);
    char path[4300];
    r->meta.generation = lk_gen_build_number(r->gb);
    rep->generation = r->meta.generation;
    rep->bands = r->meta.bands;
    rep->indexed = lk_index_count(r->idx);
    snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_INDEX);
    int rc = lk_index_save(r->idx, path, err);
    if (rc == LK_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_PARAMS);
        rc = lk_embed_params_save(r->params, path, err);
    }
    if (rc == LK_OK)
        rc = lk__meta_write(dir, &r->meta, err);
    if (rc == LK_OK)
        rc = report_weak(rep, &r->l) == LK_OK ? LK_OK : lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    if (rc == LK_OK) {
        char *json = NULL;
        /* The saved figures stop here; the rest is added below. */
        clk_lap(&rep->stage[LK_BUILD_STAGE_COMMIT], &c, PHASE_CLOCK);
        total_now(r, rep);
        rc = lk_build_report_json(rep, &json, err);
        if (rc == LK_OK)
            rc = lk__write_file_atomic(dir, LK__GEN_REPORT, json, strlen(json), err);
        free(json);
    }
    if (rc == LK_OK)
        rc = lk_generation_commit(r->gb, NULL, err);
    if (rc != LK_OK)
        return rc;
    /* Committed: record per-image quality and generation in the catalog,
     * all in one transaction (one per image cost two fsyncs each: minutes
     * for a 100k-image catalog).  Best effort: the generation is already
     * current, and a failure here only means those images are re-examined
     * by the next incremental update. */
    struct lk_catalog_image_mark *marks = malloc((r->l.n ? r->l.n : 1) * sizeof *marks);
    size_t nm = 0;
    for (size_t i = 0; marks && i < r->l.n; i++) {
        struct bimg *b = &r->l.v[i];
        int idx = b->status == LK_OK && (b->indexed_gen == 0 || b->has_q);
        if (b->has_q || idx)
            marks[nm++] = (struct lk_catalog_image_mark){b->id, b->has_q ? &b->q : NULL,
                                                         idx ? r->meta.generation : 0};
    }
    if (marks)
        lk_catalog_mark_images(r->cat, marks, nm, NULL);
    free(marks);
    clk_lap(&rep->stage[LK_BUILD_STAGE_COMMIT], &c, PHASE_CLOCK);
    return LK_OK;
}

static int run_begin(struct run *r, const struct lk_build_opts *o, struct lk_build_report *rep,
                     const char *const *remove, size_t n_remove, struct lk_err *err)
{
    memset(r, 0, sizeof *r);
    memset(rep, 0, sizeof *rep);
    r->start = r->mark = clk_now(PHASE_CLOCK);
    r->o = o;
    if (!o || !o->data_dir || !o->images_dir || !o->model_dir)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "data, images and model directories are required");
    struct lk_catalog_opts co;
    lk_catalog_opts_default(&co);
    int rc = lk_catalog_open(o->data_dir, &co, &r->cat, err);
    if (rc != LK_OK)
        return rc;
    if (o->catalog_path) {
        clk_lap(&rep->stage[LK_BUILD_STAGE_SETUP], &r->mark, PHASE_CLOCK);
        struct lk_import_opts io;
        struct lk_import_report ir;
        lk_import_opts_default(&io);
        io.images_dir = o->images_dir;
        io.strict = o->strict;
        rc = lk_catalog_import_file(r->cat, o->catalog_path, &io, &ir, err);
        rep->rows_skipped = ir.rows_skipped;
        for (int i = 0; i < LK_IMPORT_REASON_COUNT && i < 32; i++)
            rep->rows_skipped_by_reason[i] = ir.skipped_by_reason[i];
        lk_import_report_free(&ir);
        clk_lap(&rep->stage[LK_BUILD_STAGE_IMPORT], &r->mark, PHASE_CLOCK);
        if (rc != LK_OK)
            return rc;
    }
    for (size_t i = 0; i < n_remove; i++) {
        rc = lk_catalog_delete_product(r->cat, remove[i], err);
        if (rc != LK_OK)
            return rc;
    }
    rc = lk_generation_begin(o->data_dir, o->keep_old, &r->gb, err);
    if (rc == LK_OK)
        rc = pool_init(&r->pool, o->model_dir, o->precision, o->threads, err);
    if (rc == LK_OK)
        rc = lk_catalog_foreach_image(r->cat, collect, &r->l, err);
    if (rc == LK_ERR_NOMEM)
        lk_err_set(err, rc, "out of memory");
    if (rc == LK_OK) {
        struct lk_catalog_counts cc;
        if (lk_catalog_counts(r->cat, &cc, NULL) == LK_OK) {
            rep->products = cc.products;
            rep->images = cc.images;
        }
        rep->threads = r->pool.threads;
        snprintf(r->meta.images_dir, sizeof r->meta.images_dir, "%s", o->images_dir);
        snprintf(r->meta.model_layer, sizeof r->meta.model_layer, "%s", lk_cnn_layer(r->pool.model));
        r->meta.cnn_precision = lk_cnn_precision(r->pool.model);
        r->meta.cnn_dim = (uint32_t)lk_cnn_dim(r->pool.model);
    }
    clk_lap(&rep->stage[LK_BUILD_STAGE_SETUP], &r->mark, PHASE_CLOCK);
    return rc;
}

static void run_end(struct run *r)
{
    lk_gen_build_free(r->gb);   /* removes the directory unless committed */
    pool_free(&r->pool);
    lk_index_free(r->idx);
    lk_embed_params_free(r->params);
    blist_free(&r->l);
    lk_catalog_close(r->cat);
}

int lk_index_build(const struct lk_build_opts *o, struct lk_build_report *rep, struct lk_err *err)
{
    if (!rep)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "report required");
    struct run r;
    int rc = run_begin(&r, o, rep, NULL, 0, err);
    if (rc == LK_OK && r.l.n == 0)
        rc = lk_err_set(err, LK_ERR_EMPTY, "the catalog has no images");
    if (rc == LK_OK)
        rc = embed_and_index(&r, rep, 1, err);
    if (rc == LK_OK) {
        r.meta.fused_dim = (uint32_t)lk_embed_fused_dim(r.params);
        r.meta.per_sku = per_sku_bound(&r.l);
        rc = calibrate(&r, rep, err);
    }
    if (rc == LK_OK)
        rc = find_dups(&r, rep, err);
    if (rc == LK_OK)
        rc = save_and_commit(&r, rep, err);
    total_now(&r, rep);
    run_end(&r);
    return rc;
}

int lk_index_update(const struct lk_build_opts *opts, const char *const *remove_skus, size_t n_remove,
                    struct lk_build_report *rep, struct lk_err *err)
{
    if (!rep || !opts || !opts->data_dir)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "options and report required");
    memset(rep, 0, sizeof *rep);    /* the caller frees it on every path */
    /* The current generation: index, params and calibration are kept. */
    struct lk_generation cur;
    int rc = lk_generation_current(opts->data_dir, &cur, err);
    if (rc == LK_ERR_NOT_FOUND)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "no index generation yet: run `lookalike index build` first");
    if (rc != LK_OK)
        return rc;
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s", cur.dir);   /* already joined with data_dir */
    struct lk__meta old;
    rc = lk__meta_read(dir, &old, err);
    if (rc != LK_OK)
        return rc;
    struct lk_build_opts o = *opts;
    if (!o.images_dir)
        o.images_dir = old.images_dir;  /* where the last build found them */
    o.precision = old.cnn_precision;    /* new vectors must match the stored ones */
    struct run r;
    rc = run_begin(&r, &o, rep, remove_skus, n_remove, err);
    if (rc == LK_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_PARAMS);
        rc = lk_embed_params_load(path, &r.params, err);
    }
    if (rc == LK_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_INDEX);
        rc = lk_index_load(path, 0, &r.idx, err);
    }
    clk_lap(&rep->stage[LK_BUILD_STAGE_SETUP], &r.mark, PHASE_CLOCK);
    if (rc == LK_OK && (lk_embed_cnn_dim(r.params) != r.meta.cnn_dim ||
                        strcmp(old.model_layer, r.meta.model_layer) != 0 ||
                        lk_embed_cnn_precision(r.params) != old.cnn_precision))
        rc = lk_err_set(err, LK_ERR_FORMAT, "the current generation was built with another model; "
                                            "run a full `lookalike index build`");
    if (rc == LK_OK) {
        drop_stale(&r);
        clk_lap(&rep->stage[LK_BUILD_STAGE_INDEX], &r.mark, PHASE_CLOCK);
        rc = embed_and_index(&r, rep, 0, err);
    }
    if (rc == LK_OK) {
        r.meta.fused_dim = old.fused_dim;
        r.meta.bands = old.bands;
        r.meta.per_sku = per_sku_bound(&r.l);
        if (r.meta.per_sku < old.per_sku)
            r.meta.per_sku = old.per_sku;
        rc = find_dups(&r, rep, err);
    }
    if (rc == LK_OK)
        rc = save_and_commit(&r, rep, err);
    total_now(&r, rep);
    run_end(&r);
    return rc;
}
