/*
 * genfile.c — the search module's files inside an index generation:
 * search.json (metadata + calibrated bands) and report.json (the
 * merchandisers' build report), both JSON via cJSON, written crash-safely
 * (temporary file, fsync, rename, fsync directory) like every other file of
 * a generation.  The index and params files are written by their modules.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "psearch.h"

int lk__write_file_atomic(const char *dir, const char *name, const char *text, size_t len,
                          struct lk_err *err)
{
    char path[4200], tmp[4210];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "cannot create %s: %s", name, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return lk_err_set(err, LK_ERR_IO, "cannot write %s: %s", name, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return lk_err_set(err, LK_ERR_IO, "cannot sync %s: %s", name, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lk_err_set(err, LK_ERR_IO, "cannot rename %s: %s", name, strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return LK_OK;
}

/* ==== search.json ======================================================= */

int lk__meta_write(const char *dir, const struct lk__meta *m, struct lk_err *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *b = cJSON_CreateObject();
    if (!o || !b) {
        cJSON_Delete(o);
        cJSON_Delete(b);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    cJSON_AddNumberToObject(o, "version", LK__META_VERSION);
    cJSON_AddNumberToObject(o, "generation", (double)m->generation);
    cJSON_AddStringToObject(o, "images_dir", m->images_dir);
    cJSON_AddStringToObject(o, "model_layer", m->model_layer);
    cJSON_AddStringToObject(o, "cnn_precision", lk_cnn_precision_name(m->cnn_precision));
    cJSON_AddNumberToObject(o, "cnn_dim", m->cnn_dim);
    cJSON_AddNumberToObject(o, "fused_dim", m->fused_dim);
    cJSON_AddNumberToObject(o, "images_per_sku", m->per_sku);
    cJSON_AddNumberToObject(b, "exact", m->bands.exact);
    cJSON_AddNumberToObject(b, "high", m->bands.high);
    cJSON_AddNumberToObject(b, "medium", m->bands.medium);
    cJSON_AddNumberToObject(b, "floor", m->bands.floor);
    cJSON_AddBoolToObject(b, "calibrated", m->bands.calibrated);
    cJSON_AddNumberToObject(b, "samples", m->bands.samples);
    cJSON_AddStringToObject(b, "method",
                            "distorted copies (crop, brightness, resample, rotation) of sampled catalog "
                            "images: similarity to own product vs nearest other product");
    cJSON_AddItemToObject(o, "bands", b);   /* o owns b now */
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    int rc = lk__write_file_atomic(dir, LK__GEN_META, text, strlen(text), err);
    cJSON_free(text);
    return rc;
}

static int num(const cJSON *o, const char *key, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return 0;
    *out = v->valuedouble;
    return 1;
}

int lk__meta_read(const char *dir, struct lk__meta *m, struct lk_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_META);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lk_err_set(err, LK_ERR_IO, "cannot open generation metadata: %s", strerror(errno));
    char *buf = malloc(1 << 16);
    if (!buf) {
        fclose(f);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    free(buf);
    if (!o)
        return lk_err_set(err, LK_ERR_CORRUPT, "generation metadata is not valid JSON");
    memset(m, 0, sizeof *m);
    int rc = LK_OK;
    double v, gen, cd, fd, ps;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bands");
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(o, "images_dir");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(o, "model_layer");
    double ex, hi, me, fl, sa;
    if (!num(o, "version", 1, 1e9, &v)) {
        rc = lk_err_set(err, LK_ERR_FORMAT, "generation metadata: no valid version");
    } else if (v != LK__META_VERSION) {
        rc = lk_err_set(err, LK_ERR_FORMAT,
                        "generation metadata version %.0f, this build reads %d: the generation was built "
                        "by another version of lookalike; rebuild it with `lookalike index build`",
                        v, LK__META_VERSION);
    } else if (!num(o, "generation", 1, 1e15, &gen) || !num(o, "cnn_dim", 1, LK_EMBED_DIM_MAX, &cd) ||
               !num(o, "fused_dim", 1, LK_EMBED_DIM_MAX + LK_COLOUR_DIM, &fd) ||
               !num(o, "images_per_sku", 1, LK__PER_SKU_MAX, &ps) || !cJSON_IsString(im) ||
               !cJSON_IsString(ml) || strlen(im->valuestring) >= sizeof m->images_dir ||
               strlen(ml->valuestring) >= sizeof m->model_layer || !cJSON_IsObject(b) ||
               !num(b, "exact", -1, 1, &ex) || !num(b, "high", -1, 1, &hi) ||
               !num(b, "medium", -1, 1, &me) || !num(b, "floor", -1, 1, &fl) ||
               !num(b, "samples", 0, 1e12, &sa) || !(ex >= hi && hi >= me && me >= fl)) {
        rc = lk_err_set(err, LK_ERR_CORRUPT, "generation metadata: missing or invalid field");
    } else {
        m->generation = (uint64_t)gen;
        m->cnn_dim = (uint32_t)cd;
        m->fused_dim = (uint32_t)fd;
        m->per_sku = (uint32_t)ps;
        strcpy(m->images_dir, im->valuestring);
        strcpy(m->model_layer, ml->valuestring);
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "cnn_precision");
        m->cnn_precision = LK_CNN_FP32;
        if (pr && (!cJSON_IsString(pr) || lk_cnn_precision_parse(pr->valuestring, &m->cnn_precision, NULL) != LK_OK))
            rc = lk_err_set(err, LK_ERR_CORRUPT, "generation metadata: invalid cnn_precision");
        m->bands.exact = (float)ex;
        m->bands.high = (float)hi;
        m->bands.medium = (float)me;
        m->bands.floor = (float)fl;
        m->bands.samples = (uint32_t)sa;
        m->bands.calibrated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "calibrated"));
    }
    cJSON_Delete(o);
    return rc;
}

/* ==== report.json ======================================================= */

void lk_build_report_free(struct lk_build_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_weak; i++)
        free(r->weak[i].sku);
    free(r->weak);
    for (size_t i = 0; i < r->n_dups; i++) {
        free(r->dups[i].sku_a);
        free(r->dups[i].sku_b);
    }
    free(r->dups);
    memset(r, 0, sizeof *r);
}

int lk_build_report_json(const struct lk_build_report *r, char **json, struct lk_err *err)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    /* Every cJSON_Add* below hands ownership of the new item to its parent;
     * only the root is deleted. */
    cJSON_AddNumberToObject(o, "generation", (double)r->generation);
    cJSON_AddNumberToObject(o, "products", (double)r->products);
    cJSON_AddNumberToObject(o, "images", (double)r->images);
    cJSON_AddNumberToObject(o, "indexed", (double)r->indexed);
    cJSON_AddNumberToObject(o, "reused", (double)r->reused);
    cJSON_AddNumberToObject(o, "shared_photos", (double)r->shared_photos);
    cJSON_AddNumberToObject(o, "skipped", (double)r->skipped);
    cJSON *sk = cJSON_AddObjectToObject(o, "skipped_by_reason");
    for (int i = 0; sk && i < LK_SKIP_REASON_COUNT; i++)
        cJSON_AddNumberToObject(sk, lk_skip_reason_str(i), (double)r->skipped_by_reason[i]);
    cJSON_AddNumberToObject(o, "rows_skipped", (double)r->rows_skipped);
    cJSON *rs = cJSON_AddObjectToObject(o, "rows_skipped_by_reason");
    for (int i = 0; rs && i < LK_IMPORT_REASON_COUNT; i++)
        if (r->rows_skipped_by_reason[i])
            cJSON_AddNumberToObject(rs, lk_import_reason_str(i), (double)r->rows_skipped_by_reason[i]);
    cJSON *wk = cJSON_AddArrayToObject(o, "weak_images");
    for (size_t i = 0; wk && i < r->n_weak; i++) {
        cJSON *e = cJSON_CreateObject();
        char fl[128];
        if (!e)
            break;
        cJSON_AddStringToObject(e, "sku", r->weak[i].sku);
        cJSON_AddNumberToObject(e, "image_id", (double)r->weak[i].image_id);
        cJSON_AddStringToObject(e, "problems", lk_weak_flags_str(r->weak[i].flags, fl, sizeof fl));
        cJSON_AddItemToArray(wk, e);
    }
    cJSON *du = cJSON_AddArrayToObject(o, "near_duplicates");
    for (size_t i = 0; du && i < r->n_dups; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e)
            break;
        cJSON_AddStringToObject(e, "sku_a", r->dups[i].sku_a);
        cJSON_AddStringToObject(e, "sku_b", r->dups[i].sku_b);
        cJSON_AddNumberToObject(e, "similarity", round(r->dups[i].similarity * 1e4) / 1e4);
        cJSON_AddItemToArray(du, e);
    }
    cJSON *b = cJSON_AddObjectToObject(o, "bands");
    if (b) {
        cJSON_AddNumberToObject(b, "exact", r->bands.exact);
        cJSON_AddNumberToObject(b, "high", r->bands.high);
        cJSON_AddNumberToObject(b, "medium", r->bands.medium);
        cJSON_AddNumberToObject(b, "floor", r->bands.floor);
        cJSON_AddBoolToObject(b, "calibrated", r->bands.calibrated);
        cJSON_AddNumberToObject(b, "samples", r->bands.samples);
    }
    cJSON *t = cJSON_AddObjectToObject(o, "seconds");
    if (t) {
        cJSON_AddNumberToObject(t, "embed", r->seconds_embed);
        cJSON_AddNumberToObject(t, "index", r->seconds_index);
        cJSON_AddNumberToObject(t, "calibrate", r->seconds_calibrate);
        cJSON_AddNumberToObject(t, "total", r->seconds_total);
    }
    cJSON_AddNumberToObject(o, "images_per_second", r->images_per_second);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    /* Stage accounting, ms (struct lk_build_time); 0.1 ms is plenty. */
    cJSON *st = cJSON_AddObjectToObject(o, "stages_ms");
    for (int i = 0; st && i <= LK_BUILD_STAGE_COUNT; i++) {
        const struct lk_build_time *bt = i < LK_BUILD_STAGE_COUNT ? &r->stage[i] : &r->total;
        cJSON *e = cJSON_AddObjectToObject(st, i < LK_BUILD_STAGE_COUNT ? lk_build_stage_str(i) : "total");
        if (e) {
            cJSON_AddNumberToObject(e, "wall", round(bt->wall_ms * 10) / 10);
            cJSON_AddNumberToObject(e, "cpu", round(bt->cpu_ms * 10) / 10);
        }
    }
    cJSON_AddNumberToObject(o, "stage_images", (double)r->stage_images);
    *json = cJSON_Print(o);
    cJSON_Delete(o);
    if (!*json)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    return LK_OK;
}
