/*
 * tests/index/lk_test_index.h — shared helpers for the index test suites:
 * a seeded generator of clustered synthetic embeddings (no files needed),
 * and recall@k of an index against the flat (exact) oracle.
 */
#ifndef LK_TEST_INDEX_H
#define LK_TEST_INDEX_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lookalike/index.h"

static inline uint64_t lkt_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline double lkt_uniform(uint64_t *s) { return (double)(lkt_next(s) >> 11) * 0x1.0p-53; }
static inline float lkt_gauss(uint64_t *s)
{
    double u = lkt_uniform(s) + 1e-12, v = lkt_uniform(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* n vectors of dim floats around `nclusters` Gaussian centres (spread
 * 0.35 around unit-variance centres), optionally L2-normalised.  The
 * cluster of row i is written to cluster[i] when non-NULL.  Caller frees. */
static inline float *lkt_clustered(size_t n, size_t dim, size_t nclusters, uint64_t seed, int normalise,
                                   uint32_t *cluster)
{
    uint64_t s = seed;
    float *cent = malloc(nclusters * dim * sizeof *cent);
    float *x = malloc(n * dim * sizeof *x);
    for (size_t i = 0; i < nclusters * dim; i++)
        cent[i] = lkt_gauss(&s);
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(lkt_uniform(&s) * (double)nclusters);
        if (cluster)
            cluster[i] = (uint32_t)c;
        double norm = 0.0;
        for (size_t j = 0; j < dim; j++) {
            x[i * dim + j] = cent[c * dim + j] + 0.35f * lkt_gauss(&s);
            norm += (double)x[i * dim + j] * x[i * dim + j];
        }
        if (normalise)
            for (size_t j = 0; j < dim; j++)
                x[i * dim + j] = (float)(x[i * dim + j] / sqrt(norm));
    }
    free(cent);
    return x;
}

/* Make an index of `kind` with small-test parameters. */
static inline struct lk_index *lkt_new(enum lk_index_kind kind, uint32_t dim, enum lk_metric metric,
                                       enum lk_storage storage)
{
    struct lk_index_params p;
    lk_index_params_default(&p, dim);
    p.kind = kind;
    p.metric = metric;
    p.storage = storage;
    p.ef_construction = 100;
    struct lk_index *ix = NULL;
    if (lk_index_new(&p, &ix, NULL) != LK_OK)
        return NULL;
    return ix;
}

/* Mean recall@k of `ix` against `oracle` over nq queries, with `opts`
 * applied to both.  Recall counts an approximate hit as correct when its
 * distance is <= the k-th exact distance (+ tiny tolerance), so ties among
 * duplicate vectors do not count as misses.  When the oracle returns fewer
 * than k hits, recall is measured against that many. */
static inline double lkt_recall(const struct lk_index *ix, const struct lk_index *oracle, const float *queries,
                                size_t nq, size_t dim, size_t k, const struct lk_search_opts *opts)
{
    struct lk_hit *a = malloc(k * sizeof *a), *b = malloc(k * sizeof *b);
    size_t hit = 0, total = 0;
    for (size_t q = 0; q < nq; q++) {
        size_t na = 0, nb = 0;
        struct lk_search_opts o = opts ? *opts : (struct lk_search_opts){0};
        lk_index_search(ix, queries + q * dim, k, &o, a, &na, NULL);
        o.flags |= LK_SEARCH_FORCE_EXACT;
        lk_index_search(oracle, queries + q * dim, k, &o, b, &nb, NULL);
        if (nb == 0)
            continue;
        float kth = b[nb - 1].distance;
        float tol = 1e-5f * (fabsf(kth) + 1.0f);
        for (size_t i = 0; i < na && i < nb; i++)
            if (a[i].distance <= kth + tol)
                hit++;
        total += nb;
    }
    free(a), free(b);
    return total ? (double)hit / (double)total : 1.0;
}

#endif
