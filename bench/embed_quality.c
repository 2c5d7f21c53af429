/*
 * bench/embed_quality.c — retrieval quality of the colour, CNN and fused
 * embeddings on real product photos; the figures that choose the CNN output
 * layer, the preprocessing and the default fusion weight w.
 *
 *   embed_quality [--data DIR] [--models DIR] [--cache DIR] [--threads N]
 *                 [--set NAME] [--precision fp32|int8]
 *
 * DIR defaults to /work/shared/data/products (grocery/, clothing-photos/,
 * fashion-small/, each with labels.csv).  For every photo it computes the
 * colour embedding (of the 224x224 squash copy, as lk_embed_describe()
 * computes it) and raw CNN descriptors (global average pooling) at the
 * candidate layers below with the "squash" preprocessing (whole image resized
 * to 224x224, as lk_cnn_describe() does), plus the default layer with a
 * centre crop and a white letterbox (fashion-small: default layer only).  Descriptors are cached in --cache
 * (default /tmp/lk_embed_cache) so parameter sweeps do not recompute them.
 *
 * Metrics, leave-one-out (each photo queries all the others, inner product):
 *   grocery          recall@1 / recall@10 of the same product_id, and 1-NN
 *                    category accuracy;
 *   clothing/fashion 1-NN category accuracy (one photo per product).
 * CNN rows: "raw" = cosine of raw descriptors; "post" = lk_embed post-
 * processing (ssqrt, L2, minus the set's mean, L2) learned on the same set
 * (unsupervised, as a catalog learns it from itself); "pcaN" adds
 * PCA-whitening to N dims.  Fused rows sweep w over 0..1 (w=0 is colour only,
 * w=1 CNN "post" only).
 *
 * --precision int8 runs the default layer (squash) with the int8 network
 * (lk_cnn_load_opts(), LK_CNN_INT8; cache names get an "/int8" suffix; the
 * layer and preprocessing were chosen with fp32, so they are not swept) and
 * also prints, per set, the cosine between the int8 and fp32 descriptors of
 * the default layer for every photo: after global average pooling ("raw")
 * and after post-processing ("post": each precision with the params learned
 * from its own descriptors, as an index built with it would).
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embed_data.h"
#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"

#ifndef LK_SOURCE_ROOT
#define LK_SOURCE_ROOT "."
#endif

static const char *const layers[] = {
    "block_10_project_BN", "block_12_add", "block_13_expand_relu", "block_16_project_BN", "out_relu",
};
#define N_LAYERS (sizeof layers / sizeof layers[0])
#define DEFAULT_LAYER_IDX 2
/* models[REF_IDX]: the fp32 default layer, loaded only with --precision int8. */
#define REF_IDX N_LAYERS

static enum lk_cnn_precision precision = LK_CNN_FP32;

enum prep { PREP_SQUASH, PREP_CROP, PREP_LETTERBOX };
static const char *const prep_names[] = {"squash", "crop", "letterbox"};

/* One descriptor family computed for every photo. */
struct combo {
    char name[96];
    int layer;          /* -1 = colour */
    enum prep prep;
    size_t dim;
    float *data;        /* n x dim */
    bool need;          /* not in the cache: compute */
};

struct job {
    const struct bench_set *set;
    struct lk_cnn_model **models;
    struct combo *combos;
    size_t n_combos;
    unsigned char *ok;
    int tid, nthreads;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    struct lk_cnn_workspace *ws[N_LAYERS + 1] = {0};
    struct lk_err e = {0};
    for (size_t l = 0; l <= N_LAYERS; l++)
        if (j->models[l] && lk_cnn_workspace_new(j->models[l], &ws[l], &e)) {
            fprintf(stderr, "workspace: %s\n", e.msg);
            exit(1);
        }
    struct lk_decode_opts opts;
    lk_decode_opts_default(&opts);
    opts.min_side_hint = 224;
    float *in = malloc(224 * 224 * 3 * sizeof *in);
    static const float mean[3] = {127.5f, 127.5f, 127.5f}, scale[3] = {1 / 127.5f, 1 / 127.5f, 1 / 127.5f};
    static const uint8_t white[3] = {255, 255, 255};
    for (size_t i = (size_t)j->tid; i < j->set->n; i += (size_t)j->nthreads) {
        struct lk_image img = {0}, sized[3] = {{0}};
        j->ok[i] = 0;
        if (lk_image_load_file(j->set->paths[i], &opts, &img, NULL, &e)) {
            fprintf(stderr, "%s: %s\n", j->set->paths[i], e.msg);
        } else {
            j->ok[i] = 1;
            for (size_t c = 0; c < j->n_combos; c++) {
                struct combo *cb = &j->combos[c];
                float *dst = cb->data + i * cb->dim;
                if (!cb->need)
                    continue;
                /* Resize lazily: only the preprocessings still needed.  The
                 * colour histogram is computed from the squash copy, as
                 * lk_embed_describe() does in the product. */
                struct lk_image *sz = &sized[cb->layer < 0 ? PREP_SQUASH : cb->prep];
                if (!sz->rgb) {
                    int rc = cb->prep == PREP_SQUASH ? lk_image_resize_area(&img, 224, 224, sz, &e)
                             : cb->prep == PREP_CROP ? lk_image_center_crop(&img, 224, 224, sz, &e)
                                                     : lk_image_letterbox(&img, 224, 224, white, sz, &e);
                    if (rc) {
                        fprintf(stderr, "%s: %s\n", j->set->paths[i], e.msg);
                        exit(1);
                    }
                }
                if (cb->layer < 0) {
                    lk_colour_embed(sz, dst, &e);
                    continue;
                }
                lk_image_to_float(sz, LK_LAYOUT_HWC, mean, scale, in, &e);
                if (lk_cnn_forward(ws[cb->layer], in, dst, &e)) {
                    fprintf(stderr, "forward: %s\n", e.msg);
                    exit(1);
                }
            }
        }
        for (int k = 0; k < 3; k++)
            lk_image_free(&sized[k]);
        lk_image_free(&img);
        if (j->tid == 0 && i % 500 == 0)
            fprintf(stderr, "  %s: %zu/%zu\n", j->set->name, i, j->set->n);
    }
    free(in);
    for (size_t l = 0; l <= N_LAYERS; l++)
        lk_cnn_workspace_free(ws[l]);
    return NULL;
}

/* ==== Cache ====
 * One file per (set, descriptor family): FNV-1a key of the photo paths, the
 * family name and its dim; then the decode-ok flags and the n x dim floats.
 * Delete the directory after changing the model or the colour histogram. */

static unsigned long long key_of(const struct bench_set *s, const struct combo *cb)
{
    unsigned long long h = 1469598103934665603ull;
#define MIX(p, n)                                            \
    for (size_t q_ = 0; q_ < (n); q_++)                      \
        h = (h ^ ((const unsigned char *)(p))[q_]) * 1099511628211ull;
    for (size_t i = 0; i < s->n; i++)
        MIX(s->paths[i], strlen(s->paths[i]));
    MIX(cb->name, strlen(cb->name));
    uint64_t d = cb->dim;
    MIX(&d, sizeof d);
#undef MIX
    return h;
}

static void cache_path(char *out, size_t cap, const char *dir, const char *set, const char *combo)
{
    /* "a4": the analysis version (decode at M/8, area-averaging resize,
     * colour from the 224x224 copy; int8 input on the pixel grid, as
     * generation metadata v4); descriptors cached by an older analysis are
     * not reused. */
    snprintf(out, cap, "%s/a4__%s__%s.bin", dir, set, combo);
    for (char *c = out + strlen(dir) + 1; *c; c++)
        if (*c == '/')
            *c = '_';
}

static int cache_io(const char *path, bool write, unsigned long long key, struct combo *cb, unsigned char *ok,
                    size_t n)
{
    FILE *f = fopen(path, write ? "wb" : "rb");
    if (!f)
        return -1;
    unsigned long long k = key;
    int rc = 0;
    if (write) {
        fwrite(&k, sizeof k, 1, f);
        fwrite(ok, 1, n, f);
        fwrite(cb->data, sizeof(float), n * cb->dim, f);
    } else {
        rc = fread(&k, sizeof k, 1, f) == 1 && k == key && fread(ok, 1, n, f) == n &&
                     fread(cb->data, sizeof(float), n * cb->dim, f) == n * cb->dim
                 ? 0
                 : -1;
    }
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* ==== Evaluation ==== */

/* Similarity matrix S = X X^T for row vectors X (n x d); only the rows in
 * `ok` are meaningful. */
static float *gram(const float *x, size_t n, size_t d)
{
    float *s = malloc(n * n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        const float *a = x + i * d;
        for (size_t j = i; j < n; j++) {
            const float *b = x + j * d;
            float acc = 0;
            for (size_t k = 0; k < d; k++)
                acc += a[k] * b[k];
            s[i * n + j] = s[j * n + i] = acc;
        }
    }
    return s;
}

struct metrics {
    double r1, r10, cat1;
};

/* Leave-one-out over S_w = w*A + (1-w)*B (B may be NULL). */
static struct metrics evaluate(const struct bench_set *s, const unsigned char *ok, const float *A, const float *B,
                               float w)
{
    size_t n = s->n, q = 0;
    double r1 = 0, r10 = 0, c1 = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        size_t top[10];
        float topv[10];
        int k = 0;
        for (size_t j = 0; j < n; j++) {
            if (j == i || !ok[j])
                continue;
            float v = B ? w * A[i * n + j] + (1 - w) * B[i * n + j] : A[i * n + j];
            if (k < 10 || v > topv[k - 1]) {
                int p = k < 10 ? k++ : 9;
                while (p > 0 && topv[p - 1] < v) {
                    topv[p] = topv[p - 1], top[p] = top[p - 1];
                    p--;
                }
                topv[p] = v, top[p] = j;
            }
        }
        q++;
        r1 += s->product[top[0]] == s->product[i];
        c1 += s->category[top[0]] == s->category[i];
        for (int t = 0; t < k; t++)
            if (s->product[top[t]] == s->product[i]) {
                r10 += 1;
                break;
            }
    }
    return (struct metrics){r1 / q, r10 / q, c1 / q};
}

/* Post-process raw descriptors: mode 0 = L2 only, else lk_embed params
 * learned on the ok rows with pca_dim (0 = none). */
static float *process(const float *raw, const unsigned char *ok, size_t n, size_t d, int learned, size_t pca,
                      size_t *out_dim)
{
    struct lk_err e = {0};
    struct lk_embed_params *p = NULL;
    size_t m = 0;
    float *train = calloc(n * d, sizeof *train);
    for (size_t i = 0; i < n; i++)
        if (ok[i])
            memcpy(train + m++ * d, raw + i * d, d * sizeof *train);
    int rc = learned ? lk_embed_params_learn(train, m, d, pca, 1.0f, &p, &e) : lk_embed_params_identity(d, 1.0f, &p, &e);
    free(train);
    if (rc) {
        fprintf(stderr, "params: %s\n", e.msg);
        exit(1);
    }
    size_t od = lk_embed_cnn_out_dim(p);
    float *y = calloc(n * od, sizeof *y);
    for (size_t i = 0; i < n; i++)
        if (ok[i]) {
            if (learned) {
                lk_embed_cnn_normalize(p, raw + i * d, y + i * od, &e);
            } else {  /* plain cosine: L2 of the raw vector */
                double s2 = 0;
                for (size_t k = 0; k < d; k++)
                    s2 += (double)raw[i * d + k] * raw[i * d + k];
                for (size_t k = 0; k < d; k++)
                    y[i * od + k] = s2 > 0 ? (float)(raw[i * d + k] / sqrt(s2)) : 0;
            }
        }
    lk_embed_params_free(p);
    *out_dim = od;
    return y;
}

/* Default layer, squash: score (grocery R@1, else cat1NN) for w = 0..1 in
 * steps of 0.1, with "post" and "pca128" CNN post-processing. */
#define N_W 11
/* "Beats" needs a margin of about one standard error of grocery recall@1
 * (sqrt(0.95*0.05/2640) = 0.004): a 0.002 lead is noise. */
#define BEAT_MARGIN 0.005
static double summary[3][2][N_W];
static int summary_sets;

static void row(const char *label, size_t dim, struct metrics m, bool product)
{
    if (product)
        printf("| %-46s | %5zu | %6.3f | %6.3f | %6.3f |\n", label, dim, m.r1, m.r10, m.cat1);
    else
        printf("| %-46s | %5zu | %6.3f |\n", label, dim, m.cat1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Cosine between the rows of x and y (n x d, rows with ok set), sorted. */
static size_t row_cosines(const float *x, const float *y, const unsigned char *ok, size_t n, size_t d, double *cos)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        double xy = 0, xx = 0, yy = 0;
        for (size_t k = 0; k < d; k++) {
            xy += (double)x[i * d + k] * y[i * d + k];
            xx += (double)x[i * d + k] * x[i * d + k];
            yy += (double)y[i * d + k] * y[i * d + k];
        }
        cos[m++] = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : (xx == yy ? 1.0 : 0.0);
    }
    qsort(cos, m, sizeof *cos, cmp_double);
    return m;
}

/* Agreement of the int8 descriptors `a` with the fp32 reference `r`. */
static void print_agreement(const struct combo *a, const struct combo *r, const unsigned char *ok, size_t n)
{
    double *cos = malloc((n ? n : 1) * sizeof *cos);
    size_t d1, d2, m = row_cosines(a->data, r->data, ok, n, a->dim, cos);
    printf("int8 vs fp32, %s, cosine per photo (%zu photos):\n", r->name, m);
    if (m)
        printf("  raw (after global average pooling): median %.5f  p1 %.5f  min %.5f\n", cos[m / 2],
               cos[m / 100], cos[0]);
    float *pa = process(a->data, ok, n, a->dim, 1, 0, &d1), *pr = process(r->data, ok, n, r->dim, 1, 0, &d2);
    m = row_cosines(pa, pr, ok, n, d1, cos);
    if (m)
        printf("  post (ssqrt, L2, minus mean, L2):   median %.5f  p1 %.5f  min %.5f\n\n", cos[m / 2],
               cos[m / 100], cos[0]);
    free(pa), free(pr), free(cos);
}

static void run_set(const char *data, const char *name, struct lk_cnn_model **models, const char *cache_dir,
                    int nthreads, bool product, bool all_layers, double sum[2][N_W])
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", data, name);
    struct bench_set s;
    if (bench_set_load(dir, name, &s))
        return;
    size_t n = s.n;
    struct combo cb[2 + N_LAYERS + 2 + 1];
    size_t nc = 0, default_c = 0;
    const char *suffix = precision == LK_CNN_INT8 ? "/int8" : "";
    cb[nc++] = (struct combo){.name = "colour", .layer = -1, .dim = LK_COLOUR_DIM};
    for (size_t l = 0; l < N_LAYERS; l++) {
        if (!all_layers && l != DEFAULT_LAYER_IDX)
            continue;
        if (l == DEFAULT_LAYER_IDX)
            default_c = nc;
        cb[nc] = (struct combo){.layer = (int)l, .prep = PREP_SQUASH, .dim = lk_cnn_dim(models[l])};
        snprintf(cb[nc].name, sizeof cb[nc].name, "%s/%s%s", layers[l], prep_names[PREP_SQUASH], suffix);
        nc++;
    }
    for (int pr = PREP_CROP; all_layers && pr <= PREP_LETTERBOX; pr++) {
        cb[nc] = (struct combo){.layer = DEFAULT_LAYER_IDX, .prep = (enum prep)pr,
                                .dim = lk_cnn_dim(models[DEFAULT_LAYER_IDX])};
        snprintf(cb[nc].name, sizeof cb[nc].name, "%s/%s%s", layers[DEFAULT_LAYER_IDX], prep_names[pr], suffix);
        nc++;
    }
    /* The fp32 reference of the default layer (same cache file as an fp32
     * run), last so the evaluation loop below can leave it out. */
    size_t n_eval = nc;
    if (models[REF_IDX]) {
        cb[nc] = (struct combo){.layer = REF_IDX, .prep = PREP_SQUASH, .dim = lk_cnn_dim(models[REF_IDX])};
        snprintf(cb[nc].name, sizeof cb[nc].name, "%s/%s", layers[DEFAULT_LAYER_IDX], prep_names[PREP_SQUASH]);
        nc++;
    }
    for (size_t c = 0; c < nc; c++)
        cb[c].data = calloc(n * cb[c].dim, sizeof(float));
    unsigned char *ok = calloc(n, 1), *ok_c = calloc(n, 1);
    char cpath[4200];
    size_t missing = 0;
    for (size_t c = 0; c < nc; c++) {
        cache_path(cpath, sizeof cpath, cache_dir, name, cb[c].name);
        cb[c].need = cache_io(cpath, false, key_of(&s, &cb[c]), &cb[c], ok_c, n) != 0;
        if (!cb[c].need)
            memcpy(ok, ok_c, n);
        missing += cb[c].need;
    }
    if (missing) {
        fprintf(stderr, "computing %zu of %zu descriptor families for %zu photos of %s, %d threads (cache: %s)\n",
                missing, nc, n, name, nthreads, cache_dir);
        double t0 = bench_now_ms();
        pthread_t th[16];
        struct job jobs[16];
        for (int t = 0; t < nthreads; t++) {
            jobs[t] = (struct job){&s, models, cb, nc, ok, t, nthreads};
            pthread_create(&th[t], NULL, worker, &jobs[t]);
        }
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
        fprintf(stderr, "  done in %.1f s\n", (bench_now_ms() - t0) / 1e3);
        for (size_t c = 0; c < nc; c++) {
            cache_path(cpath, sizeof cpath, cache_dir, name, cb[c].name);
            if (cb[c].need && cache_io(cpath, true, key_of(&s, &cb[c]), &cb[c], ok, n) != 0)
                fprintf(stderr, "warning: could not write %s\n", cpath);
        }
    }
    free(ok_c);
    size_t valid = 0;
    for (size_t i = 0; i < n; i++)
        valid += ok[i];

    printf("\n### %s: %zu photos (%zu decoded), %d products, %d categories, CNN %s\n\n", name, n, valid,
           s.n_products, s.n_categories, lk_cnn_precision_name(precision));
    if (n_eval < nc)
        print_agreement(&cb[default_c], &cb[n_eval], ok, n);
    if (product)
        printf("| %-46s | %5s | %6s | %6s | %6s |\n|%s|-------|--------|--------|--------|\n", "embedding", "dim",
               "R@1", "R@10", "cat1NN", "------------------------------------------------");
    else
        printf("| %-46s | %5s | %6s |\n|%s|-------|--------|\n", "embedding", "dim", "cat1NN",
               "------------------------------------------------");

    size_t cd;
    float *col = process(cb[0].data, ok, n, LK_COLOUR_DIM, 0, 0, &cd);
    float *S_col = gram(col, n, cd);
    free(col);
    struct metrics mc = evaluate(&s, ok, S_col, NULL, 0);
    row("colour histogram", cd, mc, product);
    sum[0][0] = sum[1][0] = product ? mc.r1 : mc.cat1;

    /* Per layer and preprocessing: raw cosine, post-processed, fused sweep. */
    float best_w_r1 = -1, best_w = 0;
    char best_label[128] = "";
    for (size_t c = 1; c < n_eval; c++) {
        size_t d;
        char label[160];
        float *raw = process(cb[c].data, ok, n, cb[c].dim, 0, 0, &d);
        float *S = gram(raw, n, d);
        free(raw);
        snprintf(label, sizeof label, "cnn %s raw", cb[c].name);
        row(label, d, evaluate(&s, ok, S, NULL, 0), product);
        free(S);
        float *post = process(cb[c].data, ok, n, cb[c].dim, 1, 0, &d);
        S = gram(post, n, d);
        free(post);
        snprintf(label, sizeof label, "cnn %s post", cb[c].name);
        struct metrics mp = evaluate(&s, ok, S, NULL, 0);
        row(label, d, mp, product);
        bool is_default = cb[c].layer == DEFAULT_LAYER_IDX && cb[c].prep == PREP_SQUASH;
        if (is_default)
            sum[0][N_W - 1] = product ? mp.r1 : mp.cat1;
        bool sweep = cb[c].layer == DEFAULT_LAYER_IDX || cb[c].prep == PREP_SQUASH;
        for (int k = 1; sweep && k <= 9; k++) {
            float w = k / 10.0f;
            struct metrics m = evaluate(&s, ok, S, S_col, w);
            snprintf(label, sizeof label, "fused %s w=%.1f", cb[c].name, (double)w);
            row(label, d + LK_COLOUR_DIM, m, product);
            double score = product ? m.r1 : m.cat1;
            if (is_default)
                sum[0][k] = score;
            if (cb[c].layer == DEFAULT_LAYER_IDX && cb[c].prep == PREP_SQUASH && score > best_w_r1)
                best_w_r1 = (float)score, best_w = w, snprintf(best_label, sizeof best_label, "%s", cb[c].name);
        }
        free(S);
        if (cb[c].layer == DEFAULT_LAYER_IDX && cb[c].prep == PREP_SQUASH) {
            for (size_t pca = 64; pca <= 256; pca *= 2) {
                if (pca >= valid)
                    break;
                float *pc = process(cb[c].data, ok, n, cb[c].dim, 1, pca, &d);
                S = gram(pc, n, d);
                free(pc);
                snprintf(label, sizeof label, "cnn %s pca%zu", cb[c].name, pca);
                struct metrics m = evaluate(&s, ok, S, NULL, 0);
                row(label, d, m, product);
                if (pca == 128)
                    sum[1][N_W - 1] = product ? m.r1 : m.cat1;
                for (int k = 1; k <= 9; k++) {
                    float w = k / 10.0f;
                    m = evaluate(&s, ok, S, S_col, w);
                    if (pca == 128)
                        sum[1][k] = product ? m.r1 : m.cat1;
                    if (pca == 128 || k == 5) {
                        snprintf(label, sizeof label, "fused %s pca%zu w=%.1f", cb[c].name, pca, (double)w);
                        row(label, d + LK_COLOUR_DIM, m, product);
                    }
                }
                free(S);
            }
        }
        fflush(stdout);
    }
    printf("\nbest w for %s on %s (%s): %.1f (%.3f)\n", best_label, name, product ? "R@1" : "cat1NN",
           (double)best_w, (double)best_w_r1);
    free(S_col);
    free(ok);
    for (size_t c = 0; c < nc; c++)
        free(cb[c].data);
    bench_set_free(&s);
}

int main(int argc, char **argv)
{
    const char *data = "/work/shared/data/products", *cache = "/tmp/lk_embed_cache";
    const char *models_dir = getenv("LOOKALIKE_MODELS") ? getenv("LOOKALIKE_MODELS") : LK_SOURCE_ROOT "/models/mobilenet_v2";
    int nthreads = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--models") && i + 1 < argc) models_dir = argv[++i];
        else if (!strcmp(argv[i], "--cache") && i + 1 < argc) cache = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc && !lk_cnn_precision_parse(argv[i + 1], &precision, NULL)) i++;
        else {
            fprintf(stderr, "usage: embed_quality [--data DIR] [--models DIR] [--cache DIR] [--threads N] [--set NAME] "
                            "[--precision fp32|int8]\n");
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > 16)
        nthreads = 1;
    mkdir(cache, 0755);
    struct lk_cnn_model *models[N_LAYERS + 1] = {0};
    struct lk_err e = {0};
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.precision = precision;
    for (size_t l = 0; l < N_LAYERS; l++) {
        if (precision != LK_CNN_FP32 && l != DEFAULT_LAYER_IDX) {
            models[l] = NULL;  /* int8: the default layer only */
            continue;
        }
        o.output_layer = layers[l];
        if (lk_cnn_load_opts(models_dir, &o, &models[l], &e)) {
            fprintf(stderr, "load %s: %s\n", layers[l], e.msg);
            return 1;
        }
    }
    if (precision != LK_CNN_FP32 && lk_cnn_load_layer(models_dir, layers[DEFAULT_LAYER_IDX], &models[REF_IDX], &e)) {
        fprintf(stderr, "load fp32 reference: %s\n", e.msg);
        return 1;
    }
    printf("# embed_quality: leave-one-out retrieval by inner product\n");
    bench_print_env();
    /* fashion-small (5,911 catalog thumbnails of 60x80 px, upsampled to 224)
     * only measures the default layer: the layer and preprocessing are
     * chosen on the phone photos, where they matter. */
    static const struct { const char *name; bool product, all_layers; } sets[] = {
        {"grocery", true, true}, {"clothing-photos", false, true}, {"fashion-small", false, false}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (!only || !strcmp(only, sets[i].name)) {
            run_set(data, sets[i].name, models, cache, nthreads, sets[i].product,
                    sets[i].all_layers && precision == LK_CNN_FP32, summary[i]);
            summary_sets |= 1 << i;
        }
    /* The fusion weight: each set's score divided by its best over w, then
     * averaged over the sets; the default w is the argmax among the w whose
     * fused grocery recall@1 beats both parts (the target).  Grocery
     * same-product recall@1 alone picks the colour-heavy end (same-product
     * photos there are near-duplicates from one session), clothing/fashion
     * category accuracy the CNN-heavy end. */
    for (int v = 0; v < 2; v++) {
        printf("\n### fusion weight, %s layer, %s: score per set (grocery R@1, others cat1NN) and mean of score/best\n\n",
               layers[DEFAULT_LAYER_IDX], v ? "PCA-whitened to 128" : "post-processed, no PCA");
        printf("|   w |");
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
            if (summary_sets & (1 << i))
                printf(" %15s |", sets[i].name);
        printf(" mean rel |\n|-----|");
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
            if (summary_sets & (1 << i))
                printf("-----------------|");
        printf("----------|\n");
        double best_mean = -1;
        int best_k = 0;
        for (int k = 0; k < N_W; k++) {
            double rel = 0;
            int cnt = 0;
            printf("| %.1f |", k / 10.0);
            for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
                if (!(summary_sets & (1 << i)))
                    continue;
                double mx = 0;
                for (int q = 0; q < N_W; q++)
                    mx = summary[i][v][q] > mx ? summary[i][v][q] : mx;
                printf(" %15.3f |", summary[i][v][k]);
                rel += mx > 0 ? summary[i][v][k] / mx : 0, cnt++;
            }
            rel /= cnt ? cnt : 1;
            /* summary[0] is grocery: index 0 = colour only, N_W-1 = CNN only */
            bool beats = !(summary_sets & 1) ||
                         (k > 0 && k < N_W - 1 && summary[0][v][k] >= summary[0][v][0] + BEAT_MARGIN &&
                          summary[0][v][k] >= summary[0][v][N_W - 1] + BEAT_MARGIN);
            printf(" %8.3f |%s\n", rel, beats ? " beats both parts on grocery R@1" : "");
            if (beats && rel > best_mean)
                best_mean = rel, best_k = k;
        }
        printf("\nbest mean relative score among w that beat both parts by >= %.3f: w = %.1f (%.3f)\n", BEAT_MARGIN,
               best_k / 10.0, best_mean);
    }
    for (size_t l = 0; l <= N_LAYERS; l++)
        lk_cnn_free(models[l]);
    return 0;
}
