/*
 * index/hnsw_insert.c — INSERT (Algorithm 1) with SELECT-NEIGHBORS-HEURISTIC
 * (Algorithm 4) of Malkov & Yashunin 2018, slot allocation (append or reuse
 * of a tombstoned slot) and lk_index_add.
 *
 * Decisions:
 *  - Level assignment is floor(-ln U * mL), U drawn from a counter-based
 *    generator indexed by the insertion sequence number (lk__random_level),
 *    so the same seed and the same single-threaded insertion order give the
 *    same graph, and a threaded batch can draw all levels up front.
 *  - Algorithm 4 without extendCandidates and keepPrunedConnections (the
 *    paper's defaults for this setting, and what hnswlib does): keep a
 *    candidate only if it is closer to the base element than to every
 *    neighbour kept so far.  A new node keeps at most M links on every
 *    level; existing nodes keep M above level 0 and Mmax0 = 2M at level 0;
 *    when a reverse link overflows that, the node's list is re-selected with
 *    the same heuristic.
 *  - Concurrency: a writer locks one node at a time (its spinlock byte) to
 *    rewrite that node's link list; never two, so there is no lock order to
 *    get wrong.  Link ids are stored with relaxed atomics and the count with
 *    release so lock-free readers always see valid ids.  A node whose level
 *    exceeds the current top level holds ep_mu for its whole insertion (as
 *    hnswlib does) and publishes the new entry point at the end.
 *  - Slot reuse: a tombstoned slot is rewritten in place (it keeps its level
 *    and upper-level block; the entry point is never reused).  Its old
 *    incoming links become ordinary edges to the new vector, which the
 *    heuristic prunes over time.  While it is rewritten it is flagged
 *    PENDING, so it can be traversed but never returned.  A concurrent reader
 *    computing a distance to it at that moment may see a mix of old and new
 *    components; that only perturbs routing for that one query.
 *  - Update (lk_index_add on an id already present) is failure-atomic: the
 *    new vector is written and linked in its own PENDING slot while the old
 *    item stays live; only then is the id map switched (the one step that
 *    can still fail) and the old slot tombstoned.  (lk_index_add_batch
 *    still tombstones updated ids before writing the new rows.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pindex.h"

/* ==== In-degree bookkeeping (reachability) ====
 * Pruning a neighbour list (Algorithm 4 applied to an overflowing node) can
 * remove a node's last incoming level-0 link, leaving it unreachable — a
 * known weakness of HNSW that hnswlib ignores.  Each node counts its level-0
 * in-links in a saturating byte (a saturated counter only under-counts, so
 * it can report a false zero, which merely adds a spare link, but never
 * misses a true zero).  When a count drops to zero the node is re-attached
 * by fix_orphan.  Every decrement's result must be looked at: whichever
 * thread's decrement reaches zero owns the repair.  Concurrent repair is
 * still best effort, so threaded batch builds end with
 * lk__repair_reachability (below). */
static void indeg_inc(char *n)
{
    uint8_t *p = lk__indeg(n), v = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < 255 && !__atomic_compare_exchange_n(p, &v, (uint8_t)(v + 1), 1, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
}
static uint8_t indeg_dec(char *n)
{
    uint8_t *p = lk__indeg(n), v = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > 0 && !__atomic_compare_exchange_n(p, &v, (uint8_t)(v - 1), 1, __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED)) {
    }
    return v ? (uint8_t)(v - 1) : 0;
}

/* Give orphan `x` an incoming level-0 link: append it to the first of its
 * own neighbours (nearest first) that has room; if all are full, replace in
 * its nearest neighbour's list the furthest link whose target keeps another
 * in-link.  Locks one node at a time. */
static void fix_orphan(struct lk_index *ix, const struct lk__ctab *t, uint32_t x)
{
    uint64_t ep = atomic_load_explicit(&ix->s.ep, memory_order_acquire);
    if (ep != LK__EP_NONE && (uint32_t)ep == x)
        return;
    char *xn = lk__node_t(ix, t, x);
    uint32_t cnt = lk__load_count(lk__count0(xn));
    if (cnt > ix->max_m0)
        cnt = ix->max_m0;
    uint32_t nbrs[2 * LK_HNSW_M_MAX];
    for (uint32_t i = 0; i < cnt; i++)
        nbrs[i] = lk__load_link(lk__links0(xn) + i);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t y = nbrs[i];
            if (y == x)
                continue;
            char *yn = lk__node_t(ix, t, y);
            /* y may be PENDING (being linked by another thread): still a
             * valid target, since lk__insert_link merges links already in
             * y's list into its own selection (and counts any it must drop
             * as lost, which re-triggers this repair).  Skipping PENDING
             * neighbours here made the repair give up silently when they
             * were all x had: one of the two causes of the 2-thread lost
             * node (instrumented runs). */
            lk__node_lock(yn);
            uint32_t yc = *lk__count0(yn), *yl = lk__links0(yn);
            int present = 0;
            for (uint32_t j = 0; j < yc; j++)
                present |= yl[j] == x;
            if (present) {
                lk__node_unlock(yn);
                return;
            }
            if (pass == 0 && yc < ix->max_m0) {
                __atomic_store_n(yl + yc, x, __ATOMIC_RELAXED);
                __atomic_store_n(lk__count0(yn), yc + 1, __ATOMIC_RELEASE);
                indeg_inc(xn);
                lk__node_unlock(yn);
                return;
            }
            if (pass == 1 && yc) {
                const float *yv = lk__raw_t(ix, t, y);
                uint32_t best = UINT32_MAX;
                float bd = -1.0f;
                for (uint32_t j = 0; j < yc; j++) {
                    char *zn = lk__node_t(ix, t, yl[j]);
                    if (*lk__indeg(zn) < 2)
                        continue;
                    float d = lk__to_distance(ix, ix->dist_f32(yv, lk__raw_t(ix, t, yl[j]), ix->p.dim));
                    if (d > bd)
                        bd = d, best = j;
                }
                if (best != UINT32_MAX) {
                    /* The indeg >= 2 test above and this decrement are not
                     * atomic together: a concurrent prune elsewhere may
                     * have taken z's other in-link meanwhile, and then it
                     * is THIS decrement that reaches zero.  Ignoring its
                     * result was the 2-thread build's lost node: z was left
                     * with no in-link and nobody repairing it. */
                    uint32_t z = yl[best];
                    uint8_t left = indeg_dec(lk__node_t(ix, t, z));
                    __atomic_store_n(yl + best, x, __ATOMIC_RELAXED);
                    indeg_inc(xn);
                    lk__node_unlock(yn);
                    if (left == 0 && z != x)
                        fix_orphan(ix, t, z);
                    return;
                }
            }
            lk__node_unlock(yn);
        }
    }
}

/* ==== Reachability repair after a threaded batch build ====
 * The in-degree counters above catch the common case (a node losing its
 * last in-link) as it happens, but under concurrent linking fix_orphan is
 * best effort: it skips neighbours that are still PENDING (being linked by
 * another thread) and gives up when every candidate list is full, and a
 * counter can only see single orphans, not a small group that points only
 * at itself.  So a batch build that ran more than one thread ends with this
 * single-threaded pass (writers are excluded by write_mu; readers may run):
 * a breadth-first walk over level-0 links from the entry point, and every
 * live node it does not reach gets an in-link from a REACHED node — its own
 * nearest reached out-neighbour with room, else the nearest reached node
 * with room (exact scan: orphans are rare, about one per thousands of
 * builds, so the O(n) scan costs nothing on average), else (every reached
 * list full) the furthest link of its nearest reached node is replaced,
 * which may orphan that target, so the walk is repeated (a few rounds).
 * Cost when nothing is wrong: one walk, O(n * 2M) link reads. */
static void mark_from(const struct lk_index *ix, const struct lk__ctab *t, uint32_t start, uint32_t *queue,
                      uint64_t *seen)
{
    size_t head = 0, tail = 0;
    if (seen[start >> 6] & (1ULL << (start & 63)))
        return;
    seen[start >> 6] |= 1ULL << (start & 63);
    queue[tail++] = start;
    while (head < tail) {
        char *n = lk__node_t(ix, t, queue[head++]);
        uint32_t cnt = lk__load_count(lk__count0(n));
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t nb = lk__load_link(lk__links0(n) + i);
            if (!(seen[nb >> 6] & (1ULL << (nb & 63)))) {
                seen[nb >> 6] |= 1ULL << (nb & 63);
                queue[tail++] = nb;
            }
        }
    }
}

static int is_seen(const uint64_t *seen, uint32_t id)
{
    return (seen[id >> 6] >> (id & 63)) & 1;
}

/* Make reached node y link to x (append, or replace y's furthest link). */
static void attach_from(struct lk_index *ix, const struct lk__ctab *t, uint32_t y, uint32_t x, int replace)
{
    char *yn = lk__node_t(ix, t, y), *xn = lk__node_t(ix, t, x);
    lk__node_lock(yn);
    uint32_t yc = *lk__count0(yn), *yl = lk__links0(yn);
    for (uint32_t j = 0; j < yc; j++) {
        if (yl[j] == x) {
            lk__node_unlock(yn);
            return;
        }
    }
    if (yc < ix->max_m0) {
        indeg_inc(xn);
        __atomic_store_n(yl + yc, x, __ATOMIC_RELAXED);
        __atomic_store_n(lk__count0(yn), yc + 1, __ATOMIC_RELEASE);
    } else if (replace && yc) {
        const float *yv = lk__raw_t(ix, t, y);
        uint32_t best = 0;
        float bd = -1.0f;
        for (uint32_t j = 0; j < yc; j++) {
            /* prefer a target that keeps another in-link */
            float d = lk__to_distance(ix, ix->dist_f32(yv, lk__raw_t(ix, t, yl[j]), ix->p.dim));
            if (*lk__indeg(lk__node_t(ix, t, yl[j])) >= 2)
                d += 1e30f;
            if (d > bd)
                bd = d, best = j;
        }
        indeg_dec(lk__node_t(ix, t, yl[best]));
        indeg_inc(xn);
        __atomic_store_n(yl + best, x, __ATOMIC_RELAXED);
    }
    lk__node_unlock(yn);
}

void lk__repair_reachability(struct lk_index *ix, uint32_t *queue, uint64_t *seen, uint32_t cap)
{
    uint64_t ep = atomic_load_explicit(&ix->s.ep, memory_order_acquire);
    if (ix->p.kind != LK_INDEX_HNSW || ep == LK__EP_NONE)
        return;
    const struct lk__ctab *t = lk__tab(ix);
    uint32_t ns = atomic_load_explicit(&ix->s.n_slots, memory_order_acquire);
    if (ns > cap)
        ns = cap; /* cannot happen: the caller sized the buffers for the batch */
    for (int round = 0; round < 4; round++) {
        memset(seen, 0, ((size_t)ns + 63) / 64 * sizeof *seen);
        mark_from(ix, t, (uint32_t)ep, queue, seen);
        int replaced = 0;
        for (uint32_t x = 0; x < ns; x++) {
            if (is_seen(seen, x) || lk__load_flags(lk__node_t(ix, t, x)))
                continue; /* reached, or a tombstone (never a result) */
            char *xn = lk__node_t(ix, t, x);
            const float *xv = lk__raw_t(ix, t, x);
            uint32_t y = LK__NONE, cnt = lk__load_count(lk__count0(xn));
            /* 1. its own out-neighbours (its nearest, by construction) */
            for (uint32_t i = 0; i < cnt && y == LK__NONE; i++) {
                uint32_t nb = lk__load_link(lk__links0(xn) + i);
                if (is_seen(seen, nb) && lk__load_count(lk__count0(lk__node_t(ix, t, nb))) < ix->max_m0)
                    y = nb;
            }
            /* 2. exact scan: nearest reached node with room, else nearest */
            uint32_t nearest = LK__NONE;
            if (y == LK__NONE) {
                float bd = 0.0f, nd = 0.0f;
                for (uint32_t i = 0; i < ns; i++) {
                    if (i == x || !is_seen(seen, i))
                        continue;
                    float d = lk__to_distance(ix, ix->dist_f32(xv, lk__raw_t(ix, t, i), ix->p.dim));
                    if (nearest == LK__NONE || d < nd)
                        nearest = i, nd = d;
                    if (lk__load_count(lk__count0(lk__node_t(ix, t, i))) < ix->max_m0 &&
                        (y == LK__NONE || d < bd))
                        y = i, bd = d;
                }
            }
            if (y != LK__NONE) {
                attach_from(ix, t, y, x, 0);
            } else if (nearest != LK__NONE) {
                attach_from(ix, t, nearest, x, 1);
                replaced = 1;
            } else {
                continue;
            }
            mark_from(ix, t, x, queue, seen); /* x's component is reached now */
        }
        if (!replaced)
            return; /* appends never unlink anything: everything is reached */
    }
}

/* ==== Algorithm 4: SELECT-NEIGHBORS-HEURISTIC ====
 * cand[0..n) sorted ascending by distance to the base element; keeps at
 * most `maxn` of them in place at the front and returns how many. */
static size_t select_heuristic(const struct lk_index *ix, const struct lk__ctab *t, struct lk__cand *cand,
                               size_t n, size_t maxn)
{
    /* Even when n <= maxn the heuristic prunes (as in the paper and
     * hnswlib): redundant links cost traversal time without adding reach. */
    size_t r = 0;
    for (size_t i = 0; i < n && r < maxn; i++) {
        const float *v = lk__raw_t(ix, t, cand[i].id);
        int good = 1;
        for (size_t j = 0; j < r; j++) {
            float d = lk__to_distance(ix, ix->dist_f32(v, lk__raw_t(ix, t, cand[j].id), ix->p.dim));
            if (d < cand[i].d) {
                good = 0;
                break;
            }
        }
        if (good)
            cand[r++] = cand[i];
    }
    return r;
}

static void write_links(uint32_t *cntp, uint32_t *links, const struct lk__cand *sel, size_t n)
{
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(links + i, sel[i].id, __ATOMIC_RELAXED);
    __atomic_store_n(cntp, (uint32_t)n, __ATOMIC_RELEASE);
}

/* Add the reverse link e -> q at level lc (Algorithm 1 lines 11-16). */
static void add_reverse(struct lk_index *ix, const struct lk__ctab *t, struct lk__sctx *c, uint32_t e,
                        uint32_t q, unsigned lc, float dq)
{
    uint32_t cap = lc ? ix->max_m : ix->max_m0;
    char *en = lk__node_t(ix, t, e);
    uint32_t *cntp;
    uint32_t *links = lk__links_t(ix, t, e, lc, &cntp);
    lk__node_lock(en);
    uint32_t cnt = *cntp;
    for (uint32_t i = 0; i < cnt; i++) {
        if (links[i] == q) {
            lk__node_unlock(en);
            return;
        }
    }
    if (cnt < cap) {
        if (lc == 0)
            indeg_inc(lk__node_t(ix, t, q));
        __atomic_store_n(links + cnt, q, __ATOMIC_RELAXED);
        __atomic_store_n(cntp, cnt + 1, __ATOMIC_RELEASE);
        lk__node_unlock(en);
        return;
    }
    /* Overflow: re-select e's neighbourhood among its links and q. */
    struct lk__cand *sel = c->sel;
    const float *ev = lk__raw_t(ix, t, e);
    for (uint32_t i = 0; i < cnt; i++) {
        sel[i].id = links[i];
        sel[i].d = lk__to_distance(ix, ix->dist_f32(ev, lk__raw_t(ix, t, links[i]), ix->p.dim));
    }
    sel[cnt].id = q;
    sel[cnt].d = dq;
    lk__cand_sort(sel, cnt + 1);
    size_t r = select_heuristic(ix, t, sel, cnt + 1, cap);
    uint32_t old[2 * LK_HNSW_M_MAX];
    memcpy(old, links, cnt * sizeof *old);
    int kept_q = 0;
    for (size_t i = 0; i < r; i++)
        kept_q |= sel[i].id == q;
    if (lc == 0 && kept_q)
        indeg_inc(lk__node_t(ix, t, q)); /* before the link is visible, see insert */
    write_links(cntp, links, sel, r);
    lk__node_unlock(en);
    if (lc)
        return;
    /* in-degree bookkeeping: dropped links lose one */
    uint32_t orphans[2 * LK_HNSW_M_MAX];
    size_t no = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        int kept = 0;
        for (size_t j = 0; j < r; j++)
            kept |= sel[j].id == old[i];
        if (!kept && indeg_dec(lk__node_t(ix, t, old[i])) == 0)
            orphans[no++] = old[i];
    }
    for (size_t i = 0; i < no; i++)
        fix_orphan(ix, t, orphans[i]);
}

/* ==== Algorithm 1: INSERT ==== */

int lk__insert_link(struct lk_index *ix, struct lk__sctx *c, uint32_t id)
{
    struct lk__store *s = &ix->s;
    uint32_t nslots = atomic_load_explicit(&s->n_slots, memory_order_acquire);
    const struct lk__ctab *t = lk__tab(ix);
    char *node = lk__node_t(ix, t, id);
    unsigned level = *lk__level(node);
    const float *q = lk__raw_t(ix, t, id);
    size_t efc = ix->p.ef_construction > ix->max_m ? ix->p.ef_construction : ix->max_m;
    int rc = lk__ctx_prepare(c, nslots, efc + ix->max_m0 + 2, efc + ix->max_m0 + 2, ix->p.dim);
    if (rc)
        return rc;

    int locked = 0;
    uint64_t ep = atomic_load_explicit(&s->ep, memory_order_acquire);
    if (ep == LK__EP_NONE || level > (unsigned)(ep >> 32)) {
        pthread_mutex_lock(&ix->ep_mu);
        locked = 1;
        ep = atomic_load_explicit(&s->ep, memory_order_acquire);
        if (ep == LK__EP_NONE) {
            atomic_store_explicit(&s->ep, ((uint64_t)level << 32) | id, memory_order_release);
            pthread_mutex_unlock(&ix->ep_mu);
            return LK_OK;
        }
        if (level <= (unsigned)(ep >> 32)) {
            pthread_mutex_unlock(&ix->ep_mu);
            locked = 0;
        }
    }
    uint32_t epid = (uint32_t)ep;
    unsigned top = (unsigned)(ep >> 32);
    if (epid == id) { /* reused entry point cannot happen (never reused) */
        if (locked)
            pthread_mutex_unlock(&ix->ep_mu);
        return LK_OK;
    }
    struct lk__cand cur = {lk__to_distance(ix, ix->dist(q, lk__vec(ix, lk__node_t(ix, t, epid)), ix->p.dim)),
                           epid};
    /* lines 5-7: greedy descent through the levels above the new node's */
    if (top > level)
        cur = lk__greedy(ix, t, q, nslots, cur, top, level);

    struct lk__cand *w = c->sel + ix->max_m0 + 2; /* W, sized ef_construction */
    struct lk__cand eps0 = cur;
    const struct lk__cand *eps = &eps0;
    size_t n_eps = 1;
    for (int lc = (int)(top < level ? top : level); lc >= 0; lc--) {
        /* line 9: W <- SEARCH-LAYER(q, ep, efConstruction, lc) */
        size_t nw = lk__search_layer(ix, t, c, q, nslots, eps, n_eps, efc, (unsigned)lc, id);
        memcpy(w, c->res, nw * sizeof *w);
        lk__maxheap_sort(w, nw); /* the copy is still a max-heap */
        /* line 10: neighbors <- SELECT-NEIGHBORS(q, W, M, lc), Algorithm 4
         * run over W (ascending) with the selection written to nb, so W
         * stays intact as the next level's entry points (line 17). */
        struct lk__cand *nb = c->sel;
        size_t r = 0;
        for (size_t i = 0; i < nw && r < ix->max_m; i++) {
            const float *v = lk__raw_t(ix, t, w[i].id);
            int good = 1;
            for (size_t j = 0; j < r; j++) {
                float d = lk__to_distance(ix, ix->dist_f32(v, lk__raw_t(ix, t, nb[j].id), ix->p.dim));
                if (d < w[i].d) {
                    good = 0;
                    break;
                }
            }
            if (good)
                nb[r++] = w[i];
        }
        /* line 11: add bidirectional connections */
        uint32_t *cntp;
        uint32_t *links = lk__links_t(ix, t, id, (unsigned)lc, &cntp);
        /* count in-links before they become visible (a concurrent prune may
         * drop them right after; its decrement must not come first) */
        if (lc == 0)
            for (size_t i = 0; i < r; i++)
                indeg_inc(lk__node_t(ix, t, nb[i].id));
        /* Other writers may already have added reverse links to this node
         * at this level (it became reachable from a higher level); keep
         * them after our selection while there is room, so no in-link they
         * counted is silently overwritten. */
        uint32_t cap = lc ? ix->max_m : ix->max_m0, lost[2 * LK_HNSW_M_MAX];
        size_t nlost = 0, r2 = r;
        lk__node_lock(node);
        uint32_t had = *cntp;
        for (uint32_t i = 0; i < had; i++) {
            uint32_t o = links[i];
            int dup = 0;
            for (size_t j = 0; j < r2; j++)
                dup |= nb[j].id == o;
            if (dup) {
                if (lc == 0)
                    lost[nlost++] = o; /* counted twice above */
                continue;
            }
            if (r2 < cap)
                nb[r2++].id = o;
            else if (lc == 0)
                lost[nlost++] = o;
        }
        write_links(cntp, links, nb, r2);
        lk__node_unlock(node);
        for (size_t i = 0; i < nlost; i++)
            if (indeg_dec(lk__node_t(ix, t, lost[i])) == 0)
                fix_orphan(ix, t, lost[i]);
        /* copy the selection out of c->sel: add_reverse reuses c->sel */
        struct lk__cand picked[LK_HNSW_M_MAX];
        memcpy(picked, nb, r * sizeof *picked);
        for (size_t i = 0; i < r; i++)
            add_reverse(ix, t, c, picked[i].id, id, (unsigned)lc, picked[i].d);
        /* line 17: ep <- W */
        eps = w;
        n_eps = nw;
        if (!nw) {
            eps = &eps0;
            n_eps = 1;
        }
    }
    if (locked) {
        atomic_store_explicit(&s->ep, ((uint64_t)level << 32) | id, memory_order_release);
        pthread_mutex_unlock(&ix->ep_mu);
        /* the old entry point was exempt from orphan repair; no longer */
        if (__atomic_load_n(lk__indeg(lk__node_t(ix, t, epid)), __ATOMIC_RELAXED) == 0)
            fix_orphan(ix, t, epid);
    }
    if (__atomic_load_n(lk__indeg(node), __ATOMIC_RELAXED) == 0)
        fix_orphan(ix, t, id);
    return LK_OK;
}

/* ==== Slots ==== */

static uint32_t pop_free_slot(struct lk_index *ix)
{
    struct lk__store *s = &ix->s;
    uint64_t ep = atomic_load(&s->ep);
    uint32_t epid = ep == LK__EP_NONE ? LK__NONE : (uint32_t)ep;
    /* Oldest tombstone first (FIFO): the longer a slot has been dead, the
     * less likely a search that started before its deletion is still
     * holding it as a candidate while it is rewritten. */
    while (s->free_head < s->n_free) {
        uint32_t slot = s->free_slots[s->free_head++];
        if (s->free_head > 1024 && s->free_head * 2 > s->n_free) {
            memmove(s->free_slots, s->free_slots + s->free_head, (s->n_free - s->free_head) * sizeof *s->free_slots);
            s->n_free -= s->free_head;
            s->free_head = 0;
        }
        if (slot == epid) { /* never rewrite the entry point: requeue it */
            if (s->n_free < s->free_cap)
                s->free_slots[s->n_free++] = slot;
            if (s->n_free - s->free_head <= 1)
                return LK__NONE;
            continue;
        }
        return slot;
    }
    s->free_head = s->n_free = 0;
    return LK__NONE;
}

int lk__slot_write(struct lk_index *ix, uint64_t id, const float *v, uint64_t seq, uint32_t *slot_out,
                   struct lk_err *err)
{
    struct lk__store *s = &ix->s;
    uint32_t slot = pop_free_slot(ix);
    if (slot != LK__NONE) {
        const struct lk__ctab *t = lk__tab(ix);
        char *n = lk__node_t(ix, t, slot);
        lk__node_lock(n);
        lk__set_flags(t, n, slot, LK__NODE_DELETED | LK__NODE_PENDING);
        uint32_t oc = *lk__count0(n), old[2 * LK_HNSW_M_MAX];
        memcpy(old, lk__links0(n), oc * sizeof *old);
        __atomic_store_n(lk__count0(n), 0, __ATOMIC_RELEASE);
        for (unsigned l = 1; l <= *lk__level(n); l++)
            __atomic_store_n(lk__upper_t(ix, t, slot, l), 0, __ATOMIC_RELEASE);
        lk__encode(ix, v, lk__vec(ix, n));
        if (ix->compressed)
            memcpy((float *)lk__raw_t(ix, t, slot), v, sizeof(float) * ix->p.dim);
        __atomic_store_n(lk__extid(ix, n), id, __ATOMIC_RELAXED);
        lk__node_unlock(n);
        for (uint32_t i = 0; i < oc; i++)
            if (indeg_dec(lk__node_t(ix, t, old[i])) == 0)
                fix_orphan(ix, t, old[i]);
        atomic_fetch_sub(&s->n_deleted, 1);
        *slot_out = slot;
        return LK_OK;
    }
    uint32_t ns = atomic_load_explicit(&s->n_slots, memory_order_relaxed);
    if (ns >= LK_INDEX_SLOTS_MAX)
        return lk_err_set(err, LK_ERR_LIMIT, "index full (%u slots)", LK_INDEX_SLOTS_MAX);
    if (lk__store_grow(ix, ns + 1))
        return lk_err_set(err, LK_ERR_NOMEM, "index: out of memory growing storage");
    const struct lk__ctab *t = lk__tab(ix);
    char *n = lk__node_t(ix, t, ns);
    unsigned level = ix->p.kind == LK_INDEX_HNSW ? lk__random_level(ix, seq) : 0;
    memset(n, 0, ix->off_vec);
    *lk__level(n) = (uint8_t)level;
    lk__set_flags(t, n, ns, LK__NODE_PENDING);
    *lk__extid(ix, n) = id;
    lk__encode(ix, v, lk__vec(ix, n));
    if (ix->vec_bytes + ix->off_vec < ix->node_size)
        memset(n + ix->off_vec + ix->vec_bytes, 0, ix->node_size - ix->off_vec - ix->vec_bytes);
    if (ix->compressed)
        memcpy((float *)lk__raw_t(ix, t, ns), v, sizeof(float) * ix->p.dim);
    uint32_t *up = NULL;
    if (level) {
        up = calloc((size_t)level * (ix->max_m + 1), sizeof *up);
        if (!up)
            return lk_err_set(err, LK_ERR_NOMEM, "index: out of memory");
        atomic_fetch_add_explicit(&s->upper_bytes, (size_t)level * (ix->max_m + 1) * sizeof *up,
                                  memory_order_relaxed);
    }
    __atomic_store_n(&t->upper[ns >> LK__CHUNK_SHIFT][ns & LK__CHUNK_MASK], up, __ATOMIC_RELEASE);
    atomic_store_explicit(&s->n_slots, ns + 1, memory_order_release);
    *slot_out = ns;
    return LK_OK;
}

int lk__publish(struct lk_index *ix, uint64_t id, uint32_t slot, struct lk_err *err)
{
    char *n = lk__node(ix, slot);
    pthread_rwlock_wrlock(&ix->map_lock);
    int rc = lk__map_put(&ix->s.map, id, slot);
    pthread_rwlock_unlock(&ix->map_lock);
    if (rc) {
        /* keep the slot as a tombstone; it will be reused */
        lk__set_flags(lk__tab(ix), n, slot, LK__NODE_DELETED);
        atomic_fetch_add(&ix->s.n_deleted, 1);
        struct lk__store *s = &ix->s;
        if (s->n_free < s->free_cap)
            s->free_slots[s->n_free++] = slot;
        return lk_err_set(err, LK_ERR_NOMEM, "index: out of memory (id map)");
    }
    atomic_fetch_add(&ix->s.n_live, 1);
    lk__set_flags(lk__tab(ix), n, slot, 0);
    return LK_OK;
}

/* ==== Failed inserts ==== */

void lk__slot_abandon(struct lk_index *ix, uint32_t slot)
{
    struct lk__store *s = &ix->s;
    const struct lk__ctab *t = lk__tab(ix);
    char *n = lk__node_t(ix, t, slot);
    uint64_t ep = atomic_load(&s->ep);
    unsigned top = ep == LK__EP_NONE ? 0 : (unsigned)(ep >> 32);
    unsigned level = *lk__level(n);
    if (level > top) {
        /* Above the top level, so never linked (linking it would have
         * raised the entry point) and nothing points at it: drop its
         * upper-level blocks, or the tombstone would break "every level
         * <= the top level" (lk_index_check, the loader). */
        uint32_t **cell = &t->upper[slot >> LK__CHUNK_SHIFT][slot & LK__CHUNK_MASK];
        uint32_t *up = __atomic_load_n(cell, __ATOMIC_ACQUIRE);
        __atomic_store_n(cell, NULL, __ATOMIC_RELEASE);
        if (up)
            atomic_fetch_sub(&s->upper_bytes, (size_t)level * (ix->max_m + 1) * sizeof *up);
        free(up);
        *lk__level(n) = 0;
    }
    lk__set_flags(t, n, slot, LK__NODE_DELETED);
    atomic_fetch_add(&s->n_deleted, 1);
    if (s->n_free < s->free_cap)
        s->free_slots[s->n_free++] = slot;
}

void lk__slots_reset_unlinked(struct lk_index *ix)
{
    struct lk__store *s = &ix->s;
    if (ix->p.kind != LK_INDEX_HNSW || atomic_load(&s->ep) != LK__EP_NONE)
        return;
    /* No entry point: no node was ever linked (the first successful link
     * sets it and deletion never clears it), so nothing points at these
     * slots and no search can reach them. */
    const struct lk__ctab *t = lk__tab(ix);
    uint32_t ns = atomic_load(&s->n_slots);
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t **cell = &t->upper[i >> LK__CHUNK_SHIFT][i & LK__CHUNK_MASK];
        uint32_t *up = __atomic_load_n(cell, __ATOMIC_ACQUIRE);
        if (up) {
            unsigned level = *lk__level(lk__node_t(ix, t, i));
            atomic_fetch_sub(&s->upper_bytes, (size_t)level * (ix->max_m + 1) * sizeof *up);
            __atomic_store_n(cell, NULL, __ATOMIC_RELEASE);
            free(up);
        }
    }
    atomic_store(&s->n_deleted, 0);
    s->n_free = s->free_head = 0;
    atomic_store_explicit(&s->n_slots, 0, memory_order_release);
}

/* Finish an update of `id`: `slot` (linked, PENDING) replaces live slot
 * `old`.  The map entry is overwritten first — the only step that can fail
 * (a rehash); on failure the new slot becomes a reusable tombstone and the
 * old item is untouched.  Then, with the map already pointing at the new
 * slot, the old one is tombstoned and the new one made visible.  Caller
 * holds write_mu. */
int lk__replace_published(struct lk_index *ix, uint64_t id, uint32_t old, uint32_t slot, struct lk_err *err)
{
    struct lk__store *s = &ix->s;
    const struct lk__ctab *t = lk__tab(ix);
    if (s->n_free == s->free_cap) { /* room to queue the old slot for reuse; optional */
        size_t cap = s->free_cap ? s->free_cap * 2 : 64;
        uint32_t *f = realloc(s->free_slots, cap * sizeof *f);
        if (f)
            s->free_slots = f, s->free_cap = cap;
    }
    pthread_rwlock_wrlock(&ix->map_lock);
    int rc = lk__map_put(&s->map, id, slot);
    pthread_rwlock_unlock(&ix->map_lock);
    if (rc) {
        lk__set_flags(t, lk__node_t(ix, t, slot), slot, LK__NODE_DELETED);
        atomic_fetch_add(&s->n_deleted, 1);
        if (s->n_free < s->free_cap)
            s->free_slots[s->n_free++] = slot;
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_add: out of memory (id map); old vector kept");
    }
    lk__set_flags(t, lk__node_t(ix, t, old), old, LK__NODE_DELETED);
    atomic_fetch_add(&s->n_deleted, 1);
    if (s->n_free < s->free_cap)
        s->free_slots[s->n_free++] = old;
    lk__set_flags(t, lk__node_t(ix, t, slot), slot, 0);
    return LK_OK;
}

int lk_index_add(struct lk_index *ix, uint64_t id, const float *vec, struct lk_err *err)
{
    if (!ix || !vec)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_add: NULL argument");
    struct lk__sctx *c = lk__ctx_get(ix);
    if (!c || lk__ctx_prepare(c, 0, 1, 1, ix->p.dim)) {
        lk__ctx_put(ix, c);
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_add: out of memory");
    }
    int rc;
    const float *v = lk__prepare_vector(ix, vec, c->qbuf, err, &rc);
    if (!v) {
        lk__ctx_put(ix, c);
        return rc;
    }
    pthread_mutex_lock(&ix->write_mu);
    /* Update (id present) is failure-atomic: the new vector goes into a
     * fresh PENDING slot and is linked while the old item stays live and
     * mapped; only when everything that can fail has succeeded does
     * lk__replace_published switch the map and tombstone the old slot.  A
     * failure before that leaves the old item exactly as it was. */
    uint32_t old = lk__map_get(&ix->s.map, id); /* writer: no concurrent map writes */
    uint32_t slot;
    rc = lk__slot_write(ix, id, v, ix->s.seq++, &slot, err);
    if (!rc && ix->p.kind == LK_INDEX_HNSW) {
        rc = lk__insert_link(ix, c, slot);
        if (rc) {
            /* Not linked: retire the slot, or the PENDING node would stay
             * in the index forever (and a failed first insert would leave
             * slots without an entry point, which check/save refuse). */
            lk_err_set(err, rc, "lk_index_add: out of memory");
            lk__slot_abandon(ix, slot);
            lk__slots_reset_unlinked(ix);
        }
    }
    if (!rc)
        rc = old == LK__NONE ? lk__publish(ix, id, slot, err) : lk__replace_published(ix, id, old, slot, err);
    pthread_mutex_unlock(&ix->write_mu);
    lk__ctx_put(ix, c);
    return rc;
}
