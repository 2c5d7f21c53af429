/*
 * test_import.c — CSV and JSON Lines import: good rows, every bad-row kind
 * with its line number, strict mode, RFC 4180 quoting edge cases (quoted
 * commas, doubled quotes, embedded newlines, CRLF, BOM, blank trailing
 * lines), repeated-SKU merging, re-import keeping image ids, header errors,
 * and a 100k-row import with tiny images.
 */
#include "lookalike/catalog.h"
#include "util.h"

static char *dir, *images, *data;
static struct lk_catalog *cat;

static void setup(void)
{
    dir = tu_tmpdir();
    images = tu_path(dir, "images");
    data = tu_path(dir, "data");
    cr_assert_eq(mkdir(images, 0755), 0);
    char *sub = tu_path(images, "sub");
    cr_assert_eq(mkdir(sub, 0755), 0);
    free(sub);
    tu_write_png(images, "a.png", 16, 12, 1);
    tu_write_png(images, "b.png", 20, 20, 2);
    tu_write_png(images, "sub/d.png", 9, 7, 3);
    tu_write_jpeg(images, "c.jpg", 8, 6);
    tu_write_str(images, "anim.gif", "GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    tu_write_str(images, "fake.png", "this is not an image at all");
    tu_write(images, "empty.png", "", 0);
    tu_write_png(dir, "outside.png", 4, 4, 9);
    char *link = tu_path(images, "link.png"), *target = tu_path(dir, "outside.png");
    cr_assert_eq(symlink(target, link), 0);
    free(link);
    free(target);
    /* an absolute symlink that stays inside the images dir is fine */
    link = tu_path(images, "inlink.png");
    target = tu_path(images, "sub/d.png");
    cr_assert_eq(symlink(target, link), 0);
    free(link);
    free(target);
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_open(data, NULL, &cat, &e), LK_OK, "%s", e.msg);
}

static void teardown(void)
{
    lk_catalog_close(cat);
    free(images);
    free(data);
    tu_rm_rf(dir);
}

TestSuite(import, .init = setup, .fini = teardown);

static int run_import(const char *name, const char *content, int strict,
                      struct lk_import_report *rep, struct lk_err *e)
{
    tu_write_str(dir, name, content);
    char *p = tu_path(dir, name);
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.images_dir = images;
    o.strict = strict;
    int rc = lk_catalog_import_file(cat, p, &o, rep, e);
    free(p);
    return rc;
}

static uint64_t count_products(void)
{
    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, NULL), LK_OK);
    return c.products;
}

static void expect_issue(const struct lk_import_report *r, size_t i, uint64_t line, int reason)
{
    cr_assert_lt(i, r->n_issues, "issue %zu missing", i);
    cr_expect_eq(r->issues[i].line, line, "issue %zu: line %llu, want %llu (%s)", i,
                 (unsigned long long)r->issues[i].line, (unsigned long long)line, r->issues[i].msg);
    cr_expect_eq(r->issues[i].reason, reason, "issue %zu (line %llu): reason %s, want %s (%s)", i,
                 (unsigned long long)line, lk_import_reason_str(r->issues[i].reason),
                 lk_import_reason_str(reason), r->issues[i].msg);
}

Test(import, good_rows_with_attributes_and_images)
{
    const char *csv =
        "sku,title,category,price,currency,stock,regions,flags,image,margin_tier,colour,Brand\n"
        "SOFA-1,Beige sofa,Home/Furniture/Sofas,499.99,EUR,3,us|ca,,a.png|sub/d.png,2,beige,Acme\n"
        "MUG-1,Mug,home/kitchen,7,,0,,age_restricted|retired,c.jpg,,,\n"
        "HAT-1,Hat,clothes/hats,12.5,usd,40,EU,restricted,b.png|inlink.png,0,red,\n";
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("good.csv", csv, 0, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_read, 3);
    cr_assert_eq(r.rows_imported, 3);
    cr_assert_eq(r.rows_skipped, 0, "%s", r.n_issues ? r.issues[0].msg : "");
    cr_assert_eq(r.products_imported, 3);
    cr_assert_eq(r.images_imported, 5);
    cr_assert(r.committed);
    lk_import_report_free(&r);
    lk_import_report_free(NULL);

    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "SOFA-1", &p, &e), LK_OK);
    cr_assert_str_eq(p.title, "Beige sofa");
    cr_assert_str_eq(p.category, "home/furniture/sofas");
    cr_assert_eq(p.price_minor, 49999);
    cr_assert_str_eq(p.currency, "EUR");
    cr_assert_eq(p.stock, 3);
    cr_assert_str_eq(p.regions, "CA|US");
    cr_assert_eq(p.flags, 0);
    cr_assert_eq(p.margin_tier, 2);
    cr_assert_str_eq(p.attributes_json, "{\"colour\":\"beige\",\"brand\":\"Acme\"}");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "MUG-1", &p, &e), LK_OK);
    cr_assert_eq(p.price_minor, 700);
    cr_assert_str_eq(p.currency, "USD");
    cr_assert_eq(p.flags, LK_FLAG_AGE_RESTRICTED | LK_FLAG_RETIRED);
    cr_assert_str_eq(p.attributes_json, "{}");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "HAT-1", &p, &e), LK_OK);
    cr_assert_eq(p.price_minor, 1250);
    cr_assert_eq(p.flags, LK_FLAG_RESTRICTED);
    lk_product_clear(&p);

    /* image metadata from the file headers */
    struct lk_catalog_image im;
    cr_assert_eq(lk_catalog_get_image(cat, 1, &im, &e), LK_OK);
    cr_assert_str_eq(im.path, "a.png");
    cr_assert_eq(im.width, 16);
    cr_assert_eq(im.height, 12);
    cr_assert_eq(strlen(im.content_sha1), 40);
    lk_catalog_image_clear(&im);
    cr_assert_eq(lk_catalog_get_image(cat, 3, &im, &e), LK_OK);
    cr_assert_str_eq(im.path, "c.jpg");
    cr_assert_eq(im.width, 8);
    cr_assert_eq(im.height, 6);
    lk_catalog_image_clear(&im);
}

static const char *bad_csv =
    "sku,title,category,price,currency,stock,regions,flags,image,margin_tier\n" /* 1 */
    "OK-1,Good,a/b,1.00,USD,1,,,a.png,\n"                                       /* 2 */
    ",No sku,a,1.00,USD,1,,,a.png,\n"                                           /* 3 */
    "P-1,Bad price,a,abc,USD,1,,,a.png,\n"                                      /* 4 */
    "S-1,Bad stock,a,1.00,USD,-3,,,a.png,\n"                                    /* 5 */
    "F-1,Bad flag,a,1.00,USD,1,,sparkly,a.png,\n"                               /* 6 */
    "E-1,Escape,a,1.00,USD,1,,,../outside.png,\n"                               /* 7 */
    "E-2,Absolute,a,1.00,USD,1,,,/etc/passwd,\n"                                /* 8 */
    "M-1,Missing,a,1.00,USD,1,,,nope.png,\n"                                    /* 9 */
    "G-1,Gif,a,1.00,USD,1,,,anim.gif,\n"                                        /* 10 */
    "OK-1,Good,a/b,2.00,USD,1,,,b.png,\n"                                       /* 11 */
    "C-1,Bad currency,a,1.00,US,1,,,a.png,\n"                                   /* 12 */
    "R-1,Bad region,a,1.00,USD,1,U,,a.png,\n"                                   /* 13 */
    "K-1,Bad category,a//b,1.00,USD,1,,,a.png,\n"                               /* 14 */
    "P-2,No price,a,,USD,1,,,a.png,\n"                                          /* 15 */
    "L-1,Symlink out,a,1.00,USD,1,,,link.png,\n"                                /* 16 */
    "X-1,Fake png,a,1.00,USD,1,,,fake.png,\n"                                   /* 17 */
    "W-1,Too few fields,a,1.00\n"                                               /* 18 */
    "OK-2,Good too,a/c,3.00,USD,0,,,c.jpg,\n"                                   /* 19 */
    "T-1,Bad tier,a,1.00,USD,1,,,a.png,42\n"                                    /* 20 */
    "Z-1,Empty file,a,1.00,USD,1,,,empty.png,\n"                                /* 21 */
    "S-2,Missing stock,a,1.00,USD,,,,a.png,\n";                                 /* 22 */

Test(import, every_bad_row_kind_is_reported_with_its_line)
{
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("bad.csv", bad_csv, 0, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_read, 21);
    cr_assert_eq(r.rows_imported, 2);
    cr_assert_eq(r.rows_skipped, 19);
    cr_assert_eq(r.n_issues, 19);
    int k = 0;
    expect_issue(&r, k++, 3, LK_IMPORT_MISSING_SKU);
    expect_issue(&r, k++, 4, LK_IMPORT_BAD_PRICE);
    expect_issue(&r, k++, 5, LK_IMPORT_BAD_STOCK);
    expect_issue(&r, k++, 6, LK_IMPORT_BAD_FLAG);
    expect_issue(&r, k++, 7, LK_IMPORT_IMAGE_PATH);
    expect_issue(&r, k++, 8, LK_IMPORT_IMAGE_PATH);
    expect_issue(&r, k++, 9, LK_IMPORT_IMAGE_MISSING);
    expect_issue(&r, k++, 10, LK_IMPORT_IMAGE_FORMAT);
    expect_issue(&r, k++, 11, LK_IMPORT_DUPLICATE_SKU);
    expect_issue(&r, k++, 12, LK_IMPORT_BAD_CURRENCY);
    expect_issue(&r, k++, 13, LK_IMPORT_BAD_REGION);
    expect_issue(&r, k++, 14, LK_IMPORT_BAD_CATEGORY);
    expect_issue(&r, k++, 15, LK_IMPORT_BAD_PRICE);
    expect_issue(&r, k++, 16, LK_IMPORT_IMAGE_PATH);
    expect_issue(&r, k++, 17, LK_IMPORT_IMAGE_FORMAT);
    expect_issue(&r, k++, 18, LK_IMPORT_SYNTAX);
    expect_issue(&r, k++, 20, LK_IMPORT_BAD_FIELD);
    expect_issue(&r, k++, 21, LK_IMPORT_IMAGE_FORMAT);
    expect_issue(&r, k++, 22, LK_IMPORT_BAD_STOCK);
    cr_assert(strstr(r.issues[8].msg, "line 2"), "%s", r.issues[8].msg);
    cr_assert(strstr(r.issues[6].msg, "nope.png"), "%s", r.issues[6].msg);
    cr_assert(strstr(r.issues[7].msg, "GIF"), "%s", r.issues[7].msg);
    cr_assert_eq(r.skipped_by_reason[LK_IMPORT_IMAGE_PATH], 3);
    cr_assert_eq(r.skipped_by_reason[LK_IMPORT_BAD_PRICE], 2);
    lk_import_report_free(&r);
    cr_assert_eq(count_products(), 2);
    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "OK-1", &p, &e), LK_OK);
    cr_assert_eq(p.price_minor, 100, "the conflicting duplicate did not overwrite");
    lk_product_clear(&p);
}

Test(import, strict_mode_fails_whole_import_and_writes_nothing)
{
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("bad.csv", bad_csv, 1, &r, &e), LK_ERR_PARSE);
    cr_assert(strstr(e.msg, "line 3"), "%s", e.msg);
    cr_assert_eq(r.rows_skipped, 19);
    cr_assert_not(r.committed);
    cr_assert_eq(r.products_imported, 0);
    lk_import_report_free(&r);
    cr_assert_eq(count_products(), 0);

    /* a clean file imports in strict mode */
    cr_assert_eq(run_import("ok.csv", "sku,price,stock\nA,1,1\n", 1, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(count_products(), 1);
    lk_import_report_free(&r);
}

Test(import, issue_list_is_bounded_but_counts_are_exact)
{
    char buf[64 * 200 + 100] = "sku,price,stock\n";
    for (int i = 0; i < 200; i++)
        strcat(buf, "X,notaprice,1\n");
    tu_write_str(dir, "many.csv", buf);
    char *p = tu_path(dir, "many.csv");
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.max_issues = 10;
    struct lk_import_report r;
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, NULL), LK_OK);
    free(p);
    cr_assert_eq(r.rows_skipped, 200);
    cr_assert_eq(r.n_issues, 10);
    cr_assert_eq(r.issues_dropped, 190);
    cr_assert_eq(r.issues[9].line, 11);
    lk_import_report_free(&r);
}

Test(import, csv_quoting_edge_cases_keep_line_numbers)
{
    /* BOM, comment lines before the header, CRLF, quoted commas, doubled
     * quotes, a quoted title spanning three physical lines, blank lines and
     * a trailing empty line; then a bad row whose line number must count the
     * embedded newlines. */
    const char *csv = "\xEF\xBB\xBF# synthetic test catalog\r\n"                  /* 1 */
                      "# second comment\r\n"                                     /* 2 */
                      "sku,title,price,stock,image\r\n"                          /* 3 */
                      "Q-1,\"Sofa, beige\",10.00,1,a.png\r\n"                    /* 4 */
                      "Q-2,\"The \"\"Big\"\" one\",11.00,1,b.png\r\n"            /* 5 */
                      "Q-3,\"Line one\r\nline two\r\nline three\",12.00,1,c.jpg\r\n" /* 6-8 */
                      "\r\n"                                                     /* 9 */
                      "Q-4,bad,xx,1,a.png\r\n"                                   /* 10 */
                      "\"Q-5\",\"\",13.00,\"2\",\"sub/d.png\"\r\n"               /* 11 */
                      "Q-6,\"multi\nline\",zz,1,a.png\n"                         /* 12-13 */
                      "Q-7,last,14.00,1,a.png\n"                                 /* 14 */
                      "\n";
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("quotes.csv", csv, 0, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_read, 7);
    cr_assert_eq(r.rows_imported, 5);
    cr_assert_eq(r.n_issues, 2);
    expect_issue(&r, 0, 10, LK_IMPORT_BAD_PRICE);
    expect_issue(&r, 1, 12, LK_IMPORT_BAD_PRICE);
    lk_import_report_free(&r);
    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "Q-1", &p, &e), LK_OK);
    cr_assert_str_eq(p.title, "Sofa, beige");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "Q-2", &p, &e), LK_OK);
    cr_assert_str_eq(p.title, "The \"Big\" one");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "Q-3", &p, &e), LK_OK);
    cr_assert_str_eq(p.title, "Line one\r\nline two\r\nline three");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "Q-5", &p, &e), LK_OK);
    cr_assert_eq(p.stock, 2);
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "Q-7", &p, &e), LK_OK);
    lk_product_clear(&p);
}

Test(import, malformed_quotes_are_reported_and_import_resumes)
{
    const char *csv = "sku,title,price,stock\n"        /* 1 */
                      "A,\"ok\",1,1\n"                 /* 2 */
                      "B,\"closed\"junk,1,1\n"         /* 3 */
                      "C,ok,1,1\n"                     /* 4 */
                      "D,\"never closed,1,1\n"         /* 5 */
                      "E,swallowed,1,1\n";             /* 6 */
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("q.csv", csv, 0, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_imported, 2);
    cr_assert_eq(r.n_issues, 2);
    expect_issue(&r, 0, 3, LK_IMPORT_SYNTAX);
    expect_issue(&r, 1, 5, LK_IMPORT_SYNTAX);
    cr_assert(strstr(r.issues[1].msg, "unterminated"), "%s", r.issues[1].msg);
    lk_import_report_free(&r);
    cr_assert_eq(count_products(), 2);
}

Test(import, header_errors_fail_the_import)
{
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("h1.csv", "title,price,stock\nx,1,1\n", 0, &r, &e), LK_ERR_PARSE);
    cr_assert(strstr(e.msg, "sku"), "%s", e.msg);
    lk_import_report_free(&r);
    cr_assert_eq(run_import("h2.csv", "sku,price,PRICE,stock\nx,1,1,1\n", 0, &r, &e), LK_ERR_PARSE);
    lk_import_report_free(&r);
    cr_assert_eq(run_import("h3.csv", "", 0, &r, &e), LK_ERR_EMPTY);
    lk_import_report_free(&r);
    cr_assert_eq(run_import("h4.csv", "\n\n# only a comment\n", 0, &r, &e), LK_ERR_EMPTY);
    lk_import_report_free(&r);
    char *p = tu_path(dir, "missing.csv");
    cr_assert_eq(lk_catalog_import_file(cat, p, NULL, &r, &e), LK_ERR_IO);
    free(p);
    lk_import_report_free(&r);
    cr_assert_eq(count_products(), 0);
}

Test(import, repeated_rows_merge_images_and_fields)
{
    const char *csv = "sku,title,category,price,stock,image,colour\n"
                      "M-1,Lamp,home/lighting,20.00,4,a.png,red\n"
                      "M-1,,,,,b.png,\n"
                      "M-1,Lamp,,20,4,c.jpg|a.png,red\n"
                      "M-2,Other,,1,1,sub/d.png|b.png,\n";
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("rep.csv", csv, 0, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_skipped, 0, "%s", r.n_issues ? r.issues[0].msg : "");
    cr_assert_eq(r.products_imported, 2);
    cr_assert_eq(r.images_imported, 5);
    lk_import_report_free(&r);
    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, &e), LK_OK);
    cr_assert_eq(c.images, 5);
}

struct paths {
    char p[8][32];
    int64_t id[8];
    int n;
};

static int collect(const struct lk_catalog_image *im, void *ud)
{
    struct paths *ps = ud;
    snprintf(ps->p[ps->n], 32, "%s", im->path);
    ps->id[ps->n++] = im->image_id;
    return 0;
}

Test(import, reimport_replaces_image_set_and_keeps_ids)
{
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("v1.csv", "sku,price,stock,image\nA,1,1,a.png|b.png\nB,2,2,c.jpg\n", 0,
                            &r, &e), LK_OK);
    lk_import_report_free(&r);
    struct paths before = {0}, after = {0};
    lk_catalog_foreach_image(cat, collect, &before, NULL);
    cr_assert_eq(before.n, 3);
    cr_assert_eq(run_import("v2.csv", "sku,price,stock,image\nA,1.5,0,b.png|sub/d.png\n", 0, &r, &e),
                 LK_OK);
    lk_import_report_free(&r);
    lk_catalog_foreach_image(cat, collect, &after, NULL);
    cr_assert_eq(after.n, 3);
    /* b.png kept its id; a.png is gone; d.png is new; B untouched */
    cr_assert_str_eq(after.p[0], "b.png");
    cr_assert_eq(after.id[0], before.id[1]);
    cr_assert_str_eq(after.p[1], "c.jpg");
    cr_assert_str_eq(after.p[2], "sub/d.png");
    cr_assert_gt(after.id[2], before.id[2]);
    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "A", &p, &e), LK_OK);
    cr_assert_eq(p.price_minor, 150);
    cr_assert_eq(p.stock, 0);
    lk_product_clear(&p);
    /* no image column: images untouched */
    cr_assert_eq(run_import("v3.csv", "sku,price,stock\nA,2,1\n", 0, &r, &e), LK_OK);
    lk_import_report_free(&r);
    memset(&after, 0, sizeof after);
    lk_catalog_foreach_image(cat, collect, &after, NULL);
    cr_assert_eq(after.n, 3);
}

Test(import, jsonl_good_and_bad_lines)
{
    const char *jl =
        "{\"sku\":\"J-1\",\"title\":\"Kettle\",\"category\":\"home/kitchen\",\"price\":\"24.50\","
        "\"stock\":3,\"regions\":[\"US\",\"eu\"],\"flags\":[],\"images\":[\"a.png\",\"c.jpg\"],"
        "\"attributes\":{\"colour\":\"steel\"},\"brand\":\"Acme\",\"margin_tier\":1}\n" /* 1 */
        "\n"                                                                             /* 2 */
        "{\"sku\":\"J-2\",\"price\":19.99,\"stock\":1,\"image\":\"b.png\"}\n"           /* 3 */
        "{\"sku\":\"J-3\",\"price\":19.999,\"stock\":1}\n"                              /* 4 */
        "{\"sku\":\"J-4\",\"price\":\"1\",\"stock\":2.5}\n"                             /* 5 */
        "{\"sku\":\"J-5\",\"price\":\"1\",\"stock\":1\n"                                /* 6 */
        "[1,2,3]\n"                                                                      /* 7 */
        "{\"sku\":\"J-6\",\"price\":\"1\",\"stock\":1,\"flags\":\"retired|bogus\"}\n"   /* 8 */
        "{\"sku\":\"J-7\",\"price\":\"1\",\"stock\":1,\"images\":[\"../x.png\"]}\n"     /* 9 */
        "{\"price\":\"1\",\"stock\":1}\n"                                               /* 10 */
        "{\"sku\":\"J-8\",\"price\":-1,\"stock\":1}\n"                                  /* 11 */
        "{\"sku\":\"J-9\",\"price\":\"3\",\"stock\":\"7\",\"regions\":\"CA|MX\"}\r\n"  /* 12 */
        "{\"sku\":\"J-10\",\"price\":\"3\",\"stock\":1} {\"sku\":\"J-11\"}\n";     /* 13 */
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("cat.jsonl", jl, 0, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_read, 12);
    cr_assert_eq(r.rows_imported, 3);
    cr_assert_eq(r.n_issues, 9);
    expect_issue(&r, 0, 4, LK_IMPORT_BAD_PRICE);
    expect_issue(&r, 1, 5, LK_IMPORT_BAD_STOCK);
    expect_issue(&r, 2, 6, LK_IMPORT_SYNTAX);
    expect_issue(&r, 3, 7, LK_IMPORT_SYNTAX);
    expect_issue(&r, 4, 8, LK_IMPORT_BAD_FLAG);
    expect_issue(&r, 5, 9, LK_IMPORT_IMAGE_PATH);
    expect_issue(&r, 6, 10, LK_IMPORT_MISSING_SKU);
    expect_issue(&r, 7, 11, LK_IMPORT_BAD_PRICE);
    expect_issue(&r, 8, 13, LK_IMPORT_SYNTAX);
    lk_import_report_free(&r);
    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "J-1", &p, &e), LK_OK);
    cr_assert_eq(p.price_minor, 2450);
    cr_assert_str_eq(p.regions, "EU|US");
    cr_assert_eq(p.margin_tier, 1);
    cr_assert_str_eq(p.attributes_json, "{\"colour\":\"steel\",\"brand\":\"Acme\"}");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "J-2", &p, &e), LK_OK);
    cr_assert_eq(p.price_minor, 1999);
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "J-9", &p, &e), LK_OK);
    cr_assert_eq(p.stock, 7);
    lk_product_clear(&p);
    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, &e), LK_OK);
    cr_assert_eq(c.images, 3);
}

Test(import, images_need_a_directory_unless_checks_are_off)
{
    tu_write_str(dir, "n.csv", "sku,price,stock,image\nA,1,1,a.png\n");
    char *p = tu_path(dir, "n.csv");
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    struct lk_import_report r;
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, NULL), LK_OK);
    cr_assert_eq(r.rows_skipped, 1);
    cr_assert_eq(r.issues[0].reason, LK_IMPORT_IMAGE_MISSING);
    lk_import_report_free(&r);
    o.check_images = 0;
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, NULL), LK_OK);
    cr_assert_eq(r.rows_imported, 1);
    cr_assert_eq(r.images_imported, 1);
    lk_import_report_free(&r);
    o.images_dir = "/nonexistent/dir/for/lookalike";
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, &e), LK_ERR_IO);
    lk_import_report_free(&r);
    free(p);
}

Test(import, hundred_thousand_rows_with_tiny_images, .timeout = 240)
{
    /* 16 tiny PNG/JPEG files shared by 100k products: exercises the parser,
     * the per-row image checks and one big transaction.  No timed assertion;
     * it runs in a few seconds (more under sanitizers). */
    char name[32];
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof name, "t%02d.%s", i, i % 2 ? "jpg" : "png");
        if (i % 2)
            tu_write_jpeg(images, name, 4 + i, 4);
        else
            tu_write_png(images, name, 4 + i, 4, (unsigned)i);
    }
    char *p = tu_path(dir, "big.csv");
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fprintf(f, "sku,title,category,price,currency,stock,regions,flags,image\n");
    static const char *cats[] = {"home/furniture/sofas", "home/kitchen", "clothes/hats", "toys"};
    for (int i = 0; i < 100000; i++)
        fprintf(f, "SKU%06d,\"Product %d, synthetic\",%s,%d.%02d,USD,%d,%s,%s,t%02d.%s\n", i, i,
                cats[i % 4], i % 500, i % 100, i % 5, i % 3 ? "US|CA" : "", i % 97 ? "" : "retired",
                i % 16, i % 2 ? "jpg" : "png");
    fclose(f);
    struct lk_import_report r;
    struct lk_err e = {0};
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.images_dir = images;
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, &e), LK_OK, "%s", e.msg);
    free(p);
    cr_assert_eq(r.rows_read, 100000);
    cr_assert_eq(r.rows_skipped, 0, "%s", r.n_issues ? r.issues[0].msg : "");
    cr_assert_eq(r.products_imported, 100000);
    cr_assert_eq(r.images_imported, 100000);
    lk_import_report_free(&r);
    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, &e), LK_OK);
    cr_assert_eq(c.products, 100000);
    cr_assert_eq(c.images, 100000);
    /* the snapshot is live after the import */
    struct lk_filter flt;
    lk_filter_default(&flt);
    struct lk_allow a = {0};
    cr_assert_eq(lk_catalog_allow_build(cat, &flt, &a, &e), LK_OK);
    size_t want = 0;
    for (int i = 0; i < 100000; i++)
        want += (i % 5) > 0 && (i % 97) != 0;
    cr_assert_eq(a.count, want);
    lk_allow_free(&a);
}

Test(import, demo_catalog_script_output_imports_cleanly, .timeout = 120)
{
    /* End-to-end check of scripts/make-demo-catalog against the Debian
     * package scripts/setup installs; skipped where it is not installed. */
    const char *root = getenv("LK_SOURCE_ROOT");
    const char *stamps = "/usr/share/tuxpaint/stamps";
    struct stat sb;
    if (!root || stat(stamps, &sb) != 0)
        cr_skip("LK_SOURCE_ROOT unset or tuxpaint-stamps-default not installed");
    char *out = tu_path(dir, "demo.csv");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s/scripts/make-demo-catalog' '%s' >/dev/null", root, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.images_dir = stamps;
    o.strict = 1;
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_import_file(cat, out, &o, &r, &e), LK_OK, "%s (first issue: line %llu %s)",
                 e.msg, r.n_issues ? (unsigned long long)r.issues[0].line : 0ull,
                 r.n_issues ? r.issues[0].msg : "");
    cr_assert_gt(r.products_imported, 100);
    cr_assert_gt(r.images_imported, r.products_imported);
    lk_import_report_free(&r);
    free(out);
    struct lk_category_count *a;
    size_t n;
    cr_assert_eq(lk_catalog_categories(cat, &a, &n, &e), LK_OK);
    int grocery = 0;
    for (size_t i = 0; i < n; i++)
        grocery |= !strcmp(a[i].path, "grocery/fruit") && a[i].products > 10;
    cr_assert(grocery);
    lk_category_counts_free(a, n);
}

Test(import, decode_option_rejects_truncated_images)
{
    /* A PNG cut after its header passes the header check but not a decode. */
    char *src = tu_path(images, "b.png");
    FILE *f = fopen(src, "rb");
    cr_assert_not_null(f);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    free(src);
    cr_assert_gt(n, 60);
    tu_write(images, "cut.png", buf, 50);
    tu_write_str(dir, "cut.csv", "sku,price,stock,image\nA,1,1,cut.png\nB,1,1,a.png\n");
    char *p = tu_path(dir, "cut.csv");
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.images_dir = images;
    struct lk_import_report r;
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, NULL), LK_OK);
    cr_assert_eq(r.rows_skipped, 0, "header-only check accepts it");
    lk_import_report_free(&r);
    o.decode_images = 1;
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, NULL), LK_OK);
    cr_assert_eq(r.rows_skipped, 1);
    expect_issue(&r, 0, 2, LK_IMPORT_IMAGE_FORMAT);
    lk_import_report_free(&r);
    free(p);
}

Test(import, readme_examples_import_as_documented)
{
    /* The CSV and JSONL examples of README.md "Catalog import", verbatim. */
    char *d1 = tu_path(images, "sofas"), *d2 = tu_path(images, "drinks");
    cr_assert_eq(mkdir(d1, 0755), 0);
    cr_assert_eq(mkdir(d2, 0755), 0);
    free(d1);
    free(d2);
    tu_write_jpeg(images, "sofas/sofa1.jpg", 16, 16);
    tu_write_jpeg(images, "sofas/sofa1-side.jpg", 16, 12);
    tu_write_jpeg(images, "sofas/sofa1-back.jpg", 12, 16);
    tu_write_png(images, "drinks/rioja.png", 10, 30, 5);
    const char *csv =
        "# my store, exported 2024-06-01\n"
        "sku,title,category,price,currency,stock,regions,flags,image,margin_tier,colour\n"
        "SOFA-1,\"Sofa, 3-seat, beige\",home/furniture/sofas,499.99,EUR,3,EU|UK,,"
        "sofas/sofa1.jpg|sofas/sofa1-side.jpg,2,beige\n"
        "WINE-7,Rioja 2019,food/drinks,12.50,EUR,40,EU,age_restricted,drinks/rioja.png,1,red\n"
        "SOFA-1,,,,,,,,sofas/sofa1-back.jpg,,\n";
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(run_import("readme.csv", csv, 1, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.products_imported, 2);
    cr_assert_eq(r.images_imported, 4);
    lk_import_report_free(&r);
    const char *jl =
        "{\"sku\":\"SOFA-1\",\"title\":\"Sofa, 3-seat, beige\",\"category\":\"home/furniture/sofas\","
        "\"price\":\"499.99\",\"currency\":\"EUR\",\"stock\":3,\"regions\":[\"EU\",\"UK\"],"
        "\"images\":[\"sofas/sofa1.jpg\",\"sofas/sofa1-side.jpg\"],\"margin_tier\":2,"
        "\"attributes\":{\"colour\":\"beige\"}}\n"
        "{\"sku\":\"WINE-7\",\"title\":\"Rioja 2019\",\"category\":\"food/drinks\",\"price\":\"12.50\","
        "\"currency\":\"EUR\",\"stock\":40,\"regions\":\"EU\",\"flags\":[\"age_restricted\"],"
        "\"image\":\"drinks/rioja.png\"}\n";
    cr_assert_eq(run_import("readme.jsonl", jl, 1, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.products_imported, 2);
    cr_assert_eq(r.images_imported, 3);
    lk_import_report_free(&r);
    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "SOFA-1", &p, &e), LK_OK);
    cr_assert_str_eq(p.title, "Sofa, 3-seat, beige");
    cr_assert_eq(p.price_minor, 49999);
    cr_assert_str_eq(p.regions, "EU|UK");
    cr_assert_str_eq(p.attributes_json, "{\"colour\":\"beige\"}");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_get_product(cat, "WINE-7", &p, &e), LK_OK);
    cr_assert_eq(p.flags, LK_FLAG_AGE_RESTRICTED);
    cr_assert_eq(p.price_minor, 1250);
    lk_product_clear(&p);
}
