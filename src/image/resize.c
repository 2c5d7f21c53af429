/*
 * src/image/resize.c — resampling with stb_image_resize (Debian libstb-dev;
 * the implementation comes from Debian's libstb.so, so no
 * STB_IMAGE_RESIZE_IMPLEMENTATION here).  The only file that includes it.
 *
 * We use the sRGB-aware entry points: samples are converted to linear light
 * before filtering and back afterwards.  Averaging gamma-encoded values
 * darkens fine detail (a black/white checkerboard would become 128 instead of
 * the 188 a camera sees), which shifts colour histograms and CNN inputs.
 * stb picks Mitchell for downsampling and Catmull-Rom for upsampling; edges
 * are clamped.  lk_image_resize_area() asks for the box filter on shrinking
 * axes instead (area averaging: cheaper, and what a histogram or a network
 * input wants).  Debian's stb (0.97) asserts inside its coefficient
 * normalisation for some ratios with the TRIANGLE filter, so that filter is
 * never used.  BOX was swept (one row: every source width 1..3000, then
 * every 37th up to 20000) for every output width 1..160 and 224, the
 * sizes the analysis path produces, without an assertion; any other size
 * is only ever resized with the default filters.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_resize.h>

#include "pimage.h"

int lk__resize_region(const struct lk_image *src, double x0, double y0, double x1, double y1,
                      uint32_t w, uint32_t h, uint8_t *dst_rgb, struct lk_err *err)
{
    /* stb takes the region as fractions of the source size. */
    float s0 = (float)(x0 / src->width), s1 = (float)(x1 / src->width);
    float t0 = (float)(y0 / src->height), t1 = (float)(y1 / src->height);
    int ok = stbir_resize_region(src->rgb, (int)src->width, (int)src->height, 0,
                                 dst_rgb, (int)w, (int)h, 0,
                                 STBIR_TYPE_UINT8, 3, STBIR_ALPHA_CHANNEL_NONE, 0,
                                 STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                                 STBIR_FILTER_DEFAULT, STBIR_FILTER_DEFAULT,
                                 STBIR_COLORSPACE_SRGB, NULL, s0, t0, s1, t1);
    if (!ok)
        return lk_err_set(err, LK_ERR_NOMEM, "stb_image_resize failed (%ux%u -> %ux%u)", src->width,
                          src->height, w, h);
    return LK_OK;
}

/* Resize with stb, one filter per axis (STBIR_FILTER_DEFAULT: Mitchell when
 * shrinking, Catmull-Rom when growing), sRGB-aware, edges clamped. */
static int resize_with(const char *fn, const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                       bool area, struct lk_err *err)
{
    if (!dst || dst == src)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: NULL or aliased output image", fn);
    *dst = (struct lk_image){0};
    if (!lk__image_ok(src))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: empty source image", fn);
    int rc = lk__check_out_dims(w, h, err);
    if (rc)
        return rc;

    struct lk_image t;
    rc = lk_image_init(&t, w, h, err);
    if (rc)
        return rc;
    if (w == src->width && h == src->height) {
        memcpy(t.rgb, src->rgb, (size_t)w * h * 3);
    } else {
        stbir_filter fh = STBIR_FILTER_DEFAULT, fv = STBIR_FILTER_DEFAULT;
        if (area) {
            fh = w < src->width ? STBIR_FILTER_BOX : STBIR_FILTER_CATMULLROM;
            fv = h < src->height ? STBIR_FILTER_BOX : STBIR_FILTER_CATMULLROM;
        }
        int ok = stbir_resize(src->rgb, (int)src->width, (int)src->height, 0, t.rgb, (int)w, (int)h, 0,
                              STBIR_TYPE_UINT8, 3, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                              STBIR_EDGE_CLAMP, fh, fv, STBIR_COLORSPACE_SRGB, NULL);
        if (!ok) {
            lk_image_free(&t);
            return lk_err_set(err, LK_ERR_NOMEM, "stb_image_resize failed (%ux%u -> %ux%u)", src->width,
                              src->height, w, h);
        }
    }
    *dst = t;
    return LK_OK;
}

/* stbir_resize_uint8_srgb is the default-filter call of resize_with. */
int lk_image_resize(const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                    struct lk_err *err)
{
    return resize_with("lk_image_resize", src, w, h, dst, false, err);
}

int lk_image_resize_area(const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                         struct lk_err *err)
{
    return resize_with("lk_image_resize_area", src, w, h, dst, true, err);
}
