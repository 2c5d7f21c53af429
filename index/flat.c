/*
 * index/flat.c — exact brute-force search: the whole of an LK_INDEX_FLAT
 * index's search, the oracle for the HNSW tests, and the exact scan that
 * filtered HNSW search switches to at low selectivity.
 *
 * A flat index shares everything else with HNSW (node blocks with zero
 * links, id map, tombstones, persistence): only the search differs, so the
 * two kinds are interchangeable behind lk_index_search.
 *
 * The scan keeps a max-heap of the k best allowed live items.  With a
 * bitmap filter it walks only the set bits (64 slots per word test), so an
 * exact scan at 0.1 % selectivity costs N/64 word tests plus the allowed
 * distances.  Distances are exact float32 (the RAW copy for F16/I8
 * storage).
 *
 * lk__exact_scan can also finish a filtered graph traversal the planner
 * abandoned (hnsw_search.c): it starts from that traversal's result heap and
 * skips the nodes it visited, whose distances were already computed, so the
 * bail-out costs only the traversal's distances to NOT allowed nodes.
 */
#include <math.h>

#include "pindex.h"

static inline void consider(const struct lk_index *ix, const struct lk__ctab *t, const float *q,
                            uint32_t id, size_t k, const struct lk__filter *f, struct lk__cand *h,
                            size_t *n)
{
    if (lk__dflags(t, id) & (LK__NODE_DELETED | LK__NODE_PENDING))
        return;
    if (f && f->fn && !f->fn(*lk__extid(ix, lk__node_t(ix, t, id)), f->user))
        return;
    float d = lk__to_distance(ix, ix->dist_f32(q, lk__raw_t(ix, t, id), ix->p.dim));
    if (*n < k) {
        struct lk__cand x = {d, id};
        lk__maxheap_push(h, n, x);
    } else if (d < h[0].d) {
        struct lk__cand x = {d, id};
        lk__maxheap_replace(h, *n, x);
    }
}

size_t lk__exact_scan(const struct lk_index *ix, struct lk__sctx *c, const float *q, size_t k,
                      const struct lk__filter *f, struct lk__cand *out, size_t n0, uint16_t skip_epoch)
{
    uint32_t nslots = atomic_load_explicit(&((struct lk_index *)ix)->s.n_slots, memory_order_acquire);
    const struct lk__ctab *t = lk__tab(ix);
    size_t n = n0;
    /* Completing an abandoned traversal (skip_epoch != 0): nodes it visited
     * were already offered to the heap out[0..n0); slots past the visited
     * table were not visited.  The test is one predictable branch. */
    const uint16_t *vis = skip_epoch ? c->vis : NULL;
    uint32_t vcap = skip_epoch ? c->vis_cap : 0;
#define SKIPPED(id) ((id) < vcap && vis[id] == skip_epoch)
    if (f && f->bm) {
        uint32_t lim = f->bm->nbits < nslots ? f->bm->nbits : nslots;
        size_t words = ((size_t)lim + 63) / 64;
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = f->bm->words[w];
            while (bits) {
                uint32_t id = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(bits));
                bits &= bits - 1;
                if (id >= lim)
                    break;
                if (!SKIPPED(id))
                    consider(ix, t, q, id, k, f, out, &n);
            }
        }
    } else {
        for (uint32_t id = 0; id < nslots; id++)
            if (!SKIPPED(id))
                consider(ix, t, q, id, k, f, out, &n);
    }
#undef SKIPPED
    lk__cand_sort(out, n);
    return n;
}
