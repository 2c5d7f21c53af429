/*
 * src/embed/quantize.c — int8 quantisation for the learned descriptor: the
 * arithmetic (activation and per-channel weight parameters) and the
 * calibration file that holds the activation ranges.  Knows nothing of
 * XNNPACK; cnn.c builds the int8 graph from what this file computes.
 *
 * Scheme (Jacob et al., "Quantization and Training of Neural Networks for
 * Efficient Integer-Arithmetic-Only Inference", CVPR 2018; the TensorFlow
 * Lite int8 specification, which XNNPACK's qs8/qc8 operators implement):
 *   - activations: per-tensor affine int8, real = (q - zero_point) * scale,
 *     q in [-128, 127].  The range [lo, hi] is widened to contain 0 so that
 *     zero (the padding value) is exact.  ReLU6 outputs use [0, 6] exactly;
 *     the other tensors (linear bottlenecks, residual adds) use the ranges
 *     recorded by the calibration run.
 *   - weights: per output channel symmetric int8, zero_point 0,
 *     q in [-127, 127] (TFLite leaves -128 unused so that -q never
 *     overflows), scale = max|w[c]| / 127, computed after BatchNorm folding.
 *   - biases: int32, scale = input_scale * weight_scale[c], zero_point 0.
 *
 * Calibration file (models/<model>/calibration.json, written by
 * lk_cnn_calibrator_save()):
 *   { "format": "lookalike-cnn-calibration", "version": 1,
 *     "model_id": "<16 hex digits: FNV-1a 64 of model.json and the shards>",
 *     "method": "min/max over images", "images": N, "source": "...",
 *     "ranges": { "<Keras layer name>": [min, max], ... } }
 * Every range must be finite with min <= max; anything else is a clear
 * error (LK_ERR_PARSE / LK_ERR_MODEL), never a guess.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "pembed.h"

/* ==== Arithmetic ==== */

void lk__quant_activation(float lo, float hi, float *scale, int32_t *zero_point)
{
    if (!(lo <= 0.0f))
        lo = 0.0f;
    if (!(hi >= 0.0f))
        hi = 0.0f;
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s))
        s = 1.0f / 255.0f;  /* a constant-zero tensor: any positive scale */
    /* lo maps to -128: zero_point = -128 - lo/scale, rounded; 0 stays exact. */
    long zp = lroundf(-128.0f - lo / s);
    if (zp < -128)
        zp = -128;
    if (zp > 127)
        zp = 127;
    *scale = s;
    *zero_point = (int32_t)zp;
}

void lk__quant_weights(const float *w, size_t n_channels, size_t per_channel, bool channel_last, int8_t *q,
                       float *scale)
{
    /* channel_last: element j of channel c is w[j*n_channels + c] (depthwise
     * [1][kh][kw][C]); otherwise w[c*per_channel + j] (OHWI). */
    size_t cs = channel_last ? 1 : per_channel, js = channel_last ? n_channels : 1;
    for (size_t c = 0; c < n_channels; c++) {
        float amax = 0.0f;
        for (size_t j = 0; j < per_channel; j++)
            amax = fmaxf(amax, fabsf(w[c * cs + j * js]));
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        scale[c] = s;
        for (size_t j = 0; j < per_channel; j++) {
            long v = lroundf(w[c * cs + j * js] / s);
            q[c * cs + j * js] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
}

int lk__quant_bias(const float *b, size_t n, float input_scale, const float *weight_scale, int32_t *q,
                   float *bias_scale)
{
    for (size_t c = 0; c < n; c++) {
        double s = (double)input_scale * weight_scale[c];
        double v = nearbyint(b[c] / s);
        if (!(s > 0) || !(fabs(v) < 2147483647.0))
            return -1;
        bias_scale[c] = (float)s;
        q[c] = (int32_t)v;
    }
    return 0;
}

/* ==== Calibration file ==== */

#define CAL_FORMAT "lookalike-cnn-calibration"
#define CAL_VERSION 1
/* calibration.json of a MobileNetV2 is ~10 kB. */
#define CAL_JSON_MAX (4u << 20)

void lk__calib_free(struct lk__calib *c)
{
    if (!c)
        return;
    free(c->names);
    free(c->lo);
    free(c->hi);
    memset(c, 0, sizeof *c);
}

bool lk__calib_find(const struct lk__calib *c, const char *name, float *lo, float *hi)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) {
            *lo = c->lo[i];
            *hi = c->hi[i];
            return true;
        }
    return false;
}

int lk__calib_load(const char *path, uint64_t model_id, struct lk__calib *c, struct lk_err *err)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lk_err_set(err, LK_ERR_IO, "cannot open calibration file %s (made by models/gen_calibration.sh; "
                          "or load with precision fp32)", path);
    char *text = malloc(CAL_JSON_MAX + 1);
    size_t len = text ? fread(text, 1, CAL_JSON_MAX + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!text)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    if (rerr || len > CAL_JSON_MAX) {
        free(text);
        return lk_err_set(err, rerr ? LK_ERR_IO : LK_ERR_PARSE, "%s: %s", path,
                          rerr ? "read error" : "larger than any calibration file");
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = LK_OK;
    if (!root) {
        rc = lk_err_set(err, LK_ERR_PARSE, "%s: not valid JSON", path);
        goto done;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "model_id");
    const cJSON *ranges = cJSON_GetObjectItemCaseSensitive(root, "ranges");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, CAL_FORMAT) != 0 || !cJSON_IsNumber(ver)) {
        rc = lk_err_set(err, LK_ERR_PARSE, "%s: not a lookalike calibration file", path);
        goto done;
    }
    if (ver->valuedouble != CAL_VERSION) {
        rc = lk_err_set(err, LK_ERR_PARSE, "%s: calibration version %g, this build reads %d", path, ver->valuedouble,
                        CAL_VERSION);
        goto done;
    }
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)model_id);
    if (!cJSON_IsString(id) || strcmp(id->valuestring, want) != 0) {
        rc = lk_err_set(err, LK_ERR_MODEL, "%s was made for another model (model_id %s, this model %s): "
                        "re-run models/gen_calibration.sh", path, cJSON_IsString(id) ? id->valuestring : "?", want);
        goto done;
    }
    if (!cJSON_IsObject(ranges) || cJSON_GetArraySize(ranges) < 1) {
        rc = lk_err_set(err, LK_ERR_PARSE, "%s: no ranges", path);
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(ranges);
    c->names = calloc(n, sizeof *c->names);
    c->lo = calloc(n, sizeof *c->lo);
    c->hi = calloc(n, sizeof *c->hi);
    if (!c->names || !c->lo || !c->hi) {
        rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        goto done;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, ranges) {
        const cJSON *a = cJSON_GetArrayItem(r, 0), *b = cJSON_GetArrayItem(r, 1);
        if (!r->string || strlen(r->string) > LK_CNN_LAYER_NAME_MAX || !cJSON_IsArray(r) ||
            cJSON_GetArraySize(r) != 2 || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !isfinite(a->valuedouble) ||
            !isfinite(b->valuedouble) || !(a->valuedouble <= b->valuedouble) || fabs(a->valuedouble) > 1e6 ||
            fabs(b->valuedouble) > 1e6) {
            rc = lk_err_set(err, LK_ERR_PARSE, "%s: range %s is not [min, max] with finite min <= max", path,
                            r->string ? r->string : "?");
            goto done;
        }
        snprintf(c->names[c->n], sizeof c->names[c->n], "%s", r->string);
        c->lo[c->n] = (float)a->valuedouble;
        c->hi[c->n] = (float)b->valuedouble;
        c->n++;
    }
done:
    cJSON_Delete(root);
    if (rc)
        lk__calib_free(c);
    return rc;
}

int lk__calib_save(const struct lk__calib *c, uint64_t model_id, size_t images, const char *source,
                   const char *path, struct lk_err *err)
{
    cJSON *root = cJSON_CreateObject(), *ranges = NULL;
    char id[17];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)model_id);
    /* cJSON_Add* hand the new item to `root`: deleting root frees them all. */
    if (!root || !cJSON_AddStringToObject(root, "format", CAL_FORMAT) ||
        !cJSON_AddNumberToObject(root, "version", CAL_VERSION) || !cJSON_AddStringToObject(root, "model_id", id) ||
        !cJSON_AddStringToObject(root, "method", "min/max over images, fp32 graph") ||
        !cJSON_AddNumberToObject(root, "images", (double)images) ||
        !cJSON_AddStringToObject(root, "source", source ? source : "") ||
        !(ranges = cJSON_AddObjectToObject(root, "ranges"))) {
        cJSON_Delete(root);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->n; i++) {
        const double v[2] = {c->lo[i], c->hi[i]};  /* cJSON prints doubles exactly */
        cJSON *pair = cJSON_CreateDoubleArray(v, 2);
        if (!pair || !cJSON_AddItemToObject(ranges, c->names[i], pair)) {
            cJSON_Delete(pair);
            cJSON_Delete(root);
            return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    /* A dev-time artefact written once by gen_calibration.sh and committed:
     * temp file + rename so a crash never leaves half a file. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return lk_err_set(err, LK_ERR_IO, "cannot write %s", path);
    }
    return LK_OK;
}
