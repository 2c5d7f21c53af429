/*
 * bench/reorder.c — queries/s of ONE built HNSW index before and after
 * lk_index_reorder, so the gain of the graph reordering is measured without
 * the noise of two builds (two 1M builds differ by more than a few percent).
 *
 * The index is built once (--threads threads) and cached next to the data
 * set (<cache>/reorder-<set>-n<N>.lkx, in insertion order); the run loads it
 * twice and reorders one copy, so both sides are the same graph.
 * Per ef_search: recall@10 against the set's exact ground truth and
 * single-thread queries/s, best of 3 rounds alternating before/after order
 * (each round >= 0.5 s); the hits of every query are compared before/after
 * (ids and distances must be equal).  Prints the CPU, flags, SIMD path and
 * git revision like the other benches.
 *
 *   reorder --sets synth --n 1000000 --queries 2000 --cache /tmp/lookalike-bench
 *   reorder --sets sift-5k        (real sets: --data DIR as bench/ann)
 */
#include "ann_data.h"
#include "sysinfo.h"

#include <lookalike/index.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define K 10
#define ROUNDS 3
#define MAX_EF 16

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "reorder: %s: %s\n", what, msg);
    exit(1);
}

/* Single-thread queries/s over the query set (repeated to >= min_s). */
static double qps(const struct lk_index *ix, const struct ann_set *s, uint32_t ef, double min_s)
{
    struct lk_search_opts o = {.ef_search = ef};
    struct lk_hit out[K];
    size_t n, done = 0;
    double t0 = now(), t;
    do {
        for (size_t q = 0; q < s->nq; q++)
            lk_index_search(ix, s->queries + q * s->dim, K, &o, out, &n, NULL);
        done += s->nq;
    } while ((t = now() - t0) < min_s);
    return (double)done / t;
}

/* recall@10 and all hits (nq x K) for ef. */
static double run_hits(const struct lk_index *ix, const struct ann_set *s, uint32_t ef, struct lk_hit *hits)
{
    struct lk_search_opts o = {.ef_search = ef};
    size_t good = 0;
    for (size_t q = 0; q < s->nq; q++) {
        size_t n = 0;
        struct lk_hit *h = hits + q * K;
        memset(h, 0, K * sizeof *h);
        lk_index_search(ix, s->queries + q * s->dim, K, &o, h, &n, NULL);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < K; j++)
                good += (int64_t)h[i].id == s->gt[q * s->gt_k + j];
    }
    return (double)good / (double)(s->nq * K);
}

static struct lk_index *load_or_build(const struct ann_set *s, const char *path, unsigned threads)
{
    struct lk_err e = {0};
    struct lk_index *ix = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && lk_index_load(path, 0, &ix, &e) == LK_OK)
        return ix;
    struct lk_index_params p;
    lk_index_params_default(&p, (uint32_t)s->dim);
    p.M = 16, p.ef_construction = 200;
    uint64_t *ids = malloc(s->n * sizeof *ids);
    for (size_t i = 0; i < s->n; i++)
        ids[i] = i;
    if (lk_index_new(&p, &ix, &e) || lk_index_add_batch(ix, ids, s->base, s->n, threads, &e))
        die("build", e.msg);
    free(ids);
    if (lk_index_save(ix, path, &e))
        die("save", e.msg);
    return ix;
}

int main(int argc, char **argv)
{
    const char *set = "synth", *cache = "/tmp/lookalike-bench", *data = "/work/shared/data/ann";
    const char *eflist = "16,32,64,128";
    size_t n = 1000000, nq = 2000;
    unsigned threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sets")) set = argv[i + 1];
        else if (!strcmp(argv[i], "--n")) n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--queries")) nq = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--cache")) cache = argv[i + 1];
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--ef")) eflist = argv[i + 1];
        else {
            fprintf(stderr, "usage: reorder [--sets synth|NAME] [--n N] [--queries N] [--cache DIR] [--data DIR]\n"
                            "               [--threads T] [--ef 16,32,64,128]\n");
            return 2;
        }
    }
    struct bench_sysinfo si;
    bench_sysinfo_get(&si);
    bench_sysinfo_print(&si, stdout);
    struct ann_set s = {0};
    char msg[512], path[1024];
    int rc = !strcmp(set, "synth") ? ann_synth_set(n, nq, 128, 1024, 16, 42, cache, threads, &s, msg, sizeof msg)
                                   : ann_load_set(data, set, nq, threads, &s, msg, sizeof msg);
    if (rc)
        die(set, msg);
    mkdir(cache, 0755);
    snprintf(path, sizeof path, "%s/reorder-%s-n%zu.lkx", cache, set, s.n);
    uint32_t ef[MAX_EF];
    size_t nef = 0;
    for (char *p = (char *)eflist; *p && nef < MAX_EF;) {
        ef[nef++] = (uint32_t)strtoul(p, &p, 10);
        if (*p == ',')
            p++;
    }
    struct lk_index *base = load_or_build(&s, path, threads);
    lk_index_free(base);
    struct lk_hit *ha = malloc(s.nq * K * sizeof *ha), *hb = malloc(s.nq * K * sizeof *hb);
    printf("\n%s: %zu x %zu, %zu queries, k=%d, index %s\n", s.name, s.n, s.dim, s.nq, K, path);
    {
        struct lk_index *a = NULL, *b = NULL;
        struct lk_err e = {0};
        if (lk_index_load(path, 0, &a, &e) || lk_index_load(path, 0, &b, &e))
            die("load", e.msg);
        double t0 = now();
        if (lk_index_reorder(b, &e))
            die("reorder", e.msg);
        double tr = now() - t0;
        int chk = lk_index_check(b, &e);
        printf("\nlk_index_reorder: %.2f s, check %s\n", tr, chk ? e.msg : "ok");
        printf("%5s %8s %10s %10s %7s %8s\n", "ef", "R@10", "QPS before", "QPS after", "ratio", "same");
        for (size_t i = 0; i < nef; i++) {
            double ra = run_hits(a, &s, ef[i], ha), rb = run_hits(b, &s, ef[i], hb);
            size_t same = 0;
            for (size_t q = 0; q < s.nq * K; q++)
                same += ha[q].id == hb[q].id && ha[q].distance == hb[q].distance;
            double qa = 0, qb = 0;
            for (int r = 0; r < ROUNDS; r++) {
                double x = qps(a, &s, ef[i], 0.5), y = qps(b, &s, ef[i], 0.5);
                qa = x > qa ? x : qa, qb = y > qb ? y : qb;
            }
            printf("%5u %8.4f %10.0f %10.0f %7.3f %7.4f%s\n", ef[i], ra, qa, qb, qb / qa,
                   (double)same / (double)(s.nq * K), ra != rb ? " (recall differs)" : "");
            fflush(stdout);
        }
        lk_index_free(a), lk_index_free(b);
    }
    free(ha), free(hb);
    ann_set_free(&s);
    return 0;
}
