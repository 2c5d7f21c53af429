/*
 * psearch.h — internals shared by the search module's files (engine.c,
 * query.c, guard.c, rank.c, bands.c, fallback.c, embedder.c, genfile.c,
 * build.c, backend.c).  Not installed.
 *
 * Lock order (outermost first): eng->write_mu, eng->gen_mu, eng->pool_mu,
 * eng->cache_lock, eng->imgs_lock.  The catalog's own locks are always taken
 * last (inside catalog calls).
 */
#ifndef LOOKALIKE_PSEARCH_H
#define LOOKALIKE_PSEARCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lookalike/catalog.h"
#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"
#include "lookalike/index.h"
#include "lookalike/search.h"

/* ==== Generation files ================================================== */

#define LK__GEN_INDEX "index.lkh"
#define LK__GEN_PARAMS "embed.params"
#define LK__GEN_META "search.json"
#define LK__GEN_REPORT "report.json"
/* Generation metadata version.  Also the version of the analysis that made
 * the stored vectors: bump it whenever the same photo would get a different
 * embedding (decode scale, resize, descriptor), so that a server refuses to
 * query an old generation with vectors it can no longer reproduce.
 *   1  colour histogram from the decoded image, decode scales 1/2^k
 *   2  one resize to the network input feeds CNN and colour (describe.c);
 *      decode scales M/8
 *   3  that resize and the colour working copy average areas (box filter);
 *      search.json records cnn_precision (int8 by default)
 *   4  the int8 CNN reads pixels - 128 (its input's half-step offset moved
 *      into Conv1's bias; src/embed/cnn.c) */
#define LK__META_VERSION 4

/* Shortest side the decoder keeps when it shrinks a JPEG on load: above the
 * CNN input (224) so the network never sees an upsampled photo.  Used by the
 * build and by queries alike (same analysis path). */
#define LK__DECODE_MIN_SIDE 256u

/* Images per SKU considered when collapsing hits (the index is asked for
 * k x this many hits).  Catalogs with more images per product still work;
 * their extra images just compete for the same slots. */
#define LK__PER_SKU_MAX 8u

/* Neighbours used for the category vote and the facets. */
#define LK__GUARD_NEIGHBOURS 32u

struct lk__meta {
    uint64_t generation;
    char images_dir[4096];
    char model_layer[LK_CNN_LAYER_NAME_MAX + 1];
    uint32_t cnn_dim, fused_dim;
    uint32_t per_sku;           /* max images of one product at build time, capped */
    enum lk_cnn_precision cnn_precision;    /* the descriptors' precision ("fp32"/"int8"; absent = fp32) */
    struct lk_bands bands;
};

int lk__meta_write(const char *dir, const struct lk__meta *m, struct lk_err *err);
int lk__meta_read(const char *dir, struct lk__meta *m, struct lk_err *err);
/* Write `text` to dir/name crash-safely (temp, fsync, rename, fsync dir). */
int lk__write_file_atomic(const char *dir, const char *name, const char *text, size_t len,
                          struct lk_err *err);

/* A loaded generation; readers hold a reference (see engine.c). */
struct lk__gen {
    atomic_uint refs;
    struct lk__meta meta;
    struct lk_index *idx;
    struct lk_embed_params *params;
};

/* ==== Embedding a photo (embedder.c) ==================================== */

/* Per-thread state: CNN runtime + scratch vectors. */
struct lk__ws {
    const struct lk_cnn_model *model;   /* borrowed: the engine's / build's model */
    struct lk_cnn_workspace *cnn;
    size_t cnn_dim;
    float *raw;                 /* cnn_dim */
    float *colour;              /* LK_COLOUR_DIM */
    float *vec;                 /* LK_EMBED_DIM_MAX + LK_COLOUR_DIM: fused query */
    float *vec2;                /* same size: colour-only query */
    float *vec3;                /* same size: a stored vector being compared */
    struct lk_hit *hits;        /* LK__HITS_MAX */
    struct lk_hit *hits2;
};
#define LK__HITS_MAX 1024u

int lk__ws_new(struct lk_cnn_model *m, struct lk__ws **out, struct lk_err *err);
void lk__ws_free(struct lk__ws *ws);

/* Decode options shared by the build and the query path. */
void lk__decode_opts(struct lk_decode_opts *o, size_t max_bytes, uint64_t max_pixels);

/* Raw CNN descriptor (ws->raw) and colour embedding (ws->colour) of img. */
int lk__describe(struct lk__ws *ws, const struct lk_image *img, struct lk_err *err);

/* Map an image error code to a skip reason. */
int lk__skip_reason(int rc);

/* ==== Engine ============================================================ */

/* Cached product metadata that SQL would otherwise be asked for on every
 * search (the live numbers — stock, price — come from the catalog's filter
 * snapshot instead). */
struct lk__pinfo {
    int64_t product_id;
    char *sku, *title, *category;
    char currency[4];
    struct lk__pinfo *next;
};

/* Per-image facts for collapsing, ranking and "similar": dense by image id. */
struct lk__img {
    int64_t product_id;         /* 0 = no such image */
    uint8_t weak;               /* LK_WEAK_* */
};

struct lk_engine {
    struct lk_engine_opts opts;
    char *data_dir, *model_dir, *images_override;
    struct lk_catalog *cat;
    struct lk_cnn_model *model;

    pthread_mutex_t write_mu;   /* catalog/index writes and reloads */
    pthread_mutex_t gen_mu;     /* guards `gen` (the pointer swap only) */
    struct lk__gen *gen;

    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct lk__ws **pool;       /* free workspaces */
    size_t pool_free, pool_size, pool_cap;

    pthread_rwlock_t cache_lock;
    struct lk__pinfo **cache;   /* chained hash by product_id */
    size_t cache_buckets, cache_n;

    pthread_rwlock_t imgs_lock;
    struct lk__img *imgs;
    size_t imgs_cap;

    atomic_llong last_refresh_ms;
    atomic_ullong searches;
};

struct lk__gen *lk__gen_acquire(struct lk_engine *eng);
void lk__gen_release(struct lk__gen *g);
struct lk__ws *lk__ws_acquire(struct lk_engine *eng, struct lk_err *err);
void lk__ws_release(struct lk_engine *eng, struct lk__ws *ws);

/* Copy product metadata (sku/title/category/currency) for `product_id` into
 * *out (strings owned by out; free with lk__pinfo_clear).  Cached. */
int lk__product_info(struct lk_engine *eng, int64_t product_id, struct lk__pinfo *out,
                     struct lk_err *err);
void lk__pinfo_clear(struct lk__pinfo *p);
void lk__cache_clear(struct lk_engine *eng);

unsigned lk__img_weak(struct lk_engine *eng, int64_t image_id);
void lk__img_set(struct lk_engine *eng, int64_t image_id, int64_t product_id, unsigned weak);
/* Image ids of `product_id` (up to cap), ascending. */
size_t lk__img_of_product(struct lk_engine *eng, int64_t product_id, int64_t *ids, size_t cap);

/* Make `g->idx` match the catalog: embed+add images missing from it, remove
 * vectors of images no longer in the catalog.  added and removed may be NULL. */
int lk__gen_catch_up(struct lk_engine *eng, struct lk__gen *g, size_t *added, size_t *removed,
                     struct lk_err *err);

/* Embed one catalog image file (path relative to images_dir) into `out`
 * (fused_dim floats) with params; fills *weak.  ws from the pool. */
int lk__embed_file(struct lk__ws *ws, const struct lk_embed_params *params, const char *images_dir,
                   const char *rel, float *out, unsigned *weak, struct lk_err *err);

/* Resolve `rel` under images_dir into out (refuses "..", absolute paths
 * outside the dir).  LK_ERR_INVALID_ARG. */
int lk__image_path(const char *images_dir, const char *rel, char *out, size_t out_size,
                   struct lk_err *err);

/* ==== Query internals =================================================== */

/* A collapsed candidate (best image of one product). */
struct lk__cand {
    int64_t product_id, image_id;
    float similarity;           /* fused similarity to the query */
    float colour_similarity;    /* colour part only (cosine of the histograms) */
    int tier;                   /* fallback step that produced it (0 strict) */
};

struct lk__search_ctx {
    struct lk_engine *eng;
    struct lk__gen *g;
    struct lk__ws *ws;
    const struct lk_search_request *req;
    struct lk_search_response *resp;
    const float *query;         /* fused query vector */
    int64_t exclude_product;    /* "similar": the item itself, 0 = none */
    struct lk_filter base;      /* business filter (no category) */
    char category[LK_CATEGORY_MAX + 1];  /* active category restriction, "" = none */
    int category_explicit;      /* the caller named the category */
    int category_preset;        /* "similar": the item's own category, no vote needed */
    int by_colour;              /* fallback ranks weak results by colour */
    struct lk__cand *cands;
    size_t n_cands, cap_cands;
    struct lk_allow allow;      /* reused across steps */
    struct lk_guard_vote *votes;
    size_t n_votes;
    struct lk__pinfo *vote_info;/* owned strings for votes */
    size_t n_votes_alloc;       /* entries of vote_info */
};

/* Filtered index search -> collapse -> append new products to ctx->cands
 * with `tier`.  `query` may be the colour-only vector.  Similarities are the
 * fused similarity to ctx->query.  `want` products at most. */
int lk__search_collapse(struct lk__search_ctx *c, const float *query, const struct lk_filter *f,
                        const char *category, size_t want, int tier, struct lk_err *err);

/* Fallback (fallback.c): called after the strict search; relaxes step by
 * step while fewer than k candidates or none above `low`, and records the
 * steps in the response.  Then fills facets from the guard neighbours. */
int lk__fallback(struct lk__search_ctx *c, struct lk_err *err);
int lk__facets(struct lk__search_ctx *c, struct lk_err *err);

/* Guard step of the query (guard.c): neighbours vote; sets c->category when
 * confident.  Also keeps the votes for the facets. */
int lk__guard(struct lk__search_ctx *c, struct lk_err *err);

/* Run the full pipeline from the fused query vector onwards (query.c). */
int lk__search_run(struct lk__search_ctx *c, struct lk_err *err);

/* Milliseconds since an arbitrary epoch (CLOCK_MONOTONIC). */
double lk__now_ms(void);

#endif /* LOOKALIKE_PSEARCH_H */
