/*
 * bench/embed_data.c — see embed_data.h.  labels.csv is parsed with libcsv
 * (titles in fashion-small contain quoted commas).
 */
#include "embed_data.h"
#include "sysinfo.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct parse {
    struct bench_set *s;
    const char *dir;
    int row, col;
    int c_path, c_product, c_category, c_colour;
    char *path, *product, *category, *colour;
    char **prod_names, **cat_names;
    size_t cap;
};

static int intern(char ***names, int *count, const char *v)
{
    for (int i = 0; i < *count; i++)
        if (!strcmp((*names)[i], v))
            return i;
    *names = realloc(*names, (size_t)(*count + 1) * sizeof **names);
    (*names)[*count] = strdup(v);
    return (*count)++;
}

static void on_field(void *f, size_t len, void *data)
{
    struct parse *p = data;
    char *v = strndup(f ? f : "", len);
    if (p->row == 0) {
        if (!strcmp(v, "image_path")) p->c_path = p->col;
        if (!strcmp(v, "product_id")) p->c_product = p->col;
        if (!strcmp(v, "category")) p->c_category = p->col;
        if (!strcmp(v, "color")) p->c_colour = p->col;
        free(v);
    } else if (p->col == p->c_path) {
        p->path = v;
    } else if (p->col == p->c_product) {
        p->product = v;
    } else if (p->col == p->c_category) {
        p->category = v;
    } else if (p->col == p->c_colour) {
        p->colour = v;
    } else {
        free(v);
    }
    p->col++;
}

static void on_row(int c, void *data)
{
    (void)c;
    struct parse *p = data;
    struct bench_set *s = p->s;
    if (p->row > 0 && p->path && p->product && p->category) {
        if (s->n == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 1024;
            s->paths = realloc(s->paths, p->cap * sizeof *s->paths);
            s->product = realloc(s->product, p->cap * sizeof *s->product);
            s->category = realloc(s->category, p->cap * sizeof *s->category);
            s->colour = realloc(s->colour, p->cap * sizeof *s->colour);
        }
        s->colour[s->n] = p->colour && *p->colour ? intern(&s->colour_names, &s->n_colours, p->colour) : -1;
        size_t len = strlen(p->dir) + strlen(p->path) + 2;
        s->paths[s->n] = malloc(len);
        snprintf(s->paths[s->n], len, "%s/%s", p->dir, p->path);
        s->product[s->n] = intern(&p->prod_names, &s->n_products, p->product);
        s->category[s->n] = intern(&p->cat_names, &s->n_categories, p->category);
        s->n++;
    }
    free(p->path), free(p->product), free(p->category), free(p->colour);
    p->path = p->product = p->category = p->colour = NULL;
    p->row++;
    p->col = 0;
}

int bench_set_load(const char *dir, const char *name, struct bench_set *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    struct csv_parser csv;
    csv_init(&csv, CSV_APPEND_NULL);
    struct parse p = {.s = s, .dir = dir, .c_path = -1, .c_product = -1, .c_category = -1, .c_colour = -1};
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        csv_parse(&csv, buf, got, on_field, on_row, &p);
    csv_fini(&csv, on_field, on_row, &p);
    csv_free(&csv);
    fclose(f);
    s->product_names = p.prod_names;
    s->category_names = p.cat_names;
    if (p.c_path < 0 || p.c_product < 0 || p.c_category < 0 || s->n == 0) {
        fprintf(stderr, "%s: need image_path, product_id and category columns and rows\n", path);
        bench_set_free(s);
        return -1;
    }
    return 0;
}

void bench_set_free(struct bench_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->paths[i]);
    free(s->paths), free(s->product), free(s->category), free(s->colour);
    for (int i = 0; i < s->n_products; i++)
        free(s->product_names[i]);
    for (int i = 0; i < s->n_categories; i++)
        free(s->category_names[i]);
    for (int i = 0; i < s->n_colours; i++)
        free(s->colour_names[i]);
    free(s->product_names), free(s->category_names), free(s->colour_names);
    memset(s, 0, sizeof *s);
}


void bench_print_env(void)
{
    struct bench_sysinfo si;
    bench_sysinfo_get(&si);
    bench_sysinfo_print(&si, stdout);
    __builtin_cpu_init();
    const char *isa = __builtin_cpu_supports("avx512f")  ? "AVX-512"
                      : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "AVX2+FMA"
                      : __builtin_cpu_supports("avx")  ? "AVX"
                                                       : "SSE2";
    printf("simd (CNN): XNNPACK picks its micro-kernels at run time by CPUID; best ISA here: %s\n", isa);
}
