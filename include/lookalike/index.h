/*
 * lookalike/index.h — the vector index: approximate nearest-neighbour search
 * over float32 embeddings with HNSW, plus an exact brute-force ("flat") index
 * behind the same interface.
 *
 * Method: Hierarchical Navigable Small World graphs, Yu. A. Malkov and
 * D. A. Yashunin, "Efficient and robust approximate nearest neighbor search
 * using Hierarchical Navigable Small World graphs", IEEE TPAMI 42(4), 2018
 * (arXiv:1603.09320).  Algorithm numbers in the sources refer to that paper:
 * Algorithm 1 INSERT, 2 SEARCH-LAYER, 4 SELECT-NEIGHBORS-HEURISTIC,
 * 5 K-NN-SEARCH.
 *
 * The library knows nothing of images, HTTP or the catalog: it maps 64-bit
 * external ids (the caller's product handles) to vectors of `dim` floats.
 *
 * Distances and similarities (struct lk_hit):
 *   LK_METRIC_L2      distance = squared Euclidean distance sum (a_i - b_i)^2,
 *                     similarity = 1 - distance / 2 (equals the cosine when
 *                     both vectors have unit L2 norm).
 *   LK_METRIC_IP      inner product.  distance = 1 - <a,b>, similarity = <a,b>.
 *                     On unit vectors this is cosine similarity; the index does
 *                     not normalise (use LK_METRIC_COSINE for that).
 *   LK_METRIC_COSINE  as LK_METRIC_IP, but every added vector and every query
 *                     is scaled to unit L2 norm first (a zero vector is
 *                     rejected with LK_ERR_INVALID_ARG).
 * Results are always ordered by increasing distance (= decreasing similarity).
 *
 * Errors: every function returning int returns LK_OK (0) or a negative
 * LK_ERR_* code (lookalike/status.h) and, when `err` is non-NULL, writes a
 * message there.  Invalid input never crashes: NULL pointers, NaN/Inf in
 * vectors, out-of-range parameters give LK_ERR_INVALID_ARG; corrupt or
 * truncated files give LK_ERR_FORMAT / LK_ERR_CORRUPT / LK_ERR_TRUNCATED /
 * LK_ERR_CHECKSUM.
 *
 * Thread-safety (the contract the server relies on):
 *   - Any number of threads may call lk_index_search, lk_index_count,
 *     lk_index_stats, lk_index_contains, lk_index_get_vector,
 *     lk_index_bitmap_new, lk_bitmap_set_id, lk_index_check and lk_index_save
 *     concurrently, also while ONE other thread mutates the index with
 *     lk_index_add, lk_index_add_batch or lk_index_remove.  Mutators are
 *     serialised internally by a mutex, so several writer threads are safe
 *     too (but not parallel: use lk_index_add_batch for a parallel build).
 *     A search running during a mutation sees each node either before or
 *     after the change (it may or may not return a node being added/removed
 *     at that instant).  An update (lk_index_add / lk_index_add_batch on an
 *     existing id) keeps the old vector searchable while the new one is
 *     linked, then switches: map entry, old node tombstoned, new node made
 *     visible, in that order, so a search overlapping that instant may miss
 *     the id (never returns it twice, never returns a stale distance).  A
 *     batch's rows become visible one by one as they are linked (updates at
 *     the end); a failed batch is rolled back (lk_index_add_batch).  A
 *     search never crashes or reads freed memory, because node
 *     storage grows in pointer-stable chunks and is never moved or freed
 *     before lk_index_free.  Scheme: writers lock one node at a time (a
 *     spinlock byte) to rewrite its links; readers take no lock and read
 *     link counts with acquire and ids with relaxed atomics; the entry
 *     point and slot count are published with release.  When a deleted slot
 *     is reused while a search is traversing it, that search may compute
 *     one distance on half-rewritten vector data (it only affects routing:
 *     a slot deleted or reused during the search is never reported).  Slots
 *     are reused oldest-first, which makes this rare.
 *   - lk_index_compact rebuilds the graph in place and needs EXCLUSIVE access
 *     (no concurrent calls of any kind).  lk_index_rebuild produces a new
 *     compacted index from a live one and is safe concurrently with searches.
 *   - lk_index_free needs exclusive access.
 *
 * Memory per vector (bytes, with M links): node block =
 *   16 (header) + 8*M (level-0 links, 2M x uint32) + 8 (external id) +
 *   vector (4*dim for F32, 2*dim for F16, 4 + dim for I8),
 * rounded up to a multiple of 8; plus 9 (upper-level pointer, dense flag
 * byte); plus 4*dim for the exact float32 copy used for re-ranking when
 * storage is F16 or I8; plus 24-48 for the external-id hash table; plus on
 * average (M*4 + 4)/ln(M) for upper levels.  Example, dim 128, M 16, F32:
 * 656 + 9 + ~36 + ~24 = ~725 bytes per vector.
 */
#ifndef LOOKALIKE_INDEX_H
#define LOOKALIKE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Parameters ======================================================== */

enum lk_index_kind {
    LK_INDEX_HNSW = 0,   /* approximate, graph based (Malkov & Yashunin 2018) */
    LK_INDEX_FLAT = 1,   /* exact brute force: the oracle and the baseline */
};

enum lk_metric {
    LK_METRIC_L2 = 0,     /* squared Euclidean distance */
    LK_METRIC_IP = 1,     /* inner product (cosine on unit vectors) */
    LK_METRIC_COSINE = 2, /* inner product after normalising to unit length */
};

/* How vectors are stored for graph traversal.  F16 and I8 keep an exact
 * float32 copy as well and re-rank the final candidates with it, so the
 * returned distances are always exact float32 distances. */
enum lk_storage {
    LK_STORAGE_F32 = 0,  /* 4*dim bytes per vector */
    LK_STORAGE_F16 = 1,  /* IEEE 754 binary16, 2*dim bytes (+4*dim float32 for re-ranking) */
    LK_STORAGE_I8 = 2,   /* symmetric int8 with one float scale per vector (max|x|/127),
                            4 + dim bytes (+4*dim float32 for re-ranking) */
};

/* Dimension: at least 1; at most 16384 so one node (vector + links) stays
 * well under a megabyte and dim*4 never overflows 32-bit offsets. */
#define LK_INDEX_DIM_MIN 1u
#define LK_INDEX_DIM_MAX 16384u

/* M: links per node on levels >= 1 (level 0 keeps 2*M, as in the paper's
 * recommendation Mmax0 = 2M).  Below 2 the heuristic cannot keep the graph
 * connected; above 128 the level-0 block (1 KiB of links) costs more memory
 * and bandwidth than it gives back in recall (the paper reports 5..48 as the
 * useful range). */
#define LK_HNSW_M_DEFAULT 16u
#define LK_HNSW_M_MIN 2u
#define LK_HNSW_M_MAX 128u

/* ef_construction: size of the dynamic candidate list while inserting.
 * Smaller than M wastes the link budget; above 4096 build time grows with no
 * measurable gain in graph quality. */
#define LK_HNSW_EF_CONSTRUCTION_DEFAULT 200u
#define LK_HNSW_EF_CONSTRUCTION_MIN 1u
#define LK_HNSW_EF_CONSTRUCTION_MAX 4096u

/* ef_search: size of the dynamic candidate list while searching (the
 * recall/speed knob; the effective value is max(ef_search, k)).  The upper
 * bound caps per-thread search memory (two heaps of ef entries). */
#define LK_HNSW_EF_SEARCH_DEFAULT 64u
#define LK_HNSW_EF_SEARCH_MIN 1u
#define LK_HNSW_EF_SEARCH_MAX 32768u

/* Largest k a search may ask for (bounds the per-search result heap). */
#define LK_INDEX_K_MAX 32768u

/* Highest graph level.  Levels are drawn as floor(-ln(U) * mL) with
 * mL = 1/ln(M) (paper section 4); 31 is far beyond what 2^32 nodes need and
 * lets the level fit in a byte. */
#define LK_HNSW_LEVEL_MAX 31u

/* Most nodes (slots, including tombstones) one index can hold: internal ids
 * are uint32 and UINT32_MAX is reserved as "none". */
#define LK_INDEX_SLOTS_MAX 0x40000000u

/* Fraction of tombstoned slots above which lk_index_stats reports
 * needs_compaction (and lk_index_remove returns no error but the caller
 * should schedule lk_index_compact or lk_index_rebuild).  At 30 % deleted,
 * traversal spends a third of its distance computations on nodes that can
 * never be returned. */
#define LK_INDEX_COMPACT_FRACTION_DEFAULT 0.3f

struct lk_index_params {
    enum lk_index_kind kind;   /* default LK_INDEX_HNSW */
    uint32_t dim;              /* floats per vector, [LK_INDEX_DIM_MIN, LK_INDEX_DIM_MAX] */
    enum lk_metric metric;     /* default LK_METRIC_L2 */
    enum lk_storage storage;   /* default LK_STORAGE_F32 */
    uint32_t M;                /* HNSW only; [LK_HNSW_M_MIN, LK_HNSW_M_MAX], default 16 */
    uint32_t ef_construction;  /* HNSW only; default 200 */
    uint32_t ef_search;        /* default ef_search for queries that pass 0; default 64 */
    uint64_t seed;             /* level-assignment seed; same seed + same single-threaded
                                  insertion order => identical graph.  Default 0x5eed. */
    float compact_fraction;    /* deleted fraction that flags needs_compaction, (0,1], default 0.3 */
};

/* Fill `p` with the defaults above for vectors of `dim` floats. */
void lk_index_params_default(struct lk_index_params *p, uint32_t dim);

/* ==== Lifecycle ========================================================= */

struct lk_index;  /* opaque */

/* Create an empty index.  Storage grows on demand (no capacity up front).
 * Errors: LK_ERR_INVALID_ARG (NULL, parameter out of range),
 * LK_ERR_NOMEM.  On success *out owns the index; free it with
 * lk_index_free. */
int lk_index_new(const struct lk_index_params *params, struct lk_index **out,
                 struct lk_err *err);

/* Free the index and everything it owns (unmaps a mapped file).  NULL is a
 * no-op.  Exclusive access required. */
void lk_index_free(struct lk_index *idx);

/* Copy of the parameters the index was created (or loaded) with. */
int lk_index_get_params(const struct lk_index *idx, struct lk_index_params *out);

/* ==== Mutation ========================================================== */

/* Add `vec` (dim floats, copied; finite values only) under `id`.  If `id` is
 * already present this is an update: the old vector is deleted and the new
 * one inserted under the same id.  Any uint64 id is allowed.
 * Errors: LK_ERR_INVALID_ARG (NULL, NaN/Inf, zero vector with COSINE),
 * LK_ERR_LIMIT (LK_INDEX_SLOTS_MAX reached), LK_ERR_NOMEM. */
int lk_index_add(struct lk_index *idx, uint64_t id, const float *vec, struct lk_err *err);

/* Add `n` vectors: ids[i] with vecs[i*dim .. i*dim+dim-1] (row-major).
 * Uses `nthreads` worker threads for the graph build (0 = one per online
 * CPU, capped at 64).  Duplicate ids inside the batch behave as successive
 * updates (the last one wins).  With nthreads == 1 the result is
 * deterministic for a given seed.
 * Failure atomicity: the batch is validated (finite values) before anything
 * is inserted, so a bad row leaves the index unchanged.  A failure later
 * (LK_ERR_NOMEM, LK_ERR_LIMIT) rolls the batch back: rows with new ids that
 * were already inserted are removed again and updates are never applied
 * (an updated id keeps its old vector until the whole batch has linked), so
 * the live contents (id -> vector) are exactly as before the call; only
 * reusable tombstones remain.  Concurrent searches may see rows of a failed
 * batch for the duration of the call.  One narrower case: running out of
 * memory while switching the id map for an update at the very end leaves
 * that one id with its old vector and the rest of the batch applied (the
 * error is returned).
 * Errors: as lk_index_add. */
int lk_index_add_batch(struct lk_index *idx, const uint64_t *ids, const float *vecs,
                       size_t n, unsigned nthreads, struct lk_err *err);

/* Delete `id`.  The node becomes a tombstone: it is still traversed (so the
 * graph stays connected) but never occupies a result slot; its slot is
 * reused by a later insert.  Errors: LK_ERR_NOT_FOUND. */
int lk_index_remove(struct lk_index *idx, uint64_t id, struct lk_err *err);

/* Rebuild the graph from the live vectors, dropping all tombstones, using
 * `nthreads` threads (0 = all CPUs), and reorder it (lk_index_reorder).
 * Internal ids change (bitmaps made before are invalid).  EXCLUSIVE access required.  On failure the index is
 * unchanged.  Errors: LK_ERR_NOMEM. */
int lk_index_compact(struct lk_index *idx, unsigned nthreads, struct lk_err *err);

/* Build a new compacted index holding the live vectors of `idx` (same
 * parameters), reordered for memory locality (lk_index_reorder).  Safe while other threads search `idx`; writers must not run
 * meanwhile (the copy would miss their changes).  *out is owned by the
 * caller. */
int lk_index_rebuild(const struct lk_index *idx, unsigned nthreads, struct lk_index **out,
                     struct lk_err *err);

/* Renumber the internal slots so that graph neighbours sit next to each
 * other in memory: breadth-first order of the level-0 graph from the entry
 * point (which becomes slot 0), then any slot that walk does not reach
 * (unreachable tombstones) in its old order.  Node blocks, the float32
 * copies (F16/I8 storage), the upper-level links, flags/tombstones, levels,
 * the id map, the entry point and the free-slot queue are all renamed; the
 * permutation is applied in place by following its cycles.
 * Why: at 1M vectors a search is bound by DRAM/TLB misses, and slots in
 * insertion order scatter the neighbours of a node over the whole storage.
 * Method: Coleman et al., "Graph Reordering for Cache-Efficient Near
 * Neighbor Search", NeurIPS 2022 (the BFS ordering).
 *
 * !!! EXCLUSIVE ACCESS REQUIRED: no concurrent lk_index_search, add,
 * !!! remove, save, check, bitmap or any other call on `idx` while it runs
 * !!! (searches take no lock and would read half-moved nodes).  Call it
 * !!! right after a bulk build, before the index is shared.  Bitmaps made
 * !!! before the call are invalid afterwards (internal ids change).
 *
 * Searches return the same ids and distances as before (only the order of
 * hits at exactly equal distance may differ); later inserts, deletes,
 * save/load work as on any index, and the file format is unchanged.  A
 * flat index, an empty or 1-slot index is left as it is.
 * Gain: +24 to +33 % single-thread queries/s at recall@10 0.86-0.99 on a
 * 1M x 128 synthetic index (bench/reorder); little below ~100k vectors,
 * where the nodes a search touches mostly fit in cache anyway.
 * Cost: O(slots * M) time, a BFS plus one move of every node block (0.7 s
 * at 1M x 128); extra memory 8 bytes per slot + 1 bit per slot + one node
 * block, freed before returning (8 MB at 1M slots).  On an index loaded
 * with LK_LOAD_MMAP every node page becomes a private copy.
 * Errors: LK_ERR_INVALID_ARG (NULL), LK_ERR_NOMEM (the index is unchanged). */
int lk_index_reorder(struct lk_index *idx, struct lk_err *err);

/* ==== Queries =========================================================== */

/* Number of live (not deleted) vectors. */
size_t lk_index_count(const struct lk_index *idx);

/* 1 if `id` is live in the index, 0 otherwise (also for idx == NULL). */
int lk_index_contains(const struct lk_index *idx, uint64_t id);

/* Copy the stored float32 vector of `id` into out[0..dim-1] (for COSINE,
 * the normalised vector).  Errors: LK_ERR_NOT_FOUND. */
int lk_index_get_vector(const struct lk_index *idx, uint64_t id, float *out,
                        struct lk_err *err);

struct lk_index_stats {
    enum lk_index_kind kind;
    uint32_t dim;
    size_t count;            /* live vectors */
    size_t deleted;          /* tombstoned slots waiting for reuse */
    size_t slots;            /* slots in use, live + deleted */
    uint32_t max_level;      /* top level of the graph (0 for flat / empty) */
    size_t node_bytes;       /* bytes of one node block */
    size_t memory_bytes;     /* heap + mapped bytes the index holds (approximate, excludes
                                per-thread search contexts' visited tables) */
    int mapped;              /* 1 if node storage is memory-mapped from a file */
    int needs_compaction;    /* deleted / slots > compact_fraction */
};
int lk_index_stats(const struct lk_index *idx, struct lk_index_stats *out);

/* A set of allowed internal slots for filtered search.  Build it right
 * before searching: it is a snapshot of the id -> slot map; if an id is
 * removed and its slot reused in between, the new occupant is allowed.
 * Ids added after the bitmap was created are not allowed by it. */
struct lk_bitmap;

/* New empty bitmap sized to the current number of slots of `idx`.  *out is
 * owned by the caller (lk_bitmap_free). */
int lk_index_bitmap_new(const struct lk_index *idx, struct lk_bitmap **out, struct lk_err *err);
void lk_bitmap_free(struct lk_bitmap *bm);
/* Allow external `id`.  Errors: LK_ERR_NOT_FOUND (id not live in idx, or
 * added after the bitmap was made). */
int lk_bitmap_set_id(struct lk_bitmap *bm, const struct lk_index *idx, uint64_t id,
                     struct lk_err *err);
/* Number of allowed slots. */
size_t lk_bitmap_count(const struct lk_bitmap *bm);

/* Predicate filter: return nonzero to allow `id`.  Called from the searching
 * thread, possibly many times per search (once per visited node); it must be
 * fast, thread-safe and must not call back into the index's mutators. */
typedef int (*lk_filter_fn)(uint64_t id, void *user);

/* Search flags. */
#define LK_SEARCH_MIN_SIMILARITY 0x1u /* drop hits with similarity < min_similarity */
#define LK_SEARCH_MAX_DISTANCE   0x2u /* drop hits with distance > max_distance */
#define LK_SEARCH_FORCE_EXACT    0x4u /* exact scan even for HNSW (testing, benches) */
#define LK_SEARCH_FORCE_GRAPH    0x8u /* never switch a filtered search to exact scan */

/* Filtered-search planner.  A filtered HNSW search either traverses the
 * graph (filter applied during traversal) or scans the allowed items
 * exactly.  Cost model, in exact-scan distance computations:
 *   exact scan of the allowed set:  A   (A = allowed count: the bitmap's
 *                                        count, or allowed_estimate)
 *   graph traversal:                E * ef / p graph distances, each costing
 *                                   K exact-scan ones (random access, heaps)
 *   descent to level 0:             D = M * (top level + 1) graph distances
 * where E = E(dim), K = K(dim) (below) and p is the density of allowed
 * items among the nodes the traversal meets: the global selectivity
 * s = A / count for a filter independent of the query (a stock or region
 * filter), up to 1 for a filter that follows the query (the category the
 * shopper's photo shows).  With A known and no LK_SEARCH_FORCE_* flag:
 *   1. exact scan if A <= LK_FILTER_EXACT_MIN_COUNT_PER_K * k or
 *      A < LK_FILTER_GRAPH_MIN_GAIN * K * E * ef (even p = 1 would not make
 *      the graph clearly cheaper);
 *   2. graph if K * E * ef / s <= LK_FILTER_GRAPH_MARGIN * A: the graph
 *      wins even if the filter is independent of the query;
 *   3. otherwise only a filter that follows the query lets the graph win.
 *      Exact scan if finding out (the descent, K * D) would cost more than
 *      LK_FILTER_PROBE_MAX_SHARE * A;
 *   4. otherwise probe, by bit tests on level-0 neighbour lists (no
 *      distances).  "Dense" below: of the n neighbours tested, at least
 *      s * n + LK_FILTER_PROBE_Z * sqrt(n s (1 - s)) allowed, clearly more
 *      than a filter independent of the data shows.  (a) With a bitmap,
 *      the neighbours of LK_FILTER_PROBE_NODES allowed nodes at fixed
 *      spread positions of the bitmap: not dense = the allowed set ignores
 *      the graph's neighbourhoods (a random stock filter), no query can see
 *      more than s, exact scan up front.  (b) After the descent, the
 *      neighbours of the node nearest the query: the graph runs only if
 *      they are dense (whether dense enough is the budget's judgement,
 *      below, on a larger sample); else the exact scan (reported as a
 *      bail-out).
 *   A traversal started by rule 2 or 4 keeps a budget ("bail-out"), in
 *   graph distances costed at Kb = Kb(dim) (a traversal that keeps finding
 *   allowed nodes stays in cache, so its distances cost less than K): once
 *   LK_FILTER_DENSITY_SAMPLE * A / (Kb * E * ef) candidates were seen, it
 *   is abandoned for the exact scan at any expansion where the distances
 *   still to compute at the observed density, E * ef * candidates /
 *   (allowed seen + 1) - computed so far, exceed A / Kb, and in any case
 *   once it has computed A / Kb distances.  The scan after a
 *   bail-out starts from the allowed items the traversal found and skips
 *   the nodes it visited, so its result is exactly the exact scan's; the
 *   budget bounds a filtered search at about twice the exact scan in the
 *   worst case (a filter whose allowed items are all far from the query).
 * A predicate without allowed_estimate gives an unknown A: graph without a
 * budget.  If a graph search ends with fewer than k allowed hits an exact
 * scan completes it.  lk_search_opts.info reports the path taken.
 * Constants measured with bench/ann on sift-5k, a 100,000 x 128 synthetic
 * set and Fashion-MNIST (784-d); see docs/params.md. */
#define LK_FILTER_EXACT_MIN_COUNT_PER_K 16u
/* E(dim) and K(dim): the _LOWDIM value at dim <= 128 (memory latency and
 * heap work dominate a graph step), the other at dim >= 768 (the arithmetic
 * dominates both paths), log(dim)-interpolated between. */
#define LK_FILTER_GRAPH_EVALS_PER_EF_LOWDIM 10.0
#define LK_FILTER_GRAPH_EVALS_PER_EF 4.0
#define LK_FILTER_GRAPH_EVAL_COST_LOWDIM 3.0
#define LK_FILTER_GRAPH_EVAL_COST 1.5
/* Kb(dim), the same interpolation: the traversal's budget. */
#define LK_FILTER_BUDGET_EVAL_COST_LOWDIM 2.0
#define LK_FILTER_BUDGET_EVAL_COST 1.0
#define LK_FILTER_GRAPH_MIN_GAIN 1.5
#define LK_FILTER_GRAPH_MARGIN 0.8
#define LK_FILTER_PROBE_MAX_SHARE 0.05
#define LK_FILTER_PROBE_Z 2.0
#define LK_FILTER_PROBE_NODES 4u
#define LK_FILTER_DENSITY_SAMPLE 4.0

/* Which way a search went (lk_search_info.path). */
enum lk_search_path {
    LK_PATH_GRAPH = 0,     /* graph traversal only */
    LK_PATH_EXACT = 1,     /* exact scan chosen up front (flat index, LK_SEARCH_FORCE_EXACT,
                              empty index, or planner rule 1, 3 or 4a) */
    LK_PATH_BAILOUT = 2,   /* graph attempt abandoned (planner rule 4's probe or the
                              traversal's budget), then exact scan */
    LK_PATH_COMPLETED = 3, /* graph found fewer than k allowed hits; exact scan instead */
};

/* What a search did, written when lk_search_opts.info is non-NULL. */
struct lk_search_info {
    enum lk_search_path path;
    size_t allowed;        /* allowed count the planner used; SIZE_MAX = unknown / no filter */
    size_t graph_evals;    /* level-0 distance computations of a filtered traversal */
};

/* Per-search options.  A zero-initialised struct (or opts == NULL) means:
 * index default ef_search, no filter, no threshold. */
struct lk_search_opts {
    uint32_t ef_search;            /* 0 = index default; [1, LK_HNSW_EF_SEARCH_MAX] */
    unsigned flags;                /* LK_SEARCH_* */
    const struct lk_bitmap *allow; /* allow-list over slots (lk_index_bitmap_new), NULL = all */
    lk_filter_fn allow_fn;         /* predicate on external id, NULL = all.  With both
                                      allow and allow_fn set an item must pass both. */
    void *allow_user;              /* passed to allow_fn */
    size_t allowed_estimate;       /* caller's estimate of how many items pass allow_fn
                                      (0 = unknown); lets a predicate-only search choose the
                                      exact scan at low selectivity */
    float min_similarity;          /* with LK_SEARCH_MIN_SIMILARITY */
    float max_distance;            /* with LK_SEARCH_MAX_DISTANCE */
    struct lk_search_info *info;   /* optional, caller-owned: receives what the search did */
};

struct lk_hit {
    uint64_t id;       /* external id */
    float distance;    /* see metric table at the top; exact float32 */
    float similarity;
};

/* k nearest live neighbours of `query` (dim floats, finite).  Writes up to k
 * hits into out[0..k-1] ordered by increasing distance and their number into
 * *n_out.  Fewer than k hits are returned only when fewer than k live items
 * pass the filter and threshold (HNSW falls back to an exact scan when the
 * graph search finds fewer than k allowed items).  HNSW results are
 * approximate (recall depends on ef_search); flat results are exact.
 * No heap allocation in steady state: per-thread search contexts are pooled
 * inside the index.  Thread-safe (see top).
 * Errors: LK_ERR_INVALID_ARG (NULL, k == 0 or > LK_INDEX_K_MAX, NaN/Inf,
 * ef_search out of range, bitmap from another index), LK_ERR_NOMEM. */
int lk_index_search(const struct lk_index *idx, const float *query, size_t k,
                    const struct lk_search_opts *opts, struct lk_hit *out, size_t *n_out,
                    struct lk_err *err);

/* Integrity check (hnswlib checkIntegrity / Redis hnsw_validate_graph in
 * spirit): every link is in range and not a self-link, link counts within
 * bounds, every node's links at level l point to nodes with level >= l, the
 * entry point has the top level, the id map and the nodes agree, and every
 * live node is reachable from the entry point on level 0.
 * Cost: O(slots * M).  Holds the writer mutex (writers wait; searches
 * continue), so it sees a consistent graph.
 * Errors: LK_ERR_CORRUPT with the first problem found, LK_ERR_NOMEM. */
int lk_index_check(const struct lk_index *idx, struct lk_err *err);

/* ==== Persistence (format: docs/index-format.md) ======================== */

/* Write the index to `path` crash-safely: temporary file in the same
 * directory, fsync, rename over `path`, fsync the directory.  Either the old
 * file or the complete new file survives a crash.  Concurrent searches are
 * fine; a concurrent writer is blocked for the duration.
 * Errors: LK_ERR_IO (errno text in the message), LK_ERR_NOMEM. */
int lk_index_save(const struct lk_index *idx, const char *path, struct lk_err *err);

#define LK_LOAD_MMAP 0x1u /* map the node section of the file instead of reading it
                             (private copy-on-write mapping; pages load lazily after
                             validation, memory shared with the page cache). The file must
                             not be modified in place while mapped (lk_index_save renames,
                             which is safe). */

/* Load an index written by lk_index_save.  Validates everything before use:
 * magic, version, byte order, parameters, section offsets and lengths
 * against the file size, CRC-32C of the header and of every section, every
 * neighbour id, link count and level, the entry point and the id map.
 * Errors: LK_ERR_IO, LK_ERR_FORMAT (not an index file, unknown version),
 * LK_ERR_TRUNCATED, LK_ERR_CHECKSUM, LK_ERR_CORRUPT, LK_ERR_NOMEM.
 * *out is owned by the caller. */
int lk_index_load(const char *path, unsigned flags, struct lk_index **out, struct lk_err *err);

/* ==== Distance kernels ================================================== */

enum lk_simd { LK_SIMD_SCALAR = 0, LK_SIMD_AVX2 = 1, LK_SIMD_AVX512 = 2 };

/* Kernel signature: `a` is dim float32; `b` is an encoded vector: float32[dim]
 * (F32), uint16[dim] binary16 (F16), or a float scale followed by int8[dim]
 * (I8, value_i = scale * b_i).  IP kernels return the inner product,
 * L2 kernels the squared L2 distance.  Unaligned pointers are fine. */
typedef float (*lk_distance_fn)(const float *a, const void *b, size_t dim);

/* The kernel for (metric, storage, simd); LK_METRIC_COSINE gives the IP
 * kernel.  Returns NULL if that instruction set is not usable on this CPU/OS
 * (or forced off by LOOKALIKE_FORCE_SCALAR=1). */
lk_distance_fn lk_distance_kernel(enum lk_metric metric, enum lk_storage storage,
                                  enum lk_simd simd);

/* The kernel the index uses: chosen once per process at first use from CPUID
 * + XGETBV (AVX-512F > AVX2+FMA(+F16C) > scalar), never from the build
 * machine.  LOOKALIKE_FORCE_SCALAR=1 in the environment forces scalar. */
lk_distance_fn lk_distance_get(enum lk_metric metric, enum lk_storage storage);

/* Early-abandoning squared L2 (`a`, `b`, `dim` as lk_distance_fn).  If the
 * squared L2 distance is <= `bound`, returns exactly (bit for bit) what the
 * L2 kernel of the same storage and instruction set returns; otherwise
 * returns some value > `bound` (a partial sum), having stopped reading `b`
 * as soon as its partial sum exceeded `bound` (tested every 128 floats).
 * Exact because squared differences are never negative, so partial sums
 * only grow.  HNSW traversal passes its furthest current result as the
 * bound (index/hnsw_search.c).  `bound` may be +INFINITY (never stops
 * early).  There is no inner-product counterpart: its partial sums are not
 * monotone. */
typedef float (*lk_l2_bounded_fn)(const float *a, const void *b, size_t dim, float bound);

/* The bounded L2 kernel for (storage, simd); NULL as lk_distance_kernel. */
lk_l2_bounded_fn lk_l2_bounded_kernel(enum lk_storage storage, enum lk_simd simd);

/* The bounded L2 kernel on the instruction set lk_distance_get picks (so it
 * matches lk_distance_get(LK_METRIC_L2, storage) bit for bit below the
 * bound); LOOKALIKE_FORCE_SCALAR=1 gives the scalar one. */
lk_l2_bounded_fn lk_l2_bounded_get(enum lk_storage storage);

/* "avx512", "avx2" or "scalar": the path lk_distance_get uses.  Static string. */
const char *lk_simd_path(void);

/* Encode dim floats into the F16 / I8 representation (bytes: 2*dim and
 * 4+dim).  Values outside the binary16 range saturate to +-65504. */
void lk_encode_f16(const float *x, size_t dim, void *out);
void lk_encode_i8(const float *x, size_t dim, void *out);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_INDEX_H */
