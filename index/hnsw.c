/*
 * index/hnsw.c — index lifecycle shared by both kinds (HNSW and flat):
 * parameters, chunked node storage, the external-id hash map, the pool of
 * per-thread search contexts, statistics, bitmaps and accessors.
 *
 * Non-obvious decisions:
 *  - Storage grows in chunks of LK__CHUNK_SLOTS nodes (4096) that never
 *    move; the chunk TABLE is copied into a bigger one when full and the old
 *    table is retired (kept until lk_index_free) instead of freed, so a
 *    searching thread that loaded the old table pointer keeps reading valid
 *    memory without any lock or epoch scheme.  Waste is at most one chunk.
 *  - The id map is open addressing with linear probing (16 bytes/slot,
 *    load <= 1/2): far smaller than a chained map (hnswlib's unordered_map
 *    costs ~40 bytes per entry).  Readers (contains, get_vector, bitmaps)
 *    take a rwlock read side; only the (single, serialised) writer takes
 *    the write side, and only while changing the map.
 *  - Search contexts (visited table, heaps) are pooled so a query does no
 *    heap allocation in steady state; the pool mutex is held for a pop or a
 *    push only (a few ns uncontended).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pindex.h"

/* ==== Parameters ==== */

void lk_index_params_default(struct lk_index_params *p, uint32_t dim)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->kind = LK_INDEX_HNSW;
    p->dim = dim;
    p->metric = LK_METRIC_L2;
    p->storage = LK_STORAGE_F32;
    p->M = LK_HNSW_M_DEFAULT;
    p->ef_construction = LK_HNSW_EF_CONSTRUCTION_DEFAULT;
    p->ef_search = LK_HNSW_EF_SEARCH_DEFAULT;
    p->seed = 0x5eed;
    p->compact_fraction = LK_INDEX_COMPACT_FRACTION_DEFAULT;
}

int lk__validate_params(const struct lk_index_params *p, struct lk_err *err)
{
    if (!p)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: NULL");
    if ((unsigned)p->kind > LK_INDEX_FLAT)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: unknown kind %d", (int)p->kind);
    if ((unsigned)p->metric > LK_METRIC_COSINE)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: unknown metric %d", (int)p->metric);
    if ((unsigned)p->storage > LK_STORAGE_I8)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: unknown storage %d", (int)p->storage);
    if (p->dim < LK_INDEX_DIM_MIN || p->dim > LK_INDEX_DIM_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: dim %u outside [%u, %u]", p->dim,
                          LK_INDEX_DIM_MIN, LK_INDEX_DIM_MAX);
    if (p->kind == LK_INDEX_HNSW) {
        if (p->M < LK_HNSW_M_MIN || p->M > LK_HNSW_M_MAX)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: M %u outside [%u, %u]", p->M,
                              LK_HNSW_M_MIN, LK_HNSW_M_MAX);
        if (p->ef_construction < LK_HNSW_EF_CONSTRUCTION_MIN ||
            p->ef_construction > LK_HNSW_EF_CONSTRUCTION_MAX)
            return lk_err_set(err, LK_ERR_INVALID_ARG,
                              "index params: ef_construction %u outside [%u, %u]", p->ef_construction,
                              LK_HNSW_EF_CONSTRUCTION_MIN, LK_HNSW_EF_CONSTRUCTION_MAX);
    }
    if (p->ef_search < LK_HNSW_EF_SEARCH_MIN || p->ef_search > LK_HNSW_EF_SEARCH_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: ef_search %u outside [%u, %u]",
                          p->ef_search, LK_HNSW_EF_SEARCH_MIN, LK_HNSW_EF_SEARCH_MAX);
    if (!(p->compact_fraction > 0.0f && p->compact_fraction <= 1.0f))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "index params: compact_fraction %g outside (0, 1]",
                          (double)p->compact_fraction);
    return LK_OK;
}

/* ==== Lifecycle ==== */

int lk__index_init(struct lk_index *ix, const struct lk_index_params *p, struct lk_err *err)
{
    int rc = lk__validate_params(p, err);
    if (rc)
        return rc;
    memset(ix, 0, sizeof *ix);
    ix->p = *p;
    if (ix->p.kind == LK_INDEX_FLAT)
        ix->p.M = 0, ix->p.ef_construction = 0;
    ix->is_ip = p->metric != LK_METRIC_L2;
    ix->compressed = p->storage != LK_STORAGE_F32;
    switch (p->storage) {
    case LK_STORAGE_F32: ix->vec_bytes = 4u * p->dim; break;
    case LK_STORAGE_F16: ix->vec_bytes = 2u * p->dim; break;
    case LK_STORAGE_I8: ix->vec_bytes = 4u + p->dim; break;
    }
    ix->max_m = ix->p.M;
    ix->max_m0 = 2 * ix->p.M;
    ix->ml = ix->p.M >= 2 ? 1.0 / log((double)ix->p.M) : 0.0;
    ix->off_ext = 8 + 4u * (size_t)ix->max_m0;
    ix->off_vec = ix->off_ext + 8;
    ix->node_size = (ix->off_vec + ix->vec_bytes + 7u) & ~(size_t)7u;
    ix->dist = lk_distance_get(p->metric, p->storage);
    ix->dist_f32 = lk_distance_get(p->metric, LK_STORAGE_F32);
    ix->dist_bounded = ix->is_ip ? NULL : lk_l2_bounded_get(p->storage);
    atomic_init(&ix->s.tab, NULL);
    atomic_init(&ix->s.n_slots, 0);
    atomic_init(&ix->s.ep, LK__EP_NONE);
    atomic_init(&ix->s.n_live, 0);
    atomic_init(&ix->s.n_deleted, 0);
    pthread_mutex_init(&ix->write_mu, NULL);
    pthread_mutex_init(&ix->ep_mu, NULL);
    pthread_rwlock_init(&ix->map_lock, NULL);
    pthread_mutex_init(&ix->pool_mu, NULL);
    return LK_OK;
}

int lk_index_new(const struct lk_index_params *params, struct lk_index **out, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_new: out is NULL");
    *out = NULL;
    struct lk_index *ix = malloc(sizeof *ix);
    if (!ix)
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_new: out of memory");
    int rc = lk__index_init(ix, params, err);
    if (rc) {
        free(ix);
        return rc;
    }
    *out = ix;
    return LK_OK;
}

void lk__store_release(struct lk_index *ix)
{
    struct lk__store *s = &ix->s;
    struct lk__ctab *t = atomic_load(&s->tab);
    if (t) {
        uint32_t nslots = atomic_load(&s->n_slots);
        for (uint32_t c = 0; c < s->n_chunks; c++) {
            if (t->upper[c]) {
                for (uint32_t j = 0; j < LK__CHUNK_SLOTS; j++) {
                    uint32_t id = c * LK__CHUNK_SLOTS + j;
                    if (id >= nslots)
                        break;
                    free(t->upper[c][j]);
                }
                free(t->upper[c]);
            }
            if (c >= s->mapped_chunks && t->raw) /* node chunks live in regions */
                free(t->raw[c]);
        }
        for (uint32_t c = 0; c < s->n_chunks; c++)
            free(t->flg[c]);
        free(t->node);
        free(t->raw);
        free(t->upper);
        free(t->flg);
        free(t);
    }
    for (size_t i = 0; i < s->n_retired; i++) {
        free(s->retired[i]->node);
        free(s->retired[i]->raw);
        free(s->retired[i]->upper);
        free(s->retired[i]->flg);
        free(s->retired[i]);
    }
    free(s->retired);
    free(s->free_slots);
    lk__map_free(&s->map);
    for (size_t i = 0; i < s->n_regions; i++)
        munmap(s->regions[i].base, s->regions[i].len);
    free(s->regions);
    if (s->map_base)
        munmap(s->map_base, s->map_len);
    if (s->raw_map_base)
        munmap(s->raw_map_base, s->raw_map_len);
    memset(s, 0, sizeof *s);
    atomic_init(&s->tab, NULL);
    atomic_init(&s->ep, LK__EP_NONE);
}

void lk_index_free(struct lk_index *ix)
{
    if (!ix)
        return;
    lk__store_release(ix);
    for (size_t i = 0; i < ix->n_pool; i++)
        lk__ctx_free(ix->pool[i]);
    free(ix->pool);
    pthread_mutex_destroy(&ix->write_mu);
    pthread_mutex_destroy(&ix->ep_mu);
    pthread_rwlock_destroy(&ix->map_lock);
    pthread_mutex_destroy(&ix->pool_mu);
    free(ix);
}

int lk_index_get_params(const struct lk_index *ix, struct lk_index_params *out)
{
    if (!ix || !out)
        return LK_ERR_INVALID_ARG;
    *out = ix->p;
    return LK_OK;
}

/* ==== Chunked storage ==== */

#define LK__HUGE ((size_t)2 << 20)
#define LK__REGION_MIN ((size_t)64 << 20)

/* Node chunks are carved back to back from large anonymous reservations
 * (MAP_NORESERVE: untouched pages cost nothing) advised as transparent huge
 * pages.  A search touches a few hundred random nodes, and with 4 KiB pages
 * nearly every one is a TLB miss too (a page walk on top of the cache
 * miss): huge pages measured +25-30 % queries/s on 50k x 128 and
 * 20k x 784.  Carving chunks contiguously (instead of one 2 MiB-aligned
 * allocation per chunk) keeps the resident waste to the tail of the last
 * huge page.  Regions double in size; they are unmapped by lk_index_free. */
static char *region_take(struct lk__store *s, size_t bytes)
{
    struct lk__region *r = s->n_regions ? &s->regions[s->n_regions - 1] : NULL;
    if (!r || r->len - r->used < bytes) {
        size_t len = r ? r->len * 2 : LK__REGION_MIN;
        while (len < bytes)
            len *= 2;
        struct lk__region *nr = realloc(s->regions, (s->n_regions + 1) * sizeof *nr);
        if (!nr)
            return NULL;
        s->regions = nr;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        madvise(p, len, MADV_HUGEPAGE);
        r = &s->regions[s->n_regions++];
        r->base = p, r->len = len, r->used = 0;
    }
    char *out = r->base + r->used;
    r->used += (bytes + 63) & ~(size_t)63;
    return out;
}

/* Make sure slots [0, need) have backing chunks.  Caller holds write_mu.
 * Publishes a new table (release) when the old one is too small. */
int lk__store_grow(struct lk_index *ix, uint32_t need)
{
    struct lk__store *s = &ix->s;
    uint32_t need_chunks = (uint32_t)(((uint64_t)need + LK__CHUNK_SLOTS - 1) >> LK__CHUNK_SHIFT);
    if (need_chunks <= s->n_chunks)
        return LK_OK;
    struct lk__ctab *t = atomic_load_explicit(&s->tab, memory_order_relaxed);
    if (!t || t->cap < need_chunks) {
        uint32_t cap = t ? t->cap : 4;
        while (cap < need_chunks)
            cap *= 2;
        struct lk__ctab *nt = calloc(1, sizeof *nt);
        if (!nt)
            return LK_ERR_NOMEM;
        nt->cap = cap;
        nt->node = calloc(cap, sizeof *nt->node);
        nt->upper = calloc(cap, sizeof *nt->upper);
        nt->flg = calloc(cap, sizeof *nt->flg);
        nt->raw = ix->compressed ? calloc(cap, sizeof *nt->raw) : NULL;
        struct lk__ctab **ret = t ? realloc(s->retired, (s->n_retired + 1) * sizeof *ret) : s->retired;
        if (!nt->node || !nt->upper || !nt->flg || (ix->compressed && !nt->raw) || (t && !ret)) {
            free(nt->node), free(nt->upper), free(nt->flg), free(nt->raw), free(nt);
            if (ret)
                s->retired = ret;
            return LK_ERR_NOMEM;
        }
        if (t) {
            memcpy(nt->node, t->node, s->n_chunks * sizeof *nt->node);
            memcpy(nt->upper, t->upper, s->n_chunks * sizeof *nt->upper);
            memcpy(nt->flg, t->flg, s->n_chunks * sizeof *nt->flg);
            if (nt->raw)
                memcpy(nt->raw, t->raw, s->n_chunks * sizeof *nt->raw);
            s->retired = ret;
            s->retired[s->n_retired++] = t;
        }
        atomic_store_explicit(&s->tab, nt, memory_order_release);
        t = nt;
    }
    while (s->n_chunks < need_chunks) {
        uint32_t c = s->n_chunks;
        char *n = region_take(s, (size_t)LK__CHUNK_SLOTS * ix->node_size);
        uint32_t **u = calloc(LK__CHUNK_SLOTS, sizeof *u);
        uint8_t *fl = calloc(LK__CHUNK_SLOTS, 1);
        float *r = ix->compressed ? malloc((size_t)LK__CHUNK_SLOTS * ix->p.dim * sizeof(float)) : NULL;
        if (!n || !u || !fl || (ix->compressed && !r)) {
            free(u), free(fl), free(r); /* n stays in its region */
            return LK_ERR_NOMEM;
        }
        t->flg[c] = fl;
        /* Entries are written before n_slots covers them; readers never
         * look at slots >= n_slots, so plain stores suffice here. */
        t->node[c] = n;
        t->upper[c] = u;
        if (t->raw)
            t->raw[c] = r;
        s->n_chunks++;
    }
    return LK_OK;
}

/* ==== External id map ==== */

static inline size_t map_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k;
}

uint32_t lk__map_get(const struct lk__map *m, uint64_t key)
{
    if (!m->cap)
        return LK__NONE;
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(key) & mask;; i = (i + 1) & mask) {
        uint32_t v = m->vals[i];
        if (v == LK__NONE)
            return LK__NONE;
        if (v != LK__MAP_TOMB && m->keys[i] == key)
            return v;
    }
}

static int map_rehash(struct lk__map *m, size_t cap)
{
    uint64_t *k = malloc(cap * sizeof *k);
    uint32_t *v = malloc(cap * sizeof *v);
    if (!k || !v) {
        free(k), free(v);
        return LK_ERR_NOMEM;
    }
    memset(v, 0xff, cap * sizeof *v);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->vals[i] == LK__NONE || m->vals[i] == LK__MAP_TOMB)
            continue;
        size_t j = map_hash(m->keys[i]) & (cap - 1);
        while (v[j] != LK__NONE)
            j = (j + 1) & (cap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys), free(m->vals);
    m->keys = k, m->vals = v, m->cap = cap, m->used = m->live;
    return LK_OK;
}

/* Insert or overwrite. */
int lk__map_put(struct lk__map *m, uint64_t key, uint32_t val)
{
    if ((m->used + 1) * 2 > m->cap) {
        /* rehash (dropping tombstones) to a load of at most 1/3 */
        size_t cap = 64;
        while ((m->live + 1) * 3 > cap)
            cap *= 2;
        if (map_rehash(m, cap))
            return LK_ERR_NOMEM;
    }
    size_t mask = m->cap - 1, tomb = SIZE_MAX;
    for (size_t i = map_hash(key) & mask;; i = (i + 1) & mask) {
        uint32_t v = m->vals[i];
        if (v == LK__NONE) {
            size_t at = tomb != SIZE_MAX ? tomb : i;
            if (tomb == SIZE_MAX)
                m->used++;
            m->keys[at] = key;
            m->vals[at] = val;
            m->live++;
            return LK_OK;
        }
        if (v == LK__MAP_TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (m->keys[i] == key) {
            m->vals[i] = val;
            return LK_OK;
        }
    }
}

void lk__map_del(struct lk__map *m, uint64_t key)
{
    if (!m->cap)
        return;
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(key) & mask;; i = (i + 1) & mask) {
        uint32_t v = m->vals[i];
        if (v == LK__NONE)
            return;
        if (v != LK__MAP_TOMB && m->keys[i] == key) {
            m->vals[i] = LK__MAP_TOMB;
            m->live--;
            return;
        }
    }
}

void lk__map_free(struct lk__map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ==== Search contexts ==== */

void lk__ctx_free(struct lk__sctx *c)
{
    if (!c)
        return;
    free(c->vis), free(c->cand), free(c->res), free(c->buf), free(c->qbuf), free(c->sel);
    free(c);
}

struct lk__sctx *lk__ctx_get(const struct lk_index *cix)
{
    struct lk_index *ix = (struct lk_index *)cix; /* the pool is internal mutable state */
    struct lk__sctx *c = NULL;
    pthread_mutex_lock(&ix->pool_mu);
    if (ix->n_pool)
        c = ix->pool[--ix->n_pool];
    pthread_mutex_unlock(&ix->pool_mu);
    if (!c)
        c = calloc(1, sizeof *c);
    return c;
}

void lk__ctx_put(const struct lk_index *cix, struct lk__sctx *c)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!c)
        return;
    pthread_mutex_lock(&ix->pool_mu);
    if (ix->n_pool == ix->pool_cap) {
        size_t cap = ix->pool_cap ? ix->pool_cap * 2 : 8;
        struct lk__sctx **p = realloc(ix->pool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&ix->pool_mu);
            lk__ctx_free(c);
            return;
        }
        ix->pool = p, ix->pool_cap = cap;
    }
    ix->pool[ix->n_pool++] = c;
    pthread_mutex_unlock(&ix->pool_mu);
}

int lk__ctx_prepare(struct lk__sctx *c, uint32_t n_slots, size_t heap, size_t buf, size_t dim)
{
    if (c->vis_cap < n_slots) {
        uint32_t cap = n_slots + n_slots / 4 + 1024;
        uint16_t *v = calloc(cap, sizeof *v);
        if (!v)
            return LK_ERR_NOMEM;
        free(c->vis);
        c->vis = v, c->vis_cap = cap, c->epoch = 0;
    }
    if (c->heap_cap < heap + 1) {
        size_t cap = heap + 1;
        struct lk__cand *b = realloc(c->res, cap * sizeof *b);
        if (!b)
            return LK_ERR_NOMEM;
        c->res = b, c->heap_cap = cap;
    }
    if (c->cand_cap < c->heap_cap) {
        struct lk__cand *a = realloc(c->cand, c->heap_cap * sizeof *a);
        if (!a)
            return LK_ERR_NOMEM;
        c->cand = a, c->cand_cap = c->heap_cap;
    }
    if (c->buf_cap < buf) {
        uint32_t *b = malloc(buf * sizeof *b);
        struct lk__cand *s = malloc(buf * sizeof *s);
        if (!b || !s) {
            free(b), free(s);
            return LK_ERR_NOMEM;
        }
        free(c->buf), free(c->sel);
        c->buf = b, c->sel = s, c->buf_cap = buf, c->sel_cap = buf;
    }
    if (!c->qbuf) {
        c->qbuf = malloc((dim + 16) * sizeof(float));
        if (!c->qbuf)
            return LK_ERR_NOMEM;
    }
    return LK_OK;
}

/* ==== Helpers ==== */

int lk__check_vector(const float *v, size_t dim, struct lk_err *err)
{
    if (!v)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "vector is NULL");
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "vector component %zu is not finite", i);
    return LK_OK;
}

const float *lk__prepare_vector(const struct lk_index *ix, const float *v, float *tmp, struct lk_err *err,
                                int *rc)
{
    *rc = lk__check_vector(v, ix->p.dim, err);
    if (*rc)
        return NULL;
    if (ix->p.metric != LK_METRIC_COSINE)
        return v;
    double n = 0.0;
    for (size_t i = 0; i < ix->p.dim; i++)
        n += (double)v[i] * v[i];
    if (!(n > 0.0)) {
        *rc = lk_err_set(err, LK_ERR_INVALID_ARG, "zero vector cannot be normalised (COSINE metric)");
        return NULL;
    }
    float inv = (float)(1.0 / sqrt(n));
    for (size_t i = 0; i < ix->p.dim; i++)
        tmp[i] = v[i] * inv;
    return tmp;
}

/* Deterministic level for the seq-th insertion: floor(-ln(U) * mL) with U
 * from a counter-based generator (splitmix64 of seed and seq), paper
 * section 4.1.  Counter-based so a threaded batch build can draw levels in
 * insertion order up front. */
uint32_t lk__random_level(const struct lk_index *ix, uint64_t seq)
{
    uint64_t z = ix->p.seed + (seq + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    double u = ((double)(z >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double l = floor(-log(u) * ix->ml);
    return l > LK_HNSW_LEVEL_MAX ? LK_HNSW_LEVEL_MAX : (uint32_t)l;
}

/* ==== Accessors ==== */

size_t lk_index_count(const struct lk_index *ix)
{
    return ix ? atomic_load_explicit(&((struct lk_index *)ix)->s.n_live, memory_order_acquire) : 0;
}

int lk_index_contains(const struct lk_index *cix, uint64_t id)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!ix)
        return 0;
    pthread_rwlock_rdlock(&ix->map_lock);
    uint32_t s = lk__map_get(&ix->s.map, id);
    pthread_rwlock_unlock(&ix->map_lock);
    return s != LK__NONE;
}

int lk_index_get_vector(const struct lk_index *cix, uint64_t id, float *out, struct lk_err *err)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!ix || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_get_vector: NULL argument");
    pthread_rwlock_rdlock(&ix->map_lock);
    uint32_t s = lk__map_get(&ix->s.map, id);
    if (s != LK__NONE)
        memcpy(out, lk__raw_t(ix, lk__tab(ix), s), sizeof(float) * ix->p.dim);
    pthread_rwlock_unlock(&ix->map_lock);
    if (s == LK__NONE)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "id %llu not in index", (unsigned long long)id);
    return LK_OK;
}

int lk_index_stats(const struct lk_index *cix, struct lk_index_stats *o)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!ix || !o)
        return LK_ERR_INVALID_ARG;
    memset(o, 0, sizeof *o);
    o->kind = ix->p.kind;
    o->dim = ix->p.dim;
    o->count = atomic_load(&ix->s.n_live);
    o->deleted = atomic_load(&ix->s.n_deleted);
    o->slots = atomic_load(&ix->s.n_slots);
    uint64_t ep = atomic_load(&ix->s.ep);
    o->max_level = ep == LK__EP_NONE ? 0 : (uint32_t)(ep >> 32);
    o->node_bytes = ix->node_size;
    o->mapped = ix->s.map_base != NULL;
    o->needs_compaction = o->slots && (double)o->deleted / (double)o->slots > ix->p.compact_fraction;
    /* memory: chunks + raw + upper blocks + map + chunk tables.  No lock:
     * a monitoring thread must not wait for a long batch build, so the
     * writer-owned sizes are read with relaxed atomic loads (approximate
     * while a writer runs). */
    size_t mem = sizeof *ix;
    size_t nch = __atomic_load_n(&ix->s.n_chunks, __ATOMIC_RELAXED);
    mem += nch * (size_t)LK__CHUNK_SLOTS * (ix->node_size + sizeof(void *) + 1);
    if (ix->compressed)
        mem += nch * (size_t)LK__CHUNK_SLOTS * ix->p.dim * sizeof(float);
    struct lk__ctab *t = atomic_load(&ix->s.tab);
    if (t)
        mem += t->cap * 4 * sizeof(void *);
    mem += atomic_load_explicit(&ix->s.upper_bytes, memory_order_relaxed);
    mem += __atomic_load_n(&ix->s.map.cap, __ATOMIC_RELAXED) * (sizeof(uint64_t) + sizeof(uint32_t));
    mem += __atomic_load_n(&ix->s.free_cap, __ATOMIC_RELAXED) * sizeof(uint32_t);
    o->memory_bytes = mem;
    return LK_OK;
}

/* ==== Bitmaps ==== */

int lk_index_bitmap_new(const struct lk_index *ix, struct lk_bitmap **out, struct lk_err *err)
{
    if (!ix || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_bitmap_new: NULL argument");
    *out = NULL;
    struct lk_bitmap *b = calloc(1, sizeof *b);
    uint32_t n = atomic_load_explicit(&((struct lk_index *)ix)->s.n_slots, memory_order_acquire);
    size_t words = ((size_t)n + 63) / 64 + 1;
    if (b)
        b->words = calloc(words, sizeof *b->words);
    if (!b || !b->words) {
        if (b)
            free(b);
        return lk_err_set(err, LK_ERR_NOMEM, "lk_index_bitmap_new: out of memory");
    }
    b->ix = ix;
    b->nbits = n;
    *out = b;
    return LK_OK;
}

void lk_bitmap_free(struct lk_bitmap *b)
{
    if (!b)
        return;
    free(b->words);
    free(b);
}

int lk_bitmap_set_id(struct lk_bitmap *b, const struct lk_index *cix, uint64_t id, struct lk_err *err)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!b || !ix)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_bitmap_set_id: NULL argument");
    if (b->ix != ix)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_bitmap_set_id: bitmap belongs to another index");
    pthread_rwlock_rdlock(&ix->map_lock);
    uint32_t s = lk__map_get(&ix->s.map, id);
    pthread_rwlock_unlock(&ix->map_lock);
    if (s == LK__NONE || s >= b->nbits)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "id %llu not in index (or added after the bitmap)",
                          (unsigned long long)id);
    uint64_t bit = 1ULL << (s & 63);
    if (!(b->words[s >> 6] & bit)) {
        b->words[s >> 6] |= bit;
        b->count++;
    }
    return LK_OK;
}

size_t lk_bitmap_count(const struct lk_bitmap *b)
{
    return b ? b->count : 0;
}
