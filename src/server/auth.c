/*
 * auth.c — bearer tokens: loading (environment or a private file, never the
 * command line), constant-time comparison, and the access decision.
 *
 * Two tokens, least privilege: the read token opens the shopper routes when
 * the operator chooses to protect them (search_requires_read_token); the
 * admin token opens everything, including catalog writes and reloads.
 * 401 = no usable credential (with WWW-Authenticate: Bearer), 403 = a
 * credential that is wrong or not enough for this route.
 *
 * Timing: lk__token_equal touches every byte of the configured token
 * whatever the presented one holds, so the response time says nothing about
 * how many leading bytes matched.  (The presented length is the attacker's
 * own knowledge.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pserver.h"

bool lk__token_equal(const char *expected, const char *given, size_t given_len)
{
    size_t n = strlen(expected);
    volatile unsigned char diff = (unsigned char)(n != given_len);
    for (size_t i = 0; i < n; i++) {
        /* Read a real byte of `given` even when it is shorter, so the loop
         * does the same work either way. */
        unsigned char g = given_len ? (unsigned char)given[i % given_len] : 0;
        diff |= (unsigned char)expected[i] ^ g;
    }
    return n > 0 && diff == 0;
}

/* What the presented credential is worth. */
enum presented { P_NONE, P_MALFORMED, P_WRONG, P_READ, P_ADMIN };

static enum presented evaluate(const struct lk_server_tokens *t, const char *h)
{
    const char *tok;
    size_t len;
    bool admin, read;
    if (!h)
        return P_NONE;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return P_MALFORMED;
    tok = h + 7;
    while (*tok == ' ')
        tok++;
    len = strlen(tok);
    while (len && tok[len - 1] == ' ')
        len--;
    if (len == 0 || len > LK_TOKEN_MAX)
        return P_MALFORMED;
    /* Compare against both (no early exit), so timing does not reveal which
     * of the two configured tokens a guess is closer to. */
    admin = t->admin[0] && lk__token_equal(t->admin, tok, len);
    read = t->read[0] && lk__token_equal(t->read, tok, len);
    if (admin)
        return P_ADMIN;
    if (read)
        return P_READ;
    return P_WRONG;
}

unsigned lk__auth_decide(const struct lk_server_tokens *t, enum lk__auth_level required,
                         const char *authorization, enum lk__auth_level *granted, const char **msg)
{
    enum presented p = evaluate(t, authorization);
    *granted = p == P_ADMIN ? LK__AUTH_ADMIN : p == P_READ ? LK__AUTH_READ : LK__AUTH_NONE;
    *msg = NULL;

    if (required == LK__AUTH_ADMIN && !t->admin[0]) {
        *msg = "the admin API is disabled (no admin token configured)";
        return 403;
    }
    switch (p) {
    case P_MALFORMED:
        *msg = "Authorization header must be 'Bearer <token>'";
        return 401;
    case P_WRONG:
        *msg = "invalid token";
        return 403;
    case P_NONE:
        if (required == LK__AUTH_NONE)
            return 0;
        *msg = "this route needs a bearer token";
        return 401;
    case P_READ:
        if (required == LK__AUTH_ADMIN) {
            *msg = "this route needs the admin token";
            return 403;
        }
        return 0;
    case P_ADMIN:
        return 0;
    }
    return 403;
}

/* ==== Loading =========================================================== */

static int set_token(char *dst, const char *src, size_t len, const char *what, struct lk_err *err)
{
    if (len < LK_TOKEN_MIN || len > LK_TOKEN_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "%s token must be %d..%d characters (got %zu)", what,
                          LK_TOKEN_MIN, LK_TOKEN_MAX, len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)src[i] < 0x21 || (unsigned char)src[i] > 0x7e)
            return lk_err_set(err, LK_ERR_INVALID_ARG,
                              "%s token may only contain visible ASCII characters (no spaces)", what);
    memcpy(dst, src, len);
    dst[len] = '\0';
    return LK_OK;
}

static int load_file(struct lk_server_tokens *t, const char *path, struct lk_err *err)
{
    char buf[4096];
    size_t n = 0;
    ssize_t got;
    struct stat st;
    int rc = LK_OK, line_no = 0;
    char *line, *save = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "token file %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = lk_err_set(err, LK_ERR_IO, "token file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = lk_err_set(err, LK_ERR_INVALID_ARG, "token file %s is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        rc = lk_err_set(err, LK_ERR_INVALID_ARG,
                        "token file %s is accessible by group/others; chmod 600 it", path);
        goto out;
    }
    while ((got = read(fd, buf + n, sizeof buf - 1 - n)) > 0) {
        n += (size_t)got;
        if (n == sizeof buf - 1) {
            rc = lk_err_set(err, LK_ERR_INVALID_ARG, "token file %s is too large", path);
            goto out;
        }
    }
    if (got < 0) {
        rc = lk_err_set(err, LK_ERR_IO, "token file %s: %s", path, strerror(errno));
        goto out;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        rc = lk_err_set(err, LK_ERR_INVALID_ARG, "token file %s contains a NUL byte", path);
        goto out;
    }
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        line_no++;
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        while (*line == ' ' || *line == '\t')
            line++, len--;
        if (len == 0 || line[0] == '#')
            continue;
        if (strncmp(line, "admin=", 6) == 0)
            rc = set_token(t->admin, line + 6, len - 6, "admin", err);
        else if (strncmp(line, "read=", 5) == 0)
            rc = set_token(t->read, line + 5, len - 5, "read", err);
        else
            rc = lk_err_set(err, LK_ERR_INVALID_ARG, "token file %s line %d: expected admin=TOKEN or read=TOKEN",
                            path, line_no);
        if (rc != LK_OK)
            goto out;
    }
out:
    explicit_bzero(buf, sizeof buf);
    close(fd);
    return rc;
}

int lk_server_tokens_load(struct lk_server_tokens *t, const char *token_file, struct lk_err *err)
{
    const char *a, *r;
    int rc;
    if (!t)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "tokens is NULL");
    memset(t, 0, sizeof *t);
    if (token_file) {
        rc = load_file(t, token_file, err);
    } else {
        rc = LK_OK;
        a = getenv("LOOKALIKE_ADMIN_TOKEN");
        r = getenv("LOOKALIKE_READ_TOKEN");
        if (a && *a)
            rc = set_token(t->admin, a, strlen(a), "admin", err);
        if (rc == LK_OK && r && *r)
            rc = set_token(t->read, r, strlen(r), "read", err);
    }
    if (rc == LK_OK && t->admin[0] && t->read[0] && strcmp(t->admin, t->read) == 0)
        rc = lk_err_set(err, LK_ERR_INVALID_ARG, "the read and admin tokens must differ");
    if (rc != LK_OK)
        explicit_bzero(t, sizeof *t);
    return rc;
}
