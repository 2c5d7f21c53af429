/*
 * engine.c — the long-lived search engine: catalog handle, CNN model,
 * current index generation, workspace pool and caches; reloads; live
 * catalog writes.
 *
 * Generation swap (reload without dropping requests): a generation (index +
 * params + metadata) is reference counted.  A search takes a reference under
 * gen_mu (a pointer copy and an increment: the mutex is held for
 * nanoseconds) and drops it when done.  lk_engine_reload loads the new
 * generation completely beside the old one — no lock held while reading
 * files or embedding — then swaps the pointer under gen_mu and drops the
 * engine's reference on the old one; the old generation is freed by
 * whichever thread releases the last reference, possibly a search that
 * started before the swap and finishes after it.
 *
 * Writes (item put/patch/delete, reload) are serialised by write_mu so a
 * put cannot add a vector to a generation that a concurrent reload is about
 * to retire.  Searches never take write_mu.
 *
 * Workspaces: one CNN runtime (~7 MB) per concurrent search, created at
 * open (opts.workspaces of them) and recycled through a free list; a search that
 * finds none free waits on pool_cv (bounded concurrency = bounded memory).
 *
 * Caches: product metadata that SQL would otherwise serve per result
 * (sku/title/category/currency, by product_id; cleared on every write made
 * through the engine and on reload) and per-image facts (product, weak
 * flags) in a dense array by image id.  Live numbers (stock, price, flags)
 * always come from the catalog's filter snapshot, never from a cache.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "psearch.h"

double lk__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void lk_engine_opts_default(struct lk_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->guard_confidence = LK_GUARD_CONFIDENCE_DEFAULT;
    lk_rank_params_default(&o->rank);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ==== Generations ======================================================= */

static void gen_free(struct lk__gen *g)
{
    if (!g)
        return;
    lk_index_free(g->idx);
    lk_embed_params_free(g->params);
    free(g);
}

struct lk__gen *lk__gen_acquire(struct lk_engine *eng)
{
    pthread_mutex_lock(&eng->gen_mu);
    struct lk__gen *g = eng->gen;
    if (g)
        atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&eng->gen_mu);
    return g;
}

void lk__gen_release(struct lk__gen *g)
{
    if (g && atomic_fetch_sub(&g->refs, 1) == 1)
        gen_free(g);
}

static int gen_dir(const struct lk_engine *eng, const struct lk_generation *cur, char *out, size_t n)
{
    /* lk_generation_current already joins the data dir and the
     * generation's directory name. */
    (void)eng;
    int w = snprintf(out, n, "%s", cur->dir);
    return w > 0 && (size_t)w < n ? LK_OK : LK_ERR_INVALID_ARG;
}

/* Load the current generation's files (no catch-up). */
static int gen_load(struct lk_engine *eng, struct lk__gen **out, struct lk_err *err)
{
    struct lk_generation cur;
    int rc = lk_generation_current(eng->data_dir, &cur, err);
    if (rc == LK_ERR_NOT_FOUND)
        return lk_err_set(err, LK_ERR_STATE, "no index generation yet: run `lookalike index build`");
    if (rc != LK_OK)
        return rc;
    char dir[4200], path[4300];
    if (gen_dir(eng, &cur, dir, sizeof dir) != LK_OK)
        return lk_err_set(err, LK_ERR_IO, "generation path too long");
    struct lk__gen *g = calloc(1, sizeof *g);
    if (!g)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    atomic_init(&g->refs, 1);
    rc = lk__meta_read(dir, &g->meta, err);
    if (rc == LK_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_PARAMS);
        rc = lk_embed_params_load(path, &g->params, err);
    }
    if (rc == LK_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, LK__GEN_INDEX);
        rc = lk_index_load(path, 0, &g->idx, err);
    }
    if (rc == LK_OK) {
        struct lk_index_params ip;
        lk_index_get_params(g->idx, &ip);
        if (lk_embed_cnn_dim(g->params) != lk_cnn_dim(eng->model) ||
            lk_embed_fused_dim(g->params) != ip.dim || ip.dim != g->meta.fused_dim)
            rc = lk_err_set(err, LK_ERR_FORMAT,
                            "generation %llu does not match the model (descriptor %zu vs %zu floats)",
                            (unsigned long long)cur.number, lk_embed_cnn_dim(g->params),
                            lk_cnn_dim(eng->model));
        else if (strcmp(g->meta.model_layer, lk_cnn_layer(eng->model)) != 0)
            rc = lk_err_set(err, LK_ERR_FORMAT, "generation was built with layer %s, model cut at %s",
                            g->meta.model_layer, lk_cnn_layer(eng->model));
        else if (g->meta.cnn_precision != lk_cnn_precision(eng->model) ||
                 lk_embed_cnn_precision(g->params) != lk_cnn_precision(eng->model))
            /* The model is loaded once, at open, in the precision of the
             * generation current then; queries must be embedded as the
             * catalog was. */
            rc = lk_err_set(err, LK_ERR_FORMAT,
                            "generation %llu was built with %s descriptors, the server runs %s: restart it to "
                            "switch", (unsigned long long)cur.number, lk_cnn_precision_name(g->meta.cnn_precision),
                            lk_cnn_precision_name(lk_cnn_precision(eng->model)));
    }
    if (rc != LK_OK) {
        gen_free(g);
        return rc;
    }
    g->meta.generation = cur.number;
    if (eng->images_override)
        snprintf(g->meta.images_dir, sizeof g->meta.images_dir, "%s", eng->images_override);
    *out = g;
    return LK_OK;
}

/* ==== Workspace pool ==================================================== */

struct lk__ws *lk__ws_acquire(struct lk_engine *eng, struct lk_err *err)
{
    struct lk__ws *ws = NULL;
    pthread_mutex_lock(&eng->pool_mu);
    for (;;) {
        if (eng->pool_free > 0) {
            ws = eng->pool[--eng->pool_free];
            break;
        }
        if (eng->pool_size < eng->pool_cap) {
            eng->pool_size++;   /* reserve the slot, build outside the lock */
            pthread_mutex_unlock(&eng->pool_mu);
            int rc = lk__ws_new(eng->model, &ws, err);
            if (rc != LK_OK) {
                pthread_mutex_lock(&eng->pool_mu);
                eng->pool_size--;
                pthread_cond_signal(&eng->pool_cv);
                pthread_mutex_unlock(&eng->pool_mu);
                return NULL;
            }
            return ws;
        }
        pthread_cond_wait(&eng->pool_cv, &eng->pool_mu);
    }
    pthread_mutex_unlock(&eng->pool_mu);
    return ws;
}

void lk__ws_release(struct lk_engine *eng, struct lk__ws *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&eng->pool_mu);
    eng->pool[eng->pool_free++] = ws;
    pthread_cond_signal(&eng->pool_cv);
    pthread_mutex_unlock(&eng->pool_mu);
}

/* ==== Product cache ===================================================== */

void lk__pinfo_clear(struct lk__pinfo *p)
{
    if (!p)
        return;
    free(p->sku);
    free(p->title);
    free(p->category);
    memset(p, 0, sizeof *p);
}

static int pinfo_copy(const struct lk__pinfo *src, struct lk__pinfo *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->product_id = src->product_id;
    memcpy(dst->currency, src->currency, sizeof dst->currency);
    dst->sku = xstrdup(src->sku);
    dst->title = xstrdup(src->title);
    dst->category = xstrdup(src->category);
    if (!dst->sku || !dst->title || !dst->category) {
        lk__pinfo_clear(dst);
        return LK_ERR_NOMEM;
    }
    return LK_OK;
}

void lk__cache_clear(struct lk_engine *eng)
{
    pthread_rwlock_wrlock(&eng->cache_lock);
    for (size_t b = 0; b < eng->cache_buckets; b++) {
        struct lk__pinfo *p = eng->cache[b];
        while (p) {
            struct lk__pinfo *nx = p->next;
            lk__pinfo_clear(p);
            free(p);
            p = nx;
        }
        eng->cache[b] = NULL;
    }
    eng->cache_n = 0;
    pthread_rwlock_unlock(&eng->cache_lock);
}

int lk__product_info(struct lk_engine *eng, int64_t product_id, struct lk__pinfo *out,
                     struct lk_err *err)
{
    size_t b = (size_t)((uint64_t)product_id * 0x9E3779B97F4A7C15ull >> 40) % eng->cache_buckets;
    int rc = LK_ERR_NOT_FOUND;
    pthread_rwlock_rdlock(&eng->cache_lock);
    for (struct lk__pinfo *p = eng->cache[b]; p; p = p->next)
        if (p->product_id == product_id) {
            rc = pinfo_copy(p, out);
            break;
        }
    pthread_rwlock_unlock(&eng->cache_lock);
    if (rc != LK_ERR_NOT_FOUND)
        return rc == LK_OK ? LK_OK : lk_err_set(err, rc, "out of memory");

    struct lk_product prod = {0};
    rc = lk_catalog_get_product_by_id(eng->cat, product_id, &prod, err);
    if (rc != LK_OK)
        return rc;
    struct lk__pinfo *e = calloc(1, sizeof *e);
    if (!e) {
        lk_product_clear(&prod);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    e->product_id = product_id;
    e->sku = prod.sku;
    e->title = prod.title ? prod.title : strdup("");
    e->category = prod.category ? prod.category : strdup("");
    memcpy(e->currency, prod.currency, sizeof e->currency);
    prod.sku = prod.title = prod.category = NULL;
    lk_product_clear(&prod);
    if (!e->sku || !e->title || !e->category || pinfo_copy(e, out) != LK_OK) {
        lk__pinfo_clear(e);
        free(e);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    pthread_rwlock_wrlock(&eng->cache_lock);
    /* Bounded: a catalog far bigger than the cache just misses more. */
    if (eng->cache_n < eng->cache_buckets * 4) {
        e->next = eng->cache[b];
        eng->cache[b] = e;
        eng->cache_n++;
        e = NULL;
    }
    pthread_rwlock_unlock(&eng->cache_lock);
    if (e) {
        lk__pinfo_clear(e);
        free(e);
    }
    return LK_OK;
}

/* ==== Image table ======================================================= */

unsigned lk__img_weak(struct lk_engine *eng, int64_t image_id)
{
    unsigned w = 0;
    pthread_rwlock_rdlock(&eng->imgs_lock);
    if (image_id > 0 && (size_t)image_id < eng->imgs_cap)
        w = eng->imgs[image_id].weak;
    pthread_rwlock_unlock(&eng->imgs_lock);
    return w;
}

void lk__img_set(struct lk_engine *eng, int64_t image_id, int64_t product_id, unsigned weak)
{
    if (image_id <= 0)
        return;
    pthread_rwlock_wrlock(&eng->imgs_lock);
    if ((size_t)image_id >= eng->imgs_cap) {
        size_t nc = eng->imgs_cap ? eng->imgs_cap : 1024;
        while (nc <= (size_t)image_id)
            nc *= 2;
        struct lk__img *ni = realloc(eng->imgs, nc * sizeof *ni);
        if (!ni) {
            pthread_rwlock_unlock(&eng->imgs_lock);
            return;     /* only costs the weak-image demotion and "similar" for this image */
        }
        memset(ni + eng->imgs_cap, 0, (nc - eng->imgs_cap) * sizeof *ni);
        eng->imgs = ni;
        eng->imgs_cap = nc;
    }
    eng->imgs[image_id].product_id = product_id;
    eng->imgs[image_id].weak = (uint8_t)weak;
    pthread_rwlock_unlock(&eng->imgs_lock);
}

size_t lk__img_of_product(struct lk_engine *eng, int64_t product_id, int64_t *ids, size_t cap)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&eng->imgs_lock);
    for (size_t i = 1; i < eng->imgs_cap && n < cap; i++)
        if (eng->imgs[i].product_id == product_id)
            ids[n++] = (int64_t)i;
    pthread_rwlock_unlock(&eng->imgs_lock);
    return n;
}

/* ==== Catch-up: make the index match the catalog ======================== */

struct cu_img {
    int64_t id, product_id;
    char *path;
    uint64_t indexed_gen;
};
struct cu_list {
    struct cu_img *v;
    size_t n, cap;
    struct lk_engine *eng;
};

static int cu_collect(const struct lk_catalog_image *im, void *ud)
{
    struct cu_list *l = ud;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        struct cu_img *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return LK_ERR_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n].id = im->image_id;
    l->v[l->n].product_id = im->product_id;
    l->v[l->n].indexed_gen = im->indexed_gen;
    l->v[l->n].path = strdup(im->path ? im->path : "");
    if (!l->v[l->n].path)
        return LK_ERR_NOMEM;
    l->n++;
    if (l->eng)
        lk__img_set(l->eng, im->image_id, im->product_id,
                    im->has_quality ? im->quality.weak_flags : 0);
    return 0;
}

static void cu_free(struct cu_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
}

int lk__gen_catch_up(struct lk_engine *eng, struct lk__gen *g, size_t *added, size_t *removed,
                     struct lk_err *err)
{
    struct cu_list l = {.eng = eng};
    size_t n_add = 0, n_rm = 0;
    /* Rebuild the image table from the catalog at the same time. */
    pthread_rwlock_wrlock(&eng->imgs_lock);
    if (eng->imgs)
        memset(eng->imgs, 0, eng->imgs_cap * sizeof *eng->imgs);
    pthread_rwlock_unlock(&eng->imgs_lock);
    int rc = lk_catalog_foreach_image(eng->cat, cu_collect, &l, err);
    if (rc != LK_OK) {
        cu_free(&l);
        return rc == LK_ERR_NOMEM ? lk_err_set(err, rc, "out of memory") : rc;
    }
    struct lk__ws *ws = NULL;
    float *vec = malloc((size_t)g->meta.fused_dim * sizeof *vec);
    if (!vec) {
        cu_free(&l);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    int64_t max_id = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct cu_img *c = &l.v[i];
        if (c->id > max_id)
            max_id = c->id;
        if (lk_index_contains(g->idx, (uint64_t)c->id) && c->indexed_gen != 0)
            continue;
        if (!ws && !(ws = lk__ws_acquire(eng, err))) {
            rc = err ? err->code : LK_ERR_NOMEM;
            break;
        }
        unsigned weak = 0;
        struct lk_err e2 = {0};
        if (lk__embed_file(ws, g->params, g->meta.images_dir, c->path, vec, &weak, &e2) == LK_OK &&
            lk_index_add(g->idx, (uint64_t)c->id, vec, &e2) == LK_OK) {
            lk__img_set(eng, c->id, c->product_id, weak);
            n_add++;
        }
        /* An unreadable image stays out of the index; the build report
         * lists it.  Nothing else to do here. */
    }
    lk__ws_release(eng, ws);
    if (rc == LK_OK) {
        /* Vectors of images deleted since the build.  Image ids are never
         * reused: a stale id is a gap below the highest catalog id or lies
         * above it (the newest images were deleted). */
        unsigned char *present = calloc((size_t)max_id + 1, 1);
        if (!present) {
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        } else {
            size_t live = 0;
            for (size_t i = 0; i < l.n; i++) {
                present[l.v[i].id] = 1;
                live += lk_index_contains(g->idx, (uint64_t)l.v[i].id) != 0;
            }
            for (int64_t id = 1; id <= max_id; id++)
                if (!present[id] && lk_index_contains(g->idx, (uint64_t)id) &&
                    lk_index_remove(g->idx, (uint64_t)id, NULL) == LK_OK)
                    n_rm++;
            for (uint64_t id = (uint64_t)max_id + 1;
                 lk_index_count(g->idx) > live && id < (uint64_t)max_id + (1u << 24); id++)
                if (lk_index_contains(g->idx, id) && lk_index_remove(g->idx, id, NULL) == LK_OK)
                    n_rm++;
            free(present);
        }
    }
    free(vec);
    cu_free(&l);
    if (added)
        *added = n_add;
    if (removed)
        *removed = n_rm;
    return rc;
}

/* ==== Open / reload / close ============================================= */

int lk_engine_open(const struct lk_engine_opts *opts, struct lk_engine **out, struct lk_err *err)
{
    if (!opts || !out || !opts->data_dir || !opts->model_dir)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "engine: data_dir and model_dir are required");
    int rc = lk_rank_params_check(&opts->rank, err);
    if (rc != LK_OK)
        return rc;
    struct lk_engine *eng = calloc(1, sizeof *eng);
    if (!eng)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    eng->opts = *opts;
    if (eng->opts.guard_confidence <= 0.0f || eng->opts.guard_confidence > 1.0f)
        eng->opts.guard_confidence = LK_GUARD_CONFIDENCE_DEFAULT;
    eng->data_dir = strdup(opts->data_dir);
    eng->model_dir = strdup(opts->model_dir);
    eng->images_override = opts->images_dir ? strdup(opts->images_dir) : NULL;
    eng->opts.data_dir = eng->data_dir;
    eng->opts.model_dir = eng->model_dir;
    eng->opts.images_dir = eng->images_override;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    eng->pool_cap = opts->workspaces ? opts->workspaces : (size_t)(ncpu > 0 ? ncpu : 1);
    if (eng->pool_cap > 256)
        eng->pool_cap = 256;
    eng->pool = calloc(eng->pool_cap, sizeof *eng->pool);
    eng->cache_buckets = 4096;
    eng->cache = calloc(eng->cache_buckets, sizeof *eng->cache);
    pthread_mutex_init(&eng->write_mu, NULL);
    pthread_mutex_init(&eng->gen_mu, NULL);
    pthread_mutex_init(&eng->pool_mu, NULL);
    pthread_cond_init(&eng->pool_cv, NULL);
    pthread_rwlock_init(&eng->cache_lock, NULL);
    pthread_rwlock_init(&eng->imgs_lock, NULL);
    if (!eng->data_dir || !eng->model_dir || !eng->pool || !eng->cache ||
        (opts->images_dir && !eng->images_override)) {
        lk_engine_close(eng);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    struct lk_catalog_opts co;
    lk_catalog_opts_default(&co);
    co.create = 1;
    rc = lk_catalog_open(eng->data_dir, &co, &eng->cat, err);
    if (rc == LK_OK) {
        /* The CNN precision of the current generation (int8 or fp32), so
         * queries are embedded exactly as the catalog was; the default when
         * there is no generation yet. */
        struct lk_cnn_options mo;
        lk_cnn_options_init(&mo);
        struct lk_generation cur;
        struct lk__meta meta;
        if (lk_generation_current(eng->data_dir, &cur, NULL) == LK_OK &&
            lk__meta_read(cur.dir, &meta, NULL) == LK_OK)
            mo.precision = meta.cnn_precision;
        rc = lk_cnn_load_opts(eng->model_dir, &mo, &eng->model, err);
    }
    /* Build the workspaces now (XNNPACK packs weights per runtime, tens of
     * ms each) so the first searches do not pay for it. */
    while (rc == LK_OK && eng->pool_size < eng->pool_cap) {
        rc = lk__ws_new(eng->model, &eng->pool[eng->pool_free], err);
        if (rc == LK_OK) {
            eng->pool_free++;
            eng->pool_size++;
        }
    }
    if (rc == LK_OK) {
        rc = lk_engine_reload(eng, err);
        if (rc == LK_ERR_STATE)
            rc = LK_OK;     /* no generation yet: open, not ready */
    }
    if (rc != LK_OK) {
        lk_engine_close(eng);
        return rc;
    }
    *out = eng;
    return LK_OK;
}

int lk_engine_reload(struct lk_engine *eng, struct lk_err *err)
{
    if (!eng)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "engine is NULL");
    pthread_mutex_lock(&eng->write_mu);
    struct lk__gen *g = NULL;
    int rc = lk_catalog_refresh(eng->cat, err);
    if (rc == LK_OK)
        rc = gen_load(eng, &g, err);
    if (rc == LK_OK)
        rc = lk__gen_catch_up(eng, g, NULL, NULL, err);
    if (rc != LK_OK) {
        gen_free(g);
        pthread_mutex_unlock(&eng->write_mu);
        return rc;
    }
    lk__cache_clear(eng);
    pthread_mutex_lock(&eng->gen_mu);
    struct lk__gen *old = eng->gen;
    eng->gen = g;
    pthread_mutex_unlock(&eng->gen_mu);
    lk__gen_release(old);   /* freed now, or by its last reader */
    pthread_mutex_unlock(&eng->write_mu);
    return LK_OK;
}

int lk_engine_ready(struct lk_engine *eng, struct lk_err *err)
{
    if (!eng)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "engine is NULL");
    pthread_mutex_lock(&eng->gen_mu);
    int ok = eng->gen != NULL;
    pthread_mutex_unlock(&eng->gen_mu);
    return ok ? LK_OK : lk_err_set(err, LK_ERR_STATE, "no index generation loaded yet");
}

uint64_t lk_engine_generation(struct lk_engine *eng)
{
    struct lk__gen *g = eng ? lk__gen_acquire(eng) : NULL;
    uint64_t n = g ? g->meta.generation : 0;
    lk__gen_release(g);
    return n;
}

void lk_engine_close(struct lk_engine *eng)
{
    if (!eng)
        return;
    lk__gen_release(eng->gen);
    for (size_t i = 0; i < eng->pool_free; i++)
        lk__ws_free(eng->pool[i]);
    free(eng->pool);
    if (eng->cache) {
        lk__cache_clear(eng);
        free(eng->cache);
    }
    free(eng->imgs);
    lk_cnn_free(eng->model);
    lk_catalog_close(eng->cat);
    pthread_mutex_destroy(&eng->write_mu);
    pthread_mutex_destroy(&eng->gen_mu);
    pthread_mutex_destroy(&eng->pool_mu);
    pthread_cond_destroy(&eng->pool_cv);
    pthread_rwlock_destroy(&eng->cache_lock);
    pthread_rwlock_destroy(&eng->imgs_lock);
    free(eng->data_dir);
    free(eng->model_dir);
    free(eng->images_override);
    free(eng);
}

/* ==== Live catalog writes =============================================== */

static int product_images(struct lk_engine *eng, int64_t product_id, int64_t *ids, size_t cap,
                          size_t *n)
{
    *n = lk__img_of_product(eng, product_id, ids, cap);
    return LK_OK;
}

int lk_engine_item_put(struct lk_engine *eng, const struct lk_engine_item *item, int *created,
                       struct lk_err *err)
{
    if (!eng || !item || !item->sku)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "item and sku required");
    if (item->n_images > 64)
        return lk_err_set(err, LK_ERR_LIMIT, "at most 64 images per item");
    pthread_mutex_lock(&eng->write_mu);
    struct lk__gen *g = lk__gen_acquire(eng);
    struct lk__ws *ws = NULL;
    float *vecs = NULL;
    unsigned weak[64] = {0};
    int rc = LK_OK;
    if (!g)
        rc = lk_err_set(err, LK_ERR_STATE, "no index generation loaded yet");
    /* 1. Embed every image first: a bad image fails the call before
     *    anything is written. */
    if (rc == LK_OK && item->n_images) {
        vecs = malloc(item->n_images * (size_t)g->meta.fused_dim * sizeof *vecs);
        if (!vecs)
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        else if (!(ws = lk__ws_acquire(eng, err)))
            rc = err ? err->code : LK_ERR_NOMEM;
        for (size_t i = 0; rc == LK_OK && i < item->n_images; i++)
            rc = lk__embed_file(ws, g->params, g->meta.images_dir, item->images[i],
                                vecs + i * g->meta.fused_dim, &weak[i], err);
        lk__ws_release(eng, ws);
    }
    /* 2. Catalog: metadata, then the image set. */
    struct lk_product old = {0};
    int existed = 0;
    int64_t pid = 0;
    if (rc == LK_OK) {
        existed = lk_catalog_get_product(eng->cat, item->sku, &old, NULL) == LK_OK;
        int32_t keep_tier = existed ? old.margin_tier : 0;
        lk_product_clear(&old);
        struct lk_product p = {0};
        p.sku = (char *)item->sku;
        p.title = (char *)item->title;
        p.category = (char *)item->category;
        p.price_minor = item->price_minor;
        snprintf(p.currency, sizeof p.currency, "%s", item->currency ? item->currency : "USD");
        p.stock = item->stock;
        p.regions = (char *)item->regions;
        p.flags = item->flags;
        p.margin_tier = item->margin_tier < 0 ? keep_tier : item->margin_tier;
        rc = lk_catalog_upsert_product(eng->cat, &p, &pid, err);
    }
    int64_t new_ids[64];
    for (size_t i = 0; rc == LK_OK && i < item->n_images; i++) {
        char rel[LK_IMAGE_PATH_MAX + 1];
        const char *r = item->images[i];
        size_t dl = strlen(g->meta.images_dir);
        if (r[0] == '/' && strncmp(r, g->meta.images_dir, dl) == 0)
            r += dl + (r[dl] == '/');
        snprintf(rel, sizeof rel, "%s", r);
        rc = lk_catalog_add_image(eng->cat, item->sku, rel, 0, 0, NULL, &new_ids[i], err);
    }
    if (rc == LK_OK) {
        /* Images of the old set that are not in the new one go. */
        int64_t old_ids[256];
        size_t n_old = 0;
        product_images(eng, pid, old_ids, 256, &n_old);
        for (size_t j = 0; j < n_old; j++) {
            int keep = 0;
            for (size_t i = 0; i < item->n_images; i++)
                keep |= old_ids[j] == new_ids[i];
            if (!keep) {
                lk_catalog_remove_image(eng->cat, old_ids[j], NULL);
                if (lk_index_contains(g->idx, (uint64_t)old_ids[j]))
                    lk_index_remove(g->idx, (uint64_t)old_ids[j], NULL);
                lk__img_set(eng, old_ids[j], 0, 0);
            }
        }
        for (size_t i = 0; rc == LK_OK && i < item->n_images; i++) {
            rc = lk_index_add(g->idx, (uint64_t)new_ids[i], vecs + i * g->meta.fused_dim, err);
            if (rc == LK_OK)
                lk__img_set(eng, new_ids[i], pid, weak[i]);
        }
    }
    if (rc == LK_OK && created)
        *created = !existed;
    lk__cache_clear(eng);
    free(vecs);
    lk__gen_release(g);
    pthread_mutex_unlock(&eng->write_mu);
    return rc;
}

int lk_engine_item_patch(struct lk_engine *eng, const char *sku, const struct lk_product_patch *patch,
                         const char *title, struct lk_err *err)
{
    if (!eng || !sku || !patch)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "sku and patch required");
    pthread_mutex_lock(&eng->write_mu);
    int rc = LK_OK;
    if (title) {
        struct lk_product p = {0};
        rc = lk_catalog_get_product(eng->cat, sku, &p, err);
        if (rc == LK_OK) {
            char *old = p.title;
            p.title = (char *)title;
            rc = lk_catalog_upsert_product(eng->cat, &p, NULL, err);
            p.title = old;
            lk_product_clear(&p);
        }
    }
    if (rc == LK_OK && (patch->has_stock || patch->has_price || patch->has_flags || patch->has_margin_tier))
        rc = lk_catalog_patch(eng->cat, sku, patch, err);
    else if (rc == LK_OK && !title) {
        struct lk_product p = {0};
        rc = lk_catalog_get_product(eng->cat, sku, &p, err);  /* NOT_FOUND for unknown SKUs */
        lk_product_clear(&p);
    }
    lk__cache_clear(eng);
    pthread_mutex_unlock(&eng->write_mu);
    return rc;
}

int lk_engine_item_delete(struct lk_engine *eng, const char *sku, struct lk_err *err)
{
    if (!eng || !sku)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "sku required");
    pthread_mutex_lock(&eng->write_mu);
    struct lk_product p = {0};
    int rc = lk_catalog_get_product(eng->cat, sku, &p, err);
    if (rc == LK_OK) {
        int64_t pid = p.product_id, ids[256];
        size_t n = lk__img_of_product(eng, pid, ids, 256);
        rc = lk_catalog_delete_product(eng->cat, sku, err);
        if (rc == LK_OK) {
            struct lk__gen *g = lk__gen_acquire(eng);
            for (size_t i = 0; i < n; i++) {
                if (g && lk_index_contains(g->idx, (uint64_t)ids[i]))
                    lk_index_remove(g->idx, (uint64_t)ids[i], NULL);
                lk__img_set(eng, ids[i], 0, 0);
            }
            lk__gen_release(g);
        }
    }
    lk_product_clear(&p);
    lk__cache_clear(eng);
    pthread_mutex_unlock(&eng->write_mu);
    return rc;
}

int lk_engine_record_event(struct lk_engine *eng, const char *search_id, const char *sku,
                           const char *type, int64_t ts, struct lk_err *err)
{
    if (!eng)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "engine is NULL");
    return lk_catalog_add_event(eng->cat, search_id, sku, type, ts, err);
}

int lk_engine_image(struct lk_engine *eng, int64_t image_id, void **data, size_t *len,
                    const char **mime, struct lk_err *err)
{
    if (!eng || !data || !len || !mime)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "NULL argument");
    struct lk_catalog_image im = {0};
    int rc = lk_catalog_get_image(eng->cat, image_id, &im, NULL);
    if (rc != LK_OK)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "no image %lld", (long long)image_id);
    struct lk__gen *g = lk__gen_acquire(eng);
    char path[PATH_MAX];
    const char *dir = g ? g->meta.images_dir : eng->images_override;
    rc = lk__image_path(dir, im.path, path, sizeof path, err);
    lk__gen_release(g);
    lk_catalog_image_clear(&im);
    if (rc != LK_OK)
        return rc;
    FILE *f = fopen(path, "rb");
    if (!f)
        return lk_err_set(err, LK_ERR_NOT_FOUND, "image %lld is not readable", (long long)image_id);
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > (off_t)LK_DECODE_MAX_BYTES_DEFAULT) {
        fclose(f);
        return lk_err_set(err, LK_ERR_NOT_FOUND, "image %lld is not servable", (long long)image_id);
    }
    void *buf = malloc((size_t)st.st_size);
    if (!buf) {
        fclose(f);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    enum lk_image_format fmt = lk_image_sniff(buf, n);
    if (n != (size_t)st.st_size || (fmt != LK_FORMAT_JPEG && fmt != LK_FORMAT_PNG)) {
        free(buf);
        return lk_err_set(err, LK_ERR_NOT_FOUND, "image %lld is not servable", (long long)image_id);
    }
    *data = buf;
    *len = n;
    *mime = fmt == LK_FORMAT_JPEG ? "image/jpeg" : "image/png";
    return LK_OK;
}

size_t lk_engine_metrics_text(struct lk_engine *eng, char *buf, size_t cap)
{
    struct lk__gen *g = lk__gen_acquire(eng);
    struct lk_catalog_counts c = {0};
    lk_catalog_counts(eng->cat, &c, NULL);
    int n = snprintf(buf, cap,
                     "# HELP lookalike_index_generation Index generation being served.\n"
                     "# TYPE lookalike_index_generation gauge\n"
                     "lookalike_index_generation %llu\n"
                     "# HELP lookalike_index_vectors Vectors in the live index.\n"
                     "# TYPE lookalike_index_vectors gauge\n"
                     "lookalike_index_vectors %zu\n"
                     "# HELP lookalike_catalog_products Products in the catalog.\n"
                     "# TYPE lookalike_catalog_products gauge\n"
                     "lookalike_catalog_products %llu\n"
                     "# HELP lookalike_catalog_products_in_stock Products with stock > 0.\n"
                     "# TYPE lookalike_catalog_products_in_stock gauge\n"
                     "lookalike_catalog_products_in_stock %llu\n",
                     (unsigned long long)(g ? g->meta.generation : 0), g ? lk_index_count(g->idx) : 0,
                     (unsigned long long)c.products, (unsigned long long)c.products_in_stock);
    lk__gen_release(g);
    return n < 0 ? 0 : (size_t)n;
}
