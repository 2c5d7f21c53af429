/*
 * tests/embed/test_quantize.c — int8 quantisation (src/embed/quantize.c):
 * the arithmetic, and the calibration file through the public API
 * (lk_cnn_load_opts() with LK_CNN_INT8, lk_cnn_calibrator_*).
 *
 * Decision under test: with LK_CNN_INT8 a missing, corrupt or mismatched
 * calibration file is an error with a message naming the file, never a
 * silent fallback to fp32 (an index must not mix precisions).  Needs the
 * model (models/fetch) and the committed models/mobilenet_v2/calibration.json.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/embed/pembed.h"
#include "embed_test.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"

static char model_dir[4096], cal_file[4200];

static void setup_paths(void)
{
    const char *root = getenv("LK_SOURCE_ROOT");
    cr_assert(root && *root, "LK_SOURCE_ROOT is not set (run through meson test)");
    snprintf(model_dir, sizeof model_dir, "%s/models/mobilenet_v2", root);
    snprintf(cal_file, sizeof cal_file, "%s/%s", model_dir, LK_CNN_CALIBRATION_FILE);
    cr_assert(access(cal_file, R_OK) == 0, "calibration file missing: %s (committed; models/gen_calibration.sh)",
              cal_file);
}

TestSuite(quantize, .init = setup_paths, .timeout = 300);

/* ==== Arithmetic ==== */

Test(quantize, activation_params_cover_range_and_keep_zero_exact)
{
    static const float ranges[][2] = {{0, 6}, {-1, 1}, {-48.99f, 48.06f}, {2, 5}, {-3, -1}, {0, 0}, {-0.01f, 100}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        float lo = ranges[r][0], hi = ranges[r][1], s;
        int32_t zp;
        lk__quant_activation(lo, hi, &s, &zp);
        cr_assert(s > 0 && zp >= -128 && zp <= 127, "[%g,%g]: scale %g zp %d", (double)lo, (double)hi, (double)s, zp);
        /* 0 is a representable value (zero_point), and the range fits. */
        float qlo = (float)(-128 - zp) * s, qhi = (float)(127 - zp) * s;
        cr_assert_leq(qlo, fminf(lo, 0) + s, "[%g,%g]: lowest %g", (double)lo, (double)hi, (double)qlo);
        cr_assert_geq(qhi, fmaxf(hi, 0) - s, "[%g,%g]: highest %g", (double)lo, (double)hi, (double)qhi);
    }
    float s;
    int32_t zp;
    lk__quant_activation(0, 6, &s, &zp);
    cr_assert_eq(zp, -128, "ReLU6 tensors: zero at -128");
    cr_assert_float_eq(s, 6.0f / 255.0f, 1e-9f);
}

Test(quantize, per_channel_weights_both_layouts)
{
    enum { C = 5, K = 9 };
    float w[C * K];
    int8_t q[C * K];
    float scale[C];
    for (int layout = 0; layout < 2; layout++) {
        for (size_t c = 0; c < C; c++)
            for (size_t j = 0; j < K; j++) {
                /* channel c has magnitude ~10^(c-2); channel 3 is all zero */
                float v = c == 3 ? 0.0f : (float)(((int)(j * 7 + c * 3) % 11) - 5) * powf(10.0f, (float)c - 2.0f);
                w[layout ? j * C + c : c * K + j] = v;
            }
        lk__quant_weights(w, C, K, layout == 1, q, scale);
        for (size_t c = 0; c < C; c++) {
            float amax = 0;
            for (size_t j = 0; j < K; j++) {
                size_t at = layout ? j * C + c : c * K + j;
                amax = fmaxf(amax, fabsf(w[at]));
                cr_assert(q[at] >= -127 && q[at] <= 127);
                cr_assert_leq(fabsf((float)q[at] * scale[c] - w[at]), 0.5f * scale[c] * 1.0001f,
                              "layout %d channel %zu element %zu", layout, c, j);
            }
            cr_assert_float_eq(scale[c], amax > 0 ? amax / 127.0f : 1.0f, 1e-6f * (amax + 1), "channel %zu", c);
        }
    }
}

Test(quantize, bias_scale_and_overflow)
{
    float b[3] = {0.5f, -2.0f, 0.0f}, ws[3] = {0.01f, 0.02f, 0.03f}, bs[3];
    int32_t q[3];
    cr_assert_eq(lk__quant_bias(b, 3, 0.1f, ws, q, bs), 0);
    for (int c = 0; c < 3; c++) {
        cr_assert_float_eq(bs[c], 0.1f * ws[c], 1e-9f);
        cr_assert_leq(fabs(q[c] * (double)bs[c] - b[c]), 0.5 * bs[c] + 1e-9);
    }
    float big[1] = {1e9f}, tiny[1] = {1e-9f};
    cr_assert_eq(lk__quant_bias(big, 1, 1e-3f, tiny, q, bs), -1, "does not fit int32");
}

/* ==== Calibration file ==== */

static char *tmp_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "/tmp/lk_test_quantize_%d_%s", (int)getpid(), name);
    return p;
}

/* Load the int8 model with calibration file `text` and return the status. */
static int load_with(const char *text, struct lk_err *e)
{
    char *path = tmp_path("cal.json");
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.precision = LK_CNN_INT8;
    o.calibration_path = path;
    struct lk_cnn_model *m = (void *)1;
    int rc = lk_cnn_load_opts(model_dir, &o, &m, e);
    cr_assert(rc == LK_OK ? m != NULL : m == NULL, "model out-parameter inconsistent with status %d", rc);
    if (rc == LK_OK)
        cr_assert_eq(lk_cnn_precision(m), LK_CNN_INT8);
    lk_cnn_free(m);
    unlink(path);
    return rc;
}

/* Replace the first occurrence of `from` in `s` with `to` (new string). */
static char *edit(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    cr_assert(at, "fixture edit: '%s' not in the calibration file", from);
    size_t a = (size_t)(at - s), lf = strlen(from), lt = strlen(to), ls = strlen(s);
    char *out = malloc(ls - lf + lt + 1);
    memcpy(out, s, a);
    memcpy(out + a, to, lt);
    memcpy(out + a + lt, at + lf, ls - a - lf + 1);
    return out;
}

Test(quantize, committed_calibration_loads)
{
    size_t len;
    char *text = slurp(cal_file, &len);
    struct lk_err e = {0};
    cr_assert_eq(load_with(text, &e), LK_OK, "%s", e.msg);
    free(text);
}

Test(quantize, bad_calibration_files_are_clear_errors)
{
    size_t len;
    char *good = slurp(cal_file, &len);
    struct lk_err e = {0};
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.precision = LK_CNN_INT8;
    o.calibration_path = "/nonexistent/calibration.json";
    struct lk_cnn_model *m = (void *)1;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &m, &e), LK_ERR_IO);
    cr_assert_null(m);
    cr_assert(strstr(e.msg, "/nonexistent/calibration.json"), "message names the file: %s", e.msg);
    /* fp32 never reads it. */
    o.precision = LK_CNN_FP32;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &m, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_precision(m), LK_CNN_FP32);
    lk_cnn_free(m);

    cr_assert_eq(load_with("", &e), LK_ERR_PARSE, "%s", e.msg);
    cr_assert_eq(load_with("{\"format\": \"something else\", \"version\": 1}", &e), LK_ERR_PARSE, "%s", e.msg);
    char *t = strdup(good);
    t[len / 2] = '\0';  /* truncated */
    cr_assert_eq(load_with(t, &e), LK_ERR_PARSE, "%s", e.msg);
    free(t);

    static const struct { const char *from, *to; int want; } cases[] = {
        {"\"version\":\t1", "\"version\":\t2", LK_ERR_PARSE},
        {"\"model_id\":\t\"", "\"model_id\":\t\"0", LK_ERR_MODEL},         /* another model */
        {"\"block_1_project_BN\":\t[", "\"block_1_project_BN\":\t[1e9, ", LK_ERR_PARSE},  /* min > max */
        {"\"block_1_project_BN\":\t[", "\"block_1_project_BN\":\t[\"x\", ", LK_ERR_PARSE},
        {"\"block_1_project_BN\"", "\"block_1_project_XX\"", LK_ERR_MODEL}, /* a needed range is missing */
        {"\"ranges\":\t{", "\"ranges\":\t{\"a\": [0], ", LK_ERR_PARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = edit(good, cases[i].from, cases[i].to);
        int rc = load_with(bad, &e);
        cr_expect_eq(rc, cases[i].want, "case %zu (%s -> %s): %d %s", i, cases[i].from, cases[i].to, rc, e.msg);
        cr_expect(strstr(e.msg, "cal.json") != NULL, "case %zu: message names the file: %s", i, e.msg);
        free(bad);
    }
    free(good);
}

/* The calibrator writes a file the int8 loader accepts, for a model cut at
 * another layer too; it refuses an int8 model and an empty run. */
Test(quantize, calibrator_round_trip)
{
    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL, *q = NULL;
    struct lk_cnn_calibrator *c = NULL;
    cr_assert_eq(lk_cnn_load_layer(model_dir, "block_12_add", &m, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_calibrator_new(m, &c, &e), LK_OK, "%s", e.msg);
    char *path = tmp_path("made.json");
    cr_assert_eq(lk_cnn_calibrator_save(c, "test", path, &e), LK_ERR_EMPTY);
    struct lk_image img = {.width = 64, .height = 48, .rgb = malloc(64 * 48 * 3)};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < 64 * 48 * 3; i++)
            img.rgb[i] = (uint8_t)((i * (7 + k)) ^ (i / 192 * 31));
        cr_assert_eq(lk_cnn_calibrator_add(c, &img, &e), LK_OK, "%s", e.msg);
    }
    cr_assert_eq(lk_cnn_calibrator_save(c, "three synthetic images", path, &e), LK_OK, "%s", e.msg);
    lk_cnn_free(m);  /* the calibrator holds its own reference */
    lk_cnn_calibrator_free(c);
    lk_cnn_calibrator_free(NULL);

    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.precision = LK_CNN_INT8;
    o.output_layer = "block_12_add";
    o.calibration_path = path;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &q, &e), LK_OK, "%s", e.msg);
    struct lk_cnn_workspace *ws = NULL;
    float out[96];
    cr_assert_eq(lk_cnn_workspace_new(q, &ws, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_describe(ws, &img, out, &e), LK_OK, "%s", e.msg);
    for (size_t i = 0; i < 96; i++)
        cr_assert(isfinite(out[i]));
    /* Deeper layers were not calibrated: a clear error. */
    o.output_layer = "out_relu";
    struct lk_cnn_model *deep = (void *)1;
    cr_assert_eq(lk_cnn_load_opts(model_dir, &o, &deep, &e), LK_ERR_MODEL);
    cr_assert(strstr(e.msg, "no range for layer"), "%s", e.msg);
    cr_assert_eq(lk_cnn_calibrator_new(q, &c, &e), LK_ERR_INVALID_ARG, "int8 models cannot calibrate");
    cr_assert_null(c);
    lk_cnn_workspace_free(ws);
    lk_cnn_free(q);
    free(img.rgb);
    unlink(path);
}
