/* tests/search/test_build.c — the indexing pipeline (src/search/build.c):
 * the fixture's full build and its report (incl. the stage accounting),
 * incremental add/remove with near-duplicate detection, strict import,
 * empty catalog.  Stage times are checked for what the accounting
 * guarantees (filled, non-negative, parts within the whole), never for how
 * fast anything ran. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../src/search/psearch.h"    /* lk__embed_file: the query path's embedding */
#include "lookalike/catalog.h"
#include "util.h"

FX_HOOK_SETUP
FX_HOOK_TEARDOWN

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    cr_assert(j, "%s is not JSON", path);
    return j;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "no number %s", k);
    return v->valuedouble;
}

/* Stage accounting invariants of a report: every stage non-negative; the
 * stages (disjoint intervals of the process CPU clock, or thread CPU time
 * of workers inside one of them) add up to at most the total CPU, with a
 * little slack for the clock reads themselves; the per-image stages ran
 * when images were embedded.  No timing thresholds. */
static void check_stages(const struct lk_build_time *stage, struct lk_build_time total, uint64_t stage_images,
                         uint64_t skipped)
{
    double sum = 0;
    for (int i = 0; i < LK_BUILD_STAGE_COUNT; i++) {
        cr_assert_geq(stage[i].wall_ms, 0, "%s wall", lk_build_stage_str(i));
        cr_assert_geq(stage[i].cpu_ms, 0, "%s cpu", lk_build_stage_str(i));
        sum += stage[i].cpu_ms;
    }
    cr_assert_gt(total.wall_ms, 0);
    cr_assert_gt(total.cpu_ms, 0);
    cr_assert_leq(sum, total.cpu_ms * 1.05 + 10, "stages %.1f ms > total CPU %.1f ms", sum, total.cpu_ms);
    if (stage_images)
        cr_assert_gt(stage[LK_BUILD_STAGE_DECODE].wall_ms, 0, "decode attempted, not timed");
    if (stage_images > skipped) {
        /* Every embedded image was decoded and described by the CNN: a
         * forward pass is never free, and its wall time is at least
         * its (thread) CPU time minus clock granularity. */
        cr_assert_gt(stage[LK_BUILD_STAGE_DECODE].cpu_ms, 0);
        cr_assert_gt(stage[LK_BUILD_STAGE_CNN].cpu_ms, 0);
        cr_assert_gt(stage[LK_BUILD_STAGE_COLOUR].cpu_ms, 0);
        cr_assert_geq(stage[LK_BUILD_STAGE_CNN].wall_ms + 1, stage[LK_BUILD_STAGE_CNN].cpu_ms);
    }
}

/* The same from report.json's "stages_ms" object. */
static void check_stages_json(const cJSON *j)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stages_ms");
    cr_assert(cJSON_IsObject(st), "no stages_ms");
    struct lk_build_time stage[LK_BUILD_STAGE_COUNT], total;
    for (int i = 0; i <= LK_BUILD_STAGE_COUNT; i++) {
        const char *name = i < LK_BUILD_STAGE_COUNT ? lk_build_stage_str(i) : "total";
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, name);
        cr_assert(cJSON_IsObject(e), "no stage %s", name);
        struct lk_build_time t = {jnum(e, "wall"), jnum(e, "cpu")};
        if (i < LK_BUILD_STAGE_COUNT)
            stage[i] = t;
        else
            total = t;
    }
    check_stages(stage, total, (uint64_t)jnum(j, "stage_images"), (uint64_t)jnum(j, "skipped"));
}

Test(build, full_build_report_and_files, .timeout = 60)
{
    struct lk_generation g;
    cr_assert_eq(lk_generation_current(fx_data(), &g, NULL), LK_OK);
    cr_assert_eq(g.number, 1);
    cr_assert_eq(lk_generation_verify(&g, NULL), LK_OK);
    char path[4300];
    const char *files[] = {"index.lkh", "embed.params", "search.json", "report.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/gen-000001/%s", fx_data(), files[i]);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "missing %s", files[i]);
    }
    snprintf(path, sizeof path, "%s/gen-000001/report.json", fx_data());
    cJSON *j = read_json(path);
    size_t images = 0;
    for (size_t i = 0; i < fx_n_products; i++)
        images += (size_t)fx_products[i].n_images;
    cr_assert_eq(jnum(j, "products"), fx_n_products + 1);      /* + FX-BROKEN */
    cr_assert_eq(jnum(j, "images"), images + 1);
    cr_assert_eq(jnum(j, "indexed"), images);
    cr_assert_eq(jnum(j, "skipped"), 1);
    cJSON *sk = cJSON_GetObjectItemCaseSensitive(j, "skipped_by_reason");
    cr_assert_eq(jnum(sk, "corrupt"), 1);
    cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bands");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "calibrated")));
    cr_assert(jnum(b, "exact") > jnum(b, "high") && jnum(b, "high") > jnum(b, "medium") &&
              jnum(b, "medium") > jnum(b, "floor"));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "weak_images")));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "near_duplicates")));
    /* Every catalog image went through the per-image stages, the corrupt
     * one included (its decode was attempted). */
    cr_assert_eq(jnum(j, "stage_images"), images + 1);
    check_stages_json(j);
    cJSON_Delete(j);
}

/* The build embeds with lk_embed_describe's steps called one by one (one
 * stage clock each); a catalog photo must still get exactly the vector the
 * query path (lk__embed_file: decode, lk__describe, fuse) computes, or a
 * photo uploaded as a query would no longer land on its own vector. */
struct same_ctx {
    struct lk_index *idx;
    struct lk_embed_params *params;
    struct lk__ws *ws;
    float *stored, *fresh;
    size_t dim, compared;
};

static int same_vector(const struct lk_catalog_image *im, void *ud)
{
    struct same_ctx *c = ud;
    if (!lk_index_contains(c->idx, (uint64_t)im->image_id))
        return 0;
    unsigned weak = 0;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_get_vector(c->idx, (uint64_t)im->image_id, c->stored, NULL), LK_OK);
    cr_assert_eq(lk__embed_file(c->ws, c->params, fx_images(), im->path, c->fresh, &weak, &err), LK_OK, "%s: %s",
                 im->path, err.msg);
    for (size_t d = 0; d < c->dim; d++)
        cr_assert_float_eq(c->stored[d], c->fresh[d], 1e-5, "%s: component %zu differs", im->path, d);
    c->compared++;
    return 0;
}

Test(build, stored_vectors_equal_the_query_path, .timeout = 120)
{
    struct lk_generation g;
    char path[4300];
    cr_assert_eq(lk_generation_current(fx_data(), &g, NULL), LK_OK);
    struct same_ctx c = {0};
    snprintf(path, sizeof path, "%s/%s", g.dir, LK__GEN_INDEX);
    cr_assert_eq(lk_index_load(path, 0, &c.idx, NULL), LK_OK);
    snprintf(path, sizeof path, "%s/%s", g.dir, LK__GEN_PARAMS);
    cr_assert_eq(lk_embed_params_load(path, &c.params, NULL), LK_OK);
    /* The query path loads the model in the precision the generation
     * records (int8 by default). */
    struct lk_cnn_model *m = NULL;
    struct lk_cnn_options mo;
    lk_cnn_options_init(&mo);
    mo.precision = lk_embed_cnn_precision(c.params);
    cr_assert_eq(mo.precision, LK_CNN_PRECISION_DEFAULT, "a default build records the default precision");
    cr_assert_eq(lk_cnn_load_opts(fx_model_dir(), &mo, &m, NULL), LK_OK);
    cr_assert_eq(lk__ws_new(m, &c.ws, NULL), LK_OK);
    c.dim = lk_embed_fused_dim(c.params);
    c.stored = malloc(c.dim * sizeof *c.stored);
    c.fresh = malloc(c.dim * sizeof *c.fresh);
    struct lk_catalog_opts co;
    lk_catalog_opts_default(&co);
    struct lk_catalog *cat = NULL;
    cr_assert_eq(lk_catalog_open(fx_data(), &co, &cat, NULL), LK_OK);
    cr_assert_eq(lk_catalog_foreach_image(cat, same_vector, &c, NULL), LK_OK);
    cr_assert_geq(c.compared, 20, "only %zu indexed images compared", c.compared);
    lk_catalog_close(cat);
    free(c.stored);
    free(c.fresh);
    lk__ws_free(c.ws);
    lk_cnn_free(m);
    lk_embed_params_free(c.params);
    lk_index_free(c.idx);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(build, incremental_add_finds_duplicate_then_remove, .timeout = 180)
{
    char csv[4200];
    snprintf(csv, sizeof csv, "%s/add.csv", fx_root());
    /* A second listing of the beige sofa under another SKU, same photo. */
    write_text(csv, "sku,title,category,price,currency,stock,image\n"
                    "DUP-SOFA,Sofa again,home/furniture/sofas,899.00,USD,2,SOFA-BEIGE-0.png\n");
    struct lk_build_opts o;
    lk_build_opts_default(&o);
    o.catalog_path = csv;
    o.data_dir = fx_data();
    o.model_dir = fx_model_dir();
    struct lk_build_report rep;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_update(&o, NULL, 0, &rep, &err), LK_OK, "%s", err.msg);
    uint64_t indexed = rep.indexed;
    cr_assert_eq(rep.generation, 2);
    cr_assert_gt(rep.reused, 20, "vectors must be carried over, not re-embedded");
    cr_assert_eq(rep.reused + 1, indexed);
    /* Embedded: the new photo, and again the fixture's corrupt one (never
     * indexed, so every update retries it). */
    cr_assert_eq(rep.skipped, 1);
    cr_assert_eq(rep.stage_images, 2, "only new and never-indexed images are embedded");
    check_stages(rep.stage, rep.total, rep.stage_images, rep.skipped);
    cr_assert_gt(rep.stage[LK_BUILD_STAGE_IMPORT].wall_ms, 0);
    cr_assert_eq(rep.seconds_total, rep.total.wall_ms / 1e3);
    int dup = 0;
    for (size_t i = 0; i < rep.n_dups; i++)
        dup |= !strcmp(rep.dups[i].sku_a, "DUP-SOFA") && !strcmp(rep.dups[i].sku_b, "SOFA-BEIGE");
    cr_assert(dup, "duplicate listing not reported (%zu pairs)", rep.n_dups);
    lk_build_report_free(&rep);

    /* The engine on generation 2 finds both listings. */
    struct lk_engine *eng = fx_engine();
    cr_assert_eq(lk_engine_generation(eng), 2);
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 3;
    struct lk_search_response r;
    search_sku(eng, "SOFA-BEIGE", &req, &r);
    cr_assert(has_sku(&r, "DUP-SOFA") && has_sku(&r, "SOFA-BEIGE"));
    lk_search_response_free(&r);
    lk_engine_close(eng);

    const char *rm[] = {"DUP-SOFA"};
    o.catalog_path = NULL;
    cr_assert_eq(lk_index_update(&o, rm, 1, &rep, &err), LK_OK, "%s", err.msg);
    cr_assert_eq(rep.generation, 3);
    cr_assert_eq(rep.indexed, indexed - 1);
    cr_assert_eq(rep.stage_images, 1, "a removal embeds nothing (but the corrupt retry)");
    check_stages(rep.stage, rep.total, rep.stage_images, rep.skipped);
    lk_build_report_free(&rep);
    const char *nope[] = {"NO-SUCH"};
    cr_assert_eq(lk_index_update(&o, nope, 1, &rep, &err), LK_ERR_NOT_FOUND);
    lk_build_report_free(&rep);
    struct lk_generation g;
    cr_assert_eq(lk_generation_current(fx_data(), &g, NULL), LK_OK);
    cr_assert_eq(g.number, 3);
}

/* A build of `text` (a catalog CSV) over the fixture's photos into a new
 * temporary directory `root` (a mkdtemp template, removed by rm_root). */
static void temp_build(char *root, const char *text, struct lk_build_opts *o, char *data, size_t data_size)
{
    cr_assert(mkdtemp(root));
    static char csv[4200];
    snprintf(csv, sizeof csv, "%s/c.csv", root);
    snprintf(data, data_size, "%s/data", root);
    write_text(csv, text);
    lk_build_opts_default(o);
    o->catalog_path = csv;
    o->images_dir = fx_images();
    o->data_dir = data;
    o->model_dir = fx_model_dir();
}

static void rm_root(const char *root)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
}

Test(build, strict_import_and_empty_catalog_commit_nothing, .timeout = 120)
{
    char root[] = "/tmp/lk-build-strict-XXXXXX", data[4200];
    struct lk_build_opts o;
    temp_build(root,
               "sku,title,category,price,currency,stock,image\n"
               "A,ok,x,1.00,USD,1,\n"
               "B,bad price,x,abc,USD,1,\n",
               &o, data, sizeof data);
    o.strict = 1;
    struct lk_build_report rep;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_build(&o, &rep, &err), LK_ERR_PARSE);
    cr_assert_eq(rep.rows_skipped, 1);
    lk_build_report_free(&rep);
    struct lk_generation g;
    cr_assert_eq(lk_generation_current(data, &g, NULL), LK_ERR_NOT_FOUND);
    /* Non-strict: the good row imports, but it has no image: empty. */
    o.strict = 0;
    cr_assert_eq(lk_index_build(&o, &rep, &err), LK_ERR_EMPTY);
    lk_build_report_free(&rep);
    cr_assert_eq(lk_generation_current(data, &g, NULL), LK_ERR_NOT_FOUND);
    rm_root(root);
}

/* Variants listed with one shared catalog photo: the photo is embedded
 * once, every SKU still gets its own vector (all equal), and the
 * near-duplicate report names each pair of listings exactly once. */
Test(build, shared_photos_embedded_once_pairs_reported_once, .timeout = 180)
{
    char root[] = "/tmp/lk-build-shared-XXXXXX", data[4200];
    struct lk_build_opts o;
    temp_build(root,
               "sku,title,category,price,currency,stock,image\n"
               "V-A,Sofa,home/furniture/sofas,899.00,USD,2,SOFA-BEIGE-0.png\n"
               "V-B,Sofa,home/furniture/sofas,899.00,USD,2,SOFA-BEIGE-0.png\n"
               "V-C,Sofa,home/furniture/sofas,899.00,USD,2,SOFA-BEIGE-0.png\n"
               "OTHER,Bag,home/furniture/beanbags,99.00,USD,2,BEAN-BEIGE-0.png\n",
               &o, data, sizeof data);
    o.calib_samples = 4;
    struct lk_build_report rep;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_build(&o, &rep, &err), LK_OK, "%s", err.msg);
    cr_expect_eq(rep.indexed, 4);
    cr_expect_eq(rep.shared_photos, 2);
    cr_expect_eq(rep.stage_images, 2, "two distinct photo files, each embedded once");
    cr_expect_eq(rep.skipped, 0);
    int seen[3] = {0};
    static const char *const pairs[3][2] = {{"V-A", "V-B"}, {"V-A", "V-C"}, {"V-B", "V-C"}};
    for (size_t i = 0; i < rep.n_dups; i++)
        for (int p = 0; p < 3; p++)
            if (!strcmp(rep.dups[i].sku_a, pairs[p][0]) && !strcmp(rep.dups[i].sku_b, pairs[p][1])) {
                seen[p]++;
                cr_expect_gt(rep.dups[i].similarity, 0.999f, "same photo, same vector");
            }
    for (int p = 0; p < 3; p++)
        cr_expect_eq(seen[p], 1, "pair %s/%s reported %d times", pairs[p][0], pairs[p][1], seen[p]);
    for (size_t i = 1; i < rep.n_dups; i++)
        cr_expect_geq(rep.dups[i - 1].similarity, rep.dups[i].similarity, "most similar first");
    char rj[4300];
    snprintf(rj, sizeof rj, "%s/gen-000001/report.json", data);
    cJSON *j = read_json(rj);
    cr_expect_eq(jnum(j, "shared_photos"), 2);
    cJSON_Delete(j);
    lk_build_report_free(&rep);
    rm_root(root);
}

/* A generation built in fp32 records it, and an engine opened on it loads
 * the model in fp32 (gen_load refuses a precision mismatch) and finds the
 * product. */
Test(build, fp32_generation_is_served_in_fp32, .timeout = 180)
{
    char root[] = "/tmp/lk-build-fp32-XXXXXX", data[4200];
    struct lk_build_opts o;
    temp_build(root,
               "sku,title,category,price,currency,stock,image\n"
               "SOFA-BEIGE,Sofa,home/furniture/sofas,899.00,USD,2,SOFA-BEIGE-0.png\n"
               "BEAN-BEIGE,Bag,home/furniture/beanbags,99.00,USD,2,BEAN-BEIGE-0.png\n",
               &o, data, sizeof data);
    o.precision = LK_CNN_FP32;
    o.calib_samples = 2;
    struct lk_build_report rep;
    struct lk_err err = {0};
    cr_assert_eq(lk_index_build(&o, &rep, &err), LK_OK, "%s", err.msg);
    lk_build_report_free(&rep);
    char meta[4300];
    snprintf(meta, sizeof meta, "%s/gen-000001/search.json", data);
    cJSON *j = read_json(meta);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "cnn_precision");
    cr_assert(cJSON_IsString(pr) && !strcmp(pr->valuestring, "fp32"));
    cJSON_Delete(j);

    struct lk_engine_opts eo;
    lk_engine_opts_default(&eo);
    eo.data_dir = data;
    eo.model_dir = fx_model_dir();
    eo.workspaces = 1;
    struct lk_engine *eng = NULL;
    cr_assert_eq(lk_engine_open(&eo, &eng, &err), LK_OK, "%s", err.msg);
    struct lk_search_request req;
    lk_search_request_init(&req);
    req.k = 2;
    uint8_t *buf;
    size_t len;
    fx_query_png(fx_find("SOFA-BEIGE"), &buf, &len);
    struct lk_search_response r;
    lk_search_response_init(&r);
    cr_assert_eq(lk_engine_search(eng, buf, len, &req, &r, &err), LK_OK, "%s", err.msg);
    free(buf);
    cr_assert_geq(r.n_results, 1);
    cr_expect_str_eq(r.results[0].sku, "SOFA-BEIGE");
    lk_search_response_free(&r);
    lk_engine_close(eng);
    rm_root(root);
}

Test(build, report_json_and_reason_names)
{
    struct lk_build_report r;
    memset(&r, 0, sizeof r);
    r.generation = 7;
    r.indexed = 3;
    r.skipped_by_reason[LK_SKIP_FORMAT] = 2;
    r.stage[LK_BUILD_STAGE_CNN] = (struct lk_build_time){12.34, 5.67};
    r.total = (struct lk_build_time){20, 9};
    r.stage_images = 3;
    lk_bands_default(&r.bands);
    char *json = NULL;
    cr_assert_eq(lk_build_report_json(&r, &json, NULL), LK_OK);
    cJSON *j = cJSON_Parse(json);
    cr_assert(j);
    cr_assert_eq(jnum(j, "generation"), 7);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stages_ms");
    const cJSON *cnn = cJSON_GetObjectItemCaseSensitive(st, "cnn");
    cr_assert_float_eq(jnum(cnn, "wall"), 12.3, 1e-9);
    cr_assert_float_eq(jnum(cnn, "cpu"), 5.7, 1e-9);
    cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(st, "total"), "cpu"), 9);
    cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(st, "decode"), "cpu"), 0);
    cr_assert_eq(jnum(j, "stage_images"), 3);
    cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(j, "skipped_by_reason"), "unsupported_format"), 2);
    cJSON_Delete(j);
    free(json);
    cr_assert_str_eq(lk_skip_reason_str(LK_SKIP_CORRUPT), "corrupt");
    cr_assert_str_eq(lk_build_stage_str(LK_BUILD_STAGE_DECODE), "decode");
    cr_assert_str_eq(lk_build_stage_str(LK_BUILD_STAGE_COMMIT), "commit");
    cr_assert_str_eq(lk_build_stage_str(LK_BUILD_STAGE_COUNT), "unknown");
    cr_assert_str_eq(lk_build_stage_str(-1), "unknown");
    cr_assert_str_eq(lk_skip_reason_str(99), "unknown");
    lk_build_report_free(&r);
    lk_build_report_free(NULL);
}
