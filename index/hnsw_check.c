/*
 * index/hnsw_check.c — lk_index_check: structural integrity of the graph
 * (in the spirit of hnswlib's checkIntegrity and Redis's
 * hnsw_validate_graph).
 *
 * Checked: flags and levels in range; link counts within Mmax0 / Mmax;
 * every link in range, not a self-link, pointing to a node whose level is at
 * least the link's level; the entry point holds the top level and no node
 * is above it; the id map and the nodes agree (each live node is in the map
 * under its external id, each map entry points to a live node, counts
 * match); every live node is reachable from the entry point over level-0
 * links (tombstones included in the walk, as searches traverse them).
 * Reported as LK_ERR_CORRUPT with the first problem found.
 */
#include <stdlib.h>
#include <string.h>

#include "pindex.h"

int lk_index_check(const struct lk_index *cix, struct lk_err *err)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!ix)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_check: NULL index");
    pthread_mutex_lock(&ix->write_mu);
    uint32_t ns = atomic_load(&ix->s.n_slots);
    const struct lk__ctab *t = lk__tab(ix);
    uint64_t ep = atomic_load(&ix->s.ep);
    int rc = LK_OK;
    size_t live = 0, deleted = 0;
    uint32_t top = ep == LK__EP_NONE ? 0 : (uint32_t)(ep >> 32);
    uint32_t *queue = NULL;
    uint64_t *seen = NULL;
    int hnsw = ix->p.kind == LK_INDEX_HNSW;

    if (hnsw && ns && ep == LK__EP_NONE) {
        rc = lk_err_set(err, LK_ERR_CORRUPT, "index has %u slots but no entry point", ns);
        goto out;
    }
    if (hnsw && ep != LK__EP_NONE) {
        uint32_t e = (uint32_t)ep;
        if (e >= ns || *lk__level(lk__node_t(ix, t, e)) != top) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "entry point %u invalid or not at top level %u", e, top);
            goto out;
        }
    }
    for (uint32_t id = 0; id < ns; id++) {
        char *n = lk__node_t(ix, t, id);
        uint8_t fl = lk__load_flags(n), lvl = *lk__level(n);
        if (fl != lk__dflags(t, id)) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u: flags 0x%x, dense copy 0x%x", id, fl, lk__dflags(t, id));
            goto out;
        }
        if (fl & ~(LK__NODE_DELETED | LK__NODE_PENDING)) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u: unknown flags 0x%x", id, fl);
            goto out;
        }
        if (fl & LK__NODE_PENDING) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u: still pending outside an insertion", id);
            goto out;
        }
        if (fl & LK__NODE_DELETED)
            deleted++;
        else
            live++;
        if (!hnsw) {
            if (lvl || *lk__count0(n)) {
                rc = lk_err_set(err, LK_ERR_CORRUPT, "flat node %u has links", id);
                goto out;
            }
            continue;
        }
        if (lvl > top) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u: level %u above top level %u", id, lvl, top);
            goto out;
        }
        if (lvl && !lk__upper_t(ix, t, id, 1)) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u: level %u but no upper links", id, lvl);
            goto out;
        }
        for (unsigned l = 0; l <= lvl; l++) {
            uint32_t *cntp;
            uint32_t *links = lk__links_t(ix, t, id, l, &cntp);
            uint32_t cnt = *cntp, cap = l ? ix->max_m : ix->max_m0;
            if (cnt > cap) {
                rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u level %u: %u links > %u", id, l, cnt, cap);
                goto out;
            }
            for (uint32_t i = 0; i < cnt; i++) {
                uint32_t nb = links[i];
                if (nb >= ns || nb == id) {
                    rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u level %u: bad link %u", id, l, nb);
                    goto out;
                }
                if (*lk__level(lk__node_t(ix, t, nb)) < l) {
                    rc = lk_err_set(err, LK_ERR_CORRUPT, "node %u level %u: link to node %u of level %u",
                                    id, l, nb, *lk__level(lk__node_t(ix, t, nb)));
                    goto out;
                }
            }
        }
    }
    if (live != atomic_load(&ix->s.n_live) || deleted != atomic_load(&ix->s.n_deleted)) {
        rc = lk_err_set(err, LK_ERR_CORRUPT, "counts disagree: %zu live / %zu deleted nodes, header %zu / %zu",
                        live, deleted, atomic_load(&ix->s.n_live), atomic_load(&ix->s.n_deleted));
        goto out;
    }
    if (ix->s.map.live != live) {
        rc = lk_err_set(err, LK_ERR_CORRUPT, "id map holds %zu ids, %zu live nodes", ix->s.map.live, live);
        goto out;
    }
    for (size_t i = 0; i < ix->s.map.cap; i++) {
        uint32_t v = ix->s.map.vals[i];
        if (v == LK__NONE || v == LK__MAP_TOMB)
            continue;
        char *n = v < ns ? lk__node_t(ix, t, v) : NULL;
        if (!n || lk__load_flags(n) || *lk__extid(ix, n) != ix->s.map.keys[i]) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "id map entry %llu -> slot %u disagrees with the node",
                            (unsigned long long)ix->s.map.keys[i], v);
            goto out;
        }
    }
    if (hnsw && ns) {
        queue = malloc((size_t)ns * sizeof *queue);
        seen = calloc(((size_t)ns + 63) / 64, sizeof *seen);
        if (!queue || !seen) {
            rc = lk_err_set(err, LK_ERR_NOMEM, "lk_index_check: out of memory");
            goto out;
        }
        size_t head = 0, tail = 0, reached_live = 0;
        uint32_t e = (uint32_t)ep;
        queue[tail++] = e;
        seen[e >> 6] |= 1ULL << (e & 63);
        while (head < tail) {
            uint32_t id = queue[head++];
            char *n = lk__node_t(ix, t, id);
            if (!lk__load_flags(n))
                reached_live++;
            uint32_t cnt = *lk__count0(n);
            uint32_t *links = lk__links0(n);
            for (uint32_t i = 0; i < cnt; i++) {
                uint32_t nb = links[i];
                if (!(seen[nb >> 6] & (1ULL << (nb & 63)))) {
                    seen[nb >> 6] |= 1ULL << (nb & 63);
                    queue[tail++] = nb;
                }
            }
        }
        if (reached_live != live) {
            uint32_t first = 0;
            for (uint32_t id = 0; id < ns; id++)
                if (!(seen[id >> 6] & (1ULL << (id & 63))) && !lk__load_flags(lk__node_t(ix, t, id))) {
                    first = id;
                    break;
                }
            rc = lk_err_set(err, LK_ERR_CORRUPT, "%zu of %zu live nodes unreachable from the entry point (e.g. slot %u)",
                            live - reached_live, live, first);
            goto out;
        }
    }
out:
    pthread_mutex_unlock(&ix->write_mu);
    free(queue);
    free(seen);
    return rc;
}
