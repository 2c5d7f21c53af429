/*
 * bench/ann_data.c — loaders, synthetic generator and exact k-NN for
 * bench/ann (contract in ann_data.h).
 *
 * Decisions worth knowing:
 * - The exact k-NN here is deliberately independent of the index library
 *   under test: it is the oracle that the library's flat index is checked
 *   against in the report.  It is a blocked scan (a block of base rows that
 *   fits in L2 against a few queries at a time, queries split over threads)
 *   with an AVX2+FMA kernel chosen at run time.  Candidates are kept in
 *   float32 (k + 16 per query), then re-ranked in float64 so that the final
 *   order is exact even where float32 rounding would swap near-ties (the
 *   Fashion-MNIST distances reach 5e7, beyond float32's 2^24 integers).
 * - The synthetic generator draws everything from one xoshiro256** stream
 *   per purpose (model, base, queries) seeded by splitmix64, so the set is a
 *   pure function of (n, nq, dim, clusters, rank, seed) on any machine, and
 *   queries do not depend on n.
 * - The cache file is written crash-safely (temporary file, fsync, rename)
 *   and carries a checksum; a damaged or mismatching file is regenerated.
 */
#include "ann_data.h"

#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t msglen, const char *fmt, ...)
{
    if (msg && msglen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void ann_set_free(struct ann_set *s)
{
    if (!s)
        return;
    free(s->base);
    free(s->queries);
    free(s->gt);
    free(s->base_group);
    free(s->query_group);
    memset(s, 0, sizeof *s);
}

/* ==== Random numbers ==================================================== */

uint64_t ann_hash64(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct rng {
    uint64_t s[4];
    int have_spare;
    double spare;
};

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = ann_hash64(seed, (uint64_t)i);
    r->have_spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna 2018). */
static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in (0, 1]: never 0, so log() below is finite. */
static double rng_unit(struct rng *r)
{
    return ((double)(rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Standard normal by Box-Muller, two values per pair of uniforms. */
static double rng_normal(struct rng *r)
{
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u = rng_unit(r), v = rng_unit(r);
    double rad = sqrt(-2.0 * log(u));
    r->spare = rad * sin(2.0 * M_PI * v);
    r->have_spare = 1;
    return rad * cos(2.0 * M_PI * v);
}

/* ==== Distance kernel =================================================== */

static float l2_scalar(const float *a, const float *b, size_t dim)
{
    float s = 0;
    for (size_t i = 0; i < dim; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

/* Two independent accumulators hide the FMA latency. */
__attribute__((target("avx2,fma"))) static float l2_avx2(const float *a, const float *b,
                                                          size_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
    }
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; i < dim; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

typedef float (*l2_fn)(const float *, const float *, size_t);

static l2_fn pick_l2(void)
{
    static l2_fn fn;
    if (!fn) {
        __builtin_cpu_init();
        fn = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? l2_avx2
                                                                              : l2_scalar;
    }
    return fn;
}

float ann_l2(const float *a, const float *b, size_t dim)
{
    return pick_l2()(a, b, dim);
}

static double l2_double(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++) {
        double t = (double)a[i] - (double)b[i];
        s += t * t;
    }
    return s;
}

/* ==== Exact k-NN ======================================================== */

/* Max-heap of (distance, row), ordered so the top is the worst candidate;
 * ties broken towards keeping the smaller row. */
struct heap {
    float *d;
    int32_t *id;
    size_t n, cap;
};

static inline int worse(float da, int32_t ia, float db, int32_t ib)
{
    return da > db || (da == db && ia > ib);
}

static void heap_push(struct heap *h, float d, int32_t id)
{
    if (h->n == h->cap) {
        if (!worse(h->d[0], h->id[0], d, id))
            return;
        /* replace top, sift down */
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            float md = d;
            int32_t mid = id;
            if (l < h->n && worse(h->d[l], h->id[l], md, mid)) {
                m = l;
                md = h->d[l];
                mid = h->id[l];
            }
            if (r < h->n && worse(h->d[r], h->id[r], md, mid))
                m = r;
            if (m == i)
                break;
            h->d[i] = h->d[m];
            h->id[i] = h->id[m];
            i = m;
        }
        h->d[i] = d;
        h->id[i] = id;
        return;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(d, id, h->d[p], h->id[p]))
            break;
        h->d[i] = h->d[p];
        h->id[i] = h->id[p];
        i = p;
    }
    h->d[i] = d;
    h->id[i] = id;
}

struct cand {
    double d;
    int32_t id;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

struct knn_job {
    const float *base, *queries;
    size_t n, dim, k, kk;
    const uint8_t *allowed;
    int32_t *ids;
    size_t q0, q1;
    int failed;
};

#define KNN_QBLOCK 8

static void *knn_worker(void *arg)
{
    struct knn_job *j = arg;
    l2_fn l2 = pick_l2();
    size_t dim = j->dim, kk = j->kk;
    /* Base block sized to stay within ~256 KiB of L2 cache. */
    size_t bb = (256u << 10) / (dim * sizeof(float));
    if (bb < 16)
        bb = 16;
    float *hd = malloc(KNN_QBLOCK * kk * sizeof *hd);
    int32_t *hid = malloc(KNN_QBLOCK * kk * sizeof *hid);
    struct cand *c = malloc(kk * sizeof *c);
    if (!hd || !hid || !c) {
        j->failed = 1;
        goto out;
    }
    for (size_t q0 = j->q0; q0 < j->q1; q0 += KNN_QBLOCK) {
        size_t nqb = j->q1 - q0 < KNN_QBLOCK ? j->q1 - q0 : KNN_QBLOCK;
        struct heap h[KNN_QBLOCK];
        for (size_t t = 0; t < nqb; t++)
            h[t] = (struct heap){hd + t * kk, hid + t * kk, 0, kk};
        for (size_t b0 = 0; b0 < j->n; b0 += bb) {
            size_t b1 = b0 + bb < j->n ? b0 + bb : j->n;
            for (size_t t = 0; t < nqb; t++) {
                const float *q = j->queries + (q0 + t) * dim;
                for (size_t r = b0; r < b1; r++) {
                    if (j->allowed && !j->allowed[r])
                        continue;
                    float d = l2(q, j->base + r * dim, dim);
                    heap_push(&h[t], d, (int32_t)r);
                }
            }
        }
        for (size_t t = 0; t < nqb; t++) {
            const float *q = j->queries + (q0 + t) * dim;
            size_t m = h[t].n;
            for (size_t i = 0; i < m; i++)
                c[i] = (struct cand){l2_double(q, j->base + (size_t)h[t].id[i] * dim, dim),
                                     h[t].id[i]};
            qsort(c, m, sizeof *c, cand_cmp);
            int32_t *out = j->ids + (q0 + t) * j->k;
            for (size_t i = 0; i < j->k; i++)
                out[i] = i < m ? c[i].id : -1;
        }
    }
out:
    free(hd);
    free(hid);
    free(c);
    return NULL;
}

int ann_knn_exact(const float *base, size_t n, size_t dim, const float *queries, size_t nq,
                  size_t k, const uint8_t *allowed, unsigned threads, int32_t *ids,
                  char *msg, size_t msglen)
{
    if (k == 0 || dim == 0)
        return fail(msg, msglen, "knn: k and dim must be positive");
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    if (threads > nq)
        threads = nq ? (unsigned)nq : 1;
    struct knn_job jobs[64];
    pthread_t tid[64];
    int created[64] = {0};
    size_t per = (nq + threads - 1) / threads;
    int rc = 0;
    for (unsigned t = 0; t < threads; t++) {
        size_t q0 = t * per < nq ? t * per : nq, q1 = q0 + per < nq ? q0 + per : nq;
        jobs[t] = (struct knn_job){base, queries, n, dim, k, k + 16, allowed, ids, q0, q1, 0};
        if (q0 >= q1)
            continue;
        if (pthread_create(&tid[t], NULL, knn_worker, &jobs[t]) == 0)
            created[t] = 1;
        else
            knn_worker(&jobs[t]);   /* no thread: do this share here */
    }
    for (unsigned t = 0; t < threads; t++) {
        if (created[t])
            pthread_join(tid[t], NULL);
        if (jobs[t].failed)
            rc = -1;
    }
    if (rc)
        return fail(msg, msglen, "knn: out of memory");
    return 0;
}

/* ==== TEXMEX files ====================================================== */

int ann_read_vecs(const char *path, char kind, size_t *rows, size_t *dim, void **out,
                  char *msg, size_t msglen)
{
    *rows = 0;
    *dim = 0;
    *out = NULL;
    size_t esize = kind == 'b' ? 1 : 4;
    if (kind != 'f' && kind != 'b' && kind != 'i')
        return fail(msg, msglen, "%s: unknown vector file kind '%c'", path, kind);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(msg, msglen, "%s: %s", path, strerror(errno));
    unsigned char *raw = NULL;
    void *data = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fail(msg, msglen, "%s: %s", path, strerror(errno));
        goto bad;
    }
    size_t size = (size_t)st.st_size;
    if (size < 4) {
        fail(msg, msglen, "%s: %zu bytes, too short for a record header", path, size);
        goto bad;
    }
    raw = malloc(size);
    if (!raw) {
        fail(msg, msglen, "%s: cannot allocate %zu bytes", path, size);
        goto bad;
    }
    if (fread(raw, 1, size, f) != size) {
        fail(msg, msglen, "%s: short read", path);
        goto bad;
    }
    int32_t d0;
    memcpy(&d0, raw, 4);
    if (d0 < 1 || d0 > 65536) {
        fail(msg, msglen, "%s: record 0 has dimension %d (expected 1..65536)", path, (int)d0);
        goto bad;
    }
    size_t d = (size_t)d0, rec = 4 + d * esize;
    if (size % rec != 0) {
        fail(msg, msglen, "%s: %zu bytes is not a whole number of %zu-byte records (dim %zu)",
             path, size, rec, d);
        goto bad;
    }
    size_t n = size / rec;
    data = malloc(n * d * 4);
    if (!data) {
        fail(msg, msglen, "%s: cannot allocate %zu x %zu", path, n, d);
        goto bad;
    }
    for (size_t r = 0; r < n; r++) {
        const unsigned char *p = raw + r * rec;
        int32_t dr;
        memcpy(&dr, p, 4);
        if ((size_t)dr != d) {
            fail(msg, msglen, "%s: record %zu has dimension %d, record 0 has %zu", path, r,
                 (int)dr, d);
            goto bad;
        }
        p += 4;
        if (kind == 'b') {
            float *o = (float *)data + r * d;
            for (size_t i = 0; i < d; i++)
                o[i] = (float)p[i];
        } else if (kind == 'f') {
            float *o = (float *)data + r * d;
            memcpy(o, p, d * 4);
            for (size_t i = 0; i < d; i++)
                if (!isfinite(o[i])) {
                    fail(msg, msglen, "%s: record %zu value %zu is not finite", path, r, i);
                    goto bad;
                }
        } else {
            memcpy((int32_t *)data + r * d, p, d * 4);
        }
    }
    free(raw);
    fclose(f);
    *rows = n;
    *dim = d;
    *out = data;
    return 0;
bad:
    free(raw);
    free(data);
    fclose(f);
    return -1;
}

/* dir + "/" + file into out; -1 if it does not fit. */
static int join(char *out, size_t cap, const char *dir, const char *file)
{
    int n = snprintf(out, cap, "%s/%s", dir, file);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Read <dir>/<name>/<stem>.fvecs or .bvecs, whichever exists. */
static int read_vectors(const char *setdir, const char *stem, size_t *rows, size_t *dim,
                        float **out, char *msg, size_t msglen)
{
    char path[4096], file[64];
    snprintf(file, sizeof file, "%.50s.fvecs", stem);
    if (join(path, sizeof path, setdir, file))
        return fail(msg, msglen, "%s: path too long", setdir);
    if (file_exists(path))
        return ann_read_vecs(path, 'f', rows, dim, (void **)out, msg, msglen);
    snprintf(file, sizeof file, "%.50s.bvecs", stem);
    if (join(path, sizeof path, setdir, file))
        return fail(msg, msglen, "%s: path too long", setdir);
    if (file_exists(path))
        return ann_read_vecs(path, 'b', rows, dim, (void **)out, msg, msglen);
    return fail(msg, msglen, "%s: no %s.fvecs or %s.bvecs", setdir, stem, stem);
}

/* Groups from the nearest of `np` pivot rows (distinct rows chosen by a
 * seeded partial Fisher-Yates shuffle). */
static int groups_from_pivots(struct ann_set *s, size_t np, uint64_t seed, char *msg,
                              size_t msglen)
{
    if (np > s->n)
        np = s->n;
    size_t *perm = malloc(s->n * sizeof *perm);
    s->base_group = malloc(s->n * sizeof *s->base_group);
    s->query_group = malloc(s->nq * sizeof *s->query_group);
    if (!perm || !s->base_group || !s->query_group) {
        free(perm);
        return fail(msg, msglen, "out of memory");
    }
    for (size_t i = 0; i < s->n; i++)
        perm[i] = i;
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < np; i++) {
        size_t j = i + rng_below(&r, s->n - i);
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int pass = 0; pass < 2; pass++) {
        const float *v = pass ? s->queries : s->base;
        size_t m = pass ? s->nq : s->n;
        int32_t *g = pass ? s->query_group : s->base_group;
        for (size_t i = 0; i < m; i++) {
            float best = INFINITY;
            int32_t bi = 0;
            for (size_t p = 0; p < np; p++) {
                float d = ann_l2(v + i * s->dim, s->base + perm[p] * s->dim, s->dim);
                if (d < best) {
                    best = d;
                    bi = (int32_t)p;
                }
            }
            g[i] = bi;
        }
    }
    free(perm);
    s->ngroups = np;
    snprintf(s->group_source, sizeof s->group_source, "nearest of %zu pivot rows", np);
    return 0;
}

static int load_groups(const char *setdir, struct ann_set *s, size_t nq_total, char *msg,
                       size_t msglen)
{
    char path[4096], path2[4096];
    size_t rows, d;
    if (join(path, sizeof path, setdir, "base_labels.ivecs"))
        return fail(msg, msglen, "%s: path too long", setdir);
    if (join(path2, sizeof path2, setdir, "query_labels.ivecs"))
        return fail(msg, msglen, "%s: path too long", setdir);
    if (file_exists(path) && file_exists(path2)) {
        if (ann_read_vecs(path, 'i', &rows, &d, (void **)&s->base_group, msg, msglen))
            return -1;
        if (rows != s->n || d != 1)
            return fail(msg, msglen, "%s: %zu x %zu, expected %zu x 1", path, rows, d, s->n);
        if (ann_read_vecs(path2, 'i', &rows, &d, (void **)&s->query_group, msg, msglen))
            return -1;
        if (rows != nq_total || d != 1)
            return fail(msg, msglen, "%s: %zu x %zu, expected %zu x 1", path2, rows, d,
                        nq_total);
        snprintf(s->group_source, sizeof s->group_source, "class labels (base_labels.ivecs)");
    } else {
        if (join(path, sizeof path, setdir, "base_attrs.fvecs"))
        return fail(msg, msglen, "%s: path too long", setdir);
        if (!file_exists(path))
            return groups_from_pivots(s, 32, 0x9e3779b9u, msg, msglen);
        float *attrs = NULL, *qattrs = NULL;
        if (ann_read_vecs(path, 'f', &rows, &d, (void **)&attrs, msg, msglen))
            return -1;
        if (rows != s->n) {
            free(attrs);
            return fail(msg, msglen, "%s: %zu rows, base has %zu", path, rows, s->n);
        }
        s->base_group = malloc(s->n * sizeof *s->base_group);
        s->query_group = malloc(nq_total * sizeof *s->query_group);
        if (!s->base_group || !s->query_group) {
            free(attrs);
            return fail(msg, msglen, "out of memory");
        }
        for (size_t i = 0; i < s->n; i++) {
            float c = attrs[i * d];
            if (!(c >= 0 && c < 1e6f) || c != floorf(c)) {
                free(attrs);
                return fail(msg, msglen, "%s: row %zu category %g is not a small integer",
                            path, i, (double)c);
            }
            s->base_group[i] = (int32_t)c;
        }
        free(attrs);
        /* Queries: own category where the query carries one (yfcc query
         * types 1 and 3: [type, category, lo, hi]), else the category of
         * the nearest base vector. */
        size_t qd = 0;
        if (join(path2, sizeof path2, setdir, "query_attrs.fvecs"))
            return fail(msg, msglen, "%s: path too long", setdir);
        if (file_exists(path2)) {
            if (ann_read_vecs(path2, 'f', &rows, &qd, (void **)&qattrs, msg, msglen))
                return -1;
            if (rows != nq_total || qd < 2) {
                free(qattrs);
                return fail(msg, msglen, "%s: %zu x %zu, expected %zu x >=2", path2, rows, qd,
                            nq_total);
            }
        }
        size_t own = 0;
        for (size_t q = 0; q < nq_total; q++) {
            float c = qattrs ? qattrs[q * qd + 1] : -1;
            if (c >= 0 && c < 1e6f && c == floorf(c)) {
                s->query_group[q] = (int32_t)c;
                own++;
            } else {
                s->query_group[q] = s->base_group[s->gt[q * s->gt_k]];
            }
        }
        free(qattrs);
        snprintf(s->group_source, sizeof s->group_source,
                 "category attribute (%zu of %zu queries carry one; others: their NN's)", own,
                 nq_total);
    }
    int32_t mx = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->base_group[i] < 0 || s->base_group[i] >= 1 << 20)
            return fail(msg, msglen, "%s: base group %d out of range", setdir,
                        (int)s->base_group[i]);
        if (s->base_group[i] > mx)
            mx = s->base_group[i];
    }
    for (size_t q = 0; q < nq_total; q++) {
        if (s->query_group[q] < 0 || s->query_group[q] >= 1 << 20)
            return fail(msg, msglen, "%s: query group %d out of range", setdir,
                        (int)s->query_group[q]);
        if (s->query_group[q] > mx)
            mx = s->query_group[q];
    }
    s->ngroups = (size_t)mx + 1;
    return 0;
}

int ann_load_set(const char *dir, const char *name, size_t max_queries, unsigned threads,
                 struct ann_set *out, char *msg, size_t msglen)
{
    (void)threads;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    char setdir[4096], path[4096];
    if (join(setdir, sizeof setdir, dir, name))
        return fail(msg, msglen, "%s: path too long", dir);
    size_t qd, nq_total, gr, gd;
    if (read_vectors(setdir, "base", &out->n, &out->dim, &out->base, msg, msglen))
        goto bad;
    if (read_vectors(setdir, "query", &nq_total, &qd, &out->queries, msg, msglen))
        goto bad;
    if (qd != out->dim) {
        fail(msg, msglen, "%s: query dim %zu != base dim %zu", setdir, qd, out->dim);
        goto bad;
    }
    if (join(path, sizeof path, setdir, "groundtruth.ivecs")) {
        fail(msg, msglen, "%s: path too long", setdir);
        goto bad;
    }
    if (ann_read_vecs(path, 'i', &gr, &gd, (void **)&out->gt, msg, msglen))
        goto bad;
    if (gr != nq_total || gd < 10) {
        fail(msg, msglen, "%s: %zu x %zu, expected %zu rows of >= 10 ids", path, gr, gd,
             nq_total);
        goto bad;
    }
    out->gt_k = gd;
    for (size_t i = 0; i < gr * gd; i++)
        if (out->gt[i] < 0 || (size_t)out->gt[i] >= out->n) {
            fail(msg, msglen, "%s: id %d at entry %zu outside [0, %zu)", path, (int)out->gt[i],
                 i, out->n);
            goto bad;
        }
    out->nq = nq_total;
    if (load_groups(setdir, out, nq_total, msg, msglen))
        goto bad;
    if (max_queries && max_queries < out->nq)
        out->nq = max_queries;   /* keep the first rows; arrays stay as read */
    return 0;
bad:
    ann_set_free(out);
    return -1;
}

/* ==== Synthetic set ===================================================== */

#define SYNTH_MAGIC "LKSYNTH1"
#define SYNTH_GT_K 100

struct synth_hdr {
    char magic[8];
    uint64_t n, nq, dim, nclusters, rank, seed, gt_k, checksum;
};

/* 64-bit multiply-xor hash over 8-byte words (the payload is a whole number
 * of words since every array has 4-byte elements and we hash each array
 * padded to 8 bytes). */
static uint64_t hash_buf(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t synth_checksum(const struct ann_set *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = hash_buf(h, s->base, s->n * s->dim * 4);
    h = hash_buf(h, s->queries, s->nq * s->dim * 4);
    h = hash_buf(h, s->base_group, s->n * 4);
    h = hash_buf(h, s->query_group, s->nq * 4);
    h = hash_buf(h, s->gt, s->nq * s->gt_k * 4);
    return h;
}

static int synth_alloc(struct ann_set *s)
{
    s->base = malloc(s->n * s->dim * sizeof(float));
    s->queries = malloc(s->nq * s->dim * sizeof(float));
    s->base_group = malloc(s->n * sizeof(int32_t));
    s->query_group = malloc(s->nq * sizeof(int32_t));
    s->gt = malloc(s->nq * s->gt_k * sizeof(int32_t));
    return s->base && s->queries && s->base_group && s->query_group && s->gt ? 0 : -1;
}

static int read_all(FILE *f, void *p, size_t len)
{
    return fread(p, 1, len, f) == len ? 0 : -1;
}

static int synth_load_cache(const char *path, const struct synth_hdr *want, struct ann_set *s)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct synth_hdr h;
    int ok = read_all(f, &h, sizeof h) == 0 && memcmp(h.magic, SYNTH_MAGIC, 8) == 0 &&
             h.n == want->n && h.nq == want->nq && h.dim == want->dim &&
             h.nclusters == want->nclusters && h.rank == want->rank && h.seed == want->seed &&
             h.gt_k == want->gt_k;
    if (ok) {
        ok = synth_alloc(s) == 0 && read_all(f, s->base, s->n * s->dim * 4) == 0 &&
             read_all(f, s->queries, s->nq * s->dim * 4) == 0 &&
             read_all(f, s->base_group, s->n * 4) == 0 &&
             read_all(f, s->query_group, s->nq * 4) == 0 &&
             read_all(f, s->gt, s->nq * s->gt_k * 4) == 0 && fgetc(f) == EOF &&
             synth_checksum(s) == h.checksum;
    }
    fclose(f);
    if (ok) {
        for (size_t i = 0; i < s->nq * s->gt_k && ok; i++)
            ok = s->gt[i] >= 0 && (size_t)s->gt[i] < s->n;
        for (size_t i = 0; i < s->n && ok; i++)
            ok = s->base_group[i] >= 0 && (size_t)s->base_group[i] < s->ngroups;
        for (size_t i = 0; i < s->nq && ok; i++)
            ok = s->query_group[i] >= 0 && (size_t)s->query_group[i] < s->ngroups;
    }
    return ok ? 0 : -1;
}

static int write_all(int fd, const void *p, size_t len)
{
    const char *b = p;
    while (len) {
        ssize_t w = write(fd, b, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Temporary file, fsync, rename: a crash leaves either no cache file or a
 * complete one (and the checksum catches anything else). */
static int synth_save_cache(const char *path, struct synth_hdr *h, const struct ann_set *s)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    h->checksum = synth_checksum(s);
    int rc = write_all(fd, h, sizeof *h) || write_all(fd, s->base, s->n * s->dim * 4) ||
             write_all(fd, s->queries, s->nq * s->dim * 4) ||
             write_all(fd, s->base_group, s->n * 4) ||
             write_all(fd, s->query_group, s->nq * 4) ||
             write_all(fd, s->gt, s->nq * s->gt_k * 4) || fsync(fd) != 0;
    if (close(fd) != 0)
        rc = -1;
    if (rc || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void synth_points(struct rng *r, const float *centres, const float *bases, size_t m,
                         size_t dim, size_t nclusters, size_t rank, float *out, int32_t *group)
{
    const float noise = 0.05f;
    float z[256];
    for (size_t i = 0; i < m; i++) {
        size_t c = (size_t)rng_below(r, nclusters);
        group[i] = (int32_t)c;
        for (size_t t = 0; t < rank; t++)
            z[t] = (float)rng_normal(r);
        const float *ctr = centres + c * dim, *B = bases + c * dim * rank;
        float *x = out + i * dim;
        for (size_t j = 0; j < dim; j++) {
            float v = ctr[j];
            const float *row = B + j * rank;
            for (size_t t = 0; t < rank; t++)
                v += row[t] * z[t];
            x[j] = v + noise * (float)rng_normal(r);
        }
    }
}

int ann_synth_set(size_t n, size_t nq, size_t dim, size_t nclusters, size_t rank, uint64_t seed,
                  const char *cache_dir, unsigned threads, struct ann_set *out,
                  char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || nq == 0 || dim == 0 || nclusters == 0 || rank == 0 || rank > 256 ||
        n > INT32_MAX)
        return fail(msg, msglen, "synthetic: bad parameters n=%zu nq=%zu dim=%zu c=%zu r=%zu",
                    n, nq, dim, nclusters, rank);
    snprintf(out->name, sizeof out->name, "synthetic-%zu", n);
    if (n % 1000000 == 0)
        snprintf(out->name, sizeof out->name, "synth-%zuM-%zu", n / 1000000, dim);
    else if (n % 1000 == 0)
        snprintf(out->name, sizeof out->name, "synth-%zuk-%zu", n / 1000, dim);
    out->n = n;
    out->nq = nq;
    out->dim = dim;
    out->gt_k = n < SYNTH_GT_K ? n : SYNTH_GT_K;
    out->ngroups = nclusters;
    snprintf(out->group_source, sizeof out->group_source, "generating cluster (%zu clusters)",
             nclusters);

    struct synth_hdr want = {SYNTH_MAGIC, n, nq, dim, nclusters, rank, seed, out->gt_k, 0};
    char path[4096] = "";
    if (cache_dir) {
        mkdir(cache_dir, 0755);
        char file[160];
        snprintf(file, sizeof file, "synth-n%zu-d%zu-c%zu-r%zu-q%zu-s%llu.bin", n, dim,
                 nclusters, rank, nq, (unsigned long long)seed);
        if (join(path, sizeof path, cache_dir, file))
            return fail(msg, msglen, "%s: path too long", cache_dir);
        if (synth_load_cache(path, &want, out) == 0) {
            fprintf(stderr, "synthetic: loaded %s\n", path);
            return 0;
        }
        free(out->base);
        free(out->queries);
        free(out->base_group);
        free(out->query_group);
        free(out->gt);
        out->base = out->queries = NULL;
        out->base_group = out->query_group = out->gt = NULL;
    }
    if (synth_alloc(out))
        goto nomem;
    float *centres = malloc(nclusters * dim * sizeof *centres);
    float *bases = malloc(nclusters * dim * rank * sizeof *bases);
    if (!centres || !bases) {
        free(centres);
        free(bases);
        goto nomem;
    }
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < nclusters * dim; i++)
        centres[i] = (float)rng_normal(&r);
    float bscale = (float)(0.5 / sqrt((double)rank));
    for (size_t i = 0; i < nclusters * dim * rank; i++)
        bases[i] = bscale * (float)rng_normal(&r);
    rng_seed(&r, seed ^ 0xba5eba5eull);
    synth_points(&r, centres, bases, n, dim, nclusters, rank, out->base, out->base_group);
    rng_seed(&r, seed ^ 0x9e4e4e5ull);
    synth_points(&r, centres, bases, nq, dim, nclusters, rank, out->queries, out->query_group);
    free(centres);
    free(bases);
    fprintf(stderr, "synthetic: generated %zu x %zu (+%zu queries); exact top-%zu by brute force"
                    " on %u threads...\n", n, dim, nq, out->gt_k, threads);
    if (ann_knn_exact(out->base, n, dim, out->queries, nq, out->gt_k, NULL, threads, out->gt,
                      msg, msglen))
        goto bad;
    if (cache_dir) {
        if (synth_save_cache(path, &want, out) == 0)
            fprintf(stderr, "synthetic: cached in %s\n", path);
        else
            fprintf(stderr, "synthetic: warning: could not write cache %s: %s\n", path,
                    strerror(errno));
    }
    return 0;
nomem:
    fail(msg, msglen, "synthetic: out of memory for %zu x %zu", n, dim);
bad:
    ann_set_free(out);
    return -1;
}
