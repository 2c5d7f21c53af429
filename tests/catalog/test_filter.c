/*
 * test_filter.c — business-filter allow-lists over vector ids (image ids):
 * each filter on its own, category prefixes on whole segments, region and
 * price semantics, admin/age rules, PATCHes visible immediately, deletions,
 * a second handle's writes after lk_catalog_refresh, concurrent builders
 * while a writer patches, and a randomised comparison with a brute-force
 * oracle computed from the store's own rows.
 */
#include <pthread.h>

#include "lookalike/catalog.h"
#include "util.h"

static char *dir, *data;
static struct lk_catalog *cat;

static void setup(void)
{
    dir = tu_tmpdir();
    data = tu_path(dir, "data");
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_open(data, NULL, &cat, &e), LK_OK, "%s", e.msg);
}

static void teardown(void)
{
    lk_catalog_close(cat);
    free(data);
    tu_rm_rf(dir);
}

TestSuite(filter, .init = setup, .fini = teardown);

/* Import a CSV without image checks (paths are only names here). */
static void import_csv(const char *csv)
{
    tu_write_str(dir, "in.csv", csv);
    char *p = tu_path(dir, "in.csv");
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.check_images = 0;
    struct lk_import_report r;
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_import_file(cat, p, &o, &r, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(r.rows_skipped, 0, "%s", r.n_issues ? r.issues[0].msg : "");
    lk_import_report_free(&r);
    free(p);
}

/* Image ids are assigned in file order: row i's image gets id i+1 here. */
static const char *small_csv =
    "sku,category,price,currency,stock,regions,flags,image\n"
    "SOFA,home/furniture/sofas,500.00,USD,2,US|CA,,sofa.png\n"          /* 1 */
    "BEAN,home/furniture/beanbags,80.00,USD,5,,,bean.png\n"              /* 2 */
    "FURN,home/furnishings,30.00,USD,1,EU,,furn.png\n"                   /* 3 */
    "OUT,home/furniture/sofas,450.00,USD,0,,,out.png\n"                  /* 4 */
    "WINE,food/drinks,12.00,EUR,9,EU,age_restricted,wine.png\n"          /* 5 */
    "BAN,toys,5.00,USD,3,,restricted,ban.png\n"                          /* 6 */
    "OLD,toys,6.00,USD,3,,retired,old.png\n"                             /* 7 */
    "HAT,clothes/hats,20.00,USD,4,CA,,hat.png|hat2.png\n";               /* 8, 9 */

static uint64_t bits(const struct lk_allow *a)
{
    uint64_t m = 0;
    for (uint64_t i = 0; i < 64 && i < a->nbits; i++)
        if (lk_allow_test(a, i))
            m |= 1ull << i;
    return m;
}

#define B(i) (1ull << (i))

static uint64_t run(const struct lk_filter *f, struct lk_allow *a)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_allow_build(cat, f, a, &e), LK_OK, "%s", e.msg);
    uint64_t m = bits(a);
    cr_assert_eq((uint64_t)__builtin_popcountll(m), a->count, "count matches set bits");
    return m;
}

Test(filter, each_business_filter)
{
    import_csv(small_csv);
    struct lk_filter f;
    struct lk_allow a = {0};

    lk_filter_default(&f);
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(8) | B(9));
    cr_assert_eq(a.nbits, 10);

    f.in_stock = 0;
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(4) | B(8) | B(9));

    lk_filter_default(&f);
    f.allow_age_restricted = 1;
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(5) | B(8) | B(9));

    lk_filter_default(&f);
    f.admin = 1;
    f.in_stock = 0;
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(4) | B(5) | B(6) | B(7) | B(8) | B(9));

    /* category prefix matches whole segments only */
    lk_filter_default(&f);
    f.category = "home/furniture";
    cr_assert_eq(run(&f, &a), B(1) | B(2));
    f.category = "/Home/";
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3));
    f.category = "home/furn";
    cr_assert_eq(run(&f, &a), 0);
    f.category = "home/furniture/sofas";
    cr_assert_eq(run(&f, &a), B(1));
    f.category = "garden";
    cr_assert_eq(run(&f, &a), 0);
    cr_assert_eq(a.count, 0);

    /* region: "" = everywhere */
    lk_filter_default(&f);
    f.region = "ca";
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(8) | B(9));
    f.region = "EU";
    cr_assert_eq(run(&f, &a), B(2) | B(3));
    f.region = "JP"; /* unknown to the catalog: only sell-everywhere products */
    cr_assert_eq(run(&f, &a), B(2));

    /* price, inclusive */
    lk_filter_default(&f);
    f.min_price_minor = 3000;
    f.max_price_minor = 8000;
    cr_assert_eq(run(&f, &a), B(2) | B(3));
    f.currency = "usd";
    f.allow_age_restricted = 1;
    f.max_price_minor = 50000;
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3));
    f.currency = "EUR";
    f.min_price_minor = 0;
    cr_assert_eq(run(&f, &a), B(5));
    f.min_price_minor = LK_PRICE_ANY_MIN;
    f.max_price_minor = LK_PRICE_ANY_MAX;
    f.currency = "EUR"; /* no bound: currency alone does not filter */
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(5) | B(8) | B(9));

    /* predicate form for the index's allow_fn */
    lk_filter_default(&f);
    run(&f, &a);
    cr_assert(lk_allow_pred(1, &a));
    cr_assert_not(lk_allow_pred(4, &a));
    cr_assert_not(lk_allow_pred(0, &a));
    cr_assert_not(lk_allow_pred(1000000, &a), "ids beyond the bitmap are not allowed");

    lk_allow_free(&a);
    lk_allow_free(NULL);
}

Test(filter, bad_filters_are_rejected)
{
    import_csv(small_csv);
    struct lk_filter f;
    struct lk_allow a = {0};
    struct lk_err e = {0};
    lk_filter_default(&f);
    f.min_price_minor = 10;
    f.max_price_minor = 5;
    cr_assert_eq(lk_catalog_allow_build(cat, &f, &a, &e), LK_ERR_INVALID_ARG);
    lk_filter_default(&f);
    f.region = "U";
    cr_assert_eq(lk_catalog_allow_build(cat, &f, &a, &e), LK_ERR_INVALID_ARG);
    f.region = "U S";
    cr_assert_eq(lk_catalog_allow_build(cat, &f, &a, &e), LK_ERR_INVALID_ARG);
    lk_filter_default(&f);
    f.category = "a//b";
    cr_assert_eq(lk_catalog_allow_build(cat, &f, &a, &e), LK_ERR_INVALID_ARG);
    lk_filter_default(&f);
    f.currency = "EURO";
    f.max_price_minor = 100;
    cr_assert_eq(lk_catalog_allow_build(cat, &f, &a, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_catalog_allow_build(cat, NULL, &a, &e), LK_ERR_INVALID_ARG);
    lk_allow_free(&a);
}

Test(filter, patches_are_visible_immediately)
{
    import_csv(small_csv);
    struct lk_filter f;
    struct lk_allow a = {0};
    struct lk_err e = {0};
    lk_filter_default(&f);
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(8) | B(9));
    uint64_t *words = a.words;

    /* stock to zero: both of HAT's images leave the in-stock list at once */
    cr_assert_eq(lk_catalog_set_stock(cat, "HAT", 0, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3));
    cr_assert_eq(a.words, words, "allow-list words are reused");
    struct lk_product p;
    cr_assert_eq(lk_catalog_get_product(cat, "HAT", &p, &e), LK_OK);
    cr_assert_eq(p.stock, 0, "the store agrees");
    lk_product_clear(&p);
    cr_assert_eq(lk_catalog_set_stock(cat, "OUT", 7, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(4));

    /* flags */
    cr_assert_eq(lk_catalog_set_flags(cat, "SOFA", LK_FLAG_RETIRED, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(2) | B(3) | B(4));
    cr_assert_eq(lk_catalog_set_flags(cat, "BAN", 0, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(2) | B(3) | B(4) | B(6));

    /* price */
    f.max_price_minor = 5000;
    cr_assert_eq(run(&f, &a), B(3) | B(6));
    cr_assert_eq(lk_catalog_set_price(cat, "BEAN", 4999, NULL, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(2) | B(3) | B(6));
    lk_filter_default(&f);

    /* upsert moves a product to another category and region */
    struct lk_product up = {0};
    up.sku = (char *)"FURN";
    up.category = (char *)"garden/tools";
    up.price_minor = 100;
    memcpy(up.currency, "USD", 4);
    up.stock = 1;
    up.regions = (char *)"NZ";
    cr_assert_eq(lk_catalog_upsert_product(cat, &up, NULL, &e), LK_OK);
    f.category = "garden";
    cr_assert_eq(run(&f, &a), B(3));
    f.region = "NZ";
    cr_assert_eq(run(&f, &a), B(3));
    f.region = "EU";
    cr_assert_eq(run(&f, &a), 0);
    lk_filter_default(&f);

    /* images and products come and go */
    int64_t id;
    cr_assert_eq(lk_catalog_add_image(cat, "BEAN", "bean2.png", 0, 0, NULL, &id, &e), LK_OK);
    cr_assert_eq(id, 10);
    cr_assert_eq(run(&f, &a), B(2) | B(3) | B(4) | B(6) | B(10));
    cr_assert_eq(a.nbits, 11);
    cr_assert_eq(lk_catalog_remove_image(cat, 2, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(3) | B(4) | B(6) | B(10));
    cr_assert_eq(lk_catalog_delete_product(cat, "BEAN", &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(3) | B(4) | B(6));

    struct lk_image_brief br;
    cr_assert_eq(lk_catalog_image_brief(cat, 4, &br, &e), LK_OK);
    cr_assert_eq(br.stock, 7);
    cr_assert_eq(br.price_minor, 45000);
    cr_assert_eq(lk_catalog_image_brief(cat, 10, &br, &e), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_catalog_image_brief(cat, 999, &br, &e), LK_ERR_NOT_FOUND);
    cr_assert_eq(lk_catalog_image_brief(cat, -1, &br, &e), LK_ERR_NOT_FOUND);
    lk_allow_free(&a);
}

Test(filter, other_handles_writes_arrive_on_refresh)
{
    import_csv(small_csv);
    struct lk_catalog *other;
    struct lk_err e = {0};
    cr_assert_eq(lk_catalog_open(data, NULL, &other, &e), LK_OK);
    struct lk_filter f;
    lk_filter_default(&f);
    struct lk_allow a = {0};
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(8) | B(9));
    cr_assert_eq(lk_catalog_set_stock(other, "SOFA", 0, &e), LK_OK);
    cr_assert_eq(lk_catalog_refresh(cat, &e), LK_OK);
    cr_assert_eq(run(&f, &a), B(2) | B(3) | B(8) | B(9));
    /* and the writer's own snapshot was patched in place */
    struct lk_allow b = {0};
    cr_assert_eq(lk_catalog_allow_build(other, &f, &b, &e), LK_OK);
    cr_assert_eq(bits(&b), B(2) | B(3) | B(8) | B(9));
    lk_allow_free(&b);
    lk_allow_free(&a);
    lk_catalog_close(other);
}

/* ---- concurrency: builders under the read lock while a writer patches ---- */

struct worker {
    int stop;
    int builds;
    int errors;
};

static void *builder(void *arg)
{
    struct worker *w = arg;
    struct lk_filter f;
    lk_filter_default(&f);
    struct lk_allow a = {0};
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        if (lk_catalog_allow_build(cat, &f, &a, NULL) != LK_OK)
            w->errors++;
        w->builds++;
    }
    lk_allow_free(&a);
    return NULL;
}

Test(filter, concurrent_builders_and_writer)
{
    import_csv(small_csv);
    struct worker w = {0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, builder, &w);
    struct lk_err e = {0};
    for (int i = 0; i < 40; i++)
        cr_assert_eq(lk_catalog_set_stock(cat, "SOFA", i % 2, &e), LK_OK, "%s", e.msg);
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(w.errors, 0);
    cr_assert_gt(w.builds, 0);
    struct lk_filter f;
    lk_filter_default(&f);
    struct lk_allow a = {0};
    cr_assert_eq(run(&f, &a), B(1) | B(2) | B(3) | B(8) | B(9)); /* last write: stock 1 */
    lk_allow_free(&a);
}

/* ---- randomised oracle ---- */

struct oracle_prod {
    char sku[16];
    char category[64];
    int64_t price;
    char currency[4];
    int64_t stock;
    char regions[32];
    uint32_t flags;
};

struct oracle {
    struct oracle_prod *p;
    size_t n;
    int64_t *img_prod; /* image id -> index into p, -1 none */
    size_t nimg;
};

static int collect_prod(const struct lk_product *p, void *ud)
{
    struct oracle *o = ud;
    struct oracle_prod *q = &o->p[o->n++];
    snprintf(q->sku, sizeof q->sku, "%s", p->sku);
    snprintf(q->category, sizeof q->category, "%s", p->category);
    q->price = p->price_minor;
    memcpy(q->currency, p->currency, 4);
    q->stock = p->stock;
    snprintf(q->regions, sizeof q->regions, "%s", p->regions);
    q->flags = p->flags;
    return 0;
}

static int collect_img(const struct lk_catalog_image *im, void *ud)
{
    struct oracle *o = ud;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->p[i].sku, im->sku)) {
            o->img_prod[im->image_id] = (int64_t)i;
            return 0;
        }
    return 1;
}

static int oracle_pass(const struct oracle_prod *p, const struct lk_filter *f)
{
    if (f->in_stock && p->stock <= 0)
        return 0;
    if (!f->admin && (p->flags & (LK_FLAG_RESTRICTED | LK_FLAG_RETIRED)))
        return 0;
    if (!f->admin && !f->allow_age_restricted && (p->flags & LK_FLAG_AGE_RESTRICTED))
        return 0;
    if (p->price < f->min_price_minor || p->price > f->max_price_minor)
        return 0;
    int bounded = f->min_price_minor > LK_PRICE_ANY_MIN || f->max_price_minor < LK_PRICE_ANY_MAX;
    if (f->currency && bounded && strcmp(p->currency, f->currency))
        return 0;
    if (f->region && p->regions[0]) {
        /* whole-code membership in "A|B|C" */
        char pad[40], code[12];
        snprintf(pad, sizeof pad, "|%s|", p->regions);
        snprintf(code, sizeof code, "|%s|", f->region);
        if (!strstr(pad, code))
            return 0;
    }
    if (f->category && *f->category) {
        size_t n = strlen(f->category);
        if (strncmp(p->category, f->category, n) || (p->category[n] && p->category[n] != '/'))
            return 0;
    }
    return 1;
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

Test(filter, random_filters_match_a_brute_force_oracle)
{
    static const char *cats[] = {"home", "home/furniture", "home/furniture/sofas",
                                 "home/furnishings", "toys", "toys/cars", "clothes/hats", ""};
    static const char *regs[] = {"", "US", "CA|US", "EU", "EU|UK", "CA"};
    static const char *flags[] = {"", "", "", "restricted", "age_restricted", "retired"};
    static const char *curs[] = {"USD", "USD", "EUR"};
    unsigned seed = 12345;
#define RND() rnd(&seed)
    size_t cap = 3000 * 160 + 100;
    char *csv = malloc(cap);
    size_t len = (size_t)snprintf(csv, cap, "sku,category,price,currency,stock,regions,flags,image\n");
    for (int i = 0; i < 3000; i++) {
        int nimg = 1 + (int)(RND() % 3);
        char img[64] = "";
        for (int k = 0; k < nimg; k++)
            snprintf(img + strlen(img), sizeof img - strlen(img), "%si%d_%d.png", k ? "|" : "", i, k);
        const char *cc = cats[RND() % 8];
        unsigned units = RND() % 300, cents = RND() % 100;
        const char *cu = curs[RND() % 3];
        unsigned stock = RND() % 4;
        const char *rg = regs[RND() % 6], *fl = flags[RND() % 6];
        len += (size_t)snprintf(csv + len, cap - len, "R%05d,%s,%u.%02u,%s,%u,%s,%s,%s\n", i, cc,
                                units, cents, cu, stock, rg, fl, img);
    }
    import_csv(csv);
    free(csv);

    struct oracle o = {0};
    o.p = calloc(3000, sizeof *o.p);
    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, NULL), LK_OK);
    o.nimg = (size_t)c.max_image_id + 1;
    o.img_prod = malloc(o.nimg * sizeof *o.img_prod);
    for (size_t i = 0; i < o.nimg; i++)
        o.img_prod[i] = -1;
    cr_assert_eq(lk_catalog_foreach_product(cat, collect_prod, &o, NULL), LK_OK);
    cr_assert_eq(lk_catalog_foreach_image(cat, collect_img, &o, NULL), LK_OK);

    static const char *fcats[] = {NULL, "home", "home/furniture", "toys", "home/furn", "clothes"};
    static const char *fregs[] = {NULL, "US", "EU", "CA", "UK", "JP"};
    struct lk_allow a = {0};
    for (int t = 0; t < 300; t++) {
        struct lk_filter f;
        lk_filter_default(&f);
        f.in_stock = (int)(RND() % 2);
        f.admin = RND() % 4 == 0;
        f.allow_age_restricted = (int)(RND() % 2);
        f.category = fcats[RND() % 6];
        f.region = fregs[RND() % 6];
        if (RND() % 2) {
            f.min_price_minor = RND() % 15000;
            f.max_price_minor = f.min_price_minor + RND() % 20000;
            f.currency = RND() % 2 ? curs[RND() % 3] : NULL;
        }
        struct lk_err e = {0};
        cr_assert_eq(lk_catalog_allow_build(cat, &f, &a, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(a.nbits, o.nimg);
        size_t want = 0;
        for (size_t id = 0; id < o.nimg; id++) {
            int exp = o.img_prod[id] >= 0 && oracle_pass(&o.p[o.img_prod[id]], &f);
            want += (size_t)exp;
            cr_assert_eq(lk_allow_test(&a, id), exp, "filter %d, image %zu", t, id);
        }
        cr_assert_eq(a.count, want);
    }
    lk_allow_free(&a);
    free(o.p);
    free(o.img_prod);
}
