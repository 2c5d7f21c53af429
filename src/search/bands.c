/*
 * bands.c — confidence bands: turning a similarity into "exact / high /
 * medium / low" with thresholds measured on the catalog being served.
 *
 * Why calibrate per catalog: the similarity of two photos of the same
 * product depends on the catalog (studio cut-outs on white score higher
 * than phone photos; a catalog of 40 near-identical white shirts has much
 * closer "other products" than a hardware store).  A fixed threshold would
 * call everything "exact" in one catalog and nothing in another.  So the
 * build (build.c) distorts a sample of catalog images, embeds each copy,
 * searches the index and records the similarity to the copy's OWN product
 * and to the nearest OTHER product; lk_bands_from_samples() turns those two
 * distributions into thresholds (rules in lookalike/search.h).  The
 * thresholds are stored in the generation's search.json, so a reload of a
 * rebuilt catalog also recalibrates.
 *
 * Precision at threshold t is measured as own(>= t) / (own(>= t) +
 * other(>= t)): "among query/result pairs at least this similar, how many
 * were the right product".  It is computed by a sweep over the merged,
 * sorted samples (O(n log n)).
 */
#include <math.h>
#include <stdlib.h>

#include "psearch.h"

void lk_bands_default(struct lk_bands *b)
{
    /* Measured on the synthetic products of tests/search (distorted copies
     * vs other products) and the tuxpaint demo photos; conservative. */
    b->exact = 0.95f;
    b->high = 0.85f;
    b->medium = 0.70f;
    b->floor = 0.50f;
    b->calibrated = 0;
    b->samples = 0;
}

enum lk_band lk_bands_classify(const struct lk_bands *b, float s)
{
    if (s >= b->exact)
        return LK_BAND_EXACT;
    if (s >= b->high)
        return LK_BAND_HIGH;
    if (s >= b->medium)
        return LK_BAND_MEDIUM;
    return LK_BAND_LOW;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* q-quantile (0..1) of sorted v[0..n) by linear interpolation. */
static float quantile(const float *v, size_t n, double q)
{
    if (n == 0)
        return 0.0f;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n)
        return v[n - 1];
    double f = pos - (double)i;
    return (float)((1.0 - f) * v[i] + f * v[i + 1]);
}

/* Lowest threshold t (a sample value) at which the precision over pairs
 * with similarity >= t is still >= target.  The top few pairs are noisy, so
 * a threshold only counts once at least 3 own pairs lie above it.  Scans
 * from the top; own and other are sorted ascending. */
static float precision_threshold(const float *own, size_t n_own, const float *other, size_t n_other,
                                 double target, float fallback)
{
    size_t i = n_own, j = n_other;   /* values >= t: own[i..), other[j..) */
    float best = fallback;
    int found = 0;
    while (i > 0 || j > 0) {
        float t;
        if (j == 0 || (i > 0 && own[i - 1] >= other[j - 1]))
            t = own[i - 1];
        else
            t = other[j - 1];
        while (i > 0 && own[i - 1] >= t)
            i--;
        while (j > 0 && other[j - 1] >= t)
            j--;
        double o = (double)(n_own - i), x = (double)(n_other - j);
        if (o >= 3 && o / (o + x) >= target) {
            best = t;
            found = 1;
        }
    }
    return found ? best : fallback;
}

int lk_bands_from_samples(float *own, const unsigned char *mild, float *other, size_t n,
                          struct lk_bands *out, struct lk_err *err)
{
    if (!out || (n > 0 && (!own || !other)))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "bands: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(own[i]) || !isfinite(other[i]))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "bands: non-finite similarity");
    lk_bands_default(out);
    if (n < LK_BANDS_MIN_SAMPLES)
        return LK_OK;

    /* Mild-distortion own similarities (for "exact"), before sorting. */
    float *m = malloc(n * sizeof *m);
    if (!m)
        return lk_err_set(err, LK_ERR_NOMEM, "bands: out of memory");
    size_t nm = 0;
    for (size_t i = 0; i < n; i++)
        if (!mild || mild[i])
            m[nm++] = own[i];
    qsort(own, n, sizeof *own, cmp_float);
    qsort(other, n, sizeof *other, cmp_float);
    qsort(m, nm, sizeof *m, cmp_float);

    const float gap = LK_BANDS_MIN_GAP;
    /* Below 200 pairs the 99th percentile is the maximum, i.e. whichever
     * single pair of look-alike products (a duplicate listing) happened to
     * be sampled; the 95th is the robust choice there. */
    float other_p99 = quantile(other, n, n < 200 ? 0.95 : 0.99);
    float exact = nm ? quantile(m, nm, 0.10) : quantile(own, n, 0.5);
    if (exact < other_p99 + 2 * gap)
        exact = other_p99 + 2 * gap;
    float high = precision_threshold(own, n, other, n, 0.95, other_p99 + gap);
    float medium = precision_threshold(own, n, other, n, 0.75, quantile(other, n, 0.9));
    float floor_ = quantile(other, n, 0.25);
    free(m);

    /* Keep the order with gaps; never above 1 for exact so an identical
     * photo (s = 1) is always exact. */
    if (exact > 0.999f)
        exact = 0.999f;
    if (high > exact - gap)
        high = exact - gap;
    if (medium > high - gap)
        medium = high - gap;
    if (floor_ > medium - gap)
        floor_ = medium - gap;
    out->exact = exact;
    out->high = high;
    out->medium = medium;
    out->floor = floor_;
    out->calibrated = 1;
    out->samples = (uint32_t)n;
    return LK_OK;
}
