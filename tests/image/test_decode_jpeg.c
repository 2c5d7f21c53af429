/* tests/image/test_decode_jpeg.c — decode_jpeg.c: colour models,
 * progressive, EXIF orientation, DCT scaling, limits, truncation, corruption. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "gen.h"
#include "lookalike/image.h"

static int decode(const uint8_t *buf, size_t len, const struct lk_decode_opts *o, struct lk_image *img,
                  struct lk_image_info *info)
{
    struct lk_err e = {0};
    int rc = lk_image_decode(buf, len, o, img, info, &e);
    if (rc == LK_OK)
        cr_assert_eq(e.code, LK_OK);
    else
        cr_assert_eq(e.code, rc, "err code %d vs rc %d (%s)", e.code, rc, e.msg);
    return rc;
}

static void near(const uint8_t *p, int r, int g, int b, int tol, const char *what)
{
    cr_assert(abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol,
              "%s: got (%d,%d,%d) want (%d,%d,%d) +-%d", what, p[0], p[1], p[2], r, g, b, tol);
}

Test(decode_jpeg, baseline_rgb)
{
    struct lk_image src = gen_gradient(64, 48), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, &(struct gen_jpeg_opts){.quality = 95}, &buf, &len);
    struct lk_image_info info;
    cr_assert_eq(decode(buf, len, NULL, &img, &info), LK_OK);
    cr_assert_eq(img.width, 64);
    cr_assert_eq(img.height, 48);
    cr_assert_lt(gen_mad(&img, &src), 3.0);
    cr_assert_eq(info.format, LK_FORMAT_JPEG);
    cr_assert_eq(info.colour, LK_COLOUR_MODEL_RGB);
    cr_assert_eq(info.orig_width, 64);
    cr_assert_eq(info.orig_height, 48);
    cr_assert_eq(info.exif_orientation, 1);
    cr_assert_eq(info.scale_denom, 1);
    cr_assert_eq(info.progressive, 0);
    cr_assert_eq(info.bit_depth, 8);
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, progressive)
{
    struct lk_image src = gen_gradient(80, 60), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, &(struct gen_jpeg_opts){.quality = 95, .progressive = 1}, &buf, &len);
    struct lk_image_info info;
    cr_assert_eq(decode(buf, len, NULL, &img, &info), LK_OK);
    cr_assert_eq(info.progressive, 1);
    cr_assert_lt(gen_mad(&img, &src), 3.0);
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, grayscale_expands_to_rgb)
{
    struct lk_image src = gen_gradient(33, 17), img;   /* odd sizes: partial MCUs */
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, &(struct gen_jpeg_opts){.quality = 95, .space = GEN_GREY}, &buf, &len);
    struct lk_image_info info;
    cr_assert_eq(decode(buf, len, NULL, &img, &info), LK_OK);
    cr_assert_eq(info.colour, LK_COLOUR_MODEL_GREY);
    cr_assert_eq(img.width, 33);
    for (uint32_t y = 0; y < img.height; y++)
        for (uint32_t x = 0; x < img.width; x++) {
            const uint8_t *p = gen_px(&img, x, y), *s = gen_px(&src, x, y);
            cr_assert(p[0] == p[1] && p[1] == p[2]);
            int luma = (299 * s[0] + 587 * s[1] + 114 * s[2] + 500) / 1000;
            cr_assert_leq(abs(p[0] - luma), 4, "(%u,%u) %d vs %d", x, y, p[0], luma);
        }
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

/* Colour patches through a 4-component JPEG. */
static void check_cmyk(enum gen_space space, int plain)
{
    static const uint8_t cols[6][3] = {
        {255, 0, 0}, {0, 200, 0}, {0, 0, 255}, {255, 255, 255}, {0, 0, 0}, {128, 128, 128},
    };
    struct lk_image src = gen_solid(96, 16, 0, 0, 0), img;
    for (int i = 0; i < 6; i++)
        gen_rect(&src, 16 * i, 0, 16 * i + 16, 16, cols[i][0], cols[i][1], cols[i][2]);
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, &(struct gen_jpeg_opts){.quality = 100, .space = space, .plain_cmyk = plain}, &buf, &len);
    struct lk_image_info info;
    cr_assert_eq(decode(buf, len, NULL, &img, &info), LK_OK);
    cr_assert_eq(info.colour, space == GEN_YCCK ? LK_COLOUR_MODEL_YCCK : LK_COLOUR_MODEL_CMYK);
    cr_assert_eq(info.adobe_inverted, !plain);
    for (int i = 0; i < 6; i++) {
        char what[64];
        snprintf(what, sizeof what, "patch %d (space %d, plain %d)", i, space, plain);
        near(gen_px(&img, 16 * i + 8, 8), cols[i][0], cols[i][1], cols[i][2], 8, what);
    }
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, cmyk_adobe_inverted) { check_cmyk(GEN_CMYK, 0); }
Test(decode_jpeg, cmyk_plain_no_adobe_marker) { check_cmyk(GEN_CMYK, 1); }
Test(decode_jpeg, ycck) { check_cmyk(GEN_YCCK, 0); }

/* EXIF orientation: a 64x32 stored image, red block at the stored top-left
 * corner and green block at the stored top-right corner.  After applying
 * the orientation they must land where the EXIF spec says. */
enum corner { TL, TR, BL, BR };

static const uint8_t *corner_px(const struct lk_image *img, enum corner c)
{
    uint32_t x = (c == TL || c == BL) ? 3 : img->width - 4;
    uint32_t y = (c == TL || c == TR) ? 3 : img->height - 4;
    return gen_px(img, x, y);
}

static void check_orientation(int o, int big_endian)
{
    static const enum corner red_at[9] = {0, TL, TR, BR, BL, TL, TR, BR, BL};
    static const enum corner green_at[9] = {0, TR, TL, BL, BR, BL, BR, TR, TL};
    struct lk_image src = gen_solid(64, 32, 255, 255, 255), img;
    gen_rect(&src, 0, 0, 8, 8, 255, 0, 0);
    gen_rect(&src, 56, 0, 64, 8, 0, 255, 0);
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, &(struct gen_jpeg_opts){.quality = 95, .exif_orientation = o, .exif_big_endian = big_endian},
             &buf, &len);
    struct lk_image_info info;
    cr_assert_eq(decode(buf, len, NULL, &img, &info), LK_OK);
    cr_assert_eq(info.exif_orientation, o);
    uint32_t ew = o >= 5 ? 32 : 64, eh = o >= 5 ? 64 : 32;
    cr_assert_eq(img.width, ew, "orientation %d: width %u", o, img.width);
    cr_assert_eq(img.height, eh);
    cr_assert_eq(info.orig_width, ew);
    cr_assert_eq(info.orig_height, eh);
    char what[64];
    snprintf(what, sizeof what, "orientation %d red", o);
    near(corner_px(&img, red_at[o]), 255, 0, 0, 40, what);
    snprintf(what, sizeof what, "orientation %d green", o);
    near(corner_px(&img, green_at[o]), 0, 255, 0, 40, what);
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, exif_orientations_little_endian)
{
    for (int o = 1; o <= 8; o++)
        check_orientation(o, 0);
}

Test(decode_jpeg, exif_orientations_big_endian)
{
    for (int o = 1; o <= 8; o++)
        check_orientation(o, 1);
}

Test(decode_jpeg, malformed_exif_is_ignored)
{
    struct lk_image src = gen_gradient(24, 16), img;
    /* each payload goes into an APP1 in front of the real data */
    static const struct { const char *p; size_t n; } bad[] = {
        {"Exif\0\0II*\0\xff\xff\x00\x00", 14},                         /* IFD offset far past the end */
        {"Exif\0\0II*\0\x08\x00\x00\x00\xff\xff", 16},                 /* 65535 entries, none present */
        {"Exif\0\0II*\0\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00", 20}, /* entry cut in half */
        {"Exif\0\0II*\0\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00", 26}, /* value 9 */
        {"Exif\0\0II*\0\x08\x00\x00\x00\x01\x00\x12\x01\x04\x00\x01\x00\x00\x00\x06\x00\x00\x00", 26}, /* LONG type */
        {"Exif\0\0XX*\0\x08\x00\x00\x00", 14},                         /* bad byte order */
        {"Exif\0\0II+\0\x08\x00\x00\x00", 14},                         /* bad magic */
        {"Exif\0\0II*\0\x04\x00\x00\x00", 14},                         /* IFD inside header */
        {"Exif\0\0", 6},                                               /* nothing */
        {"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>", 41},            /* XMP, not EXIF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *buf;
        size_t len;
        gen_jpeg(&src, NULL, &buf, &len);
        gen_jpeg_insert_app1(&buf, &len, (const uint8_t *)bad[i].p, bad[i].n);
        struct lk_image_info info;
        cr_assert_eq(decode(buf, len, NULL, &img, &info), LK_OK, "case %zu", i);
        cr_assert_eq(info.exif_orientation, 1, "case %zu", i);
        cr_assert_eq(img.width, 24);
        lk_image_free(&img);
        free(buf);
    }
    lk_image_free(&src);
}

Test(decode_jpeg, dct_scaling_shrink_on_load)
{
    struct lk_image src = gen_gradient(800, 600), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, NULL, &buf, &len);
    /* The smallest M/8 with ceil(600 * M / 8) >= hint, reported in lowest terms. */
    static const struct { uint32_t hint, num, denom, w, h; } cases[] = {
        {0, 1, 1, 800, 600},   {600, 1, 1, 800, 600}, {1000, 1, 1, 800, 600}, {526, 1, 1, 800, 600},
        {525, 7, 8, 700, 525}, {450, 3, 4, 600, 450}, {301, 5, 8, 500, 375},  {300, 1, 2, 400, 300},
        {224, 3, 8, 300, 225}, {150, 1, 4, 200, 150}, {100, 1, 4, 200, 150},  {75, 1, 8, 100, 75},
        {1, 1, 8, 100, 75},
    };
    struct lk_image full;
    cr_assert_eq(decode(buf, len, NULL, &full, NULL), LK_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lk_decode_opts o = {.min_side_hint = cases[i].hint};
        struct lk_image_info info;
        cr_assert_eq(decode(buf, len, &o, &img, &info), LK_OK);
        cr_assert_eq(info.scale_num, cases[i].num, "hint %u: num %u", cases[i].hint, info.scale_num);
        cr_assert_eq(info.scale_denom, cases[i].denom, "hint %u: denom %u", cases[i].hint, info.scale_denom);
        cr_assert_eq(img.width, cases[i].w, "hint %u", cases[i].hint);
        cr_assert_eq(img.height, cases[i].h);
        cr_assert_eq(info.orig_width, 800);
        cr_assert_eq(info.orig_height, 600);
        /* same picture as a full decode resized to that size */
        struct lk_image ref;
        cr_assert_eq(lk_image_resize(&full, img.width, img.height, &ref, NULL), LK_OK);
        cr_assert_lt(gen_mad(&img, &ref), 4.0, "hint %u: mad %f", cases[i].hint, gen_mad(&img, &ref));
        lk_image_free(&ref);
        lk_image_free(&img);
    }
    lk_image_free(&full);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, dct_scaling_with_rotation)
{
    struct lk_image src = gen_gradient(640, 320), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, &(struct gen_jpeg_opts){.exif_orientation = 6}, &buf, &len);
    struct lk_decode_opts o = {.min_side_hint = 80};
    struct lk_image_info info;
    cr_assert_eq(decode(buf, len, &o, &img, &info), LK_OK);
    cr_assert_eq(info.scale_denom, 4);
    cr_assert_eq(img.width, 80);
    cr_assert_eq(img.height, 160);
    cr_assert_eq(info.orig_width, 320);
    cr_assert_eq(info.orig_height, 640);
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

/* Patch the SOF frame size of an encoded JPEG. */
static void patch_sof(uint8_t *buf, size_t len, unsigned w, unsigned h)
{
    for (size_t i = 2; i + 9 < len; i++)
        if (buf[i] == 0xFF && (buf[i + 1] == 0xC0 || buf[i + 1] == 0xC2)) {
            buf[i + 5] = (uint8_t)(h >> 8);
            buf[i + 6] = (uint8_t)h;
            buf[i + 7] = (uint8_t)(w >> 8);
            buf[i + 8] = (uint8_t)w;
            return;
        }
    cr_assert_fail("no SOF marker");
}

Test(decode_jpeg, decompression_bomb_header)
{
    struct lk_image src = gen_gradient(16, 16), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, NULL, &buf, &len);
    /* 65000 x 65000 declared (JPEG's 16-bit maximum is 65535) in ~700 bytes */
    patch_sof(buf, len, 65000, 65000);
    struct lk_err e = {0};
    cr_assert_eq(lk_image_decode(buf, len, NULL, &img, NULL, &e), LK_ERR_DIMENSIONS, "%s", e.msg);
    cr_assert_null(img.rgb);
    /* within side limits but over the pixel limit: 16000 x 4000 = 64 Mpx */
    patch_sof(buf, len, 16000, 4000);
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_DIMENSIONS);
    /* over the side limit only */
    patch_sof(buf, len, 20000, 10);
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_DIMENSIONS);
    /* zero height */
    patch_sof(buf, len, 16, 0);
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    /* plausible size but the data is not there: truncated, not a crash */
    patch_sof(buf, len, 2000, 2000);
    cr_assert_eq(decode(buf, len, NULL, &img, NULL), LK_ERR_TRUNCATED);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, configured_limits)
{
    struct lk_image src = gen_gradient(200, 100), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, NULL, &buf, &len);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_width = 199}, &img, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_height = 99}, &img, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_pixels = 19999}, &img, NULL), LK_ERR_DIMENSIONS);
    cr_assert_eq(decode(buf, len, &(struct lk_decode_opts){.max_pixels = 20000}, &img, NULL), LK_OK);
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

Test(decode_jpeg, truncated_at_many_offsets)
{
    for (int prog = 0; prog <= 1; prog++) {
        struct lk_image src = gen_gradient(128, 96), img;
        gen_noise(&src, 7, 30);
        uint8_t *buf;
        size_t len;
        gen_jpeg(&src, &(struct gen_jpeg_opts){.progressive = prog}, &buf, &len);
        size_t cuts[] = {2, 3, 4, 10, 50, 100, 200, len / 3, len / 2, len * 3 / 4, len - 100, len - 3, len - 2, len - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            int rc = decode(buf, cuts[i], NULL, &img, NULL);
            cr_assert_eq(rc, LK_ERR_TRUNCATED, "progressive %d, cut at %zu of %zu: rc %d", prog, cuts[i], len, rc);
            cr_assert_null(img.rgb);
        }
        lk_image_free(&src);
        free(buf);
    }
}

Test(decode_jpeg, corrupt_headers)
{
    struct lk_image src = gen_gradient(32, 32), img;
    uint8_t *buf;
    size_t len;
    gen_jpeg(&src, NULL, &buf, &len);
    /* SOI, then FF followed by garbage instead of a marker code */
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    memset(bad + 3, 0x11, 15);
    cr_assert_eq(decode(bad, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    /* DQT with a bogus segment length */
    memcpy(bad, buf, len);
    for (size_t i = 2; i + 3 < len; i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xDB) {
            bad[i + 2] = 0;
            bad[i + 3] = 1;
            break;
        }
    cr_assert_eq(decode(bad, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    /* no image at all: SOI then EOI */
    cr_assert_eq(decode((const uint8_t *)"\xFF\xD8\xFF\xD9", 4, NULL, &img, NULL), LK_ERR_CORRUPT);
    /* SOF declaring 0 components */
    memcpy(bad, buf, len);
    for (size_t i = 2; i + 9 < len; i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xC0) {
            bad[i + 9] = 0;
            break;
        }
    cr_assert_eq(decode(bad, len, NULL, &img, NULL), LK_ERR_CORRUPT);
    free(bad);
    lk_image_free(&src);
    free(buf);
}

/* A progressive scan script with ~640 scans: legal, but a CPU-exhaustion
 * pattern; the decoder stops after 500 scans. */
Test(decode_jpeg, too_many_scans)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = 16;
    c.image_height = 16;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    static jpeg_scan_info scans[1 + 63 * 10];
    int n = 0;
    scans[n++] = (jpeg_scan_info){1, {0}, 0, 0, 0, 0};
    for (int k = 1; k <= 63; k++) {
        scans[n++] = (jpeg_scan_info){1, {0}, k, k, 0, 9};
        for (int al = 8; al >= 0; al--)
            scans[n++] = (jpeg_scan_info){1, {0}, k, k, al + 1, al};
    }
    c.scan_info = scans;
    c.num_scans = n;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[16];
    for (int i = 0; i < 16; i++)
        row[i] = (uint8_t)(i * 16);
    while (c.next_scanline < 16) {
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);

    struct lk_image img = {0};
    struct lk_err e = {0};
    int rc = lk_image_decode(out, outlen, NULL, &img, NULL, &e);
    cr_assert_eq(rc, LK_ERR_CORRUPT, "rc %d: %s", rc, e.msg);
    cr_assert(strstr(e.msg, "scans"), "%s", e.msg);
    free(out);
}

/* Mutation fuzzing: random byte changes must give OK or a clean error. */
Test(decode_jpeg, mutations_never_crash)
{
    struct lk_image src = gen_gradient(48, 40), img;
    gen_noise(&src, 3, 20);
    for (int prog = 0; prog <= 1; prog++) {
        uint8_t *buf;
        size_t len;
        gen_jpeg(&src, &(struct gen_jpeg_opts){.progressive = prog}, &buf, &len);
        uint8_t *m = malloc(len);
        unsigned s = 99 + prog;
        for (int round = 0; round < 300; round++) {
            memcpy(m, buf, len);
            int edits = 1 + round % 4;
            for (int k = 0; k < edits; k++) {
                s = s * 1103515245u + 12345u;
                size_t at = 2 + (s >> 8) % (len - 2);
                s = s * 1103515245u + 12345u;
                m[at] = (uint8_t)(s >> 16);
            }
            int rc = decode(m, len, NULL, &img, NULL);
            cr_assert(rc == LK_OK || rc == LK_ERR_CORRUPT || rc == LK_ERR_TRUNCATED || rc == LK_ERR_DIMENSIONS ||
                      rc == LK_ERR_UNSUPPORTED_FORMAT,
                      "round %d: rc %d", round, rc);
            if (rc == LK_OK)
                cr_assert_not_null(img.rgb);
            lk_image_free(&img);
        }
        free(m);
        free(buf);
    }
    lk_image_free(&src);
}
