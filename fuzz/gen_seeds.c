/*
 * fuzz/gen_seeds.c — writes the binary seed corpora of the fuzz targets:
 * small valid JPEGs and PNGs (every colour model the decoders handle, made
 * with tests/image/gen.c, i.e. libjpeg/libpng's own encoders), small saved
 * indexes (HNSW F32/F16/I8, flat, one with deletions), and multipart bodies
 * carrying an image.  Text seeds (CSV, JSONL, JSON bodies) are committed by
 * hand.  Each file starts with the target's mode byte(s) (see each target).
 *
 * Usage: build-fuzz/gen_seeds fuzz/corpus   (run by fuzz/build.sh users when
 * the formats change; the output is committed, a few KB per file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"
#include "lookalike/index.h"
#include "lookalike/status.h"

static const char *root;

static void put(const char *target, const char *name, const void *pre, size_t npre, const void *d,
                size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/%s", root, target, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(pre, 1, npre, f) != npre || fwrite(d, 1, n, f) != n || fclose(f) != 0) {
        perror(p);
        exit(1);
    }
}

static void images(void)
{
    const uint8_t rgb[3] = {200, 40, 40};
    struct lk_image img = gen_product(24, 16, rgb, 1);
    uint8_t *b;
    size_t n;
    static const struct {
        const char *name;
        struct gen_jpeg_opts o;
    } jp[] = {
        {"rgb.jpg", {.quality = 50}},
        {"progressive.jpg", {.quality = 50, .progressive = 1}},
        {"grey.jpg", {.quality = 50, .space = GEN_GREY}},
        {"cmyk.jpg", {.quality = 50, .space = GEN_CMYK}},
        {"ycck.jpg", {.quality = 50, .space = GEN_YCCK}},
        {"exif6.jpg", {.quality = 50, .exif_orientation = 6}},
        {"exif3_be.jpg", {.quality = 50, .exif_orientation = 3, .exif_big_endian = 1}},
    };
    for (size_t i = 0; i < sizeof jp / sizeof jp[0]; i++) {
        gen_jpeg(&img, &jp[i].o, &b, &n);
        put("fuzz_image_decode", jp[i].name, (const uint8_t[]){(uint8_t)i}, 1, b, n);
        if (i == 0) {
            /* multipart body with this JPEG */
            const char *bd = "XyZzY";
            char head[256], tail[64];
            int hn = snprintf(head, sizeof head,
                              "%s\n--%s\r\nContent-Disposition: form-data; name=\"image\"; "
                              "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
                              bd, bd);
            int tn = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", bd);
            uint8_t *m = malloc((size_t)hn + n + (size_t)tn);
            memcpy(m, head, (size_t)hn);
            memcpy(m + hn, b, n);
            memcpy(m + (size_t)hn + n, tail, (size_t)tn);
            put("fuzz_multipart", "image_jpeg", "", 0, m, (size_t)hn + n + (size_t)tn);
            free(m);
        }
        free(b);
    }
    static const struct {
        const char *name;
        struct gen_png_opts o;
    } pn[] = {
        {"rgb8.png", {.color_type = 2, .bit_depth = 8}},
        {"rgb16.png", {.color_type = 2, .bit_depth = 16}},
        {"grey1.png", {.color_type = 0, .bit_depth = 1}},
        {"palette4.png", {.color_type = 3, .bit_depth = 4}},
        {"rgba_adam7.png", {.color_type = 6, .bit_depth = 8, .interlace = 1}},
        {"greyalpha.png", {.color_type = 4, .bit_depth = 8}},
    };
    uint8_t alpha[24 * 16];
    for (size_t i = 0; i < sizeof alpha; i++)
        alpha[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof pn / sizeof pn[0]; i++) {
        struct gen_png_opts o = pn[i].o;
        if (o.color_type == 4 || o.color_type == 6)
            o.alpha = alpha;
        struct lk_image two = gen_solid(24, 16, 250, 250, 250);
        gen_rect(&two, 4, 4, 12, 10, 20, 90, 200);
        /* palette/1-bit grey: a two-colour image fits any bit depth */
        gen_png(o.color_type == 3 || o.bit_depth < 8 ? &two : &img, &o, &b, &n);
        lk_image_free(&two);
        put("fuzz_image_decode", pn[i].name, (const uint8_t[]){(uint8_t)i}, 1, b, n);
        if (i == 0) {
            const char *bd = "----lookalike0123";
            char head[256], tail[64];
            int hn = snprintf(head, sizeof head,
                              "\"%s\n--%s\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n", bd, bd);
            int tn = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", bd);
            uint8_t *m = malloc((size_t)hn + n + (size_t)tn);
            memcpy(m, head, (size_t)hn);
            memcpy(m + hn, b, n);
            memcpy(m + (size_t)hn + n, tail, (size_t)tn);
            put("fuzz_multipart", "image_png_quoted", "", 0, m, (size_t)hn + n + (size_t)tn);
            free(m);
        }
        free(b);
    }
    lk_image_free(&img);
}

static void one_index(const char *name, enum lk_index_kind kind, enum lk_storage st, enum lk_metric metric,
                      unsigned n, int delete_some)
{
    struct lk_index_params p;
    lk_index_params_default(&p, 4);
    p.kind = kind;
    p.storage = st;
    p.metric = metric;
    p.M = 2;
    p.ef_construction = 8;
    struct lk_index *idx;
    struct lk_err err = {0};
    if (lk_index_new(&p, &idx, &err) != LK_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    for (unsigned i = 0; i < n; i++) {
        float v[4] = {(float)(i % 3), (float)(i % 5) - 2.f, (float)i * 0.1f, 1.f};
        if (lk_index_add(idx, 1000 + i, v, &err) != LK_OK)
            exit(1);
    }
    if (delete_some)
        for (unsigned i = 0; i < n; i += 3)
            lk_index_remove(idx, 1000 + i, &err);
    char tmp[] = "/tmp/lk-seed-XXXXXX";
    int fd = mkstemp(tmp);
    close(fd);
    if (lk_index_save(idx, tmp, &err) != LK_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    lk_index_free(idx);
    FILE *f = fopen(tmp, "rb");
    static uint8_t buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unlink(tmp);
    /* mode 1 (fix CRCs) and mode 3 (fix CRCs + mmap) */
    char nm[64];
    snprintf(nm, sizeof nm, "%s_read", name);
    put("fuzz_index_load", nm, (const uint8_t[]){1}, 1, buf, len);
    snprintf(nm, sizeof nm, "%s_mmap", name);
    put("fuzz_index_load", nm, (const uint8_t[]){3}, 1, buf, len);
}

int main(int argc, char **argv)
{
    root = argc > 1 ? argv[1] : "fuzz/corpus";
    images();
    one_index("hnsw_f32", LK_INDEX_HNSW, LK_STORAGE_F32, LK_METRIC_L2, 12, 0);
    one_index("hnsw_f16_del", LK_INDEX_HNSW, LK_STORAGE_F16, LK_METRIC_COSINE, 12, 1);
    one_index("hnsw_i8_ip", LK_INDEX_HNSW, LK_STORAGE_I8, LK_METRIC_IP, 8, 0);
    one_index("flat", LK_INDEX_FLAT, LK_STORAGE_F32, LK_METRIC_L2, 6, 1);
    one_index("empty", LK_INDEX_HNSW, LK_STORAGE_F32, LK_METRIC_L2, 0, 0);
    return 0;
}
