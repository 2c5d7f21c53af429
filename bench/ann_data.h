/*
 * bench/ann_data.h — data for bench/ann: TEXMEX fvecs/bvecs/ivecs loaders
 * with validation, the real sets in shared/data/ann/, a synthetic clustered
 * set generated from a fixed seed (cached on disk with its ground truth), and
 * exact brute-force k-NN (the oracle for synthetic and filtered ground
 * truth).
 *
 * Errors: functions returning int give 0 on success and -1 on failure with a
 * message in `msg` (msglen bytes).  Bench code, not library code: it prints
 * and exits on failure, so it does not use the lk_err machinery.
 */
#ifndef LK_BENCH_ANN_DATA_H
#define LK_BENCH_ANN_DATA_H

#include <stddef.h>
#include <stdint.h>

/* One benchmark set, everything owned by the struct (ann_set_free). */
struct ann_set {
    char name[64];
    size_t n, nq, dim;
    float *base;            /* n x dim, row-major */
    float *queries;         /* nq x dim */
    int32_t *gt;            /* nq x gt_k exact squared-L2 neighbour rows, nearest first */
    size_t gt_k;
    /* Groups for correlated ("same category") filters: every base row and
     * every query belongs to one of ngroups groups. */
    int32_t *base_group;    /* n */
    int32_t *query_group;   /* nq */
    size_t ngroups;
    char group_source[96];  /* what the groups are, for the report */
};

void ann_set_free(struct ann_set *s);  /* frees members, leaves {0}; NULL-safe */

/* Read a whole TEXMEX file.  kind: 'f' fvecs (float32), 'b' bvecs (uint8,
 * converted to float of the same value), 'i' ivecs (int32).  Checks: the
 * file is a whole number of records, every record has the same dimension in
 * [1, 65536], float values are finite.  *out is malloc'ed: float for 'f'/'b',
 * int32_t for 'i'. */
int ann_read_vecs(const char *path, char kind, size_t *rows, size_t *dim, void **out,
                  char *msg, size_t msglen);

/* Load <dir>/<name>/ (base.fvecs|base.bvecs, query.*, groundtruth.ivecs and
 * the optional label/attribute files), validate shapes and ground-truth ids,
 * and derive groups: fashion-mnist labels, yfcc category attribute (queries:
 * their category if the query carries one, else that of their nearest base
 * vector), otherwise the nearest of 32 pivot rows.  max_queries caps nq
 * (0 = all). */
int ann_load_set(const char *dir, const char *name, size_t max_queries, unsigned threads,
                 struct ann_set *out, char *msg, size_t msglen);

/* Synthetic clustered set: `nclusters` Gaussian clusters, each a random
 * `rank`-dimensional affine subspace (centre ~ N(0, I), basis entries
 * ~ N(0, 0.25/rank) so in-cluster spread is 0.5 per axis) plus isotropic
 * noise N(0, 0.05^2 I).  Points pick a cluster uniformly.  Queries come from
 * the same distribution with an independent stream (same queries for every
 * n).  Ground truth: exact top-100 by brute force.  Groups = generating
 * cluster.  Cached in cache_dir (created if needed) as
 * synth-n<N>-d<D>-c<C>-r<R>-q<NQ>-s<seed>.bin with a checksum; a valid cache
 * file is loaded instead of regenerating.  cache_dir NULL = no cache. */
int ann_synth_set(size_t n, size_t nq, size_t dim, size_t nclusters, size_t rank, uint64_t seed,
                  const char *cache_dir, unsigned threads, struct ann_set *out,
                  char *msg, size_t msglen);

/* Exact k nearest rows of `base` for each query by squared L2, ties to the
 * smaller row (candidates selected in float32, final order in float64).
 * allowed: NULL, or n bytes (nonzero = row may be returned); per-query
 * filters are expressed by calling this once per distinct filter.
 * ids: nq x k, rows padded with -1 when fewer than k rows are allowed.
 * Uses `threads` threads (split over queries). */
int ann_knn_exact(const float *base, size_t n, size_t dim, const float *queries, size_t nq,
                  size_t k, const uint8_t *allowed, unsigned threads, int32_t *ids,
                  char *msg, size_t msglen);

/* Squared L2 distance, AVX2+FMA when the CPU has it, else scalar. */
float ann_l2(const float *a, const float *b, size_t dim);

/* Deterministic 64-bit hash of (seed, i): splitmix64 finaliser. */
uint64_t ann_hash64(uint64_t seed, uint64_t i);

#endif
