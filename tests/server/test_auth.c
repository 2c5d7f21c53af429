/*
 * test_auth.c — auth.c: constant-time compare, the access decision matrix,
 * token loading from the environment and from a private file.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pserver.h"

#define ADMIN "admin-0123456789abcdef"
#define READ "read-0123456789abcdefgh"

static struct lk_server_tokens both(void)
{
    struct lk_server_tokens t = {0};
    strcpy(t.admin, ADMIN);
    strcpy(t.read, READ);
    return t;
}

Test(auth, token_equal)
{
    cr_assert(lk__token_equal("abcdef", "abcdef", 6));
    cr_assert(!lk__token_equal("abcdef", "abcdeg", 6));
    cr_assert(!lk__token_equal("abcdef", "abcde", 5));
    cr_assert(!lk__token_equal("abcdef", "abcdefg", 7));
    cr_assert(!lk__token_equal("abcdef", "", 0));
    cr_assert(!lk__token_equal("", "", 0), "an unset token never matches");
    cr_assert(lk__token_equal("abcdef", "abcdefXYZ", 6), "only given_len bytes count");
}

Test(auth, decide_matrix)
{
    struct lk_server_tokens t = both();
    enum lk__auth_level g;
    const char *msg;
    /* public route */
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_NONE, NULL, &g, &msg), 0);
    cr_assert_eq(g, LK__AUTH_NONE);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_NONE, "Bearer " ADMIN, &g, &msg), 0);
    cr_assert_eq(g, LK__AUTH_ADMIN);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_NONE, "Bearer nope-nope-nope-nope", &g, &msg), 403);
    /* read route */
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_READ, NULL, &g, &msg), 401);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_READ, "Bearer " READ, &g, &msg), 0);
    cr_assert_eq(g, LK__AUTH_READ);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_READ, "bearer  " ADMIN "  ", &g, &msg), 0);
    cr_assert_eq(g, LK__AUTH_ADMIN);
    /* admin route */
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, NULL, &g, &msg), 401);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, "Basic abc", &g, &msg), 401);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, "Bearer ", &g, &msg), 401);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, "Bearer " READ, &g, &msg), 403);
    cr_assert_not_null(strstr(msg, "admin"));
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, "Bearer " ADMIN "x", &g, &msg), 403);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, "Bearer " ADMIN, &g, &msg), 0);
    /* no admin token configured: admin API closed even to a "matching" empty token */
    t.admin[0] = '\0';
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, "Bearer " ADMIN, &g, &msg), 403);
    cr_assert_eq(lk__auth_decide(&t, LK__AUTH_ADMIN, NULL, &g, &msg), 403);
}

Test(auth, tokens_from_environment)
{
    struct lk_server_tokens t;
    struct lk_err err = {0};
    setenv("LOOKALIKE_ADMIN_TOKEN", ADMIN, 1);
    setenv("LOOKALIKE_READ_TOKEN", READ, 1);
    cr_assert_eq(lk_server_tokens_load(&t, NULL, &err), LK_OK, "%s", err.msg);
    cr_assert_str_eq(t.admin, ADMIN);
    cr_assert_str_eq(t.read, READ);
    setenv("LOOKALIKE_READ_TOKEN", "short", 1);
    cr_assert_eq(lk_server_tokens_load(&t, NULL, &err), LK_ERR_INVALID_ARG);
    cr_assert_eq(t.admin[0], '\0', "nothing half-loaded");
    setenv("LOOKALIKE_READ_TOKEN", "has a space in it 1234", 1);
    cr_assert_eq(lk_server_tokens_load(&t, NULL, &err), LK_ERR_INVALID_ARG);
    setenv("LOOKALIKE_READ_TOKEN", ADMIN, 1);
    cr_assert_eq(lk_server_tokens_load(&t, NULL, &err), LK_ERR_INVALID_ARG, "read == admin refused");
    unsetenv("LOOKALIKE_ADMIN_TOKEN");
    unsetenv("LOOKALIKE_READ_TOKEN");
    cr_assert_eq(lk_server_tokens_load(&t, NULL, &err), LK_OK);
    cr_assert_eq(t.admin[0], '\0');
    cr_assert_eq(t.read[0], '\0');
}

static char *write_file(const char *content, mode_t mode)
{
    char *path = strdup("/tmp/lk-test-tokens-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    fchmod(fd, mode);
    close(fd);
    return path;
}

Test(auth, tokens_from_file)
{
    struct lk_server_tokens t;
    struct lk_err err = {0};
    char *p = write_file("# lookalike tokens\n\nadmin=" ADMIN "\r\n  read=" READ "  \n", 0600);
    cr_assert_eq(lk_server_tokens_load(&t, p, &err), LK_OK, "%s", err.msg);
    cr_assert_str_eq(t.admin, ADMIN);
    cr_assert_str_eq(t.read, READ);
    unlink(p);
    free(p);

    p = write_file("admin=" ADMIN "\n", 0644);
    cr_assert_eq(lk_server_tokens_load(&t, p, &err), LK_ERR_INVALID_ARG);
    cr_assert_not_null(strstr(err.msg, "chmod 600"));
    unlink(p);
    free(p);

    p = write_file("root=" ADMIN "\n", 0600);
    cr_assert_eq(lk_server_tokens_load(&t, p, &err), LK_ERR_INVALID_ARG);
    unlink(p);
    free(p);

    cr_assert_eq(lk_server_tokens_load(&t, "/nonexistent/tokens", &err), LK_ERR_IO);
    cr_assert_eq(lk_server_tokens_load(NULL, NULL, &err), LK_ERR_INVALID_ARG);
}
