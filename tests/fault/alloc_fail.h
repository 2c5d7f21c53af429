/*
 * tests/fault/alloc_fail.h — allocation-failure injection for tests
 * (SQLite's test_malloc.c idea, done with the linker instead of a hook).
 *
 * A fault-test executable is linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=posix_memalign,
 *   --wrap=aligned_alloc,--wrap=strdup,--wrap=strndup,--wrap=mmap
 * so every call to those functions from objects linked INTO the executable
 * (the test and our static libraries: lk_image, lk_colour, lk_embed,
 * lk_index, ...) goes through __wrap_* in alloc_fail.c.  Calls made inside
 * shared libraries (libjpeg, libpng, XNNPACK, LAPACK, libc's own, and
 * Criterion's) are NOT wrapped: their internal allocations never fail here.
 * mmap is wrapped because the index carves its node storage from anonymous
 * mappings; a failed mmap returns MAP_FAILED with errno ENOMEM.
 *
 * Usage: af_arm(n) makes the n-th wrapped allocation from now fail (once;
 * later ones succeed) — or every allocation from the n-th on with
 * af_arm_persistent(n); af_disarm() stops injecting and returns whether a
 * failure was injected.  af_sweep() runs an operation with n = 1, 2, 3, ...
 * until it completes without an injected failure, asserting each time that
 * it returned LK_OK or LK_ERR_NOMEM (with a message) and did not crash.
 * Leaks are reported by LeakSanitizer at exit in the sanitizer build (the
 * test environment sets detect_leaks=1:abort_on_error=1).
 */
#ifndef LK_TESTS_ALLOC_FAIL_H
#define LK_TESTS_ALLOC_FAIL_H

#include <stdbool.h>
#include <stddef.h>

#include <criterion/criterion.h>

#include "lookalike/status.h"

void af_arm(unsigned long n);
void af_arm_persistent(unsigned long n);
/* Stop injecting; true when at least one allocation was made to fail. */
bool af_disarm(void);
/* Wrapped allocations seen since the last arm. */
unsigned long af_count(void);

/* One attempt of the operation under test: run it, release whatever it
 * produced on success, and return its status. */
typedef int (*af_op)(void *ctx, struct lk_err *err);

/* Sweep n = 1..max_n (persistent = every allocation from the n-th fails).
 * Returns the number of allocations the operation makes when nothing fails
 * (the n at which it first ran clean, minus one).  `other_ok` is an extra
 * status accepted as the clean report of an allocation failure (0 = none),
 * for APIs documented to map it to another code. */
static inline unsigned long af_sweep(const char *what, af_op op, void *ctx, unsigned long max_n,
                                     bool persistent, int other_ok)
{
    for (unsigned long n = 1; n <= max_n; n++) {
        struct lk_err err = {0};
        if (persistent)
            af_arm_persistent(n);
        else
            af_arm(n);
        int rc = op(ctx, &err);
        bool fired = af_disarm();
        if (!fired) {
            cr_assert_eq(rc, LK_OK, "%s: clean run (n=%lu) failed: %d %s", what, n, rc, err.msg);
            return n - 1;
        }
        cr_assert(rc == LK_OK || rc == LK_ERR_NOMEM || (other_ok && rc == other_ok),
                  "%s: allocation #%lu failed -> status %d (%s) '%s', want LK_ERR_NOMEM", what, n, rc,
                  lk_status_str(rc), err.msg);
        if (rc != LK_OK)
            cr_assert(err.msg[0] != '\0', "%s: allocation #%lu: error without a message", what, n);
    }
    cr_assert_fail("%s: still allocating after %lu allocations", what, max_n);
    return 0;
}

#endif
