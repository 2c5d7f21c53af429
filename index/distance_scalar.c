/*
 * index/distance_scalar.c — reference distance kernels (plain C) and the
 * F16 / I8 encoders.
 *
 * These are the oracle the SIMD kernels are tested against and the path
 * LOOKALIKE_FORCE_SCALAR=1 selects.  Two accumulators per loop keep the
 * compiler from serialising on one floating-point add chain without
 * changing the result much; the SIMD kernels agree with them within a
 * relative tolerance, not bit for bit (summation order differs).
 *
 * Every L2 kernel comes in two flavours built from one always-inline body:
 * the plain lk__l2_* and the early-abandoning lk__l2_bounded_* (index.h,
 * lk_l2_bounded_fn), which SEARCH-LAYER uses to stop reading a neighbour's
 * vector once it cannot enter the result set.
 *
 * Encodings (lk_distance_fn's `b`):
 *   F16: IEEE 754 binary16, round-to-nearest-even, saturating at +-65504
 *        (an embedding component never needs infinities).
 *   I8:  float scale s = max|x| / 127 followed by q_i = round(x_i / s) in
 *        [-127, 127]; x_i ~= s * q_i.  Zero vectors get s = 0.
 */
#include <math.h>
#include <string.h>

#include "pindex.h"
#include "pdistance.h"

/* ==== binary16 <-> binary32 ==== */

float lk__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lk__f32_to_f16(float f)
{
    uint32_t x;
    if (f > 65504.0f)
        f = 65504.0f;
    else if (f < -65504.0f)
        f = -65504.0f;
    else if (f != f)
        f = 0.0f;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t exp = (int32_t)((x >> 23) & 0xffu) - 127 + 15;
    uint32_t man = x & 0x7fffffu;
    if (exp <= 0) { /* subnormal or zero in half */
        if (exp < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
        half++; /* may carry into the exponent: still correct */
    return (uint16_t)half;
}

void lk_encode_f16(const float *x, size_t dim, void *out)
{
    uint16_t *h = out;
    for (size_t i = 0; i < dim; i++)
        h[i] = lk__f32_to_f16(x[i]);
}

void lk_encode_i8(const float *x, size_t dim, void *out)
{
    float m = 0.0f;
    for (size_t i = 0; i < dim; i++)
        m = fmaxf(m, fabsf(x[i]));
    float s = m / 127.0f;
    float inv = m > 0.0f ? 127.0f / m : 0.0f;
    memcpy(out, &s, sizeof s);
    int8_t *q = (int8_t *)out + sizeof s;
    for (size_t i = 0; i < dim; i++) {
        long v = lrintf(x[i] * inv);
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
}

/* ==== float32 ==== */

float lk__ip_f32_scalar(const float *a, const void *bv, size_t dim)
{
    const float *b = bv;
    float s0 = 0.0f, s1 = 0.0f;
    size_t i = 0;
    for (; i + 2 <= dim; i += 2) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
    }
    if (i < dim)
        s0 += a[i] * b[i];
    return s0 + s1;
}

/* Squared L2, plain (bounded = 0, a compile-time constant at each call) or
 * early-abandoning (bounded = 1): every LK__L2_BOUND_STRIDE floats the
 * partial sum s0 + s1 is compared with `bound` and returned once it exceeds
 * it.  Both share this one body, so below the bound they perform the very
 * same operations in the same order and agree bit for bit. */
static inline __attribute__((always_inline)) float l2_f32(const float *a, const float *b, size_t dim,
                                                          float bound, const int bounded)
{
    float s0 = 0.0f, s1 = 0.0f;
    size_t i = 0;
    for (; i + 2 <= dim; i += 2) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        s0 += d0 * d0;
        s1 += d1 * d1;
        if (bounded && (i + 2) % LK__L2_BOUND_STRIDE == 0 && s0 + s1 > bound)
            return s0 + s1;
    }
    if (i < dim) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return s0 + s1;
}

float lk__l2_f32_scalar(const float *a, const void *b, size_t dim)
{
    return l2_f32(a, b, dim, 0.0f, 0);
}

float lk__l2_bounded_f32_scalar(const float *a, const void *b, size_t dim, float bound)
{
    return l2_f32(a, b, dim, bound, 1);
}

/* ==== float16 ==== */

float lk__ip_f16_scalar(const float *a, const void *bv, size_t dim)
{
    const uint16_t *b = bv;
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++)
        s += a[i] * lk__f16_to_f32(b[i]);
    return s;
}

static inline __attribute__((always_inline)) float l2_f16(const float *a, const uint16_t *b, size_t dim,
                                                          float bound, const int bounded)
{
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) {
        float d = a[i] - lk__f16_to_f32(b[i]);
        s += d * d;
        if (bounded && (i + 1) % LK__L2_BOUND_STRIDE == 0 && s > bound)
            return s;
    }
    return s;
}

float lk__l2_f16_scalar(const float *a, const void *b, size_t dim)
{
    return l2_f16(a, b, dim, 0.0f, 0);
}

float lk__l2_bounded_f16_scalar(const float *a, const void *b, size_t dim, float bound)
{
    return l2_f16(a, b, dim, bound, 1);
}

/* ==== int8 with per-vector scale ==== */

float lk__ip_i8_scalar(const float *a, const void *bv, size_t dim)
{
    float sc;
    memcpy(&sc, bv, sizeof sc);
    const int8_t *q = (const int8_t *)bv + sizeof sc;
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++)
        s += a[i] * (float)q[i];
    return s * sc;
}

static inline __attribute__((always_inline)) float l2_i8(const float *a, const void *bv, size_t dim,
                                                         float bound, const int bounded)
{
    float sc;
    memcpy(&sc, bv, sizeof sc);
    const int8_t *q = (const int8_t *)bv + sizeof sc;
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) {
        float d = a[i] - sc * (float)q[i];
        s += d * d;
        if (bounded && (i + 1) % LK__L2_BOUND_STRIDE == 0 && s > bound)
            return s;
    }
    return s;
}

float lk__l2_i8_scalar(const float *a, const void *b, size_t dim)
{
    return l2_i8(a, b, dim, 0.0f, 0);
}

float lk__l2_bounded_i8_scalar(const float *a, const void *b, size_t dim, float bound)
{
    return l2_i8(a, b, dim, bound, 1);
}
