/*
 * test_store.c — the SQLite catalog store through its public API: open/close
 * and migrations, product CRUD with validation and normalisation, PATCH
 * semantics, images, iteration, counts, category tree, events, value parsers,
 * integrity check on a healthy and on a damaged database, and visibility of
 * writes to a second handle.
 */
#include <fcntl.h>
#include <sqlite3.h>

#include "lookalike/catalog.h"
#include "util.h"

static char *dir;
static struct lk_catalog *cat;

static void setup(void)
{
    dir = tu_tmpdir();
    struct lk_err e = {0};
    char *data = tu_path(dir, "data");
    cr_assert_eq(lk_catalog_open(data, NULL, &cat, &e), LK_OK, "%s", e.msg);
    free(data);
}

static void teardown(void)
{
    lk_catalog_close(cat);
    cat = NULL;
    tu_rm_rf(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct lk_product prod(const char *sku, const char *category, int64_t price, int64_t stock)
{
    struct lk_product p = {0};
    p.sku = (char *)sku;
    p.title = (char *)"A thing";
    p.category = (char *)category;
    p.price_minor = price;
    memcpy(p.currency, "USD", 4);
    p.stock = stock;
    return p;
}

Test(store, open_creates_wal_database_and_close_null_is_noop)
{
    lk_catalog_close(NULL);
    char *db = tu_path(dir, "data/catalog.sqlite");
    cr_assert_eq(access(db, F_OK), 0);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), LK_CATALOG_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(s);
    free(db);
}

Test(store, newer_schema_is_refused)
{
    lk_catalog_close(cat);
    cat = NULL;
    char *db = tu_path(dir, "data/catalog.sqlite");
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(s, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    free(db);
    struct lk_err e = {0};
    char *data = tu_path(dir, "data");
    struct lk_catalog *c2 = NULL;
    cr_assert_eq(lk_catalog_open(data, NULL, &c2, &e), LK_ERR_FORMAT);
    cr_assert_null(c2);
    cr_assert(strstr(e.msg, "newer"), "%s", e.msg);
    free(data);
}

Test(store, missing_dir_without_create_fails)
{
    struct lk_catalog_opts o;
    lk_catalog_opts_default(&o);
    o.create = 0;
    struct lk_err e = {0};
    struct lk_catalog *c2 = NULL;
    char *p = tu_path(dir, "nope");
    cr_assert_neq(lk_catalog_open(p, &o, &c2, &e), LK_OK);
    cr_assert_null(c2);
    free(p);
}

Test(store, upsert_get_roundtrip_with_normalisation)
{
    struct lk_err e = {0};
    struct lk_product p = prod("SOFA-1", " /Home/Furniture/Sofas/ ", 49999, 3);
    p.regions = (char *)"us| ca |US";
    p.flags = LK_FLAG_AGE_RESTRICTED;
    p.margin_tier = 2;
    p.attributes_json = (char *)"{\"colour\":\"beige\"}";
    memcpy(p.currency, "eur", 4);
    int64_t id = 0;
    cr_assert_eq(lk_catalog_upsert_product(cat, &p, &id, &e), LK_OK, "%s", e.msg);
    cr_assert_gt(id, 0);

    struct lk_product g;
    cr_assert_eq(lk_catalog_get_product(cat, "SOFA-1", &g, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(g.product_id, id);
    cr_assert_str_eq(g.category, "home/furniture/sofas");
    cr_assert_str_eq(g.regions, "CA|US");
    cr_assert_str_eq(g.currency, "EUR");
    cr_assert_eq(g.price_minor, 49999);
    cr_assert_eq(g.stock, 3);
    cr_assert_eq(g.flags, LK_FLAG_AGE_RESTRICTED);
    cr_assert_eq(g.margin_tier, 2);
    cr_assert_str_eq(g.attributes_json, "{\"colour\":\"beige\"}");
    cr_assert_gt(g.updated_at, 0);
    lk_product_clear(&g);
    lk_product_clear(NULL);

    /* Upsert again: metadata replaced, id kept. */
    p.title = (char *)"New title";
    p.stock = 0;
    int64_t id2 = 0;
    cr_assert_eq(lk_catalog_upsert_product(cat, &p, &id2, &e), LK_OK);
    cr_assert_eq(id2, id);
    cr_assert_eq(lk_catalog_get_product_by_id(cat, id, &g, &e), LK_OK);
    cr_assert_str_eq(g.title, "New title");
    cr_assert_eq(g.stock, 0);
    lk_product_clear(&g);

    cr_assert_eq(lk_catalog_get_product(cat, "NOPE", &g, &e), LK_ERR_NOT_FOUND);
}

Test(store, upsert_rejects_bad_fields)
{
    struct lk_err e = {0};
    struct lk_product p = prod("X", "a/b", 100, 1);
    struct lk_product bad;

    bad = p; bad.sku = (char *)"";
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.sku = (char *)"A\nB";
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.stock = -1;
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.price_minor = -5;
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; memcpy(bad.currency, "U$D", 4);
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.flags = 8;
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.margin_tier = 10;
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.category = (char *)"a//b";
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.category = (char *)"a/../b";
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.regions = (char *)"U";
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG);
    bad = p; bad.attributes_json = (char *)"{not json";
    cr_assert_eq(lk_catalog_upsert_product(cat, &bad, NULL, &e), LK_ERR_INVALID_ARG, "%s", e.msg);

    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, &e), LK_OK);
    cr_assert_eq(c.products, 0, "nothing half-written by rejected upserts");
}

Test(store, region_codes_beyond_the_limit_are_refused)
{
    struct lk_err e = {0};
    char sku[16], reg[16];
    for (int i = 0; i < LK_CATALOG_MAX_REGIONS; i++) {
        struct lk_product p = prod(sku, "", 1, 1);
        snprintf(sku, sizeof sku, "S%d", i);
        snprintf(reg, sizeof reg, "R%02d", i);
        p.sku = sku;
        p.regions = reg;
        cr_assert_eq(lk_catalog_upsert_product(cat, &p, NULL, &e), LK_OK, "%s", e.msg);
    }
    struct lk_product p = prod("ONE-MORE", "", 1, 1);
    p.regions = (char *)"ZZ";
    cr_assert_eq(lk_catalog_upsert_product(cat, &p, NULL, &e), LK_ERR_LIMIT);
}

Test(store, patch_changes_only_given_fields)
{
    struct lk_err e = {0};
    struct lk_product p = prod("P1", "toys", 1000, 5);
    p.margin_tier = 3;
    cr_assert_eq(lk_catalog_upsert_product(cat, &p, NULL, &e), LK_OK);

    cr_assert_eq(lk_catalog_set_stock(cat, "P1", 0, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_catalog_set_price(cat, "P1", 1250, NULL, &e), LK_OK);
    cr_assert_eq(lk_catalog_set_flags(cat, "P1", LK_FLAG_RETIRED, &e), LK_OK);
    struct lk_product g;
    cr_assert_eq(lk_catalog_get_product(cat, "P1", &g, &e), LK_OK);
    cr_assert_eq(g.stock, 0);
    cr_assert_eq(g.price_minor, 1250);
    cr_assert_str_eq(g.currency, "USD");
    cr_assert_eq(g.flags, LK_FLAG_RETIRED);
    cr_assert_eq(g.margin_tier, 3);
    cr_assert_str_eq(g.category, "toys");
    lk_product_clear(&g);

    cr_assert_eq(lk_catalog_set_price(cat, "P1", 900, "gbp", &e), LK_OK);
    cr_assert_eq(lk_catalog_get_product(cat, "P1", &g, &e), LK_OK);
    cr_assert_str_eq(g.currency, "GBP");
    lk_product_clear(&g);

    cr_assert_eq(lk_catalog_set_stock(cat, "NOPE", 1, &e), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_catalog_set_stock(cat, "P1", -1, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_set_flags(cat, "P1", 0x40, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_set_price(cat, "P1", 5, "US", &e), LK_ERR_INVALID_ARG);
}

struct collect {
    char skus[16][16];
    int n;
    int64_t ids[16];
};

static int collect_product(const struct lk_product *p, void *ud)
{
    struct collect *c = ud;
    snprintf(c->skus[c->n++], 16, "%s", p->sku);
    return 0;
}

static int collect_image(const struct lk_catalog_image *im, void *ud)
{
    struct collect *c = ud;
    c->ids[c->n] = im->image_id;
    snprintf(c->skus[c->n++], 16, "%s", im->sku);
    return 0;
}

static int stop_at_two(const struct lk_product *p, void *ud)
{
    (void)p;
    return ++*(int *)ud == 2 ? 42 : 0;
}

/* Many images' quality and generation in one transaction (index builds). */
Test(store, mark_images_in_one_transaction)
{
    struct lk_err e = {0};
    struct lk_product p = prod("M", "x", 1, 1);
    cr_assert_eq(lk_catalog_upsert_product(cat, &p, NULL, &e), LK_OK);
    int64_t ids[3];
    cr_assert_eq(lk_catalog_add_image(cat, "M", "m/1.png", 0, 0, NULL, &ids[0], &e), LK_OK);
    cr_assert_eq(lk_catalog_add_image(cat, "M", "m/2.png", 0, 0, NULL, &ids[1], &e), LK_OK);
    cr_assert_eq(lk_catalog_add_image(cat, "M", "m/3.png", 0, 0, NULL, &ids[2], &e), LK_OK);
    struct lk_catalog_quality q = {.blur = 55.0f, .contrast = 0.5f, .weak_flags = 2};
    struct lk_catalog_image_mark marks[] = {
        {ids[0], &q, 5},        /* both */
        {ids[1], NULL, 6},      /* generation only */
        {ids[2], &q, 0},        /* quality only */
        {987654, &q, 5},        /* gone: skipped */
    };
    cr_assert_eq(lk_catalog_mark_images(cat, marks, 4, &e), LK_OK, "%s", e.msg);
    static const int want_q[3] = {1, 0, 1};
    static const uint64_t want_gen[3] = {5, 6, 0};
    for (int i = 0; i < 3; i++) {
        struct lk_catalog_image im;
        cr_assert_eq(lk_catalog_get_image(cat, ids[i], &im, &e), LK_OK);
        cr_expect_eq(im.has_quality, want_q[i], "image %d", i);
        if (want_q[i])
            cr_expect_float_eq(im.quality.blur, 55.0f, 1e-6);
        cr_expect_eq(im.indexed_gen, want_gen[i], "image %d", i);
        lk_catalog_image_clear(&im);
    }
    cr_expect_eq(lk_catalog_mark_images(cat, NULL, 0, &e), LK_OK);
    cr_expect_eq(lk_catalog_mark_images(cat, NULL, 1, &e), LK_ERR_INVALID_ARG);
    cr_expect_eq(lk_catalog_mark_images(NULL, marks, 1, &e), LK_ERR_INVALID_ARG);
}

Test(store, images_iteration_delete_cascade)
{
    struct lk_err e = {0};
    struct lk_product b = prod("B", "x", 1, 1), a = prod("A", "x", 1, 1);
    cr_assert_eq(lk_catalog_upsert_product(cat, &b, NULL, &e), LK_OK);
    cr_assert_eq(lk_catalog_upsert_product(cat, &a, NULL, &e), LK_OK);
    int64_t i1, i2, i3, i1b;
    const char *h = "0123456789abcdef0123456789abcdef01234567";
    cr_assert_eq(lk_catalog_add_image(cat, "B", "b/1.png", 10, 20, h, &i1, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_catalog_add_image(cat, "B", "b/2.png", 0, 0, NULL, &i2, &e), LK_OK);
    cr_assert_eq(lk_catalog_add_image(cat, "A", "a/1.jpg", 5, 5, NULL, &i3, &e), LK_OK);
    cr_assert(i1 < i2 && i2 < i3);
    /* same path again: same id */
    cr_assert_eq(lk_catalog_add_image(cat, "B", "b/1.png", 10, 20, h, &i1b, &e), LK_OK);
    cr_assert_eq(i1b, i1);
    cr_assert_eq(lk_catalog_add_image(cat, "B", "../x.png", 0, 0, NULL, NULL, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_add_image(cat, "B", "/etc/x.png", 0, 0, NULL, NULL, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_add_image(cat, "ZZ", "z.png", 0, 0, NULL, NULL, &e), LK_ERR_NOT_FOUND);

    struct lk_catalog_quality q = {.blur = 123.5f, .contrast = 0.25f, .border_uniformity = 0.9f,
                                   .plain_background = 1, .weak_flags = 4};
    cr_assert_eq(lk_catalog_set_image_quality(cat, i1, &q, &e), LK_OK);
    cr_assert_eq(lk_catalog_set_image_indexed(cat, i1, 7, &e), LK_OK);
    cr_assert_eq(lk_catalog_set_image_indexed(cat, 9999, 7, &e), LK_ERR_NOT_FOUND);
    struct lk_catalog_image im;
    cr_assert_eq(lk_catalog_get_image(cat, i1, &im, &e), LK_OK);
    cr_assert_str_eq(im.sku, "B");
    cr_assert_str_eq(im.path, "b/1.png");
    cr_assert_eq(im.width, 10);
    cr_assert_eq(im.height, 20);
    cr_assert_str_eq(im.content_sha1, h);
    cr_assert(im.has_quality);
    cr_assert_float_eq(im.quality.blur, 123.5f, 1e-6);
    cr_assert_eq(im.quality.weak_flags, 4);
    cr_assert_eq(im.indexed_gen, 7);
    lk_catalog_image_clear(&im);

    /* a changed content hash means the vector is stale */
    cr_assert_eq(lk_catalog_add_image(cat, "B", "b/1.png", 10, 20,
                                      "ffffffffffffffffffffffffffffffffffffffff", NULL, &e), LK_OK);
    cr_assert_eq(lk_catalog_get_image(cat, i1, &im, &e), LK_OK);
    cr_assert_eq(im.indexed_gen, 0);
    lk_catalog_image_clear(&im);

    struct collect c = {0};
    cr_assert_eq(lk_catalog_foreach_product(cat, collect_product, &c, &e), LK_OK);
    cr_assert_eq(c.n, 2);
    cr_assert_str_eq(c.skus[0], "A");
    cr_assert_str_eq(c.skus[1], "B");
    int calls = 0;
    cr_assert_eq(lk_catalog_foreach_product(cat, stop_at_two, &calls, &e), 42);

    memset(&c, 0, sizeof c);
    cr_assert_eq(lk_catalog_foreach_image(cat, collect_image, &c, &e), LK_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(c.ids[0], i1);
    cr_assert_str_eq(c.skus[2], "A");

    struct lk_catalog_counts n;
    cr_assert_eq(lk_catalog_counts(cat, &n, &e), LK_OK);
    cr_assert_eq(n.products, 2);
    cr_assert_eq(n.images, 3);
    cr_assert_eq(n.images_unindexed, 3);
    cr_assert_eq(n.max_image_id, i3);

    cr_assert_eq(lk_catalog_delete_product(cat, "B", &e), LK_OK);
    cr_assert_eq(lk_catalog_delete_product(cat, "B", &e), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_catalog_get_image(cat, i1, &im, &e), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_catalog_counts(cat, &n, &e), LK_OK);
    cr_assert_eq(n.products, 1);
    cr_assert_eq(n.images, 1);
    cr_assert_eq(lk_catalog_remove_image(cat, i3, &e), LK_OK);
    cr_assert_eq(lk_catalog_remove_image(cat, i3, &e), LK_ERR_NOT_FOUND);

    /* ids are never reused */
    int64_t i4;
    cr_assert_eq(lk_catalog_add_image(cat, "A", "a/2.jpg", 1, 1, NULL, &i4, &e), LK_OK);
    cr_assert_gt(i4, i3);
    cr_assert_eq(lk_catalog_integrity_check(cat, &e), LK_OK, "%s", e.msg);
}

Test(store, category_tree_counts)
{
    struct lk_err e = {0};
    const char *cats[] = {"home/furniture/sofas", "home/furniture/sofas", "home/furniture/beanbags",
                          "home/kitchen", "toys", ""};
    for (int i = 0; i < 6; i++) {
        char sku[8];
        snprintf(sku, sizeof sku, "S%d", i & 7);
        struct lk_product p = prod(sku, cats[i], 1, 1);
        cr_assert_eq(lk_catalog_upsert_product(cat, &p, NULL, &e), LK_OK);
    }
    struct lk_category_count *a;
    size_t n;
    cr_assert_eq(lk_catalog_categories(cat, &a, &n, &e), LK_OK);
    const char *want[] = {"home", "home/furniture", "home/furniture/beanbags",
                          "home/furniture/sofas", "home/kitchen", "toys"};
    uint64_t prods[] = {4, 3, 1, 2, 1, 1}, direct[] = {0, 0, 1, 2, 1, 1};
    unsigned depth[] = {1, 2, 3, 3, 2, 1};
    cr_assert_eq(n, 6);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(a[i].path, want[i]);
        cr_assert_eq(a[i].products, prods[i], "%s", want[i]);
        cr_assert_eq(a[i].direct, direct[i], "%s", want[i]);
        cr_assert_eq(a[i].depth, depth[i]);
    }
    lk_category_counts_free(a, n);
    lk_category_counts_free(NULL, 0);
}

Test(store, events_are_validated)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_add_event(cat, "s-123", "SKU1", "add_to_cart", 1700000000, &e), LK_OK);
    cr_assert_eq(lk_catalog_add_event(cat, "s-123", "SKU1", "like", 1700000000, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_add_event(cat, "s 1", "SKU1", "view", 1700000000, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_add_event(cat, "s1", "", "view", 1700000000, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_add_event(cat, "s1", "SKU", "view", 0, &e), LK_ERR_INVALID_ARG);
    struct lk_catalog_counts n;
    cr_assert_eq(lk_catalog_counts(cat, &n, &e), LK_OK);
    cr_assert_eq(n.events, 1);
}

Test(store, price_parser_is_exact)
{
    int64_t v;
    struct lk_err e = {0};
    cr_assert_eq(lk_parse_price("19.99", "USD", &v, &e), LK_OK);
    cr_assert_eq(v, 1999);
    cr_assert_eq(lk_parse_price("20", "USD", &v, &e), LK_OK);
    cr_assert_eq(v, 2000);
    cr_assert_eq(lk_parse_price("0.5", "EUR", &v, &e), LK_OK);
    cr_assert_eq(v, 50);
    cr_assert_eq(lk_parse_price(".5", "EUR", &v, &e), LK_OK);
    cr_assert_eq(v, 50);
    cr_assert_eq(lk_parse_price("19.990", "USD", &v, &e), LK_OK);
    cr_assert_eq(v, 1999);
    cr_assert_eq(lk_parse_price("0.10", "usd", &v, &e), LK_OK);
    cr_assert_eq(v, 10);
    cr_assert_eq(lk_parse_price("1500", "JPY", &v, &e), LK_OK);
    cr_assert_eq(v, 1500);
    cr_assert_eq(lk_parse_price("1.234", "KWD", &v, &e), LK_OK);
    cr_assert_eq(v, 1234);
    cr_assert_eq(lk_parse_price("19.999", "USD", &v, &e), LK_ERR_PARSE);
    cr_assert_eq(lk_parse_price("1500.5", "JPY", &v, &e), LK_ERR_PARSE);
    const char *bad[] = {"", ".", "-1", "+1", "1e3", "1,00", " 1", "1 ", "abc", "1.2.3",
                         "99999999999999999999", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(lk_parse_price(bad[i], "USD", &v, &e), LK_ERR_PARSE, "\"%s\"", bad[i]);
    cr_assert_eq(lk_parse_price("1", "US", &v, &e), LK_ERR_PARSE);
    cr_assert_eq(lk_currency_exponent("usd"), 2);
    cr_assert_eq(lk_currency_exponent("JPY"), 0);
    cr_assert_eq(lk_currency_exponent("BHD"), 3);
    cr_assert_eq(lk_currency_exponent("12A"), -1);
    cr_assert_eq(lk_currency_exponent(NULL), -1);
}

Test(store, category_normaliser)
{
    char out[LK_CATEGORY_MAX + 1];
    struct lk_err e = {0};
    cr_assert_eq(lk_category_normalise(" /Home / Garden Tools/ ", out, sizeof out, &e), LK_OK);
    cr_assert_str_eq(out, "home/garden tools");
    cr_assert_eq(lk_category_normalise("", out, sizeof out, &e), LK_OK);
    cr_assert_str_eq(out, "");
    cr_assert_eq(lk_category_normalise("a/./b", out, sizeof out, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_category_normalise("a/\tb", out, sizeof out, &e), LK_OK);
    char deep[200] = "";
    for (int i = 0; i < 17; i++)
        strcat(deep, "a/");
    cr_assert_eq(lk_category_normalise(deep, out, sizeof out, &e), LK_ERR_INVALID_ARG);
}

Test(store, second_handle_sees_committed_writes)
{
    struct lk_err e = {0};
    char *data = tu_path(dir, "data");
    struct lk_catalog *other;
    cr_assert_eq(lk_catalog_open(data, NULL, &other, &e), LK_OK, "%s", e.msg);
    struct lk_product p = prod("SHARED", "x", 100, 1);
    cr_assert_eq(lk_catalog_upsert_product(cat, &p, NULL, &e), LK_OK);
    struct lk_product g;
    cr_assert_eq(lk_catalog_get_product(other, "SHARED", &g, &e), LK_OK);
    lk_product_clear(&g);
    /* refresh is a no-op on an unchanged db, and picks up other writers */
    cr_assert_eq(lk_catalog_refresh(cat, &e), LK_OK);
    cr_assert_eq(lk_catalog_refresh(other, &e), LK_OK);
    lk_catalog_close(other);
    free(data);
}

Test(store, integrity_check_detects_damage)
{
    struct lk_err e = {0};
    /* One import = one transaction (2000 single upserts would be 2000 fsyncs). */
    char *bigp = tu_path(dir, "big.csv");
    FILE *f = fopen(bigp, "w");
    free(bigp);
    fprintf(f, "sku,title,category,price,stock\n");
    for (int i = 0; i < 2000; i++)
        fprintf(f, "SKU-%05d,a fairly long title so that the table spans many pages,some/cat,%d.00,%d\n",
                i, i, i % 7);
    fclose(f);
    struct lk_import_report rep;
    char *csv = tu_path(dir, "big.csv");
    cr_assert_eq(lk_catalog_import_file(cat, csv, NULL, &rep, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(rep.products_imported, 2000);
    lk_import_report_free(&rep);
    free(csv);
    cr_assert_eq(lk_catalog_integrity_check(cat, &e), LK_OK, "%s", e.msg);
    lk_catalog_close(cat);
    cat = NULL;
    /* Checkpoint the WAL into the main file, then scribble over interior pages. */
    char *db = tu_path(dir, "data/catalog.sqlite");
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    sqlite3_exec(s, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    sqlite3_close(s);
    int fd = open(db, O_WRONLY);
    cr_assert_geq(fd, 0);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    for (off_t off = 4096 * 3; off < 4096 * 40; off += 4096 * 5)
        cr_assert_eq(pwrite(fd, junk, 100, off + 200), 100);
    close(fd);
    free(db);
    char *data = tu_path(dir, "data");
    int rc = lk_catalog_open(data, NULL, &cat, &e);
    free(data);
    if (rc == LK_OK) {
        rc = lk_catalog_integrity_check(cat, &e);
        cr_assert_eq(rc, LK_ERR_CORRUPT, "damage not detected: %d %s", rc, e.msg);
    } else {
        cr_assert(rc == LK_ERR_DB || rc == LK_ERR_CORRUPT, "open: %d %s", rc, e.msg);
    }
}
