/*
 * test_alloc_image.c — allocation-failure injection in the image pipeline:
 * decode (JPEG variants and PNG variants, shrink-on-load, EXIF rotation),
 * resize / centre-crop / letterbox, quality signals and the colour
 * embedding.  Every allocation our code makes is failed in turn (once, then
 * from the n-th on); each call must return LK_ERR_NOMEM with a message (or
 * succeed), never crash, and leak nothing (LeakSanitizer in the sanitizer
 * build).  libjpeg's and libpng's own allocations are inside shared
 * libraries and are not failed (see alloc_fail.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_fail.h"
#include "gen.h"
#include "lookalike/colour.h"
#include "lookalike/image.h"

#define MAXN 2000

struct enc {
    uint8_t *buf;
    size_t len;
    uint32_t hint;
};

static int op_decode(void *ctx, struct lk_err *err)
{
    const struct enc *e = ctx;
    struct lk_decode_opts o;
    lk_decode_opts_default(&o);
    o.min_side_hint = e->hint;
    struct lk_image img;
    int rc = lk_image_decode(e->buf, e->len, &o, &img, NULL, err);
    if (rc == LK_OK)
        lk_image_free(&img);
    return rc;
}

/* decode + centre crop 224 + colour embedding + quality: what indexing does. */
static int op_pipeline(void *ctx, struct lk_err *err)
{
    const struct enc *e = ctx;
    struct lk_decode_opts o;
    lk_decode_opts_default(&o);
    o.min_side_hint = 224;
    struct lk_image img, crop = {0};
    int rc = lk_image_decode(e->buf, e->len, &o, &img, NULL, err);
    if (rc != LK_OK)
        return rc;
    float emb[LK_COLOUR_DIM];
    struct lk_image_quality q;
    if ((rc = lk_image_center_crop(&img, 224, 224, &crop, err)) == LK_OK &&
        (rc = lk_colour_embed(&img, emb, err)) == LK_OK)
        rc = lk_image_quality(&img, &q, err);
    lk_image_free(&crop);
    lk_image_free(&img);
    return rc;
}

static struct enc jpeg_of(uint32_t w, uint32_t h, const struct gen_jpeg_opts *o, uint32_t hint)
{
    const uint8_t rgb[3] = {180, 60, 30};
    struct lk_image img = gen_product(w, h, rgb, 3);
    struct enc e = {.hint = hint};
    gen_jpeg(&img, o, &e.buf, &e.len);
    lk_image_free(&img);
    return e;
}

static struct enc png_of(uint32_t w, uint32_t h, const struct gen_png_opts *o)
{
    const uint8_t rgb[3] = {30, 60, 180};
    struct lk_image img = gen_solid(w, h, 250, 250, 250);
    gen_rect(&img, w / 4, h / 4, w / 2, h / 2, rgb[0], rgb[1], rgb[2]);
    struct enc e = {0};
    gen_png(&img, o, &e.buf, &e.len);
    lk_image_free(&img);
    return e;
}

static void sweep_both(const char *what, af_op op, struct enc *e)
{
    unsigned long n = af_sweep(what, op, e, MAXN, false, 0);
    cr_log_info("%s: %lu allocations, each failed in turn", what, n);
    af_sweep(what, op, e, MAXN, true, 0);
    free(e->buf);
}

Test(alloc_image, jpeg_baseline)
{
    struct gen_jpeg_opts o = {.quality = 85};
    struct enc e = jpeg_of(300, 200, &o, 0);
    sweep_both("jpeg baseline", op_decode, &e);
}

Test(alloc_image, jpeg_progressive_scaled)
{
    struct gen_jpeg_opts o = {.quality = 85, .progressive = 1};
    struct enc e = jpeg_of(640, 480, &o, 100);
    sweep_both("jpeg progressive 1/4", op_decode, &e);
}

Test(alloc_image, jpeg_exif_rotated)
{
    struct gen_jpeg_opts o = {.quality = 85, .exif_orientation = 6};
    struct enc e = jpeg_of(120, 80, &o, 0);
    sweep_both("jpeg exif 6", op_decode, &e);
}

Test(alloc_image, jpeg_cmyk)
{
    struct gen_jpeg_opts o = {.quality = 85, .space = GEN_CMYK};
    struct enc e = jpeg_of(64, 48, &o, 0);
    sweep_both("jpeg cmyk", op_decode, &e);
}

Test(alloc_image, png_rgba_interlaced)
{
    uint8_t alpha[96 * 64];
    for (size_t i = 0; i < sizeof alpha; i++)
        alpha[i] = (uint8_t)i;
    struct gen_png_opts o = {.color_type = 6, .bit_depth = 8, .interlace = 1, .alpha = alpha};
    struct enc e = png_of(96, 64, &o);
    sweep_both("png rgba adam7", op_decode, &e);
}

Test(alloc_image, png_palette_and_16bit)
{
    struct gen_png_opts o = {.color_type = 3, .bit_depth = 2};
    struct enc e = png_of(50, 30, &o);
    sweep_both("png palette", op_decode, &e);
    struct gen_png_opts o16 = {.color_type = 2, .bit_depth = 16};
    e = png_of(50, 30, &o16);
    sweep_both("png 16-bit", op_decode, &e);
}

Test(alloc_image, pipeline_decode_crop_colour_quality)
{
    struct gen_jpeg_opts o = {.quality = 90};
    struct enc e = jpeg_of(900, 700, &o, 0);
    sweep_both("decode+crop+colour+quality", op_pipeline, &e);
}

static int op_resize_family(void *ctx, struct lk_err *err)
{
    const struct lk_image *src = ctx;
    struct lk_image a = {0}, b = {0}, c = {0};
    int rc = lk_image_resize(src, 37, 301, &a, err);
    if (rc == LK_OK)
        rc = lk_image_letterbox(src, 224, 224, NULL, &b, err);
    if (rc == LK_OK)
        rc = lk_image_center_crop(src, 100, 50, &c, err);
    lk_image_free(&a);
    lk_image_free(&b);
    lk_image_free(&c);
    return rc;
}

Test(alloc_image, resize_letterbox_crop)
{
    struct lk_image src = gen_gradient(333, 222);
    af_sweep("resize family", op_resize_family, &src, MAXN, false, 0);
    af_sweep("resize family", op_resize_family, &src, MAXN, true, 0);
    lk_image_free(&src);
}

static int op_load_file(void *ctx, struct lk_err *err)
{
    struct lk_image img;
    int rc = lk_image_load_file(ctx, NULL, &img, NULL, err);
    if (rc == LK_OK)
        lk_image_free(&img);
    return rc;
}

Test(alloc_image, load_file)
{
    struct gen_jpeg_opts o = {.quality = 80};
    struct enc e = jpeg_of(64, 64, &o, 0);
    char *path = gen_tempfile(e.buf, e.len);
    af_sweep("load file", op_load_file, path, MAXN, false, 0);
    unlink(path);
    free(path);
    free(e.buf);
}
