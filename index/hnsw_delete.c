/*
 * index/hnsw_delete.c — deletion by tombstone, the free list of reusable
 * slots, and compaction (rebuild without tombstones).
 *
 * Why tombstones: a deleted node still carries links that keep the graph
 * navigable (removing it outright would need the neighbour repair of
 * pgvector's vacuum or Redis's real deletion, and would race with lock-free
 * readers).  A tombstone is traversed but filter_pass never lets it into the
 * result set, so a query for k still gets k live results.  Its slot goes on
 * the free list and is rewritten by a later insert (hnsw_insert.c).
 *
 * When deletes outpace inserts the dead fraction grows and searches spend
 * time on nodes that can never be returned; lk_index_stats reports
 * needs_compaction above params.compact_fraction (default 30 %), and
 * lk_index_compact / lk_index_rebuild rebuild the graph from the live
 * vectors with a threaded batch build, then renumber it for memory locality
 * (lk_index_reorder, hnsw_reorder.c).
 */
#include <stdlib.h>
#include <string.h>

#include "pindex.h"

int lk__remove_locked(struct lk_index *ix, uint64_t id);

int lk__remove_locked(struct lk_index *ix, uint64_t id)
{
    struct lk__store *s = &ix->s;
    uint32_t slot = lk__map_get(&s->map, id); /* writer: no concurrent map writes */
    if (slot == LK__NONE)
        return LK_ERR_NOT_FOUND;
    if (s->n_free == s->free_cap) {
        size_t cap = s->free_cap ? s->free_cap * 2 : 64;
        uint32_t *f = realloc(s->free_slots, cap * sizeof *f);
        if (f)
            s->free_slots = f, s->free_cap = cap;
    }
    pthread_rwlock_wrlock(&ix->map_lock);
    lk__map_del(&s->map, id);
    pthread_rwlock_unlock(&ix->map_lock);
    char *n = lk__node(ix, slot);
    lk__set_flags(lk__tab(ix), n, slot, LK__NODE_DELETED);
    atomic_fetch_sub(&s->n_live, 1);
    atomic_fetch_add(&s->n_deleted, 1);
    if (s->n_free < s->free_cap)
        s->free_slots[s->n_free++] = slot;
    return LK_OK;
}

int lk_index_remove(struct lk_index *ix, uint64_t id, struct lk_err *err)
{
    if (!ix)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_remove: NULL index");
    pthread_mutex_lock(&ix->write_mu);
    int rc = lk__remove_locked(ix, id);
    pthread_mutex_unlock(&ix->write_mu);
    if (rc)
        return lk_err_set(err, rc, "lk_index_remove: id %llu not in index", (unsigned long long)id);
    return LK_OK;
}

/* Snapshot the live (id, float32 vector) pairs in slot order. */
static int collect_live(const struct lk_index *ix, uint64_t **ids_out, float **vecs_out, size_t *n_out)
{
    uint32_t ns = atomic_load_explicit(&((struct lk_index *)ix)->s.n_slots, memory_order_acquire);
    const struct lk__ctab *t = lk__tab(ix);
    size_t cap = lk_index_count(ix) + 16, n = 0;
    uint64_t *ids = malloc(cap * sizeof *ids);
    float *vecs = malloc(cap * ix->p.dim * sizeof *vecs);
    if (!ids || !vecs) {
        free(ids), free(vecs);
        return LK_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < ns; i++) {
        char *nd = lk__node_t(ix, t, i);
        if (lk__load_flags(nd))
            continue;
        if (n == cap) {
            cap *= 2;
            uint64_t *a = realloc(ids, cap * sizeof *a);
            if (a)
                ids = a;
            float *b = a ? realloc(vecs, cap * ix->p.dim * sizeof *b) : NULL;
            if (!a || !b) {
                free(ids), free(vecs);
                return LK_ERR_NOMEM;
            }
            vecs = b;
        }
        ids[n] = *lk__extid(ix, nd);
        memcpy(vecs + n * ix->p.dim, lk__raw_t(ix, t, i), ix->p.dim * sizeof(float));
        n++;
    }
    *ids_out = ids, *vecs_out = vecs, *n_out = n;
    return LK_OK;
}

int lk_index_rebuild(const struct lk_index *ix, unsigned nthreads, struct lk_index **out, struct lk_err *err)
{
    if (!ix || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_rebuild: NULL argument");
    *out = NULL;
    uint64_t *ids;
    float *vecs;
    size_t n;
    if (collect_live(ix, &ids, &vecs, &n))
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_rebuild: out of memory");
    struct lk_index *nx;
    int rc = lk_index_new(&ix->p, &nx, err);
    if (!rc && n)
        rc = lk_index_add_batch(nx, ids, vecs, n, nthreads, err);
    /* nx is private until returned: exclusive, as reorder needs.  Only an
     * optimisation: out of memory leaves nx unchanged and valid. */
    if (!rc)
        (void)lk_index_reorder(nx, NULL);
    free(ids), free(vecs);
    if (rc) {
        lk_index_free(nx);
        return rc;
    }
    *out = nx;
    return LK_OK;
}

int lk_index_compact(struct lk_index *ix, unsigned nthreads, struct lk_err *err)
{
    if (!ix)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_compact: NULL index");
    struct lk_index *nx;
    int rc = lk_index_rebuild(ix, nthreads, &nx, err);
    if (rc)
        return rc;
    /* Exclusive access: swap the storage wholesale, free the old one. */
    lk__store_release(ix);
    memcpy(&ix->s, &nx->s, sizeof ix->s);
    memset(&nx->s, 0, sizeof nx->s);
    atomic_init(&nx->s.tab, NULL);
    lk_index_free(nx);
    /* visited tables in pooled contexts remain valid (sized by slot count) */
    return LK_OK;
}
