/*
 * ratelimit.c — per-client token buckets in a fixed-size table.
 *
 * Client = IP address: an IPv4 address, or the /64 prefix of an IPv6
 * address (one host usually owns a whole /64, so keying on the full address
 * would let it mint fresh buckets at will).  Each client has a bucket of
 * `burst` tokens refilled at `rps` tokens/s (token bucket, as in RFC 2697's
 * single-rate meter); a request takes one token or gets 429 with
 * Retry-After = the whole seconds until the next token.
 *
 * Memory is bounded whatever the traffic: the table is set-associative
 * (LK__RL_WAYS entries per set, a set chosen by a keyed hash of the
 * client).  A new client replaces, in its set, first a free slot, then a
 * client whose bucket has refilled to full (forgetting it loses nothing: it
 * would get a full bucket anyway), then the least recently seen.  Under a
 * flood from many addresses the cost is that an evicted client comes back
 * with a full bucket — it cannot grow memory or slow lookups.
 *
 * The hash is keyed with a per-process random seed, so a client cannot pick
 * addresses that collide into one set to evict a victim's bucket on
 * purpose.
 *
 * Locking: one mutex per set; a lookup touches exactly one set, so threads
 * rarely contend.
 */
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pserver.h"

#define LK__RL_WAYS 8

struct rl_entry {
    uint8_t key[17];        /* family tag + 16 address bytes */
    bool used;
    double tokens;
    uint64_t last_ns;
};

struct rl_set {
    pthread_mutex_t lock;
    struct rl_entry e[LK__RL_WAYS];
};

struct lk__ratelimit {
    double rps;
    double burst;
    size_t n_sets;          /* power of two */
    uint64_t seed[2];
    struct rl_set *sets;
    atomic_uint_fast64_t evictions;
};

int lk__ratelimit_new(double rps, unsigned burst, unsigned capacity, struct lk__ratelimit **out)
{
    struct lk__ratelimit *rl;
    size_t sets = 1;
    if (!out || !(rps > 0) || !isfinite(rps) || burst == 0)
        return LK_ERR_INVALID_ARG;
    if (capacity == 0)
        capacity = LK__RL_TABLE_DEFAULT;
    if (capacity > LK__RL_TABLE_MAX)
        capacity = LK__RL_TABLE_MAX;
    while (sets * LK__RL_WAYS < capacity)
        sets <<= 1;
    rl = calloc(1, sizeof *rl);
    if (!rl)
        return LK_ERR_NOMEM;
    rl->sets = calloc(sets, sizeof *rl->sets);
    if (!rl->sets) {
        free(rl);
        return LK_ERR_NOMEM;
    }
    rl->rps = rps;
    rl->burst = burst;
    rl->n_sets = sets;
    if (getrandom(rl->seed, sizeof rl->seed, 0) != (ssize_t)sizeof rl->seed) {
        /* No entropy source: still correct, just predictable set choice. */
        rl->seed[0] = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)rl;
        rl->seed[1] = lk__now_ns();
    }
    for (size_t i = 0; i < sets; i++)
        pthread_mutex_init(&rl->sets[i].lock, NULL);
    atomic_init(&rl->evictions, 0);
    *out = rl;
    return LK_OK;
}

void lk__ratelimit_free(struct lk__ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n_sets; i++)
        pthread_mutex_destroy(&rl->sets[i].lock);
    free(rl->sets);
    free(rl);
}

/* Client key from a socket address; false for families we cannot key. */
static bool client_key(const struct sockaddr *sa, uint8_t key[17])
{
    memset(key, 0, 17);
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key[0] = 4;
        memcpy(key + 1, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) {     /* ::ffff:a.b.c.d is an IPv4 client */
            key[0] = 4;
            memcpy(key + 1, a + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a, 8);              /* the /64 prefix */
        }
        return true;
    }
    return false;
}

/* Keyed mix of the 17-byte key (two rounds of a 64-bit finaliser, seeded);
 * not a MAC, just enough that set choice is unpredictable to clients. */
static uint64_t key_hash(const struct lk__ratelimit *rl, const uint8_t key[17])
{
    uint64_t a, b, h;
    memcpy(&a, key + 1, 8);
    memcpy(&b, key + 9, 8);
    h = rl->seed[0] ^ ((uint64_t)key[0] << 56);
    h ^= a;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h ^= b ^ rl->seed[1];
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    return h;
}

static double refilled(const struct lk__ratelimit *rl, const struct rl_entry *e, uint64_t now_ns)
{
    double dt = now_ns > e->last_ns ? (double)(now_ns - e->last_ns) * 1e-9 : 0.0;
    double t = e->tokens + dt * rl->rps;
    return t > rl->burst ? rl->burst : t;
}

bool lk__ratelimit_take(struct lk__ratelimit *rl, const struct sockaddr *addr, uint64_t now_ns,
                        unsigned *retry_after_s)
{
    uint8_t key[17];
    struct rl_set *set;
    struct rl_entry *e = NULL, *victim = NULL;
    bool allowed;
    if (!rl || !client_key(addr, key))
        return true;    /* unix sockets etc.: nothing to key on */
    set = &rl->sets[key_hash(rl, key) & (rl->n_sets - 1)];

    pthread_mutex_lock(&set->lock);
    for (int i = 0; i < LK__RL_WAYS; i++)
        if (set->e[i].used && memcmp(set->e[i].key, key, sizeof key) == 0) {
            e = &set->e[i];
            break;
        }
    if (!e) {
        /* Replacement order: free slot, full bucket, least recently seen. */
        for (int i = 0; i < LK__RL_WAYS && !victim; i++)
            if (!set->e[i].used)
                victim = &set->e[i];
        for (int i = 0; i < LK__RL_WAYS && !victim; i++)
            if (refilled(rl, &set->e[i], now_ns) >= rl->burst)
                victim = &set->e[i];
        if (!victim) {
            victim = &set->e[0];
            for (int i = 1; i < LK__RL_WAYS; i++)
                if (set->e[i].last_ns < victim->last_ns)
                    victim = &set->e[i];
        }
        if (victim->used)
            atomic_fetch_add_explicit(&rl->evictions, 1, memory_order_relaxed);
        e = victim;
        memcpy(e->key, key, sizeof key);
        e->used = true;
        e->tokens = rl->burst;
        e->last_ns = now_ns;
    }
    e->tokens = refilled(rl, e, now_ns);
    if (now_ns > e->last_ns)
        e->last_ns = now_ns;
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        allowed = true;
    } else {
        double wait = (1.0 - e->tokens) / rl->rps;
        unsigned s = (unsigned)ceil(wait);
        *retry_after_s = s ? s : 1;
        allowed = false;
    }
    pthread_mutex_unlock(&set->lock);
    return allowed;
}

size_t lk__ratelimit_tracked(struct lk__ratelimit *rl)
{
    size_t n = 0;
    if (!rl)
        return 0;
    for (size_t s = 0; s < rl->n_sets; s++) {
        pthread_mutex_lock(&rl->sets[s].lock);
        for (int i = 0; i < LK__RL_WAYS; i++)
            n += rl->sets[s].e[i].used;
        pthread_mutex_unlock(&rl->sets[s].lock);
    }
    return n;
}

uint64_t lk__ratelimit_evictions(struct lk__ratelimit *rl)
{
    return rl ? atomic_load_explicit(&rl->evictions, memory_order_relaxed) : 0;
}

size_t lk__ratelimit_capacity(const struct lk__ratelimit *rl)
{
    return rl ? rl->n_sets * LK__RL_WAYS : 0;
}
