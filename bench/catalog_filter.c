/*
 * bench/catalog_filter.c — cost of building a business-filter allow-list.
 *
 * Builds a synthetic catalog (N products, 1-3 images each, fixed seed) in a
 * temporary data directory, then times lk_catalog_allow_build for a few
 * typical filters and, as the baseline in the same run, the equivalent
 * SQL query that a per-search database lookup would need (SELECT image_id
 * ... JOIN products WHERE ..., bits set from the rows).  Prints ms per
 * build, ns per image, selectivity and the speed-up over SQL, with the CPU,
 * build flags and git revision.
 *
 *   bench_catalog_filter [products=100000] [reps=200]
 *
 * Synthetic data only; nothing outside the temporary directory is read.
 */
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lookalike/catalog.h"
#include "sysinfo.h"


static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static int rm_cb(const char *p, const struct stat *sb, int t, struct FTW *f)
{
    (void)sb; (void)t; (void)f;
    return remove(p);
}

struct bench_filter {
    const char *name;
    struct lk_filter f;
    const char *sql_where;
};

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

int main(int argc, char **argv)
{
    int nprod = argc > 1 ? atoi(argv[1]) : 100000;
    int reps = argc > 2 ? atoi(argv[2]) : 200;
    if (nprod < 1 || reps < 1) {
        fprintf(stderr, "usage: %s [products] [reps]\n", argv[0]);
        return 2;
    }
    char tmpl[] = "/tmp/lk-bench-filter-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        return 1;
    char csvp[512], data[512];
    snprintf(csvp, sizeof csvp, "%s/catalog.csv", dir);
    snprintf(data, sizeof data, "%s/data", dir);

    static const char *cats[] = {"home/furniture/sofas", "home/furniture/beanbags", "home/kitchen",
                                 "clothes/hats", "clothes/shoes", "toys/cars", "food/fruit",
                                 "sports/balls"};
    static const char *regs[] = {"", "US", "CA|US", "EU", "EU|UK", "CA|EU|UK|US"};
    static const char *flags[] = {"", "", "", "", "", "", "restricted", "age_restricted", "retired"};
    unsigned seed = 42;
    FILE *f = fopen(csvp, "w");
    fprintf(f, "sku,category,price,stock,regions,flags,image\n");
    for (int i = 0; i < nprod; i++) {
        int nimg = 1 + (int)(rnd(&seed) % 3 == 0) + (int)(rnd(&seed) % 5 == 0);
        const char *c = cats[rnd(&seed) % 8];
        unsigned price = rnd(&seed) % 50000, stock = rnd(&seed) % 6;
        const char *r = regs[rnd(&seed) % 6], *fl = flags[rnd(&seed) % 9];
        fprintf(f, "P%07d,%s,%u.%02u,%u,%s,%s,", i, c, price / 100, price % 100, stock, r, fl);
        for (int k = 0; k < nimg; k++)
            fprintf(f, "%si%d_%d.jpg", k ? "|" : "", i, k);
        fputc('\n', f);
    }
    fclose(f);

    struct lk_catalog *cat;
    struct lk_err e = {0};
    if (lk_catalog_open(data, NULL, &cat, &e)) {
        fprintf(stderr, "open: %s\n", e.msg);
        return 1;
    }
    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.check_images = 0;
    struct lk_import_report rep;
    double t0 = now_ms();
    if (lk_catalog_import_file(cat, csvp, &o, &rep, &e)) {
        fprintf(stderr, "import: %s\n", e.msg);
        return 1;
    }
    double t_import = now_ms() - t0;
    struct lk_catalog_counts cnt;
    lk_catalog_counts(cat, &cnt, &e);

    struct bench_sysinfo si;
    bench_sysinfo_get(&si);
    FILE *js = bench_json_open(NULL);
    printf("# catalog filter allow-list bench\n");
    bench_sysinfo_print(&si, stdout);
    printf("# sqlite %s; the allow-list build is scalar C (the simd line is the index kernels')\n",
           sqlite3_libversion());
    printf("# catalog: %llu products, %llu images (synthetic, seed 42); import %.0f ms "
           "(%.0f rows/s, no image checks)\n",
           (unsigned long long)cnt.products, (unsigned long long)cnt.images, t_import,
           rep.rows_read / (t_import / 1e3));
    lk_import_report_free(&rep);

    struct bench_filter bf[5];
    memset(bf, 0, sizeof bf);
    for (int i = 0; i < 5; i++)
        lk_filter_default(&bf[i].f);
    bf[0].name = "default (in stock, no restricted)";
    bf[0].sql_where = "p.stock > 0 AND (p.flags & 7) = 0";
    bf[1].name = "+ category home/furniture";
    bf[1].f.category = "home/furniture";
    bf[1].sql_where = "p.stock > 0 AND (p.flags & 7) = 0 AND "
                      "(p.category = 'home/furniture' OR p.category LIKE 'home/furniture/%')";
    bf[2].name = "+ region US, price 10.00-99.99";
    bf[2].f.region = "US";
    bf[2].f.min_price_minor = 1000;
    bf[2].f.max_price_minor = 9999;
    bf[2].sql_where = "p.stock > 0 AND (p.flags & 7) = 0 AND p.price_minor BETWEEN 1000 AND 9999 "
                      "AND (p.regions = '' OR '|' || p.regions || '|' LIKE '%|US|%')";
    bf[3].name = "admin, everything";
    bf[3].f.admin = 1;
    bf[3].f.in_stock = 0;
    bf[3].sql_where = "1";
    bf[4].name = "narrow: clothes/hats, EU, <= 20.00";
    bf[4].f.category = "clothes/hats";
    bf[4].f.region = "EU";
    bf[4].f.max_price_minor = 2000;
    bf[4].sql_where = "p.stock > 0 AND (p.flags & 7) = 0 AND p.price_minor <= 2000 AND "
                      "(p.category = 'clothes/hats' OR p.category LIKE 'clothes/hats/%') AND "
                      "(p.regions = '' OR '|' || p.regions || '|' LIKE '%|EU|%')";

    char dbp[600];
    snprintf(dbp, sizeof dbp, "%s/catalog.sqlite", data);
    sqlite3 *db;
    sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL);

    printf("%-36s %10s %9s %9s %9s %10s %8s\n", "filter", "allowed", "select.", "ms/build",
           "ns/image", "SQL ms", "speed-up");
    struct lk_allow a = {0};
    double *ms = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < 5; i++) {
        lk_catalog_allow_build(cat, &bf[i].f, &a, &e); /* warm-up, allocates words */
        for (int r = 0; r < reps; r++) {
            double s = now_ms();
            if (lk_catalog_allow_build(cat, &bf[i].f, &a, &e)) {
                fprintf(stderr, "build: %s\n", e.msg);
                return 1;
            }
            ms[r] = now_ms() - s;
        }
        double m = median(ms, reps);
        /* Baseline: the same allow-list from one SQL query per search. */
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT i.image_id FROM images i JOIN products p USING(product_id) WHERE %s",
                 bf[i].sql_where);
        sqlite3_stmt *st;
        sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        int sreps = reps < 10 ? reps : 10;
        size_t sql_count = 0;
        uint64_t *words = calloc(a.nwords, sizeof *words);
        for (int r = 0; r < sreps; r++) {
            double s = now_ms();
            sqlite3_reset(st);
            memset(words, 0, a.nwords * sizeof *words);
            sql_count = 0;
            while (sqlite3_step(st) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);
                words[id >> 6] |= 1ull << (id & 63);
                sql_count++;
            }
            ms[r] = now_ms() - s;
        }
        double sm = median(ms, sreps);
        sqlite3_finalize(st);
        free(words);
        printf("%-36s %10zu %8.1f%% %9.3f %9.2f %10.2f %7.0fx%s\n", bf[i].name, a.count,
               100.0 * (double)a.count / (double)cnt.images, m, m * 1e6 / (double)a.nbits, sm,
               sm / m, sql_count == a.count ? "" : "  (count differs from SQL!)");
        if (js) {
            bench_json_begin(js, &si, "catalog_filter", "allow_build");
            fputs(",\"filter\":", js);
            bench_json_str(js, bf[i].name);
            fprintf(js, ",\"products\":%llu,\"images\":%llu,\"allowed\":%zu,\"selectivity\":%.6f,"
                        "\"ms_per_build\":%.4f,\"sql_ms\":%.4f,\"speedup_vs_sql\":%.2f,\"sql_count_matches\":%s",
                    (unsigned long long)cnt.products, (unsigned long long)cnt.images, a.count,
                    (double)a.count / (double)cnt.images, m, sm, sm / m, sql_count == a.count ? "true" : "false");
            bench_json_end(js);
        }
    }
    /* PATCH latency: a stock update is one SQL transaction + a snapshot store. */
    int np = reps < 50 ? reps : 50;
    for (int r = 0; r < np; r++) {
        char sku[16];
        snprintf(sku, sizeof sku, "P%07d", r);
        double s = now_ms();
        lk_catalog_set_stock(cat, sku, r % 3, &e);
        ms[r] = now_ms() - s;
    }
    printf("# PATCH stock (commit with synchronous=FULL + snapshot update): median %.3f ms\n",
           median(ms, np));
    if (js) {
        bench_json_begin(js, &si, "catalog_filter", "patch_stock");
        fprintf(js, ",\"median_ms\":%.4f", median(ms, np));
        bench_json_end(js);
        fclose(js);
    }
    free(ms);
    lk_allow_free(&a);
    sqlite3_close(db);
    lk_catalog_close(cat);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
