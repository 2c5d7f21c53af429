/*
 * pcatalog.h — internals shared by the catalog's files (store.c, filter.c,
 * import.c, generation.c, hash.c).  Not installed; tests reach behaviour
 * through lookalike/catalog.h only.
 *
 * The handle holds one SQLite connection (behind `db_mu`, recursive so that a
 * foreach callback may read through the same handle) and the filter snapshot
 * (behind `snap_lock`, a pthread rwlock).  Lock order: db_mu, then snap_lock;
 * filter.c takes only snap_lock.
 */
#ifndef LOOKALIKE_PCATALOG_H
#define LOOKALIKE_PCATALOG_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "lookalike/catalog.h"

/* ==== Filter snapshot ==================================================
 * Struct-of-products indexed directly by product_id (AUTOINCREMENT keys are
 * dense in practice), plus image_id -> product_id.  32 bytes per product so a
 * filter pass over 100k images touches ~3 MB of hot data. */
struct lk__snap_product {
    int64_t price_minor;
    int64_t stock;
    uint64_t regions;       /* bit r = region code r; 0 = everywhere */
    uint32_t category;      /* id into snapshot categories */
    uint32_t currency;      /* 3 ASCII letters packed, see lk__currency_pack */
    uint16_t flags;         /* LK_FLAG_* */
    int8_t margin_tier;
    uint8_t live;           /* 1 if the product row exists */
};

struct lk__snapshot {
    struct lk__snap_product *prod; /* [prod_cap], indexed by product_id */
    size_t prod_cap;
    uint32_t *img_prod;     /* [img_cap] image_id -> product_id, 0 = no image */
    size_t img_cap;
    int64_t max_image_id;   /* highest image id ever seen (bitmap nbits - 1) */
    /* interned category paths: ids 0..ncats-1; id 0 is "" */
    char **cats;
    size_t ncats, cats_cap;
    uint32_t *cat_hash;     /* open addressing: slot -> cat id + 1, 0 empty */
    size_t cat_hash_cap;    /* power of two */
    /* region codes: bit r <-> regions[r] */
    char regions[LK_CATALOG_MAX_REGIONS][9];
    unsigned nregions;
};

void lk__snapshot_free(struct lk__snapshot *s);
/* Intern a normalised category path; returns its id or -1 on OOM. */
int64_t lk__snapshot_category(struct lk__snapshot *s, const char *path);
/* Region mask of a normalised "A|B" list, interning new codes;
 * LK_ERR_LIMIT when more than LK_CATALOG_MAX_REGIONS codes would exist. */
int lk__snapshot_region_mask(struct lk__snapshot *s, const char *regions, uint64_t *mask,
                             struct lk_err *err);
/* Grow arrays so product_id / image_id fit. */
int lk__snapshot_reserve(struct lk__snapshot *s, int64_t product_id, int64_t image_id);

static inline uint32_t lk__currency_pack(const char *c)
{
    return (uint32_t)(unsigned char)c[0] | (uint32_t)(unsigned char)c[1] << 8 |
           (uint32_t)(unsigned char)c[2] << 16;
}

/* ==== The handle ======================================================== */

enum lk__stmt {
    ST_UPSERT_PRODUCT, ST_GET_PRODUCT_SKU, ST_GET_PRODUCT_ID, ST_PRODUCT_ID_OF_SKU,
    ST_PATCH_PRODUCT, ST_DELETE_PRODUCT, ST_UPSERT_IMAGE, ST_PRODUCT_IMAGES,
    ST_DELETE_IMAGE, ST_IMAGE_QUALITY, ST_IMAGE_INDEXED, ST_GET_IMAGE, ST_ADD_EVENT,
    ST_COUNT
};

struct lk_catalog {
    sqlite3 *db;
    pthread_mutex_t db_mu;          /* recursive; guards db and stmts */
    sqlite3_stmt *stmts[ST_COUNT];  /* prepared once, reset after use */
    pthread_rwlock_t snap_lock;     /* guards snap */
    struct lk__snapshot snap;
    int64_t data_version;           /* PRAGMA data_version at the last snapshot load */
    char *data_dir;
};

/* Prepared statement `which` (reset, bindings cleared).  Caller holds db_mu. */
sqlite3_stmt *lk__stmt(struct lk_catalog *cat, enum lk__stmt which);
int lk__db_err(struct lk_catalog *cat, struct lk_err *err, const char *what);
int lk__exec(struct lk_catalog *cat, const char *sql, struct lk_err *err);

/* Validate + normalise a product (strings into caller buffers) — used by the
 * store API and the importer. */
struct lk__norm_product {
    char category[LK_CATEGORY_MAX + 1];
    char regions[LK_CATALOG_MAX_REGIONS * 9 + 1];
    char currency[4];
};
int lk__product_normalise(const struct lk_product *p, struct lk__norm_product *n,
                          struct lk_err *err);
int lk__sku_check(const char *sku, struct lk_err *err);
int lk__regions_normalise(const char *in, char *out, size_t out_size, struct lk_err *err);
int lk__image_path_check(const char *rel, struct lk_err *err);

/* Upsert product / image inside an open transaction, holding db_mu; they do
 * NOT touch the snapshot (callers update it or reload it). */
int lk__upsert_product_tx(struct lk_catalog *cat, const struct lk_product *p,
                          const struct lk__norm_product *n, int64_t *product_id,
                          struct lk_err *err);
int lk__upsert_image_tx(struct lk_catalog *cat, int64_t product_id, const char *path,
                        uint32_t width, uint32_t height, const char *sha1, int64_t *image_id,
                        struct lk_err *err);
/* Reload the whole snapshot from SQL and swap it in.  Caller holds db_mu. */
int lk__snapshot_reload(struct lk_catalog *cat, struct lk_err *err);

/* ==== Generations ======================================================
 * Test-only crash injection: when set to k (1..3) the process committing a
 * generation raises SIGKILL at point k of lk_generation_commit:
 * 1 = files fsynced, manifest untouched; 2 = MANIFEST.tmp durable, not yet
 * renamed; 3 = renamed, DATA not yet fsynced. */
extern int lk__gen_crash_point;

/* ==== Hashing (hash.c is the only file that includes Nettle) =========== */
void lk__sha1_hex(const void *data, size_t len, char out[41]);
/* SHA-1 of a file's bytes, streaming; *size receives its length. */
int lk__sha1_file(const char *path, char out[41], uint64_t *size, struct lk_err *err);

/* Growable byte buffer used by the importers. */
struct lk__buf { char *p; size_t len, cap; };
int lk__buf_append(struct lk__buf *b, const void *data, size_t n);
void lk__buf_free(struct lk__buf *b);

#endif /* LOOKALIKE_PCATALOG_H */
