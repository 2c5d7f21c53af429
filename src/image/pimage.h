/*
 * src/image/pimage.h — internals shared between the files of src/image.
 *
 * Each third-party library sits behind one file: decode_jpeg.c is the only
 * file that includes jpeglib.h, decode_png.c the only one that includes
 * png.h, resize.c the only one that includes stb_image_resize.h.  decode.c
 * dispatches between the decoders after sniffing the bytes.
 */
#ifndef LK_PIMAGE_H
#define LK_PIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/image.h"

/* Limits with defaults filled in (no zero fields). */
struct lk__limits {
    size_t max_bytes;
    uint32_t max_width, max_height;
    uint64_t max_pixels;
    uint32_t min_side_hint;
};

/* Check a header-declared size against the limits and the hard ceilings.
 * Returns LK_OK or LK_ERR_DIMENSIONS (message names the format). */
int lk__check_dims(const char *fmt, uint64_t w, uint64_t h, const struct lk__limits *lim,
                   struct lk_err *err);

/* Decoders: `data`/`len` already sniffed as their format and within
 * max_bytes; `out` and `info` are non-NULL and zeroed by the caller.  On
 * failure they free whatever they allocated and leave *out as {0}. */
int lk__decode_jpeg(const uint8_t *data, size_t len, const struct lk__limits *lim,
                    struct lk_image *out, struct lk_image_info *info, struct lk_err *err);
int lk__decode_png(const uint8_t *data, size_t len, const struct lk__limits *lim,
                   struct lk_image *out, struct lk_image_info *info, struct lk_err *err);

/* Resample the source window [x0, x1) x [y0, y1) (source pixels, fractional)
 * of `src` to exactly w x h into the caller-allocated `dst_rgb` (w*h*3 bytes).
 * sRGB-aware, as lk_image_resize().  Returns LK_OK or LK_ERR_NOMEM. */
int lk__resize_region(const struct lk_image *src, double x0, double y0, double x1, double y1,
                      uint32_t w, uint32_t h, uint8_t *dst_rgb, struct lk_err *err);

/* Validate a w x h output size (>= 1, within LK_IMAGE_MAX_*). */
int lk__check_out_dims(uint32_t w, uint32_t h, struct lk_err *err);

/* Non-empty, non-NULL image with consistent fields. */
static inline int lk__image_ok(const struct lk_image *img)
{
    return img && img->rgb && img->width > 0 && img->height > 0;
}

#endif /* LK_PIMAGE_H */
