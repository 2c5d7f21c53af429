/* tests/image/test_sniff.c — format detection from magic numbers (sniff.c),
 * and that everything but JPEG/PNG is refused as an unsupported format. */
#include <criterion/criterion.h>
#include <string.h>

#include "lookalike/image.h"

struct magic_case {
    const char *bytes;
    size_t len;
    enum lk_image_format want;
};

#define M(s, f) {s, sizeof(s) - 1, f}
static const struct magic_case unsupported[] = {
    M("GIF89a\x10\x00\x10\x00\x80\x00\x00", LK_FORMAT_GIF),
    M("GIF87a\x01\x00\x01\x00", LK_FORMAT_GIF),
    M("BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00", LK_FORMAT_BMP),
    M("II*\x00\x08\x00\x00\x00", LK_FORMAT_TIFF),
    M("MM\x00*\x00\x00\x00\x08", LK_FORMAT_TIFF),
    M("RIFF\x24\x00\x00\x00WEBPVP8 ", LK_FORMAT_WEBP),
    M("<svg xmlns=\"http://www.w3.org/2000/svg\"/>", LK_FORMAT_SVG),
    M("\xEF\xBB\xBF  \n<?xml version=\"1.0\"?><svg/>", LK_FORMAT_SVG),
    M("<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\"><svg/>", LK_FORMAT_SVG),
    M("\x00\x00\x00\x18" "ftypheic\x00\x00\x00\x00", LK_FORMAT_HEIF),
    M("\x00\x00\x00\x1c" "ftypavif\x00\x00\x00\x00", LK_FORMAT_AVIF),
    M("\x00\x00\x00\x0cjP  \r\n\x87\n", LK_FORMAT_JPEG2000),
    M("\xFF\x0A\xFA\x7F", LK_FORMAT_JPEGXL),
    M("%PDF-1.7\n", LK_FORMAT_PDF),
    M("hello, this is just text\n", LK_FORMAT_UNKNOWN),
    M("BMW is a car brand, not a bitmap", LK_FORMAT_UNKNOWN),
    M("<html><body>not an image</body></html>", LK_FORMAT_UNKNOWN),
    M("{\"json\": true}", LK_FORMAT_UNKNOWN),
    M("\x89PNX\r\n\x1a\n", LK_FORMAT_UNKNOWN),
    M("\xFF\xD9\xFF", LK_FORMAT_UNKNOWN),
};

Test(sniff, jpeg_and_png_signatures)
{
    cr_assert_eq(lk_image_sniff("\xFF\xD8\xFF\xE0", 4), LK_FORMAT_JPEG);
    cr_assert_eq(lk_image_sniff("\xFF\xD8\xFF", 3), LK_FORMAT_JPEG);
    cr_assert_eq(lk_image_sniff("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), LK_FORMAT_PNG);
}

Test(sniff, partial_signature_counts_as_that_format)
{
    /* cut inside the signature: reported as the format so decode says "truncated" */
    cr_assert_eq(lk_image_sniff("\xFF\xD8", 2), LK_FORMAT_JPEG);
    cr_assert_eq(lk_image_sniff("\x89PNG\r", 5), LK_FORMAT_PNG);
    cr_assert_eq(lk_image_sniff("\x89PN", 3), LK_FORMAT_UNKNOWN);
    cr_assert_eq(lk_image_sniff("\xFF", 1), LK_FORMAT_UNKNOWN);
    struct lk_image img = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_decode("\xFF\xD8", 2, NULL, &img, NULL, &e), LK_ERR_TRUNCATED, "%s", e.msg);
    cr_assert_eq(lk_image_decode("\x89PNG\r\n", 6, NULL, &img, NULL, &e), LK_ERR_TRUNCATED, "%s", e.msg);
}

Test(sniff, other_formats_recognised_and_refused)
{
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const struct magic_case *c = &unsupported[i];
        cr_assert_eq(lk_image_sniff(c->bytes, c->len), c->want, "case %zu: got %s want %s", i,
                     lk_image_format_name(lk_image_sniff(c->bytes, c->len)), lk_image_format_name(c->want));
        struct lk_image img = {0};
        struct lk_err e = {0};
        int rc = lk_image_decode(c->bytes, c->len, NULL, &img, NULL, &e);
        cr_assert_eq(rc, LK_ERR_UNSUPPORTED_FORMAT, "case %zu: rc %d", i, rc);
        cr_assert_eq(e.code, LK_ERR_UNSUPPORTED_FORMAT);
        cr_assert_null(img.rgb);
        if (c->want != LK_FORMAT_UNKNOWN)
            cr_assert(strstr(e.msg, lk_image_format_name(c->want)), "case %zu: message '%s' should name the format",
                      i, e.msg);
    }
}

Test(sniff, empty_and_null)
{
    cr_assert_eq(lk_image_sniff(NULL, 10), LK_FORMAT_UNKNOWN);
    cr_assert_eq(lk_image_sniff("", 0), LK_FORMAT_UNKNOWN);
    struct lk_image img = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_decode("", 0, NULL, &img, NULL, &e), LK_ERR_UNSUPPORTED_FORMAT);
    cr_assert(strstr(e.msg, "empty"), "%s", e.msg);
    cr_assert_eq(lk_image_decode(NULL, 0, NULL, &img, NULL, &e), LK_ERR_UNSUPPORTED_FORMAT);
}

Test(sniff, random_bytes_are_unsupported)
{
    unsigned s = 12345;
    uint8_t buf[4096];
    for (int round = 0; round < 200; round++) {
        size_t len = 1 + (size_t)(round * 37) % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            s = s * 1103515245u + 12345u;
            buf[i] = (uint8_t)(s >> 16);
        }
        if (buf[0] == 0xFF || buf[0] == 0x89)
            buf[0] = 0x42;   /* keep clear of JPEG/PNG signatures */
        struct lk_image img = {0};
        int rc = lk_image_decode(buf, len, NULL, &img, NULL, NULL);
        cr_assert_eq(rc, LK_ERR_UNSUPPORTED_FORMAT, "round %d: rc %d", round, rc);
    }
}

Test(sniff, format_names)
{
    cr_assert_str_eq(lk_image_format_name(LK_FORMAT_JPEG), "JPEG");
    cr_assert_str_eq(lk_image_format_name(LK_FORMAT_PNG), "PNG");
    cr_assert_str_eq(lk_image_format_name(LK_FORMAT_UNKNOWN), "unknown");
    cr_assert_str_eq(lk_image_format_name((enum lk_image_format)999), "unknown");
}
