/*
 * tests/image/gen.c — test-only image and file generator (see gen.h).
 */
#include "gen.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static struct lk_image alloc_img(uint32_t w, uint32_t h)
{
    struct lk_image img = {w, h, xmalloc((size_t)w * h * 3)};
    return img;
}

static uint8_t clamp8(double v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)(v + 0.5);
}

/* ==== Rasters =========================================================== */

struct lk_image gen_solid(uint32_t w, uint32_t h, uint8_t r, uint8_t g, uint8_t b)
{
    struct lk_image img = alloc_img(w, h);
    gen_rect(&img, 0, 0, w, h, r, g, b);
    return img;
}

void gen_rect(struct lk_image *img, uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, uint8_t r,
              uint8_t g, uint8_t b)
{
    if (x1 > img->width)
        x1 = img->width;
    if (y1 > img->height)
        y1 = img->height;
    for (uint32_t y = y0; y < y1; y++)
        for (uint32_t x = x0; x < x1; x++) {
            uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
}

struct lk_image gen_gradient(uint32_t w, uint32_t h)
{
    struct lk_image img = alloc_img(w, h);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = clamp8(255.0 * x / (w > 1 ? w - 1 : 1));
            p[1] = clamp8(255.0 * y / (h > 1 ? h - 1 : 1));
            p[2] = clamp8(127.5 * ((double)x / w + (double)y / h));
        }
    return img;
}

static unsigned lcg(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

void gen_noise(struct lk_image *img, unsigned seed, int amp)
{
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++) {
        int d = (int)(lcg(&seed) % (unsigned)(2 * amp + 1)) - amp;
        int v = img->rgb[i] + d;
        img->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

struct lk_image gen_product(uint32_t w, uint32_t h, const uint8_t rgb[3], unsigned seed)
{
    struct lk_image img = gen_solid(w, h, 238, 238, 236);   /* studio background */
    double cx = w * 0.5, cy = h * 0.52, rx = w * 0.36, ry = h * 0.26;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            double dx = (x - cx) / rx, dy = (y - cy) / ry;
            double d2 = dx * dx + dy * dy;
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            if (d2 <= 1) {
                /* body with shading: brighter top-left, darker bottom-right */
                double shade = 1.05 - 0.25 * (dx + dy) * 0.5 - 0.15 * d2;
                for (int c = 0; c < 3; c++)
                    p[c] = clamp8(rgb[c] * shade);
                /* a darker sole band */
                if (dy > 0.6)
                    for (int c = 0; c < 3; c++)
                        p[c] = clamp8(p[c] * 0.55 + 30);
                /* laces: small grey stripes near the top */
                if (dy < -0.3 && dy > -0.7 && ((x / 4) % 3 == 0))
                    for (int c = 0; c < 3; c++)
                        p[c] = 200;
            } else if (d2 <= 1.15 && y > cy) {
                /* soft shadow on the floor */
                for (int c = 0; c < 3; c++)
                    p[c] = clamp8(p[c] * 0.88);
            }
        }
    gen_noise(&img, seed, 4);
    return img;
}

double gen_mad(const struct lk_image *a, const struct lk_image *b)
{
    if (a->width != b->width || a->height != b->height)
        return -1;
    size_t n = (size_t)a->width * a->height * 3;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += abs(a->rgb[i] - b->rgb[i]);
    return s / (double)n;
}

struct lk_image gen_flip_h(const struct lk_image *img)
{
    struct lk_image o = alloc_img(img->width, img->height);
    for (uint32_t y = 0; y < img->height; y++)
        for (uint32_t x = 0; x < img->width; x++)
            memcpy(o.rgb + ((size_t)y * img->width + x) * 3,
                   gen_px(img, img->width - 1 - x, y), 3);
    return o;
}

struct lk_image gen_scale_brightness(const struct lk_image *img, double f)
{
    struct lk_image o = alloc_img(img->width, img->height);
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++)
        o.rgb[i] = clamp8(img->rgb[i] * f);
    return o;
}

struct lk_image gen_crop(const struct lk_image *img, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h)
{
    struct lk_image o = alloc_img(w, h);
    for (uint32_t y = 0; y < h; y++)
        memcpy(o.rgb + (size_t)y * w * 3, gen_px(img, x0, y0 + y), (size_t)w * 3);
    return o;
}

/* ==== JPEG ============================================================== */

static void put16(uint8_t *p, unsigned v, int be)
{
    if (be) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
    else { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
}

static void put32(uint8_t *p, uint32_t v, int be)
{
    if (be) { put16(p, v >> 16, 1); put16(p + 2, v & 0xffff, 1); }
    else { put16(p, v & 0xffff, 0); put16(p + 2, v >> 16, 0); }
}

/* "Exif\0\0" + TIFF header + IFD0 with two entries: Make (ASCII, inline)
 * and Orientation (SHORT). */
static size_t build_exif(uint8_t *b, int orientation, int be)
{
    memcpy(b, "Exif\0\0", 6);
    uint8_t *t = b + 6;
    t[0] = t[1] = be ? 'M' : 'I';
    put16(t + 2, 42, be);
    put32(t + 4, 8, be);
    put16(t + 8, 2, be);
    uint8_t *e = t + 10;
    put16(e, 0x010F, be);       /* Make */
    put16(e + 2, 2, be);        /* ASCII */
    put32(e + 4, 4, be);
    memcpy(e + 8, "Lka", 4);
    e += 12;
    put16(e, 0x0112, be);       /* Orientation */
    put16(e + 2, 3, be);        /* SHORT */
    put32(e + 4, 1, be);
    put16(e + 8, (unsigned)orientation, be);
    put16(e + 10, 0, be);
    put32(e + 12, 0, be);       /* next IFD: none */
    return 6 + 10 + 24 + 4;
}

void gen_jpeg(const struct lk_image *img, const struct gen_jpeg_opts *o, uint8_t **buf, size_t *len)
{
    static const struct gen_jpeg_opts defaults = {0};
    if (!o)
        o = &defaults;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    jpeg_mem_dest(&c, &out, &outlen);

    c.image_width = img->width;
    c.image_height = img->height;
    int comps;
    switch (o->space) {
    case GEN_GREY: comps = 1; c.in_color_space = JCS_GRAYSCALE; break;
    case GEN_CMYK:
    case GEN_YCCK: comps = 4; c.in_color_space = JCS_CMYK; break;
    default: comps = 3; c.in_color_space = JCS_RGB; break;
    }
    c.input_components = comps;
    jpeg_set_defaults(&c);
    if (o->space == GEN_CMYK)
        jpeg_set_colorspace(&c, JCS_CMYK);
    if (o->space == GEN_YCCK)
        jpeg_set_colorspace(&c, JCS_YCCK);
    if (o->space == GEN_CMYK && o->plain_cmyk)
        c.write_Adobe_marker = FALSE;
    jpeg_set_quality(&c, o->quality ? o->quality : 90, TRUE);
    if (o->progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (o->exif_orientation) {
        uint8_t exif[64];
        size_t n = build_exif(exif, o->exif_orientation, o->exif_big_endian);
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, (unsigned)n);
    }

    uint8_t *row = xmalloc((size_t)img->width * 4);
    while (c.next_scanline < c.image_height) {
        const uint8_t *s = img->rgb + (size_t)c.next_scanline * img->width * 3;
        for (uint32_t x = 0; x < img->width; x++) {
            int r = s[3 * x], g = s[3 * x + 1], b = s[3 * x + 2];
            if (comps == 1) {
                row[x] = (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
            } else if (comps == 3) {
                memcpy(row + 3 * x, s + 3 * x, 3);
            } else {
                /* ink with grey-component replacement: K = 1 - max(R,G,B) */
                int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
                int k = 255 - mx, cy = 0, m = 0, ye = 0;
                if (mx > 0) {
                    cy = (mx - r) * 255 / mx;
                    m = (mx - g) * 255 / mx;
                    ye = (mx - b) * 255 / mx;
                }
                int inv = !(o->space == GEN_CMYK && o->plain_cmyk);
                row[4 * x] = (uint8_t)(inv ? 255 - cy : cy);
                row[4 * x + 1] = (uint8_t)(inv ? 255 - m : m);
                row[4 * x + 2] = (uint8_t)(inv ? 255 - ye : ye);
                row[4 * x + 3] = (uint8_t)(inv ? 255 - k : k);
            }
        }
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    free(row);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    /* jpeg_mem_dest's buffer comes from malloc; hand it over. */
    *buf = out;
    *len = outlen;
}

void gen_jpeg_insert_app1(uint8_t **buf, size_t *len, const uint8_t *payload, size_t n)
{
    uint8_t *o = xmalloc(*len + n + 4);
    memcpy(o, *buf, 2);                 /* SOI */
    o[2] = 0xFF;
    o[3] = 0xE1;
    o[4] = (uint8_t)((n + 2) >> 8);
    o[5] = (uint8_t)(n + 2);
    memcpy(o + 6, payload, n);
    memcpy(o + 6 + n, *buf + 2, *len - 2);
    free(*buf);
    *buf = o;
    *len += n + 4;
}

/* ==== PNG =============================================================== */

struct membuf {
    uint8_t *p;
    size_t len, cap;
};

static void mem_write(png_structp png, png_bytep data, size_t n)
{
    struct membuf *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->p = realloc(m->p, m->cap);
        if (!m->p)
            abort();
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

void gen_png(const struct lk_image *img, const struct gen_png_opts *o, uint8_t **buf, size_t *len)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    struct membuf m = {0};
    uint32_t w = img->width, h = img->height;
    int ct = o->color_type, depth = o->bit_depth ? o->bit_depth : 8;
    uint8_t **rows = xmalloc(sizeof *rows * h);
    size_t rowbytes = (size_t)w * 4 * 2;
    for (uint32_t y = 0; y < h; y++)
        rows[y] = xmalloc(rowbytes);

    if (setjmp(png_jmpbuf(png)))
        abort();
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, ct, o->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);

    png_color palette[256];
    uint8_t trns[256];
    int npal = 0;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        /* Palette of the distinct (colour, alpha) pairs; tests keep it small. */
        for (uint32_t i = 0; i < w * h; i++) {
            const uint8_t *p = img->rgb + 3 * i;
            uint8_t a = o->alpha ? o->alpha[i] : 255;
            int k = 0;
            while (k < npal && !(palette[k].red == p[0] && palette[k].green == p[1] &&
                                 palette[k].blue == p[2] && trns[k] == a))
                k++;
            if (k == npal) {
                if (npal == (1 << depth))
                    abort();
                palette[npal] = (png_color){p[0], p[1], p[2]};
                trns[npal++] = a;
            }
        }
        png_set_PLTE(png, info, palette, npal);
        if (o->alpha)
            png_set_tRNS(png, info, trns, npal, NULL);
    }
    png_write_info(png, info);
    if (depth < 8)
        png_set_packing(png);   /* we hand libpng one sample per byte */

    for (uint32_t y = 0; y < h; y++) {
        uint8_t *r = rows[y];
        size_t k = 0;
        for (uint32_t x = 0; x < w; x++) {
            const uint8_t *p = gen_px(img, x, y);
            uint8_t a = o->alpha ? o->alpha[(size_t)y * w + x] : 255;
            uint8_t s[4];
            int ns = 0;
            switch (ct) {
            case PNG_COLOR_TYPE_GRAY: s[ns++] = p[0]; break;
            case PNG_COLOR_TYPE_GRAY_ALPHA: s[ns++] = p[0]; s[ns++] = a; break;
            case PNG_COLOR_TYPE_RGB: s[ns++] = p[0]; s[ns++] = p[1]; s[ns++] = p[2]; break;
            case PNG_COLOR_TYPE_RGB_ALPHA:
                s[ns++] = p[0]; s[ns++] = p[1]; s[ns++] = p[2]; s[ns++] = a; break;
            default: { /* palette index */
                int idx = 0;
                while (!(palette[idx].red == p[0] && palette[idx].green == p[1] &&
                         palette[idx].blue == p[2] && trns[idx] == a))
                    idx++;
                s[ns++] = (uint8_t)idx;
            }
            }
            for (int i = 0; i < ns; i++) {
                if (depth == 16) {
                    /* 16-bit big-endian: v * 257 maps 0..255 onto 0..65535 exactly */
                    r[k++] = s[i];
                    r[k++] = s[i];
                } else if (depth < 8 && ct != PNG_COLOR_TYPE_PALETTE) {
                    r[k++] = (uint8_t)(s[i] >> (8 - depth));
                } else {
                    r[k++] = s[i];
                }
            }
        }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    for (uint32_t y = 0; y < h; y++)
        free(rows[y]);
    free(rows);
    *buf = m.p;
    *len = m.len;
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

static size_t put_chunk(uint8_t *o, const char *type, const uint8_t *data, uint32_t n)
{
    put32(o, n, 1);
    memcpy(o + 4, type, 4);
    if (n)
        memcpy(o + 8, data, n);
    put32(o + 8 + n, crc32_png(o + 4, 4 + n), 1);
    return 12 + n;
}

void gen_png_header_only(uint32_t w, uint32_t h, uint8_t **buf, size_t *len)
{
    uint8_t *o = xmalloc(128);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    memcpy(o, sig, 8);
    size_t k = 8;
    uint8_t ihdr[13];
    put32(ihdr, w, 1);
    put32(ihdr + 4, h, 1);
    ihdr[8] = 8;    /* depth */
    ihdr[9] = 2;    /* RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    k += put_chunk(o + k, "IHDR", ihdr, 13);
    /* zlib stream of a few zero bytes (stored block), far less than the image */
    static const uint8_t idat[] = {0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0x00, 0x04, 0x00, 0x01};
    k += put_chunk(o + k, "IDAT", idat, sizeof idat);
    k += put_chunk(o + k, "IEND", NULL, 0);
    *buf = o;
    *len = k;
}

char *gen_tempfile(const void *data, size_t len)
{
    char *path = xmalloc(64);
    snprintf(path, 64, "/tmp/lk-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    if (len && write(fd, data, len) != (ssize_t)len)
        abort();
    close(fd);
    return path;
}
