/*
 * index/distance.c — run-time kernel selection.
 *
 * The instruction set is chosen ONCE per process (pthread_once) from what
 * the CPU reports (CPUID) AND what the OS saves on context switch (XGETBV),
 * never from the machine that compiled us: AVX2 kernels need AVX2 + FMA +
 * F16C and XCR0 bits 1,2 (SSE, AVX state); AVX-512 needs AVX512F and XCR0
 * bits 5,6,7 (opmask, ZMM) as well.  LOOKALIKE_FORCE_SCALAR=1 forces the
 * scalar reference path (debugging, tests).  The chosen kernel is then a
 * plain function pointer stored in each index, so the hot loop pays one
 * indirect call and no feature test.  The early-abandoning L2 kernels
 * (lk_l2_bounded_get) come from the same instruction set as the plain ones,
 * whose results they reproduce bit for bit below the bound.
 */
#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pdistance.h"
#include "pindex.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_have_avx2, g_have_avx512, g_forced_scalar;
static enum lk_simd g_best = LK_SIMD_SCALAR;

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void)
{
    unsigned a, b, c, d;
    const char *env = getenv("LOOKALIKE_FORCE_SCALAR");
    g_forced_scalar = env && env[0] && strcmp(env, "0") != 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    uint64_t xcr0 = xgetbv0();
    int os_ymm = (xcr0 & 0x6) == 0x6;
    int os_zmm = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
    /* The f16 kernel's masked tail load needs AVX512BW and AVX512VL. */
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    g_have_avx2 = os_ymm && avx2 && fma && f16c;
    g_have_avx512 = g_have_avx2 && os_zmm && avx512f && avx512bw && avx512vl;
    if (g_forced_scalar)
        g_best = LK_SIMD_SCALAR;
    else if (g_have_avx512)
        g_best = LK_SIMD_AVX512;
    else if (g_have_avx2)
        g_best = LK_SIMD_AVX2;
}

lk_distance_fn lk_distance_kernel(enum lk_metric metric, enum lk_storage storage, enum lk_simd simd)
{
    pthread_once(&g_once, detect);
    int ip = metric == LK_METRIC_IP || metric == LK_METRIC_COSINE;
    if ((unsigned)storage > LK_STORAGE_I8 || (unsigned)metric > LK_METRIC_COSINE)
        return NULL;
#define PICK(isa)                                                              \
    switch (storage) {                                                         \
    case LK_STORAGE_F32: return ip ? lk__ip_f32_##isa : lk__l2_f32_##isa;      \
    case LK_STORAGE_F16: return ip ? lk__ip_f16_##isa : lk__l2_f16_##isa;      \
    case LK_STORAGE_I8: return ip ? lk__ip_i8_##isa : lk__l2_i8_##isa;         \
    }                                                                          \
    return NULL;
    switch (simd) {
    case LK_SIMD_SCALAR:
        PICK(scalar)
    case LK_SIMD_AVX2:
        if (!g_have_avx2 || g_forced_scalar)
            return NULL;
        PICK(avx2)
    case LK_SIMD_AVX512:
        if (!g_have_avx512 || g_forced_scalar)
            return NULL;
        PICK(avx512)
    }
#undef PICK
    return NULL;
}

lk_distance_fn lk_distance_get(enum lk_metric metric, enum lk_storage storage)
{
    pthread_once(&g_once, detect);
    /* AVX-512 pays off for float32 at large dim; on binary16/int8 the
     * conversion dominates and the AVX2 path is as fast, but both are
     * correct.  Take the widest available. */
    return lk_distance_kernel(metric, storage, g_best);
}

lk_l2_bounded_fn lk_l2_bounded_kernel(enum lk_storage storage, enum lk_simd simd)
{
    static const lk_l2_bounded_fn tab[3][3] = {
        [LK_SIMD_SCALAR] = {lk__l2_bounded_f32_scalar, lk__l2_bounded_f16_scalar, lk__l2_bounded_i8_scalar},
        [LK_SIMD_AVX2] = {lk__l2_bounded_f32_avx2, lk__l2_bounded_f16_avx2, lk__l2_bounded_i8_avx2},
        [LK_SIMD_AVX512] = {lk__l2_bounded_f32_avx512, lk__l2_bounded_f16_avx512, lk__l2_bounded_i8_avx512},
    };
    if ((unsigned)storage > LK_STORAGE_I8 || (unsigned)simd > LK_SIMD_AVX512)
        return NULL;
    /* the same availability rule as lk_distance_kernel: a kernel set only
     * after detection, and never when scalar is forced */
    if (lk_distance_kernel(LK_METRIC_L2, storage, simd) == NULL)
        return NULL;
    return tab[simd][storage];
}

lk_l2_bounded_fn lk_l2_bounded_get(enum lk_storage storage)
{
    pthread_once(&g_once, detect);
    /* the same instruction set as lk_distance_get's L2 kernel, whose bits
     * the bounded kernel reproduces below the bound */
    return lk_l2_bounded_kernel(storage, g_best);
}

const char *lk_simd_path(void)
{
    pthread_once(&g_once, detect);
    switch (g_best) {
    case LK_SIMD_AVX512: return "avx512";
    case LK_SIMD_AVX2: return "avx2";
    default: return "scalar";
    }
}

void lk__encode(const struct lk_index *ix, const float *v, void *out)
{
    switch (ix->p.storage) {
    case LK_STORAGE_F32: memcpy(out, v, sizeof(float) * ix->p.dim); break;
    case LK_STORAGE_F16: lk_encode_f16(v, ix->p.dim, out); break;
    case LK_STORAGE_I8: lk_encode_i8(v, ix->p.dim, out); break;
    }
}
