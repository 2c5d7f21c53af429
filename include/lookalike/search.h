/*
 * lookalike/search.h — the search engine: a shopper's photo in, ranked,
 * guarded, banded catalog products out; plus the indexing pipeline that
 * produces what the engine serves.
 *
 * ==== Data the engine serves ====
 *
 * One data directory (lookalike/catalog.h) holds the SQLite catalog and the
 * index generations.  A generation written by lk_index_build() contains
 *
 *     index.lkh      the HNSW index (lookalike/index.h), one vector per catalog
 *                    image, vector id = image_id, metric inner product
 *     embed.params   the fused-embedding post-processing learned from the
 *                    catalog (lookalike/embed.h)
 *     search.json    generation metadata: images directory, model layer,
 *                    dimensions, confidence-band thresholds and how they were
 *                    calibrated, images-per-SKU bound
 *     report.json    the merchandisers' build report (lk_build_report)
 *
 * ==== Query path (src/search/query.c) ====
 *
 * The same analysis path as indexing: decode (limits, shrink-on-load) ->
 * CNN descriptor + colour histogram -> fused embedding with the generation's
 * params -> business filters turned into an allow-list over image ids by the
 * catalog (in stock, region, price range, restricted/retired/age policy;
 * applied INSIDE the HNSW search, never after it) -> category guard ->
 * filtered HNSW search asking for k x (images-per-SKU bound) hits ->
 * collapse to the best image per SKU -> ranking (rank.c) -> bands (bands.c)
 * -> fallback (fallback.c).
 *
 * Similarity: the fused embeddings have unit L2 norm and are compared by
 * inner product, so similarity s = w*cos(cnn) + (1-w)*cos(colour) in [-1, 1]
 * (w = the generation's CNN weight, lookalike/embed.h).
 *
 * ==== Threading ====
 *
 * An lk_engine is shared by all request threads.  Searches take a reference
 * on the current generation (index + params + bands) and a workspace (CNN
 * runtime + scratch buffers) from a small pool; a reload loads the new
 * generation beside the old one, swaps the pointer under a mutex and the old
 * generation is freed when its last reader releases it, so no request is ever
 * dropped or blocked by a reload for longer than the pointer swap.  Catalog
 * writes (lk_engine_item_*) are serialised with each other and with reloads
 * by a writer mutex; they update the SQLite catalog and the live index, and
 * the next search sees them.
 *
 * Errors: LK_OK or a negative LK_ERR_* code (lookalike/status.h) with a
 * message in the caller's `struct lk_err` (may be NULL).  Messages may reach
 * HTTP clients, so they never contain file-system paths of the data dir.
 */
#ifndef LOOKALIKE_SEARCH_H
#define LOOKALIKE_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookalike/embed.h"
#include "lookalike/search_types.h"
#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Confidence bands (src/search/bands.c) ============================= */

/*
 * Similarity thresholds of the bands, calibrated per catalog at index time:
 * a sample of catalog images is distorted (centre crop, brightness -/+,
 * down/up-sampling as a stand-in for recompression, small rotation), each
 * distorted copy is embedded and searched, and two distributions are
 * collected: similarity to its OWN product ("own") and to the nearest OTHER
 * product ("other").  Then
 *   exact  = max(10th percentile of own under the mildest distortions
 *                (brightness), 99th percentile of other + margin; the
 *                95th below 200 pairs)   near-duplicate photo
 *   high   = lowest s where own/(own+other) among pairs >= s reaches 0.95
 *   medium = lowest s where that precision reaches 0.75
 *   floor  = 25th percentile of other: below it two photos share little;
 *            used to decide which neighbours count as "close matches"
 * kept ordered exact > high > medium > floor with at least LK_BANDS_MIN_GAP
 * between neighbours.  Without enough samples (fewer than
 * LK_BANDS_MIN_SAMPLES own/other pairs) the defaults below are used and
 * `calibrated` is 0.
 */
struct lk_bands {
    float exact;        /* s >= exact  -> LK_BAND_EXACT */
    float high;         /* s >= high   -> LK_BAND_HIGH */
    float medium;       /* s >= medium -> LK_BAND_MEDIUM, else LK_BAND_LOW */
    float floor;        /* "close match" threshold for facets and the guard */
    int calibrated;     /* 1 when measured on this catalog */
    uint32_t samples;   /* own/other pairs measured */
};

#define LK_BANDS_MIN_SAMPLES 8
#define LK_BANDS_MIN_GAP 0.01f

/* Defaults (measured on synthetic products; used only when a catalog is too
 * small to calibrate). */
void lk_bands_default(struct lk_bands *b);

/* Band of similarity `s` under thresholds `b`. */
enum lk_band lk_bands_classify(const struct lk_bands *b, float s);

/* Derive thresholds from measured similarities: own[i] (distorted copy vs
 * its own product; mild[i] != 0 for the mildest distortions) and other[i]
 * (vs the nearest other product), n pairs each.  Arrays are borrowed and
 * may be reordered.  n < LK_BANDS_MIN_SAMPLES gives the defaults with
 * calibrated = 0.  Errors: LK_ERR_INVALID_ARG (NULL with n > 0, NaN). */
int lk_bands_from_samples(float *own, const unsigned char *mild, float *other, size_t n,
                          struct lk_bands *out, struct lk_err *err);

/* ==== Ranking policy (src/search/rank.c) ================================ */

/*
 * Score in [0, 1]: the similarity clamped to [0, 1] (the colour similarity
 * for colour-adjacent fallback results, see fallback.c), plus small bounded
 * business adjustments (each weight below is the largest change it can make
 * to a score).  Similarity comes first: results are ordered by band, then by
 * score, so an adjustment only reorders results of the same band.
 *   in_stock_boost     + when stock > 0 (visible when in_stock=false lets
 *                        out-of-stock items in)
 *   low_stock_penalty  - when 0 < stock <= low_stock_units
 *   margin_weight      + margin_weight * tier / LK_MARGIN_TIER_MAX
 *   price_weight       - price_weight * min(1, |log2(price / ref)|), ref =
 *                        the price of the most similar result (the likely
 *                        product; keeps alternatives in its price band)
 *   weak_image_penalty - when the matched catalog image is weak (too small,
 *                        blurry, low contrast, cluttered)
 */
struct lk_rank_params {
    float in_stock_boost;
    float low_stock_penalty;
    int64_t low_stock_units;
    float margin_weight;
    float price_weight;
    float weak_image_penalty;
};

/* Each weight may be at most LK_RANK_WEIGHT_MAX: beyond that business rules
 * would outrank visual similarity. */
#define LK_RANK_WEIGHT_MAX 0.2f

void lk_rank_params_default(struct lk_rank_params *p);
/* LK_ERR_INVALID_ARG naming the field when a weight is outside
 * [0, LK_RANK_WEIGHT_MAX] or low_stock_units < 0. */
int lk_rank_params_check(const struct lk_rank_params *p, struct lk_err *err);

/* One candidate as the ranker sees it. */
struct lk_rank_item {
    float similarity;       /* fused inner product: gives the band */
    float basis;            /* similarity the score starts from: = similarity, or the
                               colour similarity when a fallback ranks weak matches by
                               colour (see fallback.c) */
    int64_t price_minor;
    int64_t stock;
    int32_t margin_tier;
    unsigned weak;          /* image weak flags (0 = fine) */
    enum lk_band band;      /* out: filled by lk_rank_apply */
    float score;            /* out */
    int tier;               /* in: sorted first; query.c uses 1 for results outside a
                               category the caller named (fallback), else 0 */
    size_t user;            /* caller's tag, carried through the sort */
};

/* Fill band and score of items[0..n) and sort them: by tier, then band
 * (strongest first), then score, then similarity.  Stable and
 * deterministic. */
void lk_rank_apply(const struct lk_rank_params *p, const struct lk_bands *b,
                   struct lk_rank_item *items, size_t n);

/* ==== Category guard (src/search/guard.c) =============================== */

/* A neighbour's vote: its category path and similarity to the query. */
struct lk_guard_vote {
    const char *category;   /* borrowed; "" for uncategorised (casts no vote) */
    float similarity;
};

/* Minimum share of the vote for the guard to restrict results. */
#define LK_GUARD_CONFIDENCE_DEFAULT 0.6f

/*
 * Infer the query's category from its nearest neighbours: each neighbour
 * votes with weight exp((s - s_best) / 0.05) (a softmax over similarity, so
 * a neighbour 0.05 less similar counts 1/e as much) for its category and
 * every ancestor of it; the inferred category is the DEEPEST node whose
 * share of the total weight is >= min_confidence (else the node with the
 * largest share at depth 1).  Writes the path into out (size >= 1) and its
 * share into *confidence (0 when there are no votes).  Returns 1 if the
 * share reached min_confidence, else 0.
 */
int lk_guard_infer(const struct lk_guard_vote *votes, size_t n, float min_confidence, char *out,
                   size_t out_size, float *confidence);

/* Parent of category path `cat` ("home/furniture/sofas" -> "home/furniture",
 * "home" -> "").  Writes into out (size >= 1). */
void lk_category_parent(const char *cat, char *out, size_t out_size);

/* ==== Engine (src/search/engine.c) ====================================== */

struct lk_engine;

struct lk_engine_opts {
    const char *data_dir;       /* required */
    const char *model_dir;      /* required: MobileNetV2 TF.js model dir */
    const char *images_dir;     /* NULL = the one recorded by the build */
    unsigned workspaces;        /* concurrent searches (CNN runtimes, ~7 MB each); 0 = CPUs */
    uint32_t ef_search;         /* 0 = index default */
    float guard_confidence;     /* 0 = LK_GUARD_CONFIDENCE_DEFAULT */
    struct lk_rank_params rank; /* ranking weights */
    size_t max_image_bytes;     /* upload limit passed to the decoder; 0 = decoder default */
    uint64_t max_pixels;        /* 0 = decoder default */
};

void lk_engine_opts_default(struct lk_engine_opts *o);

/*
 * Open the catalog in opts->data_dir, load the model and the current
 * generation.  Images of the catalog that are missing from the generation's
 * index (added by the HTTP API after the build) are embedded and added now,
 * and vectors of deleted images are removed, so the index matches the
 * catalog.  A data dir without any generation opens "not ready" (searches
 * return LK_ERR_STATE) until lk_engine_reload finds one.
 * Errors: LK_ERR_INVALID_ARG, LK_ERR_MODEL, LK_ERR_DB, LK_ERR_IO,
 * LK_ERR_FORMAT/CORRUPT/CHECKSUM (generation files), LK_ERR_NOMEM.
 */
int lk_engine_open(const struct lk_engine_opts *opts, struct lk_engine **out, struct lk_err *err);

/* Close (no search may be running).  NULL is a no-op. */
void lk_engine_close(struct lk_engine *eng);

/* Load the newest committed generation and swap it in without dropping
 * requests (see top).  On error the old generation keeps serving. */
int lk_engine_reload(struct lk_engine *eng, struct lk_err *err);

/* LK_OK when a generation is loaded; LK_ERR_STATE otherwise. */
int lk_engine_ready(struct lk_engine *eng, struct lk_err *err);

/* Generation number being served (0 = none). */
uint64_t lk_engine_generation(struct lk_engine *eng);

/*
 * Visual search for the encoded image `data` (len bytes, JPEG or PNG,
 * borrowed and never stored).  Fills `resp` (initialised by the caller with
 * lk_search_response_init, freed by the caller).  Errors: those of
 * lk_image_decode (LK_ERR_UNSUPPORTED_FORMAT, LK_ERR_CORRUPT,
 * LK_ERR_TRUNCATED, LK_ERR_DIMENSIONS, LK_ERR_TOO_LARGE), LK_ERR_INVALID_ARG
 * (bad region/category/price in req), LK_ERR_STATE (no generation),
 * LK_ERR_NOMEM.  Thread-safe.
 */
int lk_engine_search(struct lk_engine *eng, const void *data, size_t len,
                     const struct lk_search_request *req, struct lk_search_response *resp,
                     struct lk_err *err);

/* Products that look like catalog item `sku`, from the item's own stored
 * vectors (no image decoding); the item itself is excluded.  Errors:
 * LK_ERR_NOT_FOUND (unknown SKU or no indexed image), as above. */
int lk_engine_similar(struct lk_engine *eng, const char *sku, const struct lk_search_request *req,
                      struct lk_search_response *resp, struct lk_err *err);

/* ==== Catalog writes through the engine (live) ========================== */

/* An item as the engine stores it; strings borrowed. `images` are paths
 * relative to the images directory (absolute paths are accepted only when
 * they lie inside it). */
struct lk_engine_item {
    const char *sku, *title, *category;
    int64_t price_minor;
    const char *currency;       /* NULL = "USD" */
    int64_t stock;
    const char *regions;        /* "US|CA", NULL or "" = everywhere */
    uint32_t flags;             /* LK_FLAG_* (lookalike/catalog.h) */
    int32_t margin_tier;        /* LK_MARGIN_TIER_MIN..MAX; -1 = keep the existing (0 if new) */
    const char *const *images;
    size_t n_images;
};

/* Create or replace: metadata upsert, image set replaced (new images are
 * decoded, embedded and added to the live index before this returns; a bad
 * image fails the call and nothing is written).  *created (may be NULL) = 1
 * when the SKU was new. */
int lk_engine_item_put(struct lk_engine *eng, const struct lk_engine_item *item, int *created,
                       struct lk_err *err);

/* Live metadata update; fields as in struct lk_product_patch (catalog.h),
 * plus an optional new title (NULL = keep). */
struct lk_product_patch;
int lk_engine_item_patch(struct lk_engine *eng, const char *sku, const struct lk_product_patch *patch,
                         const char *title, struct lk_err *err);

/* Delete the item and remove its vectors from the live index. */
int lk_engine_item_delete(struct lk_engine *eng, const char *sku, struct lk_err *err);

/* Record a storefront event (catalog events table). */
int lk_engine_record_event(struct lk_engine *eng, const char *search_id, const char *sku,
                           const char *type, int64_t ts, struct lk_err *err);

/* Bytes of catalog image `image_id` (malloc'ed into *data, caller frees) and
 * its MIME type (static string).  LK_ERR_NOT_FOUND for unknown ids. */
int lk_engine_image(struct lk_engine *eng, int64_t image_id, void **data, size_t *len,
                    const char **mime, struct lk_err *err);

/* Prometheus text lines about the engine (generation, vectors, products),
 * snprintf semantics. */
size_t lk_engine_metrics_text(struct lk_engine *eng, char *buf, size_t cap);

/* ==== HTTP backend (src/search/backend.c) =============================== */

struct lk_server_backend;

/* Fill `be` with the engine-backed implementation of every route
 * (lookalike/server.h); be->ctx = eng, which must outlive the server. */
void lk_search_backend(struct lk_engine *eng, struct lk_server_backend *be);

/* ==== Indexing pipeline (src/search/build.c) ============================ */

/* Progress callback: done of total images embedded in the current phase
 * (phase is a static string: "embed", "calibrate", "index"). */
typedef void (*lk_build_progress_fn)(void *ud, const char *phase, size_t done, size_t total);

struct lk_build_opts {
    const char *catalog_path;   /* CSV or JSONL to import first; NULL = use the catalog as is */
    const char *images_dir;     /* required: where image paths are relative to */
    const char *data_dir;       /* required */
    const char *model_dir;      /* required */
    int strict;                 /* import --strict: any bad row fails the build */
    unsigned threads;           /* 0 = online CPUs */
    size_t pca_dim;             /* 0 = no PCA-whitening (mean-centring only) */
    float w;                    /* CNN weight; 0 = LK_EMBED_W_DEFAULT */
    uint32_t calib_samples;     /* images sampled for band calibration (x5 distortions); 0 = 100 */
    unsigned keep_old;          /* older generations kept (default 1) */
    enum lk_cnn_precision precision;    /* CNN precision of a full build (default
                                         * LK_CNN_PRECISION_DEFAULT, int8); recorded in the
                                         * generation.  lk_index_update ignores it and keeps
                                         * the current generation's precision. */
    lk_build_progress_fn progress;
    void *progress_ud;
};

void lk_build_opts_default(struct lk_build_opts *o);

/* Why an image was not indexed.  Stable order (array index). */
enum lk_skip_reason {
    LK_SKIP_IO = 0,             /* unreadable file */
    LK_SKIP_FORMAT,             /* not JPEG/PNG */
    LK_SKIP_CORRUPT,            /* corrupt or truncated */
    LK_SKIP_DIMENSIONS,         /* over the pixel / byte limits */
    LK_SKIP_EMBED,              /* embedding failed */
    LK_SKIP_REASON_COUNT
};
const char *lk_skip_reason_str(int reason);

struct lk_build_weak {          /* one weak image */
    char *sku;
    int64_t image_id;
    unsigned flags;             /* LK_WEAK_* bits (lookalike/image.h) */
};
struct lk_build_dup {           /* visually near-duplicate products */
    char *sku_a, *sku_b;
    float similarity;
};

/*
 * Where a build's time goes, stage by stage (lk_build_report.stage[]).
 * Stages run one after another except the four per-image ones (decode,
 * quality, colour, cnn), which run interleaved on the build's worker
 * threads.  Stable order (array index); names from lk_build_stage_str().
 */
enum lk_build_stage {
    LK_BUILD_STAGE_SETUP = 0,   /* open the catalog, begin the generation, load the CNN model and
                                 * build one workspace per thread, list the images; incremental
                                 * builds: also load the current index and params */
    LK_BUILD_STAGE_IMPORT,      /* CSV / JSON Lines import into the catalog (SQLite) */
    LK_BUILD_STAGE_DECODE,      /* per image: path check, file read, JPEG/PNG decode incl. EXIF
                                 * orientation and shrink-on-load (DCT scaling), and the one
                                 * resize to the network input that CNN and colour share
                                 * (lk_embed_describe, lookalike/embed.h) */
    LK_BUILD_STAGE_QUALITY,     /* per image: weak-image signals (blur, contrast, background) */
    LK_BUILD_STAGE_COLOUR,      /* per image: colour histogram of the resized copy */
    LK_BUILD_STAGE_CNN,         /* per image: CNN descriptor of the resized copy
                                 * (lk_cnn_describe: normalise, forward pass) */
    LK_BUILD_STAGE_FUSE,        /* learn the post-processing (mean, PCA) and fuse every vector */
    LK_BUILD_STAGE_INDEX,       /* HNSW insert (lk_index_add_batch on `threads` threads) */
    LK_BUILD_STAGE_CALIBRATE,   /* band calibration (decode + distort + embed + search a sample) */
    LK_BUILD_STAGE_DUPS,        /* near-duplicate scan (one index search per vector) */
    LK_BUILD_STAGE_COMMIT,      /* write + fsync index/params/meta/report, switch the MANIFEST,
                                 * record per-image quality and generation in the catalog */
    LK_BUILD_STAGE_COUNT
};

/* "setup", "import", "decode", "quality", "colour", "cnn", "fuse", "index",
 * "calibrate", "dups", "commit"; "unknown" out of range.  Static string. */
const char *lk_build_stage_str(int stage);

/*
 * Time of one stage, in milliseconds.
 *   wall_ms  per-image stages: summed over images (so with T threads it can
 *            reach T x the elapsed time); other stages: elapsed time.
 *   cpu_ms   per-image stages: thread CPU time (CLOCK_THREAD_CPUTIME_ID)
 *            summed over the worker threads; other stages: CPU time of the
 *            whole process during the stage (CLOCK_PROCESS_CPUTIME_ID), which
 *            includes threads the index or BLAS start themselves, and any
 *            unrelated thread the caller runs meanwhile.
 * Cost of the accounting: 12 clock reads per image, a few per stage.
 */
struct lk_build_time {
    double wall_ms;
    double cpu_ms;
};

struct lk_build_report {
    uint64_t generation;
    uint64_t products, images;          /* in the catalog after import */
    uint64_t indexed;                   /* vectors in the new index */
    uint64_t reused;                    /* incremental: vectors carried over */
    uint64_t shared_photos;             /* images naming a photo file another image of this
                                         * build names too (variants sharing a catalog photo):
                                         * decoded and embedded once, indexed per image */
    uint64_t skipped;                   /* images not indexed */
    uint64_t skipped_by_reason[LK_SKIP_REASON_COUNT];
    uint64_t rows_skipped;              /* import: bad rows */
    uint64_t rows_skipped_by_reason[32];/* by enum lk_import_reason */
    struct lk_build_weak *weak;  size_t n_weak;
    struct lk_build_dup *dups;   size_t n_dups;
    struct lk_bands bands;
    double seconds_embed, seconds_index, seconds_calibrate, seconds_total;
    double images_per_second;           /* embed phase */
    unsigned threads;
    /* Stage accounting (see struct lk_build_time).  total: elapsed wall time
     * and process CPU time of the whole call.  The stages cover nearly all
     * of it; the rest (worker bookkeeping, compaction) is the difference.
     * stage_images: images that went through the per-image stages (decode
     * attempted: new/changed images, indexed or skipped), the divisor for
     * "ms per image".  report.json is written during the commit stage, so
     * its commit and total figures (and seconds.total) stop at that point;
     * the struct returned has the final ones. */
    struct lk_build_time stage[LK_BUILD_STAGE_COUNT];
    struct lk_build_time total;
    uint64_t stage_images;
};

void lk_build_report_free(struct lk_build_report *r);

/* Write the report as JSON text into *json (malloc'ed, caller frees). */
int lk_build_report_json(const struct lk_build_report *r, char **json, struct lk_err *err);

/*
 * Full build: import opts->catalog_path (if any) into the catalog, decode
 * and embed every catalog image on `threads` threads (one CNN workspace
 * each), learn the embedding post-processing from the catalog, build the
 * HNSW index, calibrate the bands, find near-duplicate products with the
 * index, and commit a new generation atomically (lookalike/catalog.h).  The
 * report is saved as report.json in the generation and returned in *rep
 * (free with lk_build_report_free).  A crash or error leaves the previous
 * generation current.  Errors: LK_ERR_PARSE (strict import), LK_ERR_EMPTY
 * (no image could be indexed), LK_ERR_STATE (another build holds the lock),
 * LK_ERR_MODEL, LK_ERR_IO, LK_ERR_DB, LK_ERR_NOMEM.
 */
int lk_index_build(const struct lk_build_opts *opts, struct lk_build_report *rep, struct lk_err *err);

/*
 * Incremental update without a full rebuild: import opts->catalog_path (if
 * any; NULL when only removals were made; opts->images_dir NULL = the
 * directory of the current generation), remove the products named in
 * remove_skus, then start from the current generation's index and params:
 * embed only images that are new or changed, drop vectors of deleted images,
 * keep the calibrated bands, and commit a new generation.
 * Errors: LK_ERR_NOT_FOUND (no current generation, unknown SKU to remove),
 * as lk_index_build.
 */
int lk_index_update(const struct lk_build_opts *opts, const char *const *remove_skus, size_t n_remove,
                    struct lk_build_report *rep, struct lk_err *err);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_SEARCH_H */
