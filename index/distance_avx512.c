/*
 * index/distance_avx512.c — AVX-512F kernels (16 lanes, masked tail).
 *
 * Compiled with a target attribute; distance.c hands them out only when
 * CPUID reports AVX512F, AVX512BW and AVX512VL and XGETBV shows the OS saves opmask/ZMM state.
 * The development machine has no AVX-512, so these are exercised only where
 * the hardware has it (tests skip at run time otherwise).  The tail uses a
 * masked load, which never faults on the masked-off bytes.  binary16 uses
 * VCVTPH2PS (AVX512F); int8 uses VPMOVSXBD (AVX512F).  The L2 kernels share
 * their body with an early-abandoning twin (lk__l2_bounded_*, as in
 * distance_avx2.c).
 */
#include <immintrin.h>
#include <string.h>

#include "pdistance.h"

/* avx512bw,avx512vl: the binary16 tail load (_mm256_maskz_loadu_epi16,
 * VMOVDQU16 on a YMM register) is an AVX512BW+VL instruction; clang refuses
 * to inline it without them, and distance.c requires both in CPUID. */
#define LK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

LK_AVX512 static inline __mmask16 tailmask(size_t left)
{
    return (__mmask16)((1u << left) - 1u);
}

LK_AVX512 float lk__ip_f32_avx512(const float *a, const void *bv, size_t dim)
{
    const float *b = bv;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < dim) {
        __mmask16 m = tailmask(dim - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* Squared L2; plain (bounded = 0) or early-abandoning (bounded = 1): the
 * same scheme and argument as the AVX2 kernel (distance_avx2.c), with the
 * partial sum reduced as the final one, _mm512_reduce_add_ps(s0 + s1). */
LK_AVX512 static inline __attribute__((always_inline)) float l2_f32(const float *a, const float *b, size_t dim,
                                                                    float bound, const int bounded)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        if (bounded && (i + 32) % LK__L2_BOUND_STRIDE == 0 && i + 32 < dim) {
            float part = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
            if (part > bound)
                return part;
        }
    }
    for (; i + 16 <= dim; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < dim) {
        __mmask16 m = tailmask(dim - i);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

LK_AVX512 float lk__l2_f32_avx512(const float *a, const void *b, size_t dim)
{
    return l2_f32(a, b, dim, 0.0f, 0);
}

LK_AVX512 float lk__l2_bounded_f32_avx512(const float *a, const void *b, size_t dim, float bound)
{
    return l2_f32(a, b, dim, bound, 1);
}

LK_AVX512 static inline __m512 ld_h(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
LK_AVX512 static inline __m512 ld_h_m(const uint16_t *p, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

LK_AVX512 float lk__ip_f16_avx512(const float *a, const void *bv, size_t dim)
{
    const uint16_t *b = bv;
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), ld_h(b + i), s0);
    float s = _mm512_reduce_add_ps(s0);
    for (; i < dim; i++)
        s += a[i] * lk__f16_to_f32(b[i]);
    return s;
}

LK_AVX512 static inline __attribute__((always_inline)) float l2_f16(const float *a, const uint16_t *b,
                                                                    size_t dim, float bound, const int bounded)
{
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), ld_h(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
        if (bounded && (i + 16) % LK__L2_BOUND_STRIDE == 0 && i + 16 < dim) {
            float part = _mm512_reduce_add_ps(s0); /* as l2_f32 */
            if (part > bound)
                return part;
        }
    }
    float s = _mm512_reduce_add_ps(s0);
    for (; i < dim; i++) {
        float d = a[i] - lk__f16_to_f32(b[i]);
        s += d * d;
    }
    (void)ld_h_m;
    return s;
}

LK_AVX512 float lk__l2_f16_avx512(const float *a, const void *b, size_t dim)
{
    return l2_f16(a, b, dim, 0.0f, 0);
}

LK_AVX512 float lk__l2_bounded_f16_avx512(const float *a, const void *b, size_t dim, float bound)
{
    return l2_f16(a, b, dim, bound, 1);
}

LK_AVX512 static inline __m512 ld_i8(const int8_t *p)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

LK_AVX512 float lk__ip_i8_avx512(const float *a, const void *bv, size_t dim)
{
    float sc;
    memcpy(&sc, bv, sizeof sc);
    const int8_t *q = (const int8_t *)bv + sizeof sc;
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), ld_i8(q + i), s0);
    float s = _mm512_reduce_add_ps(s0);
    for (; i < dim; i++)
        s += a[i] * (float)q[i];
    return s * sc;
}

LK_AVX512 static inline __attribute__((always_inline)) float l2_i8(const float *a, const void *bv, size_t dim,
                                                                   float bound, const int bounded)
{
    float sc;
    memcpy(&sc, bv, sizeof sc);
    const int8_t *q = (const int8_t *)bv + sizeof sc;
    __m512 vs = _mm512_set1_ps(sc);
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 d = _mm512_fnmadd_ps(vs, ld_i8(q + i), _mm512_loadu_ps(a + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
        if (bounded && (i + 16) % LK__L2_BOUND_STRIDE == 0 && i + 16 < dim) {
            float part = _mm512_reduce_add_ps(s0); /* as l2_f32 */
            if (part > bound)
                return part;
        }
    }
    float s = _mm512_reduce_add_ps(s0);
    for (; i < dim; i++) {
        float d = a[i] - sc * (float)q[i];
        s += d * d;
    }
    return s;
}

LK_AVX512 float lk__l2_i8_avx512(const float *a, const void *b, size_t dim)
{
    return l2_i8(a, b, dim, 0.0f, 0);
}

LK_AVX512 float lk__l2_bounded_i8_avx512(const float *a, const void *b, size_t dim, float bound)
{
    return l2_i8(a, b, dim, bound, 1);
}
