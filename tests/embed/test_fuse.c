/*
 * tests/embed/test_fuse.c — fused product embedding (src/embed/fuse.c):
 * norms, the inner-product identity w*cos_cnn + (1-w)*cos_colour, PCA on
 * synthetic data with known dominant directions, params save/load and
 * damaged params files.  Needs no model files.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "../../src/embed/pembed.h"

static uint32_t rng = 2463534242u;

static float frand(void) /* uniform [0,1) */
{
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    return (float)(rng >> 8) / 16777216.0f;
}

static float gauss(void)
{
    float u = frand() + 1e-7f, v = frand();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Non-negative "ReLU" descriptors with some shared structure. */
static float *random_descs(size_t n, size_t d)
{
    float *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n * d; i++)
        x[i] = fmaxf(0.0f, gauss() + 0.3f * (float)(i % d % 7));
    return x;
}

static void random_colour(float *h)
{
    for (size_t i = 0; i < LK_COLOUR_DIM; i++)
        h[i] = frand() < 0.3f ? frand() : 0.0f;
    h[0] += 0.01f;
}

TestSuite(fuse, .timeout = 120);

Test(fuse, unit_norm_and_inner_product_identity)
{
    const size_t n = 200, d = 64;
    float *x = random_descs(n, d);
    struct lk_err e = {0};
    for (size_t pca = 0; pca <= 16; pca += 16) {
        struct lk_embed_params *p = NULL;
        cr_assert_eq(lk_embed_params_learn(x, n, d, pca, 0.65f, &p, &e), LK_OK, "%s", e.msg);
        size_t od = lk_embed_cnn_out_dim(p), fd = lk_embed_fused_dim(p);
        cr_assert_eq(od, pca ? pca : d);
        cr_assert_eq(fd, od + LK_COLOUR_DIM);
        float *f1 = malloc(fd * sizeof *f1), *f2 = malloc(fd * sizeof *f2);
        float *c1 = malloc(od * sizeof *c1), *c2 = malloc(od * sizeof *c2);
        float h1[LK_COLOUR_DIM], h2[LK_COLOUR_DIM];
        for (int t = 0; t < 20; t++) {
            const float *r1 = x + (size_t)t * d, *r2 = x + (size_t)(t + 50) * d;
            random_colour(h1);
            random_colour(h2);
            cr_assert_eq(lk_embed_fuse(p, r1, h1, f1, &e), LK_OK, "%s", e.msg);
            cr_assert_eq(lk_embed_fuse(p, r2, h2, f2, &e), LK_OK, "%s", e.msg);
            cr_assert_float_eq(dot(f1, f1, fd), 1.0, 1e-5);
            cr_assert_eq(lk_embed_cnn_normalize(p, r1, c1, &e), LK_OK);
            cr_assert_eq(lk_embed_cnn_normalize(p, r2, c2, &e), LK_OK);
            cr_assert_float_eq(dot(c1, c1, od), 1.0, 1e-5);
            double cos_h = dot(h1, h2, LK_COLOUR_DIM) / sqrt(dot(h1, h1, LK_COLOUR_DIM) * dot(h2, h2, LK_COLOUR_DIM));
            double want = 0.65 * dot(c1, c2, od) + 0.35 * cos_h;
            cr_assert_float_eq(dot(f1, f2, fd), want, 1e-5, "pca %zu pair %d", pca, t);
        }
        /* w = 1: colour ignored; w = 0: CNN ignored. */
        cr_assert_eq(lk_embed_params_set_w(p, 1.0f, &e), LK_OK);
        cr_assert_eq(lk_embed_fuse(p, x, h1, f1, &e), LK_OK);
        cr_assert_float_eq(dot(f1 + od, f1 + od, LK_COLOUR_DIM), 0.0, 1e-12);
        cr_assert_eq(lk_embed_params_set_w(p, 0.0f, &e), LK_OK);
        cr_assert_eq(lk_embed_fuse(p, x, h1, f1, &e), LK_OK);
        cr_assert_float_eq(dot(f1, f1, od), 0.0, 1e-12);
        cr_assert_eq(lk_embed_params_set_w(p, 1.5f, &e), LK_ERR_INVALID_ARG);
        cr_assert_eq(lk_embed_params_set_w(p, NAN, &e), LK_ERR_INVALID_ARG);
        free(f1), free(f2), free(c1), free(c2);
        lk_embed_params_free(p);
    }
    free(x);
}

Test(fuse, mean_is_removed)
{
    /* Every descriptor = common + small individual part: after centring,
     * two unrelated descriptors are far less similar than raw. */
    const size_t n = 300, d = 32;
    float *x = malloc(n * d * sizeof *x);
    for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < d; i++)
            x[r * d + i] = 4.0f + 0.5f * frand();
    struct lk_err e = {0};
    struct lk_embed_params *p = NULL, *id = NULL;
    cr_assert_eq(lk_embed_params_learn(x, n, d, 0, 1.0f, &p, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_embed_params_identity(d, 1.0f, &id, &e), LK_OK, "%s", e.msg);
    float a[32], b[32], ai[32], bi[32];
    lk_embed_cnn_normalize(p, x, a, &e);
    lk_embed_cnn_normalize(p, x + d, b, &e);
    lk_embed_cnn_normalize(id, x, ai, &e);
    lk_embed_cnn_normalize(id, x + d, bi, &e);
    cr_assert_gt(dot(ai, bi, d), 0.99);
    cr_assert_lt(fabs(dot(a, b, d)), 0.5);
    const float *mean, *proj;
    lk__embed_params_internals(p, &mean, &proj);
    cr_assert_null(proj);
    lk_embed_params_free(p);
    lk_embed_params_free(id);
    free(x);
}

Test(fuse, pca_recovers_dominant_directions)
{
    /* In ssqrt space: y = 10*u0 + 3*a*u1 + 2*b*u2 + 0.05*noise, a,b ~ N(0,1);
     * raw = sign(y)*y^2 so that ssqrt(raw) = y.  The top two principal
     * directions must be u1 and u2 (in that order). */
    const size_t n = 2000, d = 48;
    float u[3][48] = {{0}};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < d; i++)
            u[k][i] = gauss();
        for (int j = 0; j < k; j++) {  /* Gram-Schmidt */
            double pj = dot(u[k], u[j], d);
            for (size_t i = 0; i < d; i++)
                u[k][i] -= (float)pj * u[j][i];
        }
        double nk = sqrt(dot(u[k], u[k], d));
        for (size_t i = 0; i < d; i++)
            u[k][i] /= (float)nk;
    }
    float *x = malloc(n * d * sizeof *x);
    for (size_t r = 0; r < n; r++) {
        float a = gauss(), b = gauss();
        for (size_t i = 0; i < d; i++) {
            float y = 10 * u[0][i] + 3 * a * u[1][i] + 2 * b * u[2][i] + 0.05f * gauss();
            x[r * d + i] = y < 0 ? -y * y : y * y;
        }
    }
    struct lk_err e = {0};
    struct lk_embed_params *p = NULL;
    cr_assert_eq(lk_embed_params_learn(x, n, d, 4, 0.5f, &p, &e), LK_OK, "%s", e.msg);
    const float *mean, *proj;
    lk__embed_params_internals(p, &mean, &proj);
    cr_assert_not_null(proj);
    double c1 = fabs(dot(proj, u[1], d)) / sqrt(dot(proj, proj, d));
    double c2 = fabs(dot(proj + d, u[2], d)) / sqrt(dot(proj + d, proj + d, d));
    cr_assert_gt(c1, 0.95, "first principal direction vs u1: |cos| = %f", c1);
    cr_assert_gt(c2, 0.95, "second principal direction vs u2: |cos| = %f", c2);
    /* Whitening: the first direction has larger variance, so a smaller
     * scale (longer eigenvalue) -> shorter projection row. */
    cr_assert_lt(dot(proj, proj, d), dot(proj + d, proj + d, d));
    lk_embed_params_free(p);
    free(x);
}

Test(fuse, bad_arguments)
{
    struct lk_err e = {0};
    struct lk_embed_params *p = (void *)1;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(lk_embed_params_learn(x, 0, 8, 0, 0.5f, &p, &e), LK_ERR_EMPTY);
    cr_assert_null(p);
    cr_assert_eq(lk_embed_params_learn(x, 1, 8, 0, 1.5f, &p, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_embed_params_learn(x, 1, 8, 2, 0.5f, &p, &e), LK_ERR_INVALID_ARG, "pca_dim >= n");
    cr_assert_eq(lk_embed_params_learn(x, 1, 8, 9, 0.5f, &p, &e), LK_ERR_INVALID_ARG, "pca_dim > dim");
    cr_assert_eq(lk_embed_params_learn(x, 1, 0, 0, 0.5f, &p, &e), LK_ERR_INVALID_ARG);
    x[3] = NAN;
    cr_assert_eq(lk_embed_params_learn(x, 1, 8, 0, 0.5f, &p, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_embed_params_identity(8, 0.5f, &p, &e), LK_OK);
    float out[8 + LK_COLOUR_DIM], h[LK_COLOUR_DIM] = {1};
    cr_assert_eq(lk_embed_fuse(p, x, h, out, &e), LK_ERR_INVALID_ARG);
    x[3] = 4;
    cr_assert_eq(lk_embed_fuse(p, x, h, out, &e), LK_OK);
    cr_assert_eq(lk_embed_fuse(p, x, NULL, out, &e), LK_ERR_INVALID_ARG);
    lk_embed_params_free(p);
    lk_embed_params_free(NULL);
    cr_assert_eq(lk_embed_fused_dim(NULL), 0);
}

/* ---- Save / load ---- */

static char *tmp_path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/lk_test_fuse_%d_%s", (int)getpid(), name);
    return buf;
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(*len);
    cr_assert(fread(b, 1, *len, f) == *len);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert(fwrite(b, 1, len, f) == len);
    fclose(f);
}

Test(fuse, save_load_round_trip)
{
    const size_t n = 100, d = 40;
    float *x = random_descs(n, d);
    struct lk_err e = {0};
    for (size_t pca = 0; pca <= 10; pca += 10) {
        struct lk_embed_params *p = NULL, *q = NULL;
        cr_assert_eq(lk_embed_params_learn(x, n, d, pca, 0.3f, &p, &e), LK_OK, "%s", e.msg);
        char *path = tmp_path("rt.bin");
        cr_assert_eq(lk_embed_params_save(p, path, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(lk_embed_params_load(path, &q, &e), LK_OK, "%s", e.msg);
        cr_assert_eq(lk_embed_cnn_dim(q), d);
        cr_assert_eq(lk_embed_fused_dim(q), lk_embed_fused_dim(p));
        cr_assert_eq(lk_embed_w(q), 0.3f);
        size_t fd = lk_embed_fused_dim(p);
        float *f1 = malloc(fd * sizeof *f1), *f2 = malloc(fd * sizeof *f2), h[LK_COLOUR_DIM];
        random_colour(h);
        for (size_t r = 0; r < 5; r++) {
            cr_assert_eq(lk_embed_fuse(p, x + r * d, h, f1, &e), LK_OK);
            cr_assert_eq(lk_embed_fuse(q, x + r * d, h, f2, &e), LK_OK);
            cr_assert_eq(memcmp(f1, f2, fd * sizeof *f1), 0, "loaded params differ (pca %zu)", pca);
        }
        free(f1), free(f2);
        unlink(path);
        lk_embed_params_free(p);
        lk_embed_params_free(q);
    }
    free(x);
}

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), as the params file uses. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & -(c & 1u));
    }
    return ~c;
}

static void put_le32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* The CNN precision travels with the params (flag bit 1, version 2), and a
 * version-1 file (before the int8 option) still loads, as FP32; a version-1
 * file cannot claim int8. */
Test(fuse, cnn_precision_saved)
{
    const size_t n = 30, d = 16;
    float *x = random_descs(n, d);
    struct lk_err e = {0};
    struct lk_embed_params *p = NULL, *q = NULL;
    cr_assert_eq(lk_embed_params_learn(x, n, d, 0, 0.5f, &p, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_embed_cnn_precision(p), LK_CNN_FP32, "learned params default to fp32");
    cr_assert_eq(lk_embed_params_set_cnn_precision(p, (enum lk_cnn_precision)7, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_embed_params_set_cnn_precision(p, LK_CNN_INT8, &e), LK_OK, "%s", e.msg);
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path("prec.bin"));
    cr_assert_eq(lk_embed_params_save(p, path, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_embed_params_load(path, &q, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_embed_cnn_precision(q), LK_CNN_INT8);
    lk_embed_params_free(q);
    q = NULL;

    size_t len;
    unsigned char *b = read_all(path, &len);
    cr_assert_eq(b[8], 2, "files are written as version 2");
    b[8] = 1; /* version 1 with the int8 flag: not a valid v1 file */
    put_le32(b + len - 4, crc32_ieee(b, len - 4));
    write_all(path, b, len);
    cr_assert_eq(lk_embed_params_load(path, &q, &e), LK_ERR_CORRUPT, "%s", e.msg);
    b[24] &= (unsigned char)~2u; /* a genuine version-1 file: fp32 */
    put_le32(b + len - 4, crc32_ieee(b, len - 4));
    write_all(path, b, len);
    cr_assert_eq(lk_embed_params_load(path, &q, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_embed_cnn_precision(q), LK_CNN_FP32);
    unlink(path);
    free(b);
    free(x);
    lk_embed_params_free(p);
    lk_embed_params_free(q);
}

Test(fuse, damaged_params_files)
{
    const size_t n = 50, d = 24;
    float *x = random_descs(n, d);
    struct lk_err e = {0};
    struct lk_embed_params *p = NULL, *q = (void *)1;
    cr_assert_eq(lk_embed_params_learn(x, n, d, 8, 0.5f, &p, &e), LK_OK, "%s", e.msg);
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s", tmp_path("good.bin"));
    snprintf(bad, sizeof bad, "%s", tmp_path("bad.bin"));
    cr_assert_eq(lk_embed_params_save(p, good, &e), LK_OK, "%s", e.msg);
    size_t len;
    unsigned char *b = read_all(good, &len);

    cr_assert_eq(lk_embed_params_load("/nonexistent/params.bin", &q, &e), LK_ERR_IO);
    cr_assert_null(q);
    /* one flipped bit anywhere in the payload -> checksum */
    for (size_t at = 32; at < len; at += len / 7) {
        b[at] ^= 0x10;
        write_all(bad, b, len);
        cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_CHECKSUM, "flip at %zu: %s", at, e.msg);
        b[at] ^= 0x10;
    }
    write_all(bad, b, len - 9);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_TRUNCATED, "%s", e.msg);
    write_all(bad, b, 5);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_TRUNCATED, "%s", e.msg);
    write_all(bad, b, 0);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_TRUNCATED, "%s", e.msg);
    unsigned char *longer = malloc(len + 3);
    memcpy(longer, b, len);
    memset(longer + len, 0, 3);
    write_all(bad, longer, len + 3);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_CORRUPT, "%s", e.msg);
    free(longer);
    b[0] = 'X';
    write_all(bad, b, len);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_FORMAT, "%s", e.msg);
    b[0] = 'L';
    unsigned char version = b[8];
    b[8] = 99; /* version */
    write_all(bad, b, len);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_FORMAT, "%s", e.msg);
    b[8] = version;
    b[15] = 0x7f; /* cnn_dim enormous */
    write_all(bad, b, len);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_CORRUPT, "%s", e.msg);
    b[15] = 0;
    b[20] ^= 1; /* colour_dim of another build */
    write_all(bad, b, len);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_ERR_FORMAT, "%s", e.msg);
    b[20] ^= 1;
    write_all(bad, b, len);
    cr_assert_eq(lk_embed_params_load(bad, &q, &e), LK_OK, "restored copy: %s", e.msg);
    lk_embed_params_free(q);
    cr_assert_eq(lk_embed_params_save(p, "/nonexistent/dir/params.bin", &e), LK_ERR_IO);
    unlink(good);
    unlink(bad);
    free(b);
    free(x);
    lk_embed_params_free(p);
}
