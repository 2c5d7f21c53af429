/*
 * cmd_index.c — `lookalike index build|add|update|remove`: the indexing
 * pipeline for merchandisers (src/search/build.c) with a progress bar on a
 * terminal (count, rate, ETA; plain lines otherwise) and the build report
 * printed at the end (also saved as report.json in the generation).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lookalike/catalog.h"
#include "lookalike/image.h"
#include "lookalike/search.h"
#include "pcli.h"

#ifndef LK_DEFAULT_MODEL_DIR
#define LK_DEFAULT_MODEL_DIR "models/mobilenet_v2"
#endif

const char *lk__cli_model_dir(const char *flag)
{
    if (flag)
        return flag;
    const char *env = getenv("LOOKALIKE_MODELS");
    return env && env[0] ? env : LK_DEFAULT_MODEL_DIR;
}

/* ==== Progress ========================================================== */

struct progress {
    int tty;
    const char *phase;
    double t0, last;
    int quiet;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_cb(void *ud, const char *phase, size_t done, size_t total)
{
    struct progress *p = ud;
    if (p->quiet)
        return;
    double now = mono_s();
    if (!p->phase || strcmp(p->phase, phase) != 0) {
        if (p->phase && p->tty)
            fputc('\n', stderr);
        p->phase = phase;
        p->t0 = now;
        p->last = 0;
    }
    double el = now - p->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    if (p->tty) {
        char bar[31];
        size_t fill = total ? done * 30 / total : 30;
        for (size_t i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%-10s [%s] %zu/%zu  %.1f img/s  ETA %d:%02d ", phase, bar, done, total, rate,
                (int)eta / 60, (int)eta % 60);
        fflush(stderr);
    } else if (done == total || now - p->last >= 5.0) {
        /* Plain lines for logs: at most one every 5 s, plus the last one. */
        if (done != total || p->last >= 0) {
            fprintf(stderr, "%s: %zu/%zu images, %.1f img/s, ETA %ds\n", phase, done, total, rate, (int)eta);
            p->last = done == total ? -1 : now;
        }
    }
}

static void progress_end(struct progress *p)
{
    if (p->tty && p->phase && !p->quiet)
        fputc('\n', stderr);
}

/* ==== Report ============================================================ */

/* Where the CPU time went: every stage's CPU seconds and share of the
 * process CPU time of the build, then ms per image of the per-image
 * stages (lookalike/search.h, struct lk_build_time). */
static void print_stages(const struct lk_build_report *r)
{
    double tot = r->total.cpu_ms, sum = 0;
    printf("CPU: %.1f s on %u threads (%.1f s wall);", tot / 1e3, r->threads, r->total.wall_ms / 1e3);
    for (int i = 0; i < LK_BUILD_STAGE_COUNT; i++) {
        sum += r->stage[i].cpu_ms;
        printf("%s %s %.2f s (%.0f %%)", i ? "," : "", lk_build_stage_str(i), r->stage[i].cpu_ms / 1e3,
               tot > 0 ? 100 * r->stage[i].cpu_ms / tot : 0);
    }
    double other = tot > sum ? tot - sum : 0;
    printf(", other %.2f s (%.0f %%)\n", other / 1e3, tot > 0 ? 100 * other / tot : 0);
    if (r->stage_images) {
        double n = (double)r->stage_images;
        printf("CPU ms per image (%llu images): decode %.2f, quality %.2f, colour %.2f, cnn %.2f\n",
               (unsigned long long)r->stage_images, r->stage[LK_BUILD_STAGE_DECODE].cpu_ms / n,
               r->stage[LK_BUILD_STAGE_QUALITY].cpu_ms / n, r->stage[LK_BUILD_STAGE_COLOUR].cpu_ms / n,
               r->stage[LK_BUILD_STAGE_CNN].cpu_ms / n);
    }
}

static void print_report(const struct lk_build_report *r, const char *data_dir)
{
    printf("generation %llu: %llu products, %llu images; indexed %llu (reused %llu), skipped %llu",
           (unsigned long long)r->generation, (unsigned long long)r->products,
           (unsigned long long)r->images, (unsigned long long)r->indexed, (unsigned long long)r->reused,
           (unsigned long long)r->skipped);
    const char *sep = " (";
    for (int i = 0; i < LK_SKIP_REASON_COUNT; i++)
        if (r->skipped_by_reason[i]) {
            printf("%s%s %llu", sep, lk_skip_reason_str(i), (unsigned long long)r->skipped_by_reason[i]);
            sep = ", ";
        }
    printf("%s\n", sep[0] == ',' ? ")" : "");
    if (r->shared_photos)
        printf("shared photos: %llu images name a photo file another image names too (embedded once)\n",
               (unsigned long long)r->shared_photos);
    if (r->rows_skipped) {
        printf("import: %llu bad rows skipped", (unsigned long long)r->rows_skipped);
        sep = " (";
        for (int i = 0; i < LK_IMPORT_REASON_COUNT; i++)
            if (r->rows_skipped_by_reason[i]) {
                printf("%s%s %llu", sep, lk_import_reason_str(i),
                       (unsigned long long)r->rows_skipped_by_reason[i]);
                sep = ", ";
            }
        printf(")\n");
    }
    printf("weak images: %zu", r->n_weak);
    for (size_t i = 0; i < r->n_weak && i < 8; i++) {
        char fl[96];
        printf("%s%s (%s)", i ? ", " : ": ", r->weak[i].sku, lk_weak_flags_str(r->weak[i].flags, fl, sizeof fl));
    }
    printf("%s\n", r->n_weak > 8 ? ", ..." : "");
    printf("near-duplicate products: %zu pairs", r->n_dups);
    for (size_t i = 0; i < r->n_dups && i < 8; i++)
        printf("%s%s ~ %s (%.3f)", i ? ", " : ": ", r->dups[i].sku_a, r->dups[i].sku_b,
               (double)r->dups[i].similarity);
    printf("%s\n", r->n_dups > 8 ? ", ..." : "");
    printf("bands: exact >= %.3f, high >= %.3f, medium >= %.3f, close-match floor %.3f (%s, %u samples)\n",
           (double)r->bands.exact, (double)r->bands.high, (double)r->bands.medium, (double)r->bands.floor,
           r->bands.calibrated ? "calibrated on this catalog" : "defaults: catalog too small to calibrate",
           r->bands.samples);
    printf("time: embed %.1f s (%.1f images/s on %u threads), index %.1f s, calibrate %.1f s, total %.1f s\n",
           r->seconds_embed, r->images_per_second, r->threads, r->seconds_index, r->seconds_calibrate,
           r->seconds_total);
    print_stages(r);
    printf("report: %s/gen-%06llu/report.json\n", data_dir, (unsigned long long)r->generation);
}

/* ==== Sub-commands ====================================================== */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lookalike index build --catalog FILE --images DIR --data DIR [--strict]\n"
            "                             [--threads N] [--pca N] [--calib-samples N] [--models DIR]\n"
            "                             [--precision int8|fp32] [--quiet]\n"
            "       lookalike index add|update --data DIR --catalog FILE [--images DIR] [--models DIR]\n"
            "       lookalike index remove --data DIR SKU...\n"
            "\n"
            "build   import the catalog (CSV or JSON Lines), embed every image on all cores, learn the\n"
            "        descriptor post-processing, build the HNSW index, calibrate the confidence bands and\n"
            "        commit a new index generation atomically; prints the merchandisers' report\n"
            "add     import products from FILE and index only their new/changed images (no full rebuild)\n"
            "update  same as add\n"
            "remove  delete products and their vectors\n"
            "--precision  CNN arithmetic of a full build (default int8: 1.5x faster, same retrieval\n"
            "        quality; see models/README.md); add/update keep the generation's precision\n"
            "A running server picks the new generation up on SIGHUP or POST /v1/index:reload.\n");
}

int lk__cmd_index(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? LK_EXIT_USAGE : LK_EXIT_OK;
    }
    const char *sub = argv[1];
    int mode = !strcmp(sub, "build") ? 0 : (!strcmp(sub, "add") || !strcmp(sub, "update")) ? 1
             : !strcmp(sub, "remove") ? 2 : -1;
    if (mode < 0) {
        fprintf(stderr, "lookalike index: unknown sub-command '%s'\n", sub);
        usage(stderr);
        return LK_EXIT_USAGE;
    }
    struct lk_build_opts o;
    lk_build_opts_default(&o);
    const char *models = NULL;
    int quiet = 0;
    static const struct option lo[] = {
        {"catalog", required_argument, 0, 'c'}, {"images", required_argument, 0, 'i'},
        {"data", required_argument, 0, 'd'},    {"strict", no_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"pca", required_argument, 0, 'p'},
        {"models", required_argument, 0, 'm'},  {"calib-samples", required_argument, 0, 'C'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'P'},
        {0, 0, 0, 0},
    };
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc - 1, argv + 1, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'c': o.catalog_path = optarg; break;
        case 'i': o.images_dir = optarg; break;
        case 'd': o.data_dir = optarg; break;
        case 's': o.strict = 1; break;
        case 't': o.threads = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': o.pca_dim = strtoul(optarg, NULL, 10); break;
        case 'C': o.calib_samples = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'm': models = optarg; break;
        case 'P': {
            struct lk_err pe = {0};
            if (lk_cnn_precision_parse(optarg, &o.precision, &pe) != LK_OK) {
                fprintf(stderr, "lookalike index: %s\n", pe.msg);
                return LK_EXIT_USAGE;
            }
            break;
        }
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return LK_EXIT_OK;
        default: usage(stderr); return LK_EXIT_USAGE;
        }
    }
    if (!o.data_dir || (mode == 0 && (!o.catalog_path || !o.images_dir)) || (mode == 1 && !o.catalog_path) ||
        (mode == 2 && optind + 1 >= argc)) {
        usage(stderr);
        return LK_EXIT_USAGE;
    }
    o.model_dir = lk__cli_model_dir(models);
    struct progress pr = {.tty = isatty(2), .quiet = quiet};
    o.progress = progress_cb;
    o.progress_ud = &pr;
    struct lk_build_report rep;
    struct lk_err err = {0};
    int rc;
    if (mode == 0)
        rc = lk_index_build(&o, &rep, &err);
    else if (mode == 1)
        rc = lk_index_update(&o, NULL, 0, &rep, &err);
    else {
        o.catalog_path = NULL;
        rc = lk_index_update(&o, (const char *const *)argv + optind + 1, (size_t)(argc - optind - 1), &rep, &err);
    }
    progress_end(&pr);
    if (rc != LK_OK) {
        fprintf(stderr, "lookalike index %s: %s\n", sub, err.msg[0] ? err.msg : lk_status_str(rc));
        lk_build_report_free(&rep);
        return LK_EXIT_FAILED;
    }
    print_report(&rep, o.data_dir);
    lk_build_report_free(&rep);
    return LK_EXIT_OK;
}
