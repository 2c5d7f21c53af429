/*
 * tests/embed/embed_test.h — helpers shared by the embed test suites
 * (header-only: each suite is its own executable).
 */
#ifndef LK_EMBED_TEST_H
#define LK_EMBED_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

/* Whole file, NUL-terminated; *len (if not NULL) gets its size.  Fails the
 * test when the file cannot be read. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(buf);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = (size_t)n;
    return buf;
}

#endif /* LK_EMBED_TEST_H */
