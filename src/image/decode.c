/*
 * src/image/decode.c — entry points of the decoder: option defaults, input
 * limits, format dispatch, file loading, and image allocation.
 *
 * Decisions:
 *  - The encoded-size limit is enforced before anything else, and for files
 *    with fstat() before a single byte is read, so a 10 GB upload costs
 *    nothing.
 *  - Format comes from lk_image_sniff() only.  Empty input is refused as an
 *    unsupported format (there is no image in it), with its own message.
 *  - The decoders receive limits with every default filled in, plus the hard
 *    LK_IMAGE_MAX_* ceilings, and check them from the header before
 *    allocating pixels (lk__check_dims).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pimage.h"

/* ==== Images ============================================================ */

int lk__check_out_dims(uint32_t w, uint32_t h, struct lk_err *err)
{
    if (w == 0 || h == 0)
        return lk_err_set(err, LK_ERR_DIMENSIONS, "image size %ux%u: both sides must be >= 1", w, h);
    if (w > LK_IMAGE_MAX_SIDE || h > LK_IMAGE_MAX_SIDE || (uint64_t)w * h > LK_IMAGE_MAX_PIXELS)
        return lk_err_set(err, LK_ERR_DIMENSIONS, "image size %ux%u exceeds the %u px side / %llu px ceiling",
                          w, h, LK_IMAGE_MAX_SIDE, (unsigned long long)LK_IMAGE_MAX_PIXELS);
    return LK_OK;
}

int lk_image_init(struct lk_image *img, uint32_t width, uint32_t height, struct lk_err *err)
{
    if (!img)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_init: NULL image");
    *img = (struct lk_image){0};
    int rc = lk__check_out_dims(width, height, err);
    if (rc)
        return rc;
    uint8_t *px = calloc((size_t)width * height, 3);
    if (!px)
        return lk_err_set(err, LK_ERR_NOMEM, "cannot allocate %ux%u RGB image", width, height);
    img->width = width;
    img->height = height;
    img->rgb = px;
    return LK_OK;
}

void lk_image_free(struct lk_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    *img = (struct lk_image){0};
}

/* ==== Limits ============================================================ */

void lk_decode_opts_default(struct lk_decode_opts *o)
{
    if (!o)
        return;
    *o = (struct lk_decode_opts){
        .max_bytes = LK_DECODE_MAX_BYTES_DEFAULT,
        .max_width = LK_DECODE_MAX_SIDE_DEFAULT,
        .max_height = LK_DECODE_MAX_SIDE_DEFAULT,
        .max_pixels = LK_DECODE_MAX_PIXELS_DEFAULT,
        .min_side_hint = 0,
    };
}

static struct lk__limits limits_from(const struct lk_decode_opts *o)
{
    struct lk_decode_opts d;
    lk_decode_opts_default(&d);
    if (!o)
        o = &d;
    struct lk__limits l = {
        .max_bytes = o->max_bytes ? o->max_bytes : d.max_bytes,
        .max_width = o->max_width ? o->max_width : d.max_width,
        .max_height = o->max_height ? o->max_height : d.max_height,
        .max_pixels = o->max_pixels ? o->max_pixels : d.max_pixels,
        .min_side_hint = o->min_side_hint,
    };
    /* The hard ceilings always apply, whatever the caller configured. */
    if (l.max_width > LK_IMAGE_MAX_SIDE)
        l.max_width = LK_IMAGE_MAX_SIDE;
    if (l.max_height > LK_IMAGE_MAX_SIDE)
        l.max_height = LK_IMAGE_MAX_SIDE;
    if (l.max_pixels > LK_IMAGE_MAX_PIXELS)
        l.max_pixels = LK_IMAGE_MAX_PIXELS;
    return l;
}

int lk__check_dims(const char *fmt, uint64_t w, uint64_t h, const struct lk__limits *lim,
                   struct lk_err *err)
{
    if (w == 0 || h == 0)
        return lk_err_set(err, LK_ERR_CORRUPT, "%s header declares an empty image (%llux%llu)", fmt,
                          (unsigned long long)w, (unsigned long long)h);
    if (w > lim->max_width || h > lim->max_height)
        return lk_err_set(err, LK_ERR_DIMENSIONS,
                          "%s declares %llux%llu pixels; the limit is %ux%u", fmt,
                          (unsigned long long)w, (unsigned long long)h, lim->max_width, lim->max_height);
    if (w * h > lim->max_pixels)
        return lk_err_set(err, LK_ERR_DIMENSIONS,
                          "%s declares %llux%llu = %llu pixels; the limit is %llu", fmt,
                          (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                          (unsigned long long)lim->max_pixels);
    return LK_OK;
}

/* ==== Dispatch ========================================================== */

int lk_image_decode(const void *data, size_t len, const struct lk_decode_opts *opts,
                    struct lk_image *out, struct lk_image_info *info, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_decode: NULL output image");
    *out = (struct lk_image){0};
    if (!data && len > 0)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_decode: NULL data");

    struct lk__limits lim = limits_from(opts);
    if (len > lim.max_bytes)
        return lk_err_set(err, LK_ERR_TOO_LARGE, "input is %zu bytes; the limit is %zu bytes", len,
                          lim.max_bytes);
    if (len == 0)
        return lk_err_set(err, LK_ERR_UNSUPPORTED_FORMAT, "empty input (0 bytes): not an image");

    struct lk_image_info tmp = {0};
    enum lk_image_format f = lk_image_sniff(data, len);
    int rc;
    switch (f) {
    case LK_FORMAT_JPEG:
        rc = lk__decode_jpeg(data, len, &lim, out, &tmp, err);
        break;
    case LK_FORMAT_PNG:
        rc = lk__decode_png(data, len, &lim, out, &tmp, err);
        break;
    case LK_FORMAT_UNKNOWN:
        return lk_err_set(err, LK_ERR_UNSUPPORTED_FORMAT,
                          "not a JPEG or PNG (unrecognised signature)");
    default:
        return lk_err_set(err, LK_ERR_UNSUPPORTED_FORMAT,
                          "%s is not decoded (only JPEG and PNG are)",
                          lk_image_format_name(f));
    }
    if (rc != LK_OK) {
        lk_image_free(out);
        return rc;
    }
    tmp.format = f;
    if (info)
        *info = tmp;
    return LK_OK;
}

/* ==== Files ============================================================= */

int lk_image_load_file(const char *path, const struct lk_decode_opts *opts, struct lk_image *out,
                       struct lk_image_info *info, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_load_file: NULL output image");
    *out = (struct lk_image){0};
    if (!path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_image_load_file: NULL path");

    struct lk__limits lim = limits_from(opts);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lk_err_set(err, LK_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lk_err_set(err, LK_ERR_IO, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > lim.max_bytes) {
        close(fd);
        return lk_err_set(err, LK_ERR_TOO_LARGE, "%s is %lld bytes; the limit is %zu bytes", path,
                          (long long)st.st_size, lim.max_bytes);
    }

    size_t size = (size_t)st.st_size;
    /* +1 so that a file that grew since fstat() is noticed rather than cut. */
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return lk_err_set(err, LK_ERR_NOMEM, "cannot allocate %zu bytes for %s", size, path);
    }
    size_t got = 0;
    while (got < size + 1) {
        ssize_t n = read(fd, buf + got, size + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return lk_err_set(err, LK_ERR_IO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got > size) {
        free(buf);
        return lk_err_set(err, LK_ERR_IO, "%s changed size while being read", path);
    }

    int rc = lk_image_decode(buf, got, opts, out, info, err);
    free(buf);
    return rc;
}
