/*
 * store.c — the SQLite catalog: schema + migrations, products, images,
 * metadata PATCHes, counts, category tree, events, integrity check, and the
 * value validators shared with the importers.
 *
 * Decisions worth knowing:
 *   - One connection per handle, opened SQLITE_OPEN_NOMUTEX and guarded by our
 *     own recursive mutex (a foreach callback may read through the handle).
 *     WAL journal so readers in other handles/processes never block the
 *     writer; synchronous=FULL because a PATCH of stock must survive power
 *     loss once acknowledged.
 *   - STRICT tables with CHECK constraints repeat the C validation, so even a
 *     bug or a hand edit cannot store a negative stock or invalid JSON.
 *   - image_id is AUTOINCREMENT (never reused) and doubles as the index vector
 *     id, see catalog.h.
 *   - Every statement used per request is prepared once (lk__stmt) and reset
 *     after use; every write runs in an explicit BEGIN IMMEDIATE transaction
 *     and updates the in-memory filter snapshot right after COMMIT, so a
 *     PATCH is visible to the next allow-list build.
 *   - Schema upgrades: migrations[v] takes user_version v to v+1 inside one
 *     transaction; a database newer than the program is refused.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pcatalog.h"

/* ==== Schema ============================================================ */

static const char *const migrations[LK_CATALOG_SCHEMA_VERSION] = {
    /* 0 -> 1: initial schema */
    "CREATE TABLE products("
    "  product_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  sku TEXT NOT NULL UNIQUE CHECK(length(sku) BETWEEN 1 AND 128),"
    "  title TEXT NOT NULL DEFAULT '',"
    "  category TEXT NOT NULL DEFAULT '',"
    "  price_minor INTEGER NOT NULL CHECK(price_minor >= 0),"
    "  currency TEXT NOT NULL CHECK(length(currency) = 3),"
    "  stock INTEGER NOT NULL CHECK(stock >= 0),"
    "  regions TEXT NOT NULL DEFAULT '',"
    "  flags INTEGER NOT NULL DEFAULT 0 CHECK(flags BETWEEN 0 AND 7),"
    "  margin_tier INTEGER NOT NULL DEFAULT 0 CHECK(margin_tier BETWEEN 0 AND 9),"
    "  attributes TEXT NOT NULL DEFAULT '{}' CHECK(json_valid(attributes)),"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX products_category ON products(category);"
    "CREATE TABLE images("
    "  image_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  product_id INTEGER NOT NULL REFERENCES products(product_id) ON DELETE CASCADE,"
    "  path TEXT NOT NULL CHECK(length(path) BETWEEN 1 AND 1024),"
    "  width INTEGER NOT NULL DEFAULT 0,"
    "  height INTEGER NOT NULL DEFAULT 0,"
    "  content_hash TEXT NOT NULL DEFAULT '',"
    "  blur REAL, contrast REAL, border_uniformity REAL, plain_background INTEGER,"
    "  weak_flags INTEGER NOT NULL DEFAULT 0,"
    "  indexed_gen INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(product_id, path)"
    ") STRICT;"
    "CREATE INDEX images_hash ON images(content_hash);"
    "CREATE TABLE events("
    "  event_id INTEGER PRIMARY KEY,"
    "  search_id TEXT NOT NULL,"
    "  sku TEXT NOT NULL,"
    "  type TEXT NOT NULL CHECK(type IN ('view','add_to_cart','purchase')),"
    "  ts INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX events_search ON events(search_id);",
};

#define PRODUCT_COLS                                                                    \
    "product_id,sku,title,category,price_minor,currency,stock,regions,flags,margin_tier," \
    "attributes,updated_at"
#define IMAGE_COLS                                                                      \
    "i.image_id,i.product_id,p.sku,i.path,i.width,i.height,i.content_hash,i.blur,"      \
    "i.contrast,i.border_uniformity,i.plain_background,i.weak_flags,i.indexed_gen"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_UPSERT_PRODUCT] =
        "INSERT INTO products(sku,title,category,price_minor,currency,stock,regions,flags,"
        "margin_tier,attributes,updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) "
        "ON CONFLICT(sku) DO UPDATE SET title=excluded.title, category=excluded.category, "
        "price_minor=excluded.price_minor, currency=excluded.currency, stock=excluded.stock, "
        "regions=excluded.regions, flags=excluded.flags, margin_tier=excluded.margin_tier, "
        "attributes=excluded.attributes, updated_at=excluded.updated_at RETURNING product_id",
    [ST_GET_PRODUCT_SKU] = "SELECT " PRODUCT_COLS " FROM products WHERE sku=?1",
    [ST_GET_PRODUCT_ID] = "SELECT " PRODUCT_COLS " FROM products WHERE product_id=?1",
    [ST_PRODUCT_ID_OF_SKU] = "SELECT product_id FROM products WHERE sku=?1",
    [ST_PATCH_PRODUCT] =
        "UPDATE products SET "
        "stock=CASE WHEN ?2 THEN ?3 ELSE stock END, "
        "price_minor=CASE WHEN ?4 THEN ?5 ELSE price_minor END, "
        "currency=coalesce(?6, currency), "
        "flags=CASE WHEN ?7 THEN ?8 ELSE flags END, "
        "margin_tier=CASE WHEN ?9 THEN ?10 ELSE margin_tier END, "
        "updated_at=?11 WHERE sku=?1 "
        "RETURNING product_id,price_minor,currency,stock,flags,margin_tier",
    [ST_DELETE_PRODUCT] = "DELETE FROM products WHERE sku=?1 RETURNING product_id",
    [ST_UPSERT_IMAGE] =
        "INSERT INTO images(product_id,path,width,height,content_hash) VALUES(?1,?2,?3,?4,?5) "
        "ON CONFLICT(product_id,path) DO UPDATE SET "
        "width=CASE WHEN excluded.width>0 THEN excluded.width ELSE width END, "
        "height=CASE WHEN excluded.height>0 THEN excluded.height ELSE height END, "
        "indexed_gen=CASE WHEN excluded.content_hash='' OR excluded.content_hash=content_hash "
        "  THEN indexed_gen ELSE 0 END, "
        "content_hash=CASE WHEN excluded.content_hash='' THEN content_hash "
        "  ELSE excluded.content_hash END "
        "RETURNING image_id",
    [ST_PRODUCT_IMAGES] = "SELECT image_id,path FROM images WHERE product_id=?1",
    [ST_DELETE_IMAGE] = "DELETE FROM images WHERE image_id=?1",
    [ST_IMAGE_QUALITY] = "UPDATE images SET blur=?2, contrast=?3, border_uniformity=?4, "
                         "plain_background=?5, weak_flags=?6 WHERE image_id=?1",
    [ST_IMAGE_INDEXED] = "UPDATE images SET indexed_gen=?2 WHERE image_id=?1",
    [ST_GET_IMAGE] = "SELECT " IMAGE_COLS
                     " FROM images i JOIN products p USING(product_id) WHERE i.image_id=?1",
    [ST_ADD_EVENT] = "INSERT INTO events(search_id,sku,type,ts) VALUES(?1,?2,?3,?4)",
};

/* ==== Small helpers ===================================================== */

int lk__db_err(struct lk_catalog *cat, struct lk_err *err, const char *what)
{
    return lk_err_set(err, LK_ERR_DB, "%s: %s", what, cat->db ? sqlite3_errmsg(cat->db) : "no db");
}

int lk__exec(struct lk_catalog *cat, const char *sql, struct lk_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(cat->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = lk_err_set(err, LK_ERR_DB, "%.40s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return rc;
    }
    return LK_OK;
}

sqlite3_stmt *lk__stmt(struct lk_catalog *cat, enum lk__stmt which)
{
    sqlite3_stmt *st = cat->stmts[which];
    if (!st) {
        if (sqlite3_prepare_v3(cat->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &st,
                               NULL) != SQLITE_OK)
            return NULL;
        cat->stmts[which] = st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return strdup(s ? (const char *)s : "");
}

static void db_lock(struct lk_catalog *cat) { pthread_mutex_lock(&cat->db_mu); }
static void db_unlock(struct lk_catalog *cat) { pthread_mutex_unlock(&cat->db_mu); }

static int tx_begin(struct lk_catalog *cat, struct lk_err *err)
{
    return lk__exec(cat, "BEGIN IMMEDIATE", err);
}

static int tx_end(struct lk_catalog *cat, int rc, struct lk_err *err)
{
    if (rc == LK_OK) {
        rc = lk__exec(cat, "COMMIT", err);
        if (rc == LK_OK)
            return LK_OK;
    }
    sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ==== Validation ======================================================== */

static int has_ctrl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int lk__sku_check(const char *sku, struct lk_err *err)
{
    if (!sku || !*sku)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "missing SKU");
    size_t n = strlen(sku);
    if (n > LK_SKU_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "SKU longer than %d bytes", LK_SKU_MAX);
    if (has_ctrl(sku))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "SKU contains control characters");
    return LK_OK;
}

int lk_currency_exponent(const char *c)
{
    if (!c || strlen(c) != 3)
        return -1;
    char u[4];
    for (int i = 0; i < 3; i++) {
        if (!isalpha((unsigned char)c[i]) || (unsigned char)c[i] > 0x7f)
            return -1;
        u[i] = (char)toupper((unsigned char)c[i]);
    }
    u[3] = '\0';
    /* ISO 4217 minor units: the 0- and 3-digit currencies; all others use 2. */
    static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
    static const char three[] = "BHD IQD JOD KWD LYD OMR TND";
    if (strstr(zero, u))
        return 0;
    if (strstr(three, u))
        return 3;
    return 2;
}

int lk_parse_price(const char *s, const char *currency, int64_t *out, struct lk_err *err)
{
    int exp = lk_currency_exponent(currency ? currency : "USD");
    if (exp < 0)
        return lk_err_set(err, LK_ERR_PARSE, "bad currency code");
    if (!s || !*s)
        return lk_err_set(err, LK_ERR_PARSE, "empty price");
    const char *p = s;
    int64_t v = 0;
    int digits = 0, frac = 0;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        if (v > (LK_PRICE_MINOR_MAX - 9) / 10)
            return lk_err_set(err, LK_ERR_PARSE, "price \"%.40s\" out of range", s);
        v = v * 10 + (*p - '0');
    }
    if (*p == '.') {
        p++;
        for (; isdigit((unsigned char)*p); p++, digits++) {
            if (frac < exp) {
                if (v > (LK_PRICE_MINOR_MAX - 9) / 10)
                    return lk_err_set(err, LK_ERR_PARSE, "price \"%.40s\" out of range", s);
                v = v * 10 + (*p - '0');
                frac++;
            } else if (*p != '0') {
                return lk_err_set(err, LK_ERR_PARSE,
                                  "price \"%.40s\" has more than %d decimals for its currency", s,
                                  exp);
            }
        }
    }
    if (*p || digits == 0)
        return lk_err_set(err, LK_ERR_PARSE, "price \"%.40s\" is not a plain decimal number", s);
    for (; frac < exp; frac++) {
        if (v > LK_PRICE_MINOR_MAX / 10)
            return lk_err_set(err, LK_ERR_PARSE, "price \"%.40s\" out of range", s);
        v *= 10;
    }
    if (v > LK_PRICE_MINOR_MAX)
        return lk_err_set(err, LK_ERR_PARSE, "price \"%.40s\" out of range", s);
    *out = v;
    return LK_OK;
}

int lk_category_normalise(const char *in, char *out, size_t out_size, struct lk_err *err)
{
    if (!out || out_size == 0)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "no output buffer");
    out[0] = '\0';
    if (!in)
        return LK_OK;
    /* Outer '/' and blanks are cosmetic ("/Home/Sofas/ " == "home/sofas"); an
     * empty inner segment ("a//b") is an error, not silently collapsed. */
    const char *b = in, *e = in + strlen(in);
    while (b < e && (*b == '/' || *b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == '/' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t o = 0;
    unsigned depth = 0;
    const char *p = b;
    while (p < e) {
        const char *seg = p;
        while (p < e && *p != '/')
            p++;
        const char *se = p;
        while (seg < se && (*seg == ' ' || *seg == '\t'))
            seg++;
        while (se > seg && (se[-1] == ' ' || se[-1] == '\t'))
            se--;
        size_t n = (size_t)(se - seg);
        if (n == 0)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "category \"%.60s\": empty segment", in);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "category \"%.60s\": '.' or '..' segment", in);
        if (++depth > LK_CATEGORY_DEPTH_MAX)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "category deeper than %d segments",
                              LK_CATEGORY_DEPTH_MAX);
        if (o + n + 2 > out_size || o + n + 1 > LK_CATEGORY_MAX)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "category longer than %d bytes",
                              LK_CATEGORY_MAX);
        if (o)
            out[o++] = '/';
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)seg[i];
            if (c < 0x20 || c == 0x7f)
                return lk_err_set(err, LK_ERR_INVALID_ARG, "category contains control characters");
            out[o++] = (char)(c < 0x80 ? tolower(c) : c);
        }
        out[o] = '\0';
        if (p < e)
            p++; /* skip '/' */
    }
    return LK_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int lk__regions_normalise(const char *in, char *out, size_t out_size, struct lk_err *err)
{
    char codes[LK_CATALOG_MAX_REGIONS][9];
    const char *ptrs[LK_CATALOG_MAX_REGIONS];
    size_t n = 0;
    out[0] = '\0';
    if (!in)
        return LK_OK;
    const char *p = in;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '|' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != '|' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t len = (size_t)(p - s);
        if (len < 2 || len > 8)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "region code \"%.*s\" must be 2..8 characters",
                              (int)(len > 20 ? 20 : len), s);
        char code[9];
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!(isalnum(c) || c == '_' || c == '-') || c > 0x7f)
                return lk_err_set(err, LK_ERR_INVALID_ARG, "region code \"%.*s\": bad character",
                                  (int)len, s);
            code[i] = (char)toupper(c);
        }
        code[len] = '\0';
        int dup = 0;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(codes[i], code))
                dup = 1;
        if (dup)
            continue;
        if (n == LK_CATALOG_MAX_REGIONS)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "more than %d regions",
                              LK_CATALOG_MAX_REGIONS);
        memcpy(codes[n], code, len + 1);
        ptrs[n] = codes[n];
        n++;
    }
    qsort(ptrs, n, sizeof ptrs[0], cmp_str);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ptrs[i]);
        if (o + len + 2 > out_size)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "regions list too long");
        if (o)
            out[o++] = '|';
        memcpy(out + o, ptrs[i], len + 1);
        o += len;
    }
    return LK_OK;
}

int lk__image_path_check(const char *rel, struct lk_err *err)
{
    if (!rel || !*rel)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "empty image path");
    size_t n = strlen(rel);
    if (n > LK_IMAGE_PATH_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "image path longer than %d bytes",
                          LK_IMAGE_PATH_MAX);
    if (rel[0] == '/' || rel[0] == '\\')
        return lk_err_set(err, LK_ERR_INVALID_ARG, "image path \"%.80s\" is absolute", rel);
    if (has_ctrl(rel))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "image path contains control characters");
    for (const char *s = rel; *s;) {
        const char *e = s;
        while (*e && *e != '/' && *e != '\\')
            e++;
        if (e - s == 2 && s[0] == '.' && s[1] == '.')
            return lk_err_set(err, LK_ERR_INVALID_ARG,
                              "image path \"%.80s\" escapes the images directory (..)", rel);
        s = *e ? e + 1 : e;
    }
    return LK_OK;
}

int lk__product_normalise(const struct lk_product *p, struct lk__norm_product *n,
                          struct lk_err *err)
{
    int rc;
    if (!p)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "product is NULL");
    if ((rc = lk__sku_check(p->sku, err)))
        return rc;
    if (p->title && strlen(p->title) > LK_TITLE_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "title longer than %d bytes", LK_TITLE_MAX);
    if ((rc = lk_category_normalise(p->category, n->category, sizeof n->category, err)))
        return rc;
    if (lk_currency_exponent(p->currency) < 0)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "currency \"%.8s\" is not an ISO 4217 code",
                          p->currency);
    for (int i = 0; i < 3; i++)
        n->currency[i] = (char)toupper((unsigned char)p->currency[i]);
    n->currency[3] = '\0';
    if (p->price_minor < 0 || p->price_minor > LK_PRICE_MINOR_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "price_minor %lld out of range",
                          (long long)p->price_minor);
    if (p->stock < 0 || p->stock > LK_STOCK_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "stock %lld out of range", (long long)p->stock);
    if (p->flags & ~LK_FLAG_ALL)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "unknown flag bits 0x%x", p->flags);
    if (p->margin_tier < LK_MARGIN_TIER_MIN || p->margin_tier > LK_MARGIN_TIER_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "margin_tier %d not in %d..%d",
                          (int)p->margin_tier, LK_MARGIN_TIER_MIN, LK_MARGIN_TIER_MAX);
    if ((rc = lk__regions_normalise(p->regions, n->regions, sizeof n->regions, err)))
        return rc;
    return LK_OK;
}

/* ==== Open / close ====================================================== */

void lk_catalog_opts_default(struct lk_catalog_opts *o)
{
    o->create = 1;
    o->readonly = 0;
    o->busy_timeout_ms = 5000;
}

static int migrate(struct lk_catalog *cat, int readonly, struct lk_err *err)
{
    for (;;) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(cat->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
            return lk__db_err(cat, err, "read schema version");
        int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (v < 0)
            return lk__db_err(cat, err, "read schema version");
        if (v > LK_CATALOG_SCHEMA_VERSION)
            return lk_err_set(err, LK_ERR_FORMAT,
                              "catalog schema version %d is newer than this program (%d)", v,
                              LK_CATALOG_SCHEMA_VERSION);
        if (v == LK_CATALOG_SCHEMA_VERSION)
            return LK_OK;
        if (readonly)
            return lk_err_set(err, LK_ERR_FORMAT,
                              "catalog schema version %d needs migrating; open read-write", v);
        int rc = tx_begin(cat, err);
        if (rc)
            return rc;
        /* Re-read inside the write lock: another process may have migrated. */
        if (sqlite3_prepare_v2(cat->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
            return tx_end(cat, lk__db_err(cat, err, "read schema version"), err);
        int v2 = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (v2 != v) {
            tx_end(cat, LK_ERR_STATE, err);
            continue;
        }
        rc = lk__exec(cat, migrations[v], err);
        if (rc == LK_OK) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
            rc = lk__exec(cat, sql, err);
        }
        if ((rc = tx_end(cat, rc, err)))
            return rc;
    }
}

int lk_catalog_open(const char *data_dir, const struct lk_catalog_opts *opts,
                    struct lk_catalog **out, struct lk_err *err)
{
    struct lk_catalog_opts o;
    if (opts)
        o = *opts;
    else
        lk_catalog_opts_default(&o);
    if (!data_dir || !*data_dir || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_catalog_open: data_dir and out required");
    *out = NULL;
    if (o.create && !o.readonly && mkdir(data_dir, 0755) != 0 && errno != EEXIST)
        return lk_err_set(err, LK_ERR_IO, "mkdir %s: %s", data_dir, strerror(errno));

    struct lk_catalog *cat = calloc(1, sizeof *cat);
    if (!cat)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&cat->db_mu, &ma);
    pthread_mutexattr_destroy(&ma);
    /* glibc's default rwlock prefers readers: with search threads building
     * allow-lists back to back, a PATCH could wait for seconds.  Prefer the
     * writer (it holds the lock for a few stores); readers never nest. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&cat->snap_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    cat->data_dir = strdup(data_dir);

    size_t plen = strlen(data_dir) + sizeof "/catalog.sqlite";
    char *path = malloc(plen);
    if (!cat->data_dir || !path) {
        free(path);
        lk_catalog_close(cat);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    snprintf(path, plen, "%s/catalog.sqlite", data_dir);
    int flags = SQLITE_OPEN_NOMUTEX |
                (o.readonly ? SQLITE_OPEN_READONLY
                            : SQLITE_OPEN_READWRITE | (o.create ? SQLITE_OPEN_CREATE : 0));
    int rc;
    if (sqlite3_open_v2(path, &cat->db, flags, NULL) != SQLITE_OK) {
        rc = lk_err_set(err, cat->db ? LK_ERR_DB : LK_ERR_NOMEM, "open %s: %s", path,
                        cat->db ? sqlite3_errmsg(cat->db) : "out of memory");
        free(path);
        lk_catalog_close(cat);
        return rc;
    }
    free(path);
    sqlite3_extended_result_codes(cat->db, 1);
    sqlite3_busy_timeout(cat->db, o.busy_timeout_ms > 0 ? o.busy_timeout_ms : 0);
    rc = lk__exec(cat, "PRAGMA foreign_keys=ON", err);
    if (!rc && !o.readonly)
        rc = lk__exec(cat, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", err);
    if (!rc)
        rc = migrate(cat, o.readonly, err);
    if (!rc) {
        db_lock(cat);
        rc = lk__snapshot_reload(cat, err);
        db_unlock(cat);
    }
    if (rc) {
        lk_catalog_close(cat);
        return rc;
    }
    *out = cat;
    return LK_OK;
}

void lk_catalog_close(struct lk_catalog *cat)
{
    if (!cat)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(cat->stmts[i]);
    if (cat->db)
        sqlite3_close(cat->db);
    lk__snapshot_free(&cat->snap);
    pthread_rwlock_destroy(&cat->snap_lock);
    pthread_mutex_destroy(&cat->db_mu);
    free(cat->data_dir);
    free(cat);
}

int lk_catalog_integrity_check(struct lk_catalog *cat, struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    db_lock(cat);
    int rc = LK_OK;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(cat->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "integrity_check");
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (m && strcmp(m, "ok") != 0) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "integrity_check: %s", m);
            break;
        }
    }
    if (sqlite3_finalize(st) != SQLITE_OK && rc == LK_OK)
        rc = lk_err_set(err, LK_ERR_CORRUPT, "integrity_check: %s", sqlite3_errmsg(cat->db));
    st = NULL;
    if (rc)
        goto out;
    if (sqlite3_prepare_v2(cat->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "foreign_key_check");
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = lk_err_set(err, LK_ERR_CORRUPT, "foreign_key_check: table %s row %lld",
                        sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
out:
    db_unlock(cat);
    return rc;
}

int lk_catalog_refresh(struct lk_catalog *cat, struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    db_lock(cat);
    int rc = LK_OK;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cat->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "data_version");
    } else {
        int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        if (v != cat->data_version)
            rc = lk__snapshot_reload(cat, err);
    }
    db_unlock(cat);
    return rc;
}

/* ==== Products ========================================================== */

void lk_product_clear(struct lk_product *p)
{
    if (!p)
        return;
    free(p->sku);
    free(p->title);
    free(p->category);
    free(p->regions);
    free(p->attributes_json);
    memset(p, 0, sizeof *p);
}

static int read_product(sqlite3_stmt *st, struct lk_product *out)
{
    memset(out, 0, sizeof *out);
    out->product_id = sqlite3_column_int64(st, 0);
    out->sku = dup_col(st, 1);
    out->title = dup_col(st, 2);
    out->category = dup_col(st, 3);
    out->price_minor = sqlite3_column_int64(st, 4);
    const unsigned char *c = sqlite3_column_text(st, 5);
    snprintf(out->currency, sizeof out->currency, "%s", c ? (const char *)c : "");
    out->stock = sqlite3_column_int64(st, 6);
    out->regions = dup_col(st, 7);
    out->flags = (uint32_t)sqlite3_column_int(st, 8);
    out->margin_tier = sqlite3_column_int(st, 9);
    out->attributes_json = dup_col(st, 10);
    out->updated_at = sqlite3_column_int64(st, 11);
    if (!out->sku || !out->title || !out->category || !out->regions || !out->attributes_json) {
        lk_product_clear(out);
        return LK_ERR_NOMEM;
    }
    return LK_OK;
}

int lk__upsert_product_tx(struct lk_catalog *cat, const struct lk_product *p,
                          const struct lk__norm_product *n, int64_t *product_id,
                          struct lk_err *err)
{
    sqlite3_stmt *st = lk__stmt(cat, ST_UPSERT_PRODUCT);
    if (!st)
        return lk__db_err(cat, err, "prepare upsert");
    sqlite3_bind_text(st, 1, p->sku, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->title ? p->title : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, n->category, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->price_minor);
    sqlite3_bind_text(st, 5, n->currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, p->stock);
    sqlite3_bind_text(st, 7, n->regions, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, (int)p->flags);
    sqlite3_bind_int(st, 9, p->margin_tier);
    sqlite3_bind_text(st, 10, p->attributes_json && *p->attributes_json ? p->attributes_json : "{}",
                      -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, (int64_t)time(NULL));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
            rc = lk_err_set(err, LK_ERR_INVALID_ARG, "product %s rejected: %s", p->sku,
                            sqlite3_errmsg(cat->db));
        else
            rc = lk__db_err(cat, err, "upsert product");
        sqlite3_reset(st);
        return rc;
    }
    if (product_id)
        *product_id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return LK_OK;
}

/* Set one product's snapshot slot.  Caller holds the snapshot write lock. */
static int snap_set_product(struct lk__snapshot *s, int64_t pid, const char *category,
                            uint64_t regions, const struct lk_product *p, const char *currency)
{
    if (lk__snapshot_reserve(s, pid, -1))
        return LK_ERR_NOMEM;
    int64_t cid = lk__snapshot_category(s, category);
    if (cid < 0)
        return LK_ERR_NOMEM;
    struct lk__snap_product *sp = &s->prod[pid];
    sp->price_minor = p->price_minor;
    sp->stock = p->stock;
    sp->regions = regions;
    sp->category = (uint32_t)cid;
    sp->currency = lk__currency_pack(currency);
    sp->flags = (uint16_t)p->flags;
    sp->margin_tier = (int8_t)p->margin_tier;
    sp->live = 1;
    return LK_OK;
}

int lk_catalog_upsert_product(struct lk_catalog *cat, const struct lk_product *p,
                              int64_t *product_id, struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    struct lk__norm_product n;
    int rc = lk__product_normalise(p, &n, err);
    if (rc)
        return rc;
    if (p->attributes_json && *p->attributes_json && strlen(p->attributes_json) > 65536)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "attributes larger than 64 KiB");
    uint64_t mask = 0;
    pthread_rwlock_wrlock(&cat->snap_lock);
    rc = lk__snapshot_region_mask(&cat->snap, n.regions, &mask, err);
    pthread_rwlock_unlock(&cat->snap_lock);
    if (rc)
        return rc;

    db_lock(cat);
    int64_t pid = 0;
    rc = tx_begin(cat, err);
    if (!rc)
        rc = tx_end(cat, lk__upsert_product_tx(cat, p, &n, &pid, err), err);
    if (!rc) {
        pthread_rwlock_wrlock(&cat->snap_lock);
        struct lk_product q = *p;
        if (snap_set_product(&cat->snap, pid, n.category, mask, &q, n.currency))
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory updating the filter snapshot");
        pthread_rwlock_unlock(&cat->snap_lock);
    }
    db_unlock(cat);
    if (!rc && product_id)
        *product_id = pid;
    return rc;
}

int lk_catalog_patch(struct lk_catalog *cat, const char *sku, const struct lk_product_patch *pt,
                     struct lk_err *err)
{
    if (!cat || !pt)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and patch required");
    int rc = lk__sku_check(sku, err);
    if (rc)
        return rc;
    if (pt->has_stock && (pt->stock < 0 || pt->stock > LK_STOCK_MAX))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "stock %lld out of range", (long long)pt->stock);
    if (pt->has_price && (pt->price_minor < 0 || pt->price_minor > LK_PRICE_MINOR_MAX))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "price_minor %lld out of range",
                          (long long)pt->price_minor);
    char cur[4] = "";
    if (pt->has_price && pt->currency) {
        if (lk_currency_exponent(pt->currency) < 0)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "bad currency code");
        for (int i = 0; i < 3; i++)
            cur[i] = (char)toupper((unsigned char)pt->currency[i]);
        cur[3] = '\0';
    }
    if (pt->has_flags && (pt->flags & ~LK_FLAG_ALL))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "unknown flag bits 0x%x", pt->flags);
    if (pt->has_margin_tier &&
        (pt->margin_tier < LK_MARGIN_TIER_MIN || pt->margin_tier > LK_MARGIN_TIER_MAX))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "margin_tier out of range");

    db_lock(cat);
    rc = tx_begin(cat, err);
    int64_t pid = 0, price = 0, stock = 0;
    uint32_t flags = 0;
    int tier = 0;
    char curr[4] = "";
    if (!rc) {
        sqlite3_stmt *st = lk__stmt(cat, ST_PATCH_PRODUCT);
        if (!st) {
            rc = lk__db_err(cat, err, "prepare patch");
        } else {
            sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, pt->has_stock != 0);
            sqlite3_bind_int64(st, 3, pt->stock);
            sqlite3_bind_int(st, 4, pt->has_price != 0);
            sqlite3_bind_int64(st, 5, pt->price_minor);
            if (cur[0])
                sqlite3_bind_text(st, 6, cur, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 7, pt->has_flags != 0);
            sqlite3_bind_int(st, 8, (int)pt->flags);
            sqlite3_bind_int(st, 9, pt->has_margin_tier != 0);
            sqlite3_bind_int(st, 10, pt->margin_tier);
            sqlite3_bind_int64(st, 11, (int64_t)time(NULL));
            int s = sqlite3_step(st);
            if (s == SQLITE_ROW) {
                pid = sqlite3_column_int64(st, 0);
                price = sqlite3_column_int64(st, 1);
                snprintf(curr, sizeof curr, "%s", (const char *)sqlite3_column_text(st, 2));
                stock = sqlite3_column_int64(st, 3);
                flags = (uint32_t)sqlite3_column_int(st, 4);
                tier = sqlite3_column_int(st, 5);
            } else if (s == SQLITE_DONE) {
                rc = lk_err_set(err, LK_ERR_NOT_FOUND, "no product with SKU %s", sku);
            } else {
                rc = lk__db_err(cat, err, "patch product");
            }
            sqlite3_reset(st);
        }
        rc = tx_end(cat, rc, err);
    }
    if (!rc) {
        /* Live immediately: the next allow-list build reads these values. */
        pthread_rwlock_wrlock(&cat->snap_lock);
        if (lk__snapshot_reserve(&cat->snap, pid, -1) == LK_OK) {
            struct lk__snap_product *sp = &cat->snap.prod[pid];
            sp->price_minor = price;
            sp->stock = stock;
            sp->flags = (uint16_t)flags;
            sp->margin_tier = (int8_t)tier;
            sp->currency = lk__currency_pack(curr);
        } else {
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory updating the filter snapshot");
        }
        pthread_rwlock_unlock(&cat->snap_lock);
    }
    db_unlock(cat);
    return rc;
}

int lk_catalog_set_stock(struct lk_catalog *cat, const char *sku, int64_t stock, struct lk_err *err)
{
    struct lk_product_patch p = {.has_stock = 1, .stock = stock};
    return lk_catalog_patch(cat, sku, &p, err);
}

int lk_catalog_set_price(struct lk_catalog *cat, const char *sku, int64_t price_minor,
                         const char *currency, struct lk_err *err)
{
    struct lk_product_patch p = {.has_price = 1, .price_minor = price_minor, .currency = currency};
    return lk_catalog_patch(cat, sku, &p, err);
}

int lk_catalog_set_flags(struct lk_catalog *cat, const char *sku, uint32_t flags, struct lk_err *err)
{
    struct lk_product_patch p = {.has_flags = 1, .flags = flags};
    return lk_catalog_patch(cat, sku, &p, err);
}

int lk_catalog_delete_product(struct lk_catalog *cat, const char *sku, struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    int rc = lk__sku_check(sku, err);
    if (rc)
        return rc;
    db_lock(cat);
    int64_t pid = 0;
    rc = tx_begin(cat, err);
    if (!rc) {
        sqlite3_stmt *st = lk__stmt(cat, ST_DELETE_PRODUCT);
        if (!st) {
            rc = lk__db_err(cat, err, "prepare delete");
        } else {
            sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
            int s = sqlite3_step(st);
            if (s == SQLITE_ROW)
                pid = sqlite3_column_int64(st, 0);
            else if (s == SQLITE_DONE)
                rc = lk_err_set(err, LK_ERR_NOT_FOUND, "no product with SKU %s", sku);
            else
                rc = lk__db_err(cat, err, "delete product");
            /* step to completion so the statement finishes the delete */
            while (s == SQLITE_ROW)
                s = sqlite3_step(st);
            sqlite3_reset(st);
        }
        rc = tx_end(cat, rc, err);
    }
    if (!rc) {
        /* Images still map to pid, but a dead product fails every filter. */
        pthread_rwlock_wrlock(&cat->snap_lock);
        if (pid > 0 && (size_t)pid < cat->snap.prod_cap)
            cat->snap.prod[pid].live = 0;
        pthread_rwlock_unlock(&cat->snap_lock);
    }
    db_unlock(cat);
    return rc;
}

static int get_product(struct lk_catalog *cat, enum lk__stmt which, const char *sku, int64_t id,
                       struct lk_product *out, struct lk_err *err)
{
    if (!cat || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and out required");
    memset(out, 0, sizeof *out);
    db_lock(cat);
    int rc = LK_OK;
    sqlite3_stmt *st = lk__stmt(cat, which);
    if (!st) {
        rc = lk__db_err(cat, err, "prepare get product");
    } else {
        if (sku)
            sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, 1, id);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            if (read_product(st, out))
                rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        } else if (s == SQLITE_DONE) {
            rc = sku ? lk_err_set(err, LK_ERR_NOT_FOUND, "no product with SKU %.128s", sku)
                     : lk_err_set(err, LK_ERR_NOT_FOUND, "no product with id %lld", (long long)id);
        } else {
            rc = lk__db_err(cat, err, "get product");
        }
        sqlite3_reset(st);
    }
    db_unlock(cat);
    return rc;
}

int lk_catalog_get_product(struct lk_catalog *cat, const char *sku, struct lk_product *out,
                           struct lk_err *err)
{
    if (!sku)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "SKU is NULL");
    return get_product(cat, ST_GET_PRODUCT_SKU, sku, 0, out, err);
}

int lk_catalog_get_product_by_id(struct lk_catalog *cat, int64_t product_id,
                                 struct lk_product *out, struct lk_err *err)
{
    return get_product(cat, ST_GET_PRODUCT_ID, NULL, product_id, out, err);
}

int lk_catalog_foreach_product(struct lk_catalog *cat, lk_product_fn fn, void *ud,
                               struct lk_err *err)
{
    if (!cat || !fn)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and callback required");
    db_lock(cat);
    sqlite3_stmt *st;
    int rc = LK_OK;
    if (sqlite3_prepare_v2(cat->db, "SELECT " PRODUCT_COLS " FROM products ORDER BY sku", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "iterate products");
        goto out;
    }
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct lk_product p;
        if (read_product(st, &p)) {
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
            break;
        }
        rc = fn(&p, ud);
        lk_product_clear(&p);
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = lk__db_err(cat, err, "iterate products");
    sqlite3_finalize(st);
out:
    db_unlock(cat);
    return rc;
}

/* ==== Images ============================================================ */

void lk_catalog_image_clear(struct lk_catalog_image *im)
{
    if (!im)
        return;
    free(im->sku);
    free(im->path);
    memset(im, 0, sizeof *im);
}

static int read_image(sqlite3_stmt *st, struct lk_catalog_image *im)
{
    memset(im, 0, sizeof *im);
    im->image_id = sqlite3_column_int64(st, 0);
    im->product_id = sqlite3_column_int64(st, 1);
    im->sku = dup_col(st, 2);
    im->path = dup_col(st, 3);
    im->width = (uint32_t)sqlite3_column_int64(st, 4);
    im->height = (uint32_t)sqlite3_column_int64(st, 5);
    const unsigned char *h = sqlite3_column_text(st, 6);
    snprintf(im->content_sha1, sizeof im->content_sha1, "%s", h ? (const char *)h : "");
    im->has_quality = sqlite3_column_type(st, 7) != SQLITE_NULL;
    im->quality.blur = (float)sqlite3_column_double(st, 7);
    im->quality.contrast = (float)sqlite3_column_double(st, 8);
    im->quality.border_uniformity = (float)sqlite3_column_double(st, 9);
    im->quality.plain_background = sqlite3_column_int(st, 10);
    im->quality.weak_flags = (uint32_t)sqlite3_column_int64(st, 11);
    im->indexed_gen = (uint64_t)sqlite3_column_int64(st, 12);
    if (!im->sku || !im->path) {
        lk_catalog_image_clear(im);
        return LK_ERR_NOMEM;
    }
    return LK_OK;
}

int lk__upsert_image_tx(struct lk_catalog *cat, int64_t product_id, const char *path,
                        uint32_t width, uint32_t height, const char *sha1, int64_t *image_id,
                        struct lk_err *err)
{
    sqlite3_stmt *st = lk__stmt(cat, ST_UPSERT_IMAGE);
    if (!st)
        return lk__db_err(cat, err, "prepare upsert image");
    sqlite3_bind_int64(st, 1, product_id);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, width);
    sqlite3_bind_int64(st, 4, height);
    sqlite3_bind_text(st, 5, sha1 ? sha1 : "", -1, SQLITE_STATIC);
    int rc = LK_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *image_id = sqlite3_column_int64(st, 0);
    else
        rc = lk__db_err(cat, err, "upsert image");
    sqlite3_reset(st);
    return rc;
}

static int product_id_of(struct lk_catalog *cat, const char *sku, int64_t *pid, struct lk_err *err)
{
    sqlite3_stmt *st = lk__stmt(cat, ST_PRODUCT_ID_OF_SKU);
    if (!st)
        return lk__db_err(cat, err, "prepare product id");
    sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
    int s = sqlite3_step(st), rc = LK_OK;
    if (s == SQLITE_ROW)
        *pid = sqlite3_column_int64(st, 0);
    else if (s == SQLITE_DONE)
        rc = lk_err_set(err, LK_ERR_NOT_FOUND, "no product with SKU %.128s", sku);
    else
        rc = lk__db_err(cat, err, "product id");
    sqlite3_reset(st);
    return rc;
}

int lk_catalog_add_image(struct lk_catalog *cat, const char *sku, const char *path,
                         uint32_t width, uint32_t height, const char *sha1, int64_t *image_id,
                         struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    int rc = lk__sku_check(sku, err);
    if (!rc)
        rc = lk__image_path_check(path, err);
    if (rc)
        return rc;
    if (sha1 && *sha1 && strlen(sha1) != 40)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "content hash must be 40 hex digits");
    db_lock(cat);
    int64_t pid = 0, iid = 0;
    rc = tx_begin(cat, err);
    if (!rc) {
        rc = product_id_of(cat, sku, &pid, err);
        if (!rc)
            rc = lk__upsert_image_tx(cat, pid, path, width, height, sha1, &iid, err);
        rc = tx_end(cat, rc, err);
    }
    if (!rc) {
        pthread_rwlock_wrlock(&cat->snap_lock);
        /* Reserve the product slot too: a product written by another process
         * and not yet refreshed must still index inside the array. */
        if (lk__snapshot_reserve(&cat->snap, pid, iid) == LK_OK) {
            cat->snap.img_prod[iid] = (uint32_t)pid;
            if (iid > cat->snap.max_image_id)
                cat->snap.max_image_id = iid;
        } else {
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory updating the filter snapshot");
        }
        pthread_rwlock_unlock(&cat->snap_lock);
    }
    db_unlock(cat);
    if (!rc && image_id)
        *image_id = iid;
    return rc;
}

static int image_update(struct lk_catalog *cat, enum lk__stmt which, int64_t image_id,
                        const struct lk_catalog_quality *q, uint64_t gen, struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    db_lock(cat);
    int rc = tx_begin(cat, err);
    if (!rc) {
        sqlite3_stmt *st = lk__stmt(cat, which);
        if (!st) {
            rc = lk__db_err(cat, err, "prepare image update");
        } else {
            sqlite3_bind_int64(st, 1, image_id);
            if (which == ST_IMAGE_QUALITY) {
                sqlite3_bind_double(st, 2, q->blur);
                sqlite3_bind_double(st, 3, q->contrast);
                sqlite3_bind_double(st, 4, q->border_uniformity);
                sqlite3_bind_int(st, 5, q->plain_background != 0);
                sqlite3_bind_int64(st, 6, q->weak_flags);
            } else if (which == ST_IMAGE_INDEXED) {
                sqlite3_bind_int64(st, 2, (int64_t)gen);
            }
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = lk__db_err(cat, err, "image update");
            else if (sqlite3_changes(cat->db) == 0)
                rc = lk_err_set(err, LK_ERR_NOT_FOUND, "no image with id %lld", (long long)image_id);
            sqlite3_reset(st);
        }
        rc = tx_end(cat, rc, err);
    }
    if (!rc && which == ST_DELETE_IMAGE) {
        pthread_rwlock_wrlock(&cat->snap_lock);
        if (image_id > 0 && (size_t)image_id < cat->snap.img_cap)
            cat->snap.img_prod[image_id] = 0;
        pthread_rwlock_unlock(&cat->snap_lock);
    }
    db_unlock(cat);
    return rc;
}

int lk_catalog_mark_images(struct lk_catalog *cat, const struct lk_catalog_image_mark *marks, size_t n,
                           struct lk_err *err)
{
    if (!cat || (!marks && n))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and marks required");
    db_lock(cat);
    int rc = tx_begin(cat, err);
    if (!rc) {
        sqlite3_stmt *sq = lk__stmt(cat, ST_IMAGE_QUALITY), *si = lk__stmt(cat, ST_IMAGE_INDEXED);
        if (!sq || !si)
            rc = lk__db_err(cat, err, "prepare image update");
        for (size_t i = 0; !rc && i < n; i++) {
            const struct lk_catalog_image_mark *m = &marks[i];
            if (m->q) {
                sqlite3_bind_int64(sq, 1, m->image_id);
                sqlite3_bind_double(sq, 2, m->q->blur);
                sqlite3_bind_double(sq, 3, m->q->contrast);
                sqlite3_bind_double(sq, 4, m->q->border_uniformity);
                sqlite3_bind_int(sq, 5, m->q->plain_background != 0);
                sqlite3_bind_int64(sq, 6, m->q->weak_flags);
                if (sqlite3_step(sq) != SQLITE_DONE)
                    rc = lk__db_err(cat, err, "image quality update");
                sqlite3_reset(sq);
            }
            if (!rc && m->indexed_gen) {
                if (m->indexed_gen > INT64_MAX) {
                    rc = lk_err_set(err, LK_ERR_INVALID_ARG, "generation out of range");
                    break;
                }
                sqlite3_bind_int64(si, 1, m->image_id);
                sqlite3_bind_int64(si, 2, (int64_t)m->indexed_gen);
                if (sqlite3_step(si) != SQLITE_DONE)
                    rc = lk__db_err(cat, err, "image indexed update");
                sqlite3_reset(si);
            }
        }
        rc = tx_end(cat, rc, err);
    }
    db_unlock(cat);
    return rc;
}

int lk_catalog_remove_image(struct lk_catalog *cat, int64_t image_id, struct lk_err *err)
{
    return image_update(cat, ST_DELETE_IMAGE, image_id, NULL, 0, err);
}

int lk_catalog_set_image_quality(struct lk_catalog *cat, int64_t image_id,
                                 const struct lk_catalog_quality *q, struct lk_err *err)
{
    if (!q)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "quality is NULL");
    return image_update(cat, ST_IMAGE_QUALITY, image_id, q, 0, err);
}

int lk_catalog_set_image_indexed(struct lk_catalog *cat, int64_t image_id, uint64_t gen,
                                 struct lk_err *err)
{
    if (gen > INT64_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "generation out of range");
    return image_update(cat, ST_IMAGE_INDEXED, image_id, NULL, gen, err);
}

int lk_catalog_get_image(struct lk_catalog *cat, int64_t image_id, struct lk_catalog_image *out,
                         struct lk_err *err)
{
    if (!cat || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and out required");
    memset(out, 0, sizeof *out);
    db_lock(cat);
    int rc = LK_OK;
    sqlite3_stmt *st = lk__stmt(cat, ST_GET_IMAGE);
    if (!st) {
        rc = lk__db_err(cat, err, "prepare get image");
    } else {
        sqlite3_bind_int64(st, 1, image_id);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW)
            rc = read_image(st, out) ? lk_err_set(err, LK_ERR_NOMEM, "out of memory") : LK_OK;
        else if (s == SQLITE_DONE)
            rc = lk_err_set(err, LK_ERR_NOT_FOUND, "no image with id %lld", (long long)image_id);
        else
            rc = lk__db_err(cat, err, "get image");
        sqlite3_reset(st);
    }
    db_unlock(cat);
    return rc;
}

int lk_catalog_foreach_image(struct lk_catalog *cat, lk_image_fn fn, void *ud, struct lk_err *err)
{
    if (!cat || !fn)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and callback required");
    db_lock(cat);
    sqlite3_stmt *st;
    int rc = LK_OK;
    if (sqlite3_prepare_v2(cat->db,
                           "SELECT " IMAGE_COLS
                           " FROM images i JOIN products p USING(product_id) ORDER BY i.image_id",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "iterate images");
        goto out;
    }
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct lk_catalog_image im;
        if (read_image(st, &im)) {
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
            break;
        }
        rc = fn(&im, ud);
        lk_catalog_image_clear(&im);
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = lk__db_err(cat, err, "iterate images");
    sqlite3_finalize(st);
out:
    db_unlock(cat);
    return rc;
}

/* ==== Counts, categories, events ======================================== */

int lk_catalog_counts(struct lk_catalog *cat, struct lk_catalog_counts *out, struct lk_err *err)
{
    if (!cat || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and out required");
    memset(out, 0, sizeof *out);
    db_lock(cat);
    sqlite3_stmt *st;
    int rc = LK_OK;
    if (sqlite3_prepare_v2(cat->db,
                           "SELECT (SELECT count(*) FROM products),"
                           " (SELECT count(*) FROM images),"
                           " (SELECT count(*) FROM products WHERE stock > 0),"
                           " (SELECT count(*) FROM products WHERE flags != 0),"
                           " (SELECT count(*) FROM images WHERE indexed_gen = 0),"
                           " (SELECT count(*) FROM events),"
                           " (SELECT coalesce(max(image_id), 0) FROM images)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "counts");
    } else {
        if (sqlite3_step(st) == SQLITE_ROW) {
            out->products = (uint64_t)sqlite3_column_int64(st, 0);
            out->images = (uint64_t)sqlite3_column_int64(st, 1);
            out->products_in_stock = (uint64_t)sqlite3_column_int64(st, 2);
            out->products_flagged = (uint64_t)sqlite3_column_int64(st, 3);
            out->images_unindexed = (uint64_t)sqlite3_column_int64(st, 4);
            out->events = (uint64_t)sqlite3_column_int64(st, 5);
            out->max_image_id = sqlite3_column_int64(st, 6);
        } else {
            rc = lk__db_err(cat, err, "counts");
        }
        sqlite3_finalize(st);
    }
    db_unlock(cat);
    return rc;
}

void lk_category_counts_free(struct lk_category_count *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        free(a[i].path);
    free(a);
}

static int cmp_cat(const void *a, const void *b)
{
    return strcmp(((const struct lk_category_count *)a)->path,
                  ((const struct lk_category_count *)b)->path);
}

int lk_catalog_categories(struct lk_catalog *cat, struct lk_category_count **out, size_t *n,
                          struct lk_err *err)
{
    if (!cat || !out || !n)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog, out and n required");
    *out = NULL;
    *n = 0;
    struct lk_category_count *a = NULL;
    size_t len = 0, cap = 0;
    int rc = LK_OK;
    db_lock(cat);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cat->db,
                           "SELECT category, count(*) FROM products WHERE category != '' "
                           "GROUP BY category",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = lk__db_err(cat, err, "categories");
        goto out;
    }
    /* Emit one entry per prefix of each path; merge duplicates after sorting. */
    while (rc == LK_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        uint64_t cnt = (uint64_t)sqlite3_column_int64(st, 1);
        size_t plen = strlen(path);
        unsigned depth = 0;
        for (size_t i = 0; i <= plen && rc == LK_OK; i++) {
            if (i < plen && path[i] != '/')
                continue;
            depth++;
            if (len == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct lk_category_count *na = realloc(a, nc * sizeof *a);
                if (!na) {
                    rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
                    break;
                }
                a = na;
                cap = nc;
            }
            a[len].path = strndup(path, i);
            if (!a[len].path) {
                rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
                break;
            }
            a[len].depth = depth;
            a[len].products = cnt;
            a[len].direct = i == plen ? cnt : 0;
            len++;
        }
    }
    sqlite3_finalize(st);
out:
    db_unlock(cat);
    if (rc) {
        lk_category_counts_free(a, len);
        return rc;
    }
    if (len)
        qsort(a, len, sizeof *a, cmp_cat);
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (w && !strcmp(a[w - 1].path, a[i].path)) {
            a[w - 1].products += a[i].products;
            a[w - 1].direct += a[i].direct;
            free(a[i].path);
        } else {
            a[w++] = a[i];
        }
    }
    *out = a;
    *n = w;
    return LK_OK;
}

int lk_catalog_add_event(struct lk_catalog *cat, const char *search_id, const char *sku,
                         const char *type, int64_t ts, struct lk_err *err)
{
    if (!cat)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog is NULL");
    if (!search_id || !*search_id || strlen(search_id) > 64)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "search_id must be 1..64 characters");
    for (const char *p = search_id; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-') || (unsigned char)*p > 0x7f)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "search_id has a bad character");
    int rc = lk__sku_check(sku, err);
    if (rc)
        return rc;
    if (!type || (strcmp(type, "view") && strcmp(type, "add_to_cart") && strcmp(type, "purchase")))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "event type must be view, add_to_cart or purchase");
    if (ts <= 0)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "timestamp must be positive epoch seconds");
    db_lock(cat);
    rc = tx_begin(cat, err);
    if (!rc) {
        sqlite3_stmt *st = lk__stmt(cat, ST_ADD_EVENT);
        if (!st) {
            rc = lk__db_err(cat, err, "prepare event");
        } else {
            sqlite3_bind_text(st, 1, search_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, sku, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, ts);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = lk__db_err(cat, err, "add event");
            sqlite3_reset(st);
        }
        rc = tx_end(cat, rc, err);
    }
    db_unlock(cat);
    return rc;
}
