/* tests/image/test_decode_png.c — decode_png.c: every colour type and bit
 * depth, alpha over white, interlacing, bombs, truncation, corruption. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "lookalike/image.h"

enum { GREY = 0, RGB = 2, PALETTE = 3, GREY_ALPHA = 4, RGBA = 6 };

static int decode(const uint8_t *buf, size_t len, const struct lk_decode_opts *o, struct lk_image *img,
                  struct lk_image_info *info)
{
    struct lk_err e = {0};
    int rc = lk_image_decode(buf, len, o, img, info, &e);
    if (rc != LK_OK)
        cr_assert_eq(e.code, rc, "err code %d vs rc %d (%s)", e.code, rc, e.msg);
    return rc;
}

static struct lk_image roundtrip(const struct lk_image *src, struct gen_png_opts o, struct lk_image_info *info)
{
    uint8_t *buf;
    size_t len;
    gen_png(src, &o, &buf, &len);
    struct lk_image img;
    cr_assert_eq(decode(buf, len, NULL, &img, info), LK_OK, "type %d depth %d", o.color_type, o.bit_depth);
    free(buf);
    return img;
}

/* A small image using only the given levels per channel. */
static struct lk_image levels(uint32_t w, uint32_t h, int nlev)
{
    struct lk_image img = gen_solid(w, h, 0, 0, 0);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(255 * ((x + y) % nlev) / (nlev - 1));
            p[1] = (uint8_t)(255 * (x % nlev) / (nlev - 1));
            p[2] = (uint8_t)(255 * (y % nlev) / (nlev - 1));
        }
    return img;
}

Test(decode_png, rgb_8_and_16_bit_exact)
{
    struct lk_image src = gen_gradient(37, 23);
    for (int depth = 8; depth <= 16; depth += 8) {
        struct lk_image_info info;
        struct lk_image img = roundtrip(&src, (struct gen_png_opts){.color_type = RGB, .bit_depth = depth}, &info);
        cr_assert_eq(gen_mad(&img, &src), 0.0, "depth %d", depth);
        cr_assert_eq(info.format, LK_FORMAT_PNG);
        cr_assert_eq(info.bit_depth, depth);
        cr_assert_eq(info.colour, LK_COLOUR_MODEL_RGB);
        cr_assert_eq(info.has_alpha, 0);
        cr_assert_eq(info.exif_orientation, 1);
        cr_assert_eq(info.scale_denom, 1);
        lk_image_free(&img);
    }
    lk_image_free(&src);
}

Test(decode_png, grey_all_depths)
{
    static const int depths[] = {1, 2, 4, 8, 16};
    for (size_t i = 0; i < 5; i++) {
        int d = depths[i];
        struct lk_image src = levels(19, 11, d >= 8 ? 30 : 1 << d);
        struct lk_image_info info;
        struct lk_image img = roundtrip(&src, (struct gen_png_opts){.color_type = GREY, .bit_depth = d}, &info);
        cr_assert_eq(info.colour, LK_COLOUR_MODEL_GREY);
        cr_assert_eq(info.bit_depth, d);
        for (uint32_t k = 0; k < 19 * 11; k++) {
            int want = src.rgb[3 * k];
            if (d < 8)   /* gen stores the top d bits; expansion replicates them */
                want = (want >> (8 - d)) * 255 / ((1 << d) - 1);
            cr_assert_eq(img.rgb[3 * k], want, "depth %d pixel %u: %d vs %d", d, k, img.rgb[3 * k], want);
            cr_assert_eq(img.rgb[3 * k + 1], want);
            cr_assert_eq(img.rgb[3 * k + 2], want);
        }
        lk_image_free(&img);
        lk_image_free(&src);
    }
}

Test(decode_png, palette_depths)
{
    static const int depths[] = {1, 2, 4, 8};
    for (size_t i = 0; i < 4; i++) {
        int d = depths[i];
        /* at most 2^d distinct colours */
        struct lk_image src = gen_solid(21, 9, 10, 20, 30);
        int ncol = d == 1 ? 2 : 4;
        for (uint32_t x = 0; x < 21; x++)
            gen_rect(&src, x, 0, x + 1, 9, (uint8_t)(60 * (x % ncol)), (uint8_t)(255 - 50 * (x % ncol)), 99);
        struct lk_image_info info;
        struct lk_image img = roundtrip(&src, (struct gen_png_opts){.color_type = PALETTE, .bit_depth = d}, &info);
        cr_assert_eq(info.colour, LK_COLOUR_MODEL_PALETTE);
        cr_assert_eq(gen_mad(&img, &src), 0.0, "palette depth %d", d);
        lk_image_free(&img);
        lk_image_free(&src);
    }
}

static int over_white(int c, int a)
{
    return (c * a + 255 * (255 - a) + 127) / 255;
}

/* Alpha plane with 0, 255 and partial values. */
static uint8_t *alpha_plane(uint32_t w, uint32_t h)
{
    uint8_t *a = malloc((size_t)w * h);
    for (uint32_t i = 0; i < w * h; i++)
        a[i] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : (i * 7) % 256);
    return a;
}

static void check_alpha(int type, int depth)
{
    uint32_t w = 17, h = 13;
    struct lk_image src = gen_gradient(w, h);
    if (type == PALETTE) {
        gen_rect(&src, 0, 0, w, h, 200, 10, 10);
        gen_rect(&src, 0, 0, w / 2, h, 10, 10, 200);
    }
    uint8_t *a = alpha_plane(w, h);
    if (type == PALETTE)   /* keep the palette small: 2 colours x 3 alphas */
        for (uint32_t i = 0; i < w * h; i++)
            a[i] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : 128);
    struct lk_image_info info;
    struct lk_image img = roundtrip(&src, (struct gen_png_opts){.color_type = type, .bit_depth = depth, .alpha = a}, &info);
    cr_assert_eq(info.has_alpha, 1);
    for (uint32_t i = 0; i < w * h; i++)
        for (int c = 0; c < 3; c++) {
            int sc = type == GREY_ALPHA ? src.rgb[3 * i] : src.rgb[3 * i + c];
            int want = over_white(sc, a[i]);
            cr_assert_leq(abs(img.rgb[3 * i + c] - want), 1, "type %d depth %d px %u c %d: %d vs %d", type, depth,
                          i, c, img.rgb[3 * i + c], want);
        }
    /* fully transparent pixels are white */
    cr_assert_eq(img.rgb[0], 255);
    cr_assert_eq(img.rgb[1], 255);
    cr_assert_eq(img.rgb[2], 255);
    free(a);
    lk_image_free(&img);
    lk_image_free(&src);
}

Test(decode_png, rgba_over_white) { check_alpha(RGBA, 8); check_alpha(RGBA, 16); }
Test(decode_png, grey_alpha_over_white) { check_alpha(GREY_ALPHA, 8); check_alpha(GREY_ALPHA, 16); }
Test(decode_png, palette_trns_over_white) { check_alpha(PALETTE, 8); }

Test(decode_png, interlaced_equals_progressive_order)
{
    struct lk_image src = gen_gradient(45, 31);
    gen_noise(&src, 5, 40);
    struct lk_image_info info;
    struct lk_image img = roundtrip(&src, (struct gen_png_opts){.color_type = RGB, .bit_depth = 8, .interlace = 1}, &info);
    cr_assert_eq(info.progressive, 1);
    cr_assert_eq(gen_mad(&img, &src), 0.0);
    lk_image_free(&img);
    uint8_t *a = alpha_plane(45, 31);
    img = roundtrip(&src, (struct gen_png_opts){.color_type = RGBA, .bit_depth = 16, .interlace = 1, .alpha = a}, &info);
    cr_assert_eq(info.progressive, 1);
    cr_assert_eq(img.width, 45);
    cr_assert_eq(img.rgb[0], 255);
    free(a);
    lk_image_free(&img);
    lk_image_free(&src);
}

Test(decode_png, one_pixel)
{
    struct lk_image src = gen_solid(1, 1, 1, 2, 3);
    struct lk_image img = roundtrip(&src, (struct gen_png_opts){.color_type = RGB, .bit_depth = 8}, NULL);
    cr_assert_eq(img.width, 1);
    cr_assert_eq(gen_mad(&img, &src), 0.0);
    lk_image_free(&img);
    lk_image_free(&src);
}

Test(decode_png, decompression_bomb_header)
{
    static const struct { uint32_t w, h; } bombs[] = {
        {100000, 100000}, {20000, 10}, {10, 20000}, {8000, 8000}, {0x7fffffff, 1}, {0xffffffff, 0xffffffff},
    };
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        uint8_t *buf;
        size_t len;
        gen_png_header_only(bombs[i].w, bombs[i].h, &buf, &len);
        struct lk_image img = {0};
        struct lk_err e = {0};
        cr_assert_eq(lk_image_decode(buf, len, NULL, &img, NULL, &e), LK_ERR_DIMENSIONS, "%ux%u: %s", bombs[i].w,
                     bombs[i].h, e.msg);
        cr_assert_null(img.rgb);
        free(buf);
    }
    /* A header within limits but with almost no data: a clean error. */
    uint8_t *buf;
    size_t len;
    gen_png_header_only(300, 200, &buf, &len);
    struct lk_image img = {0};
    int rc = decode(buf, len, NULL, &img, NULL);
    cr_assert(rc == LK_ERR_CORRUPT || rc == LK_ERR_TRUNCATED, "rc %d", rc);
    free(buf);
    /* zero width */
    gen_png_header_only(0, 10, &buf, &len);
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    free(buf);
}

Test(decode_png, configured_limits)
{
    struct lk_image src = gen_gradient(120, 80);
    uint8_t *buf;
    size_t len;
    gen_png(&src, &(struct gen_png_opts){.color_type = RGB, .bit_depth = 8}, &buf, &len);
    struct lk_image img;
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_width = 119}, &img, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_height = 79}, &img, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_pixels = 9599}, &img, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_pixels = 9600, .min_side_hint = 10}, &img, NULL), LK_OK);
    cr_assert_eq(img.width, 120);   /* PNG ignores the shrink hint */
    lk_image_free(&img);
    free(buf);
    lk_image_free(&src);
}

Test(decode_png, truncated_at_many_offsets)
{
    for (int il = 0; il <= 1; il++) {
        struct lk_image src = gen_gradient(64, 48);
        gen_noise(&src, 11, 50);   /* incompressible enough for a long IDAT */
        uint8_t *buf;
        size_t len;
        gen_png(&src, &(struct gen_png_opts){.color_type = RGB, .bit_depth = 8, .interlace = il}, &buf, &len);
        size_t cuts[] = {4, 7, 8, 12, 20, 33, 40, 100, len / 2, len - 100, len - 13, len - 12, len - 4, len - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            struct lk_image img = {0};
            int rc = decode(buf, cuts[i], NULL, &img, NULL);
            cr_assert_eq(rc, LK_ERR_TRUNCATED, "interlace %d cut at %zu of %zu: rc %d", il, cuts[i], len, rc);
            cr_assert_null(img.rgb);
        }
        free(buf);
        lk_image_free(&src);
    }
}

Test(decode_png, crc_and_data_corruption)
{
    struct lk_image src = gen_gradient(32, 32), img;
    uint8_t *buf;
    size_t len;
    gen_png(&src, &(struct gen_png_opts){.color_type = RGB, .bit_depth = 8}, &buf, &len);
    /* IHDR CRC (bytes 29..32) broken */
    buf[30] ^= 0x55;
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    buf[30] ^= 0x55;
    /* a byte inside the IDAT payload: CRC mismatch on a critical chunk */
    buf[33 + 8 + 10] ^= 0xFF;
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    buf[33 + 8 + 10] ^= 0xFF;
    /* an unknown critical chunk type in place of IDAT */
    memcpy(buf + 33 + 4, "ABCD", 4);
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    free(buf);
    lk_image_free(&src);
}

Test(decode_png, mutations_never_crash)
{
    struct lk_image src = gen_gradient(40, 30), img;
    gen_noise(&src, 9, 10);
    static const struct gen_png_opts variants[] = {
        {.color_type = RGB, .bit_depth = 8}, {.color_type = RGB, .bit_depth = 16, .interlace = 1},
        {.color_type = GREY, .bit_depth = 4},
    };
    for (size_t v = 0; v < 3; v++) {
        uint8_t *buf;
        size_t len;
        gen_png(&src, &variants[v], &buf, &len);
        uint8_t *m = malloc(len);
        unsigned s = 1234 + (unsigned)v;
        for (int round = 0; round < 200; round++) {
            memcpy(m, buf, len);
            for (int k = 0; k <= round % 3; k++) {
                s = s * 1103515245u + 12345u;
                size_t at = 8 + (s >> 8) % (len - 8);
                s = s * 1103515245u + 12345u;
                m[at] = (uint8_t)(s >> 16);
            }
            int rc = decode(m, len, NULL, &img, NULL);
            cr_assert(rc == LK_OK || rc == LK_ERR_CORRUPT || rc == LK_ERR_TRUNCATED || rc == LK_ERR_DIMENSIONS,
                      "variant %zu round %d: rc %d", v, round, rc);
            lk_image_free(&img);
        }
        free(m);
        free(buf);
    }
    lk_image_free(&src);
}
