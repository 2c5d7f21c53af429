/*
 * test_errors.c — errors.c: the one LK_ERR_* -> HTTP table.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "pserver.h"

Test(errors, status_table)
{
    cr_assert_eq(lk__http_status(LK_ERR_TOO_LARGE), 413);
    cr_assert_eq(lk__http_status(LK_ERR_UNSUPPORTED_FORMAT), 415);
    cr_assert_eq(lk__http_status(LK_ERR_DIMENSIONS), 422);
    cr_assert_eq(lk__http_status(LK_ERR_CORRUPT), 400);
    cr_assert_eq(lk__http_status(LK_ERR_TRUNCATED), 400);
    cr_assert_eq(lk__http_status(LK_ERR_EMPTY), 400);
    cr_assert_eq(lk__http_status(LK_ERR_INVALID_ARG), 400);
    cr_assert_eq(lk__http_status(LK_ERR_PARSE), 400);
    cr_assert_eq(lk__http_status(LK_ERR_NOT_FOUND), 404);
    cr_assert_eq(lk__http_status(LK_ERR_EXISTS), 409);
    cr_assert_eq(lk__http_status(LK_ERR_STATE), 503);
    cr_assert_eq(lk__http_status(LK_ERR_NOMEM), 503);
    cr_assert_eq(lk__http_status(LK_ERR_IO), 500);
    cr_assert_eq(lk__http_status(LK_ERR_INTERNAL), 500);
    cr_assert_eq(lk__http_status(-12345), 500);
    cr_assert_str_eq(lk__error_code(LK_ERR_UNSUPPORTED_FORMAT), "unsupported_format");
    cr_assert_str_eq(lk__error_code(-12345), "internal_error");
    /* Every defined code has a mapping. */
    for (int c = LK_ERR_NOMEM; c >= LK_ERR_EMPTY; c--)
        if (c != LK_ERR_INTERNAL)
            cr_assert_str_neq(lk__error_code(c), "internal_error", "code %d unmapped", c);
}

Test(errors, reply_hides_5xx_details)
{
    struct lk__reply out = {0};
    struct lk_err err = {0};
    lk_err_set(&err, LK_ERR_DB, "sqlite: disk I/O error at /var/lib/secret.db");
    lk__reply_status(&out, LK_ERR_DB, &err, NULL);
    cr_assert_eq(out.status, 500);
    cr_assert_null(strstr(out.body, "secret"), "%s", out.body);
    lk__reply_discard(&out);
    lk_err_set(&err, LK_ERR_DIMENSIONS, "image is 20000x20000");
    lk__reply_status(&out, LK_ERR_DIMENSIONS, &err, "image");
    cr_assert_eq(out.status, 422);
    cr_assert_not_null(strstr(out.body, "20000x20000"));
    cr_assert_not_null(strstr(out.body, "\"param\":\"image\""));
    lk__reply_discard(&out);
    lk__reply_status(&out, LK_ERR_STATE, NULL, NULL);
    cr_assert_eq(out.status, 503);
    cr_assert_eq(out.retry_after, 1);
    lk__reply_discard(&out);
}
