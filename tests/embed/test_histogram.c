/* tests/embed/test_histogram.c — the colour embedding (histogram.c) as
 * properties: unit norm, flip invariance, robustness to brightness, JPEG
 * re-compression, crops and rotation; separation of different colours. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "lookalike/colour.h"

static const uint8_t RED[3] = {200, 25, 35};
static const uint8_t WHITE[3] = {250, 250, 248};
static const uint8_t BLUE[3] = {30, 60, 190};
static const uint8_t GREEN[3] = {40, 160, 60};

static void embed(const struct lk_image *img, float *out)
{
    struct lk_err e = {0};
    cr_assert_eq(lk_colour_embed(img, out, &e), LK_OK, "%s", e.msg);
}

static double dot(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < LK_COLOUR_DIM; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double sim(const struct lk_image *a, const struct lk_image *b)
{
    float ea[LK_COLOUR_DIM], eb[LK_COLOUR_DIM];
    embed(a, ea);
    embed(b, eb);
    return dot(ea, eb);
}

Test(histogram, dimension_and_unit_norm)
{
    cr_assert_eq(LK_COLOUR_DIM, 149);
    struct lk_image imgs[] = {
        gen_solid(1, 1, 0, 0, 0),   gen_solid(5, 3, 255, 255, 255), gen_solid(64, 64, 255, 0, 0),
        gen_gradient(300, 200),     gen_product(320, 240, RED, 1), gen_product(100, 400, WHITE, 2),
        gen_solid(2000, 10, 10, 200, 10),
    };
    for (size_t i = 0; i < sizeof imgs / sizeof imgs[0]; i++) {
        float e[LK_COLOUR_DIM];
        embed(&imgs[i], e);
        double n2 = dot(e, e);
        cr_assert_float_eq(n2, 1.0, 1e-5, "image %zu: |e|^2 = %f", i, n2);
        for (int k = 0; k < LK_COLOUR_DIM; k++)
            cr_assert(e[k] >= 0 && isfinite(e[k]));
        lk_image_free(&imgs[i]);
    }
}

Test(histogram, solid_colours_land_in_the_right_bins)
{
    static const struct { uint8_t rgb[3]; const char *name; } cases[] = {
        {{220, 20, 20}, "red"}, {{20, 180, 30}, "green"}, {{30, 40, 220}, "blue"}, {{250, 250, 250}, "white"},
        {{5, 5, 5}, "black"}, {{240, 220, 20}, "yellow"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lk_image img = gen_solid(50, 40, cases[i].rgb[0], cases[i].rgb[1], cases[i].rgb[2]);
        float e[LK_COLOUR_DIM];
        embed(&img, e);
        char s[128];
        lk_colour_summary(e, 1, s, sizeof s);
        cr_assert(strncmp(s, cases[i].name, strlen(cases[i].name)) == 0, "case %zu: '%s' want %s", i, s,
                  cases[i].name);
        lk_image_free(&img);
    }
}

Test(histogram, flip_invariance)
{
    struct lk_image imgs[] = {gen_product(333, 217, RED, 3), gen_gradient(128, 96)};
    gen_noise(&imgs[1], 4, 30);
    for (size_t i = 0; i < 2; i++) {
        struct lk_image f = gen_flip_h(&imgs[i]);
        float a[LK_COLOUR_DIM], b[LK_COLOUR_DIM];
        embed(&imgs[i], a);
        embed(&f, b);
        for (int k = 0; k < LK_COLOUR_DIM; k++)
            cr_assert_float_eq(a[k], b[k], 1e-5, "image %zu bin %d", i, k);
        lk_image_free(&f);
        lk_image_free(&imgs[i]);
    }
}

Test(histogram, brightness_changes_stay_closer_than_other_colours)
{
    const uint8_t *cols[] = {RED, BLUE, GREEN};
    for (int c = 0; c < 3; c++) {
        struct lk_image p = gen_product(320, 240, cols[c], 5);
        struct lk_image other = gen_product(320, 240, cols[(c + 1) % 3], 6);
        double s_other = sim(&p, &other);
        const double factors[] = {0.7, 0.8, 1.2, 1.3};
        for (int k = 0; k < 4; k++) {
            struct lk_image b = gen_scale_brightness(&p, factors[k]);
            double s = sim(&p, &b);
            cr_assert_gt(s, s_other + 0.3, "colour %d x%.1f: sim %f vs other colour %f", c, factors[k], s, s_other);
            cr_assert_gt(s, 0.7, "colour %d x%.1f: sim %f", c, factors[k], s);
            lk_image_free(&b);
        }
        lk_image_free(&p);
        lk_image_free(&other);
    }
}

Test(histogram, neutral_products_under_brightness_changes)
{
    /* white and black products: +-20 % exposure stays closer than a colour */
    const uint8_t *cols[] = {WHITE, (const uint8_t[3]){25, 25, 25}};
    for (int c = 0; c < 2; c++) {
        struct lk_image p = gen_product(320, 240, cols[c], 14);
        struct lk_image red = gen_product(320, 240, RED, 15), blue = gen_product(320, 240, BLUE, 16);
        double s_col = fmax(sim(&p, &red), sim(&p, &blue));
        for (double f = 0.8; f < 1.3; f += 0.4) {
            struct lk_image b = gen_scale_brightness(&p, f);
            double s = sim(&p, &b);
            cr_assert_gt(s, s_col + 0.3, "neutral %d x%.1f: sim %f vs colour %f", c, f, s, s_col);
            lk_image_free(&b);
        }
        lk_image_free(&red);
        lk_image_free(&blue);
        lk_image_free(&p);
    }
    /* white and black are not confused */
    struct lk_image w = gen_product(320, 240, WHITE, 17), k = gen_product(320, 240, (const uint8_t[3]){25, 25, 25}, 18);
    cr_assert_lt(sim(&w, &k), 0.5);
    lk_image_free(&w);
    lk_image_free(&k);
}

Test(histogram, jpeg_recompression_stays_close)
{
    struct lk_image p = gen_product(320, 240, RED, 7);
    for (int q = 40; q <= 90; q += 25) {
        uint8_t *buf;
        size_t len;
        gen_jpeg(&p, &(struct gen_jpeg_opts){.quality = q}, &buf, &len);
        struct lk_image d;
        cr_assert_eq(lk_image_decode(buf, len, NULL, &d, NULL, NULL), LK_OK);
        double s = sim(&p, &d);
        cr_assert_gt(s, 0.95, "quality %d: sim %f", q, s);
        lk_image_free(&d);
        free(buf);
    }
    lk_image_free(&p);
}

Test(histogram, crops_and_rotation_stay_close)
{
    struct lk_image p = gen_product(400, 300, BLUE, 8);
    struct lk_image other = gen_product(400, 300, RED, 9);
    double s_other = sim(&p, &other);
    /* centre crop 80 %, off-centre crop 70 % */
    struct lk_image c1 = gen_crop(&p, 40, 30, 320, 240), c2 = gen_crop(&p, 0, 45, 280, 210);
    double s1 = sim(&p, &c1), s2 = sim(&p, &c2);
    cr_assert_gt(s1, 0.9, "centre crop sim %f", s1);
    cr_assert_gt(s2, 0.8, "off-centre crop sim %f", s2);
    cr_assert_gt(s2, s_other + 0.3);
    /* 90-degree rotation (transpose) */
    struct lk_image t = gen_solid(300, 400, 0, 0, 0);
    for (uint32_t y = 0; y < 400; y++)
        for (uint32_t x = 0; x < 300; x++)
            memcpy(t.rgb + ((size_t)y * 300 + x) * 3, gen_px(&p, y, x), 3);
    double st = sim(&p, &t);
    cr_assert_gt(st, 0.95, "rotation sim %f", st);
    lk_image_free(&t);
    lk_image_free(&c1);
    lk_image_free(&c2);
    lk_image_free(&other);
    lk_image_free(&p);
}

Test(histogram, red_and_white_sneakers_are_far_apart)
{
    struct lk_image red = gen_product(320, 240, RED, 10), white = gen_product(320, 240, WHITE, 11);
    struct lk_image red2 = gen_product(320, 240, (const uint8_t[3]){185, 35, 30}, 12);
    double s_rw = sim(&red, &white), s_rr = sim(&red, &red2);
    cr_assert_lt(s_rw, 0.3, "red vs white %f", s_rw);
    cr_assert_gt(s_rr, 0.85, "red vs slightly different red %f", s_rr);
    float e[LK_COLOUR_DIM];
    char s[128];
    embed(&white, e);
    lk_colour_summary(e, 2, s, sizeof s);
    cr_assert(strstr(s, "white") || strstr(s, "light grey"), "white product summary '%s'", s);
    lk_image_free(&red);
    lk_image_free(&red2);
    lk_image_free(&white);
}

Test(histogram, plain_background_is_excluded)
{
    /* the same red product on a white and on a pale blue studio background */
    struct lk_image a = gen_product(320, 240, RED, 13);
    struct lk_image b = gen_product(320, 240, RED, 13);
    for (size_t i = 0; i < 320 * 240; i++) {
        uint8_t *p = b.rgb + 3 * i;
        if (p[0] > 225 && p[1] > 225)   /* background pixels */
            p[0] = 190, p[1] = 215, p[2] = 245;
    }
    double s = sim(&a, &b);
    cr_assert_gt(s, 0.85, "background changed: sim %f", s);
    lk_image_free(&a);
    lk_image_free(&b);
}

Test(histogram, bad_arguments_and_summary)
{
    struct lk_image empty = {0}, one = gen_solid(1, 1, 1, 2, 3);
    float e[LK_COLOUR_DIM];
    cr_assert_eq(lk_colour_embed(&empty, e, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_colour_embed(NULL, e, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_colour_embed(&one, NULL, NULL), LK_ERR_INVALID_ARG);
    char s[8];
    embed(&one, e);
    lk_colour_summary(e, 3, s, sizeof s);  /* truncates safely */
    cr_assert_lt(strlen(s), sizeof s);
    cr_assert_str_eq(lk_colour_summary(NULL, 3, s, sizeof s), "");
    lk_image_free(&one);
}
