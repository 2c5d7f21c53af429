/*
 * fixture.h — a small synthetic shop for the search tests, generated at run
 * time (no binary fixtures, nothing from ../shared): product photos drawn
 * as shapes per category (sofas, bean bags, shoes, balls) in distinct
 * colours on a studio background, written as PNG/JPEG with the image
 * tests' generator (tests/image/gen.c), a catalog CSV, and the real build
 * pipeline (lk_index_build) into DATA.
 *
 * The model (models/mobilenet_v2, fetched by scripts/setup) is REQUIRED:
 * fx_model_dir() fails the test when it is missing.
 *
 * The fixture is built once per test executable in the runner process
 * (FX_HOOK_SETUP / FX_HOOK_TEARDOWN install Criterion PRE_ALL/POST_ALL hooks) under a
 * temporary directory published to the test workers in $LK_FX_ROOT.
 */
#ifndef LK_TEST_SEARCH_FIXTURE_H
#define LK_TEST_SEARCH_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/image.h"
#include "lookalike/search.h"

enum fx_shape { FX_SOFA, FX_BEANBAG, FX_SHOE, FX_BALL };

struct fx_product {
    const char *sku;
    const char *category;
    enum fx_shape shape;
    uint8_t rgb[3];
    int64_t price_minor;
    int64_t stock;
    const char *regions;    /* "" = everywhere */
    const char *flags;      /* CSV flags column */
    int n_images;           /* 1 or 2 (second is a mirrored variant) */
};

extern const struct fx_product fx_products[];
extern const size_t fx_n_products;

/* Index of the product with `sku` (aborts when absent). */
size_t fx_find(const char *sku);

/* models/mobilenet_v2 under $LK_SOURCE_ROOT; cr_assert_fail when absent. */
const char *fx_model_dir(void);

/* Render image `variant` (0 or 1) of product i, 256 x 256. */
struct lk_image fx_render(size_t i, int variant);

/* A shopper's copy of product i's photo: cropped by ~5 %, brightness
 * x0.93, JPEG quality 80.  *buf malloc'ed. */
void fx_query_jpeg(size_t i, uint8_t **buf, size_t *len);
/* Same distortions, PNG-encoded. */
void fx_query_png(size_t i, uint8_t **buf, size_t *len);

/* Write ROOT/images/... and ROOT/catalog.csv; plus one corrupt image row
 * (sku FX-BROKEN) so the report has a skip. */
void fx_make_catalog(const char *root);

/* Full build into ROOT/data. */
int fx_build(const char *root, struct lk_build_report *rep, struct lk_err *err);

/* mkdtemp + make + build; returns the root (static buffer). */
const char *fx_setup(void);
/* The root the runner built (from $LK_FX_ROOT). */
const char *fx_root(void);
/* ROOT/data and ROOT/images (static buffers). */
const char *fx_data(void);
const char *fx_images(void);
/* rm -rf ROOT. */
void fx_teardown(void);

/* Open an engine on the fixture. */
struct lk_engine *fx_engine(void);

/* Use both, on separate lines (Criterion names hooks by line number). */
#define FX_HOOK_SETUP ReportHook(PRE_ALL)(struct criterion_test_set *set) { (void)set; fx_setup(); }
#define FX_HOOK_TEARDOWN ReportHook(POST_ALL)(struct criterion_global_stats *st) { (void)st; fx_teardown(); }

#endif
