/*
 * bench/util.h — small helpers the benches share: a file into memory, a
 * growing response buffer for libcurl, nearest-rank percentiles, a seeded
 * random generator (splitmix64, so every sample and split is reproducible
 * from a seed printed with the results), a seeded shuffle, and CSV quoting
 * for the catalog CSVs the benches import (RFC 4180).
 */
#ifndef LK_BENCH_UTIL_H
#define LK_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The whole file, malloc'd (caller frees); NULL (and *len = 0) if it cannot
 * be read or is empty. */
unsigned char *bench_slurp(const char *path, size_t *len);

/* A response body, NUL-terminated, grown geometrically.  free(p) when done. */
struct bench_buf {
    char *p;
    size_t len, cap;
};

/* libcurl CURLOPT_WRITEFUNCTION appending to the struct bench_buf in `ud`
 * (CURLOPT_WRITEDATA); returns 0 (abort the transfer) when out of memory. */
size_t bench_buf_write(char *data, size_t size, size_t nmemb, void *ud);

/* Counts by HTTP status (0 = no response), in order of first sight; a
 * status past the BENCH_MAX_STATUS distinct ones is not counted. */
#define BENCH_MAX_STATUS 12
struct bench_statuses {
    int status[BENCH_MAX_STATUS];
    size_t n[BENCH_MAX_STATUS];
    int distinct;
};
void bench_statuses_add(struct bench_statuses *s, int status);

/* qsort comparator for doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

/* Percentile p (0..100) by nearest rank of the n sorted values in v; 0 when
 * n == 0. */
double bench_pct(const double *v, size_t n, double p);

/* Next value of the splitmix64 sequence in *state (Steele, Lea, Flood,
 * "Fast splittable pseudorandom number generators", OOPSLA 2014). */
uint64_t bench_rand(uint64_t *state);

/* Fisher-Yates shuffle of v[0..n) drawing from *state. */
void bench_shuffle(size_t *v, size_t n, uint64_t *state);

/* Write s as one quoted CSV field ("" for a quote inside). */
void bench_csv_field(FILE *f, const char *s);

#endif
