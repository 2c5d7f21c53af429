/*
 * bench/jpeg_encode.h — encode an lk_image as a baseline JPEG in memory, for
 * benches that need shopper-style uploads (re-encoded phone photos, JPEG
 * quality distortions).  Bench-only: the product never encodes JPEGs.
 */
#ifndef LK_BENCH_JPEG_ENCODE_H
#define LK_BENCH_JPEG_ENCODE_H

#include <stddef.h>

#include "lookalike/image.h"

/* Encode `img` (interleaved 8-bit RGB) at libjpeg `quality` (1..100).
 * Returns a malloc'd buffer of *len bytes (caller frees); libjpeg's default
 * error handler exits the process on failure, which is fine in a bench. */
unsigned char *bench_encode_jpeg(const struct lk_image *img, int quality, size_t *len);

#endif
