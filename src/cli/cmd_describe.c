/*
 * src/cli/cmd_describe.c — `lookalike describe IMAGE...`: run the image
 * pipeline on files and print what it computed, one block per image.
 *
 * Each image is decoded with shrink-on-load (decoded short side >= 384 px by
 * default, enough for the 512 px quality working size), then its quality
 * signals (judged on the original resolution) and colour embedding are
 * computed.  A failing image prints its status name and message and the
 * command moves on; the exit status is 1 if any image failed.
 *
 * The colour histogram and the learned descriptor (MobileNetV2) come from
 * lk_embed_describe(), the analysis the index and the query path use, and
 * the fused product embedding from lk_embed_fuse().  The model directory
 * is --models DIR, else $LOOKALIKE_MODELS, else the source tree's
 * models/mobilenet_v2 (LK_DEFAULT_MODEL_DIR, set by meson).  Without
 * --params FILE (catalog statistics saved by lk_embed_params_save()) the
 * fused embedding uses catalog-free params (mean 0, no PCA).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lookalike/colour.h"
#include "lookalike/embed.h"
#include "lookalike/image.h"
#include "pcli.h"

#define DESCRIBE_MIN_SIDE_DEFAULT 384u
#ifndef LK_DEFAULT_MODEL_DIR
#define LK_DEFAULT_MODEL_DIR "models/mobilenet_v2"
#endif

/* The learned half of describe: one model + workspace for the command. */
struct describe_cnn {
    struct lk_cnn_model *model;
    struct lk_cnn_workspace *ws;
    struct lk_embed_params *params;
    float *desc, *fused;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *colour_model_name(enum lk_image_colour c)
{
    switch (c) {
    case LK_COLOUR_MODEL_RGB: return "RGB";
    case LK_COLOUR_MODEL_GREY: return "greyscale";
    case LK_COLOUR_MODEL_PALETTE: return "palette";
    case LK_COLOUR_MODEL_CMYK: return "CMYK";
    case LK_COLOUR_MODEL_YCCK: return "YCCK";
    }
    return "?";
}

static void describe_usage(FILE *f)
{
    fprintf(f,
            "usage: lookalike describe [--min-side N | --full] [--models DIR] [--params FILE]\n"
            "                          [--precision fp32|int8] IMAGE...\n"
            "  Decode each JPEG/PNG and print its size, format, EXIF orientation, DCT\n"
            "  scale, quality signals (blur, contrast, background, weak flags) and\n"
            "  colour embedding (dimension, norm, dominant colours), CNN descriptor and\n"
            "  fused embedding (dimension, norm).\n"
            "  --min-side N  shrink-on-load: keep the decoded short side >= N px (default %u)\n"
            "  --full        decode at full resolution (same as --min-side 0)\n"
            "  --models DIR  MobileNetV2 model directory (default $LOOKALIKE_MODELS, else\n"
            "                %s)\n"
            "  --params FILE fused-embedding params learned from a catalog (default: none)\n"
            "  --precision fp32|int8  CNN arithmetic (default: the params' precision, else int8)\n"
            "  Exit status: 0 all images described, 1 some failed, 2 usage error.\n",
            DESCRIBE_MIN_SIDE_DEFAULT, LK_DEFAULT_MODEL_DIR);
}

static double l2_norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Returns 0 on success, the (negative) status on failure. */
static int describe_one(const char *path, const struct lk_decode_opts *opts, struct describe_cnn *cnn)
{
    struct lk_err err = {0};
    struct lk_image img = {0};
    struct lk_image_info info = {0};
    struct lk_image_quality q = {0};
    float emb[LK_COLOUR_DIM];

    printf("%s\n", path);
    double t0 = now_ms();
    int rc = lk_image_load_file(path, opts, &img, &info, &err);
    double t1 = now_ms();
    if (rc == LK_OK)
        rc = lk_image_quality_orig(&img, info.orig_width, info.orig_height, &q, &err);
    double t2 = now_ms();
    /* The same analysis as the index and the query path: one resize to the
     * network input, then CNN descriptor and colour histogram from it. */
    if (rc == LK_OK)
        rc = lk_embed_describe(cnn->model, cnn->ws, &img, cnn->desc, emb, &err);
    double t3 = now_ms();
    if (rc == LK_OK)
        rc = lk_embed_fuse(cnn->params, cnn->desc, emb, cnn->fused, &err);
    if (rc != LK_OK) {
        printf("  error       %s (%d): %s\n\n", lk_status_str(rc), rc, err.msg);
        lk_image_free(&img);
        return rc;
    }

    printf("  format      %s, %s, %d-bit%s%s%s\n", lk_image_format_name(info.format),
           colour_model_name(info.colour), info.bit_depth,
           info.progressive ? (info.format == LK_FORMAT_PNG ? ", interlaced" : ", progressive") : "",
           info.has_alpha ? ", alpha (composited over white)" : "",
           info.adobe_inverted ? ", Adobe inverted" : "");
    printf("  size        %ux%u px, EXIF orientation %d\n", info.orig_width, info.orig_height,
           info.exif_orientation);
    printf("  decoded     %ux%u px, DCT scale %u/%u\n", img.width, img.height, info.scale_num, info.scale_denom);

    char flags[64];
    printf("  quality     blur %.1f, contrast %.1f, border uniformity %.2f (%s background #%02x%02x%02x)\n",
           q.blur, q.contrast, q.border_uniformity, q.plain_background ? "plain" : "not plain",
           q.background[0], q.background[1], q.background[2]);
    printf("  weak        %s\n", lk_weak_flags_str(q.weak_flags, flags, sizeof flags));

    double norm = 0;
    for (int i = 0; i < LK_COLOUR_DIM; i++)
        norm += (double)emb[i] * emb[i];
    char colours[160];
    printf("  colour      dim %d, L2 norm %.6f: %s\n", LK_COLOUR_DIM, sqrt(norm),
           lk_colour_summary(emb, 4, colours, sizeof colours));
    printf("  cnn         dim %zu (MobileNetV2 %s, %s, global average pooling), L2 norm %.6f\n",
           lk_cnn_dim(cnn->model), lk_cnn_layer(cnn->model), lk_cnn_precision_name(lk_cnn_precision(cnn->model)),
           l2_norm(cnn->desc, lk_cnn_dim(cnn->model)));
    printf("  fused       dim %zu (cnn %zu + colour %d, w %.2f), L2 norm %.6f\n", lk_embed_fused_dim(cnn->params),
           lk_embed_cnn_out_dim(cnn->params), LK_COLOUR_DIM, (double)lk_embed_w(cnn->params),
           l2_norm(cnn->fused, lk_embed_fused_dim(cnn->params)));
    printf("  time        decode %.2f ms, quality %.2f ms, resize + cnn + colour %.2f ms\n\n", t1 - t0,
           t2 - t1, t3 - t2);
    lk_image_free(&img);
    return 0;
}

int lk__cmd_describe(int argc, char **argv)
{
    struct lk_decode_opts opts;
    lk_decode_opts_default(&opts);
    opts.min_side_hint = DESCRIBE_MIN_SIDE_DEFAULT;

    const char *models = getenv("LOOKALIKE_MODELS");
    const char *params_path = NULL;
    enum lk_cnn_precision precision = LK_CNN_PRECISION_DEFAULT;
    int precision_set = 0;
    if (!models || !*models)
        models = LK_DEFAULT_MODEL_DIR;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            describe_usage(stdout);
            return LK_EXIT_OK;
        } else if (!strcmp(argv[i], "--models") && i + 1 < argc) {
            models = argv[++i];
        } else if (!strcmp(argv[i], "--params") && i + 1 < argc) {
            params_path = argv[++i];
        } else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            struct lk_err pe = {0};
            if (lk_cnn_precision_parse(argv[++i], &precision, &pe) != LK_OK) {
                fprintf(stderr, "lookalike describe: %s\n", pe.msg);
                return LK_EXIT_USAGE;
            }
            precision_set = 1;
        } else if (!strcmp(argv[i], "--full")) {
            opts.min_side_hint = 0;
        } else if (!strcmp(argv[i], "--min-side") && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || end == argv[i] || v > LK_IMAGE_MAX_SIDE) {
                fprintf(stderr, "lookalike describe: bad --min-side '%s'\n", argv[i]);
                return LK_EXIT_USAGE;
            }
            opts.min_side_hint = (uint32_t)v;
        } else {
            fprintf(stderr, "lookalike describe: unknown option '%s'\n", argv[i]);
            describe_usage(stderr);
            return LK_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        describe_usage(stderr);
        return LK_EXIT_USAGE;
    }

    struct describe_cnn cnn = {0};
    struct lk_err err = {0};
    const char *hint = "";
    /* Params first: a catalog's params say which precision its vectors
     * were computed in, and describe must compute the same ones. */
    int rc = params_path ? lk_embed_params_load(params_path, &cnn.params, &err) : LK_OK;
    if (rc == LK_OK && cnn.params && !precision_set)
        precision = lk_embed_cnn_precision(cnn.params);
    if (rc == LK_OK) {
        struct lk_cnn_options mo;
        lk_cnn_options_init(&mo);
        mo.precision = precision;
        rc = lk_cnn_load_opts(models, &mo, &cnn.model, &err);
        if (rc != LK_OK)
            hint = "; pass --models DIR or set LOOKALIKE_MODELS";
    }
    if (rc == LK_OK)
        rc = lk_cnn_workspace_new(cnn.model, &cnn.ws, &err);
    if (rc == LK_OK && !cnn.params) {
        rc = lk_embed_params_identity(lk_cnn_dim(cnn.model), LK_EMBED_W_DEFAULT, &cnn.params, &err);
        if (rc == LK_OK)
            rc = lk_embed_params_set_cnn_precision(cnn.params, precision, &err);
    }
    if (rc == LK_OK && lk_embed_cnn_precision(cnn.params) != precision)
        rc = lk_err_set(&err, LK_ERR_FORMAT, "%s is for %s descriptors, --precision asks for %s", params_path,
                        lk_cnn_precision_name(lk_embed_cnn_precision(cnn.params)), lk_cnn_precision_name(precision));
    if (rc == LK_OK && lk_embed_cnn_dim(cnn.params) != lk_cnn_dim(cnn.model))
        rc = lk_err_set(&err, LK_ERR_FORMAT, "%s is for a %zu-d descriptor, the model gives %zu", params_path,
                        lk_embed_cnn_dim(cnn.params), lk_cnn_dim(cnn.model));
    if (rc == LK_OK) {
        cnn.desc = malloc(lk_cnn_dim(cnn.model) * sizeof *cnn.desc);
        cnn.fused = malloc(lk_embed_fused_dim(cnn.params) * sizeof *cnn.fused);
        if (!cnn.desc || !cnn.fused)
            rc = lk_err_set(&err, LK_ERR_NOMEM, "out of memory");
    }
    int failed = 0, total = 0;
    if (rc != LK_OK) {
        fprintf(stderr, "lookalike describe: %s (%s)%s\n", err.msg, lk_status_str(rc), hint);
        failed = 1;
    } else {
        for (; i < argc; i++, total++)
            if (describe_one(argv[i], &opts, &cnn) != 0)
                failed++;
        printf("described %d image%s, %d failed\n", total - failed, total - failed == 1 ? "" : "s", failed);
    }
    free(cnn.desc);
    free(cnn.fused);
    lk_embed_params_free(cnn.params);
    lk_cnn_workspace_free(cnn.ws);
    lk_cnn_free(cnn.model);
    return failed ? LK_EXIT_FAILED : LK_EXIT_OK;
}
