/*
 * bench/ann.c — ANN benchmark: our HNSW index vs hnswlib vs exact search, in
 * one run, on the same data, the same queries and the same k.
 *
 * For each set it measures
 *   - build: wall time single-threaded (and with --threads threads, for both
 *     libraries), memory from each library's own accounting (bytes/vector)
 *     and the process RSS growth around each build (VmRSS before/after, and
 *     the peak via VmHWM after resetting it through /proc/self/clear_refs);
 *   - an ef_search sweep: recall@1, recall@10 (k = 10, timed) and recall@100
 *     (k = 100, untimed, on at most 1,000 queries) and single-threaded
 *     queries/s, ours and hnswlib interleaved per ef so load drift on the
 *     shared machine hits both; exact search (our flat index) for reference;
 *   - the same sweep's queries/s with --search-threads threads (default:
 *     the CPUs) searching one index at once, and its equal-recall ratios;
 *   - "equal recall" rows: for recall@10 targets 0.90/0.95/0.99 the QPS of
 *     each library, interpolated linearly between the two sweep points that
 *     bracket the target, and the ratio ours/hnswlib;
 *   - filtered search at selectivity 50/10/1/0.1 % with a random
 *     (uncorrelated) allow-list and a correlated one ("same category as the
 *     query": the query's group, then the groups whose centroids are nearest,
 *     the last one subsampled to hit the selectivity), against exact
 *     filtered ground truth computed by brute force here; ours (automatic
 *     mode, and graph-only at low selectivity), hnswlib (0.7-style filter
 *     emulated with deletion marks, see hnswlib_wrap.h) and exact-on-allowed
 *     (our flat index with the same bitmap); ours and exact in ROUNDS
 *     alternating rounds per ef, best of each, as in the sweep.
 *
 * Honesty rules kept here: identical parameters for both (M = 16,
 * ef_construction = 200; our defaults are checked and a second "ours"
 * configuration is built only if they differ); warm-up queries before every
 * timed loop; CLOCK_MONOTONIC; every search single-threaded except the
 * concurrent sweep, which says so; recall is
 * id-based |result top-k ∩ truth top-k| / k against exact ground truth that
 * does not come from the library under test.  Results go to stdout as tables
 * and to a JSON-lines file, each record carrying CPU, cores, compiler, flags,
 * SIMD path, git revision, date and load.
 */
#include "ann_data.h"
#include "hnswlib_wrap.h"
#include "sysinfo.h"

#include <lookalike/index.h>

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LK_BENCH_SOURCE_ROOT
#define LK_BENCH_SOURCE_ROOT "."
#endif

#define K 10            /* the k of every timed search */
#define K100 100
#define MAX_EF 32
#define R100_QUERIES 1000

/* Least timed seconds per measurement (--quick lowers it). */
static double min_time_s = 0.5;

static const double TARGETS[] = {0.90, 0.95, 0.99};
#define NTARGETS (sizeof TARGETS / sizeof TARGETS[0])
static const double SELECTIVITIES[] = {0.5, 0.1, 0.01, 0.001};
#define NSEL (sizeof SELECTIVITIES / sizeof SELECTIVITIES[0])

/* ==== Options =========================================================== */

struct opts {
    const char *data_dir;
    char sets[512];
    size_t synth_n, synth_dim, synth_clusters, synth_rank, synth_nq;
    uint64_t seed;
    bool quick;
    unsigned threads;
    size_t max_queries;     /* sweep */
    size_t max_fqueries;    /* filtered */
    size_t max_base;        /* truncate real sets (ground truth recomputed) */
    uint32_t ef[MAX_EF];
    size_t nef;
    uint32_t fef[MAX_EF];
    size_t nfef;
    const char *out;
    const char *cache_dir;
    bool no_filter;
    bool no_mt_build;       /* skip the multi-thread builds (time budget of `bench/run all` at 1M) */
    bool no_reorder;        /* skip lk_index_reorder after our builds (to compare) */
    unsigned search_threads; /* threads of the concurrent-search sweep; <= 1 skips it */
    double exact_seconds;   /* time budget of the exact (flat) timing */
};

static void usage(FILE *f)
{
    fputs(
        "usage: ann [options]\n"
        "  --data DIR        ANN sets directory (default: ../shared/data/ann from the cwd,\n"
        "                    then <source>/../shared/data/ann, then /work/shared/data/ann)\n"
        "  --sets LIST       comma list of fashion-mnist-784, yfcc-clip100-10k, sift-5k,\n"
        "                    synth, real (= the three real sets) or all (default: all)\n"
        "  --n N             synthetic set size (default 1000000; --quick 10000)\n"
        "  --dim D           synthetic dimension (default 128)\n"
        "  --seed S          synthetic seed (default 42)\n"
        "  --quick           small sizes and few queries (CI smoke test, < 1 minute)\n"
        "  --threads T       threads for ground truth and the multi-thread build (default: CPUs)\n"
        "  --no-mt-build     skip the multi-thread builds (single-thread builds still run)\n"
        "  --no-reorder      do not reorder our graphs after building (lk_index_reorder;\n"
        "                    by default our build time includes it)\n"
        "  --search-threads T  threads searching one index at once in the concurrent sweep\n"
        "                    (default: CPUs; 1 skips it)\n"
        "  --queries N       cap on queries of the ef sweep (default: all; synthetic has 10000)\n"
        "  --fqueries N      cap on queries of the filtered runs (default 1000)\n"
        "  --max-base N      truncate real sets to N base vectors, ground truth recomputed\n"
        "  --ef LIST         ef_search sweep (default 10,16,24,32,48,64,96,128,200,400)\n"
        "  --fef LIST        ef_search for filtered runs (default 64,200)\n"
        "  --no-filter       skip the filtered runs\n"
        "  --out FILE        JSON-lines results (default bench-results/ann-<set>.json per set)\n"
        "  --cache DIR       synthetic set cache (default /tmp/lookalike-bench)\n",
        f);
}

static size_t parse_list(const char *s, uint32_t *out, size_t cap)
{
    size_t n = 0;
    char *end;
    while (*s && n < cap) {
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > LK_HNSW_EF_SEARCH_MAX)
            return 0;
        out[n++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return 0;
    }
    return n;
}

static size_t parse_size(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0) {
        fprintf(stderr, "ann: bad %s '%s'\n", what, s);
        exit(2);
    }
    return (size_t)v;
}

static int dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->sets, sizeof o->sets, "all");
    o->synth_dim = 128;
    o->synth_clusters = 1024;
    o->synth_rank = 16;
    o->synth_nq = 10000;
    o->seed = 42;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = nc > 0 ? (unsigned)nc : 1;
    o->search_threads = o->threads;
    o->max_fqueries = 1000;
    o->cache_dir = "/tmp/lookalike-bench";
    o->exact_seconds = 3.0;
    o->nef = parse_list("10,16,24,32,48,64,96,128,200,400", o->ef, MAX_EF);
    o->nfef = parse_list("64,200", o->fef, MAX_EF);
    bool n_set = false, fq_set = false, ef_set = false, fef_set = false, q_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                        \
    do {                                                               \
        if (!v) {                                                      \
            fprintf(stderr, "ann: %s needs a value\n", a);             \
            exit(2);                                                   \
        }                                                              \
        i++;                                                           \
    } while (0)
        if (!strcmp(a, "--data")) {
            NEEDV();
            o->data_dir = v;
        } else if (!strcmp(a, "--sets")) {
            NEEDV();
            snprintf(o->sets, sizeof o->sets, "%s", v);
        } else if (!strcmp(a, "--n")) {
            NEEDV();
            o->synth_n = parse_size(v, "--n");
            n_set = true;
        } else if (!strcmp(a, "--dim")) {
            NEEDV();
            o->synth_dim = parse_size(v, "--dim");
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            o->seed = parse_size(v, "--seed");
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--threads")) {
            NEEDV();
            o->threads = (unsigned)parse_size(v, "--threads");
        } else if (!strcmp(a, "--queries")) {
            NEEDV();
            o->max_queries = parse_size(v, "--queries");
            q_set = true;
        } else if (!strcmp(a, "--fqueries")) {
            NEEDV();
            o->max_fqueries = parse_size(v, "--fqueries");
            fq_set = true;
        } else if (!strcmp(a, "--max-base")) {
            NEEDV();
            o->max_base = parse_size(v, "--max-base");
        } else if (!strcmp(a, "--ef")) {
            NEEDV();
            if (!(o->nef = parse_list(v, o->ef, MAX_EF))) {
                fprintf(stderr, "ann: bad --ef list '%s'\n", v);
                exit(2);
            }
            ef_set = true;
        } else if (!strcmp(a, "--fef")) {
            NEEDV();
            if (!(o->nfef = parse_list(v, o->fef, MAX_EF))) {
                fprintf(stderr, "ann: bad --fef list '%s'\n", v);
                exit(2);
            }
            fef_set = true;
        } else if (!strcmp(a, "--no-mt-build")) {
            o->no_mt_build = true;
        } else if (!strcmp(a, "--no-reorder")) {
            o->no_reorder = true;
        } else if (!strcmp(a, "--search-threads")) {
            NEEDV();
            o->search_threads = (unsigned)parse_size(v, "--search-threads");
        } else if (!strcmp(a, "--no-filter")) {
            o->no_filter = true;
        } else if (!strcmp(a, "--out")) {
            NEEDV();
            o->out = v;
        } else if (!strcmp(a, "--cache")) {
            NEEDV();
            o->cache_dir = v;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "ann: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
#undef NEEDV
    }
    if (!n_set)
        o->synth_n = o->quick ? 10000 : 1000000;
    if (o->quick) {
        if (!q_set)
            o->max_queries = 200;
        if (!fq_set)
            o->max_fqueries = 100;
        if (!o->max_base)
            o->max_base = 5000;
        if (!ef_set)
            o->nef = parse_list("16,32,64,128", o->ef, MAX_EF);
        if (!fef_set)
            o->nfef = parse_list("64", o->fef, MAX_EF);
        o->synth_nq = 200;
        o->exact_seconds = 0.3;
        min_time_s = 0.05;
    }
    if (o->max_queries && o->max_queries < o->synth_nq)
        o->synth_nq = o->max_queries;
    if (!o->data_dir) {
        static char buf[4096];
        if (dir_exists("../shared/data/ann"))
            o->data_dir = "../shared/data/ann";
        else if (snprintf(buf, sizeof buf, "%s/../shared/data/ann", LK_BENCH_SOURCE_ROOT) > 0 &&
                 dir_exists(buf))
            o->data_dir = buf;
        else
            o->data_dir = "/work/shared/data/ann";
    }
}

/* ==== Time and memory =================================================== */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread.  Wall time (above) is the headline; on a
 * shared, overloaded machine the CPU-time figure is the one that excludes
 * time the thread spent descheduled, so both are recorded. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A "key:   123 kB" line of /proc/self/status, in bytes (-1 if missing). */
static long long status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = atoll(line + kl + 1) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0; "5" in clear_refs). */
static bool reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

struct memprobe {
    long long rss0;
    bool peak_ok;
};

static void mem_begin(struct memprobe *m)
{
    malloc_trim(0);
    m->peak_ok = reset_peak();
    m->rss0 = status_bytes("VmRSS");
}

/* RSS growth kept after the build, and the peak growth during it. */
static void mem_end(const struct memprobe *m, long long *rss_delta, long long *peak_delta)
{
    long long rss = status_bytes("VmRSS"), hwm = status_bytes("VmHWM");
    *rss_delta = rss - m->rss0;
    *peak_delta = m->peak_ok ? hwm - m->rss0 : -1;
}

/* ==== Output ============================================================ */

struct out {
    FILE *json;
    const struct bench_sysinfo *si;
    const struct ann_set *set;
};

/* Start one JSON record: {"set":...,"n":...,<sysinfo>,"phase":"<phase>" */
static void rec_begin(struct out *o, const char *phase)
{
    FILE *f = o->json;
    fputs("{\"set\":", f);
    bench_json_str(f, o->set->name);
    fprintf(f, ",\"n\":%zu,\"dim\":%zu,\"k\":%d,\"phase\":", o->set->n, o->set->dim, K);
    bench_json_str(f, phase);
    fputc(',', f);
    bench_sysinfo_json(o->si, f);
    fprintf(f, ",\"load1\":%.2f", bench_loadavg());
}

static void rec_str(struct out *o, const char *k, const char *v)
{
    fprintf(o->json, ",\"%s\":", k);
    bench_json_str(o->json, v);
}

static void rec_num(struct out *o, const char *k, double v)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 9e15)
        fprintf(o->json, ",\"%s\":%.0f", k, v);
    else if (isfinite(v))
        fprintf(o->json, ",\"%s\":%.6g", k, v);
    else
        fprintf(o->json, ",\"%s\":null", k);
}

static void rec_end(struct out *o)
{
    fputs("}\n", o->json);
    fflush(o->json);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ann: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ==== Recall ============================================================ */

/* |res[0..at) ∩ truth[0..at')| / at' where at' = min(at, valid truth
 * entries); truth rows may be padded with -1 (filtered sets smaller than
 * k).  Returns -1 when the truth row is empty. */
static double recall_row(const int64_t *res, size_t nres, const int32_t *truth, size_t at)
{
    size_t tv = 0;
    while (tv < at && truth[tv] >= 0)
        tv++;
    if (tv == 0)
        return -1;
    size_t hit = 0, m = nres < at ? nres : at;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < tv; j++)
            if (res[i] == truth[j]) {
                hit++;
                break;
            }
    return (double)hit / (double)tv;
}

/* ==== Our index ========================================================= */

/* Process CPU seconds (all threads) of the last build. */
static double last_build_cpu;
static double last_reorder_s; /* wall seconds of lk_index_reorder in the last ours_build */
static bool reorder_after_build = true;

static double proc_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* hnswlib build with `threads` threads; wall seconds, CPU in last_build_cpu. */
static struct hnswlib_index *hnswlib_build(const struct ann_set *s, uint32_t M, uint32_t efc,
                                           unsigned threads, double *secs)
{
    char msg[256];
    struct hnswlib_index *h = NULL;
    if (hnswlib_new(s->dim, s->n, M, efc, 100, &h, msg, sizeof msg))
        die("%s", msg);
    double c0 = proc_cpu_now(), t0 = now();
    if (hnswlib_add_batch(h, s->base, s->n, threads, msg, sizeof msg))
        die("%s", msg);
    *secs = now() - t0;
    last_build_cpu = proc_cpu_now() - c0;
    return h;
}

static struct lk_index *ours_build(const struct ann_set *s, enum lk_index_kind kind,
                                   uint32_t M, uint32_t efc, unsigned threads,
                                   const uint64_t *ids, double *secs)
{
    struct lk_index_params p;
    lk_index_params_default(&p, (uint32_t)s->dim);
    p.kind = kind;
    p.metric = LK_METRIC_L2;
    p.M = M;
    p.ef_construction = efc;
    struct lk_index *idx = NULL;
    struct lk_err err = {0};
    if (lk_index_new(&p, &idx, &err) != LK_OK)
        die("lk_index_new: %s", err.msg);
    double c0 = proc_cpu_now(), t0 = now();
    if (lk_index_add_batch(idx, ids, s->base, s->n, threads, &err) != LK_OK)
        die("lk_index_add_batch: %s", err.msg);
    /* Graph reordering for memory locality is part of our build (the
     * product's index build does it too), so it is inside the timed span;
     * its own share is reported separately. */
    double t1 = now();
    if (kind == LK_INDEX_HNSW && reorder_after_build && lk_index_reorder(idx, &err) != LK_OK)
        die("lk_index_reorder: %s", err.msg);
    *secs = now() - t0;
    last_reorder_s = now() - t1;
    last_build_cpu = proc_cpu_now() - c0;
    return idx;
}

static size_t ours_memory(const struct lk_index *idx)
{
    struct lk_index_stats st;
    return lk_index_stats(idx, &st) == LK_OK ? st.memory_bytes : 0;
}

/* One method under test, behind a common search call. */
enum method_kind { M_OURS, M_HNSWLIB, M_EXACT };

struct method {
    const char *name;
    enum method_kind kind;
    struct lk_index *idx;
    struct hnswlib_index *h;
    unsigned flags;                  /* LK_SEARCH_* for ours */
    const struct lk_bitmap *allow;
    int bm_slot;                     /* which fplan.bm this index uses */
};

/* Thread CPU seconds of the last run_queries loop. */
static double last_cpu_secs;
/* Paths our searches took in the last run_queries loop (lk_search_info:
 * graph, exact, bail-out, completed). */
static size_t last_paths[4];

/* Search `m` queries (rows `qrows` of s->queries, or 0..m-1 when NULL) with
 * k results each into res (m x k).  Returns elapsed (wall) seconds of the
 * loop; its CPU seconds go to last_cpu_secs. */
static double run_queries(const struct method *me, const struct ann_set *s,
                          const size_t *qrows, size_t m, size_t k, uint32_t ef, int64_t *res)
{
    struct lk_hit hits[K100];
    float dists[K100];
    struct lk_search_opts so = {0};
    so.ef_search = ef;
    so.flags = me->flags;
    so.allow = me->allow;
    struct lk_search_info info = {0};
    so.info = &info;
    memset(last_paths, 0, sizeof last_paths);
    if (me->kind == M_HNSWLIB)
        hnswlib_set_ef(me->h, ef);
    double c0 = cpu_now(), t0 = now();
    for (size_t i = 0; i < m; i++) {
        const float *q = s->queries + (qrows ? qrows[i] : i) * s->dim;
        int64_t *r = res + i * k;
        size_t got = 0;
        if (me->kind == M_HNSWLIB) {
            got = hnswlib_search(me->h, q, k, r, dists);
        } else {
            struct lk_err err = {0};
            if (lk_index_search(me->idx, q, k, &so, hits, &got, &err) != LK_OK)
                die("%s: lk_index_search: %s", me->name, err.msg);
            for (size_t j = 0; j < got; j++)
                r[j] = (int64_t)hits[j].id;
            last_paths[info.path & 3]++;
        }
        for (size_t j = got; j < k; j++)
            r[j] = -1;
    }
    double t1 = now();
    last_cpu_secs = cpu_now() - c0;
    return t1 - t0;
}

struct point {
    uint32_t ef;
    double r1, r10, r100, qps, qps_cpu;
};

/* Recall of one method at one ef: k=10 over nq queries (recall@1, @10)
 * and k=100 over at most R100_QUERIES (recall@100).  Untimed. */
static struct point measure_recall(const struct method *me, const struct ann_set *s, size_t nq,
                                   uint32_t ef, int64_t *res, int64_t *res100)
{
    struct point p = {.ef = ef};
    run_queries(me, s, NULL, nq, K, ef, res);
    double r1 = 0, r10 = 0;
    for (size_t q = 0; q < nq; q++) {
        r1 += recall_row(res + q * K, K, s->gt + q * s->gt_k, 1);
        r10 += recall_row(res + q * K, K, s->gt + q * s->gt_k, K);
    }
    p.r1 = r1 / (double)nq;
    p.r10 = r10 / (double)nq;
    size_t n100 = nq < R100_QUERIES ? nq : R100_QUERIES;
    size_t at = s->gt_k < K100 ? s->gt_k : K100;
    run_queries(me, s, NULL, n100, at, ef, res100);
    double r100 = 0;
    for (size_t q = 0; q < n100; q++)
        r100 += recall_row(res100 + q * at, at, s->gt + q * s->gt_k, at);
    p.r100 = r100 / (double)n100;
    return p;
}

/* One timed round: all nq queries with k=10, repeated until at least
 * min_time_s / ROUNDS seconds so small query sets are not 10 ms
 * measurements.  Returns queries/s. */
#define ROUNDS 3
static double time_round(const struct method *me, const struct ann_set *s, size_t nq,
                         uint32_t ef, int64_t *res, double *qps_cpu)
{
    double secs = 0, cpu = 0;
    size_t done = 0;
    do {
        secs += run_queries(me, s, NULL, nq, K, ef, res);
        cpu += last_cpu_secs;
        done += nq;
    } while (secs < min_time_s / ROUNDS);
    *qps_cpu = (double)done / cpu;
    return (double)done / secs;
}

/* QPS at recall@10 = target by linear interpolation between the bracketing
 * sweep points.  ef_lo and ef_hi get the bracket; returns NAN if no point
 * reaches the target.  When even the first point exceeds the target, its
 * QPS is returned (a lower bound) and both ef_lo and ef_hi are its ef. */
static double qps_at(const struct point *pts, size_t np, double target, bool cpu,
                     uint32_t *ef_lo, uint32_t *ef_hi)
{
    for (size_t i = 0; i < np; i++) {
        if (pts[i].r10 < target)
            continue;
        *ef_hi = pts[i].ef;
        if (i == 0 || pts[i - 1].r10 >= pts[i].r10) {
            *ef_lo = pts[i].ef;
            return cpu ? pts[i].qps_cpu : pts[i].qps;
        }
        const struct point *a = &pts[i - 1], *b = &pts[i];
        double t = (target - a->r10) / (b->r10 - a->r10);
        double qa = cpu ? a->qps_cpu : a->qps, qb = cpu ? b->qps_cpu : b->qps;
        *ef_lo = a->ef;
        return qa + t * (qb - qa);
    }
    *ef_lo = *ef_hi = 0;
    return NAN;
}

/* ==== Concurrent search ================================================ */

/* `threads` threads search one index at once (ours: lock-free readers,
 * pooled contexts; hnswlib: searchKnn is safe for concurrent readers), each
 * cycling through the query set from its own offset, until the main thread
 * raises `stop` after a fixed wall-clock window. */
struct mt_job {
    const struct method *me;
    const struct ann_set *s;
    size_t nq, next, done;
    uint32_t ef;
    const atomic_bool *stop;
};

static void *mt_worker(void *arg)
{
    struct mt_job *j = arg;
    const struct ann_set *s = j->s;
    struct lk_hit hits[K];
    int64_t labels[K];
    float dists[K];
    struct lk_search_opts so = {0};
    so.ef_search = j->ef;
    so.flags = j->me->flags;
    while (!atomic_load_explicit(j->stop, memory_order_relaxed)) {
        for (int b = 0; b < 8; b++, j->done++, j->next = (j->next + 1) % j->nq) {
            const float *q = s->queries + j->next * s->dim;
            if (j->me->kind == M_HNSWLIB) {
                hnswlib_search(j->me->h, q, K, labels, dists);
            } else {
                size_t got = 0;
                struct lk_err err = {0};
                if (lk_index_search(j->me->idx, q, K, &so, hits, &got, &err) != LK_OK)
                    die("%s: lk_index_search: %s", j->me->name, err.msg);
            }
        }
    }
    return NULL;
}

/* Queries/s of `threads` threads searching `me` at once for `secs` seconds
 * of wall time (all threads' queries / the window). */
static double mt_qps(const struct method *me, const struct ann_set *s, size_t nq, uint32_t ef,
                     unsigned threads, double secs)
{
    enum { MT_MAX = 64 };
    struct mt_job jobs[MT_MAX];
    pthread_t th[MT_MAX];
    atomic_bool stop = false;
    if (threads > MT_MAX)
        threads = MT_MAX;
    if (me->kind == M_HNSWLIB)
        hnswlib_set_ef(me->h, ef);
    double t0 = now();
    for (unsigned t = 0; t < threads; t++) {
        jobs[t] = (struct mt_job){me, s, nq, nq * t / threads, 0, ef, &stop};
        if (pthread_create(&th[t], NULL, mt_worker, &jobs[t]))
            die("pthread_create failed");
    }
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
    atomic_store(&stop, true);
    size_t done = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        done += jobs[t].done;
    }
    return (double)done / (now() - t0);
}

/* ==== Filters =========================================================== */

/* One allow-list and the queries that use it. */
struct fplan {
    uint8_t *mask;       /* n bytes */
    size_t allowed;
    size_t *qrows;       /* query rows (into s->queries) */
    size_t m;
    int32_t *gt;         /* m x K exact filtered neighbours, -1 padded */
    struct lk_bitmap *bm[2]; /* the mask as bitmaps of our HNSW [0] and flat [1] index,
                                made on first use and reused across ef values */
};

static void fplans_free(struct fplan *p, size_t np)
{
    for (size_t i = 0; i < np; i++) {
        free(p[i].mask);
        free(p[i].qrows);
        free(p[i].gt);
        lk_bitmap_free(p[i].bm[0]);
        lk_bitmap_free(p[i].bm[1]);
    }
    free(p);
}

/* Group statistics for the correlated filter. */
struct groups {
    size_t ng;
    size_t *size;
    float *centroid;     /* ng x dim; NaN-free, zero for empty groups */
};

static void groups_init(struct groups *g, const struct ann_set *s)
{
    g->ng = s->ngroups;
    g->size = calloc(g->ng, sizeof *g->size);
    double *acc = calloc(g->ng * s->dim, sizeof *acc);
    g->centroid = calloc(g->ng * s->dim, sizeof *g->centroid);
    if (!g->size || !acc || !g->centroid)
        die("out of memory (groups)");
    for (size_t i = 0; i < s->n; i++) {
        size_t c = (size_t)s->base_group[i];
        g->size[c]++;
        for (size_t j = 0; j < s->dim; j++)
            acc[c * s->dim + j] += s->base[i * s->dim + j];
    }
    for (size_t c = 0; c < g->ng; c++)
        for (size_t j = 0; j < s->dim; j++)
            g->centroid[c * s->dim + j] =
                g->size[c] ? (float)(acc[c * s->dim + j] / (double)g->size[c]) : 0.0f;
    free(acc);
}

static void groups_free(struct groups *g)
{
    free(g->size);
    free(g->centroid);
}

struct gdist {
    float d;
    size_t g;
};

static int gdist_cmp(const void *a, const void *b)
{
    const struct gdist *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return (x->g > y->g) - (x->g < y->g);
}

/* Correlated allow-list for queries of group g: g itself, then the groups
 * with the nearest centroids, until sel*n rows; the last group taken is
 * subsampled by a hash of the row so the total matches. */
static size_t correlated_mask(const struct ann_set *s, const struct groups *G, size_t g,
                              double sel, uint8_t *mask)
{
    struct gdist *order = malloc(G->ng * sizeof *order);
    if (!order)
        die("out of memory");
    size_t no = 0;
    for (size_t c = 0; c < G->ng; c++) {
        if (!G->size[c])
            continue;
        order[no].g = c;
        order[no].d = c == g ? -1.0f
                             : ann_l2(G->centroid + g * s->dim, G->centroid + c * s->dim,
                                      s->dim);
        no++;
    }
    qsort(order, no, sizeof *order, gdist_cmp);
    /* take[c]: fraction of group c allowed */
    double *take = calloc(G->ng, sizeof *take);
    if (!take)
        die("out of memory");
    double want = sel * (double)s->n;
    if (want < 1)
        want = 1;
    for (size_t i = 0; i < no && want > 0; i++) {
        size_t c = order[i].g;
        double f = want >= (double)G->size[c] ? 1.0 : want / (double)G->size[c];
        take[c] = f;
        want -= f * (double)G->size[c];
    }
    size_t allowed = 0;
    for (size_t i = 0; i < s->n; i++) {
        double f = take[s->base_group[i]];
        bool ok = f >= 1.0 ||
                  (f > 0 && (double)(ann_hash64(0xf117e5u, i) >> 11) * 0x1.0p-53 < f);
        mask[i] = ok;
        allowed += ok;
    }
    free(take);
    free(order);
    return allowed;
}

/* Exact filtered top-K of one plan's queries over its allowed rows. */
static void plan_truth(const struct ann_set *s, struct fplan *p, unsigned threads)
{
    float *qs = malloc(p->m * s->dim * sizeof *qs);
    p->gt = malloc(p->m * K * sizeof *p->gt);
    if (!qs || !p->gt)
        die("out of memory");
    for (size_t j = 0; j < p->m; j++)
        memcpy(qs + j * s->dim, s->queries + p->qrows[j] * s->dim, s->dim * sizeof *qs);
    char msg[256];
    if (ann_knn_exact(s->base, s->n, s->dim, qs, p->m, K, p->mask, threads, p->gt, msg,
                      sizeof msg))
        die("filtered ground truth: %s", msg);
    free(qs);
}

struct truth_job {
    const struct ann_set *s;
    struct fplan *plans;
    size_t np;
    atomic_size_t next;
};

static void *truth_worker(void *arg)
{
    struct truth_job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->np)
            return NULL;
        plan_truth(j->s, &j->plans[i], 1);
    }
}

/* Plans for one (kind, selectivity): random = one plan for all queries;
 * correlated = one plan per distinct query group.  Ground truth by brute
 * force over the allowed rows. */
static struct fplan *make_plans(const struct ann_set *s, const struct groups *G, bool correlated,
                                double sel, size_t nfq, unsigned threads, size_t *nplans)
{
    struct fplan *plans = NULL;
    size_t np = 0;
    if (!correlated) {
        plans = calloc(1, sizeof *plans);
        if (!plans)
            die("out of memory");
        plans[0].mask = malloc(s->n);
        plans[0].qrows = malloc(nfq * sizeof(size_t));
        if (!plans[0].mask || !plans[0].qrows)
            die("out of memory");
        for (size_t i = 0; i < s->n; i++) {
            plans[0].mask[i] = (double)(ann_hash64(0x5e1ec7u, i) >> 11) * 0x1.0p-53 < sel;
            plans[0].allowed += plans[0].mask[i];
        }
        for (size_t q = 0; q < nfq; q++)
            plans[0].qrows[q] = q;
        plans[0].m = nfq;
        np = 1;
    } else {
        /* bucket queries by group, in group order */
        size_t *cnt = calloc(G->ng, sizeof *cnt);
        if (!cnt)
            die("out of memory");
        for (size_t q = 0; q < nfq; q++)
            cnt[s->query_group[q]]++;
        for (size_t c = 0; c < G->ng; c++)
            np += cnt[c] > 0;
        plans = calloc(np, sizeof *plans);
        if (!plans)
            die("out of memory");
        size_t pi = 0;
        for (size_t c = 0; c < G->ng; c++) {
            if (!cnt[c])
                continue;
            struct fplan *p = &plans[pi++];
            p->mask = malloc(s->n);
            p->qrows = malloc(cnt[c] * sizeof(size_t));
            if (!p->mask || !p->qrows)
                die("out of memory");
            for (size_t q = 0; q < nfq; q++)
                if ((size_t)s->query_group[q] == c)
                    p->qrows[p->m++] = q;
            p->allowed = correlated_mask(s, G, c, sel, p->mask);
        }
        free(cnt);
    }
    if (np == 1) {
        plan_truth(s, &plans[0], threads);
    } else {
        /* many small plans: one thread per plan instead of per query */
        struct truth_job job = {s, plans, np, 0};
        pthread_t tid[64];
        unsigned nt = threads < 64 ? threads : 64, started = 0;
        for (unsigned t = 0; t < nt; t++)
            if (pthread_create(&tid[t], NULL, truth_worker, &job) == 0)
                started++;
            else
                break;
        if (started == 0)
            truth_worker(&job);
        for (unsigned t = 0; t < started; t++)
            pthread_join(tid[t], NULL);
    }
    *nplans = np;
    return plans;
}

struct fres {
    double recall, qps, qps_cpu;
    size_t nq;
    size_t paths[4]; /* ours: searches per lk_search_path in the first pass */
};

/* "g100" / "x100" / "g62 b38": percent of searches per path (graph,
 * exact, bail-out = graph abandoned for the exact scan, completed = graph
 * then exact because it found fewer than k). */
static const char *fmt_paths(char *buf, size_t cap, const size_t p[4])
{
    static const char tag[4] = {'g', 'x', 'b', 'c'};
    size_t tot = p[0] + p[1] + p[2] + p[3], w = 0;
    buf[0] = 0;
    for (int i = 0; i < 4 && tot; i++) {
        if (!p[i])
            continue;
        int r = snprintf(buf + w, cap - w, "%s%c%.0f", w ? " " : "", tag[i],
                         100.0 * (double)p[i] / (double)tot);
        if (r < 0 || (size_t)r >= cap - w)
            break;
        w += (size_t)r;
    }
    if (!tot)
        snprintf(buf, cap, "-");
    return buf;
}

/* Run method `me` over all plans, whole passes until `min_secs` of timed
 * search; bitmaps are made per plan for ours (from the same mask), hnswlib
 * gets its deletion marks; neither is timed. */
static struct fres run_filtered(struct method *me, const struct ann_set *s, struct fplan *plans,
                                size_t np, uint32_t ef, double min_secs)
{
    double secs = 0, cpu = 0, rsum = 0;
    size_t nq = 0, nr = 0;
    int64_t *res = NULL;
    size_t rcap = 0;
    /* repeat all plans until min_secs of timed search (recall from the
     * first pass; the searches are deterministic) */
    size_t distinct = 0;
    size_t paths[4] = {0};
    for (int rep = 0; rep == 0 || (secs < min_secs && rep < 1000); rep++) {
    for (size_t pi = 0; pi < np; pi++) {
        struct fplan *p = &plans[pi];
        if (me->kind == M_HNSWLIB) {
            hnswlib_filter_set(me->h, p->mask, s->n);
        } else {
            struct lk_bitmap **bm = &p->bm[me->bm_slot];
            if (!*bm) {
                struct lk_err err = {0};
                if (lk_index_bitmap_new(me->idx, bm, &err) != LK_OK)
                    die("lk_index_bitmap_new: %s", err.msg);
                for (size_t i = 0; i < s->n; i++)
                    if (p->mask[i] && lk_bitmap_set_id(*bm, me->idx, i, &err) != LK_OK)
                        die("lk_bitmap_set_id: %s", err.msg);
                if (lk_bitmap_count(*bm) != p->allowed)
                    die("bitmap holds %zu ids, mask %zu", lk_bitmap_count(*bm), p->allowed);
            }
            me->allow = *bm;
        }
        if (p->m > rcap) {
            rcap = p->m;
            free(res);
            res = malloc(rcap * K * sizeof *res);
            if (!res)
                die("out of memory");
        }
        /* warm-up: a few queries of this plan, untimed */
        size_t warm = np == 1 ? (p->m < 50 ? p->m : 50) : (p->m < 2 ? p->m : 2);
        run_queries(me, s, p->qrows, warm, K, ef, res);
        secs += run_queries(me, s, p->qrows, p->m, K, ef, res);
        cpu += last_cpu_secs;
        for (int w = 0; rep == 0 && w < 4; w++)
            paths[w] += last_paths[w];
        for (size_t j = 0; rep == 0 && j < p->m; j++) {
            double r = recall_row(res + j * K, K, p->gt + j * K, K);
            if (r >= 0) {
                rsum += r;
                nr++;
            }
        }
        nq += p->m;
        if (rep == 0)
            distinct += p->m;
        if (me->kind == M_HNSWLIB)
            hnswlib_filter_clear(me->h);
        else
            me->allow = NULL;
    }
    }
    free(res);
    return (struct fres){nr ? rsum / (double)nr : NAN, (double)nq / secs, (double)nq / cpu,
                         distinct, {paths[0], paths[1], paths[2], paths[3]}};
}

/* Round `round` of a filtered measurement: the first gives recall and
 * paths; the best (highest) wall and CPU-time rates are kept, as in the
 * unfiltered sweep's best of ROUNDS alternating rounds. */
static void keep_best(struct fres *best, struct fres r, int round)
{
    if (round == 0) {
        *best = r;
        return;
    }
    if (r.qps > best->qps)
        best->qps = r.qps;
    if (r.qps_cpu > best->qps_cpu)
        best->qps_cpu = r.qps_cpu;
}

/* ==== One set =========================================================== */

static const char *fmt_qps(char *buf, size_t cap, double v)
{
    if (!isfinite(v))
        snprintf(buf, cap, "%s", "n/a");
    else
        snprintf(buf, cap, "%.0f", v);
    return buf;
}

/* "QPS (ef lo-hi)"; "(<=ef)" when the first sweep point already meets the
 * target (the QPS is then a lower bound); "(not reached)". */
static void bracket(char *buf, size_t cap, const char *qps, uint32_t lo, uint32_t hi)
{
    if (lo == 0)
        snprintf(buf, cap, "%s (not reached)", qps);
    else if (lo == hi)
        snprintf(buf, cap, "%s (<=%u)", qps, hi);
    else
        snprintf(buf, cap, "%s (%u-%u)", qps, lo, hi);
}

/* The ef sweep again with o->search_threads threads searching each index at
 * once: queries/s (best of ROUNDS alternating rounds), its scaling over the
 * single-thread QPS, and equal-recall ratios using the single-thread sweep's
 * recall (the same searches give the same results on any thread). */
static void concurrent_sweep(const struct opts *o, const struct ann_set *s, struct out *out,
                             const struct method *mo, const struct method *mh, const struct point *po,
                             const struct point *ph, size_t nq)
{
    unsigned T = o->search_threads;
    struct point qo[MAX_EF], qh[MAX_EF];
    printf("\nSearch, %u threads searching one index at once, k=%d; QPS = all threads' queries / "
           "wall,\nbest of %d alternating rounds of %.2f s; x1t = over the single-thread QPS\n",
           T, K, ROUNDS, min_time_s / ROUNDS);
    printf("%5s | %9s %6s | %9s %6s | %7s\n", "ef", "ours QPS", "x1t", "hnsw QPS", "x1t", "ours/h");
    for (size_t e = 0; e < o->nef; e++) {
        qo[e] = po[e], qh[e] = ph[e];
        qo[e].qps = qh[e].qps = 0;
        for (int r = 0; r < ROUNDS; r++) {
            double a = mt_qps(mo, s, nq, po[e].ef, T, min_time_s / ROUNDS);
            double b = mt_qps(mh, s, nq, ph[e].ef, T, min_time_s / ROUNDS);
            qo[e].qps = fmax(qo[e].qps, a);
            qh[e].qps = fmax(qh[e].qps, b);
        }
        qo[e].qps_cpu = qo[e].qps, qh[e].qps_cpu = qh[e].qps;
        printf("%5u | %9.0f %6.2f | %9.0f %6.2f | %7.2f\n", po[e].ef, qo[e].qps, qo[e].qps / po[e].qps,
               qh[e].qps, qh[e].qps / ph[e].qps, qo[e].qps / qh[e].qps);
        for (int w = 0; w < 2; w++) {
            const struct point *p = w ? &qh[e] : &qo[e];
            rec_begin(out, "search");
            rec_str(out, "method", w ? "hnswlib" : "ours");
            rec_num(out, "ef_search", p->ef);
            rec_num(out, "queries", (double)nq);
            rec_num(out, "recall_at_1", p->r1);
            rec_num(out, "recall_at_10", p->r10);
            rec_num(out, "recall_at_100", p->r100);
            rec_num(out, "qps", p->qps);
            rec_num(out, "threads", T);
            rec_end(out);
        }
        fflush(stdout);
    }
    printf("\nAt equal recall@10, %u threads searching at once (QPS interpolated as above)\n", T);
    printf("%8s | %-21s | %-21s | %6s\n", "target", "ours QPS (ef)", "hnswlib QPS (ef)", "ours/h");
    for (size_t t = 0; t < NTARGETS; t++) {
        uint32_t a0, a1, b0, b1;
        double x = qps_at(qo, o->nef, TARGETS[t], false, &a0, &a1);
        double y = qps_at(qh, o->nef, TARGETS[t], false, &b0, &b1);
        char c1[64], c2[64], q1[32], q2[32];
        bracket(c1, sizeof c1, fmt_qps(q1, sizeof q1, x), a0, a1);
        bracket(c2, sizeof c2, fmt_qps(q2, sizeof q2, y), b0, b1);
        printf("%8.2f | %-21s | %-21s | %6.2f\n", TARGETS[t], c1, c2, x / y);
        rec_begin(out, "equal_recall_mt");
        rec_num(out, "threads", T);
        rec_num(out, "target_recall_at_10", TARGETS[t]);
        rec_num(out, "ours_qps", x);
        rec_num(out, "hnswlib_qps", y);
        rec_num(out, "qps_ratio", x / y);
        rec_end(out);
    }
    fflush(stdout);
}

static void bench_set(const struct opts *o, struct ann_set *s, const struct bench_sysinfo *si,
                      FILE *json)
{
    struct out out = {json, si, s};
    size_t nq = s->nq;
    printf("\n==== %s: %zu x %zu, %zu queries (ground truth top-%zu), L2, k=%d ====\n", s->name,
           s->n, s->dim, nq, s->gt_k, K);
    printf("hnswlib L2 kernel for dim %zu: %s\n", s->dim, hnswlib_simd_path(s->dim));
    printf("load average at start of set: %.2f\n", bench_loadavg());
    fflush(stdout);

    uint64_t *ids = malloc(s->n * sizeof *ids);
    if (!ids)
        die("out of memory");
    for (size_t i = 0; i < s->n; i++)
        ids[i] = i;

    struct lk_index_params defp;
    lk_index_params_default(&defp, (uint32_t)s->dim);
    const uint32_t M = 16, EFC = 200;
    bool defaults_differ = defp.M != M || defp.ef_construction != EFC;

    /* ---- builds (single thread, each measured alone) ---- */
    struct build_row {
        const char *name;
        unsigned threads;
        double secs, cpu;  /* wall, and process CPU seconds */
        double reorder;    /* of secs: lk_index_reorder (ours), NAN otherwise */
        size_t acct;
        long long rss, peak;
    } rows[8];
    size_t nrows = 0;
    struct memprobe mp;

    mem_begin(&mp);
    struct hnswlib_index *h = hnswlib_build(s, M, EFC, 1, &rows[nrows].secs);
    rows[nrows].cpu = last_build_cpu;
    rows[nrows].reorder = NAN;
    rows[nrows].name = "hnswlib";
    rows[nrows].threads = 1;
    rows[nrows].acct = hnswlib_memory(h);
    mem_end(&mp, &rows[nrows].rss, &rows[nrows].peak);
    nrows++;
    printf("built hnswlib (1 thread) in %.1f s\n", rows[nrows - 1].secs);
    fflush(stdout);

    mem_begin(&mp);
    struct lk_index *ours = ours_build(s, LK_INDEX_HNSW, M, EFC, 1, ids, &rows[nrows].secs);
    rows[nrows].cpu = last_build_cpu;
    rows[nrows].reorder = o->no_reorder ? NAN : last_reorder_s;
    rows[nrows].name = "ours";
    rows[nrows].threads = 1;
    rows[nrows].acct = ours_memory(ours);
    mem_end(&mp, &rows[nrows].rss, &rows[nrows].peak);
    nrows++;
    printf("built ours (1 thread) in %.1f s (of which lk_index_reorder %.2f s%s)\n", rows[nrows - 1].secs,
           o->no_reorder ? 0.0 : last_reorder_s, o->no_reorder ? ", skipped: --no-reorder" : "");
    fflush(stdout);

    struct lk_index *ours_def = NULL;
    if (defaults_differ) {
        mem_begin(&mp);
        ours_def = ours_build(s, LK_INDEX_HNSW, defp.M, defp.ef_construction, 1, ids,
                              &rows[nrows].secs);
        rows[nrows].cpu = last_build_cpu;
        rows[nrows].reorder = o->no_reorder ? NAN : last_reorder_s;
        rows[nrows].name = "ours (defaults)";
        rows[nrows].threads = 1;
        rows[nrows].acct = ours_memory(ours_def);
        mem_end(&mp, &rows[nrows].rss, &rows[nrows].peak);
        nrows++;
    }

    mem_begin(&mp);
    struct lk_index *flat = ours_build(s, LK_INDEX_FLAT, M, EFC, 1, ids, &rows[nrows].secs);
    rows[nrows].cpu = last_build_cpu;
    rows[nrows].reorder = NAN;
    rows[nrows].name = "exact (our flat)";
    rows[nrows].threads = 1;
    rows[nrows].acct = ours_memory(flat);
    mem_end(&mp, &rows[nrows].rss, &rows[nrows].peak);
    nrows++;

    /* multi-thread builds: time only, freed at once */
    if (o->threads > 1 && !o->no_mt_build) {
        double t;
        struct hnswlib_index *h2 = hnswlib_build(s, M, EFC, o->threads, &t);
        rows[nrows] = (struct build_row){"hnswlib", o->threads, t, last_build_cpu, NAN,
                                         hnswlib_memory(h2), -1, -1};
        nrows++;
        hnswlib_free(h2);
        struct lk_index *o2 = ours_build(s, LK_INDEX_HNSW, M, EFC, o->threads, ids, &t);
        rows[nrows] = (struct build_row){"ours", o->threads, t, last_build_cpu,
                                         o->no_reorder ? NAN : last_reorder_s, ours_memory(o2),
                                         -1, -1};
        nrows++;
        lk_index_free(o2);
        printf("built both with %u threads\n", o->threads);
    }

    struct lk_err err = {0};
    int check = lk_index_check(ours, &err);
    struct lk_index_stats st = {0};
    lk_index_stats(ours, &st);

    printf("\nBuild (M=%u, ef_construction=%u; our defaults: M=%u, ef_construction=%u)\n", M,
           EFC, defp.M, defp.ef_construction);
    printf("%-18s %7s %9s %8s %9s %9s %12s %10s %10s\n", "index", "threads", "build s", "vs hnsw",
           "reorder s", "CPU s", "bytes/vec", "RSS +MB", "peak +MB");
    double hn1 = rows[0].secs;
    size_t hn_acct = rows[0].acct;
    double hn2 = NAN;
    for (size_t i = 0; i < nrows; i++)
        if (!strcmp(rows[i].name, "hnswlib") && rows[i].threads > 1)
            hn2 = rows[i].secs;
    for (size_t i = 0; i < nrows; i++) {
        struct build_row *r = &rows[i];
        double base = r->threads > 1 ? hn2 : hn1;
        char rss[32] = "-", peak[32] = "-";
        if (r->rss >= 0)
            snprintf(rss, sizeof rss, "%.1f", (double)r->rss / 1048576.0);
        if (r->peak >= 0)
            snprintf(peak, sizeof peak, "%.1f", (double)r->peak / 1048576.0);
        char reo[32] = "-";
        if (!isnan(r->reorder))
            snprintf(reo, sizeof reo, "%.2f", r->reorder);
        printf("%-18s %7u %9.2f %8.2f %9s %9.2f %12.1f %10s %10s\n", r->name, r->threads, r->secs,
               r->secs / base, reo, r->cpu, (double)r->acct / (double)s->n, rss, peak);
        rec_begin(&out, "build");
        rec_str(&out, "method", r->name);
        rec_num(&out, "threads", r->threads);
        rec_num(&out, "M", M);
        rec_num(&out, "ef_construction", EFC);
        rec_num(&out, "build_s", r->secs);
        rec_num(&out, "build_ratio_vs_hnswlib", r->secs / base);
        rec_num(&out, "reorder_s", r->reorder);
        rec_num(&out, "build_cpu_s", r->cpu);
        rec_num(&out, "memory_bytes", (double)r->acct);
        rec_num(&out, "bytes_per_vector", (double)r->acct / (double)s->n);
        rec_num(&out, "rss_delta_bytes", r->rss >= 0 ? (double)r->rss : NAN);
        rec_num(&out, "peak_rss_delta_bytes", r->peak >= 0 ? (double)r->peak : NAN);
        rec_end(&out);
    }
    printf("memory ratio ours/hnswlib (library accounting): %.3f; raw vectors alone: %zu "
           "bytes/vec\n",
           (double)rows[1].acct / (double)hn_acct, s->dim * sizeof(float));
    if (rows[0].rss > 0 && rows[1].rss > 0)
        printf("memory ratio ours/hnswlib (RSS growth): %.3f\n",
               (double)rows[1].rss / (double)rows[0].rss);
    printf("our graph: max level %u, node block %zu bytes; integrity check: %s%s\n",
           st.max_level, st.node_bytes, check == LK_OK ? "ok" : "FAILED: ",
           check == LK_OK ? "" : err.msg);
    fflush(stdout);

    /* ---- ef sweep ---- */
    struct method m_ours = {"ours", M_OURS, ours, NULL, 0, NULL, 0};
    struct method m_def = {"ours (defaults)", M_OURS, ours_def, NULL, 0, NULL, 0};
    struct method m_h = {"hnswlib", M_HNSWLIB, NULL, h, 0, NULL, 0};
    struct method m_flat = {"exact", M_EXACT, flat, NULL, 0, NULL, 1};
    int64_t *res = malloc(nq * K * sizeof *res);
    int64_t *res100 = malloc(R100_QUERIES * K100 * sizeof *res100);
    if (!res || !res100)
        die("out of memory");
    struct point po[MAX_EF], ph[MAX_EF], pd[MAX_EF];
    printf("\nSearch, single thread, %zu queries, k=%d; QPS = best of %d alternating rounds of "
           ">= %.2f s;\nrecall@100 with k=100, ef=max(ef,100) on the first %d queries\n",
           nq, K, ROUNDS, min_time_s / ROUNDS, R100_QUERIES);
    printf("%5s | %-32s | %-32s | %-15s\n", "", "ours", "hnswlib", "QPS ours/h");
    printf("%5s | %7s %7s %7s %8s | %7s %7s %7s %8s | %7s %7s\n", "ef", "R@1", "R@10", "R@100",
           "QPS", "R@1", "R@10", "R@100", "QPS", "wall", "cpu");
    for (size_t e = 0; e < o->nef; e++) {
        uint32_t ef = o->ef[e];
        /* recall first (this pass is also the warm-up), then ROUNDS timed
         * rounds alternating the libraries; the best round counts, since
         * other processes on the shared machine can only slow a round down */
        const struct method *ms[3] = {&m_ours, &m_h, &m_def};
        struct point *ps[3] = {&po[e], &ph[e], &pd[e]};
        int nm = ours_def ? 3 : 2;
        for (int w = 0; w < nm; w++) {
            *ps[w] = measure_recall(ms[w], s, nq, ef, res, res100);
            ps[w]->qps = ps[w]->qps_cpu = 0;
        }
        for (int r = 0; r < ROUNDS; r++)
            for (int w = 0; w < nm; w++) {
                double qc;
                double q = time_round(ms[w], s, nq, ef, res, &qc);
                if (q > ps[w]->qps)
                    ps[w]->qps = q;
                if (qc > ps[w]->qps_cpu)
                    ps[w]->qps_cpu = qc;
            }
        printf("%5u | %7.4f %7.4f %7.4f %8.0f | %7.4f %7.4f %7.4f %8.0f | %7.2f %7.2f\n", ef,
               po[e].r1, po[e].r10, po[e].r100, po[e].qps, ph[e].r1, ph[e].r10, ph[e].r100,
               ph[e].qps, po[e].qps / ph[e].qps, po[e].qps_cpu / ph[e].qps_cpu);
        fflush(stdout);
        for (int w = 0; w < (ours_def ? 3 : 2); w++) {
            const struct point *p = w == 0 ? &po[e] : w == 1 ? &ph[e] : &pd[e];
            rec_begin(&out, "search");
            rec_str(&out, "method", w == 0 ? "ours" : w == 1 ? "hnswlib" : "ours (defaults)");
            rec_num(&out, "ef_search", ef);
            rec_num(&out, "queries", (double)nq);
            rec_num(&out, "recall_at_1", p->r1);
            rec_num(&out, "recall_at_10", p->r10);
            rec_num(&out, "recall_at_100", p->r100);
            rec_num(&out, "qps", p->qps);
            rec_num(&out, "qps_cpu_time", p->qps_cpu);
            rec_num(&out, "threads", 1);
            rec_end(&out);
        }
    }

    /* exact: as many queries as fit a time budget (at least 20) */
    {
        size_t *rowsq = malloc(nq * sizeof *rowsq);
        if (!rowsq)
            die("out of memory");
        for (size_t i = 0; i < nq; i++)
            rowsq[i] = i;
        run_queries(&m_flat, s, rowsq, nq < 5 ? nq : 5, K, 0, res);   /* warm-up */
        size_t done = 0;
        double secs = 0, cpu = 0;
        while (done < nq && (secs < o->exact_seconds || done < 20)) {
            size_t chunk = nq - done < 10 ? nq - done : 10;
            secs += run_queries(&m_flat, s, rowsq + done, chunk, K, 0, res + done * K);
            cpu += last_cpu_secs;
            done += chunk;
        }
        free(rowsq);
        double r1 = 0, r10 = 0;
        for (size_t q = 0; q < done; q++) {
            r1 += recall_row(res + q * K, K, s->gt + q * s->gt_k, 1);
            r10 += recall_row(res + q * K, K, s->gt + q * s->gt_k, K);
        }
        double qps = (double)done / secs;
        printf("exact (our flat index): %zu queries, R@1 %.4f, R@10 %.4f, %.1f QPS\n", done,
               r1 / (double)done, r10 / (double)done, qps);
        rec_begin(&out, "search");
        rec_str(&out, "method", "exact");
        rec_num(&out, "queries", (double)done);
        rec_num(&out, "recall_at_1", r1 / (double)done);
        rec_num(&out, "recall_at_10", r10 / (double)done);
        rec_num(&out, "qps", qps);
        rec_num(&out, "qps_cpu_time", (double)done / cpu);
        rec_num(&out, "threads", 1);
        rec_end(&out);

        printf("\nAt equal recall@10 (QPS interpolated between bracketing ef; single thread)\n");
        printf("%8s | %-21s | %-21s | %6s %6s | %9s\n", "target", "ours QPS (ef)",
               "hnswlib QPS (ef)", "ours/h", "(cpu)", "exact QPS");
        for (size_t t = 0; t < NTARGETS; t++) {
            uint32_t a0, a1, b0, b1;
            double qo = qps_at(po, o->nef, TARGETS[t], false, &a0, &a1);
            double qh = qps_at(ph, o->nef, TARGETS[t], false, &b0, &b1);
            double qoc = qps_at(po, o->nef, TARGETS[t], true, &a0, &a1);
            double qhc = qps_at(ph, o->nef, TARGETS[t], true, &b0, &b1);
            char c1[64], c2[64], q1[32], q2[32];
            bracket(c1, sizeof c1, fmt_qps(q1, sizeof q1, qo), a0, a1);
            bracket(c2, sizeof c2, fmt_qps(q2, sizeof q2, qh), b0, b1);
            printf("%8.2f | %-21s | %-21s | %6.2f %6.2f | %9.1f\n", TARGETS[t], c1, c2, qo / qh,
                   qoc / qhc, qps);
            rec_begin(&out, "equal_recall");
            rec_num(&out, "target_recall_at_10", TARGETS[t]);
            rec_num(&out, "ours_qps", qo);
            rec_num(&out, "hnswlib_qps", qh);
            rec_num(&out, "qps_ratio", qo / qh);
            rec_num(&out, "qps_ratio_cpu_time", qoc / qhc);
            rec_num(&out, "exact_qps", qps);
            rec_num(&out, "ours_ef_lo", a0);
            rec_num(&out, "ours_ef_hi", a1);
            rec_num(&out, "hnswlib_ef_lo", b0);
            rec_num(&out, "hnswlib_ef_hi", b1);
            rec_num(&out, "build_ratio", rows[1].secs / rows[0].secs);
            rec_num(&out, "build_ratio_cpu_time", rows[1].cpu / rows[0].cpu);
            rec_num(&out, "memory_ratio", (double)rows[1].acct / (double)hn_acct);
            rec_end(&out);
        }
        printf("build time ratio ours/hnswlib (1 thread): %.3f wall, %.3f CPU; memory ratio: "
               "%.3f\n",
               rows[1].secs / rows[0].secs, rows[1].cpu / rows[0].cpu,
               (double)rows[1].acct / (double)hn_acct);
        fflush(stdout);

        if (o->search_threads > 1)
            concurrent_sweep(o, s, &out, &m_ours, &m_h, po, ph, nq);

        /* ---- filtered ---- */
        if (!o->no_filter) {
            size_t nfq = nq < o->max_fqueries ? nq : o->max_fqueries;
            struct groups G;
            groups_init(&G, s);
            printf("\nFiltered search, %zu queries, k=%d; correlated groups: %s\n", nfq, K,
                   s->group_source);
            printf("recall@10 against exact filtered ground truth; k' = min(k, allowed)\n");
            printf("QPS are wall-clock; the last two ratio columns use thread CPU time instead;\n"
                   "ours and exact: best of %d alternating rounds of >= %.2f s each, per ef\n"
                   "exact = our flat index (LK_INDEX_FLAT) scanning the same bitmap: the same scan\n"
                   "code our HNSW runs on its exact path, over the flat index's smaller node blocks\n",
                   ROUNDS, min_time_s / ROUNDS);
            printf("path: share of our searches by the planner's path: g graph, x exact scan,\n"
                   "b graph abandoned for the exact scan (bail-out), c graph completed by a scan\n");
            printf("%-10s %6s %7s %4s | %-15s %-11s | %-15s | %-15s | %9s | %6s %6s | %6s %6s\n",
                   "filter", "sel", "actual", "ef", "ours R@10 QPS", "path", "ours-graph", "hnswlib",
                   "exact QPS", "o/exct", "o/hnsw", "cpu:ex", "cpu:h");
            for (int kind = 0; kind < 2; kind++) {
                for (size_t si2 = 0; si2 < NSEL; si2++) {
                    double sel = SELECTIVITIES[si2];
                    size_t np;
                    struct fplan *plans = make_plans(s, &G, kind == 1, sel, nfq, o->threads, &np);
                    double act = 0;
                    for (size_t i = 0; i < np; i++)
                        act += (double)plans[i].allowed * (double)plans[i].m;
                    act /= (double)nfq * (double)s->n;
                    bool graph_row = sel < 0.05;
                    struct fres fe = {0};
                    for (size_t e = 0; e < o->nfef; e++) {
                        uint32_t ef = o->fef[e];
                        /* ours and exact in ROUNDS alternating rounds,
                         * best of each (load drift hits both); hnswlib,
                         * whose filtered search at low selectivity takes
                         * seconds a pass, once */
                        struct fres fo = {0};
                        for (int r = 0; r < ROUNDS; r++) {
                            keep_best(&fe, run_filtered(&m_flat, s, plans, np, 0, min_time_s / ROUNDS),
                                      r);
                            keep_best(&fo, run_filtered(&m_ours, s, plans, np, ef, min_time_s / ROUNDS),
                                      r);
                        }
                        struct fres fh = run_filtered(&m_h, s, plans, np, ef, min_time_s);
                        struct fres fg = {NAN, NAN, NAN, 0, {0, 0, 0, 0}};
                        if (graph_row) {
                            m_ours.flags = LK_SEARCH_FORCE_GRAPH;
                            fg = run_filtered(&m_ours, s, plans, np, ef, min_time_s);
                            m_ours.flags = 0;
                        }
                        char g[40] = "-";
                        if (graph_row)
                            snprintf(g, sizeof g, "%.3f %8.0f", fg.recall, fg.qps);
                        char pth[48];
                        printf("%-10s %5.1f%% %6.2f%% %4u | %.3f %9.0f %-11s | %-15s | %.3f %9.0f | %9.0f "
                               "| %6.2f %6.2f | %6.2f %6.2f\n",
                               kind ? "correlated" : "random", sel * 100, act * 100, ef,
                               fo.recall, fo.qps, fmt_paths(pth, sizeof pth, fo.paths), g, fh.recall, fh.qps, fe.qps, fo.qps / fe.qps,
                               fo.qps / fh.qps, fo.qps_cpu / fe.qps_cpu, fo.qps_cpu / fh.qps_cpu);
                        fflush(stdout);
                        for (int w = 0; w < 4; w++) {
                            const struct fres *r = w == 0 ? &fo : w == 1 ? &fg : w == 2 ? &fh : &fe;
                            if (w == 1 && !graph_row)
                                continue;
                            rec_begin(&out, "filtered");
                            rec_str(&out, "method",
                                    w == 0   ? "ours"
                                    : w == 1 ? "ours graph-only"
                                    : w == 2 ? "hnswlib (deletion-mark filter)"
                                             : "exact");
                            rec_str(&out, "filter", kind ? "correlated" : "random");
                            rec_num(&out, "selectivity", sel);
                            rec_num(&out, "selectivity_actual", act);
                            rec_num(&out, w == 3 ? "paired_with_ef_search" : "ef_search", ef);
                            rec_num(&out, "queries", (double)r->nq);
                            rec_num(&out, "recall_at_10", r->recall);
                            rec_num(&out, "qps", r->qps);
                            rec_num(&out, "qps_cpu_time", r->qps_cpu);
                            if (w != 3) {
                                rec_num(&out, "qps_ratio_vs_exact", r->qps / fe.qps);
                                rec_num(&out, "qps_ratio_vs_exact_cpu_time", r->qps_cpu / fe.qps_cpu);
                            }
                            if (w == 0) {
                                static const char *pn[4] = {"path_graph", "path_exact",
                                                            "path_bailout", "path_completed"};
                                for (int pi = 0; pi < 4; pi++)
                                    rec_num(&out, pn[pi], (double)r->paths[pi] / (double)r->nq);
                            }
                            rec_end(&out);
                        }
                    }
                    if (fe.recall < 0.9999)
                        printf("  note: exact filtered search recall %.4f (expected 1)\n",
                               fe.recall);
                    fplans_free(plans, np);
                }
            }
            groups_free(&G);
        }
    }
    printf("load average at end of set: %.2f\n", bench_loadavg());
    free(res);
    free(res100);
    free(ids);
    hnswlib_free(h);
    lk_index_free(ours);
    lk_index_free(ours_def);
    lk_index_free(flat);
}

/* ==== Main ============================================================== */

/* Truncate a real set to its first max_base rows and recompute the ground
 * truth by brute force (the stored truth refers to the full base). */
static void truncate_set(struct ann_set *s, size_t max_base, unsigned threads)
{
    if (!max_base || s->n <= max_base)
        return;
    s->n = max_base;
    size_t k = s->gt_k < s->n ? s->gt_k : s->n;
    int32_t *gt = malloc(s->nq * k * sizeof *gt);
    char msg[256];
    if (!gt || ann_knn_exact(s->base, s->n, s->dim, s->queries, s->nq, k, NULL, threads, gt, msg,
                             sizeof msg))
        die("truncate %s: ground truth failed", s->name);
    free(s->gt);
    s->gt = gt;
    s->gt_k = k;
    /* the groups of queries stay; ids past n are gone from base_group's view */
    char nm[sizeof s->name];
    if (snprintf(nm, sizeof nm, "%s[:%zu]", s->name, max_base) < (int)sizeof nm)
        memcpy(s->name, nm, sizeof nm);
}

static bool want_set(const char *list, const char *name, bool real)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (!strcmp(tok, name) || !strcmp(tok, "all") || (real && !strcmp(tok, "real")))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o);
    reorder_after_build = !o.no_reorder;
    struct bench_sysinfo si;
    bench_sysinfo_get(&si);
    printf("bench/ann — ours (lookalike index) vs hnswlib %s vs exact\n", "0.6.2");
    bench_sysinfo_print(&si, stdout);
    printf("data:       %s\n", o.data_dir);
    fflush(stdout);

    static const char *real[] = {"sift-5k", "yfcc-clip100-10k", "fashion-mnist-784"};
    /* validate names */
    {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", o.sets);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            bool ok = !strcmp(tok, "all") || !strcmp(tok, "real") || !strcmp(tok, "synth");
            for (size_t i = 0; i < 3; i++)
                ok |= !strcmp(tok, real[i]);
            if (!ok)
                die("unknown set '%s' (see --help)", tok);
        }
    }
    if (o.out) {
        /* make the parent directory if it is a plain relative/absolute path */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", o.out);
        char *sl = strrchr(dir, '/');
        if (sl) {
            *sl = '\0';
            mkdir(dir, 0755);
        }
    } else {
        mkdir("bench-results", 0755);
    }
    FILE *shared_json = NULL;
    if (o.out && !(shared_json = fopen(o.out, "w")))
        die("%s: %s", o.out, strerror(errno));

    for (size_t i = 0; i < 4; i++) {
        struct ann_set s;
        char msg[512];
        if (i < 3) {
            if (!want_set(o.sets, real[i], true))
                continue;
            if (ann_load_set(o.data_dir, real[i], o.max_queries, o.threads, &s, msg, sizeof msg))
                die("%s", msg);
            truncate_set(&s, o.max_base, o.threads);
        } else {
            if (!want_set(o.sets, "synth", false))
                continue;
            if (ann_synth_set(o.synth_n, o.synth_nq, o.synth_dim, o.synth_clusters, o.synth_rank,
                              o.seed, o.cache_dir, o.threads, &s, msg, sizeof msg))
                die("%s", msg);
        }
        FILE *json = shared_json;
        char path[4200];
        if (!json) {
            snprintf(path, sizeof path, "bench-results/ann-%s.json", s.name);
            for (char *p = path + strlen("bench-results/"); *p; p++)
                if (*p == '/' || *p == '[' || *p == ']' || *p == ':')
                    *p = '_';
            if (!(json = fopen(path, "w")))
                die("%s: %s", path, strerror(errno));
        }
        double t0 = now();
        bench_set(&o, &s, &si, json);
        printf("set %s done in %.0f s%s%s\n", s.name, now() - t0, shared_json ? "" : "; results in ",
               shared_json ? "" : path);
        fflush(stdout);
        if (!shared_json)
            fclose(json);
        ann_set_free(&s);
    }
    if (shared_json) {
        fclose(shared_json);
        printf("results in %s\n", o.out);
    }
    return 0;
}
