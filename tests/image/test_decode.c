/* tests/image/test_decode.c — decode.c: options, limits on encoded size,
 * dispatch, file loading, image allocation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"
#include "lookalike/image.h"

static void small_jpeg(uint8_t **buf, size_t *len)
{
    struct lk_image img = gen_gradient(40, 30);
    gen_jpeg(&img, NULL, buf, len);
    lk_image_free(&img);
}

Test(decode, defaults)
{
    struct lk_decode_opts o;
    lk_decode_opts_default(&o);
    cr_assert_eq(o.max_bytes, 32u << 20);
    cr_assert_eq(o.max_width, 16384u);
    cr_assert_eq(o.max_height, 16384u);
    cr_assert_eq(o.max_pixels, 50000000ull);
    cr_assert_eq(o.min_side_hint, 0u);
    lk_decode_opts_default(NULL); /* no crash */
}

Test(decode, decodes_jpeg_and_png_with_zero_opts)
{
    uint8_t *buf;
    size_t len;
    small_jpeg(&buf, &len);
    struct lk_decode_opts zero = {0};
    struct lk_image img = {0};
    struct lk_image_info info;
    struct lk_err e = {0};
    cr_assert_eq(lk_image_decode(buf, len, &zero, &img, &info, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(info.format, LK_FORMAT_JPEG);
    cr_assert_eq(img.width, 40);
    cr_assert_eq(img.height, 30);
    lk_image_free(&img);
    free(buf);

    struct lk_image src = gen_gradient(20, 10);
    struct gen_png_opts po = {.color_type = 2, .bit_depth = 8};
    gen_png(&src, &po, &buf, &len);
    cr_assert_eq(lk_image_decode(buf, len, NULL, &img, NULL, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(gen_mad(&img, &src), 0.0);
    lk_image_free(&img);
    lk_image_free(&src);
    free(buf);
}

Test(decode, too_large_in_memory)
{
    uint8_t *buf;
    size_t len;
    small_jpeg(&buf, &len);
    struct lk_decode_opts o = {.max_bytes = len - 1};
    struct lk_image img = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_decode(buf, len, &o, &img, NULL, &e), LK_ERR_TOO_LARGE);
    cr_assert_eq(e.code, LK_ERR_TOO_LARGE);
    cr_assert_null(img.rgb);
    o.max_bytes = len;
    cr_assert_eq(lk_image_decode(buf, len, &o, &img, NULL, &e), LK_OK);
    lk_image_free(&img);
    free(buf);
}

Test(decode, too_large_file_refused_before_reading)
{
    /* A sparse 64 MiB file: refused from fstat() alone under the default 32 MiB. */
    char *path = gen_tempfile("\xFF\xD8\xFF", 3);
    cr_assert_eq(truncate(path, 64 << 20), 0);
    struct lk_image img = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_load_file(path, NULL, &img, NULL, &e), LK_ERR_TOO_LARGE, "%s", e.msg);
    cr_assert_null(img.rgb);
    unlink(path);
    free(path);
}

Test(decode, load_file)
{
    uint8_t *buf;
    size_t len;
    small_jpeg(&buf, &len);
    char *path = gen_tempfile(buf, len);
    struct lk_image img = {0};
    struct lk_image_info info;
    struct lk_err e = {0};
    cr_assert_eq(lk_image_load_file(path, NULL, &img, &info, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(img.width, 40);
    cr_assert_eq(info.format, LK_FORMAT_JPEG);
    lk_image_free(&img);
    unlink(path);
    free(path);
    free(buf);

    path = gen_tempfile("", 0);
    cr_assert_eq(lk_image_load_file(path, NULL, &img, NULL, &e), LK_ERR_UNSUPPORTED_FORMAT);
    unlink(path);
    free(path);
}

Test(decode, load_file_io_errors)
{
    struct lk_image img = {0};
    struct lk_err e = {0};
    cr_assert_eq(lk_image_load_file("/nonexistent/lk/none.jpg", NULL, &img, NULL, &e), LK_ERR_IO);
    cr_assert(strstr(e.msg, "No such file"), "%s", e.msg);
    cr_assert_eq(lk_image_load_file("/tmp", NULL, &img, NULL, &e), LK_ERR_IO);
    cr_assert_eq(lk_image_load_file(NULL, NULL, &img, NULL, &e), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_load_file("/tmp", NULL, NULL, NULL, &e), LK_ERR_INVALID_ARG);
}

Test(decode, invalid_args)
{
    struct lk_image img = {0};
    cr_assert_eq(lk_image_decode("\xFF\xD8\xFF", 3, NULL, NULL, NULL, NULL), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_image_decode(NULL, 5, NULL, &img, NULL, NULL), LK_ERR_INVALID_ARG);
}

Test(decode, image_init_and_free)
{
    struct lk_image img;
    struct lk_err e = {0};
    cr_assert_eq(lk_image_init(&img, 3, 2, &e), LK_OK);
    for (int i = 0; i < 18; i++)
        cr_assert_eq(img.rgb[i], 0);
    lk_image_free(&img);
    cr_assert_null(img.rgb);
    cr_assert_eq(img.width, 0);
    lk_image_free(&img);    /* twice: no-op */
    lk_image_free(NULL);
    cr_assert_eq(lk_image_init(&img, 0, 5, &e), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_init(&img, 70000, 1, &e), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_init(&img, 60000, 60000, &e), LK_ERR_DIMENSIONS);
    cr_assert_eq(lk_image_init(NULL, 1, 1, &e), LK_ERR_INVALID_ARG);
}
