/*
 * models/calibrate.c — write a model's int8 calibration file: run the FP32
 * network (cut at --layer, default out_relu so every layer gets a range) on
 * every PNG/JPEG under --images (sorted by path, so the output is
 * reproducible) and save the per-tensor min/max with
 * lk_cnn_calibrator_save().  A dev tool run by models/gen_calibration.sh;
 * its output (models/mobilenet_v2/calibration.json) is committed.
 *
 *   calibrate --model DIR --images DIR --out FILE [--layer NAME] [--limit N]
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lookalike/embed.h"
#include "lookalike/image.h"

static char **paths;
static size_t n_paths, cap_paths;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)ftw;
    const char *dot = strrchr(path, '.');
    if (type != FTW_F || !dot || (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg")))
        return 0;
    if (n_paths == cap_paths) {
        cap_paths = cap_paths ? 2 * cap_paths : 256;
        char **p = realloc(paths, cap_paths * sizeof *p);
        if (!p)
            return 1;
        paths = p;
    }
    return (paths[n_paths++] = strdup(path)) == NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *images = NULL, *out = NULL, *layer = "out_relu";
    size_t limit = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--images") && i + 1 < argc) images = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc) layer = argv[++i];
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc) limit = strtoul(argv[++i], NULL, 10);
        else model = NULL, i = argc;
    }
    if (!model || !images || !out) {
        fprintf(stderr, "usage: calibrate --model DIR --images DIR --out FILE [--layer NAME] [--limit N]\n");
        return 2;
    }
    if (nftw(images, collect, 16, FTW_PHYS) != 0 || n_paths == 0) {
        fprintf(stderr, "calibrate: no PNG/JPEG images under %s\n", images);
        return 1;
    }
    qsort(paths, n_paths, sizeof *paths, cmp_str);
    size_t n_use = limit && limit < n_paths ? limit : n_paths;

    struct lk_err e = {0};
    struct lk_cnn_model *m = NULL;
    struct lk_cnn_calibrator *c = NULL;
    int rc = lk_cnn_load_layer(model, layer, &m, &e);
    if (!rc)
        rc = lk_cnn_calibrator_new(m, &c, &e);
    size_t used = 0, skipped = 0;
    for (size_t i = 0; !rc && i < n_use; i++) {
        struct lk_image img = {0};
        struct lk_err ie = {0};
        if (lk_image_load_file(paths[i], NULL, &img, NULL, &ie) == LK_OK && lk_cnn_calibrator_add(c, &img, &ie) == LK_OK)
            used++;
        else
            skipped++, fprintf(stderr, "calibrate: skipped %s: %s\n", paths[i], ie.msg);
        lk_image_free(&img);
    }
    if (!rc) {
        char source[512];
        snprintf(source, sizeof source, "%zu PNG/JPEG images under %s (Debian tuxpaint-stamps-default when that "
                 "is /usr/share/tuxpaint/stamps), sorted by path%s", used, images,
                 limit ? ", first --limit" : "");
        rc = lk_cnn_calibrator_save(c, source, out, &e);
    }
    if (rc)
        fprintf(stderr, "calibrate: %s\n", e.msg);
    else
        printf("calibrate: %zu images (%zu skipped) -> %s\n", used, skipped, out);
    lk_cnn_calibrator_free(c);
    lk_cnn_free(m);
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
    return rc ? 1 : 0;
}
