/*
 * bench/hnswlib_wrap.h — a small C interface to hnswlib (nmslib/hnswlib 0.6.2,
 * Debian's libhnswlib-dev headers) for bench/ann, so the baseline runs in the
 * same process, on the same data and queries as our index.
 *
 * Bench-only: the product never links hnswlib.  The wrapper is compiled as
 * C++17 with the project's optimisation flags plus -mavx2 -mfma, because
 * hnswlib picks its SIMD kernels at compile time from __AVX__/__AVX512F__
 * (hnswlib_simd_path() reports what it got).
 *
 * Space: squared L2 over float32 (hnswlib::L2Space).  Labels are the insertion
 * row numbers 0..n-1.
 *
 * Filtering: hnswlib 0.6.2 has no filter functor (BaseFilterFunctor arrived in
 * 0.7.0).  hnswlib_filter_set() emulates 0.7's semantics exactly by marking
 * every disallowed element deleted: 0.7 applies its functor at the very same
 * place as the deletion check (traversal passes through excluded nodes, only
 * allowed ones enter the result set, and the search runs on until ef allowed
 * results are held).  hnswlib_filter_clear() unmarks them.  Marking is O(n)
 * and is never inside a timed region.
 *
 * Errors: functions returning int give 0 on success, -1 on failure (hnswlib
 * throws std::exception; the wrapper catches it and copies what() into msg).
 * Not thread-safe except hnswlib_search, which hnswlib allows concurrently.
 */
#ifndef LK_BENCH_HNSWLIB_WRAP_H
#define LK_BENCH_HNSWLIB_WRAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hnswlib_index;

/* Create an empty L2 index for up to max_elements vectors of dim floats.
 * M and ef_construction as in hnswlib; seed is its level-generator seed. */
int  hnswlib_new(size_t dim, size_t max_elements, size_t M, size_t ef_construction,
                 size_t seed, struct hnswlib_index **out, char *msg, size_t msglen);
void hnswlib_free(struct hnswlib_index *h);           /* NULL-safe */

/* Insert rows [0, n) of vecs (n x dim floats) with labels 0..n-1 using
 * `threads` threads (1 = hnswlib's own sequential addPoint loop; >1 = the
 * ParallelFor pattern of hnswlib's python bindings, one point per task). */
int  hnswlib_add_batch(struct hnswlib_index *h, const float *vecs, size_t n,
                       unsigned threads, char *msg, size_t msglen);

void hnswlib_set_ef(struct hnswlib_index *h, size_t ef);

/* k nearest neighbours of q: labels and squared L2 distances, nearest first.
 * Returns how many were found (<= k). */
size_t hnswlib_search(const struct hnswlib_index *h, const float *q, size_t k,
                      int64_t *labels, float *dists);

/* Bytes the index holds, computed from hnswlib's own data structures:
 * level-0 block (links + vector + label per element, times max_elements),
 * upper-level link lists, per-element levels and mutexes, the label hash
 * map (estimated: one node of key+value+next pointer per element plus the
 * bucket array) and the visited-list pool. */
size_t hnswlib_memory(const struct hnswlib_index *h);

/* Restrict results to rows with allowed[i] != 0 (see file comment). */
void hnswlib_filter_set(struct hnswlib_index *h, const uint8_t *allowed, size_t n);
void hnswlib_filter_clear(struct hnswlib_index *h);

/* The L2 kernel hnswlib's L2Space picks for `dim` on this CPU with what was
 * compiled in: "AVX 16-float blocks" (dim % 16 == 0), "SSE 4-float blocks"
 * (dim % 4 == 0), "AVX/SSE + scalar tail", "AVX-512 ...", or "scalar".
 * Static string. */
const char *hnswlib_simd_path(size_t dim);

#ifdef __cplusplus
}
#endif
#endif
