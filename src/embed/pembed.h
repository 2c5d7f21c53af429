/*
 * src/embed/pembed.h — internals of the embed module shared with its tests
 * (lk__ prefix: not part of the public API).
 */
#ifndef LOOKALIKE_PEMBED_H
#define LOOKALIKE_PEMBED_H

#include "lookalike/embed.h"

/* Borrow the learned mean (lk_embed_cnn_dim() floats) and PCA-whitening
 * projection (lk_embed_cnn_out_dim() x lk_embed_cnn_dim(), row-major; NULL
 * when PCA is off).  Pointers stay valid until the params are freed. */
void lk__embed_params_internals(const struct lk_embed_params *p, const float **mean, const float **proj);

#endif /* LOOKALIKE_PEMBED_H */
