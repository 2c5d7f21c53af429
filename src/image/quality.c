/*
 * src/image/quality.c — image quality signals for merchandisers: resolution,
 * blur, contrast and whether the background is a plain studio background.
 *
 * Decisions:
 *  - Everything but "too small" is measured on a working copy whose long side
 *    is at most LK_QUALITY_WORK_SIDE (512) pixels.  The variance of the
 *    Laplacian grows with resolution-dependent detail, so measuring at one
 *    scale is what lets one threshold serve a 12 Mpx phone photo and a
 *    600 px catalog image; it is also cheap (<= 262k pixels).
 *  - Blur: variance of the 4-neighbour Laplacian [0 1 0; 1 -4 1; 0 1 0] over
 *    the interior of the grey image (Pech-Pacheco et al., ICPR 2000; the
 *    usual "variance of Laplacian" focus measure).  Grey is Rec. 601 luma.
 *  - Contrast: standard deviation of grey (RMS contrast), 0..~128.
 *  - Background: the border strip's per-channel median is the background
 *    estimate and border_uniformity the fraction of strip pixels within
 *    LK_QUALITY_BORDER_TOL of it (lk_image_background).  The median is robust
 *    to a product touching one edge; the tolerance absorbs JPEG noise and soft
 *    studio gradients.
 *  Thresholds and their rationale are documented in lookalike/image.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pimage.h"

/* Border strip width: 4 % of the short side, at least 1 pixel. */
static uint32_t border_width(const struct lk_image *img)
{
    uint32_t s = img->width < img->height ? img->width : img->height;
    uint32_t b = (s * 4 + 50) / 100;
    if (b < 1)
        b = 1;
    if (b > s / 2 && s >= 2)
        b = s / 2;
    return b;
}

int lk_image_background(const struct lk_image *img, uint8_t rgb[3], float *uniformity,
                        struct lk_err *err)
{
    if (!lk__image_ok(img) || !rgb)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_background: empty image or NULL output");
    uint32_t w = img->width, h = img->height, b = border_width(img);

    /* Per-channel median via 256-bin histograms. */
    uint32_t hist[3][256];
    memset(hist, 0, sizeof hist);
    uint64_t n = 0;
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *row = img->rgb + (size_t)y * w * 3;
        int full = y < b || y >= h - b;
        for (uint32_t x = 0; x < w; x++) {
            if (!full && x >= b && x < w - b) {
                x = w - b - 1;   /* skip the interior of the row */
                continue;
            }
            hist[0][row[3 * x]]++;
            hist[1][row[3 * x + 1]]++;
            hist[2][row[3 * x + 2]]++;
            n++;
        }
    }
    for (int c = 0; c < 3; c++) {
        uint64_t acc = 0;
        int v = 0;
        for (; v < 255; v++) {
            acc += hist[c][v];
            if (2 * acc >= n)
                break;
        }
        rgb[c] = (uint8_t)v;
    }

    if (uniformity) {
        uint64_t match = 0;
        for (uint32_t y = 0; y < h; y++) {
            const uint8_t *row = img->rgb + (size_t)y * w * 3;
            int full = y < b || y >= h - b;
            for (uint32_t x = 0; x < w; x++) {
                if (!full && x >= b && x < w - b) {
                    x = w - b - 1;
                    continue;
                }
                if (abs(row[3 * x] - rgb[0]) <= LK_QUALITY_BORDER_TOL &&
                    abs(row[3 * x + 1] - rgb[1]) <= LK_QUALITY_BORDER_TOL &&
                    abs(row[3 * x + 2] - rgb[2]) <= LK_QUALITY_BORDER_TOL)
                    match++;
            }
        }
        *uniformity = n ? (float)((double)match / (double)n) : 0.0f;
    }
    return LK_OK;
}

/* Blur (variance of Laplacian) and contrast (grey std) of `img`. */
static int blur_contrast(const struct lk_image *img, float *blur, float *contrast, struct lk_err *err)
{
    uint32_t w = img->width, h = img->height;
    size_t n = (size_t)w * h;
    float *g = malloc(n * sizeof *g);
    if (!g)
        return lk_err_set(err, LK_ERR_NOMEM, "cannot allocate grey image");
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = img->rgb + 3 * i;
        float v = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        g[i] = v;
        sum += v;
        sum2 += (double)v * v;
    }
    double mean = sum / (double)n;
    double var = sum2 / (double)n - mean * mean;
    *contrast = (float)sqrt(var > 0 ? var : 0);

    *blur = 0;
    if (w >= 3 && h >= 3) {
        double ls = 0, ls2 = 0;
        size_t m = 0;
        for (uint32_t y = 1; y + 1 < h; y++) {
            const float *r = g + (size_t)y * w, *up = r - w, *dn = r + w;
            for (uint32_t x = 1; x + 1 < w; x++) {
                double l = (double)r[x - 1] + r[x + 1] + up[x] + dn[x] - 4.0 * r[x];
                ls += l;
                ls2 += l * l;
                m++;
            }
        }
        double lm = ls / (double)m;
        double lv = ls2 / (double)m - lm * lm;
        *blur = (float)(lv > 0 ? lv : 0);
    }
    free(g);
    return LK_OK;
}

int lk_image_quality_orig(const struct lk_image *img, uint32_t orig_width, uint32_t orig_height,
                          struct lk_image_quality *q, struct lk_err *err)
{
    if (!lk__image_ok(img) || !q)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_quality: empty image or NULL output");

    /* Working copy: long side <= LK_QUALITY_WORK_SIDE, never upscaled. */
    struct lk_image small = {0};
    const struct lk_image *work = img;
    uint32_t longside = img->width > img->height ? img->width : img->height;
    if (longside > LK_QUALITY_WORK_SIDE) {
        uint32_t ww = (uint32_t)(((uint64_t)img->width * LK_QUALITY_WORK_SIDE + longside / 2) / longside);
        uint32_t wh = (uint32_t)(((uint64_t)img->height * LK_QUALITY_WORK_SIDE + longside / 2) / longside);
        int rc = lk_image_resize(img, ww ? ww : 1, wh ? wh : 1, &small, err);
        if (rc)
            return rc;
        work = &small;
    }

    struct lk_image_quality r = {0};
    r.width = orig_width ? orig_width : img->width;
    r.height = orig_height ? orig_height : img->height;
    int rc = blur_contrast(work, &r.blur, &r.contrast, err);
    if (rc == LK_OK)
        rc = lk_image_background(work, r.background, &r.border_uniformity, err);
    lk_image_free(&small);
    if (rc)
        return rc;

    r.plain_background = r.border_uniformity >= LK_QUALITY_PLAIN_MIN;
    if ((r.width < r.height ? r.width : r.height) < LK_QUALITY_MIN_SIDE)
        r.weak_flags |= LK_WEAK_TOO_SMALL;
    if (r.blur < LK_QUALITY_BLUR_MIN)
        r.weak_flags |= LK_WEAK_BLURRY;
    if (r.contrast < LK_QUALITY_CONTRAST_MIN)
        r.weak_flags |= LK_WEAK_LOW_CONTRAST;
    if (r.border_uniformity < LK_QUALITY_CLUTTER_MAX)
        r.weak_flags |= LK_WEAK_CLUTTERED;
    *q = r;
    return LK_OK;
}

int lk_image_quality(const struct lk_image *img, struct lk_image_quality *q, struct lk_err *err)
{
    return lk_image_quality_orig(img, 0, 0, q, err);
}

char *lk_weak_flags_str(unsigned flags, char *buf, size_t size)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        {LK_WEAK_TOO_SMALL, "too-small"},
        {LK_WEAK_BLURRY, "blurry"},
        {LK_WEAK_LOW_CONTRAST, "low-contrast"},
        {LK_WEAK_CLUTTERED, "cluttered"},
    };
    if (!buf || size == 0)
        return buf;
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(flags & names[i].bit))
            continue;
        int k = snprintf(buf + used, size - used, "%s%s", used ? "," : "", names[i].name);
        if (k < 0 || (size_t)k >= size - used)
            return buf;     /* truncated but terminated */
        used += (size_t)k;
    }
    if (used == 0)
        snprintf(buf, size, "none");
    return buf;
}
