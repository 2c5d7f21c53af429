/*
 * test_alloc_embed.c — allocation-failure injection in the embedder:
 * learning the fusion parameters (mean + PCA via LAPACKE), saving and
 * loading them, fusing; loading the MobileNetV2 model (lk_cnn_load: model
 * JSON + weights into our buffers, XNNPACK graph), creating a workspace and
 * describing an image.  XNNPACK's and LAPACK's own allocations happen inside
 * shared libraries and are not failed (see alloc_fail.h); ours are.  Like
 * tests/embed/test_cnn.c, the CNN cases need the model fetched by
 * models/fetch (scripts/setup runs it) and fail without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_fail.h"
#include "gen.h"
#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"

#define MAXN 20000

#define D 24
#define NV 40

static float descs[NV * D];

static void make_descs(void)
{
    uint32_t s = 777;
    for (size_t i = 0; i < NV * D; i++) {
        s = s * 1664525u + 1013904223u;
        descs[i] = (float)(s >> 8) / 16777216.0f;   /* post-ReLU: non-negative */
    }
}

struct fuse_ctx {
    char path[256];
    size_t pca;
};

static int op_learn_save_load_fuse(void *ctx, struct lk_err *err)
{
    struct fuse_ctx *c = ctx;
    struct lk_embed_params *p = NULL, *q = NULL;
    int rc = lk_embed_params_learn(descs, NV, D, c->pca, 0.7f, &p, err);
    if (rc == LK_OK)
        rc = lk_embed_params_save(p, c->path, err);
    if (rc == LK_OK)
        rc = lk_embed_params_load(c->path, &q, err);
    if (rc == LK_OK) {
        float colour[LK_COLOUR_DIM] = {0};
        colour[3] = 1.0f;
        float out[D + LK_COLOUR_DIM];
        rc = lk_embed_fuse(q, descs, colour, out, err);
    }
    lk_embed_params_free(p);
    lk_embed_params_free(q);
    return rc;
}

Test(alloc_embed, params_learn_save_load_fuse, .init = make_descs)
{
    struct fuse_ctx c = {.pca = 8};
    snprintf(c.path, sizeof c.path, "/tmp/lk-fault-embed-%d.params", (int)getpid());
    /* LK_ERR_IO is accepted: the save's temporary-file path may be the
     * allocation that fails, reported as an I/O error with errno ENOMEM. */
    af_sweep("params learn (pca)", op_learn_save_load_fuse, &c, MAXN, false, LK_ERR_IO);
    af_sweep("params learn (pca)", op_learn_save_load_fuse, &c, MAXN, true, LK_ERR_IO);
    c.pca = 0;
    af_sweep("params learn (no pca)", op_learn_save_load_fuse, &c, MAXN, false, LK_ERR_IO);
    unlink(c.path);
}

static char model_dir[4096];

static void find_model(void)
{
    const char *root = getenv("LK_SOURCE_ROOT");
    cr_assert(root && *root, "LK_SOURCE_ROOT is not set (run through meson test)");
    snprintf(model_dir, sizeof model_dir, "%s/models/mobilenet_v2", root);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.json", model_dir);
    cr_assert(access(p, R_OK) == 0, "model missing: %s (run models/fetch, which scripts/setup calls)", p);
}

static int op_cnn_load(void *ctx, struct lk_err *err)
{
    (void)ctx;
    struct lk_cnn_model *m = NULL;
    int rc = lk_cnn_load(model_dir, &m, err);
    if (rc == LK_OK)
        lk_cnn_free(m);
    else
        cr_assert_null(m);
    return rc;
}

/* A failed model load is reported as LK_ERR_MODEL by some paths (XNNPACK
 * status xnn_status_out_of_memory folds into it); accepted as clean. */
Test(alloc_embed, cnn_load, .init = find_model, .timeout = 550)
{
    unsigned long n = af_sweep("cnn load", op_cnn_load, NULL, MAXN, false, LK_ERR_MODEL);
    cr_log_info("cnn load: %lu allocations", n);
}

struct desc_ctx {
    struct lk_cnn_model *m;
    struct lk_image img;
};

static int op_describe(void *ctx, struct lk_err *err)
{
    struct desc_ctx *c = ctx;
    struct lk_cnn_workspace *ws = NULL;
    int rc = lk_cnn_workspace_new(c->m, &ws, err);
    if (rc == LK_OK) {
        float out[LK_EMBED_DIM_MAX];
        rc = lk_cnn_describe(ws, &c->img, out, err);
    }
    lk_cnn_workspace_free(ws);
    return rc;
}

Test(alloc_embed, cnn_workspace_and_describe, .init = find_model, .timeout = 550)
{
    struct desc_ctx c;
    struct lk_err err = {0};
    cr_assert_eq(lk_cnn_load(model_dir, &c.m, &err), LK_OK, "%s", err.msg);
    const uint8_t rgb[3] = {40, 160, 90};
    c.img = gen_product(320, 240, rgb, 5);
    af_sweep("cnn workspace+describe", op_describe, &c, MAXN, false, LK_ERR_MODEL);
    af_sweep("cnn workspace+describe", op_describe, &c, MAXN, true, LK_ERR_MODEL);
    lk_image_free(&c.img);
    lk_cnn_free(c.m);
}
