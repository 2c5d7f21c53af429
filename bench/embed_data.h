/*
 * bench/embed_data.h — shared by bench/embed.c and bench/embed_quality.c:
 * reading a product-photo set (labels.csv with image_path, product_id,
 * category; see /work/shared/data/products/README.md) and printing the
 * machine/build line every benchmark starts with.
 */
#ifndef LK_BENCH_EMBED_DATA_H
#define LK_BENCH_EMBED_DATA_H

#include <stddef.h>

struct bench_set {
    char name[64];
    size_t n;
    char **paths;           /* absolute image paths */
    int *product;           /* product id index, 0..n_products-1 */
    int *category;          /* category index, 0..n_categories-1 */
    int n_products, n_categories;
    char **product_names;   /* [n_products], the labels' product_id */
    char **category_names;  /* [n_categories] */
    int *colour;            /* colour index per image, -1 = unlabelled (or no column) */
    char **colour_names;    /* [n_colours] */
    int n_colours;
};

/* Load <dir>/labels.csv.  Returns 0, or -1 with a message on stderr. */
int bench_set_load(const char *dir, const char *name, struct bench_set *s);
void bench_set_free(struct bench_set *s);

/* Print "# CPU ...", "# SIMD ...", "# compiler, build options, git revision"
 * (the build macros come from bench/meson.build's lk_bench_args). */
void bench_print_env(void);

double bench_now_ms(void);

#endif
