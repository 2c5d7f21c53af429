/* tests/search/test_bands.c — confidence bands: classification and
 * calibration from own/other similarity samples (src/search/bands.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "lookalike/search.h"

Test(bands, classify_uses_thresholds_inclusively)
{
    struct lk_bands b = {.exact = 0.9f, .high = 0.8f, .medium = 0.6f, .floor = 0.4f};
    cr_assert_eq(lk_bands_classify(&b, 1.0f), LK_BAND_EXACT);
    cr_assert_eq(lk_bands_classify(&b, 0.9f), LK_BAND_EXACT);
    cr_assert_eq(lk_bands_classify(&b, 0.89f), LK_BAND_HIGH);
    cr_assert_eq(lk_bands_classify(&b, 0.8f), LK_BAND_HIGH);
    cr_assert_eq(lk_bands_classify(&b, 0.6f), LK_BAND_MEDIUM);
    cr_assert_eq(lk_bands_classify(&b, 0.59f), LK_BAND_LOW);
    cr_assert_eq(lk_bands_classify(&b, -1.0f), LK_BAND_LOW);
}

Test(bands, defaults_are_ordered)
{
    struct lk_bands b;
    lk_bands_default(&b);
    cr_assert(b.exact > b.high && b.high > b.medium && b.medium > b.floor);
    cr_assert_eq(b.calibrated, 0);
}

Test(bands, too_few_samples_give_defaults)
{
    float own[3] = {0.9f, 0.95f, 0.97f}, other[3] = {0.3f, 0.4f, 0.5f};
    struct lk_bands b, d;
    lk_bands_default(&d);
    cr_assert_eq(lk_bands_from_samples(own, NULL, other, 3, &b, NULL), LK_OK);
    cr_assert_eq(b.calibrated, 0);
    cr_assert_float_eq(b.exact, d.exact, 1e-6);
}

/* Own similarities ~ U(0.80, 1.00), other ~ U(0.30, 0.70): well separated. */
Test(bands, separated_distributions)
{
    enum { N = 400 };
    float own[N], other[N];
    unsigned char mild[N];
    srand(7);
    for (int i = 0; i < N; i++) {
        own[i] = 0.80f + 0.20f * (float)rand() / (float)RAND_MAX;
        other[i] = 0.30f + 0.40f * (float)rand() / (float)RAND_MAX;
        mild[i] = own[i] > 0.9f;
    }
    struct lk_bands b;
    cr_assert_eq(lk_bands_from_samples(own, mild, other, N, &b, NULL), LK_OK);
    cr_assert_eq(b.calibrated, 1);
    cr_assert_eq(b.samples, N);
    cr_assert(b.exact > b.high && b.high > b.medium && b.medium > b.floor, "%f %f %f %f", b.exact, b.high,
              b.medium, b.floor);
    cr_assert(b.exact <= 0.999f);
    cr_assert(b.exact >= 0.70f, "exact %f must be above nearly every other-product similarity", b.exact);
    /* high: above the other-product cloud (precision 95 %). */
    cr_assert(b.high > 0.65f && b.high < 0.90f, "high %f", b.high);
    /* floor: a low quantile of other */
    cr_assert(b.floor > 0.30f && b.floor < 0.55f, "floor %f", b.floor);
}

/* Overlapping distributions: thresholds still ordered with gaps. */
Test(bands, overlapping_distributions_stay_ordered)
{
    enum { N = 200 };
    float own[N], other[N];
    srand(11);
    for (int i = 0; i < N; i++) {
        own[i] = 0.5f + 0.3f * (float)rand() / (float)RAND_MAX;
        other[i] = 0.45f + 0.3f * (float)rand() / (float)RAND_MAX;
    }
    struct lk_bands b;
    cr_assert_eq(lk_bands_from_samples(own, NULL, other, N, &b, NULL), LK_OK);
    cr_assert(b.exact - b.high >= LK_BANDS_MIN_GAP - 1e-6);
    cr_assert(b.high - b.medium >= LK_BANDS_MIN_GAP - 1e-6);
    cr_assert(b.medium - b.floor >= LK_BANDS_MIN_GAP - 1e-6);
}

Test(bands, rejects_nan)
{
    float own[10], other[10];
    for (int i = 0; i < 10; i++)
        own[i] = other[i] = 0.5f;
    own[4] = NAN;
    struct lk_bands b;
    struct lk_err e = {0};
    cr_assert_eq(lk_bands_from_samples(own, NULL, other, 10, &b, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_bands_from_samples(NULL, NULL, other, 10, &b, &e), LK_ERR_INVALID_ARG);
}
