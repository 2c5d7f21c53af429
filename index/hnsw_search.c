/*
 * index/hnsw_search.c — K-NN-SEARCH (Algorithm 5) and SEARCH-LAYER
 * (Algorithm 2) of Malkov & Yashunin 2018, with filtered traversal, and
 * lk_index_search, the single entry point for both index kinds.
 *
 * Hot-path decisions:
 *  - One node block holds a node's level-0 links and its vector; expanding a
 *    candidate first collects its not-yet-visited neighbours (visited table
 *    reset by a 16-bit epoch, cleared only every 65535 searches), issues a
 *    prefetch for each neighbour's vector, then computes the distances, so
 *    the memory latency of the second neighbour overlaps the arithmetic of
 *    the first.
 *  - Early abandoning (L2 only): once the result set W holds ef items a
 *    neighbour matters only if it is closer than the furthest result, so
 *    its distance is computed by the bounded kernel (lk_l2_bounded_fn),
 *    which stops once the partial sum of squares exceeds that bound.  It is
 *    exact: below the bound it returns the plain kernel's bits, so results
 *    and tie-breaking are unchanged.  Inner-product partial sums are not
 *    monotone, so IP/COSINE keep the plain kernel.
 *  - The unvisited neighbours are collected without a branch on the
 *    visited test (see the loop).
 *  - Candidate set and result set are binary heaps in the pooled search
 *    context: no allocation per query.
 *  - Readers take no locks (see pindex.h): link counts are loaded with
 *    acquire, ids with relaxed atomics, and ids >= the slot count observed
 *    at the start of the search are ignored.
 *
 * Filtered search (the allow-list: bitmap over slots and/or a predicate on
 * the external id): the filter applies DURING traversal.  Nodes that are
 * not allowed — and tombstones and nodes still being inserted — are
 * expanded like any other (so the graph stays navigable) but never enter the
 * result set W; the stop test of Algorithm 2 uses the furthest ALLOWED
 * result, so the search runs until ef allowed items are found.  Which of
 * traversal and exact scan of the allowed items runs is decided by the
 * planner in lk_index_search (rules in index.h and docs/params.md): the
 * graph when it is cheaper even for a filter independent of the query; the
 * scan up front when even a filter that follows the query could not make
 * the graph clearly cheaper, or finding out would cost too much; in between
 * a probe of the allowed density around the query after the descent, and in
 * every traversal a budget that abandons it for the scan ("bail-out") as
 * soon as the allowed density it observes says the scan is cheaper.  The bail-out keeps the traversal's allowed results and skips
 * the nodes it visited, so its answer is exactly the scan's.  If a graph
 * search ends with fewer than k allowed hits, an exact scan completes it: a
 * query for k gets k results whenever k live allowed items exist.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pindex.h"

static int cand_cmp(const void *a, const void *b)
{
    const struct lk__cand *x = a, *y = b;
    if (x->d < y->d)
        return -1;
    if (x->d > y->d)
        return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void lk__cand_sort(struct lk__cand *a, size_t n)
{
    qsort(a, n, sizeof *a, cand_cmp);
}

static inline int filter_pass(const struct lk_index *ix, const struct lk__ctab *t, char *n, uint32_t id,
                              const struct lk__filter *f)
{
    if (lk__dflags(t, id) & (LK__NODE_DELETED | LK__NODE_PENDING))
        return 0;
    if (f) {
        if (f->bm && (id >= f->bm->nbits || !((f->bm->words[id >> 6] >> (id & 63)) & 1u)))
            return 0;
        if (f->fn && !f->fn(*lk__extid(ix, n ? n : lk__node_t(ix, t, id)), f->user))
            return 0;
    }
    return 1;
}

/* Candidate heap growth: filtered traversal admits nodes that never enter
 * the result set, so the candidate heap is not bounded by ef.  Grows by
 * doubling (kept in the pooled context, so amortised across queries).
 * Returns 0 if no room (allocation failure: the candidate is dropped). */
static __attribute__((noinline)) int grow_cand(struct lk__sctx *c)
{
    size_t cap = c->cand_cap * 2 + 64;
    struct lk__cand *n = realloc(c->cand, cap * sizeof *n);
    if (!n)
        return 0;
    c->cand = n;
    c->cand_cap = cap;
    return 1;
}

static inline uint16_t next_epoch(struct lk__sctx *c)
{
    if (++c->epoch == 0) {
        memset(c->vis, 0, (size_t)c->vis_cap * sizeof *c->vis);
        c->epoch = 1;
    }
    return c->epoch;
}

/* Greedy descent (Algorithm 5 lines 4-6 with ef = 1): from `ep` at level
 * `top` down to level `stop`+1, move to the closest neighbour until no
 * neighbour is closer. */
struct lk__cand lk__greedy(const struct lk_index *ix, const struct lk__ctab *t, const float *q,
                           uint32_t nslots, struct lk__cand ep, unsigned top, unsigned stop)
{
    for (unsigned lc = top; lc > stop; lc--) {
        int changed = 1;
        while (changed) {
            changed = 0;
            uint32_t *cntp;
            uint32_t *links = lk__links_t(ix, t, ep.id, lc, &cntp);
            uint32_t cnt = lk__load_count(cntp);
            if (cnt > ix->max_m)
                cnt = ix->max_m;
            for (uint32_t i = 0; i < cnt; i++) {
                uint32_t nb = lk__load_link(links + i);
                if (nb >= nslots)
                    continue;
                char *nn = lk__node_t(ix, t, nb);
                if (*lk__level(nn) < lc) /* stale during concurrent level change: skip */
                    continue;
                /* only a neighbour closer than ep is useful: early abandon (L2) */
                float d = ix->dist_bounded ? ix->dist_bounded(q, lk__vec(ix, nn), ix->p.dim, ep.d)
                                           : lk__to_distance(ix, ix->dist(q, lk__vec(ix, nn), ix->p.dim));
                if (d < ep.d) {
                    ep.d = d;
                    ep.id = nb;
                    changed = 1;
                }
            }
        }
    }
    return ep;
}

/* Budget of one filtered traversal (the planner's bail-out, see
 * lk_index_search).  evals counts level-0 distance computations; cands the
 * nodes that qualified as candidates (closer than the furthest result) and
 * found how many of those were allowed.  The traversal stops with bailed = 1
 * when evals exceeds max_evals (it has spent what the whole exact scan
 * costs), or, at any expansion once cands >= min_sample, when the distances
 * still to compute at the observed allowed density,
 * unfiltered_evals * cands / (found + 1) - evals, exceed the scan's cost
 * `allowed` (in graph distances; what is spent is spent: only the rest
 * counts). */
struct fbudget {
    size_t max_evals, min_sample;
    double unfiltered_evals, allowed; /* E * ef; A in graph-eval units */
    size_t evals, cands, found;
    int bailed;
};

/* SEARCH-LAYER (Algorithm 2).  `filtered` is a compile-time constant at
 * each call site: 0 = every node is a result (construction), 1 = results
 * must pass filter_pass.  Entry points eps[] are visited first.  Returns
 * the number of results left in the max-heap c->res.  With a budget `bu`
 * (filtered only) the traversal may stop early (bu->bailed); every node it
 * marked visited has then been evaluated and offered to the result heap, so
 * an exact scan that skips visited nodes and starts from the heap is exact
 * (lk__exact_scan). */
/* Bytes of each neighbour's vector to prefetch.  With early abandoning a
 * rejected vector is still read to ~80 % of its length (pdistance.h), so
 * fetching most of it pays: 2048 was ~5 % faster than 1024 on
 * Fashion-MNIST (3136-byte vectors); the hardware streamer covers the rest. */
enum { PF_MAX_BYTES = 2048 };

static inline __attribute__((always_inline)) size_t
search_layer_impl(const struct lk_index *ix, const struct lk__ctab *t, struct lk__sctx *c, const float *q,
                  uint32_t nslots, const struct lk__cand *eps, size_t n_eps, size_t ef, unsigned level,
                  uint32_t self, const int filtered, const struct lk__filter *f, struct fbudget *bu)
{
    uint16_t epoch = next_epoch(c);
    uint16_t *vis = c->vis;
    struct lk__cand *cand = c->cand, *res = c->res;
    size_t nc = 0, nr = 0;
    const uint32_t cap = level ? ix->max_m : ix->max_m0;
    const size_t dim = ix->p.dim;
    const lk_distance_fn dist = ix->dist;
    const lk_l2_bounded_fn bdist = ix->dist_bounded; /* NULL unless L2 */
    float worst = INFINITY;

    for (size_t i = 0; i < n_eps; i++) {
        uint32_t id = eps[i].id;
        if (vis[id] == epoch)
            continue;
        vis[id] = epoch;
        if (LK__UNLIKELY(nc + 1 >= c->cand_cap) && grow_cand(c))
            cand = c->cand;
        if (LK__LIKELY(nc + 1 < c->cand_cap))
            lk__minheap_push(cand, &nc, eps[i]);
        if (id != self && (!filtered || filter_pass(ix, t, lk__node_t(ix, t, id), id, f))) {
            lk__maxheap_push(res, &nr, eps[i]);
            if (nr > ef)
                lk__maxheap_pop(res, &nr);
        }
    }
    if (nr >= ef)
        worst = res[0].d;

    uint32_t *buf = c->buf;
    /* hoisted: the compiler cannot prove stores to vis/buf/heaps leave the
     * chunk table and geometry unchanged (char may alias anything) */
    char *const *nodes = t->node;
    const size_t nsz = ix->node_size, voff = ix->off_vec;
    const size_t pf_bytes = ix->vec_bytes < PF_MAX_BYTES ? ix->vec_bytes : PF_MAX_BYTES;
#define LK__VEC(id) (nodes[(id) >> LK__CHUNK_SHIFT] + (size_t)((id) & LK__CHUNK_MASK) * nsz + voff)
    while (nc) {
        struct lk__cand cur = lk__minheap_pop(cand, &nc);
        if (cur.d > worst)
            break; /* Algorithm 2 line 7: nearest candidate is worse than the furthest result */
        uint32_t *cntp;
        uint32_t *links = lk__links_t(ix, t, cur.id, level, &cntp);
        uint32_t cnt = lk__load_count(cntp);
        if (LK__UNLIKELY(cnt > cap))
            cnt = cap;
        /* Collect the unvisited neighbours without a branch on the visited
         * test: whether a neighbour was seen is a coin flip the predictor
         * cannot learn (a mispredict per link was a tenth of the search time
         * at 128 dims).  Every id is stored and the count advances only for
         * fresh ones.  An id out of range (a node inserted after our
         * snapshot) tests and marks cur.id instead, which is already marked,
         * so it never counts. */
        uint32_t m = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t nb = lk__load_link(links + i);
            uint32_t slot = nb < nslots ? nb : cur.id;
            uint32_t fresh = vis[slot] != epoch;
            vis[slot] = epoch;
            buf[m] = nb;
            m += fresh;
        }
        /* Prefetch: the first lines of the first few neighbours now, then
         * keep PF_AHEAD vectors in flight while computing distances, so
         * memory latency overlaps arithmetic without flooding the line
         * fill buffers (prefetching all 2M at once stalled on them). */
        enum { PF_AHEAD = 3 };
        for (uint32_t j = 0; j < m && j < PF_AHEAD; j++) {
            const char *v = LK__VEC(buf[j]);
            for (size_t o = 0; o < pf_bytes; o += 64)
                __builtin_prefetch(v + o, 0, 3);
        }
        for (uint32_t j = 0; j < m; j++) {
            uint32_t nb = buf[j];
            if (j + PF_AHEAD < m) {
                const char *v = LK__VEC(buf[j + PF_AHEAD]);
                for (size_t o = 0; o < pf_bytes; o += 64)
                    __builtin_prefetch(v + o, 0, 3);
            }
            /* Early abandoning: once W holds ef results a neighbour only
             * matters if it is closer than `worst`, and most are not; the
             * bounded L2 kernel stops reading its vector once the partial
             * sum exceeds worst (returning a value > worst, rejected below)
             * and is otherwise bit-identical to `dist`, so results and ties
             * are unchanged.  Before W is full there is no finite bound. */
            float d;
            if (bdist && nr >= ef)
                d = bdist(q, LK__VEC(nb), dim, worst);
            else
                d = lk__to_distance(ix, dist(q, LK__VEC(nb), dim));
            if (nr < ef || d < worst) {
                struct lk__cand x = {d, nb};
                /* On allocation failure the candidate is not expanded but
                 * still offered to the results (the bail-out's exact scan
                 * relies on every visited node having been offered). */
                if (LK__UNLIKELY(nc + 1 >= c->cand_cap) && grow_cand(c))
                    cand = c->cand;
                if (LK__LIKELY(nc + 1 < c->cand_cap))
                    lk__minheap_push(cand, &nc, x);
                int pass = nb != self && (!filtered || filter_pass(ix, t, NULL, nb, f));
                if (filtered && bu) {
                    bu->cands++;
                    bu->found += (size_t)pass;
                }
                if (pass) {
                    if (nr < ef)
                        lk__maxheap_push(res, &nr, x);
                    else
                        lk__maxheap_replace(res, nr, x);
                    if (nr >= ef)
                        worst = res[0].d;
                }
            }
        }
        if (filtered && bu) {
            /* the planner's bail-out test, once per expansion */
            bu->evals += m;
            int bail = bu->evals > bu->max_evals;
            if (!bail && bu->cands >= bu->min_sample)
                bail = bu->unfiltered_evals * (double)bu->cands / (double)(bu->found + 1) -
                           (double)bu->evals >
                       bu->allowed;
            if (bail) {
                bu->bailed = 1;
                break;
            }
        }
        /* The next candidate to expand is cand[0]: fetch its link list
         * (the first lines of its node block) while the heap work and the
         * loop test run. */
        if (nc) {
            const char *nx = LK__VEC(cand[0].id) - voff;
            __builtin_prefetch(nx, 0, 3);
            __builtin_prefetch(nx + 64, 0, 3);
        }
    }
#undef LK__VEC
    return nr;
}

size_t lk__search_layer(const struct lk_index *ix, const struct lk__ctab *t, struct lk__sctx *c,
                        const float *q, uint32_t nslots, const struct lk__cand *eps, size_t n_eps,
                        size_t ef, unsigned level, uint32_t self)
{
    return search_layer_impl(ix, t, c, q, nslots, eps, n_eps, ef, level, self, 0, NULL, NULL);
}

static size_t search_layer_filtered(const struct lk_index *ix, const struct lk__ctab *t,
                                    struct lk__sctx *c, const float *q, uint32_t nslots,
                                    const struct lk__cand *eps, size_t ef, const struct lk__filter *f,
                                    struct fbudget *bu)
{
    return search_layer_impl(ix, t, c, q, nslots, eps, 1, ef, 0, LK__NONE, 1, f, bu);
}

/* ==== lk_index_search ==== */

/* The planner's two dimension-dependent constants (index.h): E(dim), level-0
 * graph distances per unit of ef / p, and K(dim), the cost of one graph
 * distance in exact-scan distances.  At low dimension a distance is cheap
 * and the traversal's random access and heap work dominate (the _LOWDIM
 * values, at dim <= 128); at high dimension the arithmetic dominates both
 * paths (the other values, at dim >= 768); log(dim)-interpolated between. */
static double by_dim(uint32_t dim, double lowdim, double highdim)
{
    if (dim <= 128)
        return lowdim;
    if (dim >= 768)
        return highdim;
    double f = log2((double)dim / 128.0) / log2(768.0 / 128.0);
    return lowdim + f * (highdim - lowdim);
}

/* Allowed count among the level-0 neighbours of node `id` into *found, the
 * neighbours tested into *n (bit tests only, no distance). */
static void neighbour_density(const struct lk_index *ix, const struct lk__ctab *t, uint32_t nslots,
                              uint32_t id, const struct lk__filter *f, double *n, double *found)
{
    uint32_t *cntp;
    uint32_t *links = lk__links_t(ix, t, id, 0, &cntp);
    uint32_t cnt = lk__load_count(cntp);
    if (cnt > ix->max_m0)
        cnt = ix->max_m0;
    for (uint32_t i = 0; i < cnt; i++) {
        uint32_t nb = lk__load_link(links + i);
        if (nb >= nslots)
            continue;
        *n += 1;
        *found += filter_pass(ix, t, NULL, nb, f);
    }
}

/* Is `found` of `n` clearly more than the global selectivity `sel` that a
 * filter independent of the graph's neighbourhoods shows (LK_FILTER_PROBE_Z
 * standard deviations above it)? */
static int denser_than(double n, double found, double sel)
{
    if (n == 0)
        return 0;
    return found >= sel * n + LK_FILTER_PROBE_Z * sqrt(n * sel * (1.0 - sel));
}

/* Planner rule 4, first probe (index.h): does the bitmap's allowed set
 * follow the graph's neighbourhoods at all?  The level-0 neighbours of
 * LK_FILTER_PROBE_NODES allowed nodes, taken at fixed spread positions of
 * the bitmap, are tested: for a filter independent of the data (a random
 * stock filter) their allowed density is the global selectivity, and then
 * no query can see more, so the scan runs without paying the descent.  A
 * few link lists read, no distance; the same answer for every query with
 * this bitmap. */
static int probe_bitmap(const struct lk_index *ix, const struct lk__ctab *t, uint32_t nslots,
                        const struct lk__filter *f, double sel)
{
    const struct lk_bitmap *bm = f->bm;
    uint32_t lim = bm->nbits < nslots ? bm->nbits : nslots;
    size_t words = ((size_t)lim + 63) / 64;
    double n = 0, found = 0;
    for (unsigned i = 0; i < LK_FILTER_PROBE_NODES && words; i++) {
        /* first set bit at or after an evenly spread start word */
        size_t w = (size_t)((2 * i + 1) * (uint64_t)words / (2 * LK_FILTER_PROBE_NODES));
        for (size_t j = 0; j < words; j++, w = w + 1 == words ? 0 : w + 1) {
            if (!bm->words[w])
                continue;
            uint32_t id = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(bm->words[w]));
            if (id < lim)
                neighbour_density(ix, t, nslots, id, f, &n, &found);
            break;
        }
    }
    return denser_than(n, found, sel);
}

/* Planner rule 4, second probe (index.h): is the allowed density among the
 * level-0 neighbours of the traversal's entry point `e` (the node the
 * descent found nearest the query) clearly above the global selectivity
 * `sel`?  (Whether it is high enough for the graph to win is the budget's
 * judgement, on a larger sample.)  Bit tests only: the neighbour list is
 * in e's node block, which the descent has just read. */
static int probe_density(const struct lk_index *ix, const struct lk__ctab *t, uint32_t nslots,
                         uint32_t e, const struct lk__filter *f, double sel)
{
    double n = 0, found = 0;
    neighbour_density(ix, t, nslots, e, f, &n, &found);
    return denser_than(n, found, sel);
}

/* Returns 0 if the slot was deleted (or is being reused) since it entered
 * the result set: the id read may then belong to the new occupant, so the
 * hit is dropped rather than reported with a stale distance. */
static int to_hit(const struct lk_index *ix, const struct lk__ctab *t, struct lk__cand x, struct lk_hit *h)
{
    h->id = __atomic_load_n(lk__extid(ix, lk__node_t(ix, t, x.id)), __ATOMIC_ACQUIRE);
    if (lk__dflags(t, x.id) & (LK__NODE_DELETED | LK__NODE_PENDING))
        return 0;
    h->distance = x.d;
    h->similarity = ix->is_ip ? 1.0f - x.d : 1.0f - x.d * 0.5f;
    return 1;
}

int lk_index_search(const struct lk_index *ix, const float *query, size_t k,
                    const struct lk_search_opts *opts, struct lk_hit *out, size_t *n_out,
                    struct lk_err *err)
{
    if (n_out)
        *n_out = 0;
    if (!ix || !query || !out || !n_out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_search: NULL argument");
    if (k == 0 || k > LK_INDEX_K_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_search: k %zu outside [1, %u]", k,
                          LK_INDEX_K_MAX);
    static const struct lk_search_opts defaults;
    if (!opts)
        opts = &defaults;
    size_t ef = opts->ef_search ? opts->ef_search : ix->p.ef_search;
    if (ef > LK_HNSW_EF_SEARCH_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_search: ef_search %zu above %u", ef,
                          LK_HNSW_EF_SEARCH_MAX);
    if (opts->allow && opts->allow->ix != ix)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_search: bitmap belongs to another index");
    if (ef < k)
        ef = k;

    struct lk__sctx *c = lk__ctx_get(ix);
    if (!c)
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_search: out of memory");
    /* Snapshot: slot count first, then the table (published before the
     * count grows), then the entry point. */
    uint32_t nslots = atomic_load_explicit(&((struct lk_index *)ix)->s.n_slots, memory_order_acquire);
    const struct lk__ctab *t = lk__tab(ix);
    uint64_t ep = atomic_load_explicit(&((struct lk_index *)ix)->s.ep, memory_order_acquire);
    size_t heap = ef > k ? ef : k;
    int rc = lk__ctx_prepare(c, nslots, heap + (size_t)ix->max_m0 + 1,
                             (size_t)ix->max_m0 + ix->max_m + 2, ix->p.dim);
    if (rc) {
        lk__ctx_put(ix, c);
        return lk_err_set(err, rc, "lk_index_search: out of memory");
    }
    const float *q = lk__prepare_vector(ix, query, c->qbuf, err, &rc);
    if (!q) {
        lk__ctx_put(ix, c);
        return rc;
    }

    struct lk__filter filt = {opts->allow, opts->allow_fn, opts->allow_user};
    const struct lk__filter *f = (filt.bm || filt.fn) ? &filt : NULL;
    size_t live = atomic_load_explicit(&((struct lk_index *)ix)->s.n_live, memory_order_relaxed);
    size_t deleted = atomic_load_explicit(&((struct lk_index *)ix)->s.n_deleted, memory_order_relaxed);

    /* ---- Filtered-search planner (index.h, docs/params.md) ----
     * Units: one exact-scan distance computation.  The exact scan of the
     * allowed set costs A; a traversal costs about K * E * ef / p where p
     * is the density of allowed items among the nodes it meets: the global
     * selectivity s = A / live for a filter independent of the query, much
     * higher for one that follows the query.  Rules 1-4 of index.h. */
    enum lk_search_path path = LK_PATH_GRAPH;
    size_t allowed = SIZE_MAX;
    struct fbudget bu = {SIZE_MAX, SIZE_MAX, 0.0, 0.0, 0, 0, 0, 0};
    int exact = ix->p.kind == LK_INDEX_FLAT || (opts->flags & LK_SEARCH_FORCE_EXACT) || ep == LK__EP_NONE;
    int probe = 0;
    double sel = 1.0;
    if (f) {
        if (filt.bm)
            allowed = filt.bm->count;
        if (filt.fn && opts->allowed_estimate && opts->allowed_estimate < allowed)
            allowed = opts->allowed_estimate;
    }
    if (!exact && f && allowed != SIZE_MAX && !(opts->flags & LK_SEARCH_FORCE_GRAPH)) {
        double K = by_dim(ix->p.dim, LK_FILTER_GRAPH_EVAL_COST_LOWDIM, LK_FILTER_GRAPH_EVAL_COST);
        double unfiltered = by_dim(ix->p.dim, LK_FILTER_GRAPH_EVALS_PER_EF_LOWDIM,
                                   LK_FILTER_GRAPH_EVALS_PER_EF) * (double)ef;
        double scan = (double)allowed / K; /* in graph distances */
        sel = live ? (double)allowed / (double)live : 1.0;
        if (sel > 1.0)
            sel = 1.0;
        /* descent through the upper levels, in graph distances (measured
         * 43 on a 5,000-node graph of top level 3, 84 on 100,000 / 4) */
        double descent = (double)ix->p.M * (double)((ep >> 32) + 1);
        if (allowed <= (size_t)LK_FILTER_EXACT_MIN_COUNT_PER_K * k ||
            scan < LK_FILTER_GRAPH_MIN_GAIN * unfiltered) {
            exact = 1; /* rule 1: even a filter that follows the query leaves the graph no win */
        } else if (unfiltered / sel > LK_FILTER_GRAPH_MARGIN * scan &&
                   descent > LK_FILTER_PROBE_MAX_SHARE * scan) {
            exact = 1; /* rule 3: only a correlated filter could win, and finding out costs too much */
        } else {
            /* rule 2 (graph wins even at p = s) or rule 4 (probe first) */
            probe = unfiltered / sel > LK_FILTER_GRAPH_MARGIN * scan;
            if (probe && filt.bm && !probe_bitmap(ix, t, nslots, f, sel))
                exact = 1; /* rule 4, first probe: the filter ignores the neighbourhoods */
            /* the budget counts a graph distance at the cost it has in a
             * traversal that keeps finding allowed nodes (cache-local) */
            double budget = (double)allowed / by_dim(ix->p.dim, LK_FILTER_BUDGET_EVAL_COST_LOWDIM,
                                                    LK_FILTER_BUDGET_EVAL_COST);
            bu.max_evals = (size_t)budget;
            bu.unfiltered_evals = unfiltered;
            bu.allowed = budget;
            /* density below unfiltered / budget loses: sample enough
             * candidates to see LK_FILTER_DENSITY_SAMPLE allowed ones there */
            bu.min_sample = (size_t)ceil(LK_FILTER_DENSITY_SAMPLE * budget / unfiltered);
        }
    }
    if (exact)
        path = LK_PATH_EXACT;

    struct lk__cand *res = c->res;
    size_t n = 0;
    uint16_t skip = 0;
    if (!exact) {
        struct lk__cand e = {0, (uint32_t)ep};
        unsigned top = (unsigned)(ep >> 32);
        e.d = lk__to_distance(ix, ix->dist(q, lk__vec(ix, lk__node_t(ix, t, e.id)), ix->p.dim));
        e = lk__greedy(ix, t, q, nslots, e, top, 0);
        if (probe && !probe_density(ix, t, nslots, e.id, f, sel)) {
            /* rule 4: the filter does not follow the query here; nothing
             * visited at level 0, so the scan starts afresh */
            path = LK_PATH_BAILOUT;
            exact = 1;
        } else {
            /* Algorithm 5 line 7: SEARCH-LAYER(q, ep, ef, 0); results are
             * only allowed, live nodes (filter_pass rejects tombstones). */
            n = search_layer_filtered(ix, t, c, q, nslots, &e, ef, f, f ? &bu : NULL);
        }
        if (bu.bailed) {
            /* Abandoned: the exact scan starts from the allowed items met so
             * far (the k best of the heap) and skips visited nodes.  With
             * compressed storage the heap's distances are approximate, so
             * the scan starts afresh. */
            path = LK_PATH_BAILOUT;
            exact = 1;
            if (ix->compressed) {
                n = 0;
            } else {
                while (n > k)
                    lk__maxheap_pop(res, &n);
                skip = c->epoch;
            }
        } else if (!exact) {
            if (ix->compressed) {
                /* exact float32 re-ranking of all ef candidates */
                for (size_t i = 0; i < n; i++)
                    res[i].d = lk__to_distance(ix, ix->dist_f32(q, lk__raw_t(ix, t, res[i].id), ix->p.dim));
                lk__cand_sort(res, n);
            } else {
                lk__maxheap_sort(res, n); /* res is a max-heap: sort ascending in place */
            }
            if (n > k)
                n = k;
            if (n < k && (f || deleted || n < live)) {
                exact = 1; /* complete with an exact scan (k live allowed results when they exist) */
                path = LK_PATH_COMPLETED;
                n = 0;
            }
        }
    }
    if (exact)
        n = lk__exact_scan(ix, c, q, k, f, res, skip ? n : 0, skip);
    if (opts->info) {
        opts->info->path = path;
        opts->info->allowed = allowed;
        opts->info->graph_evals = bu.evals;
    }

    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        struct lk_hit h;
        if (!to_hit(ix, t, res[i], &h))
            continue;
        if ((opts->flags & LK_SEARCH_MIN_SIMILARITY) && !(h.similarity >= opts->min_similarity))
            continue;
        if ((opts->flags & LK_SEARCH_MAX_DISTANCE) && !(h.distance <= opts->max_distance))
            continue;
        out[w++] = h;
    }
    *n_out = w;
    lk__ctx_put(ix, c);
    return LK_OK;
}
