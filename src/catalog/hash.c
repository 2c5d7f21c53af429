/*
 * hash.c — SHA-1 (FIPS 180-4) content hashes for catalog images and index
 * generation checksums.  The only file that includes GNU Nettle, so the hash
 * library can be swapped in one place.
 *
 * SHA-1 is used for identity (duplicate photos, torn/changed generation
 * files), not for security against a chosen-collision attacker: the inputs
 * are the merchant's own files.
 */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcatalog.h"

static void to_hex(const uint8_t *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void lk__sha1_hex(const void *data, size_t len, char out[41])
{
    struct sha1_ctx ctx;
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, len, data);
    sha1_digest(&ctx, sizeof d, d);
    to_hex(d, sizeof d, out);
}

int lk__sha1_file(const char *path, char out[41], uint64_t *size, struct lk_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "open %s: %s", path, strerror(errno));
    struct sha1_ctx ctx;
    sha1_init(&ctx);
    uint8_t buf[1 << 16];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return lk_err_set(err, LK_ERR_IO, "read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        sha1_update(&ctx, (size_t)n, buf);
        total += (uint64_t)n;
    }
    close(fd);
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_digest(&ctx, sizeof d, d);
    to_hex(d, sizeof d, out);
    if (size)
        *size = total;
    return LK_OK;
}

int lk__buf_append(struct lk__buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return LK_ERR_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return LK_OK;
}

void lk__buf_free(struct lk__buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
