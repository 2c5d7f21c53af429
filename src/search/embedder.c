/*
 * embedder.c — one photo to one fused embedding, the same way for the
 * index build, incremental adds and shopper queries (so a catalog photo
 * uploaded as a query lands on its own vector): decode with the shared
 * limits and shrink-on-load (LK__DECODE_MIN_SIDE), MobileNetV2 descriptor
 * and colour histogram from one resized copy (lk_embed_describe), fusion
 * with the generation's params (lk_embed_fuse).
 *
 * A workspace (struct lk__ws) is one thread's CNN runtime plus scratch
 * vectors, allocated once so the query path does not allocate per request
 * beyond the decoded image.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psearch.h"

int lk__ws_new(struct lk_cnn_model *m, struct lk__ws **out, struct lk_err *err)
{
    struct lk__ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    int rc = lk_cnn_workspace_new(m, &ws->cnn, err);
    if (rc != LK_OK) {
        free(ws);
        return rc;
    }
    ws->model = m;
    ws->cnn_dim = lk_cnn_dim(m);
    size_t vdim = LK_EMBED_DIM_MAX + LK_COLOUR_DIM;
    ws->raw = malloc(ws->cnn_dim * sizeof *ws->raw);
    ws->colour = malloc(LK_COLOUR_DIM * sizeof *ws->colour);
    ws->vec = malloc(vdim * sizeof *ws->vec);
    ws->vec2 = malloc(vdim * sizeof *ws->vec2);
    ws->vec3 = malloc(vdim * sizeof *ws->vec3);
    ws->hits = malloc(LK__HITS_MAX * sizeof *ws->hits);
    ws->hits2 = malloc(LK__HITS_MAX * sizeof *ws->hits2);
    if (!ws->raw || !ws->colour || !ws->vec || !ws->vec2 || !ws->vec3 || !ws->hits || !ws->hits2) {
        lk__ws_free(ws);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    *out = ws;
    return LK_OK;
}

void lk__ws_free(struct lk__ws *ws)
{
    if (!ws)
        return;
    lk_cnn_workspace_free(ws->cnn);
    free(ws->raw);
    free(ws->colour);
    free(ws->vec);
    free(ws->vec2);
    free(ws->vec3);
    free(ws->hits);
    free(ws->hits2);
    free(ws);
}

void lk__decode_opts(struct lk_decode_opts *o, size_t max_bytes, uint64_t max_pixels)
{
    lk_decode_opts_default(o);
    if (max_bytes)
        o->max_bytes = max_bytes;
    if (max_pixels)
        o->max_pixels = max_pixels;
    o->min_side_hint = LK__DECODE_MIN_SIDE;
}

int lk__describe(struct lk__ws *ws, const struct lk_image *img, struct lk_err *err)
{
    return lk_embed_describe(ws->model, ws->cnn, img, ws->raw, ws->colour, err);
}

int lk__skip_reason(int rc)
{
    switch (rc) {
    case LK_ERR_IO:
    case LK_ERR_NOT_FOUND:
    case LK_ERR_INVALID_ARG:
        return LK_SKIP_IO;
    case LK_ERR_UNSUPPORTED_FORMAT:
        return LK_SKIP_FORMAT;
    case LK_ERR_CORRUPT:
    case LK_ERR_TRUNCATED:
        return LK_SKIP_CORRUPT;
    case LK_ERR_DIMENSIONS:
    case LK_ERR_TOO_LARGE:
        return LK_SKIP_DIMENSIONS;
    default:
        return LK_SKIP_EMBED;
    }
}

const char *lk_skip_reason_str(int reason)
{
    static const char *const names[LK_SKIP_REASON_COUNT] = {
        "unreadable", "unsupported_format", "corrupt", "too_large", "embed_failed",
    };
    return reason >= 0 && reason < LK_SKIP_REASON_COUNT ? names[reason] : "unknown";
}

int lk__image_path(const char *images_dir, const char *rel, char *out, size_t out_size,
                   struct lk_err *err)
{
    if (!images_dir || !images_dir[0])
        return lk_err_set(err, LK_ERR_STATE, "no images directory configured");
    if (!rel || !rel[0])
        return lk_err_set(err, LK_ERR_INVALID_ARG, "empty image path");
    size_t dl = strlen(images_dir);
    while (dl > 1 && images_dir[dl - 1] == '/')
        dl--;
    if (rel[0] == '/') {
        /* Absolute: accepted only inside the images directory. */
        if (strncmp(rel, images_dir, dl) != 0 || rel[dl] != '/')
            return lk_err_set(err, LK_ERR_INVALID_ARG, "image path must lie inside the images directory");
        rel += dl + 1;
    }
    /* No ".." segment anywhere. */
    for (const char *p = rel; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return lk_err_set(err, LK_ERR_INVALID_ARG, "image path must not contain '..'");
        p += n;
        while (*p == '/')
            p++;
    }
    int n = snprintf(out, out_size, "%.*s/%s", (int)dl, images_dir, rel);
    if (n < 0 || (size_t)n >= out_size)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "image path too long");
    return LK_OK;
}

int lk__embed_file(struct lk__ws *ws, const struct lk_embed_params *params, const char *images_dir,
                   const char *rel, float *out, unsigned *weak, struct lk_err *err)
{
    char path[PATH_MAX];
    int rc = lk__image_path(images_dir, rel, path, sizeof path, err);
    if (rc != LK_OK)
        return rc;
    struct lk_decode_opts o;
    lk__decode_opts(&o, 0, 0);
    struct lk_image img = {0};
    struct lk_image_info info;
    rc = lk_image_load_file(path, &o, &img, &info, err);
    if (rc != LK_OK) {
        /* Keep file-system paths out of messages that may reach clients. */
        return lk_err_set(err, rc, "image '%.200s': %s", rel, lk_status_str(rc));
    }
    if (weak) {
        struct lk_image_quality q;
        *weak = lk_image_quality_orig(&img, info.orig_width, info.orig_height, &q, NULL) == LK_OK
                    ? q.weak_flags : 0;
    }
    rc = lk__describe(ws, &img, err);
    lk_image_free(&img);
    if (rc != LK_OK)
        return rc;
    return lk_embed_fuse(params, ws->raw, ws->colour, out, err);
}
