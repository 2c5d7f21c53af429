/*
 * index/hnsw_build.c — lk_index_add_batch: build (or extend) the graph from
 * a batch of vectors with several threads.
 *
 * The batch runs in phases under the writer mutex:
 *   1. validate every row (finite values, non-zero for COSINE) before
 *      touching the index, so a bad row leaves it unchanged;
 *   2. serially, in batch order: resolve duplicate ids (the last occurrence
 *      wins), note the slot of ids already present (updates), allocate a
 *      slot per row, draw its level from the insertion sequence number and
 *      write vector and id — all flagged PENDING, invisible to results;
 *   3. link the slots into the graph (Algorithm 1, hnsw_insert.c) from
 *      `nthreads` workers that take rows from a shared atomic counter, as
 *      hnswlib's ParallelFor does; a row with a new id is published (id map
 *      + flag) as soon as it is linked, an update stays PENDING (the old
 *      vector stays live);
 *   4. if more than one thread linked, a single-threaded reachability
 *      repair (lk__repair_reachability, hnsw_insert.c): concurrent orphan
 *      repair is best effort, so any live node the level-0 links from the
 *      entry point miss gets an in-link from a reached node;
 *   5. success: every update switches its id to the new slot and tombstones
 *      the old one (lk__replace_published).  Failure (out of memory,
 *      LK_ERR_LIMIT) in phase 2 or 3: roll back — rows with new ids that
 *      were published are removed again, every PENDING slot (unlinked rows,
 *      updates) is abandoned, old vectors of updates were never touched.
 *      The live contents (id -> vector) are then exactly what they were;
 *      only tombstones remain, reused by later inserts.
 * With one thread phase 3 runs in order on the caller's thread, so the graph
 * is a pure function of (seed, insertion order): the determinism guarantee.
 * With more threads the levels are still fixed but the link order is not.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pindex.h"

int lk__remove_locked(struct lk_index *ix, uint64_t id);

struct build_job {
    struct lk_index *ix;
    const uint64_t *ids;
    const uint32_t *slots;     /* LK__NONE: row superseded by a later duplicate */
    const uint32_t *old;       /* slot the id held before the batch, LK__NONE: new id */
    uint8_t *linked;           /* set when the row is linked (phase 3) */
    size_t n;
    _Atomic size_t next;
    _Atomic int rc;
};

static void *build_worker(void *arg)
{
    struct build_job *j = arg;
    struct lk__sctx *c = lk__ctx_get(j->ix);
    if (!c) {
        atomic_store(&j->rc, LK_ERR_NOMEM);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n || atomic_load_explicit(&j->rc, memory_order_relaxed))
            break;
        uint32_t slot = j->slots[i];
        if (slot == LK__NONE)
            continue;
        int rc = j->ix->p.kind == LK_INDEX_HNSW ? lk__insert_link(j->ix, c, slot) : LK_OK;
        if (!rc) {
            j->linked[i] = 1;
            if (j->old[i] == LK__NONE)
                rc = lk__publish(j->ix, j->ids[i], slot, NULL);
        }
        if (rc) {
            int zero = 0;
            atomic_compare_exchange_strong(&j->rc, &zero, rc);
        }
    }
    lk__ctx_put(j->ix, c);
    return NULL;
}

int lk_index_add_batch(struct lk_index *ix, const uint64_t *ids, const float *vecs, size_t n,
                       unsigned nthreads, struct lk_err *err)
{
    if (!ix || (n && (!ids || !vecs)))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_add_batch: NULL argument");
    if (n == 0)
        return LK_OK;
    size_t dim = ix->p.dim;
    /* phase 1: validate */
    for (size_t i = 0; i < n; i++) {
        struct lk_err e1 = {0};
        int rc = lk__check_vector(vecs + i * dim, dim, &e1);
        if (rc)
            return lk_err_set(err, rc, "lk_index_add_batch: row %zu: %s", i, e1.msg);
        if (ix->p.metric == LK_METRIC_COSINE) {
            double s = 0.0;
            for (size_t d = 0; d < dim; d++)
                s += (double)vecs[i * dim + d] * vecs[i * dim + d];
            if (!(s > 0.0))
                return lk_err_set(err, LK_ERR_INVALID_ARG,
                                  "lk_index_add_batch: row %zu is a zero vector (COSINE metric)", i);
        }
    }
    uint32_t *slots = malloc(n * sizeof *slots);
    uint32_t *old = malloc(n * sizeof *old);
    uint8_t *linked = calloc(n, 1);
    float *tmp = malloc(dim * sizeof *tmp);
    struct lk__map last = {0};
    if (!slots || !old || !linked || !tmp) {
        free(slots), free(old), free(linked), free(tmp);
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_add_batch: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (lk__map_put(&last, ids[i], (uint32_t)(i & 0x7fffffffu))) {
            free(slots), free(old), free(linked), free(tmp), lk__map_free(&last);
            return lk_err_set(err, LK_ERR_NOMEM, "lk_index_add_batch: out of memory");
        }
    }

    pthread_mutex_lock(&ix->write_mu);
    int rc = LK_OK;
    /* phase 2: slots */
    size_t done = 0;
    for (; done < n; done++) {
        old[done] = LK__NONE;
        if (lk__map_get(&last, ids[done]) != (uint32_t)(done & 0x7fffffffu)) {
            slots[done] = LK__NONE;
            continue;
        }
        old[done] = lk__map_get(&ix->s.map, ids[done]); /* writer: no concurrent map writes */
        int r2;
        const float *v = lk__prepare_vector(ix, vecs + done * dim, tmp, NULL, &r2);
        rc = lk__slot_write(ix, ids[done], v, ix->s.seq++, &slots[done], err);
        if (rc)
            break;
    }
    lk__map_free(&last);
    /* phase 3: link (rows [0, done) have slots) */
    struct build_job job = {.ix = ix, .ids = ids, .slots = slots, .old = old, .linked = linked,
                            .n = rc ? 0 : done}; /* phase 2 failed: link nothing, roll back */
    atomic_init(&job.next, 0);
    atomic_init(&job.rc, LK_OK);
    if (nthreads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = cpus > 0 ? (unsigned)cpus : 1;
    }
    if (nthreads > 64)
        nthreads = 64;
    if (nthreads > done / 64 + 1)
        nthreads = (unsigned)(done / 64 + 1); /* tiny batches: threads cost more than they give */
    /* Buffers for the reachability repair that follows a threaded build
     * (lk__repair_reachability), allocated now so the repair cannot fail
     * once the graph is changed; without them, link on one thread. */
    uint32_t ns_after = atomic_load(&ix->s.n_slots);
    uint32_t *rq = NULL;
    uint64_t *rseen = NULL;
    if (nthreads > 1 && ix->p.kind == LK_INDEX_HNSW) {
        rq = malloc(((size_t)ns_after + 1) * sizeof *rq);
        rseen = malloc(((size_t)ns_after + 64) / 64 * sizeof *rseen);
        if (!rq || !rseen)
            nthreads = 1;
    }
    pthread_t th[64];
    unsigned started = 0;
    for (unsigned i = 1; i < nthreads; i++) {
        if (pthread_create(&th[started], NULL, build_worker, &job) == 0)
            started++;
    }
    build_worker(&job);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (!rc && atomic_load(&job.rc))
        rc = lk_err_set(err, atomic_load(&job.rc), "lk_index_add_batch: %s",
                        lk_status_str(atomic_load(&job.rc)));
    if (rc) {
        /* phase 5, failure: roll back.  New ids published by this batch
         * are removed (their slot still holds them: nothing else writes
         * meanwhile); every other slot of the batch is still PENDING
         * (never linked, or an update not yet switched) and is abandoned. */
        for (size_t i = 0; i < done; i++) {
            if (slots[i] == LK__NONE)
                continue;
            if (lk__load_flags(lk__node(ix, slots[i])) & LK__NODE_PENDING)
                lk__slot_abandon(ix, slots[i]);
            else if (old[i] == LK__NONE && lk__map_get(&ix->s.map, ids[i]) == slots[i])
                lk__remove_locked(ix, ids[i]);
        }
        lk__slots_reset_unlinked(ix);
    }
    if (started && rq && rseen)
        lk__repair_reachability(ix, rq, rseen, ns_after);
    if (!rc) {
        /* phase 5, success: switch the updates.  The id map rehash inside
         * can run out of memory; that update then keeps its old vector
         * (row-atomic) and the error is returned. */
        for (size_t i = 0; i < done; i++) {
            if (slots[i] == LK__NONE || old[i] == LK__NONE || !linked[i])
                continue;
            int r = lk__replace_published(ix, ids[i], old[i], slots[i], rc ? NULL : err);
            if (r && !rc)
                rc = r;
        }
    }
    pthread_mutex_unlock(&ix->write_mu);
    free(slots), free(old), free(linked), free(tmp), free(rq), free(rseen);
    return rc;
}
