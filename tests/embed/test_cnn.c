/*
 * tests/embed/test_cnn.c — the learned descriptor (src/embed/cnn.c).
 *
 * The oracle test is what proves the forward pass: reference.json holds the
 * descriptors TensorFlow.js (an independent implementation of the same Keras
 * model, CPU backend) computes for four synthetic inputs at three layers
 * (tests/embed/gen_reference.sh made it); the C descriptor must match each
 * within 1e-4 absolute.  The inputs are rebuilt here from the same integer
 * formulas as gen_reference.js.
 *
 * The model files come from models/fetch (scripts/setup runs it).  When they
 * are missing these tests FAIL rather than skip: a green run must mean the
 * forward pass was checked.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "embed_test.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"

#define SIDE 224
#define N_IN (SIDE * SIDE * 3)
#define TOL 1e-4

static char model_dir[4096];
static char src_root[4096];

static void setup_paths(void)
{
    const char *root = getenv("LK_SOURCE_ROOT");
    cr_assert(root && *root, "LK_SOURCE_ROOT is not set (run through meson test)");
    snprintf(src_root, sizeof src_root, "%s", root);
    snprintf(model_dir, sizeof model_dir, "%s/models/mobilenet_v2", root);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.json", model_dir);
    cr_assert(access(p, R_OK) == 0, "model missing: %s (run models/fetch, which scripts/setup calls)", p);
}

/* Same pixel formulas as pixels() in gen_reference.js. */
static void make_input(const char *kind, float *out)
{
    uint32_t s = 0x12345678u;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < 3; c++) {
                int p;
                if (!strcmp(kind, "noise")) {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    p = (int)(s >> 24);
                } else if (!strcmp(kind, "gradient")) {
                    p = c == 0 ? (x * 255) / 223 : c == 1 ? (y * 255) / 223 : ((x + y) * 255) / 446;
                } else if (!strcmp(kind, "constant")) {
                    static const int rgb[3] = {200, 120, 40};
                    p = rgb[c];
                } else {
                    cr_assert(!strcmp(kind, "checker"), "unknown input kind %s", kind);
                    p = (((x >> 4) ^ (y >> 4)) & 1) ? ((x * 3 + y * 5 + c * 70) & 255) : (c * 90 + 30);
                }
                out[(y * SIDE + x) * 3 + c] = (float)(p / 127.5 - 1.0);
            }
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert(fwrite(data, 1, len, f) == len);
    fclose(f);
}

TestSuite(cnn, .init = setup_paths, .timeout = 300);

Test(cnn, matches_tfjs_reference)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/embed/reference.json", src_root);
    char *text = slurp(path, NULL);
    cJSON *ref = cJSON_Parse(text);
    cr_assert(ref, "reference.json does not parse");
    const cJSON *layers = cJSON_GetObjectItem(ref, "layers");
    const cJSON *inputs = cJSON_GetObjectItem(ref, "inputs");
    cr_assert(cJSON_GetArraySize(layers) >= 1 && cJSON_GetArraySize(inputs) >= 3);
    bool saw_default = false;
    float *in = malloc(N_IN * sizeof *in);
    const cJSON *layer;
    cJSON_ArrayForEach(layer, layers) {
        struct lk_err e = {0};
        struct lk_cnn_model *m = NULL;
        struct lk_cnn_workspace *ws = NULL;
        cr_assert_eq(lk_cnn_load_layer(model_dir, layer->string, &m, &e), LK_OK, "%s: %s", layer->string, e.msg);
        size_t dim = (size_t)cJSON_GetObjectItem(layer, "dim")->valuedouble;
        cr_assert_eq(lk_cnn_dim(m), dim, "%s: dim %zu, reference %zu", layer->string, lk_cnn_dim(m), dim);
        cr_assert_eq(lk_cnn_workspace_new(m, &ws, &e), LK_OK, "%s", e.msg);
        saw_default |= !strcmp(layer->string, LK_CNN_DEFAULT_LAYER);
        float *out = malloc(dim * sizeof *out);
        const cJSON *kind;
        cJSON_ArrayForEach(kind, inputs) {
            const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(layer, "descriptors"), kind->valuestring);
            cr_assert_eq((size_t)cJSON_GetArraySize(want), dim);
            make_input(kind->valuestring, in);
            cr_assert_eq(lk_cnn_forward(ws, in, out, &e), LK_OK, "%s", e.msg);
            double max_err = 0, dot = 0, na = 0, nb = 0;
            size_t i = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, want) {
                double d = fabs(out[i] - v->valuedouble);
                max_err = d > max_err ? d : max_err;
                dot += out[i] * v->valuedouble, na += out[i] * (double)out[i], nb += v->valuedouble * v->valuedouble;
                i++;
            }
            fprintf(stderr, "oracle %-22s %-9s dim %4zu max|err| %.3g cosine %.9f\n", layer->string,
                    kind->valuestring, dim, max_err, dot / sqrt(na * nb));
            cr_expect_leq(max_err, TOL, "%s/%s: max abs error %g > %g", layer->string, kind->valuestring, max_err, TOL);
        }
        free(out);
        lk_cnn_workspace_free(ws);
        lk_cnn_free(m);
    }
    cr_assert(saw_default, "reference.json lacks the default layer %s", LK_CNN_DEFAULT_LAYER);
    free(in);
    cJSON_Delete(ref);
    free(text);
}

Test(cnn, default_shape)
{
    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL;
    cr_assert_eq(lk_cnn_load(model_dir, &m, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_dim(m), 576);
    uint32_t w = 0, h = 0;
    lk_cnn_input_size(m, &w, &h);
    cr_assert_eq(w, SIDE);
    cr_assert_eq(h, SIDE);
    cr_assert_str_eq(lk_cnn_layer(m), LK_CNN_DEFAULT_LAYER);
    lk_cnn_free(m);
}

Test(cnn, null_and_free_noops)
{
    lk_cnn_free(NULL);
    lk_cnn_workspace_free(NULL);
    struct lk_err e = {0};
    struct lk_cnn_model *m = (void *)1;
    cr_assert_eq(lk_cnn_load(NULL, &m, &e), LK_ERR_INVALID_ARG);
    cr_assert_null(m);
    cr_assert_eq(lk_cnn_load(model_dir, NULL, &e), LK_ERR_INVALID_ARG);
    struct lk_cnn_workspace *ws = (void *)1;
    cr_assert_eq(lk_cnn_workspace_new(NULL, &ws, &e), LK_ERR_INVALID_ARG);
    cr_assert_null(ws);
    cr_assert_eq(lk_cnn_dim(NULL), 0);
}

Test(cnn, wrong_dir_and_unknown_layer)
{
    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL;
    cr_assert_eq(lk_cnn_load("/nonexistent/lookalike-model", &m, &e), LK_ERR_MODEL);
    cr_assert_null(m);
    cr_assert(strstr(e.msg, "model.json"), "message should name the file: %s", e.msg);
    cr_assert_eq(lk_cnn_load_layer(model_dir, "no_such_layer", &m, &e), LK_ERR_MODEL);
    cr_assert_null(m);
    /* A layer class the runtime does not implement, on the path to the output. */
    cr_assert_eq(lk_cnn_load_layer(model_dir, "dense_3", &m, &e), LK_ERR_MODEL);
    cr_assert(strstr(e.msg, "not supported"), "%s", e.msg);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_assert_eq(lk_cnn_load_layer(model_dir, longname, &m, &e), LK_ERR_INVALID_ARG);
}

Test(cnn, rejects_non_finite_input)
{
    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL;
    struct lk_cnn_workspace *ws = NULL;
    cr_assert_eq(lk_cnn_load(model_dir, &m, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_workspace_new(m, &ws, &e), LK_OK, "%s", e.msg);
    float *in = calloc(N_IN, sizeof *in), out[576];
    in[N_IN / 2] = NAN;
    cr_assert_eq(lk_cnn_forward(ws, in, out, &e), LK_ERR_INVALID_ARG);
    in[N_IN / 2] = INFINITY;
    cr_assert_eq(lk_cnn_forward(ws, in, out, &e), LK_ERR_INVALID_ARG);
    in[N_IN / 2] = 0;
    cr_assert_eq(lk_cnn_forward(ws, in, out, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_forward(ws, NULL, out, &e), LK_ERR_INVALID_ARG);
    free(in);
    /* The workspace keeps the model alive: freeing the model first is fine. */
    lk_cnn_free(m);
    in = calloc(N_IN, sizeof *in);
    cr_assert_eq(lk_cnn_forward(ws, in, out, &e), LK_OK, "%s", e.msg);
    free(in);
    lk_cnn_workspace_free(ws);
}

Test(cnn, describe_is_resize_normalise_forward)
{
    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL;
    struct lk_cnn_workspace *ws = NULL;
    cr_assert_eq(lk_cnn_load(model_dir, &m, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_workspace_new(m, &ws, &e), LK_OK, "%s", e.msg);
    struct lk_image img = {0}, sized = {0};
    cr_assert_eq(lk_image_init(&img, 301, 187, &e), LK_OK, "%s", e.msg);
    for (uint32_t y = 0; y < img.height; y++)
        for (uint32_t x = 0; x < img.width; x++)
            for (int c = 0; c < 3; c++)
                img.rgb[(y * img.width + x) * 3 + c] = (uint8_t)(((x >> 3) ^ (y >> 3)) * 37 + c * 60);
    float got[576], want[576], *in = malloc(N_IN * sizeof *in);
    cr_assert_eq(lk_cnn_describe(ws, &img, got, &e), LK_OK, "%s", e.msg);
    const float mean[3] = {127.5f, 127.5f, 127.5f}, scale[3] = {1 / 127.5f, 1 / 127.5f, 1 / 127.5f};
    cr_assert_eq(lk_image_resize(&img, SIDE, SIDE, &sized, &e), LK_OK);
    cr_assert_eq(lk_image_to_float(&sized, LK_LAYOUT_HWC, mean, scale, in, &e), LK_OK);
    cr_assert_eq(lk_cnn_forward(ws, in, want, &e), LK_OK);
    cr_assert_eq(memcmp(got, want, sizeof got), 0, "describe differs from resize + normalise + forward");
    double norm = 0;
    for (int i = 0; i < 576; i++) {
        cr_assert(got[i] >= 0 && got[i] <= 6, "ReLU6 output out of range: %f", got[i]);
        norm += got[i] * (double)got[i];
    }
    cr_assert_gt(norm, 0);
    struct lk_image empty = {0};
    cr_assert_neq(lk_cnn_describe(ws, &empty, got, &e), LK_OK, "an empty image must be rejected");
    cr_assert_eq(lk_cnn_describe(ws, NULL, got, &e), LK_ERR_INVALID_ARG);
    free(in);
    lk_image_free(&sized);
    lk_image_free(&img);
    lk_cnn_workspace_free(ws);
    lk_cnn_free(m);
}

/* ---- Corrupt model files ---- */

/* A scratch copy of the model directory whose files the test then damages. */
static void copy_model(char *dir, size_t cap, const char *json, size_t json_len, const void *shard, size_t shard_len)
{
    snprintf(dir, cap, "/tmp/lk_test_cnn_XXXXXX");
    cr_assert(mkdtemp(dir));
    char p[4200];
    snprintf(p, sizeof p, "%s/model.json", dir);
    spit(p, json, json_len);
    snprintf(p, sizeof p, "%s/group1-shard1of1.bin", dir);
    spit(p, shard, shard_len);
}

static void remove_model(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/model.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/group1-shard1of1.bin", dir);
    unlink(p);
    rmdir(dir);
}

static int load_variant(const char *json, size_t json_len, const void *shard, size_t shard_len, struct lk_err *e)
{
    char dir[64];
    copy_model(dir, sizeof dir, json, json_len, shard, shard_len);
    struct lk_cnn_model *m = NULL;
    int rc = lk_cnn_load(dir, &m, e);
    if (rc == LK_OK) {
        /* A mutation that still loads must still run. */
        struct lk_cnn_workspace *ws = NULL;
        cr_assert_eq(lk_cnn_workspace_new(m, &ws, e), LK_OK, "%s", e->msg);
        lk_cnn_workspace_free(ws);
    } else {
        cr_assert_null(m);
    }
    lk_cnn_free(m);
    remove_model(dir);
    return rc;
}

static char *replace_once(const char *s, const char *from, const char *to, size_t *len)
{
    const char *at = strstr(s, from);
    cr_assert(at, "fixture edit: '%s' not found", from);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    size_t pre = (size_t)(at - s);
    memcpy(r, s, pre);
    strcpy(r + pre, to);
    strcat(r, at + strlen(from));
    *len = n;
    return r;
}

Test(cnn, corrupt_model_files)
{
    char p[4200];
    size_t jlen, slen;
    snprintf(p, sizeof p, "%s/model.json", model_dir);
    char *json = slurp(p, &jlen);
    snprintf(p, sizeof p, "%s/group1-shard1of1.bin", model_dir);
    char *shard = slurp(p, &slen);
    struct lk_err e = {0};

    cr_assert_eq(load_variant(json, jlen, shard, slen, &e), LK_OK, "pristine copy: %s", e.msg);
    cr_assert_eq(load_variant(json, jlen / 2, shard, slen, &e), LK_ERR_MODEL, "truncated model.json");
    cr_assert_eq(load_variant(json, 0, shard, slen, &e), LK_ERR_MODEL, "empty model.json");
    cr_assert_eq(load_variant("{}", 2, shard, slen, &e), LK_ERR_MODEL, "no topology");
    cr_assert_eq(load_variant(json, jlen, shard, slen - 100, &e), LK_ERR_MODEL, "truncated shard");
    cr_assert(strstr(e.msg, "truncated") || strstr(e.msg, "bytes"), "%s", e.msg);
    cr_assert_eq(load_variant(json, jlen, shard, 0, &e), LK_ERR_MODEL, "empty shard");
    char *longer = malloc(slen + 7);
    memcpy(longer, shard, slen);
    memset(longer + slen, 0, 7);
    cr_assert_eq(load_variant(json, jlen, longer, slen + 7, &e), LK_ERR_MODEL, "shard with trailing bytes");
    free(longer);

    static const char *const edits[][2] = {
        {"\"shape\":[3,3,3,32]", "\"shape\":[3,3,3,33]"},                 /* layout no longer adds up */
        {"\"shape\":[3,3,3,32]", "\"shape\":[3,3,3,-32]"},                /* negative dimension */
        {"\"shape\":[3,3,3,32]", "\"shape\":[3,3,3,1e30]"},               /* absurd dimension */
        {"\"name\":\"Conv1/kernel\"", "\"name\":\"Conv1/kernelX\""},      /* missing weight */
        {"\"dtype\":\"uint8\"", "\"dtype\":\"int4\""},                    /* unknown quantisation */
        {"\"group1-shard1of1.bin\"", "\"../group1-shard1of1.bin\""},      /* path escape */
        {"\"group1-shard1of1.bin\"", "\"missing.bin\""},                  /* missing shard */
        {"\"class_name\":\"DepthwiseConv2D\"", "\"class_name\":\"SeparableConv2D\""}, /* unsupported layer */
        {"\"kernel_size\":[3,3]", "\"kernel_size\":[300,3]"},              /* kernel larger than input */
        {"\"strides\":[2,2]", "\"strides\":[0,2]"},                       /* zero stride */
        {"[[\"input_1\",0,0,{}]]", "[[\"nowhere\",0,0,{}]]"},             /* dangling input */
        {"\"batch_input_shape\":[null,224,224,3]", "\"batch_input_shape\":[null,224,224,4]"},
        {"\"epsilon\":0.001", "\"epsilon\":\"x\""},
        {"\"max_value\":6", "\"max_value\":-1"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        size_t n;
        char *bad = replace_once(json, edits[i][0], edits[i][1], &n);
        int rc = load_variant(bad, n, shard, slen, &e);
        cr_expect_eq(rc, LK_ERR_MODEL, "edit %zu (%s -> %s) gave %d: %s", i, edits[i][0], edits[i][1], rc, e.msg);
        free(bad);
    }

    /* Random byte damage to model.json: any outcome but a crash is fine,
     * and a model that still loads must still build a runtime. */
    uint32_t s = 12345;
    char *mut = malloc(jlen);
    for (int round = 0; round < 24; round++) {
        memcpy(mut, json, jlen);
        for (int k = 0; k < 4; k++) {
            s = s * 1664525u + 1013904223u;
            size_t at = (s >> 8) % jlen;
            s = s * 1664525u + 1013904223u;
            mut[at] = "0123456789[]{},:\"-.e9x"[(s >> 16) % 22];
        }
        int rc = load_variant(mut, jlen, shard, slen, &e);
        cr_expect(rc == LK_OK || rc == LK_ERR_MODEL, "mutation %d gave %d: %s", round, rc, e.msg);
    }
    free(mut);
    free(json);
    free(shard);
}

/* ---- Threads ---- */

struct job {
    struct lk_cnn_model *m;
    const float *in;
    float out[576];
    int rc;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    struct lk_cnn_workspace *ws = NULL;
    struct lk_err e = {0};
    j->rc = lk_cnn_workspace_new(j->m, &ws, &e);
    for (int r = 0; j->rc == LK_OK && r < 3; r++)
        j->rc = lk_cnn_forward(ws, j->in, j->out, &e);
    lk_cnn_workspace_free(ws);
    return NULL;
}

/* Same for both precisions: a shared model, one workspace per thread, and
 * bit-identical descriptors whichever thread computes them. */
static void threads_agree(enum lk_cnn_precision precision)
{
    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL;
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.precision = precision;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &m, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_precision(m), precision);
    float *in = malloc(N_IN * sizeof *in);
    make_input("checker", in);
    struct job single = {.m = m, .in = in};
    run_job(&single);
    cr_assert_eq(single.rc, LK_OK);
    struct job jobs[2] = {{.m = m, .in = in}, {.m = m, .in = in}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(jobs[i].rc, LK_OK);
        cr_assert_eq(memcmp(jobs[i].out, single.out, sizeof single.out), 0, "thread %d differs (%s)", i,
                     lk_cnn_precision_name(precision));
    }
    free(in);
    lk_cnn_free(m);
}

Test(cnn, threads_with_own_workspaces_agree)
{
    threads_agree(LK_CNN_FP32);
}

Test(cnn, int8_threads_with_own_workspaces_agree)
{
    threads_agree(LK_CNN_INT8);
}

/* ---- Int8 ---- */

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* Conv1 alone (output layer Conv1_relu, 112x112x32, pooled): int8 vs fp32
 * per channel.  This is where the int8 graph gathers its own patches
 * (im2col) and pads the bottom row and right column.  The int8 rounding of
 * each channel's 27 weights is the same at every position, so it does not
 * average out: the largest channel difference measured 0.008.  Padding the
 * border with a wrong value (a deliberate fault, 90 instead of 0) made it
 * 0.037; the bound sits between. */
Test(cnn, int8_first_convolution_matches_fp32)
{
    struct lk_err e = {0};
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.output_layer = "Conv1_relu";
    struct lk_cnn_model *mf = NULL, *mq = NULL;
    struct lk_cnn_workspace *wf = NULL, *wq = NULL;
    o.precision = LK_CNN_FP32;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &mf, &e), LK_OK, "%s", e.msg);
    o.precision = LK_CNN_INT8;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &mq, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_workspace_new(mf, &wf, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_workspace_new(mq, &wq, &e), LK_OK, "%s", e.msg);
    size_t d = lk_cnn_dim(mf);
    cr_assert_eq(d, 32);
    struct lk_image img = {.width = 224, .height = 224, .rgb = malloc(224 * 224 * 3)};
    uint32_t r = 12345;
    for (size_t i = 0; i < 224 * 224 * 3; i++) {
        r = r * 1103515245u + 12345u;
        img.rgb[i] = (uint8_t)(r >> 24);
    }
    float a[32], b[32];
    cr_assert_eq(lk_cnn_describe(wf, &img, a, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_describe(wq, &img, b, &e), LK_OK, "%s", e.msg);
    double worst = 0;
    for (size_t c = 0; c < d; c++)
        worst = fmax(worst, fabs((double)a[c] - b[c]));
    fprintf(stderr, "int8 vs fp32 Conv1_relu: max |channel mean difference| %.6f\n", worst);
    cr_expect_lt(worst, 0.015, "Conv1 channel means differ by %g", worst);
    free(img.rgb);
    lk_cnn_workspace_free(wf);
    lk_cnn_workspace_free(wq);
    lk_cnn_free(mf);
    lk_cnn_free(mq);
}

/* The int8 network tracks the fp32 reference on the oracle's fixed inputs,
 * after global average pooling and after post-processing (ssqrt, L2).  The
 * bar is below the worst value measured when it was set (0.9979, "constant";
 * the stderr line prints them) with a little margin for other compilers
 * and CPUs' kernel choices. */
#define INT8_COS_MIN 0.995
Test(cnn, int8_close_to_fp32)
{
    struct lk_err e = {0};
    struct lk_cnn_model *mf = NULL, *mq = NULL;
    struct lk_cnn_workspace *wf = NULL, *wq = NULL;
    cr_assert_eq(lk_cnn_load(model_dir, &mf, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_load_opts(model_dir, NULL, &mq, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_precision(mf), LK_CNN_FP32, "lk_cnn_load is the fp32 reference");
    cr_assert_eq(lk_cnn_precision(mq), LK_CNN_PRECISION_DEFAULT, "NULL options = the default precision");
    if (LK_CNN_PRECISION_DEFAULT != LK_CNN_INT8) {
        lk_cnn_free(mq);
        struct lk_cnn_options o;
        lk_cnn_options_init(&o);
        o.precision = LK_CNN_INT8;
        cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &mq, &e), LK_OK, "%s", e.msg);
    }
    cr_assert_eq(lk_cnn_dim(mq), lk_cnn_dim(mf));
    cr_assert_str_eq(lk_cnn_layer(mq), lk_cnn_layer(mf));
    cr_assert_eq(lk_cnn_workspace_new(mf, &wf, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_workspace_new(mq, &wq, &e), LK_OK, "%s", e.msg);
    size_t d = lk_cnn_dim(mf);
    float *in = malloc(N_IN * sizeof *in), *a = malloc(d * sizeof *a), *b = malloc(d * sizeof *b);
    struct lk_embed_params *p = NULL;
    cr_assert_eq(lk_embed_params_identity(d, 1.0f, &p, &e), LK_OK, "%s", e.msg);
    float *pa = malloc(d * sizeof *pa), *pb = malloc(d * sizeof *pb);
    static const char *const kinds[] = {"noise", "gradient", "constant", "checker"};
    for (size_t k = 0; k < 4; k++) {
        make_input(kinds[k], in);
        cr_assert_eq(lk_cnn_forward(wf, in, a, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(lk_cnn_forward(wq, in, b, &e), LK_OK, "%s", e.msg);
        for (size_t i = 0; i < d; i++)
            cr_assert(isfinite(b[i]) && b[i] >= 0.0f, "int8 output %zu = %g (ReLU6 layer)", i, (double)b[i]);
        cr_assert_eq(lk_embed_cnn_normalize(p, a, pa, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(lk_embed_cnn_normalize(p, b, pb, &e), LK_OK, "%s", e.msg);
        double c = cosine(a, b, d), cp = cosine(pa, pb, d);
        fprintf(stderr, "int8 vs fp32 %-9s cosine %.6f, after ssqrt+L2 %.6f\n", kinds[k], c, cp);
        cr_expect_geq(c, INT8_COS_MIN, "%s: int8/fp32 cosine %.6f < %.2f", kinds[k], c, INT8_COS_MIN);
        cr_expect_geq(cp, INT8_COS_MIN, "%s: post-processed cosine %.6f < %.2f", kinds[k], cp, INT8_COS_MIN);
    }
    /* lk_cnn_describe goes through the same int8 runtime. */
    struct lk_image img = {.width = 50, .height = 30, .rgb = malloc(50 * 30 * 3)};
    for (size_t i = 0; i < 50 * 30 * 3; i++)
        img.rgb[i] = (uint8_t)(i * 7 + i / 150);
    cr_assert_eq(lk_cnn_describe(wf, &img, a, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_describe(wq, &img, b, &e), LK_OK, "%s", e.msg);
    cr_expect_geq(cosine(a, b, d), INT8_COS_MIN, "describe: cosine %.6f", cosine(a, b, d));
    /* An input-sized image: the int8 path reads its pixels directly and
     * gathers Conv1's patches itself (im2col, zero padding on the bottom
     * row and right column).  It must equal lk_cnn_forward() of the
     * normalised image bit for bit, and track fp32 on a picture whose
     * strongest content is on that padded border. */
    struct lk_image sq = {.width = 224, .height = 224, .rgb = malloc(224 * 224 * 3)};
    for (size_t y = 0; y < 224; y++)
        for (size_t x = 0; x < 224; x++)
            for (size_t c = 0; c < 3; c++)
                sq.rgb[(y * 224 + x) * 3 + c] =
                    (uint8_t)(y >= 220 || x >= 220 ? (x + y + c * 85) * 37 : ((x * 3 + y * 5 + c) & 15) + 100);
    static const float mean[3] = {127.5f, 127.5f, 127.5f}, sc[3] = {1 / 127.5f, 1 / 127.5f, 1 / 127.5f};
    cr_assert_eq(lk_image_to_float(&sq, LK_LAYOUT_HWC, mean, sc, in, &e), LK_OK, "%s", e.msg);
    float *c8 = malloc(d * sizeof *c8);
    cr_assert_eq(lk_cnn_describe(wq, &sq, b, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_forward(wq, in, c8, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(memcmp(b, c8, d * sizeof *b), 0, "int8 describe differs from forward of the normalised image");
    cr_assert_eq(lk_cnn_describe(wf, &sq, a, &e), LK_OK, "%s", e.msg);
    fprintf(stderr, "int8 vs fp32 border    cosine %.6f\n", cosine(a, b, d));
    cr_expect_geq(cosine(a, b, d), INT8_COS_MIN, "border image: cosine %.6f", cosine(a, b, d));
    free(c8);
    free(sq.rgb);
    /* Non-finite input is rejected before it reaches the int8 conversion. */
    in[17] = NAN;
    cr_assert_eq(lk_cnn_forward(wq, in, b, &e), LK_ERR_INVALID_ARG);
    free(img.rgb);
    free(in), free(a), free(b), free(pa), free(pb);
    lk_embed_params_free(p);
    lk_cnn_workspace_free(wf);
    lk_cnn_workspace_free(wq);
    lk_cnn_free(mf);
    lk_cnn_free(mq);
}

Test(cnn, precision_names)
{
    enum lk_cnn_precision p = LK_CNN_FP32;
    struct lk_err e = {0};
    cr_assert_eq(lk_cnn_precision_parse("int8", &p, &e), LK_OK);
    cr_assert_eq(p, LK_CNN_INT8);
    cr_assert_str_eq(lk_cnn_precision_name(p), "int8");
    cr_assert_eq(lk_cnn_precision_parse("fp32", &p, &e), LK_OK);
    cr_assert_str_eq(lk_cnn_precision_name(p), "fp32");
    cr_assert_eq(lk_cnn_precision_parse("fp16", &p, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_cnn_precision_parse(NULL, &p, &e), LK_ERR_INVALID_ARG);
    cr_assert_str_eq(lk_cnn_precision_name((enum lk_cnn_precision)9), "?");
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    cr_assert_eq(o.precision, LK_CNN_PRECISION_DEFAULT);
    cr_assert_null(o.output_layer);
    cr_assert_null(o.calibration_path);
    o.precision = (enum lk_cnn_precision)9;
    struct lk_cnn_model *m = (void *)1;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &m, &e), LK_ERR_INVALID_ARG);
    cr_assert_null(m);
    cr_assert_eq(lk_cnn_precision(NULL), LK_CNN_FP32);
}
