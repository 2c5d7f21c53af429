/*
 * test_kill.c — the process killed (SIGKILL) at random points during index
 * saves, index generation builds and catalog writes.
 *
 * A forked child repeats the write in a loop; the parent kills it after a
 * random delay (0..40 ms, seeded, 12 rounds per case) and then checks,
 * without the child: the index file loads and is one of the two complete
 * versions; the current generation verifies against its checksum and its
 * index loads; the catalog opens, passes integrity_check and holds one of
 * the committed states (imports are one transaction).  Finally the same
 * write succeeds again (a killed builder's lock is released with the
 * process; stale generations are garbage-collected).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lookalike/catalog.h"
#include "lookalike/index.h"
#include "lookalike/status.h"

#define ROUNDS 12
#define DIM 16

static char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char t[4096];
    snprintf(t, sizeof t, "%s/lk-fault-kill-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(t));
    return strdup(t);
}

static void rm_rf(char *d)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
    free(d);
}

static struct lk_index *make_index(unsigned n, unsigned seed)
{
    struct lk_index_params p;
    lk_index_params_default(&p, DIM);
    p.M = 8;
    p.ef_construction = 24;
    struct lk_index *idx;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_new(&p, &idx, &err), LK_OK, "%s", err.msg);
    uint32_t s = seed;
    float v[DIM];
    for (unsigned i = 0; i < n; i++) {
        for (unsigned d = 0; d < DIM; d++) {
            s = s * 1664525u + 1013904223u;
            v[d] = (float)(s >> 8) / 16777216.0f;
        }
        cr_assert_eq(lk_index_add(idx, seed * 100000u + i, v, &err), LK_OK, "%s", err.msg);
    }
    return idx;
}

/* Fork; the child runs loop(arg) until killed after a random delay. */
static void run_and_kill(void (*loop)(void *), void *arg, unsigned *seed)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        loop(arg);
        _exit(0);
    }
    struct timespec ts = {0, (long)(rand_r(seed) % 40000) * 1000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
}

/* ==== Index save ==== */

struct save_loop {
    struct lk_index *a, *b;
    const char *path;
};

static void save_forever(void *arg)
{
    struct save_loop *s = arg;
    for (unsigned i = 0;; i++)
        if (lk_index_save(i % 2 ? s->b : s->a, s->path, NULL) != LK_OK)
            _exit(3);
}

Test(kill, index_save, .timeout = 120)
{
    char *dir = tmpdir_new();
    char path[4200];
    snprintf(path, sizeof path, "%s/index.lkidx", dir);
    struct save_loop s = {make_index(200, 1), make_index(900, 2), path};
    struct lk_err err = {0};
    cr_assert_eq(lk_index_save(s.a, path, &err), LK_OK, "%s", err.msg);
    unsigned seed = 42;
    for (int r = 0; r < ROUNDS; r++) {
        run_and_kill(save_forever, &s, &seed);
        struct lk_index *idx = NULL;
        cr_assert_eq(lk_index_load(path, 0, &idx, &err), LK_OK, "round %d: index unreadable after kill: %s", r,
                     err.msg);
        struct lk_index_stats st;
        lk_index_stats(idx, &st);
        cr_assert(st.count == 200 || st.count == 900, "round %d: %zu items", r, st.count);
        lk_index_free(idx);
    }
    cr_assert_eq(lk_index_save(s.b, path, &err), LK_OK, "%s", err.msg);
    lk_index_free(s.a);
    lk_index_free(s.b);
    rm_rf(dir);
}

/* ==== Generations ==== */

struct gen_loop {
    const char *data_dir;
    struct lk_index *idx;
};

static void generations_forever(void *arg)
{
    struct gen_loop *g = arg;
    for (;;) {
        struct lk_gen_build *b = NULL;
        if (lk_generation_begin(g->data_dir, 1, &b, NULL) != LK_OK)
            _exit(3);
        char p[4200];
        snprintf(p, sizeof p, "%s/index.lkidx", lk_gen_build_dir(b));
        if (lk_index_save(g->idx, p, NULL) != LK_OK || lk_generation_commit(b, NULL, NULL) != LK_OK)
            _exit(4);
        lk_gen_build_free(b);
    }
}

static void check_current_generation(const char *data_dir, int round)
{
    struct lk_generation g;
    struct lk_err err = {0};
    cr_assert_eq(lk_generation_current(data_dir, &g, &err), LK_OK, "round %d: %s", round, err.msg);
    cr_assert_eq(lk_generation_verify(&g, &err), LK_OK, "round %d: generation %lu: %s", round,
                 (unsigned long)g.number, err.msg);
    char p[8448];
    if (g.dir[0] == '/')
        snprintf(p, sizeof p, "%s/index.lkidx", g.dir);
    else
        snprintf(p, sizeof p, "%s/%s/index.lkidx", data_dir, g.dir);
    struct lk_index *idx = NULL;
    cr_assert_eq(lk_index_load(p, 0, &idx, &err), LK_OK, "round %d: %s", round, err.msg);
    lk_index_free(idx);
}

Test(kill, generation_build, .timeout = 120)
{
    char *dir = tmpdir_new();
    struct gen_loop g = {dir, make_index(600, 3)};
    /* first generation, committed without interference */
    {
        struct lk_gen_build *b = NULL;
        struct lk_err err = {0};
        cr_assert_eq(lk_generation_begin(dir, 1, &b, &err), LK_OK, "%s", err.msg);
        char p[4200];
        snprintf(p, sizeof p, "%s/index.lkidx", lk_gen_build_dir(b));
        cr_assert_eq(lk_index_save(g.idx, p, &err), LK_OK, "%s", err.msg);
        cr_assert_eq(lk_generation_commit(b, NULL, &err), LK_OK, "%s", err.msg);
        lk_gen_build_free(b);
    }
    unsigned seed = 7;
    for (int r = 0; r < ROUNDS; r++) {
        run_and_kill(generations_forever, &g, &seed);
        check_current_generation(dir, r);
    }
    unsigned removed = 0;
    struct lk_err err = {0};
    cr_assert_eq(lk_generation_gc(dir, 1, &removed, &err), LK_OK, "%s", err.msg);
    check_current_generation(dir, ROUNDS);
    lk_index_free(g.idx);
    rm_rf(dir);
}

/* ==== Catalog ==== */

struct cat_loop {
    const char *data_dir;
    const char *csv_a, *csv_b;
};

static void catalog_forever(void *arg)
{
    struct cat_loop *c = arg;
    struct lk_catalog *cat = NULL;
    if (lk_catalog_open(c->data_dir, NULL, &cat, NULL) != LK_OK)
        _exit(3);
    for (unsigned i = 0;; i++) {
        struct lk_import_opts o;
        lk_import_opts_default(&o);
        o.check_images = 0;
        struct lk_import_report rep;
        memset(&rep, 0, sizeof rep);
        if (lk_catalog_import_file(cat, i % 2 ? c->csv_b : c->csv_a, &o, &rep, NULL) != LK_OK)
            _exit(4);
        lk_import_report_free(&rep);
        for (int k = 0; k < 20; k++) {
            char sku[32];
            snprintf(sku, sizeof sku, "K-%d", k);
            if (lk_catalog_set_stock(cat, sku, (int64_t)(i * 20 + (unsigned)k), NULL) != LK_OK)
                _exit(5);
        }
    }
}

static void write_csv(const char *path, int n, int price)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "sku,title,category,price,currency,stock\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "K-%d,Item %d,home/kitchen,%d,EUR,%d\n", i, i, price, i % 5);
    cr_assert_eq(fclose(f), 0);
}

struct price_check {
    int64_t price;
    int mixed;
};

static int price_of(const struct lk_product *p, void *ud)
{
    struct price_check *c = ud;
    if (c->price < 0)
        c->price = p->price_minor;
    else if (c->price != p->price_minor)
        c->mixed = 1;
    return 0;
}

Test(kill, catalog_import_and_patch, .timeout = 120)
{
    char *dir = tmpdir_new();
    char data[4200], a[4200], b[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(a, sizeof a, "%s/a.csv", dir);
    snprintf(b, sizeof b, "%s/b.csv", dir);
    write_csv(a, 400, 3);
    write_csv(b, 400, 5);
    struct cat_loop c = {data, a, b};
    unsigned seed = 99;
    for (int r = 0; r < ROUNDS; r++) {
        run_and_kill(catalog_forever, &c, &seed);
        struct lk_catalog *cat = NULL;
        struct lk_err err = {0};
        int rc = lk_catalog_open(data, NULL, &cat, &err);
        cr_assert_eq(rc, LK_OK, "round %d: reopen: %s", r, err.msg);
        cr_assert_eq(lk_catalog_integrity_check(cat, &err), LK_OK, "round %d: %s", r, err.msg);
        struct lk_catalog_counts cnt;
        cr_assert_eq(lk_catalog_counts(cat, &cnt, &err), LK_OK, "%s", err.msg);
        cr_assert(cnt.products == 0 || cnt.products == 400, "round %d: half an import (%lu products)", r,
                  (unsigned long)cnt.products);
        struct price_check pc = {-1, 0};
        cr_assert_eq(lk_catalog_foreach_product(cat, price_of, &pc, &err), LK_OK, "%s", err.msg);
        cr_assert(!pc.mixed, "round %d: products from two different imports", r);
        lk_catalog_close(cat);
    }
    rm_rf(dir);
}
