/*
 * test_ratelimit.c — ratelimit.c: token bucket arithmetic on a synthetic
 * clock, client keying (IPv4, IPv6 /64, v4-mapped), bounded memory under a
 * flood of addresses, eviction order.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "pserver.h"

#define SEC 1000000000ull

static struct sockaddr_in v4(uint32_t host_order)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(host_order);
    return a;
}

static struct sockaddr_in6 v6(const char *s)
{
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    cr_assert_eq(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
    return a;
}

Test(ratelimit, burst_then_refill)
{
    struct lk__ratelimit *rl;
    struct sockaddr_in a = v4(0x0a000001);
    unsigned retry = 0;
    uint64_t t = 1000 * SEC;
    cr_assert_eq(lk__ratelimit_new(2.0, 5, 64, &rl), LK_OK);
    for (int i = 0; i < 5; i++)
        cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&a, t, &retry), "burst %d", i);
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, t, &retry));
    cr_assert_eq(retry, 1, "0.5 s to the next token rounds up to 1 s");
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, t + SEC / 4, &retry));
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&a, t + SEC / 2, &retry), "one token after 0.5 s at 2 rps");
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, t + SEC / 2, &retry));
    /* A long pause refills to the burst, not beyond. */
    t += 3600 * SEC;
    for (int i = 0; i < 5; i++)
        cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&a, t, &retry));
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, t, &retry));
    /* A clock that goes backwards grants nothing. */
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, t - 10 * SEC, &retry));
    lk__ratelimit_free(rl);
    lk__ratelimit_free(NULL);
}

Test(ratelimit, slow_rate_retry_after)
{
    struct lk__ratelimit *rl;
    struct sockaddr_in a = v4(0x0a000002);
    unsigned retry = 0;
    cr_assert_eq(lk__ratelimit_new(0.1, 1, 64, &rl), LK_OK);
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&a, SEC, &retry));
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, SEC, &retry));
    cr_assert_eq(retry, 10);
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, 5 * SEC, &retry));
    cr_assert_eq(retry, 6);
    lk__ratelimit_free(rl);
}

Test(ratelimit, clients_are_separate_and_ipv6_is_keyed_by_64)
{
    struct lk__ratelimit *rl;
    struct sockaddr_in a = v4(0xc0a80001), b = v4(0xc0a80002);
    struct sockaddr_in6 x1 = v6("2001:db8:1:2::1"), x2 = v6("2001:db8:1:2:ffff::9"), y = v6("2001:db8:1:3::1");
    struct sockaddr_in6 mapped = v6("::ffff:192.168.0.1");
    unsigned retry;
    cr_assert_eq(lk__ratelimit_new(1.0, 1, 64, &rl), LK_OK);
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&a, SEC, &retry));
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&a, SEC, &retry));
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&b, SEC, &retry), "another client has its own bucket");
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&mapped, SEC, &retry), "v4-mapped v6 = the same v4 client");
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&x1, SEC, &retry));
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&x2, SEC, &retry), "same /64 shares a bucket");
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&y, SEC, &retry), "another /64 does not");
    cr_assert(lk__ratelimit_take(rl, NULL, SEC, &retry), "no address: not limited");
    lk__ratelimit_free(rl);
}

Test(ratelimit, memory_is_bounded_under_a_flood)
{
    struct lk__ratelimit *rl;
    unsigned retry;
    cr_assert_eq(lk__ratelimit_new(1.0, 2, 1000, &rl), LK_OK);
    size_t cap = lk__ratelimit_capacity(rl);
    cr_assert_geq(cap, 1000);
    cr_assert_leq(cap, 2048);
    for (uint32_t i = 0; i < 200000; i++) {
        struct sockaddr_in a = v4(0x0b000000 + i);
        lk__ratelimit_take(rl, (struct sockaddr *)&a, SEC + i, &retry);
    }
    cr_assert_eq(lk__ratelimit_tracked(rl), cap, "table full, never larger");
    cr_assert_geq(lk__ratelimit_evictions(rl), 200000 - cap);
    lk__ratelimit_free(rl);
}

Test(ratelimit, a_throttled_client_survives_churn_of_idle_ones)
{
    /* Full (idle) buckets are evicted before a client that is currently
     * throttled, so a flood of one-shot addresses cannot reset it... as
     * long as its set has full buckets to give up. */
    struct lk__ratelimit *rl;
    struct sockaddr_in bad = v4(0x0c000001);
    unsigned retry;
    uint64_t t = SEC;
    cr_assert_eq(lk__ratelimit_new(1.0, 1, 8, &rl), LK_OK);     /* one set of 8 */
    cr_assert(lk__ratelimit_take(rl, (struct sockaddr *)&bad, t, &retry));
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&bad, t, &retry));
    /* Idle clients seen long ago (buckets refilled to full). */
    for (uint32_t i = 0; i < 50; i++) {
        struct sockaddr_in a = v4(0x0d000000 + i);
        lk__ratelimit_take(rl, (struct sockaddr *)&a, t - SEC / 2, &retry);
    }
    cr_assert(!lk__ratelimit_take(rl, (struct sockaddr *)&bad, t + SEC / 10, &retry), "still throttled");
    lk__ratelimit_free(rl);
}

Test(ratelimit, bad_parameters)
{
    struct lk__ratelimit *rl = NULL;
    cr_assert_eq(lk__ratelimit_new(0, 5, 64, &rl), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk__ratelimit_new(1.0, 0, 64, &rl), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk__ratelimit_new(1.0 / 0.0, 5, 64, &rl), LK_ERR_INVALID_ARG);
    cr_assert_null(rl);
}
