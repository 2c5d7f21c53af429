/*
 * bench/index_build.c — indexing throughput of the real pipeline: a catalog
 * of real product photos is built with lk_index_build (what `lookalike
 * index build` runs) on 1 thread and on 2 threads, and the build report's
 * stage accounting (struct lk_build_time, lookalike/search.h) says where
 * the time went.
 *
 *   index_build [--data DIR] [--models DIR] [--work DIR] [--images N]
 *               [--threads 1,2] [--quick] [--json FILE]
 *
 * Catalog (fixed before the first run; seed SEED): N photos (default 1200)
 * from DIR (default ../shared/data/products), half from fashion-small
 * (60x80 Myntra catalog photos), a third from grocery (mostly 348x348
 * phone photos) and a sixth from clothing-photos (mostly 400x533 phone
 * photos), each a seeded sample of that set's labels.csv.  One SKU per
 * product_id (grocery products get several photos, `|`-separated, as
 * quality.c writes them), category "<set>/<category>".  The CSV and the
 * data directories live in --work (default /tmp/lookalike-bench/index);
 * the photos are read in place, never copied.  Every photo is read once
 * before the first build so that neither build pays for a cold page cache.
 *
 * Reported per build: images through the per-image stages, images/s
 * (wall clock, whole build: import to commit, the figure a merchandiser
 * waits for), embed-phase images/s, CPU ms per image; per stage its share
 * of the build's process CPU time and CPU ms per image (the remainder is
 * "other": worker bookkeeping between stages).  Across builds: the wall
 * speed-up of the last thread count over the first, and the ratio of their
 * CPU per image (1.0 = the extra thread adds no work).
 *
 * The decode stage includes the one resize to the network input that the
 * CNN and the colour histogram share (lk_embed_describe); the CNN stage is
 * normalisation and forward pass.
 *
 * --quick (CI smoke): 60 photos and 20 calibration samples when the data is
 * there; without it, 40 synthetic JPEGs (seeded shapes on plain
 * backgrounds, written to --work) so the bench still runs end to end and
 * its records say "synthetic".  Without --quick and without the data it
 * writes a "skipped" record and exits 0.
 *
 * The machine is shared: the load average is recorded with every build;
 * compare the CPU figures (shares, ms per image) across runs, and the wall
 * figures only within one run.
 */
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"
#include "embed_data.h"
#include "jpeg_encode.h"
#include "lookalike/catalog.h"
#include "lookalike/image.h"
#include "lookalike/search.h"
#include "sysinfo.h"

#ifndef LK_SOURCE_ROOT
#define LK_SOURCE_ROOT "."
#endif

#define SEED 20261126u
#define N_DEFAULT 1200
#define N_QUICK 60
#define N_SYNTH 40
#define MAX_RUNS 8

static const struct {
    const char *name;
    int parts;              /* share of the catalog, in sixths */
} sets[] = {{"fashion-small", 3}, {"grocery", 2}, {"clothing-photos", 1}};
#define N_SETS (sizeof sets / sizeof sets[0])

static FILE *js;
static struct bench_sysinfo si;
static int quick;

/* ==== Small helpers ===================================================== */

static uint64_t rng_state;
static uint64_t rnd(void) { return bench_rand(&rng_state); }

static void die(const char *what, const struct lk_err *e)
{
    fprintf(stderr, "index_build: %s: %s\n", what, e && e->msg[0] ? e->msg : "failed");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("malloc", NULL);
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        die("strdup", NULL);
    return d;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove a data directory this bench created (no symlinks followed). */
static void rm_rf(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) == 0)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ==== The catalog ======================================================= */

struct photo {
    char *rel;              /* path relative to the images directory */
    char *abs;
    char *product;          /* "<set>-<product_id>": the SKU */
    char *category;         /* normalised category path */
};

struct catalog {
    struct photo *v;
    size_t n;
    char images_dir[4096];
    int synthetic;
    size_t per_set[N_SETS];
};

static void add_photo(struct catalog *c, const char *abs, const char *rel, const char *product,
                      const char *raw_category)
{
    char cat[LK_CATEGORY_MAX + 1];
    struct lk_err e = {0};
    if (lk_category_normalise(raw_category, cat, sizeof cat, &e) != LK_OK)
        die(raw_category, &e);
    struct photo *p = &c->v[c->n++];
    p->abs = xstrdup(abs);
    p->rel = xstrdup(rel);
    p->product = xstrdup(product);
    p->category = xstrdup(cat);
}

/* n photos from the product sets: a seeded sample of each set, in the
 * proportions of sets[]. */
static void pick_real(struct catalog *c, const char *data, size_t n)
{
    snprintf(c->images_dir, sizeof c->images_dir, "%s", data);
    c->v = xmalloc(n * sizeof *c->v);
    int parts = 0;
    for (size_t k = 0; k < N_SETS; k++)
        parts += sets[k].parts;
    for (size_t k = 0; k < N_SETS; k++) {
        size_t want = k + 1 < N_SETS ? n * (size_t)sets[k].parts / (size_t)parts : n - c->n;
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", data, sets[k].name);
        struct bench_set s;
        if (bench_set_load(dir, sets[k].name, &s) != 0)
            die(dir, NULL);
        size_t *perm = xmalloc(s.n * sizeof *perm);
        for (size_t i = 0; i < s.n; i++)
            perm[i] = i;
        bench_shuffle(perm, s.n, &rng_state);
        if (want > s.n)
            want = s.n;
        for (size_t i = 0; i < want; i++) {
            size_t x = perm[i];
            char product[512], category[512];
            snprintf(product, sizeof product, "%s-%s", sets[k].name, s.product_names[s.product[x]]);
            snprintf(category, sizeof category, "%s/%s", sets[k].name, s.category_names[s.category[x]]);
            add_photo(c, s.paths[x], s.paths[x] + strlen(data) + 1, product, category);
        }
        c->per_set[k] = want;
        free(perm);
        bench_set_free(&s);
    }
}

/* N_SYNTH synthetic product photos (a coloured shape on a plain background,
 * a few sizes, mild noise) written as JPEG under work/synth. */
static void make_synthetic(struct catalog *c, const char *work)
{
    static const char *const cats[] = {"synth/red-box", "synth/green-ball", "synth/blue-bar", "synth/yellow-ring"};
    static const uint8_t col[4][3] = {{200, 30, 30}, {30, 170, 60}, {40, 60, 200}, {230, 200, 20}};
    snprintf(c->images_dir, sizeof c->images_dir, "%s/synth", work);
    mkdir(c->images_dir, 0755);
    c->v = xmalloc(N_SYNTH * sizeof *c->v);
    c->synthetic = 1;
    for (int i = 0; i < N_SYNTH; i++) {
        uint32_t w = 240 + (uint32_t)(rnd() % 5) * 100, h = 240 + (uint32_t)(rnd() % 5) * 100;
        struct lk_image img = {0};
        if (lk_image_init(&img, w, h, NULL) != LK_OK)
            die("lk_image_init", NULL);
        int k = i % 4;
        uint8_t bg = (uint8_t)(200 + rnd() % 56);
        double cx = w * (0.4 + 0.2 * (double)(rnd() % 100) / 100), cy = h * (0.4 + 0.2 * (double)(rnd() % 100) / 100);
        double r = (w < h ? w : h) * 0.3;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                double dx = x - cx, dy = y - cy;
                int in = k == 0   ? fabs(dx) < r && fabs(dy) < r * 0.7
                         : k == 1 ? dx * dx + dy * dy < r * r
                         : k == 2 ? fabs(dx) < r * 1.2 && fabs(dy) < r * 0.25
                                  : fabs(sqrt(dx * dx + dy * dy) - r * 0.7) < r * 0.2;
                uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
                for (int ch = 0; ch < 3; ch++) {
                    int v = (in ? col[k][ch] : bg) + (int)(rnd() % 9) - 4;
                    p[ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        size_t len;
        unsigned char *jpg = bench_encode_jpeg(&img, 90, &len);
        lk_image_free(&img);
        char rel[64], abs[4300], product[32];
        snprintf(rel, sizeof rel, "s%03d.jpg", i);
        snprintf(abs, sizeof abs, "%s/%s", c->images_dir, rel);
        snprintf(product, sizeof product, "SYN-%03d", i);
        FILE *f = fopen(abs, "wb");
        if (!f || fwrite(jpg, 1, len, f) != len || fclose(f) != 0)
            die(abs, NULL);
        free(jpg);
        add_photo(c, abs, rel, product, cats[k]);
    }
}

static int by_product(const void *a, const void *b)
{
    const struct photo *x = a, *y = b;
    int d = strcmp(x->product, y->product);
    return d ? d : strcmp(x->rel, y->rel);
}

/* The import CSV: one row per SKU, its photos `|`-separated.  Returns the
 * number of products. */
static size_t write_csv(struct catalog *c, const char *path)
{
    struct photo *sorted = xmalloc(c->n * sizeof *sorted);
    memcpy(sorted, c->v, c->n * sizeof *sorted);
    qsort(sorted, c->n, sizeof *sorted, by_product);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    fprintf(f, "sku,title,category,price,currency,stock,image\n");
    size_t products = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (i == 0 || strcmp(sorted[i].product, sorted[i - 1].product) != 0) {
            if (i)
                fputs("\"\n", f);
            bench_csv_field(f, sorted[i].product);
            fputc(',', f);
            bench_csv_field(f, sorted[i].product);
            fputc(',', f);
            bench_csv_field(f, sorted[i].category);
            fputs(",1.00,USD,10,\"", f);
            products++;
        } else {
            fputc('|', f);
        }
        fputs(sorted[i].rel, f);
    }
    if (c->n)
        fputs("\"\n", f);
    if (fclose(f) != 0)
        die(path, NULL);
    free(sorted);
    return products;
}

/* Read every photo once: both builds then find them in the page cache. */
static size_t warm_cache(const struct catalog *c)
{
    size_t bytes = 0;
    static char buf[1 << 16];
    for (size_t i = 0; i < c->n; i++) {
        FILE *f = fopen(c->v[i].abs, "rb");
        if (!f)
            continue;
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0)
            bytes += got;
        fclose(f);
    }
    return bytes;
}

/* ==== Builds ============================================================ */

struct run {
    unsigned threads;
    struct lk_build_report rep;
    double load_before;
};

static void progress(void *ud, const char *phase, size_t done, size_t total)
{
    const struct run *r = ud;
    if (total && done == total)
        fprintf(stderr, "  %u thread%s: %s %zu/%zu\n", r->threads, r->threads == 1 ? "" : "s", phase, done,
                total);
}

static void build(struct run *r, const struct catalog *c, const char *csv, const char *work, const char *models)
{
    char dd[4200];
    snprintf(dd, sizeof dd, "%s/data-t%u", work, r->threads);
    rm_rf(dd);
    struct lk_build_opts o;
    lk_build_opts_default(&o);
    o.catalog_path = csv;
    o.images_dir = c->images_dir;
    o.data_dir = dd;
    o.model_dir = models;
    o.threads = r->threads;
    o.calib_samples = quick ? 20 : 0;   /* 0 = the product default (100) */
    o.progress = progress;
    o.progress_ud = r;
    struct lk_err e = {0};
    r->load_before = bench_loadavg();
    if (lk_index_build(&o, &r->rep, &e) != LK_OK)
        die("lk_index_build", &e);
    rm_rf(dd);
}

static double other_cpu(const struct lk_build_report *p)
{
    double sum = 0;
    for (int s = 0; s < LK_BUILD_STAGE_COUNT; s++)
        sum += p->stage[s].cpu_ms;
    return p->total.cpu_ms > sum ? p->total.cpu_ms - sum : 0;
}

static void record_build(const struct run *r, const struct catalog *c)
{
    const struct lk_build_report *p = &r->rep;
    double n = p->stage_images ? (double)p->stage_images : 1, tot = p->total.cpu_ms > 0 ? p->total.cpu_ms : 1;
    if (!js)
        return;
    bench_json_begin(js, &si, "index", "build");
    fprintf(js,
            ",\"source\":\"%s\",\"quick\":%s,\"threads\":%u,\"images\":%llu,\"products\":%llu,\"indexed\":%llu,"
            "\"skipped\":%llu,\"wall_s\":%.3f,\"cpu_s\":%.3f,\"images_per_s\":%.3f,\"embed_images_per_s\":%.3f,"
            "\"cpu_ms_per_image\":%.3f,\"load1_before\":%.2f,\"stages\":{",
            c->synthetic ? "synthetic" : "products", quick ? "true" : "false", r->threads,
            (unsigned long long)p->stage_images, (unsigned long long)p->products,
            (unsigned long long)p->indexed, (unsigned long long)p->skipped, p->total.wall_ms / 1e3,
            p->total.cpu_ms / 1e3, (double)p->stage_images / (p->total.wall_ms / 1e3),
            p->images_per_second, p->total.cpu_ms / n, r->load_before);
    for (int s = 0; s <= LK_BUILD_STAGE_COUNT; s++) {
        double cpu = s < LK_BUILD_STAGE_COUNT ? p->stage[s].cpu_ms : other_cpu(p);
        double wall = s < LK_BUILD_STAGE_COUNT ? p->stage[s].wall_ms : 0;
        fprintf(js, "%s\"%s\":{\"cpu_ms\":%.2f,\"wall_ms\":%.2f,\"share\":%.4f,\"cpu_ms_per_image\":%.4f}",
                s ? "," : "", s < LK_BUILD_STAGE_COUNT ? lk_build_stage_str(s) : "other", cpu, wall, cpu / tot,
                cpu / n);
    }
    fputc('}', js);
    bench_json_end(js);
}

/* ==== Main ============================================================== */

static void print_builds(const struct run *runs, int n_runs)
{
    printf("\n%-8s %7s %8s %9s %11s %8s %11s %7s\n", "threads", "images", "wall s", "images/s", "embed img/s",
           "CPU s", "CPU ms/img", "load1");
    for (int i = 0; i < n_runs; i++) {
        const struct lk_build_report *p = &runs[i].rep;
        printf("%-8u %7llu %8.2f %9.2f %11.2f %8.2f %11.2f %7.2f\n", runs[i].threads,
               (unsigned long long)p->stage_images, p->total.wall_ms / 1e3,
               (double)p->stage_images / (p->total.wall_ms / 1e3), p->images_per_second, p->total.cpu_ms / 1e3,
               p->total.cpu_ms / (double)p->stage_images, runs[i].load_before);
    }
    if (n_runs >= 2) {
        const struct lk_build_report *a = &runs[0].rep, *b = &runs[n_runs - 1].rep;
        printf("speed-up %u vs %u threads: x%.2f (wall, whole build), x%.2f (embed phase); CPU per image x%.2f\n",
               runs[n_runs - 1].threads, runs[0].threads, a->total.wall_ms / b->total.wall_ms,
               b->images_per_second / a->images_per_second, b->total.cpu_ms / a->total.cpu_ms);
    }
    printf("\nshare of the build's CPU time, and CPU ms per image, by stage (T = threads):\n%-10s", "stage");
    for (int i = 0; i < n_runs; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "share %uT", runs[i].threads);
        snprintf(b, sizeof b, "ms/img %uT", runs[i].threads);
        printf("  %10s %10s", a, b);
    }
    printf("\n");
    for (int s = 0; s <= LK_BUILD_STAGE_COUNT; s++) {
        printf("%-10s", s < LK_BUILD_STAGE_COUNT ? lk_build_stage_str(s) : "other");
        for (int i = 0; i < n_runs; i++) {
            const struct lk_build_report *p = &runs[i].rep;
            double cpu = s < LK_BUILD_STAGE_COUNT ? p->stage[s].cpu_ms : other_cpu(p);
            printf("  %8.1f %% %10.2f", 100 * cpu / p->total.cpu_ms, cpu / (double)p->stage_images);
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    const char *data = "../shared/data/products", *json = NULL, *threads_arg = "1,2";
    const char *models = getenv("LOOKALIKE_MODELS") ? getenv("LOOKALIKE_MODELS") : LK_SOURCE_ROOT "/models/mobilenet_v2";
    const char *work = "/tmp/lookalike-bench/index";
    size_t n_images = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--data")) data = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--models")) models = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--work")) work = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--json")) json = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads_arg = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--images")) n_images = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: index_build [--data DIR] [--models DIR] [--work DIR] [--images N] "
                            "[--threads 1,2] [--quick] [--json FILE]\n");
            return 2;
        }
    }
    static char data_buf[4096];     /* without trailing '/': photo paths are cut at its length */
    snprintf(data_buf, sizeof data_buf, "%s", data);
    for (size_t l = strlen(data_buf); l > 1 && data_buf[l - 1] == '/'; l--)
        data_buf[l - 1] = '\0';
    data = data_buf;
    unsigned threads[MAX_RUNS];
    int n_runs = 0;
    for (const char *p = threads_arg; *p && n_runs < MAX_RUNS;) {
        char *end;
        unsigned long t = strtoul(p, &end, 10);
        if (end == p || t == 0 || t > 64) {
            fprintf(stderr, "index_build: --threads wants a list like 1,2\n");
            return 2;
        }
        threads[n_runs++] = (unsigned)t;
        p = *end == ',' ? end + 1 : end;
    }
    bench_sysinfo_get(&si);
    js = bench_json_open(json);
    printf("# index_build: lk_index_build throughput and stage accounting%s\n",
           quick ? " -- QUICK (small set; not the published figures)" : "");
    bench_print_env();

    char probe[4200];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/grocery/labels.csv", data);
    int have_data = stat(probe, &st) == 0;
    if (!have_data && !quick) {
        printf("# no product photos under %s: skipped\n", data);
        bench_json_skipped(js, &si, "index", "product photos not found");
        if (js)
            fclose(js);
        return 0;
    }
    mkdir("/tmp/lookalike-bench", 0755);
    mkdir(work, 0755);
    rng_state = SEED;
    struct catalog c = {0};
    if (have_data) {
        pick_real(&c, data, n_images ? n_images : quick ? N_QUICK : N_DEFAULT);
        printf("catalog: %zu real product photos (", c.n);
        for (size_t k = 0; k < N_SETS; k++)
            printf("%s%zu %s", k ? ", " : "", c.per_set[k], sets[k].name);
        printf("; seed %u) from %s\n", SEED, data);
    } else {
        make_synthetic(&c, work);
        printf("catalog: %zu SYNTHETIC photos (no product photos under %s)\n", c.n, data);
    }
    char csv[4200];
    snprintf(csv, sizeof csv, "%s/catalog.csv", work);
    size_t products = write_csv(&c, csv);
    size_t bytes = warm_cache(&c);
    printf("%zu products, %.1f MB of photos read once to warm the page cache; calibration samples %s\n",
           products, (double)bytes / 1e6, quick ? "20" : "100 (default)");

    struct run runs[MAX_RUNS];
    memset(runs, 0, sizeof runs);
    for (int i = 0; i < n_runs; i++) {
        runs[i].threads = threads[i];
        fprintf(stderr, "index_build: building on %u thread%s\n", threads[i], threads[i] == 1 ? "" : "s");
        build(&runs[i], &c, csv, work, models);
        record_build(&runs[i], &c);
    }
    print_builds(runs, n_runs);
    if (js && n_runs >= 2) {
        const struct lk_build_report *a = &runs[0].rep, *b = &runs[n_runs - 1].rep;
        bench_json_begin(js, &si, "index", "scaling");
        fprintf(js,
                ",\"source\":\"%s\",\"quick\":%s,\"images\":%llu,\"threads_base\":%u,\"threads\":%u,"
                "\"images_per_s_base\":%.3f,\"images_per_s\":%.3f,\"speedup_wall\":%.4f,"
                "\"speedup_embed\":%.4f,\"cpu_ratio\":%.4f",
                c.synthetic ? "synthetic" : "products", quick ? "true" : "false",
                (unsigned long long)b->stage_images, runs[0].threads, runs[n_runs - 1].threads,
                (double)a->stage_images / (a->total.wall_ms / 1e3), (double)b->stage_images / (b->total.wall_ms / 1e3),
                a->total.wall_ms / b->total.wall_ms, b->images_per_second / a->images_per_second,
                b->total.cpu_ms / a->total.cpu_ms);
        bench_json_end(js);
    }
    for (int i = 0; i < n_runs; i++)
        lk_build_report_free(&runs[i].rep);
    for (size_t i = 0; i < c.n; i++) {
        free(c.v[i].rel);
        free(c.v[i].abs);
        free(c.v[i].product);
        free(c.v[i].category);
    }
    free(c.v);
    if (c.synthetic)
        rm_rf(c.images_dir);
    if (js)
        fclose(js);
    return 0;
}
