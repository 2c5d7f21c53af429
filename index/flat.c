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
 * bitmap filter it walks only the set bits (one test per 64-slot word, zero
 * words skipped), so an exact scan at 0.1 % selectivity costs N/64 word
 * tests plus the allowed distances.  It runs in two phases per batch of 64
 * slots: gather the slots that need a distance (bitmap, dense flag array,
 * visited table: no node block touched), then compute their distances with
 * the vectors of the next few prefetched, so at low selectivity, where
 * every allowed vector is a cache miss, the misses overlap the arithmetic.
 * Distances are exact float32 (the RAW copy for F16/I8 storage).
 *
 * lk__exact_scan can also finish a filtered graph traversal the planner
 * abandoned (hnsw_search.c): it starts from that traversal's result heap and
 * skips the nodes it visited, whose distances were already computed, so the
 * bail-out costs only the traversal's distances to NOT allowed nodes.
 */
#include <math.h>

#include "pindex.h"

/* Distances of a batch of candidate slots (live, allowed, not skipped) into
 * the max-heap h of the k best.  The vector of the slot SCAN_AHEAD places
 * further is prefetched (its first SCAN_PF_BYTES; the hardware prefetcher
 * follows the rest of a long vector) while the current distance is
 * computed: at low selectivity the allowed slots are far apart, every
 * vector is a cache miss, and without this the scan waits on each one. */
enum { SCAN_BATCH = 64, SCAN_AHEAD = 4, SCAN_PF_BYTES = 512 };

static void scan_batch(const struct lk_index *ix, const struct lk__ctab *t, const float *q,
                       const uint32_t *ids, size_t m, size_t k, const struct lk__filter *f,
                       struct lk__cand *h, size_t *n)
{
    const size_t dim = ix->p.dim, vb = dim * sizeof(float);
    const size_t pf = vb < SCAN_PF_BYTES ? vb : SCAN_PF_BYTES;
    const lk_distance_fn dist = ix->dist_f32;
    for (size_t j = 0; j < m && j < SCAN_AHEAD; j++)
        for (size_t o = 0; o < pf; o += 64)
            __builtin_prefetch((const char *)lk__raw_t(ix, t, ids[j]) + o, 0, 3);
    for (size_t j = 0; j < m; j++) {
        if (j + SCAN_AHEAD < m) {
            const char *v = (const char *)lk__raw_t(ix, t, ids[j + SCAN_AHEAD]);
            for (size_t o = 0; o < pf; o += 64)
                __builtin_prefetch(v + o, 0, 3);
        }
        uint32_t id = ids[j];
        if (f && f->fn && !f->fn(*lk__extid(ix, lk__node_t(ix, t, id)), f->user))
            continue;
        float d = lk__to_distance(ix, dist(q, lk__raw_t(ix, t, id), dim));
        if (*n < k) {
            struct lk__cand x = {d, id};
            lk__maxheap_push(h, n, x);
        } else if (d < h[0].d) {
            struct lk__cand x = {d, id};
            lk__maxheap_replace(h, *n, x);
        }
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
    uint32_t ids[SCAN_BATCH];
    size_t m = 0;
    /* Gather the slots that need a distance (tombstones, slots being
     * inserted and visited ones dropped here, from the dense flag array and
     * the visited table, without touching the node blocks), a batch at a
     * time. */
#define TAKE(id)                                                                                    \
    do {                                                                                            \
        if (((id) < vcap && vis[id] == skip_epoch) ||                                               \
            (lk__dflags(t, id) & (LK__NODE_DELETED | LK__NODE_PENDING)))                            \
            break;                                                                                  \
        ids[m++] = (id);                                                                            \
        if (m == SCAN_BATCH) {                                                                      \
            scan_batch(ix, t, q, ids, m, k, f, out, &n);                                            \
            m = 0;                                                                                  \
        }                                                                                           \
    } while (0)
    if (f && f->bm) {
        /* Bitmap: one test per 64-slot word; only set bits are visited. */
        uint32_t lim = f->bm->nbits < nslots ? f->bm->nbits : nslots;
        size_t words = ((size_t)lim + 63) / 64;
        const uint64_t *bw = f->bm->words;
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = bw[w];
            if (!bits)
                continue;
            if (w + 1 == words && (lim & 63))
                bits &= (UINT64_C(1) << (lim & 63)) - 1; /* bits past the slot count */
            while (bits) {
                uint32_t id = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(bits));
                bits &= bits - 1;
                TAKE(id);
            }
        }
    } else {
        for (uint32_t id = 0; id < nslots; id++)
            TAKE(id);
    }
#undef TAKE
    scan_batch(ix, t, q, ids, m, k, f, out, &n);
    lk__cand_sort(out, n);
    return n;
}
