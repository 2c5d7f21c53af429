/*
 * src/embed/fuse.c — post-processing of the CNN descriptor learned from a
 * catalog, and the fused product embedding [sqrt(w)*cnn ; sqrt(1-w)*colour].
 *
 * Pipeline per descriptor (Jegou & Chum, ECCV 2012, "Negative evidences and
 * co-occurrences in image retrieval: the benefit of PCA and whitening"):
 *   x = ssqrt(raw)                 signed square root: damps the few very
 *                                  active channels that otherwise dominate
 *                                  the cosine (bursty activations);
 *   x = x / |x|                    so every photo counts the same in the mean
 *                                  and covariance whatever its contrast;
 *   x = x - mean                   catalog mean: removes the component every
 *                                  product shares ("is a photo");
 *   x = P x  (optional)            PCA-whitening to pca_dim: rows of P are the
 *                                  top eigenvectors of the catalog covariance
 *                                  divided by sqrt(eigenvalue + eps), so
 *                                  co-occurring channels are de-correlated;
 *   x = x / |x|.
 * The covariance is accumulated in double and decomposed with LAPACK's
 * divide-and-conquer symmetric eigensolver (LAPACKE_dsyevd; double because
 * the small eigenvalues set the whitening scale and float loses them).
 * eps = 1e-3 * (mean of the kept eigenvalues) keeps near-empty directions
 * from being blown up into noise.
 *
 * The colour part (lk_colour_embed()) is re-normalised to unit length; each
 * part is scaled by sqrt(w) / sqrt(1-w), so the fused inner product is
 * w*cos_cnn + (1-w)*cos_colour.
 *
 * Params file: see lk_embed_params_save() in embed.h.  Written atomically;
 * read back with every size, value and the CRC-32 checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lapacke.h>

#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "pembed.h"

#define PARAMS_MAGIC "LKEMBED"  /* + NUL = 8 bytes */
/* Version 2 added flag bit 1 (descriptors from the int8 CNN); version 1
 * files are still read (their CNN precision is fp32). */
#define PARAMS_VERSION 2u
#define PARAMS_FLAG_PCA 1u
#define PARAMS_FLAG_CNN_INT8 2u
#define PARAMS_HEADER_BYTES (8 + 5 * 4 + 4)
/* Whitening regulariser, relative to the mean kept eigenvalue. */
#define WHITEN_EPS_REL 1e-3

struct lk_embed_params {
    uint32_t cnn_dim, out_dim, colour_dim;
    float w;
    enum lk_cnn_precision precision; /* of the CNN whose descriptors these post-process */
    float *mean;                    /* cnn_dim */
    float *proj;                    /* out_dim x cnn_dim, row-major; NULL = identity */
};

/* ==== Helpers ==== */

static bool valid_w(float w)
{
    return w >= LK_EMBED_W_MIN && w <= LK_EMBED_W_MAX;  /* false for NaN */
}

static float ssqrt(float x)
{
    return x < 0 ? -sqrtf(-x) : sqrtf(x);
}

/* Scale v[0..n) to unit L2 norm (accumulated in double); leaves an all-zero
 * vector as is.  Returns the norm before scaling. */
static double l2_normalize(float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    double norm = sqrt(s);
    if (norm > 0) {
        float inv = (float)(1.0 / norm);
        for (size_t i = 0; i < n; i++)
            v[i] *= inv;
    }
    return norm;
}

static bool all_finite(const float *v, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(v[i]) != 0;
    return ok;
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bitwise: the params
 * file is a few hundred kB and read once, so a table buys nothing. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static struct lk_embed_params *params_alloc(size_t dim, size_t out_dim, bool pca)
{
    struct lk_embed_params *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cnn_dim = (uint32_t)dim;
    p->out_dim = (uint32_t)out_dim;
    p->colour_dim = LK_COLOUR_DIM;
    p->mean = calloc(dim, sizeof *p->mean);
    if (pca)
        p->proj = malloc(out_dim * dim * sizeof *p->proj);
    if (!p->mean || (pca && !p->proj)) {
        lk_embed_params_free(p);
        return NULL;
    }
    return p;
}

/* Steps 1-3 of the pipeline into `x` (cnn_dim floats): ssqrt, L2, - mean. */
static void pre_center(const struct lk_embed_params *p, const float *raw, float *x)
{
    for (size_t i = 0; i < p->cnn_dim; i++)
        x[i] = ssqrt(raw[i]);
    l2_normalize(x, p->cnn_dim);
    for (size_t i = 0; i < p->cnn_dim; i++)
        x[i] -= p->mean[i];
}

/* ==== Learning ==== */

int lk_embed_params_identity(size_t dim, float w, struct lk_embed_params **out, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_identity: out is NULL");
    *out = NULL;
    if (dim < 1 || dim > LK_EMBED_DIM_MAX || !valid_w(w))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_identity: dim %zu or w %g out of range", dim,
                          (double)w);
    struct lk_embed_params *p = params_alloc(dim, dim, false);
    if (!p)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    p->w = w;
    *out = p;
    return LK_OK;
}

/* PCA-whitening: fill p->proj from the centred vectors xs (n x dim). */
static int learn_pca(struct lk_embed_params *p, const float *xs, size_t n, struct lk_err *err)
{
    size_t d = p->cnn_dim, k = p->out_dim;
    double *cov = calloc(d * d, sizeof *cov), *ev = malloc(d * sizeof *ev);
    if (!cov || !ev) {
        free(cov), free(ev);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for the covariance (%zu x %zu)", d, d);
    }
    /* Upper triangle of X^T X / n, row by row (symmetric rank-1 updates). */
    for (size_t r = 0; r < n; r++) {
        const float *x = xs + r * d;
        for (size_t i = 0; i < d; i++) {
            double xi = x[i];
            double *row = cov + i * d;
            for (size_t j = i; j < d; j++)
                row[j] += xi * x[j];
        }
    }
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++)
            cov[i * d + j] /= (double)n;
    /* Eigenvalues ascending in ev, eigenvectors in the columns of cov. */
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, cov, (lapack_int)d, ev);
    if (info != 0) {
        free(cov), free(ev);
        return lk_err_set(err, LK_ERR_INTERNAL, "LAPACKE_dsyevd failed (info %d)", (int)info);
    }
    double kept = 0;
    for (size_t j = 0; j < k; j++)
        kept += fmax(ev[d - 1 - j], 0.0);
    double eps = WHITEN_EPS_REL * kept / (double)k + 1e-12;
    for (size_t j = 0; j < k; j++) {
        size_t col = d - 1 - j;  /* j-th largest */
        double s = 1.0 / sqrt(fmax(ev[col], 0.0) + eps);
        /* Fix the sign (eigenvectors are defined up to sign) so learning is
         * reproducible across LAPACK builds: largest |component| positive. */
        size_t arg = 0;
        for (size_t i = 1; i < d; i++)
            if (fabs(cov[i * d + col]) > fabs(cov[arg * d + col]))
                arg = i;
        if (cov[arg * d + col] < 0)
            s = -s;
        for (size_t i = 0; i < d; i++)
            p->proj[j * d + i] = (float)(cov[i * d + col] * s);
    }
    free(cov), free(ev);
    return LK_OK;
}

int lk_embed_params_learn(const float *cnn_descs, size_t n, size_t dim, size_t pca_dim, float w,
                          struct lk_embed_params **out, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_learn: out is NULL");
    *out = NULL;
    if (n == 0)
        return lk_err_set(err, LK_ERR_EMPTY, "lk_embed_params_learn: no descriptors");
    if (!cnn_descs || dim < 1 || dim > LK_EMBED_DIM_MAX || !valid_w(w))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_learn: bad descriptors, dim %zu or w %g", dim,
                          (double)w);
    if (pca_dim > dim || (pca_dim > 0 && pca_dim >= n))
        return lk_err_set(err, LK_ERR_INVALID_ARG,
                          "lk_embed_params_learn: pca_dim %zu must be <= dim (%zu) and < n (%zu)", pca_dim, dim, n);
    if (n > SIZE_MAX / sizeof(float) / dim)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_learn: n x dim overflows");
    if (!all_finite(cnn_descs, n * dim))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_learn: NaN or Inf in the descriptors");

    struct lk_embed_params *p = params_alloc(dim, pca_dim ? pca_dim : dim, pca_dim > 0);
    float *xs = malloc(n * dim * sizeof *xs);
    double *acc = calloc(dim, sizeof *acc);
    if (!p || !xs || !acc) {
        lk_embed_params_free(p), free(xs), free(acc);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory learning embedding params (%zu x %zu)", n, dim);
    }
    p->w = w;
    /* Mean of the ssqrt+L2 vectors (mean is still 0 here, so pre_center
     * does just steps 1-2). */
    for (size_t r = 0; r < n; r++) {
        pre_center(p, cnn_descs + r * dim, xs + r * dim);
        for (size_t i = 0; i < dim; i++)
            acc[i] += xs[r * dim + i];
    }
    for (size_t i = 0; i < dim; i++)
        p->mean[i] = (float)(acc[i] / (double)n);
    free(acc);
    int rc = LK_OK;
    if (pca_dim) {
        for (size_t r = 0; r < n; r++)
            for (size_t i = 0; i < dim; i++)
                xs[r * dim + i] -= p->mean[i];
        rc = learn_pca(p, xs, n, err);
    }
    free(xs);
    if (rc) {
        lk_embed_params_free(p);
        return rc;
    }
    *out = p;
    return LK_OK;
}

void lk_embed_params_free(struct lk_embed_params *p)
{
    if (!p)
        return;
    free(p->mean);
    free(p->proj);
    free(p);
}

/* ==== Accessors ==== */

size_t lk_embed_cnn_dim(const struct lk_embed_params *p) { return p ? p->cnn_dim : 0; }
size_t lk_embed_cnn_out_dim(const struct lk_embed_params *p) { return p ? p->out_dim : 0; }
size_t lk_embed_fused_dim(const struct lk_embed_params *p) { return p ? (size_t)p->out_dim + p->colour_dim : 0; }
float lk_embed_w(const struct lk_embed_params *p) { return p ? p->w : NAN; }

int lk_embed_params_set_w(struct lk_embed_params *p, float w, struct lk_err *err)
{
    if (!p || !valid_w(w))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_set_w: w must be in [0, 1]");
    p->w = w;
    return LK_OK;
}

int lk_embed_params_set_cnn_precision(struct lk_embed_params *p, enum lk_cnn_precision precision,
                                       struct lk_err *err)
{
    if (!p || (precision != LK_CNN_FP32 && precision != LK_CNN_INT8))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_set_cnn_precision: bad argument");
    p->precision = precision;
    return LK_OK;
}

enum lk_cnn_precision lk_embed_cnn_precision(const struct lk_embed_params *p)
{
    return p ? p->precision : LK_CNN_FP32;
}

void lk__embed_params_internals(const struct lk_embed_params *p, const float **mean, const float **proj)
{
    *mean = p->mean;
    *proj = p->proj;
}

/* ==== Applying ==== */

/* Stack buffer for the centred vector up to this size; larger dims use the
 * heap (the default 576-d descriptor never does). */
#define STACK_DIM 2048

int lk_embed_cnn_normalize(const struct lk_embed_params *p, const float *cnn_raw, float *out, struct lk_err *err)
{
    if (!p || !cnn_raw || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_cnn_normalize: NULL argument");
    if (!all_finite(cnn_raw, p->cnn_dim))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_cnn_normalize: NaN or Inf in the descriptor");
    if (!p->proj) {
        pre_center(p, cnn_raw, out);
    } else {
        float stack[STACK_DIM], *x = p->cnn_dim <= STACK_DIM ? stack : malloc(p->cnn_dim * sizeof *x);
        if (!x)
            return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        pre_center(p, cnn_raw, x);
        for (size_t j = 0; j < p->out_dim; j++) {
            const float *row = p->proj + j * p->cnn_dim;
            float s = 0;
            for (size_t i = 0; i < p->cnn_dim; i++)
                s += row[i] * x[i];
            out[j] = s;
        }
        if (x != stack)
            free(x);
    }
    l2_normalize(out, p->out_dim);
    return LK_OK;
}

int lk_embed_fuse(const struct lk_embed_params *p, const float *cnn_raw, const float *colour, float *out,
                  struct lk_err *err)
{
    if (!p || !cnn_raw || !colour || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_fuse: NULL argument");
    if (!all_finite(colour, p->colour_dim))
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_fuse: NaN or Inf in the colour embedding");
    int rc = lk_embed_cnn_normalize(p, cnn_raw, out, err);
    if (rc)
        return rc;
    float *h = out + p->out_dim;
    memcpy(h, colour, p->colour_dim * sizeof *h);
    l2_normalize(h, p->colour_dim);
    float a = sqrtf(p->w), b = sqrtf(1.0f - p->w);
    for (size_t i = 0; i < p->out_dim; i++)
        out[i] *= a;
    for (size_t i = 0; i < p->colour_dim; i++)
        h[i] *= b;
    return LK_OK;
}

/* ==== Save / load ==== */

static void put_u32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v, b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)(v >> 16), b[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_f32(uint8_t *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_u32(b, u);
}

static float get_f32(const uint8_t *b)
{
    uint32_t u = get_u32(b);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static size_t params_bytes(uint32_t cnn_dim, uint32_t out_dim, bool pca)
{
    return PARAMS_HEADER_BYTES + 4 * ((size_t)cnn_dim + (pca ? (size_t)out_dim * cnn_dim : 0)) + 4;
}

static int write_all(int fd, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w, n -= (size_t)w;
    }
    return 0;
}

int lk_embed_params_save(const struct lk_embed_params *p, const char *path, struct lk_err *err)
{
    if (!p || !path || !*path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_save: NULL argument");
    bool pca = p->proj != NULL;
    size_t total = params_bytes(p->cnn_dim, p->out_dim, pca);
    uint8_t *buf = malloc(total);
    if (!buf)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    uint8_t *b = buf;
    memcpy(b, PARAMS_MAGIC, 8), b += 8;
    put_u32(b, PARAMS_VERSION), b += 4;
    put_u32(b, p->cnn_dim), b += 4;
    put_u32(b, p->out_dim), b += 4;
    put_u32(b, p->colour_dim), b += 4;
    put_u32(b, (pca ? PARAMS_FLAG_PCA : 0) | (p->precision == LK_CNN_INT8 ? PARAMS_FLAG_CNN_INT8 : 0)), b += 4;
    put_f32(b, p->w), b += 4;
    for (size_t i = 0; i < p->cnn_dim; i++, b += 4)
        put_f32(b, p->mean[i]);
    for (size_t i = 0; pca && i < (size_t)p->out_dim * p->cnn_dim; i++, b += 4)
        put_f32(b, p->proj[i]);
    put_u32(b, crc32_update(0, buf, (size_t)(b - buf)));

    /* temp file in the same directory, fsync, rename, fsync the directory */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *dircopy = strdup(path);
    if (!tmp || !dircopy) {
        free(buf), free(tmp), free(dircopy);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int rc = LK_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = lk_err_set(err, LK_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    } else {
        if (write_all(fd, buf, total) != 0 || fsync(fd) != 0)
            rc = lk_err_set(err, LK_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        if (close(fd) != 0 && rc == LK_OK)
            rc = lk_err_set(err, LK_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
        if (rc == LK_OK && rename(tmp, path) != 0)
            rc = lk_err_set(err, LK_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (rc != LK_OK) {
            unlink(tmp);
        } else {
            int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
            if (dfd < 0 || fsync(dfd) != 0)
                rc = lk_err_set(err, LK_ERR_IO, "cannot fsync the directory of %s: %s", path, strerror(errno));
            if (dfd >= 0)
                close(dfd);
        }
    }
    free(buf), free(tmp), free(dircopy);
    return rc;
}

int lk_embed_params_load(const char *path, struct lk_embed_params **out, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_load: out is NULL");
    *out = NULL;
    if (!path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_params_load: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return lk_err_set(err, LK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    uint8_t hdr[PARAMS_HEADER_BYTES];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    if (got < 8 || memcmp(hdr, PARAMS_MAGIC, 8) != 0) {
        fclose(f);
        return got < 8 ? lk_err_set(err, LK_ERR_TRUNCATED, "%s: too short for an embedding params file", path)
                       : lk_err_set(err, LK_ERR_FORMAT, "%s: not an embedding params file (bad magic)", path);
    }
    if (got < sizeof hdr) {
        fclose(f);
        return lk_err_set(err, LK_ERR_TRUNCATED, "%s: header truncated", path);
    }
    uint32_t version = get_u32(hdr + 8), cnn_dim = get_u32(hdr + 12), out_dim = get_u32(hdr + 16),
             colour_dim = get_u32(hdr + 20), flags = get_u32(hdr + 24);
    float w = get_f32(hdr + 28);
    if (version != 1 && version != PARAMS_VERSION) {
        fclose(f);
        return lk_err_set(err, LK_ERR_FORMAT, "%s: params version %u, this build reads 1 to %u", path, version,
                          PARAMS_VERSION);
    }
    bool pca = flags & PARAMS_FLAG_PCA;
    uint32_t known = version == 1 ? PARAMS_FLAG_PCA : PARAMS_FLAG_PCA | PARAMS_FLAG_CNN_INT8;
    if (cnn_dim < 1 || cnn_dim > LK_EMBED_DIM_MAX || out_dim < 1 || out_dim > cnn_dim ||
        (!pca && out_dim != cnn_dim) || (flags & ~known) || !valid_w(w)) {
        fclose(f);
        return lk_err_set(err, LK_ERR_CORRUPT, "%s: inconsistent header (dims %u/%u, flags %#x, w %g)", path, cnn_dim,
                          out_dim, flags, (double)w);
    }
    if (colour_dim != LK_COLOUR_DIM) {
        fclose(f);
        return lk_err_set(err, LK_ERR_FORMAT, "%s: made for a %u-d colour embedding, this build has %d", path,
                          colour_dim, LK_COLOUR_DIM);
    }
    size_t total = params_bytes(cnn_dim, out_dim, pca);
    uint8_t *buf = malloc(total + 1);
    if (!buf) {
        fclose(f);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    memcpy(buf, hdr, sizeof hdr);
    /* Read one byte more than expected to detect trailing garbage. */
    size_t rest = fread(buf + sizeof hdr, 1, total + 1 - sizeof hdr, f);
    int rerr = ferror(f);
    fclose(f);
    int rc = LK_OK;
    if (rerr)
        rc = lk_err_set(err, LK_ERR_IO, "%s: read error", path);
    else if (sizeof hdr + rest < total)
        rc = lk_err_set(err, LK_ERR_TRUNCATED, "%s: %zu bytes, expected %zu", path, sizeof hdr + rest, total);
    else if (sizeof hdr + rest > total)
        rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: trailing bytes after the checksum", path);
    else if (crc32_update(0, buf, total - 4) != get_u32(buf + total - 4))
        rc = lk_err_set(err, LK_ERR_CHECKSUM, "%s: CRC-32 mismatch", path);
    struct lk_embed_params *p = NULL;
    if (!rc) {
        p = params_alloc(cnn_dim, out_dim, pca);
        if (!p)
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    if (!rc) {
        p->w = w;
        p->precision = (flags & PARAMS_FLAG_CNN_INT8) ? LK_CNN_INT8 : LK_CNN_FP32;
        const uint8_t *b = buf + PARAMS_HEADER_BYTES;
        for (size_t i = 0; i < cnn_dim; i++, b += 4)
            p->mean[i] = get_f32(b);
        for (size_t i = 0; pca && i < (size_t)out_dim * cnn_dim; i++, b += 4)
            p->proj[i] = get_f32(b);
        if (!all_finite(p->mean, cnn_dim) || (pca && !all_finite(p->proj, (size_t)out_dim * cnn_dim)))
            rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: non-finite values", path);
    }
    free(buf);
    if (rc) {
        lk_embed_params_free(p);
        return rc;
    }
    *out = p;
    return LK_OK;
}
