/*
 * src/image/normalize.c — the fixed-size views the embedders need: centre
 * crop, letterbox, and conversion to float tensors.
 *
 * Centre crop resamples only the source window that survives the crop, in a
 * single stb_image_resize pass (stbir_resize_region), instead of resizing the
 * whole image and then cutting: less work and no intermediate buffer.  The
 * window is fractional, so a 4:3 photo cropped to a square is centred to the
 * sub-pixel.
 */
#include <math.h>
#include <string.h>

#include "pimage.h"

int lk_image_center_crop(const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                         struct lk_err *err)
{
    if (!dst || dst == src)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_center_crop: NULL or aliased output image");
    *dst = (struct lk_image){0};
    if (!lk__image_ok(src))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_center_crop: empty source image");
    int rc = lk__check_out_dims(w, h, err);
    if (rc)
        return rc;

    /* Source window with the target aspect ratio, as large as fits. */
    double sw = src->width, sh = src->height;
    double cw = sw, ch = sh;
    if (sw * h > sh * w)
        cw = sh * w / h;    /* source is wider: cut the sides */
    else
        ch = sw * h / w;    /* source is taller: cut top and bottom */
    double x0 = (sw - cw) / 2, y0 = (sh - ch) / 2;

    struct lk_image t;
    rc = lk_image_init(&t, w, h, err);
    if (rc)
        return rc;
    rc = lk__resize_region(src, x0, y0, x0 + cw, y0 + ch, w, h, t.rgb, err);
    if (rc) {
        lk_image_free(&t);
        return rc;
    }
    *dst = t;
    return LK_OK;
}

int lk_image_letterbox(const struct lk_image *src, uint32_t w, uint32_t h, const uint8_t fill[3],
                       struct lk_image *dst, struct lk_err *err)
{
    static const uint8_t white[3] = {255, 255, 255};
    if (!dst || dst == src)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_letterbox: NULL or aliased output image");
    *dst = (struct lk_image){0};
    if (!lk__image_ok(src))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_letterbox: empty source image");
    int rc = lk__check_out_dims(w, h, err);
    if (rc)
        return rc;
    if (!fill)
        fill = white;

    /* Fit inside: the limiting side gets exactly w or h. */
    uint32_t nw, nh;
    if ((uint64_t)src->width * h >= (uint64_t)src->height * w) {
        nw = w;
        nh = (uint32_t)(((uint64_t)src->height * w + src->width / 2) / src->width);
    } else {
        nh = h;
        nw = (uint32_t)(((uint64_t)src->width * h + src->height / 2) / src->height);
    }
    if (nw < 1)
        nw = 1;
    if (nh < 1)
        nh = 1;

    struct lk_image inner, t;
    rc = lk_image_resize(src, nw, nh, &inner, err);
    if (rc)
        return rc;
    rc = lk_image_init(&t, w, h, err);
    if (rc) {
        lk_image_free(&inner);
        return rc;
    }
    for (size_t i = 0; i < (size_t)w * h; i++)
        memcpy(t.rgb + 3 * i, fill, 3);
    uint32_t ox = (w - nw) / 2, oy = (h - nh) / 2;
    for (uint32_t y = 0; y < nh; y++)
        memcpy(t.rgb + ((size_t)(oy + y) * w + ox) * 3, inner.rgb + (size_t)y * nw * 3, (size_t)nw * 3);
    lk_image_free(&inner);
    *dst = t;
    return LK_OK;
}

int lk_image_to_float(const struct lk_image *img, enum lk_layout layout, const float mean[3],
                      const float scale[3], float *out, struct lk_err *err)
{
    static const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    if (!lk__image_ok(img) || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_to_float: empty image or NULL output");
    if (layout != LK_LAYOUT_HWC && layout != LK_LAYOUT_CHW)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_to_float: unknown layout %d", (int)layout);
    if (!mean)
        mean = zero;
    if (!scale)
        scale = one;
    for (int c = 0; c < 3; c++)
        if (!isfinite(mean[c]) || !isfinite(scale[c]))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_to_float: non-finite mean/scale");

    /* A 256-entry table per channel turns the per-sample subtract+multiply
     * into one load. */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v - mean[c]) * scale[c];

    size_t n = (size_t)img->width * img->height;
    const uint8_t *p = img->rgb;
    if (layout == LK_LAYOUT_HWC) {
        for (size_t i = 0; i < n; i++) {
            out[3 * i] = lut[0][p[3 * i]];
            out[3 * i + 1] = lut[1][p[3 * i + 1]];
            out[3 * i + 2] = lut[2][p[3 * i + 2]];
        }
    } else {
        float *r = out, *g = out + n, *b = out + 2 * n;
        for (size_t i = 0; i < n; i++) {
            r[i] = lut[0][p[3 * i]];
            g[i] = lut[1][p[3 * i + 1]];
            b[i] = lut[2][p[3 * i + 2]];
        }
    }
    return LK_OK;
}
