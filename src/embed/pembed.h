/*
 * src/embed/pembed.h — internals of the embed module shared with its tests
 * (lk__ prefix: not part of the public API).
 */
#ifndef LOOKALIKE_PEMBED_H
#define LOOKALIKE_PEMBED_H

#include <stdbool.h>
#include <stdint.h>

#include "lookalike/embed.h"

/* Borrow the learned mean (lk_embed_cnn_dim() floats) and PCA-whitening
 * projection (lk_embed_cnn_out_dim() x lk_embed_cnn_dim(), row-major; NULL
 * when PCA is off).  Pointers stay valid until the params are freed. */
void lk__embed_params_internals(const struct lk_embed_params *p, const float **mean, const float **proj);

/* ==== Int8 quantisation (quantize.c) ==== */

/* Affine int8 parameters for a tensor whose values lie in [lo, hi] (widened
 * to contain 0): real = (q - zero_point) * scale, q in [-128, 127]. */
void lk__quant_activation(float lo, float hi, float *scale, int32_t *zero_point);

/* Per-channel symmetric int8 weights: for each of `n_channels` channels of
 * `per_channel` elements, scale[c] = max|w| / 127 (1 for an all-zero
 * channel) and q = round(w / scale[c]) in [-127, 127].  Layout: channel
 * outermost (OHWI filters) or, with channel_last, innermost (depthwise
 * [1][kh][kw][C] filters). */
void lk__quant_weights(const float *w, size_t n_channels, size_t per_channel, bool channel_last, int8_t *q,
                       float *scale);

/* int32 biases with bias_scale[c] = input_scale * weight_scale[c].
 * Returns 0, or -1 when a bias does not fit in int32 (or a scale is 0). */
int lk__quant_bias(const float *b, size_t n, float input_scale, const float *weight_scale, int32_t *q,
                   float *bias_scale);

/* Activation ranges by Keras layer name, as recorded by a calibration run. */
struct lk__calib {
    size_t n;
    char (*names)[LK_CNN_LAYER_NAME_MAX + 1];
    float *lo, *hi;
};

/* Read and validate calibration.json for the model whose identity is
 * `model_id` (format in quantize.c).  Errors: LK_ERR_IO (missing or
 * unreadable), LK_ERR_PARSE (not JSON, wrong format or version, a range that
 * is not a finite [min <= max] pair), LK_ERR_MODEL (made for another model),
 * LK_ERR_NOMEM.  Free with lk__calib_free(). */
int lk__calib_load(const char *path, uint64_t model_id, struct lk__calib *c, struct lk_err *err);

/* Write `c` to `path` (temp file + rename).  Errors: LK_ERR_IO, LK_ERR_NOMEM. */
int lk__calib_save(const struct lk__calib *c, uint64_t model_id, size_t images, const char *source,
                   const char *path, struct lk_err *err);

/* Range of layer `name`; false if the file has none. */
bool lk__calib_find(const struct lk__calib *c, const char *name, float *lo, float *hi);

/* NULL-safe; leaves *c empty. */
void lk__calib_free(struct lk__calib *c);

#endif /* LOOKALIKE_PEMBED_H */
