/*
 * src/image/decode_png.c — PNG decoding with libpng.  The only file in
 * lookalike that includes png.h; setjmp/longjmp never leave it.
 *
 * Decisions:
 *  - Errors: libpng's error callback formats the message and png_longjmp()s
 *    back to run_guarded(), which turns it into a status.  State that must
 *    survive the jump lives in a struct pdec owned by lk__decode_png()'s
 *    frame, one level up from the setjmp, so no modified local of the setjmp
 *    frame is read after the jump (C17 7.13.2.1p3).
 *  - Limits before allocation: the IHDR width/height are read from the bytes
 *    and checked before libpng even starts (LK_ERR_DIMENSIONS), libpng's own
 *    png_set_user_limits() repeats the check, png_set_chunk_malloc_max()
 *    bounds ancillary chunks (zTXt/iCCP decompression bombs) and
 *    png_set_chunk_cache_max() bounds the number of unknown chunks.
 *  - Truncation: our read callback fails when asked for bytes past the end
 *    (LK_ERR_TRUNCATED), also when only the IEND chunk is missing (strict,
 *    like the JPEG decoder: the file is damaged and should be re-exported).
 *  - Every PNG becomes 8-bit RGB: palette and low-bit grey are expanded, tRNS
 *    becomes alpha, 16-bit samples are scaled with rounding
 *    (png_set_scale_16), grey is replicated, Adam7 passes are merged by
 *    png_set_interlace_handling().  Alpha is composited over white in
 *    gamma-encoded sRGB (what browsers show on a white page), then the buffer
 *    is compacted to 3 bytes per pixel in place.
 *  - gAMA, cHRM and iCCP are ignored: product photos are sRGB in practice and
 *    colour management is not worth a dependency here.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "pimage.h"

/* Largest ancillary chunk libpng may allocate (iCCP, zTXt, eXIf, ...). */
#define PNG_CHUNK_MAX (8u << 20)
/* Most unknown/text chunks kept before libpng gives up on them. */
#define PNG_CHUNK_CACHE_MAX 1000

struct pdec {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t len, pos;
    int truncated;      /* read callback ran past the end */
    int status;         /* non-LK_OK: a check failed (no longjmp) */
    uint8_t *px;        /* w*h*channels, compacted to RGB at the end */
    png_bytep *rows;
    uint32_t w, h;
    int channels;
    char msg[200];
};

static void on_read(png_structp png, png_bytep out, size_t n)
{
    struct pdec *st = png_get_io_ptr(png);
    if (n > st->len - st->pos) {
        st->truncated = 1;
        png_error(png, "data ends early");
    }
    memcpy(out, st->data + st->pos, n);
    st->pos += n;
}

static void on_error(png_structp png, png_const_charp msg)
{
    struct pdec *st = png_get_error_ptr(png);
    snprintf(st->msg, sizeof st->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;  /* warnings (bad ancillary CRC, sRGB profile quirks) are not errors; */
    (void)msg;  /* a library does not print */
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void decode_inner(struct pdec *st, const struct lk__limits *lim, struct lk_image_info *info,
                         struct lk_err *err)
{
    png_structp png = st->png;
    png_infop pi = st->info;

    png_set_read_fn(png, st, on_read);
    png_set_user_limits(png, lim->max_width, lim->max_height);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE_MAX);
    png_read_info(png, pi);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, pi, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    st->status = lk__check_dims("PNG", w, h, lim, err);
    if (st->status)
        return;

    info->orig_width = w;
    info->orig_height = h;
    info->exif_orientation = 1;
    info->scale_num = 1;
    info->scale_denom = 1;
    info->bit_depth = depth;
    info->progressive = interlace != PNG_INTERLACE_NONE;
    int trns = png_get_valid(png, pi, PNG_INFO_tRNS) != 0;
    info->has_alpha = (ctype & PNG_COLOR_MASK_ALPHA) || trns;
    info->colour = ctype == PNG_COLOR_TYPE_PALETTE ? LK_COLOUR_MODEL_PALETTE
                 : (ctype & PNG_COLOR_MASK_COLOR) ? LK_COLOUR_MODEL_RGB
                 : LK_COLOUR_MODEL_GREY;

    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (!(ctype & PNG_COLOR_MASK_COLOR) && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (trns)
        png_set_tRNS_to_alpha(png);
    if (depth == 16)
        png_set_scale_16(png);
    if (!(ctype & PNG_COLOR_MASK_COLOR))
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pi);

    st->channels = png_get_channels(png, pi);
    if ((st->channels != 3 && st->channels != 4) || png_get_rowbytes(png, pi) != (size_t)w * st->channels) {
        st->status = lk_err_set(err, LK_ERR_INTERNAL, "libpng produced %d channels, %zu bytes per row",
                                st->channels, (size_t)png_get_rowbytes(png, pi));
        return;
    }
    st->w = w;
    st->h = h;
    size_t stride = (size_t)w * st->channels;
    st->px = malloc(stride * h);
    st->rows = malloc(sizeof *st->rows * h);
    if (!st->px || !st->rows) {
        st->status = lk_err_set(err, LK_ERR_NOMEM, "cannot allocate %ux%u PNG image", (unsigned)w, (unsigned)h);
        return;
    }
    for (uint32_t y = 0; y < h; y++)
        st->rows[y] = st->px + (size_t)y * stride;
    png_read_image(png, st->rows);
    png_read_end(png, NULL);
}

/* Composite RGBA over white and compact to RGB in place (the write index
 * never overtakes the read index, so one forward pass is safe). */
static void flatten_over_white(uint8_t *px, size_t npix)
{
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        unsigned a = s[3], ia = 255 - a;
        uint8_t r = (uint8_t)((s[0] * a + 255 * ia + 127) / 255);
        uint8_t g = (uint8_t)((s[1] * a + 255 * ia + 127) / 255);
        uint8_t b = (uint8_t)((s[2] * a + 255 * ia + 127) / 255);
        px[3 * i] = r;
        px[3 * i + 1] = g;
        px[3 * i + 2] = b;
    }
}

/* The setjmp frame.  `st` belongs to the caller's frame and the only local
 * here (the pointer) is never modified, so nothing is indeterminate after a
 * longjmp. */
static int run_guarded(struct pdec *st, const struct lk__limits *lim, struct lk_image_info *info,
                       struct lk_err *err)
{
    if (setjmp(png_jmpbuf(st->png)) == 0) {
        decode_inner(st, lim, info, err);
        return st->status;
    }
    if (st->truncated)
        return lk_err_set(err, LK_ERR_TRUNCATED, "PNG data ends early (%zu bytes)", st->len);
    if (strstr(st->msg, "exceeds user limit") || strstr(st->msg, "too large"))
        return lk_err_set(err, LK_ERR_DIMENSIONS, "PNG size over limit: %s", st->msg);
    if (strstr(st->msg, "out of memory") || strstr(st->msg, "Out of memory"))
        return lk_err_set(err, LK_ERR_NOMEM, "PNG decoder: %s", st->msg);
    return lk_err_set(err, LK_ERR_CORRUPT, "corrupt PNG: %s", st->msg);
}

int lk__decode_png(const uint8_t *data, size_t len, const struct lk__limits *lim,
                   struct lk_image *out, struct lk_image_info *info, struct lk_err *err)
{
    /* Pre-check the IHDR (signature 8 bytes, chunk length 4, "IHDR" 4, then
     * width and height) so a bomb header gets LK_ERR_DIMENSIONS before libpng
     * is even set up. */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        int rc = lk__check_dims("PNG", be32(data + 16), be32(data + 20), lim, err);
        if (rc)
            return rc;
    }

    struct pdec st;
    memset(&st, 0, sizeof st);
    st.data = data;
    st.len = len;
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, on_error, on_warning);
    if (!st.png)
        return lk_err_set(err, LK_ERR_NOMEM, "cannot create PNG decoder");
    st.info = png_create_info_struct(st.png);
    if (!st.info) {
        png_destroy_read_struct(&st.png, NULL, NULL);
        return lk_err_set(err, LK_ERR_NOMEM, "cannot create PNG decoder");
    }

    int rc = run_guarded(&st, lim, info, err);
    png_destroy_read_struct(&st.png, &st.info, NULL);
    free(st.rows);
    if (rc != LK_OK) {
        free(st.px);
        return rc;
    }

    if (st.channels == 4) {
        flatten_over_white(st.px, (size_t)st.w * st.h);
        uint8_t *shrunk = realloc(st.px, (size_t)st.w * st.h * 3);
        if (shrunk)
            st.px = shrunk;   /* on failure the larger block is still valid */
    }
    out->width = st.w;
    out->height = st.h;
    out->rgb = st.px;
    return LK_OK;
}
