/*
 * bench/bench_util.h — small helpers several benches share: a seeded
 * random generator (splitmix64, so every sample and split is reproducible
 * from a seed printed with the results), a seeded shuffle, and CSV quoting
 * for the catalog CSVs the benches import (RFC 4180).
 */
#ifndef LK_BENCH_UTIL_H
#define LK_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Next value of the splitmix64 sequence in *state (Steele, Lea, Flood,
 * "Fast splittable pseudorandom number generators", OOPSLA 2014). */
uint64_t bench_rand(uint64_t *state);

/* Fisher-Yates shuffle of v[0..n) drawing from *state. */
void bench_shuffle(size_t *v, size_t n, uint64_t *state);

/* Write s as one quoted CSV field ("" for a quote inside). */
void bench_csv_field(FILE *f, const char *s);

#endif
