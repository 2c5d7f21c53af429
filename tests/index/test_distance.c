/*
 * tests/index/test_distance.c — index/distance*.c: every available kernel
 * (AVX2, AVX-512 where the CPU has it) agrees with the scalar reference on
 * awkward dimensions for every metric and storage; the F16/I8 encoders are
 * accurate; the early-abandoning L2 kernels return the plain kernel's bits
 * at or below the bound and a value above it otherwise; dispatch honours
 * LOOKALIKE_FORCE_SCALAR.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lk_test_index.h"

static const size_t DIMS[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 576, 700, 2048};
#define NDIMS (sizeof DIMS / sizeof DIMS[0])

static size_t enc_bytes(enum lk_storage st, size_t dim)
{
    return st == LK_STORAGE_F32 ? 4 * dim : st == LK_STORAGE_F16 ? 2 * dim : 4 + dim;
}

static void encode(enum lk_storage st, const float *x, size_t dim, void *out)
{
    if (st == LK_STORAGE_F32)
        memcpy(out, x, 4 * dim);
    else if (st == LK_STORAGE_F16)
        lk_encode_f16(x, dim, out);
    else
        lk_encode_i8(x, dim, out);
}

/* Compare kernel `simd` against scalar for all metrics/storages/dims.
 * Returns 0 if the kernel set is unavailable. */
static int compare_kernels(enum lk_simd simd)
{
    if (!lk_distance_kernel(LK_METRIC_L2, LK_STORAGE_F32, simd))
        return 0;
    uint64_t s = 7;
    for (size_t di = 0; di < NDIMS; di++) {
        size_t dim = DIMS[di];
        /* +1 element of slack so an off-by-one read would hit ASan redzones
         * only if it goes past the last element */
        float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b);
        void *enc = malloc(enc_bytes(LK_STORAGE_F32, dim) + enc_bytes(LK_STORAGE_I8, dim)); /* >= every encoding */
        for (int rep = 0; rep < 5; rep++) {
            for (size_t i = 0; i < dim; i++) {
                a[i] = lkt_gauss(&s);
                b[i] = lkt_gauss(&s);
            }
            for (int st = 0; st <= LK_STORAGE_I8; st++) {
                encode((enum lk_storage)st, b, dim, enc);
                for (int m = 0; m <= LK_METRIC_COSINE; m++) {
                    lk_distance_fn ref = lk_distance_kernel((enum lk_metric)m, (enum lk_storage)st, LK_SIMD_SCALAR);
                    lk_distance_fn k = lk_distance_kernel((enum lk_metric)m, (enum lk_storage)st, simd);
                    cr_assert(ref && k);
                    float r = ref(a, enc, dim), v = k(a, enc, dim);
                    /* tolerance relative to the sum of magnitudes (summation order differs) */
                    double mag = 0.0;
                    for (size_t i = 0; i < dim; i++)
                        mag += fabs((double)a[i]) * (fabs((double)b[i]) + fabs((double)a[i]));
                    cr_assert(fabs((double)r - (double)v) <= 1e-5 * mag + 1e-6,
                              "simd %d metric %d storage %d dim %zu: scalar %g vs %g", simd, m, st, dim, r, v);
                }
            }
        }
        free(a), free(b), free(enc);
    }
    return 1;
}

/* Bounded L2 (lk_l2_bounded_fn) of instruction set `simd` against the plain
 * L2 kernel of the same set: bit for bit when the distance is <= the bound
 * (bound at, just above, far above the true value, +inf), above the bound
 * otherwise (just below, half, zero).  Vectors are biased so the partial
 * sums cross the bound early as well as late.  Returns 0 if unavailable. */
static int compare_bounded(enum lk_simd simd)
{
    if (!lk_l2_bounded_kernel(LK_STORAGE_F32, simd))
        return 0;
    uint64_t s = 11;
    for (size_t di = 0; di < NDIMS; di++) {
        size_t dim = DIMS[di];
        float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b);
        void *enc = malloc(enc_bytes(LK_STORAGE_F32, dim) + enc_bytes(LK_STORAGE_I8, dim));
        for (int rep = 0; rep < 6; rep++) {
            for (size_t i = 0; i < dim; i++) {
                a[i] = lkt_gauss(&s);
                /* rep 2,3: the difference sits in the first half; 4,5: in the last */
                float w = (rep / 2 == 1) == (i < dim / 2) ? 3.0f : rep < 2 ? 1.0f : 0.1f;
                b[i] = a[i] + w * lkt_gauss(&s);
            }
            for (int st = 0; st <= LK_STORAGE_I8; st++) {
                encode((enum lk_storage)st, b, dim, enc);
                lk_distance_fn plain = lk_distance_kernel(LK_METRIC_L2, (enum lk_storage)st, simd);
                lk_l2_bounded_fn bk = lk_l2_bounded_kernel((enum lk_storage)st, simd);
                cr_assert(plain && bk);
                float d = plain(a, enc, dim);
                const float at_or_above[] = {d, nextafterf(d, INFINITY), 2.0f * d + 1.0f, INFINITY};
                for (size_t j = 0; j < sizeof at_or_above / sizeof *at_or_above; j++) {
                    float v = bk(a, enc, dim, at_or_above[j]);
                    cr_assert(memcmp(&v, &d, sizeof v) == 0,
                              "simd %d storage %d dim %zu bound %g: %a, plain %a", simd, st, dim,
                              at_or_above[j], v, d);
                }
                const float below[] = {nextafterf(d, 0.0f), 0.5f * d, 0.01f * d, 0.0f};
                for (size_t j = 0; j < sizeof below / sizeof *below; j++) {
                    float v = bk(a, enc, dim, below[j]);
                    cr_assert(v > below[j], "simd %d storage %d dim %zu bound %g: %g not above", simd,
                              st, dim, below[j], v);
                    cr_assert(v <= d, "a partial sum never exceeds the full one");
                }
            }
        }
        free(a), free(b), free(enc);
    }
    return 1;
}

Test(distance, bounded_l2_scalar_matches_plain)
{
    cr_assert(compare_bounded(LK_SIMD_SCALAR));
}

Test(distance, bounded_l2_avx2_matches_plain)
{
    if (!compare_bounded(LK_SIMD_AVX2))
        cr_skip_test("AVX2+FMA+F16C not available (or LOOKALIKE_FORCE_SCALAR=1)");
}

Test(distance, bounded_l2_avx512_matches_plain)
{
    if (!compare_bounded(LK_SIMD_AVX512))
        cr_skip_test("AVX-512F not available on this CPU/OS (or LOOKALIKE_FORCE_SCALAR=1)");
}

/* Early abandoning does stop early: every float differs by 1, so partial
 * sums count the floats read and the full sum is 2048; a bound of 10
 * returns a partial sum. */
Test(distance, bounded_l2_abandons)
{
    size_t dim = 2048;
    float *a = calloc(dim, sizeof *a), *b = calloc(dim, sizeof *b);
    for (size_t i = 0; i < dim; i++)
        b[i] = 1.0f;
    for (int simd = LK_SIMD_SCALAR; simd <= LK_SIMD_AVX512; simd++) {
        lk_l2_bounded_fn bk = lk_l2_bounded_kernel(LK_STORAGE_F32, (enum lk_simd)simd);
        if (!bk)
            continue;
        float part = bk(a, b, dim, 10.0f);
        cr_assert(part > 10.0f && part <= 256.0f, "simd %d: %g", simd, part);
        cr_assert_eq(bk(a, b, dim, 4096.0f), 2048.0f, "simd %d", simd);
    }
    free(a), free(b);
}

Test(distance, scalar_matches_naive)
{
    uint64_t s = 3;
    for (size_t di = 0; di < NDIMS; di++) {
        size_t dim = DIMS[di];
        float *a = malloc(dim * 4), *b = malloc(dim * 4);
        double ip = 0, l2 = 0;
        for (size_t i = 0; i < dim; i++) {
            a[i] = lkt_gauss(&s), b[i] = lkt_gauss(&s);
            ip += (double)a[i] * b[i];
            l2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        }
        float gip = lk_distance_kernel(LK_METRIC_IP, LK_STORAGE_F32, LK_SIMD_SCALAR)(a, b, dim);
        float gl2 = lk_distance_kernel(LK_METRIC_L2, LK_STORAGE_F32, LK_SIMD_SCALAR)(a, b, dim);
        cr_assert(fabs(gip - ip) <= 1e-4 * (1 + fabs(ip)) * sqrt((double)dim));
        cr_assert(fabs(gl2 - l2) <= 1e-4 * (1 + l2));
        free(a), free(b);
    }
}

Test(distance, avx2_matches_scalar)
{
    if (!compare_kernels(LK_SIMD_AVX2))
        cr_skip_test("AVX2+FMA+F16C not available (or LOOKALIKE_FORCE_SCALAR=1)");
}

Test(distance, avx512_matches_scalar)
{
    if (!compare_kernels(LK_SIMD_AVX512))
        cr_skip_test("AVX-512F not available on this CPU/OS (or LOOKALIKE_FORCE_SCALAR=1)");
}

Test(distance, dispatch_path)
{
    const char *p = lk_simd_path();
    cr_assert(strcmp(p, "scalar") == 0 || strcmp(p, "avx2") == 0 || strcmp(p, "avx512") == 0);
    const char *env = getenv("LOOKALIKE_FORCE_SCALAR");
    if (env && strcmp(env, "1") == 0) {
        cr_assert_str_eq(p, "scalar");
        cr_assert_null(lk_distance_kernel(LK_METRIC_L2, LK_STORAGE_F32, LK_SIMD_AVX2));
        cr_assert_eq(lk_distance_get(LK_METRIC_L2, LK_STORAGE_F32),
                     lk_distance_kernel(LK_METRIC_L2, LK_STORAGE_F32, LK_SIMD_SCALAR));
        cr_assert_null(lk_l2_bounded_kernel(LK_STORAGE_F32, LK_SIMD_AVX2));
        cr_assert_eq(lk_l2_bounded_get(LK_STORAGE_I8), lk_l2_bounded_kernel(LK_STORAGE_I8, LK_SIMD_SCALAR));
    }
    /* the chosen kernel is one of the available ones */
    lk_distance_fn g = lk_distance_get(LK_METRIC_IP, LK_STORAGE_F16);
    cr_assert(g == lk_distance_kernel(LK_METRIC_IP, LK_STORAGE_F16, LK_SIMD_SCALAR) ||
              g == lk_distance_kernel(LK_METRIC_IP, LK_STORAGE_F16, LK_SIMD_AVX2) ||
              g == lk_distance_kernel(LK_METRIC_IP, LK_STORAGE_F16, LK_SIMD_AVX512));
    cr_assert_null(lk_distance_kernel((enum lk_metric)9, LK_STORAGE_F32, LK_SIMD_SCALAR));
    /* the bounded L2 kernel comes from the same instruction set as the plain one */
    for (int st = 0; st <= LK_STORAGE_I8; st++) {
        lk_l2_bounded_fn bg = lk_l2_bounded_get((enum lk_storage)st);
        lk_distance_fn pg = lk_distance_get(LK_METRIC_L2, (enum lk_storage)st);
        int found = 0;
        for (int simd = LK_SIMD_SCALAR; simd <= LK_SIMD_AVX512; simd++)
            found |= bg && bg == lk_l2_bounded_kernel((enum lk_storage)st, (enum lk_simd)simd) &&
                     pg == lk_distance_kernel(LK_METRIC_L2, (enum lk_storage)st, (enum lk_simd)simd);
        cr_assert(found, "storage %d", st);
    }
    cr_assert_null(lk_l2_bounded_kernel((enum lk_storage)9, LK_SIMD_SCALAR));
}

Test(distance, f16_encoding)
{
    /* exact values, rounding, saturation, subnormals */
    float x[] = {0.0f, 1.0f, -2.5f, 65504.0f, 1e6f, -1e6f, 1.0009765625f, 6.1035156e-05f, 5.9604645e-08f, 1e-9f};
    uint16_t h[10];
    lk_encode_f16(x, 10, h);
    cr_assert_eq(h[0], 0x0000);
    cr_assert_eq(h[1], 0x3c00);
    cr_assert_eq(h[2], 0xc100);
    cr_assert_eq(h[3], 0x7bff);
    cr_assert_eq(h[4], 0x7bff); /* saturates, never inf */
    cr_assert_eq(h[5], 0xfbff);
    cr_assert_eq(h[6], 0x3c01);
    cr_assert_eq(h[7], 0x0400); /* smallest normal */
    cr_assert_eq(h[8], 0x0001); /* smallest subnormal */
    cr_assert_eq(h[9], 0x0000);
    /* relative error of random values <= 2^-11 */
    uint64_t s = 5;
    float one = 1.0f;
    for (int i = 0; i < 10000; i++) {
        float v = lkt_gauss(&s) * 10.0f;
        uint16_t e;
        lk_encode_f16(&v, 1, &e);
        float back = lk_distance_kernel(LK_METRIC_IP, LK_STORAGE_F16, LK_SIMD_SCALAR)(&one, &e, 1);
        cr_assert(fabsf(back - v) <= fabsf(v) * 0x1.0p-11f + 1e-7f, "%g -> %g", v, back);
    }
}

Test(distance, i8_encoding)
{
    uint64_t s = 9;
    size_t dim = 100;
    float x[100], ones[100];
    unsigned char enc[104];
    for (size_t i = 0; i < dim; i++)
        x[i] = lkt_gauss(&s), ones[i] = 0.0f;
    lk_encode_i8(x, dim, enc);
    float scale;
    memcpy(&scale, enc, 4);
    float mx = 0;
    for (size_t i = 0; i < dim; i++)
        mx = fmaxf(mx, fabsf(x[i]));
    cr_assert_float_eq(scale, mx / 127.0f, 1e-7);
    /* per component error <= scale/2 (read back with unit basis vectors) */
    for (size_t i = 0; i < dim; i++) {
        ones[i] = 1.0f;
        float back = lk_distance_kernel(LK_METRIC_IP, LK_STORAGE_I8, LK_SIMD_SCALAR)(ones, enc, dim);
        ones[i] = 0.0f;
        cr_assert(fabsf(back - x[i]) <= scale * 0.5f + 1e-6f);
    }
    /* zero vector: scale 0, all zeros */
    float z[4] = {0};
    unsigned char ez[8];
    lk_encode_i8(z, 4, ez);
    float zs;
    memcpy(&zs, ez, 4);
    cr_assert_eq(zs, 0.0f);
}
