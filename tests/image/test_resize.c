/* tests/image/test_resize.c — resize.c: sizes, sRGB-aware filtering,
 * argument checks. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "gen.h"
#include "lookalike/image.h"

static double mean_channel(const struct lk_image *img, int c)
{
    double s = 0;
    size_t n = (size_t)img->width * img->height;
    for (size_t i = 0; i < n; i++)
        s += img->rgb[3 * i + c];
    return s / (double)n;
}

typedef int (*resize_fn)(const struct lk_image *, uint32_t, uint32_t, struct lk_image *, struct lk_err *);

/* Every size (shrinking, growing, mixed axes, 1x1) keeps a constant colour. */
static void check_constant_colour(resize_fn fn)
{
    struct lk_image src = gen_solid(97, 61, 200, 100, 30), dst;
    static const uint32_t sizes[][2] = {{224, 224}, {10, 7}, {1, 1}, {97, 61}, {300, 20}, {5, 400}, {160, 61}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cr_assert_eq(fn(&src, sizes[i][0], sizes[i][1], &dst, NULL), LK_OK);
        cr_assert_eq(dst.width, sizes[i][0]);
        cr_assert_eq(dst.height, sizes[i][1]);
        for (size_t k = 0; k < (size_t)dst.width * dst.height; k++) {
            cr_assert_leq(abs(dst.rgb[3 * k] - 200), 1);
            cr_assert_leq(abs(dst.rgb[3 * k + 1] - 100), 1);
            cr_assert_leq(abs(dst.rgb[3 * k + 2] - 30), 1);
        }
        lk_image_free(&dst);
    }
    lk_image_free(&src);
}

Test(resize, sizes_and_constant_colour)
{
    check_constant_colour(lk_image_resize);
}

Test(resize, same_size_is_a_copy)
{
    struct lk_image src = gen_gradient(31, 17), dst;
    cr_assert_eq(lk_image_resize(&src, 31, 17, &dst, NULL), LK_OK);
    cr_assert_neq(dst.rgb, src.rgb);
    cr_assert_eq(gen_mad(&src, &dst), 0.0);
    lk_image_free(&dst);
    lk_image_free(&src);
}

/* Averaging a black/white checkerboard in linear light gives 50 % linear
 * intensity = sRGB 188; naive gamma-space averaging would give 128. */
Test(resize, srgb_aware_filtering)
{
    struct lk_image src = gen_solid(64, 64, 0, 0, 0), dst;
    for (uint32_t y = 0; y < 64; y++)
        for (uint32_t x = 0; x < 64; x++)
            if ((x + y) % 2)
                gen_rect(&src, x, y, x + 1, y + 1, 255, 255, 255);
    cr_assert_eq(lk_image_resize(&src, 8, 8, &dst, NULL), LK_OK);
    double m = mean_channel(&dst, 1);
    cr_assert(m > 178 && m < 198, "mean %f: not linear-light averaging", m);
    lk_image_free(&dst);
    lk_image_free(&src);
}

Test(resize, keeps_layout)
{
    /* left half red, right half blue: stays so after down- and upscaling */
    struct lk_image src = gen_solid(100, 50, 255, 0, 0), dst;
    gen_rect(&src, 50, 0, 100, 50, 0, 0, 255);
    uint32_t ws[] = {20, 400};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(lk_image_resize(&src, ws[i], ws[i] / 2, &dst, NULL), LK_OK);
        const uint8_t *l = gen_px(&dst, 1, dst.height / 2), *r = gen_px(&dst, dst.width - 2, dst.height / 2);
        cr_assert(l[0] > 240 && l[2] < 15, "left (%d,%d,%d)", l[0], l[1], l[2]);
        cr_assert(r[2] > 240 && r[0] < 15, "right (%d,%d,%d)", r[0], r[1], r[2]);
        lk_image_free(&dst);
    }
    lk_image_free(&src);
}

Test(resize, bad_arguments)
{
    struct lk_image src = gen_solid(8, 8, 1, 2, 3), dst, empty = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_resize(&src, 0, 5, &dst, &e), LK_ERR_DIMENSIONS);
    cr_assert_null(dst.rgb);
    cr_assert_eq(lk_image_resize(&src, 5, 70000, &dst, &e), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_resize(&src, 30000, 30000, &dst, &e), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_resize(&empty, 5, 5, &dst, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_resize(NULL, 5, 5, &dst, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_resize(&src, 5, 5, NULL, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_resize(&src, 5, 5, &src, &e), LK_ERR_INVALID_ARG);
    cr_assert_not_null(src.rgb);
    lk_image_free(&src);
}

/* ==== lk_image_resize_area ============================================= */

/* Shrinking by whole factors averages exactly the covered blocks (in
 * linear light): 2x2 blocks of four colours become those four colours, and
 * a black/white checkerboard becomes sRGB 188 everywhere. */
Test(resize_area, whole_factor_shrink_is_block_mean)
{
    struct lk_image src = gen_solid(8, 8, 200, 30, 40), dst;
    gen_rect(&src, 4, 0, 8, 4, 20, 180, 60);
    gen_rect(&src, 0, 4, 4, 8, 30, 40, 210);
    gen_rect(&src, 4, 4, 8, 8, 250, 250, 250);
    cr_assert_eq(lk_image_resize_area(&src, 2, 2, &dst, NULL), LK_OK);
    static const uint8_t want[4][3] = {{200, 30, 40}, {20, 180, 60}, {30, 40, 210}, {250, 250, 250}};
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            cr_expect_leq(abs(dst.rgb[3 * i + c] - want[i][c]), 1, "pixel %d channel %d: %d", i, c,
                          dst.rgb[3 * i + c]);
    lk_image_free(&dst);
    lk_image_free(&src);

    src = gen_solid(64, 64, 0, 0, 0);
    for (uint32_t y = 0; y < 64; y++)
        for (uint32_t x = 0; x < 64; x++)
            if ((x + y) % 2)
                gen_rect(&src, x, y, x + 1, y + 1, 255, 255, 255);
    cr_assert_eq(lk_image_resize_area(&src, 8, 8, &dst, NULL), LK_OK);
    for (size_t k = 0; k < 64; k++)
        cr_expect_leq(abs(dst.rgb[3 * k + 1] - 188), 2, "pixel %zu: %d", k, dst.rgb[3 * k + 1]);
    lk_image_free(&dst);
    lk_image_free(&src);
}

/* Any mix of shrinking and growing axes keeps a constant colour, and the
 * layout (left red, right blue) survives. */
Test(resize_area, sizes_mixed_axes_and_layout)
{
    check_constant_colour(lk_image_resize_area);
    struct lk_image src = gen_solid(100, 50, 255, 0, 0), dst;
    gen_rect(&src, 50, 0, 100, 50, 0, 0, 255);
    cr_assert_eq(lk_image_resize_area(&src, 20, 80, &dst, NULL), LK_OK);
    const uint8_t *l = gen_px(&dst, 1, 40), *r = gen_px(&dst, 18, 40);
    cr_assert(l[0] > 240 && l[2] < 15, "left (%d,%d,%d)", l[0], l[1], l[2]);
    cr_assert(r[2] > 240 && r[0] < 15, "right (%d,%d,%d)", r[0], r[1], r[2]);
    lk_image_free(&dst);
    lk_image_free(&src);
}

Test(resize_area, copy_and_bad_arguments)
{
    struct lk_image src = gen_gradient(31, 17), dst, empty = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_resize_area(&src, 31, 17, &dst, NULL), LK_OK);
    cr_assert_neq(dst.rgb, src.rgb);
    cr_assert_eq(gen_mad(&src, &dst), 0.0);
    lk_image_free(&dst);
    cr_assert_eq(lk_image_resize_area(&src, 0, 5, &dst, &e), LK_ERR_DIMENSIONS);
    cr_assert_null(dst.rgb);
    cr_assert_eq(lk_image_resize_area(&src, 30000, 30000, &dst, &e), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_resize_area(&empty, 5, 5, &dst, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_resize_area(NULL, 5, 5, &dst, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_resize_area(&src, 5, 5, NULL, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_resize_area(&src, 5, 5, &src, &e), LK_ERR_INVALID_ARG);
    lk_image_free(&src);
}
