/*
 * src/embed/histogram.c — the colour-histogram embedding (lk_colour_embed).
 *
 * Method, bin layout and sources are documented in lookalike/colour.h.  The
 * implementation notes:
 *  - The image is reduced to <= LK_COLOUR_WORK_SIDE on its long side first;
 *    a 160 x 120 working copy has 19 200 pixels, each touching 8 chromatic
 *    plus 2 grey bins, so the histogram itself costs well under a millisecond.
 *  - Accumulation is in double so the result does not depend on the pixel
 *    count's magnitude; the final vector is float.
 *  - Flip invariance is exact up to summation order: every per-pixel weight
 *    (centre Gaussian, background distance) is symmetric in x and y, and
 *    stb_image_resize's filters are symmetric.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookalike/colour.h"

/* Chroma (max - min, 0..1) below LO is all grey, above HI all chromatic. */
#define CHROMA_LO 0.05
#define CHROMA_HI 0.15
/* Gaussian centre weight, sigma as a fraction of the half-extent. */
#define CENTRE_SIGMA 0.6
/* Background exclusion: used when this fraction of the border matches. */
#define BG_UNIFORM_MIN 0.80f
/* ...and kept only if at least this fraction of the centre weight remains. */
#define BG_KEEP_MIN 0.05

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* Linear soft assignment on a non-circular axis with `n` bins centred on
 * (i + 0.5) / n: *lo gets bin index, *f the weight of bin lo + 1. */
static void soft_axis(double t, int n, int *lo, double *f)
{
    double p = t * n - 0.5;
    if (p <= 0) {
        *lo = 0;
        *f = 0;
    } else if (p >= n - 1) {
        *lo = n - 2;
        *f = 1;
    } else {
        *lo = (int)p;
        *f = p - *lo;
    }
}

static void accumulate(double *hist, const uint8_t *px, double w)
{
    int r = px[0], g = px[1], b = px[2];
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    double v = mx / 255.0;
    double c = (mx - mn) / 255.0;
    double wc = w * clamp01((c - CHROMA_LO) / (CHROMA_HI - CHROMA_LO));
    double wg = w - wc;

    if (wg > 0) {
        int g0;
        double f;
        soft_axis(v, LK_COLOUR_GREY_BINS, &g0, &f);
        hist[LK_COLOUR_CHROMA_BINS + g0] += wg * (1 - f);
        hist[LK_COLOUR_CHROMA_BINS + g0 + 1] += wg * f;
    }
    if (wc > 0) {
        /* HSV hue in [0, 6) sextants; mx > mn here because c > CHROMA_LO. */
        double d = mx - mn, hue;
        if (mx == r)
            hue = (g - b) / d;
        else if (mx == g)
            hue = 2 + (b - r) / d;
        else
            hue = 4 + (r - g) / d;
        if (hue < 0)
            hue += 6;
        double s = d / mx;

        /* Circular hue axis: bin h centred on (h + 0.5) / 16 of the circle. */
        double hp = hue / 6 * LK_COLOUR_HUE_BINS - 0.5;
        double hfl = floor(hp);
        double fh = hp - hfl;
        int h0 = ((int)hfl % LK_COLOUR_HUE_BINS + LK_COLOUR_HUE_BINS) % LK_COLOUR_HUE_BINS;
        int h1 = (h0 + 1) % LK_COLOUR_HUE_BINS;
        int s0, v0;
        double fs, fv;
        soft_axis(s, LK_COLOUR_SAT_BINS, &s0, &fs);
        soft_axis(v, LK_COLOUR_VAL_BINS, &v0, &fv);

        const int hs[2] = {h0, h1};
        const double hw[2] = {1 - fh, fh}, sw[2] = {1 - fs, fs}, vw[2] = {1 - fv, fv};
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                for (int k = 0; k < 2; k++)
                    hist[(hs[i] * LK_COLOUR_SAT_BINS + s0 + j) * LK_COLOUR_VAL_BINS + v0 + k] +=
                        wc * hw[i] * sw[j] * vw[k];
    }
}

int lk_colour_embed(const struct lk_image *img, float *out, struct lk_err *err)
{
    if (!img || !img->rgb || img->width == 0 || img->height == 0 || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_colour_embed: empty image or NULL output");

    /* Working copy (never upscaled). */
    struct lk_image small = {0};
    const struct lk_image *work = img;
    uint32_t longside = img->width > img->height ? img->width : img->height;
    if (longside > LK_COLOUR_WORK_SIDE) {
        uint32_t w = (uint32_t)(((uint64_t)img->width * LK_COLOUR_WORK_SIDE + longside / 2) / longside);
        uint32_t h = (uint32_t)(((uint64_t)img->height * LK_COLOUR_WORK_SIDE + longside / 2) / longside);
        int rc = lk_image_resize_area(img, w ? w : 1, h ? h : 1, &small, err);
        if (rc)
            return rc;
        work = &small;
    }
    const uint32_t W = work->width, H = work->height;

    uint8_t bg[3];
    float uniformity = 0;
    int rc = lk_image_background(work, bg, &uniformity, err);
    if (rc) {
        lk_image_free(&small);
        return rc;
    }

    /* Per-pixel weight = centre Gaussian x background keep factor.  Pass 1
     * decides whether background exclusion leaves enough of the image. */
    int exclude = uniformity >= BG_UNIFORM_MIN;
    const double tol = LK_QUALITY_BORDER_TOL;
    const double inv2s2 = 1.0 / (2 * CENTRE_SIGMA * CENTRE_SIGMA);
    /* The centre Gaussian is separable: exp(-(vx^2 + vy^2) k) =
     * exp(-vx^2 k) * exp(-vy^2 k), so one table per axis replaces an exp()
     * per pixel and pass (W, H <= LK_COLOUR_WORK_SIDE here). */
    double gx[LK_COLOUR_WORK_SIDE], gy[LK_COLOUR_WORK_SIDE];
    for (uint32_t x = 0; x < W; x++) {
        double vx = (2.0 * x + 1) / W - 1;
        gx[x] = exp(-vx * vx * inv2s2);
    }
    for (uint32_t y = 0; y < H; y++) {
        double vy = (2.0 * y + 1) / H - 1;
        gy[y] = exp(-vy * vy * inv2s2);
    }
    if (exclude) {
        double total = 0, kept = 0;
        for (uint32_t y = 0; y < H; y++) {
            for (uint32_t x = 0; x < W; x++) {
                double wcen = gx[x] * gy[y];
                const uint8_t *p = work->rgb + ((size_t)y * W + x) * 3;
                int d = abs(p[0] - bg[0]);
                int d1 = abs(p[1] - bg[1]), d2 = abs(p[2] - bg[2]);
                if (d1 > d) d = d1;
                if (d2 > d) d = d2;
                total += wcen;
                kept += wcen * clamp01((d - tol) / tol);
            }
        }
        if (kept < BG_KEEP_MIN * total)
            exclude = 0;    /* product is the background's colour: keep everything */
    }

    double hist[LK_COLOUR_DIM];
    memset(hist, 0, sizeof hist);
    for (uint32_t y = 0; y < H; y++) {
        for (uint32_t x = 0; x < W; x++) {
            double w = gx[x] * gy[y];
            const uint8_t *p = work->rgb + ((size_t)y * W + x) * 3;
            if (exclude) {
                int d = abs(p[0] - bg[0]);
                int d1 = abs(p[1] - bg[1]), d2 = abs(p[2] - bg[2]);
                if (d1 > d) d = d1;
                if (d2 > d) d = d2;
                w *= clamp01((d - tol) / tol);
            }
            if (w > 0)
                accumulate(hist, p, w);
        }
    }
    lk_image_free(&small);

    /* Hellinger: L1-normalise, square-root, L2-normalise (the last step only
     * removes rounding; sum(sqrt(p)^2) = sum(p) = 1). */
    double sum = 0;
    for (int i = 0; i < LK_COLOUR_DIM; i++)
        sum += hist[i];
    if (!(sum > 0))
        return lk_err_set(err, LK_ERR_INTERNAL, "colour histogram is empty");
    double norm2 = 0;
    for (int i = 0; i < LK_COLOUR_DIM; i++) {
        hist[i] = sqrt(hist[i] / sum);
        norm2 += hist[i] * hist[i];
    }
    double inv = 1.0 / sqrt(norm2);
    for (int i = 0; i < LK_COLOUR_DIM; i++)
        out[i] = (float)(hist[i] * inv);
    return LK_OK;
}

/* ==== Human-readable summary =========================================== */

static const char *bin_name(int i)
{
    /* Hue bin h is centred on (h + 0.5) * 22.5 degrees. */
    static const char *hue[LK_COLOUR_HUE_BINS] = {
        "red", "orange", "yellow", "lime", "green", "green", "green", "teal",
        "cyan", "blue", "blue", "violet", "purple", "magenta", "pink", "red",
    };
    static const char *grey[LK_COLOUR_GREY_BINS] = {
        "black", "dark grey", "grey", "light grey", "white",
    };
    if (i >= LK_COLOUR_CHROMA_BINS)
        return grey[i - LK_COLOUR_CHROMA_BINS];
    int h = i / (LK_COLOUR_SAT_BINS * LK_COLOUR_VAL_BINS);
    int v = i % LK_COLOUR_VAL_BINS;
    if (v == 0 && (h <= 2 || h == 15))
        return "brown";     /* dark red/orange/yellow */
    return hue[h];
}

char *lk_colour_summary(const float *emb, int k, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    buf[0] = '\0';
    if (!emb || k <= 0)
        return buf;

    /* Distinct names (at most DIM) with their summed shares. */
    const char *names[LK_COLOUR_DIM];
    double share[LK_COLOUR_DIM];
    int n = 0;
    for (int i = 0; i < LK_COLOUR_DIM; i++) {
        const char *nm = bin_name(i);
        double s = (double)emb[i] * emb[i];
        int j = 0;
        while (j < n && strcmp(names[j], nm) != 0)
            j++;
        if (j == n) {
            names[n] = nm;
            share[n++] = 0;
        }
        share[j] += s;
    }
    size_t used = 0;
    for (int r = 0; r < k && r < n; r++) {
        int best = 0;
        for (int j = 1; j < n; j++)
            if (share[j] > share[best])
                best = j;
        if (share[best] < 0.005)
            break;
        int w = snprintf(buf + used, size - used, "%s%s %.0f%%", used ? ", " : "", names[best],
                         100 * share[best]);
        if (w < 0 || (size_t)w >= size - used)
            break;
        used += (size_t)w;
        share[best] = -1;
    }
    return buf;
}
