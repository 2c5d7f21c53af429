/*
 * test_disk_full.c — disk faults during index saves, index generations and
 * catalog writes.
 *
 * A full disk is simulated per process with RLIMIT_FSIZE in a forked child
 * (SIGXFSZ ignored, so write() fails with EFBIG past the limit, as it
 * fails with ENOSPC on a full file system; nothing else on the machine is
 * affected).  The child attempts the write and reports its status through
 * its exit code; the parent, without the limit, then checks that
 *   - the call returned an error (LK_ERR_IO / LK_ERR_DB), not success;
 *   - the previous state is intact: the old index file loads with its old
 *     contents, the previous generation is still current, the catalog
 *     passes SQLite's integrity_check and holds exactly the old data
 *     (imports are one transaction);
 *   - no temporary file is left behind;
 *   - rerunning the same write without the limit succeeds.
 * Truncated and bit-flipped index files are covered by tests/index/
 * test_hnsw_io.c and fuzz/fuzz_index_load.c, not repeated here.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lookalike/catalog.h"
#include "lookalike/index.h"
#include "lookalike/status.h"

/* ==== Helpers ==== */

static char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char t[4096];
    snprintf(t, sizeof t, "%s/lk-fault-disk-XXXXXX", base && *base ? base : "/tmp");
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

static size_t dir_entries(const char *d)
{
    DIR *dp = opendir(d);
    cr_assert_not_null(dp);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(dp);
    return n;
}

/* Run fn(arg) in a child limited to `limit` bytes per file; returns the
 * status fn returned (LK_* codes are small negatives; passed as -status). */
static int in_full_disk(rlim_t limit, int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(100);
        int rc = fn(arg);
        _exit(rc <= 0 ? -rc : 101);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_lt(WEXITSTATUS(st), 100, "child setup failed (%d)", WEXITSTATUS(st));
    return -WEXITSTATUS(st);
}

/* ==== Index save ==== */

#define DIM 32

static struct lk_index *make_index(unsigned n, unsigned seed)
{
    struct lk_index_params p;
    lk_index_params_default(&p, DIM);
    p.M = 8;
    p.ef_construction = 32;
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

struct save_arg {
    struct lk_index *idx;
    const char *path;
};

static int do_save(void *a)
{
    struct save_arg *s = a;
    struct lk_err err = {0};
    int rc = lk_index_save(s->idx, s->path, &err);
    if (rc != LK_OK && (rc != LK_ERR_IO || !strstr(err.msg, "large")))
        fprintf(stderr, "save under limit: %s\n", err.msg);
    return rc;
}

static void expect_old_index(const char *path, unsigned old_n, unsigned old_seed)
{
    struct lk_index *idx = NULL;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_load(path, 0, &idx, &err), LK_OK, "previous index unreadable: %s", err.msg);
    struct lk_index_stats st;
    lk_index_stats(idx, &st);
    cr_assert_eq(st.count, old_n);
    cr_assert(lk_index_contains(idx, old_seed * 100000u), "old contents replaced");
    cr_assert_eq(lk_index_check(idx, &err), LK_OK, "%s", err.msg);
    lk_index_free(idx);
}

Test(disk_full, index_save_keeps_previous_file, .timeout = 120)
{
    char *dir = tmpdir_new();
    char path[4200];
    snprintf(path, sizeof path, "%s/index.lkidx", dir);
    struct lk_err err = {0};
    struct lk_index *old = make_index(20, 1);
    cr_assert_eq(lk_index_save(old, path, &err), LK_OK, "%s", err.msg);
    lk_index_free(old);

    struct lk_index *big = make_index(1500, 2);   /* ~ 1500 x 200 bytes: > every limit below */
    struct save_arg a = {big, path};
    /* limits inside the header, the first page, the node section, and the tail */
    static const rlim_t limits[] = {0, 100, 256, 4096, 4097, 20000, 100000, 250000};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        int rc = in_full_disk(limits[i], do_save, &a);
        cr_assert_eq(rc, LK_ERR_IO, "limit %lu: save returned %d, want LK_ERR_IO", (unsigned long)limits[i], rc);
        expect_old_index(path, 20, 1);
        cr_assert_eq(dir_entries(dir), 1, "limit %lu: temporary file left behind", (unsigned long)limits[i]);
    }
    /* disk has room again: the save succeeds and replaces the file */
    cr_assert_eq(lk_index_save(big, path, &err), LK_OK, "%s", err.msg);
    expect_old_index(path, 1500, 2);
    lk_index_free(big);
    rm_rf(dir);
}

/* ==== Index generations ==== */

struct gen_arg {
    const char *data_dir;
    struct lk_index *idx;
};

/* A generation build that runs out of disk while writing its index: the
 * save fails, the build is not committed and lk_gen_build_free removes it. */
static int do_generation(void *a)
{
    struct gen_arg *g = a;
    struct lk_gen_build *b = NULL;
    struct lk_err err = {0};
    int rc = lk_generation_begin(g->data_dir, 1, &b, &err);
    if (rc != LK_OK)
        return rc;
    char p[4200];
    snprintf(p, sizeof p, "%s/index.lkidx", lk_gen_build_dir(b));
    rc = lk_index_save(g->idx, p, &err);
    if (rc == LK_OK)
        rc = lk_generation_commit(b, NULL, &err);
    lk_gen_build_free(b);
    return rc;
}

Test(disk_full, generation_build_keeps_previous_generation, .timeout = 120)
{
    char *dir = tmpdir_new();
    struct lk_err err = {0};
    struct lk_index *small = make_index(10, 3);
    struct gen_arg g = {dir, small};
    cr_assert_eq(do_generation(&g), LK_OK);
    struct lk_generation before;
    cr_assert_eq(lk_generation_current(dir, &before, &err), LK_OK, "%s", err.msg);

    struct lk_index *big = make_index(1500, 4);
    g.idx = big;
    static const rlim_t limits[] = {4096, 50000};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        int rc = in_full_disk(limits[i], do_generation, &g);
        cr_assert_eq(rc, LK_ERR_IO, "limit %lu: %d", (unsigned long)limits[i], rc);
        struct lk_generation now;
        cr_assert_eq(lk_generation_current(dir, &now, &err), LK_OK, "%s", err.msg);
        cr_assert_eq(now.number, before.number, "a failed build became current");
        cr_assert_eq(lk_generation_verify(&now, &err), LK_OK, "%s", err.msg);
        char p[4200];
        if (now.dir[0] == '/')
            snprintf(p, sizeof p, "%s/index.lkidx", now.dir);
        else
            snprintf(p, sizeof p, "%s/%s/index.lkidx", dir, now.dir);
        expect_old_index(p, 10, 3);
    }
    /* rerun with room: commits the next generation */
    cr_assert_eq(do_generation(&g), LK_OK);
    struct lk_generation after;
    cr_assert_eq(lk_generation_current(dir, &after, &err), LK_OK, "%s", err.msg);
    cr_assert_gt(after.number, before.number);
    cr_assert_eq(lk_generation_verify(&after, &err), LK_OK, "%s", err.msg);
    lk_index_free(small);
    lk_index_free(big);
    rm_rf(dir);
}

/* ==== Catalog writes ==== */

struct cat_arg {
    const char *data_dir;
    const char *csv;
    int patches;        /* 0: import csv; else run stock updates until one fails */
};

static int do_catalog(void *a)
{
    struct cat_arg *c = a;
    struct lk_catalog *cat = NULL;
    struct lk_err err = {0};
    int rc = lk_catalog_open(c->data_dir, NULL, &cat, &err);
    if (rc != LK_OK)
        return rc == LK_ERR_DB ? -99 : rc;   /* the open itself must work: nothing to write yet */
    if (!c->patches) {
        struct lk_import_opts o;
        lk_import_opts_default(&o);
        o.check_images = 0;
        struct lk_import_report rep;
        memset(&rep, 0, sizeof rep);
        rc = lk_catalog_import_file(cat, c->csv, &o, &rep, &err);
        lk_import_report_free(&rep);
    } else {
        /* Each update is its own transaction; keep going until the disk is full. */
        for (int i = 0; i < c->patches && rc == LK_OK; i++) {
            char sku[32];
            snprintf(sku, sizeof sku, "P-%d", i % 50);
            rc = lk_catalog_set_stock(cat, sku, 1000 + i, &err);
        }
    }
    lk_catalog_close(cat);
    return rc;
}

static void write_csv(const char *path, int first, int n, int long_titles)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "sku,title,category,price,currency,stock,notes\n");
    for (int i = first; i < first + n; i++) {
        fprintf(f, "P-%d,Product %d", i, i);
        for (int k = 0; long_titles && k < 30; k++)
            fprintf(f, " lorem ipsum");
        fprintf(f, ",home/kitchen,%d.99,EUR,%d,note %d\n", i % 500, i % 7, i);
    }
    cr_assert_eq(fclose(f), 0);
}

static struct lk_catalog_counts counts_and_integrity(const char *data_dir)
{
    struct lk_catalog *cat = NULL;
    struct lk_err err = {0};
    cr_assert_eq(lk_catalog_open(data_dir, NULL, &cat, &err), LK_OK, "reopen after disk full: %s", err.msg);
    cr_assert_eq(lk_catalog_integrity_check(cat, &err), LK_OK, "integrity_check: %s", err.msg);
    struct lk_catalog_counts c;
    cr_assert_eq(lk_catalog_counts(cat, &c, &err), LK_OK, "%s", err.msg);
    lk_catalog_close(cat);
    return c;
}

static off_t fsize(const char *dir, const char *name)
{
    char p[8448];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? st.st_size : 0;
}

Test(disk_full, catalog_import_is_all_or_nothing, .timeout = 120)
{
    char *dir = tmpdir_new();
    char data[4200], csv1[4200], csv2[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(csv1, sizeof csv1, "%s/first.csv", dir);
    snprintf(csv2, sizeof csv2, "%s/second.csv", dir);
    write_csv(csv1, 0, 50, 0);
    write_csv(csv2, 50, 4000, 1);   /* ~1.5 MB of rows */
    struct cat_arg a = {data, csv1, 0};
    cr_assert_eq(do_catalog(&a), LK_OK);
    struct lk_catalog_counts c0 = counts_and_integrity(data);
    cr_assert_eq(c0.products, 50);

    off_t db = fsize(data, "catalog.sqlite"), wal = fsize(data, "catalog.sqlite-wal");
    rlim_t base = (rlim_t)(db > wal ? db : wal);
    a.csv = csv2;
    static const rlim_t extra[] = {0, 8192, 65536, 400000};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        int rc = in_full_disk(base + extra[i], do_catalog, &a);
        cr_assert(rc == LK_ERR_DB || rc == LK_ERR_IO, "limit +%lu: import returned %d (%s), want LK_ERR_DB",
                  (unsigned long)extra[i], rc, lk_status_str(rc));
        struct lk_catalog_counts c = counts_and_integrity(data);
        cr_assert_eq(c.products, 50, "limit +%lu: a failed import changed the catalog (%lu products)",
                     (unsigned long)extra[i], (unsigned long)c.products);
    }
    /* room again: the same import succeeds */
    cr_assert_eq(do_catalog(&a), LK_OK);
    cr_assert_eq(counts_and_integrity(data).products, 4050);
    rm_rf(dir);
}

Test(disk_full, catalog_stock_updates_stop_cleanly, .timeout = 120)
{
    char *dir = tmpdir_new();
    char data[4200], csv[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(csv, sizeof csv, "%s/first.csv", dir);
    write_csv(csv, 0, 50, 0);
    struct cat_arg a = {data, csv, 0};
    cr_assert_eq(do_catalog(&a), LK_OK);
    off_t db = fsize(data, "catalog.sqlite"), wal = fsize(data, "catalog.sqlite-wal");
    rlim_t base = (rlim_t)(db > wal ? db : wal);
    a.patches = 100000;
    int rc = in_full_disk(base + 4096, do_catalog, &a);
    cr_assert(rc == LK_ERR_DB || rc == LK_ERR_IO, "stock updates on a full disk returned %d (%s)", rc,
              lk_status_str(rc));
    struct lk_catalog_counts c = counts_and_integrity(data);
    cr_assert_eq(c.products, 50);
    /* room again: updates work */
    a.patches = 100;
    cr_assert_eq(do_catalog(&a), LK_OK);
    counts_and_integrity(data);
    rm_rf(dir);
}
