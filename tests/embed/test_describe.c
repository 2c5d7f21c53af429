/*
 * tests/embed/test_describe.c — lk_embed_describe(), the one analysis path
 * shared by indexing and queries: it must equal "resize once to the network
 * input, then CNN and colour of that copy", whatever the photo's size and
 * aspect ratio, and reject bad arguments without touching the outputs.
 * Needs the converted model (models/fetch, run by scripts/setup).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"
#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"

static struct lk_cnn_model *model;
static struct lk_cnn_workspace *ws;

static void setup(void)
{
    const char *root = getenv("LK_SOURCE_ROOT");
    cr_assert(root && *root, "LK_SOURCE_ROOT is not set (run through meson test)");
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s/models/mobilenet_v2", root);
    snprintf(p, sizeof p, "%s/model.json", dir);
    cr_assert(access(p, R_OK) == 0, "model missing: %s (run models/fetch, which scripts/setup calls)", p);
    struct lk_err e = {0};
    cr_assert_eq(lk_cnn_load(dir, &model, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_cnn_workspace_new(model, &ws, &e), LK_OK, "%s", e.msg);
}

static void teardown(void)
{
    lk_cnn_workspace_free(ws);
    lk_cnn_free(model);
}

TestSuite(describe, .init = setup, .fini = teardown);

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* describe(img) == (cnn, colour) of resize(img, 224, 224), for photos
 * smaller, larger, wider and taller than the input, and one pixel. */
Test(describe, equals_resize_once_then_both_descriptors)
{
    static const uint8_t red[3] = {200, 30, 40};
    static const uint32_t sizes[][2] = {{224, 224}, {640, 400}, {300, 900}, {97, 61}, {1, 1}};
    size_t dim = lk_cnn_dim(model);
    float *cnn = malloc(dim * sizeof *cnn), *cnn_ref = malloc(dim * sizeof *cnn_ref);
    float col[LK_COLOUR_DIM], col_ref[LK_COLOUR_DIM];
    uint32_t iw, ih;
    lk_cnn_input_size(model, &iw, &ih);
    cr_assert_eq(iw, 224);
    cr_assert_eq(ih, 224);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct lk_image img = gen_product(sizes[i][0], sizes[i][1], red, 7 + (unsigned)i);
        struct lk_err e = {0};
        cr_assert_eq(lk_embed_describe(model, ws, &img, cnn, col, &e), LK_OK, "%ux%u: %s", img.width,
                     img.height, e.msg);
        struct lk_image sized;
        cr_assert_eq(lk_image_resize_area(&img, iw, ih, &sized, &e), LK_OK);
        cr_assert_eq(lk_cnn_describe(ws, &sized, cnn_ref, &e), LK_OK);
        cr_assert_eq(lk_colour_embed(&sized, col_ref, &e), LK_OK);
        cr_expect_lt(max_abs_diff(cnn, cnn_ref, dim), 1e-6, "%ux%u cnn", img.width, img.height);
        cr_expect_lt(max_abs_diff(col, col_ref, LK_COLOUR_DIM), 1e-6, "%ux%u colour", img.width, img.height);
        double n2 = 0;
        for (int k = 0; k < LK_COLOUR_DIM; k++)
            n2 += (double)col[k] * col[k];
        cr_expect_float_eq(n2, 1.0, 1e-5, "colour embedding is unit length");
        lk_image_free(&sized);
        lk_image_free(&img);
    }
    free(cnn);
    free(cnn_ref);
}

/* The colour part still sees the product's colour after the squeeze: a red
 * product on white is mostly red, a blue one mostly blue. */
Test(describe, colour_survives_the_squeeze)
{
    static const uint8_t red[3] = {210, 20, 30}, blue[3] = {20, 40, 200};
    size_t dim = lk_cnn_dim(model);
    float *cnn = malloc(dim * sizeof *cnn);
    float cr_[LK_COLOUR_DIM], cb[LK_COLOUR_DIM];
    struct lk_image r = gen_product(900, 300, red, 1), b = gen_product(900, 300, blue, 2);
    cr_assert_eq(lk_embed_describe(model, ws, &r, cnn, cr_, NULL), LK_OK);
    cr_assert_eq(lk_embed_describe(model, ws, &b, cnn, cb, NULL), LK_OK);
    char s1[160], s2[160];
    lk_colour_summary(cr_, 1, s1, sizeof s1);
    lk_colour_summary(cb, 1, s2, sizeof s2);
    cr_expect(strstr(s1, "red") != NULL, "red product summarised as '%s'", s1);
    cr_expect(strstr(s2, "blue") != NULL, "blue product summarised as '%s'", s2);
    double dot = 0;
    for (int k = 0; k < LK_COLOUR_DIM; k++)
        dot += (double)cr_[k] * cb[k];
    cr_expect_lt(dot, 0.5, "red and blue products have different colour embeddings (cos %f)", dot);
    lk_image_free(&r);
    lk_image_free(&b);
    free(cnn);
}

Test(describe, bad_arguments)
{
    static const uint8_t grey[3] = {128, 128, 128};
    size_t dim = lk_cnn_dim(model);
    float *cnn = malloc(dim * sizeof *cnn);
    float col[LK_COLOUR_DIM];
    struct lk_image img = gen_product(64, 64, grey, 3), empty = {0};
    struct lk_err e = {0};
    cr_expect_eq(lk_embed_describe(NULL, ws, &img, cnn, col, &e), LK_ERR_INVALID_ARG);
    cr_expect_eq(lk_embed_describe(model, NULL, &img, cnn, col, &e), LK_ERR_INVALID_ARG);
    cr_expect_eq(lk_embed_describe(model, ws, NULL, cnn, col, &e), LK_ERR_INVALID_ARG);
    cr_expect_eq(lk_embed_describe(model, ws, &img, NULL, col, &e), LK_ERR_INVALID_ARG);
    cr_expect_eq(lk_embed_describe(model, ws, &img, cnn, NULL, &e), LK_ERR_INVALID_ARG);
    cr_expect_eq(lk_embed_describe(model, ws, &empty, cnn, col, &e), LK_ERR_INVALID_ARG);
    cr_expect(strlen(e.msg) > 0);
    lk_image_free(&img);
    free(cnn);
}
