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

#endif
