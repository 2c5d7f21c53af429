/* tests/image/test_normalize.c — normalize.c: centre crop, letterbox,
 * float conversion in both layouts. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "gen.h"
#include "lookalike/image.h"

Test(normalize, center_crop_wide_keeps_middle)
{
    /* red | wide green | blue: a square crop of the centre is all green */
    struct lk_image src = gen_solid(300, 100, 255, 0, 0), dst;
    gen_rect(&src, 60, 0, 240, 100, 0, 255, 0);
    gen_rect(&src, 240, 0, 300, 100, 0, 0, 255);
    cr_assert_eq(lk_image_center_crop(&src, 50, 50, &dst, NULL), LK_OK);
    cr_assert_eq(dst.width, 50);
    cr_assert_eq(dst.height, 50);
    for (size_t k = 0; k < 50 * 50; k++)
        cr_assert(dst.rgb[3 * k] < 8 && dst.rgb[3 * k + 1] > 247 && dst.rgb[3 * k + 2] < 8, "pixel %zu", k);
    lk_image_free(&dst);
    lk_image_free(&src);
}

Test(normalize, center_crop_tall_keeps_middle)
{
    struct lk_image src = gen_solid(100, 300, 255, 0, 0), dst;
    gen_rect(&src, 0, 60, 100, 240, 0, 255, 0);
    cr_assert_eq(lk_image_center_crop(&src, 64, 32, &dst, NULL), LK_OK);
    cr_assert_eq(dst.width, 64);
    cr_assert_eq(dst.height, 32);
    for (size_t k = 0; k < 64 * 32; k++)
        cr_assert(dst.rgb[3 * k + 1] > 247 && dst.rgb[3 * k] < 8, "pixel %zu", k);
    lk_image_free(&dst);
    lk_image_free(&src);
}

Test(normalize, center_crop_is_symmetric)
{
    /* a centred marker stays centred: left and right halves mirror */
    struct lk_image src = gen_solid(400, 300, 255, 255, 255), dst;
    gen_rect(&src, 180, 130, 220, 170, 0, 0, 0);
    cr_assert_eq(lk_image_center_crop(&src, 224, 224, &dst, NULL), LK_OK);
    struct lk_image flip = gen_flip_h(&dst);
    cr_assert_lt(gen_mad(&dst, &flip), 0.5);
    lk_image_free(&flip);
    lk_image_free(&dst);
    lk_image_free(&src);
}

Test(normalize, letterbox_bars)
{
    struct lk_image src = gen_solid(200, 100, 255, 0, 0), dst;
    const uint8_t fill[3] = {0, 0, 255};
    cr_assert_eq(lk_image_letterbox(&src, 100, 100, fill, &dst, NULL), LK_OK);
    cr_assert_eq(dst.width, 100);
    cr_assert_eq(dst.height, 100);
    /* 100x50 picture at rows 25..74 */
    const uint8_t *top = gen_px(&dst, 50, 5), *mid = gen_px(&dst, 50, 50), *bot = gen_px(&dst, 50, 95);
    cr_assert(top[2] == 255 && top[0] == 0);
    cr_assert(bot[2] == 255 && bot[0] == 0);
    cr_assert(mid[0] > 250 && mid[2] < 5);
    cr_assert_eq(gen_px(&dst, 50, 24)[2], 255);
    cr_assert_gt(gen_px(&dst, 50, 26)[0], 250);
    lk_image_free(&dst);

    /* tall source: side bars, default white fill */
    struct lk_image tall = gen_solid(50, 200, 0, 255, 0);
    cr_assert_eq(lk_image_letterbox(&tall, 80, 80, NULL, &dst, NULL), LK_OK);
    const uint8_t *l = gen_px(&dst, 2, 40), *c = gen_px(&dst, 40, 40);
    cr_assert(l[0] == 255 && l[1] == 255 && l[2] == 255);
    cr_assert(c[1] > 250 && c[0] < 5);
    lk_image_free(&dst);
    lk_image_free(&tall);
    lk_image_free(&src);
}

Test(normalize, bad_arguments)
{
    struct lk_image src = gen_solid(8, 8, 1, 2, 3), dst, empty = {0};
    cr_assert_eq(lk_image_center_crop(&src, 0, 8, &dst, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_center_crop(&empty, 8, 8, &dst, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_center_crop(&src, 8, 8, NULL, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_letterbox(&src, 8, 0, NULL, &dst, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_letterbox(NULL, 8, 8, NULL, &dst, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_letterbox(&src, 8, 8, NULL, &src, NULL), LK_ERR_INVALID_ARG);
    lk_image_free(&src);
}

Test(normalize, to_float_layouts)
{
    struct lk_image img = gen_solid(3, 2, 0, 0, 0);
    for (uint32_t i = 0; i < 6; i++) {
        img.rgb[3 * i] = (uint8_t)(10 * i);
        img.rgb[3 * i + 1] = (uint8_t)(100 + i);
        img.rgb[3 * i + 2] = (uint8_t)(255 - i);
    }
    const float mean[3] = {127.5f, 127.5f, 127.5f}, scale[3] = {1 / 127.5f, 1 / 127.5f, 1 / 127.5f};
    float hwc[18], chw[18];
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_HWC, mean, scale, hwc, NULL), LK_OK);
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_CHW, mean, scale, chw, NULL), LK_OK);
    for (uint32_t i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++) {
            float want = (img.rgb[3 * i + c] - 127.5f) / 127.5f;
            cr_assert_float_eq(hwc[3 * i + c], want, 1e-6);
            cr_assert_float_eq(chw[c * 6 + i], want, 1e-6);
        }
    cr_assert_float_eq(hwc[2], 1.0f, 1e-6);     /* 255 -> 1 */
    cr_assert_float_eq(hwc[0], -1.0f, 1e-6);    /* 0 -> -1 */

    /* per-channel mean/scale (ImageNet-style) and NULL = identity */
    const float m2[3] = {1, 2, 3}, s2[3] = {2, 3, 4};
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_HWC, m2, s2, hwc, NULL), LK_OK);
    cr_assert_float_eq(hwc[3 * 5 + 2], (250 - 3) * 4.0f, 1e-4);
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_HWC, NULL, NULL, hwc, NULL), LK_OK);
    cr_assert_float_eq(hwc[3], 10.0f, 1e-6);
    lk_image_free(&img);
}

Test(normalize, to_float_bad_arguments)
{
    struct lk_image img = gen_solid(2, 2, 0, 0, 0), empty = {0};
    float out[12];
    const float nan3[3] = {NAN, 0, 0};
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_HWC, nan3, NULL, out, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_HWC, NULL, nan3, out, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_to_float(&img, (enum lk_layout)7, NULL, NULL, out, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_to_float(&img, LK_LAYOUT_HWC, NULL, NULL, NULL, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_to_float(&empty, LK_LAYOUT_HWC, NULL, NULL, out, NULL), LK_ERR_INVALID_ARG);
    lk_image_free(&img);
}
