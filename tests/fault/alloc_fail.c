/*
 * tests/fault/alloc_fail.c — the __wrap_* allocation functions behind
 * alloc_fail.h.  Test-only; linked only into tests/fault executables.
 *
 * State is global and atomic (not thread-local) so allocations made on
 * worker threads started by the code under test count too.  When disarmed
 * the wrappers are a counter check plus the real call.
 */
#include "alloc_fail.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t al, size_t n);
void *__real_aligned_alloc(size_t al, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t al, size_t n);
void *__wrap_aligned_alloc(size_t al, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static atomic_bool armed;
static atomic_bool persistent;
static atomic_long countdown;
static atomic_bool fired;
static atomic_ulong seen;

void af_arm(unsigned long n)
{
    atomic_store(&fired, false);
    atomic_store(&seen, 0);
    atomic_store(&persistent, false);
    atomic_store(&countdown, (long)n);
    atomic_store(&armed, n > 0);
}

void af_arm_persistent(unsigned long n)
{
    af_arm(n);
    atomic_store(&persistent, true);
}

bool af_disarm(void)
{
    atomic_store(&armed, false);
    return atomic_load(&fired);
}

unsigned long af_count(void)
{
    return atomic_load(&seen);
}

/* true: this allocation must fail. */
static bool should_fail(void)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed))
        return false;
    atomic_fetch_add(&seen, 1);
    long left = atomic_fetch_sub(&countdown, 1) - 1;
    if (left == 0 || (left < 0 && atomic_load(&persistent))) {
        atomic_store(&fired, true);
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;    /* the original block stays valid, as with a real failure */
    }
    return __real_realloc(p, n);
}

int __wrap_posix_memalign(void **p, size_t al, size_t n)
{
    if (should_fail())
        return ENOMEM;
    return __real_posix_memalign(p, al, n);
}

void *__wrap_aligned_alloc(size_t al, size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_aligned_alloc(al, n);
}

char *__wrap_strdup(const char *s)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strndup(s, n);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (should_fail()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}
