/*
 * test_config.c — config.c: options by name, sizes with units, ranges,
 * tokens refused.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "pserver.h"

Test(config, set_values)
{
    struct lk_server_config c;
    struct lk_err err = {0};
    lk_server_config_default(&c);
    cr_assert_eq(lk_server_config_set(&c, "port", "0", &err), LK_OK);
    cr_assert_eq(c.port, 0);
    cr_assert_eq(lk_server_config_set(&c, "port", "65535", &err), LK_OK);
    cr_assert_eq(c.port, 65535);
    cr_assert_eq(lk_server_config_set(&c, "bind", "::1", &err), LK_OK);
    cr_assert_str_eq(c.bind_address, "::1");
    cr_assert_eq(lk_server_config_set(&c, "max_body_bytes", "20MiB", &err), LK_OK);
    cr_assert_eq(c.max_body_bytes, 20u << 20);
    cr_assert_eq(lk_server_config_set(&c, "max_body_bytes", "512k", &err), LK_OK);
    cr_assert_eq(c.max_body_bytes, 512u << 10);
    cr_assert_eq(lk_server_config_set(&c, "max_buffered_bytes", "1.5GiB", &err), LK_OK);
    cr_assert_eq(c.max_buffered_bytes, (size_t)3 << 29);
    cr_assert_eq(lk_server_config_set(&c, "rate_rps", "2.5", &err), LK_OK);
    cr_assert_float_eq(c.rate_rps, 2.5, 1e-12);
    cr_assert_eq(lk_server_config_set(&c, "rate_rps", "0", &err), LK_OK);
    cr_assert_eq(lk_server_config_set(&c, "threads", "4", &err), LK_OK);
    cr_assert_eq(c.threads, 4);
    cr_assert_eq(lk_server_config_set(&c, "search_requires_read_token", "true", &err), LK_OK);
    cr_assert(c.search_requires_read_token);
}

Test(config, refusals_name_the_option)
{
    static const char *const bad[][2] = {
        {"port", "65536"}, {"port", "-1"}, {"port", "80x"}, {"port", ""}, {"threads", "1.5"},
        {"threads", "100000"}, {"max_body_bytes", "10 parsecs"}, {"max_body_bytes", "1"},
        {"max_body_bytes", "1TiB"}, {"rate_rps", "nan"}, {"rate_rps", "inf"}, {"rate_burst", "0"},
        {"search_requires_read_token", "maybe"}, {"connection_timeout_s", "0"}, {"bind", ""},
        {"max_json_bytes", "0x10"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct lk_server_config c;
        struct lk_err err = {0};
        lk_server_config_default(&c);
        cr_assert_eq(lk_server_config_set(&c, bad[i][0], bad[i][1], &err), LK_ERR_INVALID_ARG, "%s=%s accepted",
                     bad[i][0], bad[i][1]);
        cr_assert_not_null(strstr(err.msg, bad[i][0]), "message names the option: %s", err.msg);
    }
}

Test(config, unknown_options_and_tokens)
{
    struct lk_server_config c;
    struct lk_err err = {0};
    lk_server_config_default(&c);
    cr_assert_eq(lk_server_config_set(&c, "max_body", "1", &err), LK_ERR_INVALID_ARG);
    cr_assert_eq(lk_server_config_set(&c, "admin_token", "0123456789abcdef0123", &err), LK_ERR_INVALID_ARG);
    cr_assert_not_null(strstr(err.msg, "token file"));
    cr_assert_eq(c.tokens.admin[0], '\0');
    cr_assert_eq(lk_server_config_set(NULL, "port", "1", &err), LK_ERR_INVALID_ARG);
}

Test(config, option_list)
{
    size_t n = 0;
    const char *help = NULL, *name;
    while ((name = lk_server_config_option(n, &help)) != NULL) {
        struct lk_server_config c;
        struct lk_err err = {0};
        cr_assert_not_null(help);
        lk_server_config_default(&c);
        /* Every listed option is known by that name and refuses garbage
         * (bind is only checked for shape here; lk_server_start parses it). */
        int rc = lk_server_config_set(&c, name, "not-a-value!", &err);
        if (strcmp(name, "bind") != 0)
            cr_assert_eq(rc, LK_ERR_INVALID_ARG, "%s accepted garbage", name);
        cr_assert_null(strstr(err.msg, "unknown server option"), "%s", name);
        n++;
    }
    cr_assert_geq(n, 16);
}
