/*
 * index/pindex.h — private state of the vector index shared by the files of
 * index/ (lk__ symbols).  Never installed; tests may include it.
 *
 * Storage layout (the performance-critical decision).  Every slot (internal
 * id, uint32) owns one fixed-size NODE BLOCK, as in hnswlib:
 *
 *     offset 0      uint32 count0          level-0 link count (atomic)
 *            4      uint8  level           top level of this node
 *            5      uint8  flags           LK__NODE_* (atomic)
 *            6      uint8  lock            writer spinlock for this node's links
 *            7      uint8  indeg           level-0 in-degree, saturating at 255 (atomic)
 *            8      uint32 links0[2M]      level-0 neighbours (atomic elements)
 *            8+8M   uint64 external id
 *            16+8M  vector                 F32 / F16 / I8 encoding, vec_bytes
 *
 * so a level-0 hop touches one contiguous block: the neighbour list of the
 * current node, then the vectors of its neighbours (prefetched).  Blocks live
 * in CHUNKS of LK__CHUNK_SLOTS nodes that are never moved or freed before
 * lk_index_free: growth appends a chunk and, when the chunk table is full,
 * publishes a bigger copy of the table (old tables are retired, not freed),
 * so a concurrent reader holding any table pointer stays valid.
 *
 * Upper levels (1..level) are a separate malloc'd block per node, pointed to
 * from a chunked pointer array: level l at offset (l-1)*(M+1): uint32 count,
 * then M uint32 links.  Only ~1/M of the nodes have one.
 *
 * With F16/I8 storage an exact float32 copy of every vector lives in a
 * parallel chunked RAW array (4*dim bytes per slot) used for re-ranking and
 * for building (neighbour selection distances are computed from float32).
 *
 * Concurrency: see lk_index.h.  Writers lock a node (spinlock byte) to change
 * its links; readers take no locks: they load the count with acquire and the
 * link ids with relaxed atomic loads.  A link id is only ever written after
 * the target node's block (vector, level, external id, upper block) is fully
 * initialised, and readers ignore ids >= the slot count they snapshotted at
 * the start of the search, so every id a reader dereferences is backed by
 * initialised memory.
 */
#ifndef LOOKALIKE_PINDEX_H
#define LOOKALIKE_PINDEX_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookalike/index.h"

#define LK__NONE UINT32_MAX

#define LK__CHUNK_SHIFT 12u
#define LK__CHUNK_SLOTS (1u << LK__CHUNK_SHIFT)
#define LK__CHUNK_MASK (LK__CHUNK_SLOTS - 1u)

/* Node flags. */
#define LK__NODE_DELETED 0x1u /* tombstone: traversed, never a result */
#define LK__NODE_PENDING 0x2u /* being inserted: traversed, not yet a result */

/* Defensive checks that should never fire (SQLite's ALWAYS/NEVER). */
#define LK__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LK__LIKELY(x) __builtin_expect(!!(x), 1)

struct lk__ctab {             /* chunk table; published with release */
    uint32_t cap;             /* entries */
    char **node;              /* node chunks */
    float **raw;              /* float32 copies (F16/I8 storage) or NULL entries */
    uint32_t ***upper;        /* per-slot upper-level block pointers */
    uint8_t **flg;            /* per-slot copy of the node flags, dense (1 byte/slot) */
};

/* id -> slot hash map (open addressing, linear probing). */
struct lk__map {
    uint64_t *keys;
    uint32_t *vals;           /* LK__NONE = empty, LK__MAP_TOMB = deleted */
    size_t cap;               /* power of two */
    size_t used;              /* live + tombstones */
    size_t live;
};
#define LK__MAP_TOMB (UINT32_MAX - 1u)

/* Heap element. */
struct lk__cand {
    float d;
    uint32_t id;
};

/* Per-thread search/insert scratch, pooled inside the index. */
struct lk__sctx {
    uint16_t *vis;            /* visited epochs (hnswlib's VisitedList idea) */
    uint32_t vis_cap;
    uint16_t epoch;
    struct lk__cand *cand;    /* min-heap of candidates (grows on demand) */
    size_t cand_cap;
    struct lk__cand *res;     /* max-heap of results */
    size_t heap_cap;
    uint32_t *buf;            /* unvisited neighbours of one node */
    size_t buf_cap;
    float *qbuf;              /* normalised query (COSINE) */
    struct lk__cand *sel;     /* neighbour selection scratch */
    size_t sel_cap;
};

/* Mutable storage state (swapped as a whole by compaction). */
struct lk__store {
    _Atomic(struct lk__ctab *) tab;
    struct lk__ctab **retired; /* old tables, freed at lk_index_free */
    size_t n_retired;
    uint32_t n_chunks;         /* chunks allocated */
    _Atomic uint32_t n_slots;  /* slots initialised and visible to readers */
    _Atomic uint64_t ep;       /* entry point: (level << 32) | slot; LK__EP_NONE if empty */
    _Atomic size_t n_live;
    _Atomic size_t n_deleted;
    uint32_t *free_slots;      /* tombstoned slots available for reuse: a FIFO queue,
                                  entries [free_head, n_free) */
    size_t n_free, free_cap, free_head;
    struct lk__map map;
    uint64_t seq;              /* insertions so far (level RNG stream position) */
    /* file mapping (LK_LOAD_MMAP) */
    void *map_base;
    size_t map_len;
    void *raw_map_base;
    size_t raw_map_len;
    uint32_t mapped_chunks;    /* chunks [0, mapped_chunks) point into the mapping */
    _Atomic size_t upper_bytes; /* bytes of upper-level link blocks (for stats) */
    struct lk__region *regions; /* anonymous reservations node chunks are carved from */
    size_t n_regions;
};
struct lk__region {
    char *base;
    size_t len, used;
};
#define LK__EP_NONE UINT64_MAX

struct lk_index {
    struct lk_index_params p;
    size_t vec_bytes;          /* encoded vector bytes */
    size_t node_size;
    size_t off_ext, off_vec;
    uint32_t max_m, max_m0;    /* link caps above / at level 0 */
    double ml;                 /* level multiplier 1/ln(M) */
    bool is_ip;                /* IP or COSINE */
    bool compressed;           /* F16 / I8: RAW copy exists */
    lk_distance_fn dist;       /* query f32 x stored encoding */
    lk_distance_fn dist_f32;   /* f32 x f32 (re-ranking, building) */
    lk_l2_bounded_fn dist_bounded; /* early-abandoning `dist` (L2 only; NULL for IP/COSINE) */

    struct lk__store s;

    pthread_mutex_t write_mu;  /* serialises mutators */
    pthread_mutex_t ep_mu;     /* entry-point updates during insertion */
    pthread_rwlock_t map_lock; /* id map: readers vs the writer */
    pthread_mutex_t pool_mu;   /* search-context pool */
    struct lk__sctx **pool;
    size_t n_pool, pool_cap;
};

/* ---- node access (hot path; everything inline) ---- */

static inline char *lk__node_t(const struct lk_index *ix, const struct lk__ctab *t, uint32_t id)
{
    return t->node[id >> LK__CHUNK_SHIFT] + (size_t)(id & LK__CHUNK_MASK) * ix->node_size;
}
static inline struct lk__ctab *lk__tab(const struct lk_index *ix)
{
    return atomic_load_explicit(&((struct lk_index *)ix)->s.tab, memory_order_acquire);
}
static inline char *lk__node(const struct lk_index *ix, uint32_t id)
{
    return lk__node_t(ix, lk__tab(ix), id);
}
static inline uint32_t *lk__count0(char *n) { return (uint32_t *)n; }
static inline uint8_t *lk__level(char *n) { return (uint8_t *)n + 4; }
static inline uint8_t *lk__flags(char *n) { return (uint8_t *)n + 5; }
static inline uint8_t *lk__lockb(char *n) { return (uint8_t *)n + 6; }
static inline uint8_t *lk__indeg(char *n) { return (uint8_t *)n + 7; }
static inline uint32_t *lk__links0(char *n) { return (uint32_t *)(n + 8); }
static inline uint64_t *lk__extid(const struct lk_index *ix, char *n) { return (uint64_t *)(n + ix->off_ext); }
static inline void *lk__vec(const struct lk_index *ix, char *n) { return n + ix->off_vec; }

static inline uint32_t lk__load_count(const uint32_t *c)
{
    return __atomic_load_n(c, __ATOMIC_ACQUIRE);
}
static inline uint32_t lk__load_link(const uint32_t *l)
{
    return __atomic_load_n(l, __ATOMIC_RELAXED);
}
static inline uint8_t lk__load_flags(char *n)
{
    return __atomic_load_n(lk__flags(n), __ATOMIC_ACQUIRE);
}
/* Readers test the dense copy: 4096 flags share a page, so the test hits
 * L1/L2 where the node header (another cache line of a random node) would
 * miss.  Writers update both with lk__set_flags; the node byte is the one
 * that is persisted. */
static inline uint8_t lk__dflags(const struct lk__ctab *t, uint32_t id)
{
    return __atomic_load_n(&t->flg[id >> LK__CHUNK_SHIFT][id & LK__CHUNK_MASK], __ATOMIC_ACQUIRE);
}
static inline void lk__set_flags(const struct lk__ctab *t, char *n, uint32_t id, uint8_t v)
{
    __atomic_store_n(lk__flags(n), v, __ATOMIC_RELEASE);
    __atomic_store_n(&t->flg[id >> LK__CHUNK_SHIFT][id & LK__CHUNK_MASK], v, __ATOMIC_RELEASE);
}

/* Upper block of `id` at `level` >= 1: count then max_m links; NULL if none. */
static inline uint32_t *lk__upper_t(const struct lk_index *ix, const struct lk__ctab *t,
                                    uint32_t id, unsigned level)
{
    uint32_t *b = __atomic_load_n(&t->upper[id >> LK__CHUNK_SHIFT][id & LK__CHUNK_MASK],
                                  __ATOMIC_ACQUIRE);
    return b ? b + (size_t)(level - 1) * (ix->max_m + 1) : NULL;
}

/* Links of `id` at `level`: *cnt pointer and link array. */
static inline uint32_t *lk__links_t(const struct lk_index *ix, const struct lk__ctab *t, uint32_t id,
                                    unsigned level, uint32_t **cnt)
{
    if (level == 0) {
        char *n = lk__node_t(ix, t, id);
        *cnt = lk__count0(n);
        return lk__links0(n);
    }
    uint32_t *b = lk__upper_t(ix, t, id, level);
    *cnt = b;
    return b + 1;
}

/* Float32 copy of `id` (for F32 storage: the stored vector itself). */
static inline const float *lk__raw_t(const struct lk_index *ix, const struct lk__ctab *t, uint32_t id)
{
    if (!ix->compressed)
        return (const float *)lk__vec(ix, lk__node_t(ix, t, id));
    return t->raw[id >> LK__CHUNK_SHIFT] + (size_t)(id & LK__CHUNK_MASK) * ix->p.dim;
}

/* Per-node writer lock: one byte in the node block, so a million nodes
 * cost a megabyte of locks, not hnswlib's 40 MB of std::mutex.  Critical
 * sections are a few hundred ns, so spin briefly; but yield after that: on
 * an oversubscribed machine the holder may have been preempted, and
 * spinning for its whole time slice doubled build time in a measurement. */
static inline void lk__node_lock(char *n)
{
    uint8_t *l = lk__lockb(n);
    unsigned spins = 0;
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
            if (++spins < 64)
                __builtin_ia32_pause();
            else
                sched_yield();
        }
    }
}
static inline void lk__node_unlock(char *n)
{
    __atomic_store_n(lk__lockb(n), 0, __ATOMIC_RELEASE);
}

/* internal distance: smaller is closer */
static inline float lk__to_distance(const struct lk_index *ix, float kernel_value)
{
    return ix->is_ip ? 1.0f - kernel_value : kernel_value;
}

/* ---- hnsw.c: storage, map, pool ---- */
int lk__index_init(struct lk_index *ix, const struct lk_index_params *p, struct lk_err *err);
int lk__validate_params(const struct lk_index_params *p, struct lk_err *err);
int lk__store_grow(struct lk_index *ix, uint32_t need_slots);
void lk__store_release(struct lk_index *ix);
int lk__map_put(struct lk__map *m, uint64_t key, uint32_t val);
uint32_t lk__map_get(const struct lk__map *m, uint64_t key);
void lk__map_del(struct lk__map *m, uint64_t key);
void lk__map_free(struct lk__map *m);
struct lk__sctx *lk__ctx_get(const struct lk_index *ix);
void lk__ctx_put(const struct lk_index *ix, struct lk__sctx *c);
void lk__ctx_free(struct lk__sctx *c);
int lk__ctx_prepare(struct lk__sctx *c, uint32_t n_slots, size_t heap, size_t buf, size_t dim);
int lk__check_vector(const float *v, size_t dim, struct lk_err *err);
/* Prepare the stored/encoded form of `v` (COSINE: normalise into tmp). */
const float *lk__prepare_vector(const struct lk_index *ix, const float *v, float *tmp,
                                struct lk_err *err, int *rc);
uint32_t lk__random_level(const struct lk_index *ix, uint64_t seq);

/* ---- hnsw_insert.c ---- */
/* Link slot `id` (already written: vector, level, ext id; flags PENDING)
 * into the graph (Algorithm 1).  Thread-safe against other lk__insert_link
 * calls and readers. */
int lk__insert_link(struct lk_index *ix, struct lk__sctx *c, uint32_t id);
/* Allocate (reuse or append) a slot for ext id `id` with vector `v` (already
 * prepared) and write it; flags = PENDING.  Caller holds write_mu. */
int lk__slot_write(struct lk_index *ix, uint64_t id, const float *v, uint64_t seq, uint32_t *slot,
                   struct lk_err *err);
/* Mark inserted: map put + clear PENDING.  Caller serialises map writes. */
int lk__publish(struct lk_index *ix, uint64_t id, uint32_t slot, struct lk_err *err);
/* Update: point `id` at the linked PENDING `slot`, tombstone `old`, clear
 * PENDING.  On failure (id map out of memory) `old` stays live and `slot`
 * becomes a tombstone.  Caller holds write_mu. */
int lk__replace_published(struct lk_index *ix, uint64_t id, uint32_t old, uint32_t slot,
                          struct lk_err *err);
/* An insert failed (out of memory) after lk__slot_write gave it `slot` but
 * before lk__publish: turn the slot into a reusable tombstone.  Caller holds
 * write_mu.  Call lk__slots_reset_unlinked afterwards. */
void lk__slot_abandon(struct lk_index *ix, uint32_t slot);
/* After failed inserts: an HNSW index that still has no entry point never
 * linked any node, so every slot is an abandoned tombstone; drop them all
 * (n_slots = 0) so the index is the valid empty index again rather than
 * "slots but no entry point".  No-op otherwise.  Caller holds write_mu. */
void lk__slots_reset_unlinked(struct lk_index *ix);

/* After a threaded batch build: re-link every live node that level-0
 * links from the entry point do not reach (see hnsw_insert.c).  queue and
 * seen hold at least `cap` >= n_slots entries / bits (allocated by the
 * caller beforehand, so the pass cannot fail).  Caller holds write_mu. */
void lk__repair_reachability(struct lk_index *ix, uint32_t *queue, uint64_t *seen, uint32_t cap);

/* ---- hnsw_search.c ---- */
/* SEARCH-LAYER (Algorithm 2) used by insertion: ef nearest to q at `level`
 * starting from the candidates in c->res[0..*n) (in: entry points; out:
 * result max-heap of up to ef).  Skips `self`. */
size_t lk__search_layer(const struct lk_index *ix, const struct lk__ctab *t, struct lk__sctx *c,
                        const float *q, uint32_t nslots, const struct lk__cand *eps, size_t n_eps,
                        size_t ef, unsigned level, uint32_t self);
/* Greedy descent (ef = 1) from `ep` through levels top..stop+1. */
struct lk__cand lk__greedy(const struct lk_index *ix, const struct lk__ctab *t, const float *q,
                           uint32_t nslots, struct lk__cand ep, unsigned top, unsigned stop);

/* ==== Binary heaps of (distance, slot) ====
 * Plain arrays owned by the search context (no allocation per query).
 * Min-heap: candidates to expand (nearest on top).  Max-heap: the current
 * ef best results (furthest on top, so the admission test and the eviction
 * are O(1) / O(log ef)). */
static inline void lk__minheap_push(struct lk__cand *h, size_t *n, struct lk__cand x)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) >> 1;
        if (h[p].d <= x.d)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static inline struct lk__cand lk__minheap_pop(struct lk__cand *h, size_t *n)
{
    struct lk__cand top = h[0], x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        if (l + 1 < m && h[l + 1].d < h[l].d)
            l++;
        if (x.d <= h[l].d)
            break;
        h[i] = h[l];
        i = l;
    }
    if (m)
        h[i] = x;
    return top;
}
static inline void lk__maxheap_push(struct lk__cand *h, size_t *n, struct lk__cand x)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) >> 1;
        if (h[p].d >= x.d)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static inline struct lk__cand lk__maxheap_pop(struct lk__cand *h, size_t *n)
{
    struct lk__cand top = h[0], x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        if (l + 1 < m && h[l + 1].d > h[l].d)
            l++;
        if (x.d >= h[l].d)
            break;
        h[i] = h[l];
        i = l;
    }
    if (m)
        h[i] = x;
    return top;
}
/* Replace the top (furthest) of a non-empty max-heap by x and sift down. */
static inline void lk__maxheap_replace(struct lk__cand *h, size_t n, struct lk__cand x)
{
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n)
            break;
        if (l + 1 < n && h[l + 1].d > h[l].d)
            l++;
        if (x.d >= h[l].d)
            break;
        h[i] = h[l];
        i = l;
    }
    h[i] = x;
}
void lk__cand_sort(struct lk__cand *a, size_t n);
/* Sort a max-heap ascending in place (heapsort's second phase): cheaper
 * than qsort on the search path (no comparator calls). */
static inline void lk__maxheap_sort(struct lk__cand *h, size_t n)
{
    while (n > 1) {
        struct lk__cand top = h[0];
        n--;
        lk__maxheap_replace(h, n, h[n]);
        h[n] = top;
    }
}

/* ---- flat.c ---- */
struct lk__filter;
/* Exact scan over slots (only the set bits of a bitmap filter): exact top-k of the allowed live items into out (sorted ascending, returns
 * the count).  out[0..n0) must be a max-heap of at most k items to start
 * from (0 = empty); skip_epoch != 0 skips slots with c->vis[id] ==
 * skip_epoch (visited by an abandoned traversal whose results are the
 * heap).  Distances are exact float32. */
size_t lk__exact_scan(const struct lk_index *ix, struct lk__sctx *c, const float *q, size_t k,
                      const struct lk__filter *f, struct lk__cand *out, size_t n0, uint16_t skip_epoch);

struct lk_bitmap {
    const struct lk_index *ix;
    uint32_t nbits;
    size_t count;
    uint64_t *words;
};

struct lk__filter {
    const struct lk_bitmap *bm;
    lk_filter_fn fn;
    void *user;
};

/* crc32c.c */
uint32_t lk__crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t lk__crc32c_sw(uint32_t crc, const void *buf, size_t len); /* table path, for tests */

/* distance.c */
void lk__encode(const struct lk_index *ix, const float *v, void *out);

#endif /* LOOKALIKE_PINDEX_H */
