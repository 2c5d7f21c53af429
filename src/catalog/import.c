/*
 * import.c — catalog import from CSV (RFC 4180, via libcsv) and JSON Lines
 * (via cJSON), validated row by row, written in one transaction.
 *
 * Two phases.  (1) Read: every record becomes a `raw_row` of column strings
 * (both formats share one validator), is validated, and is merged into an
 * in-memory `pend` product keyed by SKU (a repeated SKU adds images; a field
 * it repeats must match, an empty one inherits).  Bad records are counted and
 * listed with the physical line where the record STARTS, then skipped.
 * (2) Write: unless strict mode saw a bad row, all pending products are
 * upserted inside one BEGIN IMMEDIATE … COMMIT, then the filter snapshot is
 * reloaded — readers see the catalog before or after the import, never half.
 *
 * Line numbers with libcsv: the file is fed to csv_parse one physical line at
 * a time (getline), so the line counter is exact even when a quoted field
 * spans lines.  A record starts on the first non-blank line fed after the
 * previous record's end callback.  Strict libcsv mode (CSV_STRICT) reports
 * malformed quoting; we then reset the parser, report the record and resume
 * at the next line.  Lines starting with '#' before the header are comments
 * (the demo catalog documents itself that way).
 *
 * Images are checked without decoding: the path must stay inside the images
 * directory (no "..", not absolute, and realpath() must not leave it through
 * a symlink), the file must be a readable regular file, and its magic bytes
 * and header must be PNG (IHDR) or JPEG (SOFn) with sane dimensions (other
 * formats are named via the image module's lk_image_sniff).  The
 * file's SHA-1 is stored so unchanged images keep their vectors and exact
 * duplicate photos can be reported.  Full decoding is the index build's job,
 * or the importer's with opts.decode_images (lk_image_decode per image).
 */
#include <cjson/cJSON.h>
#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lookalike/image.h"
#include "pcatalog.h"

#define MAX_RECORD_BYTES (1u << 20)  /* one CSV record / JSON line; bounds memory on hostile input */
#define MAX_FIELDS 1024              /* columns per record */
#define MAX_IMAGE_BYTES (32u << 20)  /* same default as lk_decode_opts.max_bytes */
#define MAX_IMAGE_SIDE 16384u        /* lk_decode_opts defaults */
#define MAX_IMAGE_PIXELS 50000000ull
#define MAX_ATTRS_BYTES 65536

enum col { C_SKU, C_TITLE, C_CATEGORY, C_PRICE, C_CURRENCY, C_STOCK, C_REGIONS, C_FLAGS,
           C_IMAGE, C_MARGIN, NCOL };
static const char *const col_names[NCOL] = {"sku", "title", "category", "price", "currency",
                                            "stock", "regions", "flags", "image", "margin_tier"};

static const char *const reason_names[LK_IMPORT_REASON_COUNT] = {
    "syntax", "missing_sku", "bad_sku", "bad_price", "bad_currency", "bad_stock", "bad_flag",
    "bad_region", "bad_category", "bad_field", "image_path", "image_missing", "image_format",
    "duplicate_sku"};

const char *lk_import_reason_str(int r)
{
    return r >= 0 && r < LK_IMPORT_REASON_COUNT ? reason_names[r] : "unknown";
}

void lk_import_opts_default(struct lk_import_opts *o)
{
    memset(o, 0, sizeof *o);
    o->default_currency = "USD";
    o->check_images = 1;
    o->max_issues = 1000;
}

void lk_import_report_free(struct lk_import_report *r)
{
    if (!r)
        return;
    free(r->issues);
    memset(r, 0, sizeof *r);
}

/* ==== Importer state ==================================================== */

struct img_rec {
    char *path;
    uint32_t w, h;
    char sha1[41];
};

struct pend {
    char *sku, *title, *category, *regions;
    int64_t price, stock;
    char currency[4];
    uint32_t flags;
    int32_t margin;
    unsigned provided;   /* bit per enum col */
    cJSON *attrs;        /* object or NULL */
    uint64_t line;       /* first line */
    struct img_rec *imgs;
    size_t nimg, capimg;
};

/* One record, format-independent.  v[c] == NULL or "" means absent. */
struct raw_row {
    uint64_t line;
    const char *v[NCOL];
    int price_is_num;    /* JSONL: price given as a number */
    double price_num;
    cJSON *attrs;        /* borrowed */
};

struct importer {
    struct lk_catalog *cat;
    struct lk_import_opts o;
    struct lk_import_report *rep;
    char images_real[PATH_MAX];
    int has_images_dir;
    int images_fd;       /* O_PATH fd of images_real for openat2, -1 if none */
    int no_openat2;      /* kernel without openat2: fall back to realpath() */
    int has_image_col;
    struct pend *p;
    size_t np, capp;
    uint32_t *h;         /* SKU hash: slot -> pend index + 1 */
    size_t hcap;
    int fatal;           /* LK_ERR_* that stops the import */
    struct lk_err *err;
    /* CSV */
    struct csv_parser csv;
    char **f;
    size_t nf, capf;
    int field_bad;       /* NUL byte or too many fields in this record */
    uint64_t rec_line;
    int header_done;
    size_t ncols;
    int *colmap;         /* header position -> enum col, or -1 = attribute */
    char **colname;      /* header names (attributes) */
};

static int add_issue(struct importer *im, uint64_t line, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int add_issue(struct importer *im, uint64_t line, int reason, const char *fmt, ...)
{
    struct lk_import_report *r = im->rep;
    r->rows_skipped++;
    r->skipped_by_reason[reason]++;
    if (r->n_issues >= im->o.max_issues) {
        r->issues_dropped++;
        return 0;
    }
    if (!(r->n_issues & (r->n_issues + 1)) || !r->issues) {
        /* grow at 0,1,3,7,...: capacity n_issues*2+1 */
        size_t cap = r->n_issues * 2 + 1;
        if (cap > im->o.max_issues)
            cap = im->o.max_issues;
        struct lk_import_issue *ni = realloc(r->issues, cap * sizeof *ni);
        if (!ni) {
            r->issues_dropped++;
            return 0;
        }
        r->issues = ni;
    }
    struct lk_import_issue *is = &r->issues[r->n_issues++];
    is->line = line;
    is->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->msg, sizeof is->msg, fmt, ap);
    va_end(ap);
    return 0;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct pend *find_pend(struct importer *im, const char *sku, size_t *slot)
{
    if (!im->hcap)
        return NULL;
    size_t j = str_hash(sku) & (im->hcap - 1);
    while (im->h[j]) {
        struct pend *p = &im->p[im->h[j] - 1];
        if (!strcmp(p->sku, sku))
            return p;
        j = (j + 1) & (im->hcap - 1);
    }
    if (slot)
        *slot = j;
    return NULL;
}

static int hash_grow(struct importer *im)
{
    size_t cap = im->hcap ? im->hcap * 2 : 1024;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return -1;
    for (size_t i = 0; i < im->np; i++) {
        size_t j = str_hash(im->p[i].sku) & (cap - 1);
        while (h[j])
            j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i + 1;
    }
    free(im->h);
    im->h = h;
    im->hcap = cap;
    return 0;
}

static void pend_free(struct pend *p)
{
    free(p->sku);
    free(p->title);
    free(p->category);
    free(p->regions);
    cJSON_Delete(p->attrs);
    for (size_t i = 0; i < p->nimg; i++)
        free(p->imgs[i].path);
    free(p->imgs);
}

/* ==== Value parsers ===================================================== */

static int parse_int(const char *s, int64_t max, int64_t *out)
{
    if (!*s)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        if (v > (max - (*p - '0')) / 10)
            return -2;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

static int parse_flags(const char *s, uint32_t *out, char *bad, size_t badn)
{
    uint32_t f = 0;
    const char *p = s;
    while (*p) {
        while (*p == '|' || *p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *b = p;
        while (*p && *p != '|' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - b);
        if (n == 10 && !strncasecmp(b, "restricted", n))
            f |= LK_FLAG_RESTRICTED;
        else if (n == 14 && (!strncasecmp(b, "age_restricted", n) || !strncasecmp(b, "age-restricted", n)))
            f |= LK_FLAG_AGE_RESTRICTED;
        else if (n == 7 && !strncasecmp(b, "retired", n))
            f |= LK_FLAG_RETIRED;
        else {
            snprintf(bad, badn, "%.*s", (int)(n > 40 ? 40 : n), b);
            return -1;
        }
    }
    *out = f;
    return 0;
}

/* ==== Image checks ====================================================== */

static int sniff_jpeg(const uint8_t *d, size_t n, uint32_t *w, uint32_t *h)
{
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xFF)
            return -1;
        while (i + 1 < n && d[i + 1] == 0xFF)
            i++;
        if (i + 2 > n)
            return -1;
        uint8_t m = d[i + 1];
        i += 2;
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7))
            continue;
        if (m == 0xD9 || m == 0xDA)
            return -1; /* scan or end before any frame header */
        if (i + 2 > n)
            return -1;
        size_t len = (size_t)d[i] << 8 | d[i + 1];
        if (len < 2)
            return -1;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (len < 7 || i + 7 > n)
                return -1;
            *h = (uint32_t)d[i + 3] << 8 | d[i + 4];
            *w = (uint32_t)d[i + 5] << 8 | d[i + 6];
            return 0;
        }
        i += len;
    }
    return -1;
}

/* Open `rel` inside the images directory, refusing any path that resolves
 * outside it (.., absolute, or a symlink leading out).  openat2 with
 * RESOLVE_BENEATH lets the kernel enforce this without a race and costs one
 * syscall; on kernels before 5.6 (and for absolute symlinks, which
 * RESOLVE_BENEATH always refuses) we fall back to realpath() + prefix check.
 * Returns an fd, or -(reason) with `why` filled. */
static int open_beneath(struct importer *im, const char *rel, char *why, size_t whyn)
{
    if (!im->no_openat2 && im->images_fd >= 0) {
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_BENEATH};
        long fd = syscall(SYS_openat2, im->images_fd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOSYS || errno == EPERM) {
            im->no_openat2 = 1;
        } else if (errno != EXDEV) {
            snprintf(why, whyn, "image %.80s: %s", rel, strerror(errno));
            return -LK_IMPORT_IMAGE_MISSING;
        }
        /* EXDEV: the path leaves the directory — or is an ABSOLUTE symlink,
         * which RESOLVE_BENEATH refuses even when it points back inside.
         * Let the realpath check below decide. */
    }
    char full[PATH_MAX + LK_IMAGE_PATH_MAX + 2], real[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", im->images_real, rel);
    if (!realpath(full, real)) {
        snprintf(why, whyn, "image %.80s: %s", rel, strerror(errno));
        return -LK_IMPORT_IMAGE_MISSING;
    }
    size_t dl = strlen(im->images_real);
    if (strncmp(real, im->images_real, dl) != 0 || (real[dl] != '/' && dl > 1)) {
        snprintf(why, whyn, "image %.80s resolves outside the images directory", rel);
        return -LK_IMPORT_IMAGE_PATH;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whyn, "image %.80s: %s", rel, strerror(errno));
        return -LK_IMPORT_IMAGE_MISSING;
    }
    return fd;
}

/* Returns -1 when fine, else the lk_import_reason with `why` filled. */
static int check_image(struct importer *im, const char *rel, struct img_rec *out, char *why,
                       size_t whyn)
{
    struct lk_err e = {0};
    if (lk__image_path_check(rel, &e)) {
        snprintf(why, whyn, "%.150s", e.msg);
        return LK_IMPORT_IMAGE_PATH;
    }
    out->w = out->h = 0;
    out->sha1[0] = '\0';
    if (!im->o.check_images)
        return -1;
    if (!im->has_images_dir) {
        snprintf(why, whyn, "image %.80s: no images directory given", rel);
        return LK_IMPORT_IMAGE_MISSING;
    }
    int fd = open_beneath(im, rel, why, whyn);
    if (fd < 0)
        return -fd;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        snprintf(why, whyn, "image %.80s is not a regular file", rel);
        return LK_IMPORT_IMAGE_MISSING;
    }
    if (sb.st_size == 0 || (uint64_t)sb.st_size > MAX_IMAGE_BYTES) {
        close(fd);
        snprintf(why, whyn, "image %.80s: %s", rel,
                 sb.st_size == 0 ? "empty file" : "larger than 32 MiB");
        return LK_IMPORT_IMAGE_FORMAT;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *d = malloc(n);
    if (!d) {
        close(fd);
        snprintf(why, whyn, "image %.80s: out of memory", rel);
        return LK_IMPORT_IMAGE_MISSING;
    }
    while (got < n) {
        ssize_t r = read(fd, d + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(d);
        snprintf(why, whyn, "image %.80s: read failed", rel);
        return LK_IMPORT_IMAGE_MISSING;
    }
    int reason = -1;
    uint32_t w = 0, h = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(d, png_sig, 8)) {
        if (n < 24 || memcmp(d + 12, "IHDR", 4)) {
            snprintf(why, whyn, "image %.80s: PNG without IHDR header", rel);
            reason = LK_IMPORT_IMAGE_FORMAT;
        } else {
            w = (uint32_t)d[16] << 24 | (uint32_t)d[17] << 16 | (uint32_t)d[18] << 8 | d[19];
            h = (uint32_t)d[20] << 24 | (uint32_t)d[21] << 16 | (uint32_t)d[22] << 8 | d[23];
        }
    } else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
        if (sniff_jpeg(d, n, &w, &h)) {
            snprintf(why, whyn, "image %.80s: JPEG without a frame header", rel);
            reason = LK_IMPORT_IMAGE_FORMAT;
        }
    } else {
        enum lk_image_format f = lk_image_sniff(d, n);
        snprintf(why, whyn, "image %.80s: unsupported format (%s); PNG and JPEG are supported", rel,
                 f == LK_FORMAT_UNKNOWN ? "unrecognised" : lk_image_format_name(f));
        reason = LK_IMPORT_IMAGE_FORMAT;
    }
    if (reason < 0 && (w == 0 || h == 0 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE ||
                       (uint64_t)w * h > MAX_IMAGE_PIXELS)) {
        snprintf(why, whyn, "image %.80s: dimensions %ux%u out of range", rel, w, h);
        reason = LK_IMPORT_IMAGE_FORMAT;
    }
    if (reason < 0 && im->o.decode_images) {
        /* Full decode through the image module: catches corrupt or truncated
         * streams behind a valid header, at the cost of one decode. */
        struct lk_image img = {0};
        struct lk_err e = {0};
        if (lk_image_decode(d, n, NULL, &img, NULL, &e) != LK_OK) {
            snprintf(why, whyn, "image %.80s: %.60s", rel, e.msg);
            reason = LK_IMPORT_IMAGE_FORMAT;
        }
        lk_image_free(&img);
    }
    if (reason < 0) {
        out->w = w;
        out->h = h;
        lk__sha1_hex(d, n, out->sha1);
    }
    free(d);
    return reason;
}

/* ==== Row validation and merging ======================================== */

static int present(const char *s) { return s && *s; }

static int streq(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

/* Split a '|' list into trimmed items (in place in `buf`). */
static size_t split_list(char *buf, char **items, size_t max)
{
    size_t n = 0;
    char *p = buf;
    while (*p && n < max) {
        char *e = strchr(p, '|');
        if (e)
            *e = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *t = p + strlen(p);
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            *--t = '\0';
        if (*p)
            items[n++] = p;
        if (!e)
            break;
        p = e + 1;
    }
    return n;
}

#define MAX_IMAGES_PER_ROW 64

static void process_row(struct importer *im, const struct raw_row *r)
{
    struct lk_err e = {0};
    char why[160];
    im->rep->rows_read++;
    uint64_t line = r->line;
    const char *sku = r->v[C_SKU];
    if (!present(sku)) {
        add_issue(im, line, LK_IMPORT_MISSING_SKU, "missing SKU");
        return;
    }
    if (lk__sku_check(sku, &e)) {
        add_issue(im, line, LK_IMPORT_BAD_SKU, "%.150s", e.msg);
        return;
    }
    struct pend *old = find_pend(im, sku, NULL);
    unsigned prov = 0;
    for (int c = 0; c < NCOL; c++)
        if (present(r->v[c]))
            prov |= 1u << c;
    if (r->price_is_num)
        prov |= 1u << C_PRICE;

    /* Title */
    const char *title = r->v[C_TITLE];
    if (present(title) && strlen(title) > LK_TITLE_MAX) {
        add_issue(im, line, LK_IMPORT_BAD_FIELD, "title longer than %d bytes", LK_TITLE_MAX);
        return;
    }
    /* Category */
    char category[LK_CATEGORY_MAX + 1] = "";
    if (present(r->v[C_CATEGORY]) &&
        lk_category_normalise(r->v[C_CATEGORY], category, sizeof category, &e)) {
        add_issue(im, line, LK_IMPORT_BAD_CATEGORY, "%.150s", e.msg);
        return;
    }
    /* Currency (needed to parse the price) */
    char currency[4];
    const char *cur = present(r->v[C_CURRENCY]) ? r->v[C_CURRENCY]
                      : old && (old->provided & (1u << C_CURRENCY)) ? old->currency
                      : im->o.default_currency;
    if (lk_currency_exponent(cur) < 0) {
        add_issue(im, line, LK_IMPORT_BAD_CURRENCY, "currency \"%.20s\" is not an ISO 4217 code",
                  cur);
        return;
    }
    for (int i = 0; i < 3; i++)
        currency[i] = (char)toupper((unsigned char)cur[i]);
    currency[3] = '\0';
    /* Price */
    int64_t price = 0;
    if (r->price_is_num) {
        int ex = lk_currency_exponent(currency);
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*f", ex, r->price_num);
        if (!isfinite(r->price_num) || r->price_num < 0 || strtod(tmp, NULL) != r->price_num ||
            lk_parse_price(tmp, currency, &price, &e)) {
            add_issue(im, line, LK_IMPORT_BAD_PRICE,
                      "price %.17g is not a non-negative amount with at most %d decimals "
                      "(write it as a string)", r->price_num, ex);
            return;
        }
    } else if (present(r->v[C_PRICE]) && lk_parse_price(r->v[C_PRICE], currency, &price, &e)) {
        add_issue(im, line, LK_IMPORT_BAD_PRICE, "%.150s", e.msg);
        return;
    }
    /* Stock */
    int64_t stock = 0;
    if (present(r->v[C_STOCK])) {
        int pr = parse_int(r->v[C_STOCK], LK_STOCK_MAX, &stock);
        if (pr) {
            add_issue(im, line, LK_IMPORT_BAD_STOCK,
                      pr == -2 ? "stock \"%.40s\" out of range"
                               : "stock \"%.40s\" is not a non-negative integer",
                      r->v[C_STOCK]);
            return;
        }
    }
    /* Regions */
    char regions[LK_CATALOG_MAX_REGIONS * 9 + 1] = "";
    if (present(r->v[C_REGIONS])) {
        uint64_t mask;
        int rc = lk__regions_normalise(r->v[C_REGIONS], regions, sizeof regions, &e);
        if (!rc) {
            pthread_rwlock_wrlock(&im->cat->snap_lock);
            rc = lk__snapshot_region_mask(&im->cat->snap, regions, &mask, &e);
            pthread_rwlock_unlock(&im->cat->snap_lock);
        }
        if (rc) {
            add_issue(im, line, LK_IMPORT_BAD_REGION, "%.150s", e.msg);
            return;
        }
    }
    /* Flags */
    uint32_t flags = 0;
    if (present(r->v[C_FLAGS])) {
        char bad[48];
        if (parse_flags(r->v[C_FLAGS], &flags, bad, sizeof bad)) {
            add_issue(im, line, LK_IMPORT_BAD_FLAG,
                      "unknown flag \"%s\" (restricted, age_restricted, retired)", bad);
            return;
        }
    }
    /* Margin tier */
    int64_t margin = 0;
    if (present(r->v[C_MARGIN]) && parse_int(r->v[C_MARGIN], LK_MARGIN_TIER_MAX, &margin)) {
        add_issue(im, line, LK_IMPORT_BAD_FIELD, "margin_tier \"%.20s\" not an integer in %d..%d",
                  r->v[C_MARGIN], LK_MARGIN_TIER_MIN, LK_MARGIN_TIER_MAX);
        return;
    }
    /* Attributes size */
    if (r->attrs && cJSON_GetArraySize(r->attrs) > 0) {
        char *s = cJSON_PrintUnformatted(r->attrs);
        size_t n = s ? strlen(s) : SIZE_MAX;
        free(s);
        if (n > MAX_ATTRS_BYTES) {
            add_issue(im, line, LK_IMPORT_BAD_FIELD, "attributes larger than 64 KiB");
            return;
        }
    }
    /* Images */
    struct img_rec imgs[MAX_IMAGES_PER_ROW];
    char *items[MAX_IMAGES_PER_ROW];
    size_t nimg = 0;
    char *imgbuf = NULL;
    if (present(r->v[C_IMAGE])) {
        imgbuf = strdup(r->v[C_IMAGE]);
        if (!imgbuf) {
            im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
            return;
        }
        nimg = split_list(imgbuf, items, MAX_IMAGES_PER_ROW);
        for (size_t i = 0; i < nimg; i++) {
            int reason = check_image(im, items[i], &imgs[i], why, sizeof why);
            if (reason >= 0) {
                add_issue(im, line, reason, "%.150s", why);
                free(imgbuf);
                return;
            }
            imgs[i].path = items[i];
        }
    }

    struct pend *p = old;
    if (old) {
        /* Repeated SKU: every field this row gives must agree with what the
         * earlier rows gave; fields it leaves empty are inherited. */
        const char *conflict = NULL;
        unsigned both = prov & old->provided;
        if ((both & (1u << C_TITLE)) && !streq(title, old->title))
            conflict = "title";
        else if ((both & (1u << C_CATEGORY)) && !streq(category, old->category))
            conflict = "category";
        else if ((both & (1u << C_PRICE)) && (price != old->price || strcmp(currency, old->currency)))
            conflict = "price";
        else if ((both & (1u << C_CURRENCY)) && strcmp(currency, old->currency))
            conflict = "currency";
        else if ((both & (1u << C_STOCK)) && stock != old->stock)
            conflict = "stock";
        else if ((both & (1u << C_REGIONS)) && !streq(regions, old->regions))
            conflict = "regions";
        else if ((both & (1u << C_FLAGS)) && flags != old->flags)
            conflict = "flags";
        else if ((both & (1u << C_MARGIN)) && margin != old->margin)
            conflict = "margin_tier";
        const cJSON *a;
        if (!conflict && r->attrs && old->attrs)
            cJSON_ArrayForEach(a, r->attrs)
            {
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(old->attrs, a->string);
                if (b && !cJSON_Compare(a, b, 1)) {
                    conflict = "attributes";
                    break;
                }
            }
        if (conflict) {
            add_issue(im, line, LK_IMPORT_DUPLICATE_SKU,
                      "duplicate SKU %.60s: %s differs from line %llu", sku, conflict,
                      (unsigned long long)old->line);
            free(imgbuf);
            return;
        }
    } else {
        if (!(prov & (1u << C_PRICE))) {
            add_issue(im, line, LK_IMPORT_BAD_PRICE, "missing price");
            free(imgbuf);
            return;
        }
        if (!(prov & (1u << C_STOCK))) {
            add_issue(im, line, LK_IMPORT_BAD_STOCK, "missing stock");
            free(imgbuf);
            return;
        }
        if ((im->np + 1) * 2 > im->hcap && hash_grow(im)) {
            im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
            free(imgbuf);
            return;
        }
        if (im->np == im->capp) {
            size_t nc = im->capp ? im->capp * 2 : 256;
            struct pend *np = realloc(im->p, nc * sizeof *np);
            if (!np) {
                im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
                free(imgbuf);
                return;
            }
            im->p = np;
            im->capp = nc;
        }
        size_t slot = 0; /* set by find_pend: the SKU is new and the table non-empty */
        find_pend(im, sku, &slot);
        p = &im->p[im->np];
        memset(p, 0, sizeof *p);
        p->sku = strdup(sku);
        p->line = line;
        if (!p->sku) {
            im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
            free(imgbuf);
            return;
        }
        im->h[slot] = (uint32_t)++im->np;
    }
    /* Apply (new product, or fill fields the earlier rows left empty). */
    unsigned add = prov & ~p->provided;
    int oom = 0;
    if (add & (1u << C_TITLE))
        oom |= !(p->title = strdup(title));
    if (add & (1u << C_CATEGORY))
        oom |= !(p->category = strdup(category));
    if (add & (1u << C_REGIONS))
        oom |= !(p->regions = strdup(regions));
    if (add & ((1u << C_PRICE) | (1u << C_CURRENCY))) {
        p->price = price;
        memcpy(p->currency, currency, 4);
    }
    if (!p->currency[0])
        memcpy(p->currency, currency, 4);
    if (add & (1u << C_STOCK))
        p->stock = stock;
    if (add & (1u << C_FLAGS))
        p->flags = flags;
    if (add & (1u << C_MARGIN))
        p->margin = (int32_t)margin;
    p->provided |= prov;
    if (r->attrs && cJSON_GetArraySize(r->attrs) > 0) {
        if (!p->attrs)
            oom |= !(p->attrs = cJSON_CreateObject());
        const cJSON *a;
        cJSON_ArrayForEach(a, r->attrs)
        {
            if (p->attrs && !cJSON_GetObjectItemCaseSensitive(p->attrs, a->string)) {
                cJSON *d = cJSON_Duplicate(a, 1);
                oom |= !d || !cJSON_AddItemToObject(p->attrs, a->string, d); /* p->attrs owns d */
            }
        }
    }
    for (size_t i = 0; i < nimg && !oom; i++) {
        int dup = 0;
        for (size_t j = 0; j < p->nimg; j++)
            if (!strcmp(p->imgs[j].path, imgs[i].path))
                dup = 1;
        if (dup)
            continue;
        if (p->nimg == p->capimg) {
            size_t nc = p->capimg ? p->capimg * 2 : 2;
            struct img_rec *ni = realloc(p->imgs, nc * sizeof *ni);
            if (!ni) {
                oom = 1;
                break;
            }
            p->imgs = ni;
            p->capimg = nc;
        }
        p->imgs[p->nimg] = imgs[i];
        if (!(p->imgs[p->nimg].path = strdup(imgs[i].path)))
            oom = 1;
        else
            p->nimg++;
    }
    free(imgbuf);
    if (oom) {
        im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
        return;
    }
    im->rep->rows_imported++;
}

/* ==== CSV =============================================================== */

static void csv_reset_fields(struct importer *im)
{
    for (size_t i = 0; i < im->nf; i++)
        free(im->f[i]);
    im->nf = 0;
    im->field_bad = 0;
}

static void on_field(void *s, size_t len, void *ud)
{
    struct importer *im = ud;
    if (im->fatal)
        return;
    if (im->nf >= MAX_FIELDS) {
        im->field_bad = 2;
        return;
    }
    if (im->nf == im->capf) {
        size_t nc = im->capf ? im->capf * 2 : 16;
        char **nf = realloc(im->f, nc * sizeof *nf);
        if (!nf) {
            im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
            return;
        }
        im->f = nf;
        im->capf = nc;
    }
    if (s && memchr(s, '\0', len))
        im->field_bad = 1;
    char *d = malloc(len + 1);
    if (!d) {
        im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
        return;
    }
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    im->f[im->nf++] = d;
}

static void csv_header(struct importer *im)
{
    im->ncols = im->nf;
    im->colmap = calloc(im->nf ? im->nf : 1, sizeof *im->colmap);
    im->colname = calloc(im->nf ? im->nf : 1, sizeof *im->colname);
    if (!im->colmap || !im->colname) {
        im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
        return;
    }
    int seen[NCOL] = {0};
    for (size_t i = 0; i < im->nf; i++) {
        char *name = im->f[i];
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (!*name) {
            im->fatal = lk_err_set(im->err, LK_ERR_PARSE, "line %llu: header column %zu is empty",
                                   (unsigned long long)im->rec_line, i + 1);
            return;
        }
        int c = -1;
        for (int k = 0; k < NCOL; k++)
            if (!strcmp(name, col_names[k]))
                c = k;
        if (!strcmp(name, "images"))
            c = C_IMAGE;
        if (c >= 0) {
            if (seen[c]++) {
                im->fatal = lk_err_set(im->err, LK_ERR_PARSE, "line %llu: duplicate column %s",
                                       (unsigned long long)im->rec_line, col_names[c]);
                return;
            }
        } else {
            for (size_t j = 0; j < i; j++)
                if (im->colmap[j] < 0 && !strcmp(im->colname[j], name)) {
                    im->fatal = lk_err_set(im->err, LK_ERR_PARSE, "line %llu: duplicate column %s",
                                           (unsigned long long)im->rec_line, name);
                    return;
                }
        }
        im->colmap[i] = c;
        im->colname[i] = name;
        im->f[i] = NULL; /* ownership moves to colname */
    }
    if (!seen[C_SKU]) {
        im->fatal = lk_err_set(im->err, LK_ERR_PARSE, "header (line %llu) has no sku column",
                               (unsigned long long)im->rec_line);
        return;
    }
    im->has_image_col = seen[C_IMAGE] != 0;
    im->header_done = 1;
}

static void on_record(int term, void *ud)
{
    (void)term;
    struct importer *im = ud;
    if (im->fatal)
        return;
    if (!im->header_done) {
        if (im->field_bad) {
            im->fatal = lk_err_set(im->err, LK_ERR_PARSE, "line %llu: unusable header",
                                   (unsigned long long)im->rec_line);
            return;
        }
        csv_header(im);
        csv_reset_fields(im);
        return;
    }
    if (im->field_bad || im->nf != im->ncols) {
        im->rep->rows_read++;
        if (im->field_bad == 1)
            add_issue(im, im->rec_line, LK_IMPORT_SYNTAX, "NUL byte in a field");
        else
            add_issue(im, im->rec_line, LK_IMPORT_SYNTAX, "row has %zu fields, header has %zu",
                      im->field_bad ? (size_t)MAX_FIELDS : im->nf, im->ncols);
        csv_reset_fields(im);
        return;
    }
    struct raw_row r = {.line = im->rec_line};
    cJSON *attrs = NULL;
    for (size_t i = 0; i < im->nf; i++) {
        if (im->colmap[i] >= 0) {
            r.v[im->colmap[i]] = im->f[i];
        } else if (im->f[i][0]) {
            if (!attrs && !(attrs = cJSON_CreateObject())) {
                im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
                break;
            }
            if (!cJSON_AddStringToObject(attrs, im->colname[i], im->f[i])) {
                im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
                break;
            }
        }
    }
    r.attrs = attrs;
    if (!im->fatal)
        process_row(im, &r);
    cJSON_Delete(attrs);
    csv_reset_fields(im);
}

static int blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

#define CSV_OPTS (CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL)

static void import_csv(struct importer *im, FILE *fp)
{
    if (csv_init(&im->csv, CSV_OPTS)) {
        im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "csv_init failed");
        return;
    }
    char *buf = NULL;
    size_t cap = 0, rec_bytes = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int in_record = 0;  /* a record has started and its end callback not yet fired */
    uint64_t records_before;
    while (!im->fatal && (n = getline(&buf, &cap, fp)) > 0) {
        lineno++;
        const char *s = buf;
        size_t len = (size_t)n;
        if (lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3;
            len -= 3;
        }
        if (!in_record) {
            if (blank_line(s, len))
                continue;
            if (!im->header_done && s[0] == '#')
                continue;
            im->rec_line = lineno;
            rec_bytes = 0;
            in_record = 1;
        }
        rec_bytes += len;
        if (rec_bytes > MAX_RECORD_BYTES) {
            im->rep->rows_read++;
            add_issue(im, im->rec_line, LK_IMPORT_SYNTAX, "record longer than %u bytes",
                      MAX_RECORD_BYTES);
            csv_free(&im->csv);
            csv_init(&im->csv, CSV_OPTS);
            csv_reset_fields(im);
            in_record = 0;
            continue;
        }
        /* A record ends inside this line iff the record callback fires; track
         * it by counting records (rows_read + header) around the call. */
        records_before = im->rep->rows_read + (uint64_t)im->header_done;
        size_t done = csv_parse(&im->csv, s, len, on_field, on_record, im);
        if (im->fatal)
            break;
        if (im->rep->rows_read + (uint64_t)im->header_done != records_before)
            in_record = 0;
        if (done != len) {
            if (!im->header_done) {
                im->fatal = lk_err_set(im->err, LK_ERR_PARSE, "line %llu: malformed header (%s)",
                                       (unsigned long long)im->rec_line,
                                       csv_strerror(csv_error(&im->csv)));
                break;
            }
            im->rep->rows_read++;
            add_issue(im, im->rec_line, LK_IMPORT_SYNTAX,
                      "malformed quoting near line %llu (a quote inside an unquoted field, or "
                      "text after a closing quote)", (unsigned long long)lineno);
            csv_free(&im->csv);
            csv_init(&im->csv, CSV_OPTS);
            csv_reset_fields(im);
            in_record = 0;
        }
    }
    if (!im->fatal && ferror(fp))
        im->fatal = lk_err_set(im->err, LK_ERR_IO, "read error: %s", strerror(errno));
    if (!im->fatal) {
        if (csv_fini(&im->csv, on_field, on_record, im) != 0) {
            im->rep->rows_read++;
            add_issue(im, im->rec_line, LK_IMPORT_SYNTAX,
                      "unterminated quoted field (runs to the end of the file)");
        }
    }
    if (!im->fatal && !im->header_done)
        im->fatal = lk_err_set(im->err, LK_ERR_EMPTY, "no header row");
    csv_free(&im->csv);
    csv_reset_fields(im);
    free(buf);
}

/* ==== JSON Lines ======================================================== */

/* Turn a JSON value into the column string used by the shared validator.
 * Arrays of strings become '|' lists; integers print exactly. */
static int json_to_str(const cJSON *v, int list_ok, char **out)
{
    *out = NULL;
    if (cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v))
        return (*out = strdup(v->valuestring)) ? 0 : -2;
    if (cJSON_IsNumber(v)) {
        char tmp[64];
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 9e15)
            snprintf(tmp, sizeof tmp, "%lld", (long long)d);
        else
            snprintf(tmp, sizeof tmp, "%.17g", d);
        return (*out = strdup(tmp)) ? 0 : -2;
    }
    if (list_ok && cJSON_IsArray(v)) {
        struct lk__buf b = {0};
        const cJSON *it;
        int first = 1;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it)) {
                lk__buf_free(&b);
                return -1;
            }
            if ((!first && lk__buf_append(&b, "|", 1)) ||
                lk__buf_append(&b, it->valuestring, strlen(it->valuestring))) {
                lk__buf_free(&b);
                return -2;
            }
            first = 0;
        }
        *out = b.p ? b.p : strdup("");
        return *out ? 0 : -2;
    }
    return -1;
}

static void import_jsonl_line(struct importer *im, const char *s, size_t len, uint64_t line)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    /* cJSON stops after the first value; anything but blanks after it
     * ("{...} {...}" or trailing junk) makes the line invalid. */
    int trailing = o && end && !blank_line(end, len - (size_t)(end - s));
    if (!o || !cJSON_IsObject(o) || trailing) {
        im->rep->rows_read++;
        add_issue(im, line, LK_IMPORT_SYNTAX,
                  !o ? "invalid JSON" : trailing ? "text after the JSON object" : "line is not a JSON object");
        cJSON_Delete(o);
        return;
    }
    struct raw_row r = {.line = line};
    char *own[NCOL] = {0};
    cJSON *attrs = NULL;
    const cJSON *it;
    int bad = 0;
    char badkey[48] = "";
    cJSON_ArrayForEach(it, o)
    {
        if (im->fatal)
            break;
        const char *k = it->string ? it->string : "";
        int c = -1;
        for (int j = 0; j < NCOL; j++)
            if (!strcmp(k, col_names[j]))
                c = j;
        if (!strcmp(k, "images"))
            c = C_IMAGE;
        if (c >= 0) {
            if (own[c]) { /* both image and images, or a repeated key */
                bad = 1;
                snprintf(badkey, sizeof badkey, "%s (repeated)", k);
                break;
            }
            if (c == C_PRICE && cJSON_IsNumber(it)) {
                r.price_is_num = 1;
                r.price_num = it->valuedouble;
                continue;
            }
            int lst = c == C_REGIONS || c == C_FLAGS || c == C_IMAGE;
            int rc = json_to_str(it, lst, &own[c]);
            if (rc == -2) {
                im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
                break;
            }
            if (rc || ((c == C_STOCK || c == C_MARGIN) && cJSON_IsNumber(it) &&
                       it->valuedouble != floor(it->valuedouble))) {
                bad = 1;
                snprintf(badkey, sizeof badkey, "%.40s", k);
                break;
            }
            r.v[c] = own[c];
            continue;
        }
        if (!attrs && !(attrs = cJSON_CreateObject())) {
            im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
            break;
        }
        if (!strcmp(k, "attributes")) {
            if (cJSON_IsNull(it))
                continue;
            if (!cJSON_IsObject(it)) {
                bad = 1;
                snprintf(badkey, sizeof badkey, "attributes");
                break;
            }
            const cJSON *a;
            cJSON_ArrayForEach(a, it)
            {
                cJSON *d = cJSON_Duplicate(a, 1);
                if (!d || !cJSON_AddItemToObject(attrs, a->string, d)) { /* attrs owns d */
                    cJSON_Delete(d);
                    im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
                    break;
                }
            }
        } else if (!cJSON_IsNull(it)) {
            cJSON *d = cJSON_Duplicate(it, 1);
            if (!d || !cJSON_AddItemToObject(attrs, k, d)) {
                cJSON_Delete(d);
                im->fatal = lk_err_set(im->err, LK_ERR_NOMEM, "out of memory");
                break;
            }
        }
    }
    if (!im->fatal) {
        if (bad) {
            im->rep->rows_read++;
            int reason = LK_IMPORT_BAD_FIELD;
            if (!strncmp(badkey, "stock", 5))
                reason = LK_IMPORT_BAD_STOCK;
            else if (!strncmp(badkey, "flags", 5))
                reason = LK_IMPORT_BAD_FLAG;
            else if (!strncmp(badkey, "regions", 7))
                reason = LK_IMPORT_BAD_REGION;
            else if (!strncmp(badkey, "sku", 3))
                reason = LK_IMPORT_BAD_SKU;
            add_issue(im, line, reason, "field \"%s\" has the wrong JSON type", badkey);
        } else {
            r.attrs = attrs;
            process_row(im, &r);
        }
    }
    for (int c = 0; c < NCOL; c++)
        free(own[c]);
    cJSON_Delete(attrs);
    cJSON_Delete(o);
}

static void import_jsonl(struct importer *im, FILE *fp)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    im->has_image_col = 1; /* JSONL: a product without "image" has no images */
    while (!im->fatal && (n = getline(&buf, &cap, fp)) > 0) {
        lineno++;
        const char *s = buf;
        size_t len = (size_t)n;
        if (lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3;
            len -= 3;
        }
        if (blank_line(s, len))
            continue;
        if (len > MAX_RECORD_BYTES) {
            im->rep->rows_read++;
            add_issue(im, lineno, LK_IMPORT_SYNTAX, "line longer than %u bytes", MAX_RECORD_BYTES);
            continue;
        }
        import_jsonl_line(im, s, len, lineno);
    }
    if (!im->fatal && ferror(fp))
        im->fatal = lk_err_set(im->err, LK_ERR_IO, "read error: %s", strerror(errno));
    free(buf);
}

/* ==== Write phase ======================================================= */

static int write_all_tx(struct importer *im);

static int write_all(struct importer *im)
{
    struct lk_catalog *cat = im->cat;
    struct lk_err *err = im->err;
    /* A big transaction overflows SQLite's default 2 MB page cache, which then
     * spills dirty pages to the WAL again and again; give the import 128 MB
     * (allocated only as used) and restore the default afterwards. */
    lk__exec(cat, "PRAGMA cache_size=-131072", NULL);
    int rc = lk__exec(cat, "BEGIN IMMEDIATE", err);
    if (!rc)
        rc = write_all_tx(im);
    lk__exec(cat, "PRAGMA cache_size=-2000", NULL);
    if (rc)
        return rc;
    im->rep->committed = 1;
    /* Whole-catalog change: rebuild the snapshot rather than patch it. */
    return lk__snapshot_reload(cat, err);
}

/* The body of write_all inside BEGIN IMMEDIATE: commits, or rolls back. */
static int write_all_tx(struct importer *im)
{
    struct lk_catalog *cat = im->cat;
    struct lk_err *err = im->err;
    int rc = LK_OK;
    struct lk__norm_product *n = malloc(sizeof *n);
    if (!n) {
        sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < im->np && !rc; i++) {
        struct pend *p = &im->p[i];
        char *attrs = p->attrs ? cJSON_PrintUnformatted(p->attrs) : NULL;
        if (p->attrs && !attrs) {
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
            break;
        }
        struct lk_product prod = {
            .sku = p->sku, .title = p->title, .category = p->category,
            .price_minor = p->price, .stock = p->stock, .regions = p->regions,
            .flags = p->flags, .margin_tier = p->margin, .attributes_json = attrs};
        memcpy(prod.currency, p->currency, 4);
        snprintf(n->category, sizeof n->category, "%s", p->category ? p->category : "");
        snprintf(n->regions, sizeof n->regions, "%s", p->regions ? p->regions : "");
        memcpy(n->currency, p->currency, 4);
        int64_t pid;
        rc = lk__upsert_product_tx(cat, &prod, n, &pid, err);
        free(attrs);
        if (rc)
            break;
        im->rep->products_imported++;
        if (!im->has_image_col)
            continue;
        /* Make the product's image set exactly the file's: keep unchanged
         * paths (and their image ids = vector ids), add new, drop the rest. */
        int64_t *drop = NULL;
        size_t ndrop = 0, capdrop = 0;
        sqlite3_stmt *st = lk__stmt(cat, ST_PRODUCT_IMAGES);
        if (!st) {
            rc = lk__db_err(cat, err, "prepare product images");
            break;
        }
        sqlite3_bind_int64(st, 1, pid);
        while (!rc && sqlite3_step(st) == SQLITE_ROW) {
            const char *path = (const char *)sqlite3_column_text(st, 1);
            int keep = 0;
            for (size_t j = 0; j < p->nimg && !keep; j++)
                keep = !strcmp(p->imgs[j].path, path);
            if (keep)
                continue;
            if (ndrop == capdrop) {
                size_t nc = capdrop ? capdrop * 2 : 8;
                int64_t *nd = realloc(drop, nc * sizeof *nd);
                if (!nd) {
                    rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
                    break;
                }
                drop = nd;
                capdrop = nc;
            }
            drop[ndrop++] = sqlite3_column_int64(st, 0);
        }
        sqlite3_reset(st);
        for (size_t j = 0; j < ndrop && !rc; j++) {
            st = lk__stmt(cat, ST_DELETE_IMAGE);
            sqlite3_bind_int64(st, 1, drop[j]);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = lk__db_err(cat, err, "delete image");
            sqlite3_reset(st);
        }
        free(drop);
        for (size_t j = 0; j < p->nimg && !rc; j++) {
            int64_t iid;
            rc = lk__upsert_image_tx(cat, pid, p->imgs[j].path, p->imgs[j].w, p->imgs[j].h,
                                     p->imgs[j].sha1, &iid, err);
            if (!rc)
                im->rep->images_imported++;
        }
    }
    free(n);
    if (!rc)
        rc = lk__exec(cat, "COMMIT", err);
    if (rc) {
        sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
        im->rep->products_imported = im->rep->images_imported = 0;
        return rc;
    }
    return LK_OK;
}

/* ==== Entry point ======================================================= */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

int lk_catalog_import_file(struct lk_catalog *cat, const char *path,
                           const struct lk_import_opts *opts, struct lk_import_report *rep,
                           struct lk_err *err)
{
    if (!rep)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "import report required");
    memset(rep, 0, sizeof *rep);
    if (!cat || !path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "catalog and path required");
    struct importer *im = calloc(1, sizeof *im);
    if (!im)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    im->cat = cat;
    im->images_fd = -1;
    im->rep = rep;
    im->err = err;
    if (opts)
        im->o = *opts;
    else
        lk_import_opts_default(&im->o);
    if (!im->o.default_currency)
        im->o.default_currency = "USD";
    if (lk_currency_exponent(im->o.default_currency) < 0) {
        free(im);
        return lk_err_set(err, LK_ERR_INVALID_ARG, "default currency is not an ISO 4217 code");
    }
    if (im->o.images_dir && *im->o.images_dir) {
        if (!realpath(im->o.images_dir, im->images_real)) {
            int rc = lk_err_set(err, LK_ERR_IO, "images directory %s: %s", im->o.images_dir,
                                strerror(errno));
            free(im);
            return rc;
        }
        im->has_images_dir = 1;
        im->images_fd = open(im->images_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    enum lk_import_format fmt = im->o.format;
    if (fmt == LK_IMPORT_AUTO)
        fmt = ends_with(path, ".jsonl") || ends_with(path, ".ndjson") ? LK_IMPORT_JSONL
                                                                      : LK_IMPORT_CSV;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int rc = lk_err_set(err, LK_ERR_IO, "open %s: %s", path, strerror(errno));
        free(im);
        return rc;
    }
    /* Hold the connection for the whole import: validation interns region
     * codes in the snapshot and the write phase needs the same handle. */
    pthread_mutex_lock(&cat->db_mu);
    if (fmt == LK_IMPORT_JSONL)
        import_jsonl(im, fp);
    else
        import_csv(im, fp);
    fclose(fp);

    int rc = im->fatal;
    if (!rc && im->o.strict && rep->rows_skipped)
        rc = lk_err_set(err, LK_ERR_PARSE,
                        "strict import: %llu bad row(s), first at line %llu; nothing written",
                        (unsigned long long)rep->rows_skipped,
                        (unsigned long long)(rep->n_issues ? rep->issues[0].line : 0));
    if (!rc)
        rc = write_all(im);
    pthread_mutex_unlock(&cat->db_mu);

    for (size_t i = 0; i < im->np; i++)
        pend_free(&im->p[i]);
    free(im->p);
    free(im->h);
    free(im->f);
    if (im->colname)
        for (size_t i = 0; i < im->ncols; i++)
            free(im->colname[i]);
    free(im->colname);
    free(im->colmap);
    if (im->images_fd >= 0)
        close(im->images_fd);
    free(im);
    return rc;
}
