/*
 * bench/embed.c — time per image of each stage of `describe`, single thread:
 * decode, resize to 224x224, colour histogram, CNN (per candidate layer,
 * with the full network as the baseline), and the whole describe (decode +
 * colour + CNN + fuse), on real product photos and on a 1-megapixel JPEG
 * made from one of them.  Also prints the memory one CNN workspace holds.
 *
 *   embed [--data DIR] [--models DIR] [--images N] [--rounds R]
 *
 * Every figure is the median (with 90th percentile and minimum) over N
 * photos x R rounds of one call each; the ratio column compares the median
 * with the full backbone (out_relu) measured in the same run, except on the
 * int8 rows (the default layer run with LK_CNN_INT8), where it compares with
 * the fp32 network cut at the same layer.  The whole describe is timed with
 * both precisions.  Build with
 * -Dbuildtype=release.  On a shared machine the minimum is the best estimate
 * of the unloaded time; the load average is printed for that reason.
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "embed_data.h"
#include "jpeg_encode.h"
#include "sysinfo.h"
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* JSON-lines sink (bench_json_open: LK_BENCH_JSON) and the facts it carries. */
static FILE *js;
static struct bench_sysinfo sinfo;

static void report(const char *stage, double *t, size_t n, double baseline)
{
    qsort(t, n, sizeof *t, cmp_double);
    double med = t[n / 2], p90 = t[(size_t)(0.9 * (double)(n - 1))];
    if (js) {
        bench_json_begin(js, &sinfo, "embed", "stage");
        fputs(",\"stage\":", js);
        bench_json_str(js, stage);
        fprintf(js, ",\"median_ms\":%.4f,\"p90_ms\":%.4f,\"min_ms\":%.4f,\"n\":%zu", med, p90, t[0], n);
        bench_json_end(js);
    }
    printf("| %-44s | %8.3f | %8.3f | %8.3f | %5zu |", stage, med, p90, t[0], n);
    if (baseline > 0)
        printf(" %5.2fx |\n", med / baseline);
    else
        printf("       |\n");
}

static void die(const char *what, const struct lk_err *e)
{
    fprintf(stderr, "%s: %s\n", what, e->msg);
    exit(1);
}

/* CPU time of the calling thread: excludes time spent waiting for a core
 * on a shared machine. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* decode + resize + CNN + colour + fuse, as `lookalike describe` does. */
static void describe_once(const struct lk_cnn_model *m, struct lk_cnn_workspace *w, const unsigned char *b,
                          size_t len, const struct lk_decode_opts *opts, const struct lk_embed_params *p, float *out,
                          float *colour, float *fused)
{
    struct lk_err e = {0};
    struct lk_image x = {0};
    if (lk_image_decode(b, len, opts, &x, NULL, &e) || lk_embed_describe(m, w, &x, out, colour, &e) ||
        lk_embed_fuse(p, out, colour, fused, &e))
        die("describe", &e);
    lk_image_free(&x);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

int main(int argc, char **argv)
{
    const char *data = "/work/shared/data/products";
    const char *models_dir = getenv("LOOKALIKE_MODELS") ? getenv("LOOKALIKE_MODELS") : LK_SOURCE_ROOT "/models/mobilenet_v2";
    size_t n_images = 40, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--models") && i + 1 < argc) models_dir = argv[++i];
        else if (!strcmp(argv[i], "--images") && i + 1 < argc) n_images = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = (size_t)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: embed [--data DIR] [--models DIR] [--images N] [--rounds R]\n");
            return 2;
        }
    }
    if (n_images < 1) n_images = 1;
    if (rounds < 1) rounds = 1;
    struct lk_err e = {0};
    bench_sysinfo_get(&sinfo);
    js = bench_json_open(NULL);

    /* Photos: spread over grocery and clothing-photos (phone photos). */
    static const char *const sets[] = {"grocery", "clothing-photos"};
    char **files = calloc(n_images, sizeof *files);
    size_t nf = 0;
    for (size_t si = 0; si < 2; si++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", data, sets[si]);
        struct bench_set s;
        if (bench_set_load(dir, sets[si], &s)) {
            /* No product photos (a fresh clone without ../shared): say so in
             * the results instead of failing the suite. */
            fprintf(stderr, "embed: no photos under %s: skipped\n", dir);
            bench_json_skipped(js, &sinfo, "embed", "product photos not found");
            return 0;
        }
        size_t want = si == 0 ? n_images - n_images / 2 : n_images / 2;
        for (size_t k = 0; k < want && k < s.n; k++)
            files[nf++] = strdup(s.paths[(k * 7919) % s.n]);
        bench_set_free(&s);
    }

    /* models[INT8_IDX]: the default layer with int8 inference. */
    enum { INT8_IDX = N_LAYERS };
    struct lk_cnn_model *models[N_LAYERS + 1];
    for (size_t l = 0; l < N_LAYERS; l++)
        if (lk_cnn_load_layer(models_dir, layers[l], &models[l], &e))
            die("load", &e);
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.precision = LK_CNN_INT8;
    if (lk_cnn_load_opts(models_dir, &o, &models[INT8_IDX], &e))
        die("load int8", &e);
    struct lk_cnn_model *m = models[2];  /* the default layer */
    if (strcmp(lk_cnn_layer(m), LK_CNN_DEFAULT_LAYER) != 0)
        fprintf(stderr, "note: default layer is %s, timing %s as the describe CNN\n", LK_CNN_DEFAULT_LAYER,
                lk_cnn_layer(m));

    printf("# embed: ms per image, single thread, median and p90 over %zu photos x %zu rounds\n", nf, rounds);
    bench_print_env();
    double load[3] = {0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = -1;
        fclose(lf);
    }
    printf("# model: %s\n# load average at start: %.2f (1 min)\n\n", models_dir, load[0]);

    /* Memory per workspace. */
    struct lk_cnn_workspace *ws[N_LAYERS + 1];
    for (size_t l = 0; l <= N_LAYERS; l++) {
        size_t before = heap_in_use();
        if (lk_cnn_workspace_new(models[l], &ws[l], &e))
            die("workspace", &e);
        printf("workspace memory %-22s %s %6.2f MB (descriptor %zu floats)\n", lk_cnn_layer(models[l]),
               lk_cnn_precision_name(lk_cnn_precision(models[l])), (double)(heap_in_use() - before) / 1e6,
               lk_cnn_dim(models[l]));
    }
    printf("\n| %-44s | %8s | %8s | %8s | %5s | %6s |\n|%s|----------|----------|----------|-------|--------|\n",
           "stage (ms per image)", "median", "p90", "min", "n", "ratio", "----------------------------------------------");

    size_t total = nf * rounds;
    double *t = malloc((nf > 10 ? nf : 10) * rounds * sizeof *t);  /* 1MP part times 10 x rounds */
    struct lk_decode_opts opts;
    lk_decode_opts_default(&opts);
    opts.min_side_hint = 224;
    float *in = malloc(224 * 224 * 3 * sizeof *in), out[1280];
    float colour[LK_COLOUR_DIM];
    static const float mean[3] = {127.5f, 127.5f, 127.5f}, scale[3] = {1 / 127.5f, 1 / 127.5f, 1 / 127.5f};

    /* Pre-read the files so decode timings exclude disk. */
    unsigned char **bytes = calloc(nf, sizeof *bytes);
    size_t *lens = calloc(nf, sizeof *lens);
    struct lk_image *imgs = calloc(nf, sizeof *imgs), *small = calloc(nf, sizeof *small);
    for (size_t i = 0; i < nf; i++) {
        bytes[i] = slurp(files[i], &lens[i]);
        if (!bytes[i] || lk_image_decode(bytes[i], lens[i], &opts, &imgs[i], NULL, &e) ||
            lk_image_resize_area(&imgs[i], 224, 224, &small[i], &e))
            die(files[i], &e);
    }

#define TIME_LOOP(label, base, body)                                                                       \
    do {                                                                                                   \
        size_t k_ = 0;                                                                                     \
        for (size_t r_ = 0; r_ < rounds; r_++)                                                             \
            for (size_t i = 0; i < nf; i++) {                                                              \
                double t0_ = bench_now_ms();                                                               \
                body;                                                                                      \
                t[k_++] = bench_now_ms() - t0_;                                                            \
            }                                                                                              \
        report(label, t, total, base);                                                                     \
    } while (0)

    TIME_LOOP("decode JPEG (shrink-on-load, short side>=224)", 0, {
        struct lk_image x = {0};
        if (lk_image_decode(bytes[i], lens[i], &opts, &x, NULL, &e)) die("decode", &e);
        lk_image_free(&x);
    });
    TIME_LOOP("resize to 224x224 (area)", 0, {
        struct lk_image x = {0};
        if (lk_image_resize_area(&imgs[i], 224, 224, &x, &e)) die("resize", &e);
        lk_image_free(&x);
    });
    TIME_LOOP("normalise to float x/127.5-1", 0, {
        if (lk_image_to_float(&small[i], LK_LAYOUT_HWC, mean, scale, in, &e)) die("to_float", &e);
    });
    TIME_LOOP("colour histogram (of the 224x224 copy)", 0, {
        if (lk_colour_embed(&small[i], colour, &e)) die("colour", &e);
    });
    /* CNN per layer, interleaved (each photo runs through every layer in
     * turn) so that load from other processes hits all layers alike; the
     * full backbone (out_relu) is the baseline of the ratio column.  Also
     * thread CPU time, which excludes time spent waiting for a core.  Each
     * call is lk_cnn_describe() of the 224x224 image, the descriptor as the
     * product computes it: FP32 normalises the pixels to float inside the
     * timer (the "normalise" line above), INT8 reads them as int8. */
    {
        double *wall[N_LAYERS + 1], *cpu[N_LAYERS + 1];
        for (size_t l = 0; l <= N_LAYERS; l++)
            wall[l] = malloc(total * sizeof(double)), cpu[l] = malloc(total * sizeof(double));
        size_t k = 0;
        for (size_t r = 0; r < rounds; r++)
            for (size_t i = 0; i < nf; i++, k++) {
                for (size_t l = 0; l <= N_LAYERS; l++) {
                    double c0 = cpu_ms(), t0 = bench_now_ms();
                    if (lk_cnn_describe(ws[l], &small[i], out, &e))
                        die("describe", &e);
                    wall[l][k] = bench_now_ms() - t0;
                    cpu[l][k] = cpu_ms() - c0;
                }
            }
        for (size_t l = 0; l <= N_LAYERS; l++) {
            qsort(wall[l], total, sizeof(double), cmp_double);
            qsort(cpu[l], total, sizeof(double), cmp_double);
        }
        double full = wall[N_LAYERS - 1][total / 2], full_cpu = cpu[N_LAYERS - 1][total / 2];
        double dflt = wall[2][total / 2], dflt_cpu = cpu[2][total / 2];
        for (size_t l = 0; l <= N_LAYERS; l++) {
            char label[96];
            const char *prec = l == INT8_IDX ? " int8" : "";
            snprintf(label, sizeof label, "CNN to %s (%zu-d)%s, wall", lk_cnn_layer(models[l]), lk_cnn_dim(models[l]),
                     prec);
            report(label, wall[l], total, l == INT8_IDX ? dflt : full);
            snprintf(label, sizeof label, "CNN to %s (%zu-d)%s, thread CPU", lk_cnn_layer(models[l]),
                     lk_cnn_dim(models[l]), prec);
            report(label, cpu[l], total, l == INT8_IDX ? dflt_cpu : full_cpu);
        }
        printf("\nint8 vs fp32 at %s (medians): wall %.2fx faster, thread CPU %.2fx faster\n\n",
               lk_cnn_layer(models[2]), dflt / wall[INT8_IDX][total / 2], dflt_cpu / cpu[INT8_IDX][total / 2]);
        if (js) {
            bench_json_begin(js, &sinfo, "embed", "int8_speedup");
            fprintf(js, ",\"wall\":%.4f,\"thread_cpu\":%.4f", dflt / wall[INT8_IDX][total / 2],
                    dflt_cpu / cpu[INT8_IDX][total / 2]);
            bench_json_end(js);
        }
        for (size_t l = 0; l <= N_LAYERS; l++)
            free(wall[l]), free(cpu[l]);
    }
    struct lk_embed_params *p = NULL;
    if (lk_embed_params_identity(lk_cnn_dim(m), LK_EMBED_W_DEFAULT, &p, &e))
        die("params", &e);
    float *fused = malloc(lk_embed_fused_dim(p) * sizeof *fused);
    struct lk_cnn_workspace *dws = ws[2], *qws = ws[INT8_IDX];
    TIME_LOOP("whole describe (decode+resize+CNN+colour+fuse)", 0,
              describe_once(models[2], dws, bytes[i], lens[i], &opts, p, out, colour, fused));
    TIME_LOOP("whole describe, CNN int8", 0,
              describe_once(models[INT8_IDX], qws, bytes[i], lens[i], &opts, p, out, colour, fused));

    /* A 1-megapixel JPEG (1280x800) made from the first photo. */
    struct lk_image big = {0};
    if (lk_image_resize(&imgs[0], 1280, 800, &big, &e))
        die("resize 1MP", &e);
    size_t blen = 0;
    unsigned char *bjpg = bench_encode_jpeg(&big, 90, &blen);
    lk_image_free(&big);
    printf("\n1-megapixel JPEG: 1280x800, %zu bytes, quality 90\n\n", blen);
    printf("| %-44s | %8s | %8s | %8s | %5s | %6s |\n|%s|----------|----------|----------|-------|--------|\n",
           "stage (ms per image)", "median", "p90", "min", "n", "ratio", "----------------------------------------------");
    size_t keep_nf = nf;
    nf = 10;  /* 10 repetitions x rounds */
    total = nf * rounds;
    TIME_LOOP("1MP decode, full resolution", 0, {
        struct lk_image x = {0};
        if (lk_image_decode(bjpg, blen, NULL, &x, NULL, &e)) die("decode", &e);
        lk_image_free(&x);
    });
    char shrink_label[96];
    {
        struct lk_image x = {0};
        struct lk_image_info xi;
        if (lk_image_decode(bjpg, blen, &opts, &x, &xi, &e)) die("decode", &e);
        snprintf(shrink_label, sizeof shrink_label, "1MP decode, shrink-on-load (%u/%u -> %ux%u)", xi.scale_num,
                 xi.scale_denom, x.width, x.height);
        lk_image_free(&x);
    }
    TIME_LOOP(shrink_label, 0, {
        struct lk_image x = {0};
        if (lk_image_decode(bjpg, blen, &opts, &x, NULL, &e)) die("decode", &e);
        lk_image_free(&x);
    });
    TIME_LOOP("1MP whole describe (decode+resize+CNN+colour+fuse)", 0,
              describe_once(models[2], dws, bjpg, blen, &opts, p, out, colour, fused));
    TIME_LOOP("1MP whole describe, CNN int8", 0,
              describe_once(models[INT8_IDX], qws, bjpg, blen, &opts, p, out, colour, fused));
    nf = keep_nf;
    free(bjpg);
    free(fused);
    lk_embed_params_free(p);
    for (size_t i = 0; i < nf; i++) {
        free(bytes[i]);
        free(files[i]);
        lk_image_free(&imgs[i]);
        lk_image_free(&small[i]);
    }
    free(bytes), free(lens), free(imgs), free(small), free(files), free(t), free(in);
    for (size_t l = 0; l <= N_LAYERS; l++) {
        lk_cnn_workspace_free(ws[l]);
        lk_cnn_free(models[l]);
    }
    return 0;
}
