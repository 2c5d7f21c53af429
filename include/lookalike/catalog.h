/*
 * lookalike/catalog.h — the product catalog: SQLite store, importers, live
 * metadata updates, the business-filter allow-list builder and the index
 * generation directory (MANIFEST) mechanism.
 *
 * Data directory layout (one directory per catalog, see lk_catalog_open and
 * the generation functions below):
 *
 *     DATA/catalog.sqlite      products, images, events (SQLite, WAL mode)
 *     DATA/MANIFEST            current index generation number + checksums
 *     DATA/gen-000001/         files of one index generation (index, embed
 *                              params, calibration), written by the builder
 *     DATA/LOCK                flock()ed by a generation builder
 *
 * Units and conventions used throughout:
 *   - price: integer minor units of its currency (cents for USD/EUR, yen for
 *     JPY, fils for KWD) — never floating point.  Currency: ISO 4217
 *     three-letter upper-case code; the number of minor digits comes from ISO
 *     4217 (0, 2 or 3; see lk_currency_exponent).
 *   - stock: integer units on hand, >= 0.
 *   - category: a path of '/'-separated segments, e.g. "home/furniture/sofas",
 *     stored lower-case without leading/trailing '/'; "" = uncategorised.
 *     A category prefix matches whole segments only ("home/furn" does not
 *     match "home/furniture").
 *   - regions: '|'-separated region codes (2..8 of [A-Z0-9_-], stored
 *     upper-case, sorted, deduplicated), e.g. "CA|EU|US"; "" means the product
 *     may be sold everywhere.  At most LK_CATALOG_MAX_REGIONS distinct codes
 *     per catalog (they become bits of a 64-bit mask in the filter snapshot).
 *   - vector id: the index label of an image IS its image_id (an SQLite
 *     AUTOINCREMENT key: stable across generations and never reused after a
 *     deletion), so an allow-list built from the live catalog is valid for
 *     every generation and no per-generation id map is needed.
 *   - times: Unix epoch seconds (UTC).
 *
 * Errors: every function returns LK_OK or a negative LK_ERR_* code from
 * lookalike/status.h and, when `err` is non-NULL, writes a message into it.
 * SQLite failures are LK_ERR_DB (message includes sqlite3_errmsg), a missing
 * SKU/image is LK_ERR_NOT_FOUND, bad field values are LK_ERR_INVALID_ARG.
 *
 * Thread-safety: one struct lk_catalog owns ONE SQLite connection, guarded by
 * an internal (recursive) mutex, so a handle may be shared by threads; calls
 * that touch SQL are serialised.  The filter snapshot is guarded by a
 * reader/writer lock: lk_catalog_allow_build and lk_catalog_image_brief take
 * only the read lock and never touch SQL, so any number of search threads build
 * allow-lists concurrently while one writer patches stock.  For parallel SQL
 * reads open one handle per thread: the database runs in WAL mode, so readers
 * never block the writer and vice versa.  Writes by OTHER handles or processes
 * reach this handle's snapshot on lk_catalog_refresh().
 *
 * Storage: SQLite (https://sqlite.org), schema versioned with PRAGMA
 * user_version and upgraded by forward migrations on open.  CSV parsing:
 * libcsv (RFC 4180).  JSON Lines: cJSON.  Content hashes: SHA-1 (FIPS 180-4)
 * from GNU Nettle.
 */
#ifndef LOOKALIKE_CATALOG_H
#define LOOKALIKE_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Limits ============================================================ */

#define LK_SKU_MAX 128              /* bytes; SKUs are printable, no control chars */
#define LK_TITLE_MAX 1024           /* bytes */
#define LK_CATEGORY_MAX 512         /* bytes of the normalised path */
#define LK_CATEGORY_DEPTH_MAX 16    /* segments */
#define LK_IMAGE_PATH_MAX 1024      /* bytes of a path relative to the images dir */
#define LK_CATALOG_MAX_REGIONS 64   /* distinct region codes per catalog (bits of a uint64 mask) */
#define LK_MARGIN_TIER_MIN 0
#define LK_MARGIN_TIER_MAX 9        /* small ordinal: ranking maps it to a bounded boost */
#define LK_PRICE_MINOR_MAX 1000000000000000LL /* 1e15 minor units: far above any price, far below INT64_MAX */
#define LK_STOCK_MAX 1000000000000LL          /* 1e12 units */

/* Product flags (bit set). */
#define LK_FLAG_RESTRICTED 1u       /* never shown to shoppers (legal/policy hold) */
#define LK_FLAG_AGE_RESTRICTED 2u   /* shown only when the request allows age-restricted items */
#define LK_FLAG_RETIRED 4u          /* discontinued: never shown to shoppers */
#define LK_FLAG_ALL 7u

/* ==== Open / close ====================================================== */

struct lk_catalog;

struct lk_catalog_opts {
    int create;        /* 1: create DATA and catalog.sqlite if missing (default 1) */
    int readonly;      /* 1: open the database read-only (default 0) */
    int busy_timeout_ms; /* wait on a locked database this long (default 5000) */
};

/* Fill `o` with the defaults above. */
void lk_catalog_opts_default(struct lk_catalog_opts *o);

/* Open (and with opts->create, create) the catalog in directory `data_dir`
 * (file DATA/catalog.sqlite), switch it to WAL mode, enable foreign keys,
 * migrate the schema to the current version and load the filter snapshot.
 * `opts` may be NULL (defaults).  On success *out owns the handle; free with
 * lk_catalog_close.  Errors: LK_ERR_IO (directory), LK_ERR_DB, LK_ERR_FORMAT
 * (database schema newer than this program). */
int lk_catalog_open(const char *data_dir, const struct lk_catalog_opts *opts,
                    struct lk_catalog **out, struct lk_err *err);

/* Close the handle and its connection.  NULL is a no-op. */
void lk_catalog_close(struct lk_catalog *cat);

/* Schema version this program writes (PRAGMA user_version). */
#define LK_CATALOG_SCHEMA_VERSION 1

/* Run `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.  Returns LK_OK
 * when both are clean, LK_ERR_CORRUPT with the first problem otherwise. */
int lk_catalog_integrity_check(struct lk_catalog *cat, struct lk_err *err);

/* Reload the filter snapshot if another connection (handle or process) has
 * committed since the last load (detected cheaply with PRAGMA data_version;
 * a no-op costing one tiny query when nothing changed).  Writes through THIS
 * handle update the snapshot themselves and need no refresh. */
int lk_catalog_refresh(struct lk_catalog *cat, struct lk_err *err);

/* ==== Products ========================================================== */

/* A product row.  As INPUT (upsert) the strings are borrowed and may be NULL
 * for "" (title, category, regions) or "{}" (attributes_json); sku is
 * required.  As OUTPUT (get) every string is heap-allocated and owned by the
 * struct: release with lk_product_clear. */
struct lk_product {
    int64_t product_id;     /* output only: SQLite key (stable) */
    char *sku;              /* 1..LK_SKU_MAX bytes, no control characters */
    char *title;            /* 0..LK_TITLE_MAX bytes */
    char *category;         /* path, normalised on write (see top of file) */
    int64_t price_minor;    /* 0..LK_PRICE_MINOR_MAX minor units of `currency` */
    char currency[4];       /* ISO 4217 code, NUL-terminated */
    int64_t stock;          /* 0..LK_STOCK_MAX */
    char *regions;          /* "CA|US" or "" (everywhere); normalised on write */
    uint32_t flags;         /* LK_FLAG_* bits */
    int32_t margin_tier;    /* LK_MARGIN_TIER_MIN..MAX */
    char *attributes_json;  /* JSON object text of free-form key/values (colour, brand) */
    int64_t updated_at;     /* output only: epoch seconds of the last write */
};

/* Free the strings of an output lk_product and zero it.  NULL is a no-op. */
void lk_product_clear(struct lk_product *p);

/* Insert the product, or replace all metadata of the existing product with the
 * same SKU (images are kept; product_id stays).  Validates and normalises
 * every field (LK_ERR_INVALID_ARG naming the field).  One transaction; the
 * filter snapshot is updated before returning.  *product_id (may be NULL)
 * receives the product's id. */
int lk_catalog_upsert_product(struct lk_catalog *cat, const struct lk_product *p,
                              int64_t *product_id, struct lk_err *err);

/* PATCH semantics: only the fields whose has_* flag is set change.  Takes
 * effect immediately: committed in one transaction and applied to the filter
 * snapshot before returning, so the next search sees it (no re-embedding).
 * LK_ERR_NOT_FOUND if the SKU does not exist. */
struct lk_product_patch {
    int has_stock;  int64_t stock;
    int has_price;  int64_t price_minor; const char *currency; /* currency NULL = keep */
    int has_flags;  uint32_t flags;
    int has_margin_tier; int32_t margin_tier;
};
int lk_catalog_patch(struct lk_catalog *cat, const char *sku,
                     const struct lk_product_patch *patch, struct lk_err *err);

/* Convenience wrappers around lk_catalog_patch. */
int lk_catalog_set_stock(struct lk_catalog *cat, const char *sku, int64_t stock, struct lk_err *err);
int lk_catalog_set_price(struct lk_catalog *cat, const char *sku, int64_t price_minor,
                         const char *currency /* NULL = keep */, struct lk_err *err);
int lk_catalog_set_flags(struct lk_catalog *cat, const char *sku, uint32_t flags, struct lk_err *err);

/* Delete the product and (ON DELETE CASCADE) its images.  Their vector ids
 * drop out of every allow-list at once; the index can purge them lazily.
 * LK_ERR_NOT_FOUND if absent. */
int lk_catalog_delete_product(struct lk_catalog *cat, const char *sku, struct lk_err *err);

/* Fetch one product by SKU or by id into *out (owned strings; call
 * lk_product_clear).  LK_ERR_NOT_FOUND if absent. */
int lk_catalog_get_product(struct lk_catalog *cat, const char *sku, struct lk_product *out,
                           struct lk_err *err);
int lk_catalog_get_product_by_id(struct lk_catalog *cat, int64_t product_id,
                                 struct lk_product *out, struct lk_err *err);

/* Call `fn` for every product in SKU order.  The product passed is borrowed
 * (valid during the call only).  A non-zero return from `fn` stops the walk
 * and is returned.  `fn` may read from `cat` but must not write to it.  The
 * walk holds the handle's connection throughout (other threads' SQL calls on
 * this handle wait), so long walks in a server belong on their own handle;
 * allow-list builds are not affected (they never touch SQL). */
typedef int (*lk_product_fn)(const struct lk_product *p, void *ud);
int lk_catalog_foreach_product(struct lk_catalog *cat, lk_product_fn fn, void *ud,
                               struct lk_err *err);

/* ==== Images ============================================================ */

/* Image quality signals (filled by the index build from lk_image_quality). */
struct lk_catalog_quality {
    float blur;              /* variance of the Laplacian (higher = sharper) */
    float contrast;          /* RMS contrast of luma, 0..1 */
    float border_uniformity; /* 0..1, 1 = perfectly uniform border */
    int plain_background;    /* 1 if the background is plain */
    uint32_t weak_flags;     /* image module's LK weak-image bits */
};

struct lk_catalog_image {
    int64_t image_id;        /* == index vector id */
    int64_t product_id;
    char *sku;               /* output: owned by the struct */
    char *path;              /* relative to the images dir; owned by the struct */
    uint32_t width, height;  /* pixels, from the file header at import (0 unknown) */
    char content_sha1[41];   /* hex SHA-1 of the file bytes ("" unknown) */
    int has_quality;         /* 0 until lk_catalog_set_image_quality */
    struct lk_catalog_quality quality;
    uint64_t indexed_gen;    /* generation the vector was last embedded into, 0 = never */
};

/* Free the strings of an output lk_catalog_image and zero it.  NULL no-op. */
void lk_catalog_image_clear(struct lk_catalog_image *im);

/* Attach image `path` (relative, validated: no "..", not absolute) to the
 * product `sku`.  If the product already has that path the existing image is
 * updated (size/hash) and its id returned; a changed content hash resets
 * indexed_gen to 0 (needs re-embedding).  width/height/sha1 may be 0/NULL. */
int lk_catalog_add_image(struct lk_catalog *cat, const char *sku, const char *path,
                         uint32_t width, uint32_t height, const char *content_sha1,
                         int64_t *image_id, struct lk_err *err);

/* Remove one image (its vector id leaves every allow-list at once). */
int lk_catalog_remove_image(struct lk_catalog *cat, int64_t image_id, struct lk_err *err);

/* Record the quality signals / the generation an image was embedded into. */
int lk_catalog_set_image_quality(struct lk_catalog *cat, int64_t image_id,
                                 const struct lk_catalog_quality *q, struct lk_err *err);
int lk_catalog_set_image_indexed(struct lk_catalog *cat, int64_t image_id, uint64_t gen,
                                 struct lk_err *err);

/* Both of the above for many images in ONE transaction (one fsync instead of
 * two per image: what an index build of 100k images needs).  For each mark,
 * q (may be NULL: unchanged) and indexed_gen (0: unchanged) are written;
 * ids that no longer exist are skipped.  Nothing is written if any
 * statement fails (rolled back).  Errors: LK_ERR_INVALID_ARG (NULL cat, or
 * NULL marks with n > 0), LK_ERR_DB.  Thread-safe like every writer. */
struct lk_catalog_image_mark {
    int64_t image_id;
    const struct lk_catalog_quality *q;     /* borrowed; NULL = leave as is */
    uint64_t indexed_gen;                   /* 0 = leave as is */
};
int lk_catalog_mark_images(struct lk_catalog *cat, const struct lk_catalog_image_mark *marks, size_t n,
                           struct lk_err *err);

/* Fetch one image (owned strings; lk_catalog_image_clear). */
int lk_catalog_get_image(struct lk_catalog *cat, int64_t image_id, struct lk_catalog_image *out,
                         struct lk_err *err);

/* Call `fn` for every image in image_id order (borrowed struct, valid during
 * the call).  Same stop/reentrancy rules as lk_catalog_foreach_product. */
typedef int (*lk_image_fn)(const struct lk_catalog_image *im, void *ud);
int lk_catalog_foreach_image(struct lk_catalog *cat, lk_image_fn fn, void *ud, struct lk_err *err);

/* ==== Counts, categories, events ======================================== */

struct lk_catalog_counts {
    uint64_t products, images;
    uint64_t products_in_stock;   /* stock > 0 */
    uint64_t products_flagged;    /* any LK_FLAG_* set */
    uint64_t images_unindexed;    /* indexed_gen == 0 */
    uint64_t events;
    int64_t max_image_id;         /* bitmap size for allow-lists is max_image_id + 1 */
};
int lk_catalog_counts(struct lk_catalog *cat, struct lk_catalog_counts *out, struct lk_err *err);

/* One node of the category tree.  `products` counts products whose category
 * equals `path` or lies below it (whole segments); `direct` only equal. */
struct lk_category_count {
    char *path;          /* owned by the array */
    unsigned depth;      /* number of segments (1 for "home") */
    uint64_t products;
    uint64_t direct;
};
/* List every node of the category tree (every prefix of every stored path),
 * sorted by path, into a new array *out of *n entries (free with
 * lk_category_counts_free).  Uncategorised products are not listed. */
int lk_catalog_categories(struct lk_catalog *cat, struct lk_category_count **out, size_t *n,
                          struct lk_err *err);
void lk_category_counts_free(struct lk_category_count *a, size_t n);

/* Record a storefront event after a visual search.  `type` is one of "view",
 * "add_to_cart", "purchase"; search_id is 1..64 bytes of [A-Za-z0-9_-];
 * ts is epoch seconds (> 0).  No shopper data is stored. */
int lk_catalog_add_event(struct lk_catalog *cat, const char *search_id, const char *sku,
                         const char *type, int64_t ts, struct lk_err *err);

/* ==== Value parsing (shared with the importers and the HTTP layer) ====== */

/* ISO 4217 minor-unit exponent of `currency` (0 for JPY/KRW…, 3 for
 * KWD/BHD/…, 2 otherwise); -1 if `currency` is not 3 ASCII letters. */
int lk_currency_exponent(const char *currency);

/* Parse a decimal price string ("19.99", "20", "0.5") exactly into minor
 * units of `currency` (no floating point).  More fractional digits than the
 * currency has are accepted only if they are zeros ("19.990" for USD).
 * Rejects signs, exponents, empty input and values over LK_PRICE_MINOR_MAX:
 * LK_ERR_PARSE. */
int lk_parse_price(const char *s, const char *currency, int64_t *out_minor, struct lk_err *err);

/* Normalise a category path (trim, lower-case ASCII, strip outer '/'); rejects
 * empty inner segments, "." and "..", control characters and over-long paths
 * (LK_ERR_INVALID_ARG).  `out` holds at least LK_CATEGORY_MAX + 1 bytes. */
int lk_category_normalise(const char *in, char *out, size_t out_size, struct lk_err *err);

/* ==== Business filters → allow-list over vector ids ==================== */

/* Allow-list bitmap: bit i set <=> vector id (image_id) i passes the filter.
 * `words` holds ceil(nbits/64) little-endian-bit-ordered words (bit i is
 * words[i/64] >> (i%64) & 1); `count` = number of set bits (exact), so the
 * index can estimate selectivity = count / (number of vectors). */
struct lk_allow {
    uint64_t *words;   /* owned; reused across builds when large enough */
    size_t nwords;     /* allocated words */
    size_t nbits;      /* max image_id + 1 at build time */
    size_t count;      /* set bits */
};

/* Free the words and zero the struct.  NULL is a no-op. */
void lk_allow_free(struct lk_allow *a);

static inline int lk_allow_test(const struct lk_allow *a, uint64_t id)
{
    return id < a->nbits && ((a->words[id >> 6] >> (id & 63)) & 1u);
}

/* The allow-list as a predicate with the signature of the index's
 * lk_filter_fn (include/lookalike/index.h), for filtering INSIDE the HNSW
 * search — the index's ids are our vector ids (image ids), so no mapping:
 *     opts.allow_fn = lk_allow_pred;
 *     opts.allow_user = &allow;                 (a const struct lk_allow *)
 *     opts.allowed_estimate = allow.count;      (lets the index pick an exact
 *                                                scan at low selectivity)
 * Returns nonzero when `id` is allowed.  Thread-safe for concurrent readers
 * of one allow-list; the allow-list must outlive the search. */
int lk_allow_pred(uint64_t id, void *allow);

#define LK_PRICE_ANY_MIN 0
#define LK_PRICE_ANY_MAX INT64_MAX

/* Business filter.  Initialise with lk_filter_default, then set fields. */
struct lk_filter {
    int in_stock;               /* 1: only stock > 0 (default 1) */
    const char *region;         /* region code, NULL = any; products with regions "" pass every region */
    int64_t min_price_minor;    /* inclusive, default LK_PRICE_ANY_MIN */
    int64_t max_price_minor;    /* inclusive, default LK_PRICE_ANY_MAX */
    const char *currency;       /* NULL = compare raw minor units; else other currencies fail a price bound */
    const char *category;       /* prefix on whole segments, NULL or "" = all */
    int admin;                  /* 1: include restricted, retired and age-restricted */
    int allow_age_restricted;   /* 1: include age-restricted (default 0) */
};
void lk_filter_default(struct lk_filter *f);

/* Build the allow-list for filter `f` into `out` (reusing out->words when big
 * enough; zero-initialise `out` before the first call, free with
 * lk_allow_free).  Reads only the in-memory snapshot of the filterable
 * columns (per product: price, currency, stock, region mask, flags, category
 * id; per image: product id) under the snapshot read lock: O(products +
 * images), no SQL, one temporary byte per product (plus out->words when it
 * must grow) — see bench/catalog_filter.c for
 * the measured cost (3-4 ns per image: about 0.5 ms for 150k images on the
 * 2-core dev machine under load; ~200x faster than one SQL query).  Errors:
 * LK_ERR_INVALID_ARG (bad region code / category / min > max), LK_ERR_NOMEM. */
int lk_catalog_allow_build(struct lk_catalog *cat, const struct lk_filter *f,
                           struct lk_allow *out, struct lk_err *err);

/* Snapshot facts about one vector id, for collapsing and ranking without SQL. */
struct lk_image_brief {
    int64_t product_id;
    int64_t price_minor;
    int64_t stock;
    uint32_t flags;
    int32_t margin_tier;
    uint32_t category_id;  /* snapshot-local id; compare for equality only */
};
/* LK_ERR_NOT_FOUND if the image (or its product) does not exist. */
int lk_catalog_image_brief(struct lk_catalog *cat, int64_t image_id, struct lk_image_brief *out,
                           struct lk_err *err);

/* ==== Import (CSV / JSON Lines) ========================================= */

enum lk_import_format { LK_IMPORT_AUTO = 0, LK_IMPORT_CSV, LK_IMPORT_JSONL };

/* Why a row was skipped.  Stable order (used as array index). */
enum lk_import_reason {
    LK_IMPORT_SYNTAX = 0,       /* malformed CSV/JSON record, wrong field count */
    LK_IMPORT_MISSING_SKU,
    LK_IMPORT_BAD_SKU,          /* too long / control characters */
    LK_IMPORT_BAD_PRICE,        /* missing or unparseable */
    LK_IMPORT_BAD_CURRENCY,
    LK_IMPORT_BAD_STOCK,        /* missing, not an integer, negative */
    LK_IMPORT_BAD_FLAG,         /* unknown flag name */
    LK_IMPORT_BAD_REGION,
    LK_IMPORT_BAD_CATEGORY,
    LK_IMPORT_BAD_FIELD,        /* other field: title too long, margin_tier, attributes */
    LK_IMPORT_IMAGE_PATH,       /* path escapes the images dir (.., absolute, symlink out) */
    LK_IMPORT_IMAGE_MISSING,    /* missing or unreadable file */
    LK_IMPORT_IMAGE_FORMAT,     /* not a PNG/JPEG by magic bytes, bad header, too large */
    LK_IMPORT_DUPLICATE_SKU,    /* repeated SKU with conflicting data */
    LK_IMPORT_REASON_COUNT
};
/* Stable snake_case name ("bad_price"); "unknown" for out-of-range values. */
const char *lk_import_reason_str(int reason);

struct lk_import_issue {
    uint64_t line;          /* physical line (1-based) where the record starts */
    int reason;             /* enum lk_import_reason */
    char msg[160];          /* human-readable detail */
};

struct lk_import_report {
    uint64_t rows_read;          /* data records seen (header and blank lines excluded) */
    uint64_t rows_imported;      /* records that contributed to a product */
    uint64_t rows_skipped;       /* bad records */
    uint64_t products_imported;  /* distinct SKUs written */
    uint64_t images_imported;    /* distinct (SKU, path) written */
    uint64_t skipped_by_reason[LK_IMPORT_REASON_COUNT];
    struct lk_import_issue *issues; /* first max_issues issues in file order; owned */
    size_t n_issues;
    uint64_t issues_dropped;     /* issues beyond max_issues (counted, not listed) */
    int committed;               /* 1 if the import was written */
};
/* Free the issue list and zero the report.  NULL is a no-op. */
void lk_import_report_free(struct lk_import_report *r);

struct lk_import_opts {
    enum lk_import_format format; /* AUTO: ".jsonl"/".ndjson" = JSONL, else CSV */
    const char *images_dir;       /* required when rows name images */
    const char *default_currency; /* used when a row has no currency (default "USD") */
    int strict;                   /* 1: any bad row fails the whole import (nothing written) */
    int check_images;             /* 1: open each image, check magic + header, hash it (default 1) */
    int decode_images;            /* 1: also fully decode each image (lk_image_decode) to reject
                                   * corrupt/truncated streams; costs one decode per image (default 0) */
    size_t max_issues;            /* issues listed in the report (default 1000) */
};
void lk_import_opts_default(struct lk_import_opts *o);

/* Import a CSV (RFC 4180, header row required, optional UTF-8 BOM, CRLF or LF,
 * '#' comment lines allowed only before the header) or JSON Lines file.
 * Columns/keys: sku (required), title, category, price (required; decimal
 * string), currency, stock (required; integer >= 0), regions ('|' list),
 * flags ('|' list of restricted, age_restricted, retired), image ('|' list of
 * paths relative to images_dir; "images" is a synonym), margin_tier; every
 * other column becomes a string attribute (JSONL: "attributes" object and any
 * other key).  Rows repeating a SKU merge: fields left empty take the first
 * row's values, images accumulate; a field that differs is a conflict.
 * Bad rows are skipped and listed in `rep` with their line numbers.
 *
 * Writes happen in ONE transaction after the whole file is validated, so no
 * reader ever sees a half import.  Each imported SKU's metadata is replaced
 * and, when the file has an image column, its image set becomes exactly the
 * file's (unchanged paths keep their image_id).  SKUs absent from the file are
 * left alone.
 *
 * Returns LK_OK (possibly with skipped rows), LK_ERR_PARSE in strict mode when
 * any row was bad (nothing written; rep lists the rows) or when the header is
 * unusable, LK_ERR_IO if the file cannot be read, LK_ERR_DB on write failure
 * (rolled back).  `rep` (required) is filled in all cases; free it with
 * lk_import_report_free. */
int lk_catalog_import_file(struct lk_catalog *cat, const char *path,
                           const struct lk_import_opts *opts, struct lk_import_report *rep,
                           struct lk_err *err);

/* ==== Index generations ================================================= */

/* A committed generation as named by DATA/MANIFEST. */
struct lk_generation {
    uint64_t number;            /* 1, 2, ... */
    char dir[4096];             /* absolute or data_dir-relative path of gen-NNNNNN */
    char content_sha1[41];      /* SHA-1 over the sorted (relative name, size, file SHA-1) list */
    uint64_t files;             /* regular files in the generation */
    int64_t created;            /* epoch seconds of the commit */
};

/* Read DATA/MANIFEST.  LK_ERR_NOT_FOUND when no generation was ever committed,
 * LK_ERR_CORRUPT when the manifest fails its own checksum, LK_ERR_IO. */
int lk_generation_current(const char *data_dir, struct lk_generation *out, struct lk_err *err);

/* Recompute the content checksum of `g`'s directory and compare it with the
 * manifest's: LK_OK or LK_ERR_CHECKSUM.  Reads every file (cost ~ size). */
int lk_generation_verify(const struct lk_generation *g, struct lk_err *err);

/* A generation being built.  Holds DATA/LOCK (flock, so a crash releases it). */
struct lk_gen_build;

/* Start generation N+1: take the builder lock (LK_ERR_STATE if another
 * builder holds it), garbage-collect incomplete generations left by crashed
 * builds and stale ones (keeping the current and `keep_old` older committed
 * ones; 1 is a good default so servers still on the previous generation can
 * finish), and create an empty DATA/gen-NNNNNN.  The builder writes its files
 * into lk_gen_build_dir(b) and then calls lk_generation_commit. */
int lk_generation_begin(const char *data_dir, unsigned keep_old, struct lk_gen_build **out,
                        struct lk_err *err);
const char *lk_gen_build_dir(const struct lk_gen_build *b);  /* owned by b */
uint64_t lk_gen_build_number(const struct lk_gen_build *b);

/* Make the generation current: fsync every file and the directory, checksum
 * its contents, write DATA/MANIFEST.tmp, fsync, rename over DATA/MANIFEST,
 * fsync DATA.  A crash at any point leaves either the old or the new
 * generation current, never a broken one.  `committed` may be NULL.  The
 * build must still be freed with lk_gen_build_free. */
int lk_generation_commit(struct lk_gen_build *b, struct lk_generation *committed,
                         struct lk_err *err);

/* Release the lock; a build that was not committed is removed (abort).
 * NULL is a no-op. */
void lk_gen_build_free(struct lk_gen_build *b);

/* Remove incomplete and stale generation directories (see
 * lk_generation_begin) and stray MANIFEST.tmp; takes the builder lock
 * (LK_ERR_STATE while a build runs).  *removed (may be NULL) = dirs removed. */
int lk_generation_gc(const char *data_dir, unsigned keep_old, unsigned *removed,
                     struct lk_err *err);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_CATALOG_H */
