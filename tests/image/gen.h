/*
 * tests/image/gen.h — test-only generator of images and encoded files.
 *
 * The test corpus is made at run time with libjpeg and libpng (the encoders
 * of the same libraries the decoders use), so every variant the decoders
 * must handle is covered without committing binary fixtures and without
 * ../shared.  Only tests link this; src/ never includes jpeglib.h or png.h
 * outside its decoder files.
 */
#ifndef LK_TEST_GEN_H
#define LK_TEST_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/image.h"

/* ---- Rasters (all abort() on allocation failure: tests only) ---- */

/* New w x h image filled with one colour. */
struct lk_image gen_solid(uint32_t w, uint32_t h, uint8_t r, uint8_t g, uint8_t b);
/* Fill the rectangle [x0, x1) x [y0, y1) (clipped). */
void gen_rect(struct lk_image *img, uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, uint8_t r,
              uint8_t g, uint8_t b);
/* Smooth colour gradient (R along x, G along y, B diagonal). */
struct lk_image gen_gradient(uint32_t w, uint32_t h);
/* Add uniform noise in [-amp, amp] to every sample (deterministic seed). */
void gen_noise(struct lk_image *img, unsigned seed, int amp);
/* A synthetic "product": a shaded object of colour rgb (an ellipse body with
 * a sole-like band and some texture) on a light studio background. */
struct lk_image gen_product(uint32_t w, uint32_t h, const uint8_t rgb[3], unsigned seed);
/* Pixel accessor. */
static inline const uint8_t *gen_px(const struct lk_image *img, uint32_t x, uint32_t y)
{
    return img->rgb + ((size_t)y * img->width + x) * 3;
}
/* Mean absolute difference per sample between equal-size images (-1 if sizes differ). */
double gen_mad(const struct lk_image *a, const struct lk_image *b);
/* Copy flipped horizontally. */
struct lk_image gen_flip_h(const struct lk_image *img);
/* Copy with every sample multiplied by f (clamped to 255). */
struct lk_image gen_scale_brightness(const struct lk_image *img, double f);
/* Copy of the window [x0, x0 + w) x [y0, y0 + h). */
struct lk_image gen_crop(const struct lk_image *img, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h);

/* ---- JPEG ---- */

enum gen_space { GEN_RGB, GEN_GREY, GEN_CMYK, GEN_YCCK };

struct gen_jpeg_opts {
    int quality;            /* 1..100, 0 = 90 */
    int progressive;
    enum gen_space space;
    int plain_cmyk;         /* CMYK without Adobe marker, samples = ink (not inverted) */
    int exif_orientation;   /* 0 = no EXIF segment; else value written (may be invalid, e.g. 9) */
    int exif_big_endian;    /* "MM" TIFF header instead of "II" */
};

/* Encode img; *buf is malloc'd (free()). */
void gen_jpeg(const struct lk_image *img, const struct gen_jpeg_opts *o, uint8_t **buf, size_t *len);

/* Insert an APP1 segment with arbitrary payload right after SOI. */
void gen_jpeg_insert_app1(uint8_t **buf, size_t *len, const uint8_t *payload, size_t n);

/* ---- PNG ---- */

/* Colour types as in the PNG spec: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
struct gen_png_opts {
    int color_type;
    int bit_depth;          /* 1, 2, 4, 8, 16 as the colour type allows */
    int interlace;          /* Adam7 */
    const uint8_t *alpha;   /* optional w*h alpha plane (types 4, 6; palette -> tRNS) */
};

/* Encode img (grey types use the R channel); *buf is malloc'd. */
void gen_png(const struct lk_image *img, const struct gen_png_opts *o, uint8_t **buf, size_t *len);

/* A minimal valid PNG (signature + IHDR + one IDAT + IEND, correct CRCs)
 * declaring w x h 8-bit RGB but holding only a few bytes of data. */
void gen_png_header_only(uint32_t w, uint32_t h, uint8_t **buf, size_t *len);

/* Write bytes to a fresh temporary file; returns a malloc'd path (unlink + free it). */
char *gen_tempfile(const void *data, size_t len);

#endif /* LK_TEST_GEN_H */
