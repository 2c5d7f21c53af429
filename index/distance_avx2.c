/*
 * index/distance_avx2.c — AVX2 + FMA (+ F16C for binary16) kernels.
 *
 * Compiled with a target attribute so the rest of the library stays
 * baseline x86-64; distance.c only hands these out after CPUID + XGETBV
 * confirmed AVX2, FMA, F16C and OS-saved YMM state.
 *
 * Performance notes: four independent 8-lane accumulators (32 floats per
 * iteration) hide the 4-cycle FMA latency on two FMA ports; an 8-wide loop
 * then a scalar loop handle the tail, so any dim works and nothing reads past
 * the end of either vector.  Loads are unaligned (node blocks put vectors at
 * 16-byte alignment; unaligned loads cost nothing extra when they do not
 * cross a cache line, and little when they do).
 *
 * The L2 kernels share their body with an early-abandoning twin
 * (lk__l2_bounded_*, see l2_f32 below and lk_l2_bounded_fn in index.h).
 */
#include <immintrin.h>
#include <string.h>

#include "pdistance.h"

#define LK_AVX2 __attribute__((target("avx2,fma,f16c")))

LK_AVX2 static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehl_ps(lo, lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_shuffle_ps(lo, lo, 0x1);
    lo = _mm_add_ss(lo, sh);
    return _mm_cvtss_f32(lo);
}

LK_AVX2 float lk__ip_f32_avx2(const float *a, const void *bv, size_t dim)
{
    const float *b = bv;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

/* Squared L2; plain (bounded = 0) or early-abandoning (bounded = 1, see
 * LK__L2_BOUND_STRIDE): after every STRIDE floats the partial sum, reduced
 * exactly as the final sum is ((s0 + s1) + (s2 + s3), then hsum256), is
 * compared with `bound`.  Every term is a square, and rounding is monotone,
 * so each lane and each step of the reduction can only grow: a partial sum
 * above the bound proves the full one is too, and it is returned as is.
 * Below the bound the operations are those of the plain kernel. */
LK_AVX2 static inline __attribute__((always_inline)) float l2_f32(const float *a, const float *b, size_t dim,
                                                                  float bound, const int bounded)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
        if (bounded && (i + 32) % LK__L2_BOUND_STRIDE == 0 && i + 32 < dim) {
            float part = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
            if (part > bound)
                return part;
        }
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

LK_AVX2 float lk__l2_f32_avx2(const float *a, const void *b, size_t dim)
{
    return l2_f32(a, b, dim, 0.0f, 0);
}

LK_AVX2 float lk__l2_bounded_f32_avx2(const float *a, const void *b, size_t dim, float bound)
{
    return l2_f32(a, b, dim, bound, 1);
}

/* binary16: F16C converts 8 halves to 8 floats per instruction. */
LK_AVX2 static inline __m256 ld_h(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

LK_AVX2 float lk__ip_f16_avx2(const float *a, const void *bv, size_t dim)
{
    const uint16_t *b = bv;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), ld_h(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), ld_h(b + i + 8), s1);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), ld_h(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++)
        s += a[i] * lk__f16_to_f32(b[i]);
    return s;
}

LK_AVX2 static inline __attribute__((always_inline)) float l2_f16(const float *a, const uint16_t *b, size_t dim,
                                                                  float bound, const int bounded)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), ld_h(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), ld_h(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        if (bounded && (i + 16) % LK__L2_BOUND_STRIDE == 0 && i + 16 < dim) {
            float part = hsum256(_mm256_add_ps(s0, s1)); /* as l2_f32 */
            if (part > bound)
                return part;
        }
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), ld_h(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++) {
        float d = a[i] - lk__f16_to_f32(b[i]);
        s += d * d;
    }
    return s;
}

LK_AVX2 float lk__l2_f16_avx2(const float *a, const void *b, size_t dim)
{
    return l2_f16(a, b, dim, 0.0f, 0);
}

LK_AVX2 float lk__l2_bounded_f16_avx2(const float *a, const void *b, size_t dim, float bound)
{
    return l2_f16(a, b, dim, bound, 1);
}

/* int8: sign-extend 8 bytes to 8 int32 lanes, convert to float. */
LK_AVX2 static inline __m256 ld_i8(const int8_t *p)
{
    __m128i x = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
}

LK_AVX2 float lk__ip_i8_avx2(const float *a, const void *bv, size_t dim)
{
    float sc;
    memcpy(&sc, bv, sizeof sc);
    const int8_t *q = (const int8_t *)bv + sizeof sc;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), ld_i8(q + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), ld_i8(q + i + 8), s1);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), ld_i8(q + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++)
        s += a[i] * (float)q[i];
    return s * sc;
}

LK_AVX2 static inline __attribute__((always_inline)) float l2_i8(const float *a, const void *bv, size_t dim,
                                                                 float bound, const int bounded)
{
    float sc;
    memcpy(&sc, bv, sizeof sc);
    const int8_t *q = (const int8_t *)bv + sizeof sc;
    __m256 vs = _mm256_set1_ps(sc);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m256 d0 = _mm256_fnmadd_ps(vs, ld_i8(q + i), _mm256_loadu_ps(a + i));
        __m256 d1 = _mm256_fnmadd_ps(vs, ld_i8(q + i + 8), _mm256_loadu_ps(a + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        if (bounded && (i + 16) % LK__L2_BOUND_STRIDE == 0 && i + 16 < dim) {
            float part = hsum256(_mm256_add_ps(s0, s1)); /* as l2_f32 */
            if (part > bound)
                return part;
        }
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d = _mm256_fnmadd_ps(vs, ld_i8(q + i), _mm256_loadu_ps(a + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++) {
        float d = a[i] - sc * (float)q[i];
        s += d * d;
    }
    return s;
}

LK_AVX2 float lk__l2_i8_avx2(const float *a, const void *b, size_t dim)
{
    return l2_i8(a, b, dim, 0.0f, 0);
}

LK_AVX2 float lk__l2_bounded_i8_avx2(const float *a, const void *b, size_t dim, float bound)
{
    return l2_i8(a, b, dim, bound, 1);
}
