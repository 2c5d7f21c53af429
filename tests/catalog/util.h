/*
 * util.h — helpers shared by the catalog test suites: temporary directories,
 * small files, and tiny valid PNG/JPEG images written with libpng/libjpeg (so
 * the tests need neither the image module nor any data outside the tree).
 * Header-only, `static inline` so each suite uses what it needs.
 */
#ifndef LK_TESTS_CATALOG_UTIL_H
#define LK_TESTS_CATALOG_UTIL_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <jpeglib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/lk-catalog-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d, "mkdtemp");
    return strdup(d);
}

static inline int tu_rm_cb(const char *p, const struct stat *sb, int t, struct FTW *f)
{
    (void)sb; (void)t; (void)f;
    return remove(p);
}

static inline void tu_rm_rf(char *dir)
{
    if (dir) {
        nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
    }
}

static inline char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static inline void tu_write(const char *dir, const char *name, const void *data, size_t len)
{
    char *p = tu_path(dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "open %s", p);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    free(p);
}

static inline void tu_write_str(const char *dir, const char *name, const char *s)
{
    tu_write(dir, name, s, strlen(s));
}

/* A w x h RGB PNG whose pixels depend on `seed`. */
static inline void tu_write_png(const char *dir, const char *name, unsigned w, unsigned h, unsigned seed)
{
    char *p = tu_path(dir, name);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = w;
    img.height = h;
    img.format = PNG_FORMAT_RGB;
    unsigned char *px = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        px[i] = (unsigned char)(i * 31 + seed * 7);
    cr_assert(png_image_write_to_file(&img, p, 0, px, 0, NULL), "png write %s", p);
    free(px);
    free(p);
}

static inline void tu_write_jpeg(const char *dir, const char *name, unsigned w, unsigned h)
{
    char *p = tu_path(dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w;
    c.image_height = h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * 3);
    for (unsigned x = 0; x < w * 3; x++)
        row[x] = (unsigned char)(x * 5);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(row);
    free(p);
}

#endif
