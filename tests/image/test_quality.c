/* tests/image/test_quality.c — quality.c: blur, contrast, background,
 * weak flags. */
#include <criterion/criterion.h>
#include <string.h>

#include "gen.h"
#include "lookalike/image.h"

static struct lk_image checker(uint32_t w, uint32_t h, uint32_t cell)
{
    struct lk_image img = gen_solid(w, h, 30, 30, 30);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            if ((x / cell + y / cell) % 2)
                gen_rect(&img, x, y, x + 1, y + 1, 225, 225, 225);
    return img;
}

/* Blur by shrinking and enlarging again. */
static struct lk_image blurred(const struct lk_image *src, uint32_t factor)
{
    struct lk_image small, big;
    cr_assert_eq(lk_image_resize(src, src->width / factor, src->height / factor, &small, NULL), LK_OK);
    cr_assert_eq(lk_image_resize(&small, src->width, src->height, &big, NULL), LK_OK);
    lk_image_free(&small);
    return big;
}

Test(quality, sharp_vs_blurry)
{
    struct lk_image sharp = checker(400, 300, 4);
    struct lk_image soft = blurred(&sharp, 16);
    struct lk_image_quality qs, qb;
    cr_assert_eq(lk_image_quality(&sharp, &qs, NULL), LK_OK);
    cr_assert_eq(lk_image_quality(&soft, &qb, NULL), LK_OK);
    cr_assert_gt(qs.blur, 10 * qb.blur, "sharp %f blurred %f", qs.blur, qb.blur);
    cr_assert_eq(qs.weak_flags & LK_WEAK_BLURRY, 0);
    cr_assert_neq(qb.weak_flags & LK_WEAK_BLURRY, 0, "blur %f", qb.blur);
    cr_assert_eq(qs.width, 400);
    cr_assert_eq(qs.height, 300);
    lk_image_free(&sharp);
    lk_image_free(&soft);
}

Test(quality, low_contrast_plain_background)
{
    struct lk_image flat = gen_solid(300, 300, 120, 130, 140);
    struct lk_image_quality q;
    cr_assert_eq(lk_image_quality(&flat, &q, NULL), LK_OK);
    cr_assert_lt(q.contrast, 1.0f);
    cr_assert_neq(q.weak_flags & LK_WEAK_LOW_CONTRAST, 0);
    cr_assert_float_eq(q.border_uniformity, 1.0f, 1e-6);
    cr_assert_eq(q.plain_background, 1);
    cr_assert_eq(q.background[0], 120);
    cr_assert_eq(q.background[1], 130);
    cr_assert_eq(q.background[2], 140);
    cr_assert_eq(q.weak_flags & LK_WEAK_CLUTTERED, 0);
    lk_image_free(&flat);
}

Test(quality, product_on_studio_background)
{
    const uint8_t red[3] = {200, 30, 40};
    struct lk_image p = gen_product(480, 360, red, 1);
    struct lk_image_quality q;
    cr_assert_eq(lk_image_quality(&p, &q, NULL), LK_OK);
    cr_assert_eq(q.plain_background, 1, "uniformity %f", q.border_uniformity);
    cr_assert_eq(q.weak_flags, 0, "flags %x blur %f contrast %f", q.weak_flags, q.blur, q.contrast);
    cr_assert_lt(abs(q.background[0] - 238), 6);
    lk_image_free(&p);
}

Test(quality, cluttered_background)
{
    struct lk_image busy = gen_solid(400, 400, 128, 128, 128);
    gen_noise(&busy, 42, 120);
    struct lk_image_quality q;
    cr_assert_eq(lk_image_quality(&busy, &q, NULL), LK_OK);
    cr_assert_lt(q.border_uniformity, LK_QUALITY_CLUTTER_MAX);
    cr_assert_eq(q.plain_background, 0);
    cr_assert_neq(q.weak_flags & LK_WEAK_CLUTTERED, 0);
    lk_image_free(&busy);
}

Test(quality, too_small_uses_original_size)
{
    struct lk_image small = checker(100, 150, 3);
    struct lk_image_quality q;
    cr_assert_eq(lk_image_quality(&small, &q, NULL), LK_OK);
    cr_assert_neq(q.weak_flags & LK_WEAK_TOO_SMALL, 0);
    /* the same pixels shrunk on load from a 800x1200 original: not too small */
    cr_assert_eq(lk_image_quality_orig(&small, 800, 1200, &q, NULL), LK_OK);
    cr_assert_eq(q.weak_flags & LK_WEAK_TOO_SMALL, 0);
    cr_assert_eq(q.width, 800);
    cr_assert_eq(q.height, 1200);
    lk_image_free(&small);
}

Test(quality, measured_at_working_size)
{
    /* a large image and its 512-px version score alike */
    struct lk_image big = gen_gradient(2048, 1536);
    gen_noise(&big, 5, 40);
    struct lk_image work;
    cr_assert_eq(lk_image_resize(&big, 512, 384, &work, NULL), LK_OK);
    struct lk_image_quality qa, qb;
    cr_assert_eq(lk_image_quality(&big, &qa, NULL), LK_OK);
    cr_assert_eq(lk_image_quality(&work, &qb, NULL), LK_OK);
    cr_assert_float_eq(qa.blur, qb.blur, qb.blur * 0.02);
    cr_assert_float_eq(qa.contrast, qb.contrast, 0.5);
    lk_image_free(&big);
    lk_image_free(&work);
}

Test(quality, tiny_images)
{
    for (uint32_t s = 1; s <= 4; s++) {
        struct lk_image img = gen_solid(s, s + 1, 10, 200, 30);
        struct lk_image_quality q;
        cr_assert_eq(lk_image_quality(&img, &q, NULL), LK_OK);
        cr_assert_neq(q.weak_flags & LK_WEAK_TOO_SMALL, 0);
        cr_assert_eq(q.background[1], 200);
        lk_image_free(&img);
    }
}

Test(quality, background_estimate_ignores_product_touching_an_edge)
{
    struct lk_image img = gen_solid(200, 200, 250, 250, 250);
    gen_rect(&img, 0, 60, 200, 140, 0, 0, 200);   /* spans left to right */
    uint8_t bg[3];
    float u;
    cr_assert_eq(lk_image_background(&img, bg, &u, NULL), LK_OK);
    cr_assert_eq(bg[0], 250);
    cr_assert_eq(bg[2], 250);
    cr_assert(u > 0.6f && u < 0.95f, "uniformity %f", u);
    cr_assert_eq(lk_image_background(&img, bg, NULL, NULL), LK_OK);
    cr_assert_eq(lk_image_background(NULL, bg, &u, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_background(&img, NULL, &u, NULL), LK_ERR_INVALID_ARG);
    lk_image_free(&img);
}

Test(quality, flags_string_and_bad_arguments)
{
    char buf[64];
    cr_assert_str_eq(lk_weak_flags_str(0, buf, sizeof buf), "none");
    cr_assert_str_eq(lk_weak_flags_str(LK_WEAK_TOO_SMALL | LK_WEAK_BLURRY, buf, sizeof buf), "too-small,blurry");
    cr_assert_str_eq(lk_weak_flags_str(LK_WEAK_LOW_CONTRAST | LK_WEAK_CLUTTERED, buf, sizeof buf),
                     "low-contrast,cluttered");
    char tiny[5];
    lk_weak_flags_str(LK_WEAK_TOO_SMALL | LK_WEAK_BLURRY, tiny, sizeof tiny);
    cr_assert_lt(strlen(tiny), sizeof tiny);
    struct lk_image empty = {0};
    struct lk_image_quality q;
    cr_assert_eq(lk_image_quality(&empty, &q, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_quality(NULL, &q, NULL), LK_ERR_INVALID_ARG);
}
