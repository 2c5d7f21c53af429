/*
 * cmd_query.c — `lookalike query --data DIR IMAGE`: one visual search from
 * the terminal, through exactly the engine the server uses.  Prints the
 * inferred category, the fallback (if any), the ranked results with their
 * bands, the facets and the stage timings; --json prints nothing but a
 * compact machine-readable line per result.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookalike/search.h"
#include "pcli.h"



static void usage(FILE *f)
{
    fprintf(f, "usage: lookalike query --data DIR [--k N] [--category PATH] [--region CODE]\n"
               "                       [--min-price MINOR] [--max-price MINOR] [--any-stock]\n"
               "                       [--models DIR] [--images DIR] IMAGE\n"
               "Prices are integer minor units (cents).\n");
}

int lk__cmd_query(int argc, char **argv)
{
    const char *data = NULL, *models = NULL, *images = NULL;
    struct lk_search_request req;
    lk_search_request_init(&req);
    static const struct option lo[] = {
        {"data", required_argument, 0, 'd'},     {"k", required_argument, 0, 'k'},
        {"category", required_argument, 0, 'c'}, {"region", required_argument, 0, 'r'},
        {"min-price", required_argument, 0, 'a'}, {"max-price", required_argument, 0, 'b'},
        {"any-stock", no_argument, 0, 's'},      {"models", required_argument, 0, 'm'},
        {"images", required_argument, 0, 'i'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'k': req.k = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'c': req.category = optarg; break;
        case 'r': req.region = optarg; break;
        case 'a': req.min_price_minor = strtoll(optarg, NULL, 10); break;
        case 'b': req.max_price_minor = strtoll(optarg, NULL, 10); break;
        case 's': req.in_stock = LK_TRI_NO; break;
        case 'm': models = optarg; break;
        case 'i': images = optarg; break;
        case 'h': usage(stdout); return LK_EXIT_OK;
        default: usage(stderr); return LK_EXIT_USAGE;
        }
    }
    if (!data || optind + 1 != argc) {
        usage(stderr);
        return LK_EXIT_USAGE;
    }
    FILE *f = fopen(argv[optind], "rb");
    if (!f) {
        perror(argv[optind]);
        return LK_EXIT_FAILED;
    }
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap && cap < (64u << 20)) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        } else if (len == cap) {
            break;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "lookalike query: out of memory\n");
        return LK_EXIT_FAILED;
    }
    struct lk_engine_opts eo;
    lk_engine_opts_default(&eo);
    eo.data_dir = data;
    eo.model_dir = lk__cli_model_dir(models);
    eo.images_dir = images;
    eo.workspaces = 1;
    struct lk_engine *eng = NULL;
    struct lk_err err = {0};
    int rc = lk_engine_open(&eo, &eng, &err);
    struct lk_search_response resp;
    lk_search_response_init(&resp);
    if (rc == LK_OK)
        rc = lk_engine_search(eng, buf, len, &req, &resp, &err);
    free(buf);
    if (rc != LK_OK) {
        fprintf(stderr, "lookalike query: %s\n", err.msg[0] ? err.msg : lk_status_str(rc));
        lk_engine_close(eng);
        return LK_EXIT_FAILED;
    }
    if (resp.inferred_category)
        printf("category: %s (confidence %.2f%s)\n", resp.inferred_category, (double)resp.category_confidence,
               resp.category_from_request ? ", request named its own" : "");
    if (resp.fallback.applied) {
        printf("fallback:");
        for (size_t i = 0; i < resp.fallback.n_relaxed; i++)
            printf(" %s", resp.fallback.relaxed[i]);
        printf(" -- %s\n", resp.fallback.message ? resp.fallback.message : "");
    }
    printf("%-4s %-24s %-7s %-6s %-28s %10s %6s  %s\n", "#", "sku", "band", "score", "category", "price",
           "stock", "title");
    for (size_t i = 0; i < resp.n_results; i++) {
        const struct lk_search_result *r = &resp.results[i];
        printf("%-4zu %-24.24s %-7s %.3f  %-28.28s %7lld %s %6lld  %s\n", i + 1, r->sku, lk_band_name(r->band),
               (double)r->score, r->category ? r->category : "", (long long)r->price_minor, r->currency,
               (long long)r->stock, r->title ? r->title : "");
    }
    printf("facets:");
    for (size_t i = 0; i < resp.n_facets; i++)
        printf(" %s(%u)", resp.facets[i].category, resp.facets[i].count);
    printf("\ntimings:");
    for (size_t i = 0; i < resp.n_timings; i++)
        printf(" %s=%.1fms", resp.timings[i].name, resp.timings[i].ms);
    printf("\n");
    lk_search_response_free(&resp);
    lk_engine_close(eng);
    return LK_EXIT_OK;
}
