/*
 * src/cli/cmd_describe.c — `lookalike describe IMAGE...`: run the image
 * pipeline on files and print what it computed, one block per image.
 *
 * Each image is decoded with shrink-on-load (decoded short side >= 384 px by
 * default, enough for the 512 px quality working size), then its quality
 * signals (judged on the original resolution) and colour embedding are
 * computed.  A failing image prints its status name and message and the
 * command moves on; the exit status is 1 if any image failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lookalike/colour.h"
#include "lookalike/image.h"
#include "pcli.h"

#define DESCRIBE_MIN_SIDE_DEFAULT 384u

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
            "usage: lookalike describe [--min-side N | --full] IMAGE...\n"
            "  Decode each JPEG/PNG and print its size, format, EXIF orientation, DCT\n"
            "  scale, quality signals (blur, contrast, background, weak flags) and\n"
            "  colour embedding (dimension, norm, dominant colours).\n"
            "  --min-side N  shrink-on-load: keep the decoded short side >= N px (default %u)\n"
            "  --full        decode at full resolution (same as --min-side 0)\n"
            "  Exit status: 0 all images described, 1 some failed, 2 usage error.\n",
            DESCRIBE_MIN_SIDE_DEFAULT);
}

/* Returns 0 on success, the (negative) status on failure. */
static int describe_one(const char *path, const struct lk_decode_opts *opts)
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
    if (rc == LK_OK)
        rc = lk_colour_embed(&img, emb, &err);
    double t3 = now_ms();
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
    printf("  decoded     %ux%u px, DCT scale 1/%u\n", img.width, img.height, info.scale_denom);

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
    printf("  time        decode %.2f ms, quality %.2f ms, colour %.2f ms\n\n", t1 - t0, t2 - t1, t3 - t2);
    lk_image_free(&img);
    return 0;
}

int lk__cmd_describe(int argc, char **argv)
{
    struct lk_decode_opts opts;
    lk_decode_opts_default(&opts);
    opts.min_side_hint = DESCRIBE_MIN_SIDE_DEFAULT;

    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            describe_usage(stdout);
            return LK_EXIT_OK;
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

    int failed = 0, total = 0;
    for (; i < argc; i++, total++)
        if (describe_one(argv[i], &opts) != 0)
            failed++;
    printf("described %d image%s, %d failed\n", total - failed, total - failed == 1 ? "" : "s", failed);
    return failed ? LK_EXIT_FAILED : LK_EXIT_OK;
}
