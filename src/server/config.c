/*
 * config.c — set server options by name from text ("max_body_bytes",
 * "10MiB"), so the `serve` command can take them from flags or a config
 * file without knowing struct lk_server_config field by field.
 *
 * One table drives parsing, range checks and the list of names, so a new
 * option is one line here.  Values are validated with the same bounds as
 * lk_server_start (no silent clamping: out of range is an error naming the
 * option).  Tokens are deliberately NOT settable here: secrets come from the
 * environment or a token file (lk_server_tokens_load), never from argv or a
 * world-readable config file.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pserver.h"

enum opt_type { T_UNSIGNED, T_PORT, T_SIZE, T_DOUBLE, T_BOOL, T_ADDRESS };

static const struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    double min, max;
    const char *help;
} opts[] = {
    {"bind", T_ADDRESS, offsetof(struct lk_server_config, bind_address), 0, 0, "numeric IPv4/IPv6 address to listen on"},
    {"port", T_PORT, offsetof(struct lk_server_config, port), 0, 65535, "TCP port, 0 = ephemeral"},
    {"threads", T_UNSIGNED, offsetof(struct lk_server_config, threads), 0, LK_SERVER_THREADS_MAX, "worker threads, 0 = CPUs"},
    {"max_body_bytes", T_SIZE, offsetof(struct lk_server_config, max_body_bytes), (double)LK_SERVER_MAX_BODY_MIN,
     (double)LK_SERVER_MAX_BODY_MAX, "image upload limit"},
    {"max_json_bytes", T_SIZE, offsetof(struct lk_server_config, max_json_bytes), 1024, 64.0 * 1024 * 1024,
     "JSON body limit"},
    {"max_buffered_bytes", T_SIZE, offsetof(struct lk_server_config, max_buffered_bytes), 1024, 64.0 * 1024 * 1024 * 1024,
     "request bodies in memory at once"},
    {"connection_timeout_s", T_UNSIGNED, offsetof(struct lk_server_config, connection_timeout_s), 1, 3600,
     "idle connection timeout"},
    {"request_timeout_s", T_UNSIGNED, offsetof(struct lk_server_config, request_timeout_s), 1, 3600,
     "whole-request body deadline"},
    {"max_connections", T_UNSIGNED, offsetof(struct lk_server_config, max_connections), 1, 65536, "connections in total"},
    {"max_connections_per_ip", T_UNSIGNED, offsetof(struct lk_server_config, max_connections_per_ip), 1, 65536,
     "connections per client IP"},
    {"connection_memory_bytes", T_SIZE, offsetof(struct lk_server_config, connection_memory_bytes), 16 * 1024,
     16.0 * 1024 * 1024, "per-connection header/read pool"},
    {"rate_rps", T_DOUBLE, offsetof(struct lk_server_config, rate_rps), 0, 1e6, "requests/s per client, 0 = off"},
    {"rate_burst", T_UNSIGNED, offsetof(struct lk_server_config, rate_burst), 1, 1000000, "token bucket size"},
    {"rate_table_size", T_UNSIGNED, offsetof(struct lk_server_config, rate_table_size), 8, LK__RL_TABLE_MAX,
     "clients the rate limiter remembers"},
    {"search_requires_read_token", T_BOOL, offsetof(struct lk_server_config, search_requires_read_token), 0, 1,
     "shopper routes need the read token"},
    {"shutdown_grace_ms", T_UNSIGNED, offsetof(struct lk_server_config, shutdown_grace_ms), 0, 600000,
     "wait for in-flight requests on stop"},
};

/* "10MiB", "512k", "1048576", "1.5GiB" -> bytes (binary multiples). */
static bool parse_size(const char *s, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || !isfinite(v))
        return false;
    while (*end == ' ')
        end++;
    if (*end) {
        static const struct {
            const char *suffix;
            double mult;
        } units[] = {{"b", 1},       {"k", 1024.0},      {"kb", 1024.0},      {"kib", 1024.0},
                     {"m", 1048576.0}, {"mb", 1048576.0}, {"mib", 1048576.0}, {"g", 1073741824.0},
                     {"gb", 1073741824.0}, {"gib", 1073741824.0}};
        bool found = false;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcasecmp(end, units[i].suffix) == 0) {
                v *= units[i].mult;
                found = true;
            }
        if (!found)
            return false;
    }
    if (v != floor(v))
        return false;
    *out = v;
    return true;
}

static bool parse_number(const char *s, bool integral, double *out)
{
    char *end;
    double v;
    if (!*s || *s == ' ' || *s == '+' || *s == '-')
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || (integral && v != floor(v)))
        return false;
    *out = v;
    return true;
}

int lk_server_config_set(struct lk_server_config *cfg, const char *key, const char *value, struct lk_err *err)
{
    const struct opt *o = NULL;
    double v = 0;
    bool b;
    if (!cfg || !key || !value)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_server_config_set: NULL argument");
    if (strstr(key, "token"))
        if (strcmp(key, "search_requires_read_token") != 0)
            return lk_err_set(err, LK_ERR_INVALID_ARG,
                              "%s: tokens come from LOOKALIKE_ADMIN_TOKEN/LOOKALIKE_READ_TOKEN or a token file, "
                              "never from options", key);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(opts[i].name, key) == 0)
            o = &opts[i];
    if (!o)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "unknown server option '%.64s'", key);

    switch (o->type) {
    case T_ADDRESS:
        if (!*value || strlen(value) >= 64)
            return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: expected a numeric IPv4/IPv6 address", key);
        *(const char **)((char *)cfg + o->offset) = value;     /* borrowed: see server.h */
        return LK_OK;
    case T_BOOL:
        if (!lk__parse_bool(value, strlen(value), &b))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: expected true or false", key);
        *(bool *)((char *)cfg + o->offset) = b;
        return LK_OK;
    case T_SIZE:
        if (!parse_size(value, &v))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: expected a byte size like 10MiB", key);
        break;
    case T_DOUBLE:
        if (!parse_number(value, false, &v))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: expected a number", key);
        break;
    case T_UNSIGNED:
    case T_PORT:
        if (!parse_number(value, true, &v))
            return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: expected a whole number", key);
        break;
    }
    if (v < o->min || v > o->max)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "%s: %s is outside %.0f..%.0f (%s)", key, value, o->min, o->max,
                          o->help);
    switch (o->type) {
    case T_SIZE: *(size_t *)((char *)cfg + o->offset) = (size_t)v; break;
    case T_DOUBLE: *(double *)((char *)cfg + o->offset) = v; break;
    case T_UNSIGNED: *(unsigned *)((char *)cfg + o->offset) = (unsigned)v; break;
    case T_PORT: *(uint16_t *)((char *)cfg + o->offset) = (uint16_t)v; break;
    default: break;
    }
    return LK_OK;
}

const char *lk_server_config_option(size_t i, const char **help)
{
    if (i >= sizeof opts / sizeof opts[0])
        return NULL;
    if (help)
        *help = opts[i].help;
    return opts[i].name;
}
