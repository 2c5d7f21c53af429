/*
 * fixture.c — see fixture.h.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "gen.h"

/* Sofas and bean bags share colours on purpose (the guard's job is to keep
 * a beige sofa from returning a beige bean bag). */
const struct fx_product fx_products[] = {
    {"SOFA-BEIGE", "home/furniture/sofas", FX_SOFA, {205, 180, 140}, 89900, 5, "", "", 2},
    {"SOFA-RED", "home/furniture/sofas", FX_SOFA, {190, 30, 35}, 79900, 3, "US", "", 1},
    {"SOFA-BLUE", "home/furniture/sofas", FX_SOFA, {40, 70, 170}, 99900, 7, "EU", "", 1},
    {"SOFA-GREEN", "home/furniture/sofas", FX_SOFA, {40, 140, 60}, 69900, 0, "", "", 1},
    {"SOFA-GREY", "home/furniture/sofas", FX_SOFA, {120, 120, 125}, 59900, 9, "US|EU", "", 1},
    {"SOFA-BROWN", "home/furniture/sofas", FX_SOFA, {110, 70, 40}, 109900, 2, "", "", 1},
    {"BEAN-BEIGE", "home/furniture/beanbags", FX_BEANBAG, {205, 180, 140}, 9900, 12, "", "", 1},
    {"BEAN-RED", "home/furniture/beanbags", FX_BEANBAG, {190, 30, 35}, 8900, 4, "US", "", 1},
    {"BEAN-BLUE", "home/furniture/beanbags", FX_BEANBAG, {40, 70, 170}, 7900, 6, "", "", 1},
    {"BEAN-ORANGE", "home/furniture/beanbags", FX_BEANBAG, {230, 120, 20}, 6900, 8, "", "", 1},
    {"BEAN-PURPLE", "home/furniture/beanbags", FX_BEANBAG, {120, 40, 140}, 9400, 3, "", "", 1},
    {"SHOE-RED", "apparel/shoes", FX_SHOE, {200, 25, 30}, 12900, 10, "", "", 2},
    {"SHOE-BLACK", "apparel/shoes", FX_SHOE, {30, 30, 32}, 11900, 4, "US", "", 1},
    {"SHOE-WHITE", "apparel/shoes", FX_SHOE, {235, 235, 230}, 9900, 6, "", "", 1},
    {"SHOE-YELLOW", "apparel/shoes", FX_SHOE, {230, 200, 30}, 13900, 2, "", "", 1},
    {"SHOE-TEAL", "apparel/shoes", FX_SHOE, {30, 150, 150}, 10900, 0, "", "", 1},
    {"SHOE-PINK", "apparel/shoes", FX_SHOE, {230, 120, 170}, 10400, 5, "", "restricted", 1},
    {"BALL-ORANGE", "toys/balls", FX_BALL, {235, 110, 20}, 1900, 20, "", "", 1},
    {"BALL-BLUE", "toys/balls", FX_BALL, {30, 80, 200}, 1500, 15, "", "", 1},
    {"BALL-GREEN", "toys/balls", FX_BALL, {50, 170, 60}, 1700, 9, "", "", 1},
    {"BALL-WHITE", "toys/balls", FX_BALL, {240, 240, 240}, 2500, 0, "", "", 1},
    {"BALL-RED", "toys/balls", FX_BALL, {210, 30, 40}, 2100, 11, "EU", "", 1},
};
const size_t fx_n_products = sizeof fx_products / sizeof fx_products[0];

size_t fx_find(const char *sku)
{
    for (size_t i = 0; i < fx_n_products; i++)
        if (!strcmp(fx_products[i].sku, sku))
            return i;
    abort();
}

/* The model dir, or NULL when its model.json is missing. */
static const char *model_path(void)
{
    static char dir[4096];
    const char *root = getenv("LK_SOURCE_ROOT");
    snprintf(dir, sizeof dir, "%s/models/mobilenet_v2", root ? root : ".");
    char mj[4200];
    snprintf(mj, sizeof mj, "%s/model.json", dir);
    return access(mj, R_OK) == 0 ? dir : NULL;
}

const char *fx_model_dir(void)
{
    const char *d = model_path();
    if (!d)
        cr_assert_fail("model missing under $LK_SOURCE_ROOT/models/mobilenet_v2 "
                       "(run scripts/setup or models/fetch): these tests need it");
    return d;
}

/* ==== Drawing =========================================================== */

static uint8_t c8(double v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)(v + 0.5);
}

static void px(struct lk_image *im, int x, int y, const uint8_t rgb[3], double shade)
{
    if (x < 0 || y < 0 || (uint32_t)x >= im->width || (uint32_t)y >= im->height)
        return;
    uint8_t *p = im->rgb + ((size_t)y * im->width + (size_t)x) * 3;
    for (int c = 0; c < 3; c++)
        p[c] = c8(rgb[c] * shade);
}

static void box(struct lk_image *im, int x0, int y0, int x1, int y1, const uint8_t rgb[3], double shade)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            px(im, x, y, rgb, shade * (1.0 - 0.15 * (double)(y - y0) / (y1 - y0 + 1)));
}

static void blob(struct lk_image *im, double cx, double cy, double rx, double ry, const uint8_t rgb[3],
                 double shade)
{
    for (int y = (int)(cy - ry); y <= (int)(cy + ry); y++)
        for (int x = (int)(cx - rx); x <= (int)(cx + rx); x++) {
            double dx = (x - cx) / rx, dy = (y - cy) / ry, d2 = dx * dx + dy * dy;
            if (d2 <= 1)
                px(im, x, y, rgb, shade * (1.05 - 0.2 * (dx + dy) * 0.5 - 0.15 * d2));
        }
}

struct lk_image fx_render(size_t i, int variant)
{
    const struct fx_product *p = &fx_products[i];
    const int W = 256;
    struct lk_image im;
    if (p->shape == FX_SHOE) {
        im = gen_product((uint32_t)W, (uint32_t)W, p->rgb, (unsigned)i * 7 + 1);
    } else {
        im = gen_solid((uint32_t)W, (uint32_t)W, 238, 238, 236);
        static const uint8_t dark[3] = {40, 35, 30};
        switch (p->shape) {
        case FX_SOFA:
            box(&im, 40, 70, 216, 140, p->rgb, 0.85);     /* back */
            box(&im, 40, 135, 216, 180, p->rgb, 1.0);     /* seat */
            box(&im, 28, 110, 52, 185, p->rgb, 0.75);     /* arms */
            box(&im, 204, 110, 228, 185, p->rgb, 0.75);
            box(&im, 36, 185, 46, 205, dark, 1.0);        /* legs */
            box(&im, 210, 185, 220, 205, dark, 1.0);
            for (int x = 60; x < 200; x += 46)            /* cushion seams */
                box(&im, x + 40, 140, x + 42, 178, p->rgb, 0.6);
            break;
        case FX_BEANBAG: {
            /* a slumped teardrop with dark wrinkle lines */
            blob(&im, 128, 160, 95, 60, p->rgb, 1.0);
            blob(&im, 120, 105, 45, 55, p->rgb, 0.9);
            for (int k = 0; k < 5; k++)
                for (int t = 0; t < 40; t++)
                    for (int w = 0; w < 3; w++)
                        px(&im, 70 + k * 25 + t / 3, 120 + t + w, dark, 1.0);
            break;
        }
        default: { /* ball: smaller disc with a dark checker of patches */
            blob(&im, 128, 128, 64, 64, p->rgb, 1.0);
            for (int y = 64; y < 192; y++)
                for (int x = 64; x < 192; x++) {
                    double dx = (x - 128) / 64.0, dy = (y - 128) / 64.0;
                    if (dx * dx + dy * dy <= 1 && ((x / 16 + y / 16) % 2 == 0))
                        px(&im, x, y, dark, 1.0);
                }
            break;
        }
        }
        gen_noise(&im, (unsigned)i * 13 + 5, 4);
    }
    if (variant) {
        struct lk_image f = gen_flip_h(&im);
        lk_image_free(&im);
        im = f;
    }
    return im;
}

static struct lk_image distorted(size_t i)
{
    struct lk_image im = fx_render(i, 0);
    struct lk_image c = gen_crop(&im, 6, 8, 244, 244);
    struct lk_image d = gen_scale_brightness(&c, 0.93);
    lk_image_free(&im);
    lk_image_free(&c);
    return d;
}

void fx_query_jpeg(size_t i, uint8_t **buf, size_t *len)
{
    struct lk_image d = distorted(i);
    struct gen_jpeg_opts o = {.quality = 80};
    gen_jpeg(&d, &o, buf, len);
    lk_image_free(&d);
}

void fx_query_png(size_t i, uint8_t **buf, size_t *len)
{
    struct lk_image d = distorted(i);
    struct gen_png_opts o = {.color_type = 2, .bit_depth = 8};
    gen_png(&d, &o, buf, len);
    lk_image_free(&d);
}

/* ==== Files ============================================================= */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

void fx_make_catalog(const char *root)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/images", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/catalog.csv", root);
    FILE *csv = fopen(path, "w");
    cr_assert(csv);
    fprintf(csv, "sku,title,category,price,currency,stock,regions,flags,image\n");
    for (size_t i = 0; i < fx_n_products; i++) {
        const struct fx_product *p = &fx_products[i];
        char imgs[512] = "";
        for (int v = 0; v < p->n_images; v++) {
            struct lk_image im = fx_render(i, v);
            uint8_t *buf;
            size_t len;
            char rel[128];
            if (v == 0) {
                struct gen_png_opts o = {.color_type = 2, .bit_depth = 8};
                gen_png(&im, &o, &buf, &len);
                snprintf(rel, sizeof rel, "%s-%d.png", p->sku, v);
            } else {
                struct gen_jpeg_opts o = {.quality = 92};
                gen_jpeg(&im, &o, &buf, &len);
                snprintf(rel, sizeof rel, "%s-%d.jpg", p->sku, v);
            }
            snprintf(path, sizeof path, "%s/images/%s", root, rel);
            write_file(path, buf, len);
            free(buf);
            lk_image_free(&im);
            size_t n = strlen(imgs);
            snprintf(imgs + n, sizeof imgs - n, "%s%s", v ? "|" : "", rel);
        }
        fprintf(csv, "%s,\"%s product\",%s,%lld.%02lld,USD,%lld,%s,%s,%s\n", p->sku, p->sku, p->category,
                (long long)(p->price_minor / 100), (long long)(p->price_minor % 100), (long long)p->stock,
                p->regions, p->flags, imgs);
    }
    /* A product whose only photo is a corrupt PNG (valid magic, garbage
     * after): imported (the header looks fine) but skipped at embedding. */
    static const uint8_t sig[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *bad;
    size_t bad_len;
    gen_png_header_only(300, 300, &bad, &bad_len);
    (void)sig;
    snprintf(path, sizeof path, "%s/images/broken.png", root);
    write_file(path, bad, bad_len);
    free(bad);
    fprintf(csv, "FX-BROKEN,Broken photo,misc,1.00,USD,1,,,broken.png\n");
    fclose(csv);
}

int fx_build(const char *root, struct lk_build_report *rep, struct lk_err *err)
{
    char cat[4096], images[4096], data[4096];
    snprintf(cat, sizeof cat, "%s/catalog.csv", root);
    snprintf(images, sizeof images, "%s/images", root);
    snprintf(data, sizeof data, "%s/data", root);
    struct lk_build_opts o;
    lk_build_opts_default(&o);
    o.catalog_path = cat;
    o.images_dir = images;
    o.data_dir = data;
    o.model_dir = model_path();
    o.calib_samples = 32;   /* every image */
    if (!o.model_dir)
        return lk_err_set(err, LK_ERR_MODEL, "model missing");
    return lk_index_build(&o, rep, err);
}

static char g_root[4096];

const char *fx_setup(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/lk-search-test-XXXXXX");
    if (!mkdtemp(g_root))
        abort();
    setenv("LK_FX_ROOT", g_root, 1);
    fx_make_catalog(g_root);
    struct lk_build_report rep;
    memset(&rep, 0, sizeof rep);   /* fx_build may fail before lk_index_build fills it */
    struct lk_err err = {0};
    int rc = fx_build(g_root, &rep, &err);
    lk_build_report_free(&rep);
    if (rc != LK_OK) {
        fprintf(stderr, "fixture build failed: %s (%s)\n", lk_status_str(rc), err.msg);
        /* Leave LK_FX_ROOT set: tests then fail on the missing generation. */
    }
    return g_root;
}

const char *fx_root(void)
{
    const char *r = getenv("LK_FX_ROOT");
    cr_assert(r && r[0], "fixture was not built (LK_FX_ROOT unset)");
    return r;
}

const char *fx_data(void)
{
    static char b[4096];
    snprintf(b, sizeof b, "%s/data", fx_root());
    return b;
}

const char *fx_images(void)
{
    static char b[4096];
    snprintf(b, sizeof b, "%s/images", fx_root());
    return b;
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(p);
}

void fx_teardown(void)
{
    if (getenv("LK_FX_KEEP"))
        fprintf(stderr, "fixture kept in %s\n", g_root);
    else if (g_root[0])
        nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct lk_engine *fx_engine(void)
{
    struct lk_engine_opts o;
    lk_engine_opts_default(&o);
    o.data_dir = fx_data();
    o.model_dir = fx_model_dir();
    o.workspaces = 2;
    struct lk_engine *eng = NULL;
    struct lk_err err = {0};
    int rc = lk_engine_open(&o, &eng, &err);
    cr_assert_eq(rc, LK_OK, "engine open: %s", err.msg);
    cr_assert_eq(lk_engine_ready(eng, NULL), LK_OK, "engine not ready (fixture build failed?)");
    return eng;
}
