/*
 * index/pdistance.h — kernel symbols shared between distance*.c (private).
 * Naming follows the instruction set: lk__<ip|l2>_<f32|f16|i8>_<scalar|avx2|avx512>.
 */
#ifndef LOOKALIKE_PDISTANCE_H
#define LOOKALIKE_PDISTANCE_H

#include <stddef.h>
#include <stdint.h>

float lk__f16_to_f32(uint16_t h);
uint16_t lk__f32_to_f16(float f);

#define LK__DECL_KERNELS(isa)                                            \
    float lk__ip_f32_##isa(const float *a, const void *b, size_t dim);  \
    float lk__l2_f32_##isa(const float *a, const void *b, size_t dim);  \
    float lk__ip_f16_##isa(const float *a, const void *b, size_t dim);  \
    float lk__l2_f16_##isa(const float *a, const void *b, size_t dim);  \
    float lk__ip_i8_##isa(const float *a, const void *b, size_t dim);   \
    float lk__l2_i8_##isa(const float *a, const void *b, size_t dim);

LK__DECL_KERNELS(scalar)
LK__DECL_KERNELS(avx2)
LK__DECL_KERNELS(avx512)

/* Early-abandoning squared L2 (lk_l2_bounded_fn, index.h):
 * lk__l2_bounded_<f32|f16|i8>_<isa>.  Each shares its body with the plain
 * lk__l2_* kernel of the same file (an always-inline function with a
 * compile-time `bounded` flag), so below the bound both return the same
 * bits. */
#define LK__DECL_BOUNDED(isa)                                                             \
    float lk__l2_bounded_f32_##isa(const float *a, const void *b, size_t dim, float bound); \
    float lk__l2_bounded_f16_##isa(const float *a, const void *b, size_t dim, float bound); \
    float lk__l2_bounded_i8_##isa(const float *a, const void *b, size_t dim, float bound);

LK__DECL_BOUNDED(scalar)
LK__DECL_BOUNDED(avx2)
LK__DECL_BOUNDED(avx512)

/* Floats between two tests of the partial sum against the bound (a
 * multiple of every kernel's block of 32 floats; no test after the last
 * block).  Each test costs a horizontal sum, about ten vector instructions.
 * Measured on the ANN sets: in graph search the rejected neighbours lie
 * just beyond the bound, so partial sums cross it late (on Fashion-MNIST
 * 784-d, 84 % of bounded calls stop, on average after 79 % of the floats;
 * on SIFT 128-d a test at 64 floats stopped 0.3 %).  So 128: 6 tests at
 * 784-d, none at <= 128-d, where it does not pay. */
#define LK__L2_BOUND_STRIDE 128u

#endif
