/*
 * cmd_serve.c — `lookalike serve`: the HTTP API on the search engine.
 *
 *   lookalike serve --data DIR [--bind 127.0.0.1] [--port 8080] [--config FILE]
 *                   [--models DIR] [--images DIR] [--threads N]
 *
 * Config file: `key = value` lines, '#' comments.  Keys: bind, port,
 * threads, workspaces, max_body_bytes, max_json_bytes, connection_timeout_s,
 * request_timeout_s, max_connections, max_connections_per_ip, rate_rps,
 * rate_burst, search_requires_read_token, token_file, images_dir, ef_search,
 * guard_confidence, rank.in_stock_boost, rank.low_stock_penalty,
 * rank.low_stock_units, rank.margin_weight, rank.price_weight,
 * rank.weak_image_penalty.  Command-line flags override the file.
 *
 * Secrets (bearer tokens) never come from the command line: from
 * `token_file` (chmod 600) or the environment (LOOKALIKE_ADMIN_TOKEN,
 * LOOKALIKE_READ_TOKEN); see lk_server_tokens_load.
 *
 * Signals: SIGHUP reloads the newest index generation without dropping
 * requests; SIGTERM/SIGINT stop gracefully (in-flight requests finish).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookalike/search.h"
#include "lookalike/server.h"
#include "pcli.h"

struct serve_conf {
    struct lk_server_config srv;
    struct lk_engine_opts eng;
    char bind[64];
    char token_file[4096];
    char images_dir[4096];
};

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi)
        return -1;
    *out = d;
    return 0;
}

/* Apply one key = value; returns 0 or -1 (message printed). */
static int conf_set(struct serve_conf *c, const char *key, const char *v, const char *where)
{
    double d;
#define NUM(name, lo, hi, dst, T)                                                        \
    if (!strcmp(key, name)) {                                                            \
        if (parse_num(v, lo, hi, &d) != 0) {                                             \
            fprintf(stderr, "lookalike serve: %s: %s must be a number in [%g, %g]\n", where, \
                    name, (double)(lo), (double)(hi));                                   \
            return -1;                                                                   \
        }                                                                                \
        dst = (T)d;                                                                      \
        return 0;                                                                        \
    }
    NUM("port", 0, 65535, c->srv.port, uint16_t)
    NUM("threads", 0, LK_SERVER_THREADS_MAX, c->srv.threads, unsigned)
    NUM("workspaces", 0, 256, c->eng.workspaces, unsigned)
    NUM("max_body_bytes", LK_SERVER_MAX_BODY_MIN, LK_SERVER_MAX_BODY_MAX, c->srv.max_body_bytes, size_t)
    NUM("max_json_bytes", 1024, 64 << 20, c->srv.max_json_bytes, size_t)
    NUM("connection_timeout_s", 1, 3600, c->srv.connection_timeout_s, unsigned)
    NUM("request_timeout_s", 1, 3600, c->srv.request_timeout_s, unsigned)
    NUM("max_connections", 1, 100000, c->srv.max_connections, unsigned)
    NUM("max_connections_per_ip", 1, 100000, c->srv.max_connections_per_ip, unsigned)
    NUM("rate_rps", 0, 1e6, c->srv.rate_rps, double)
    NUM("rate_burst", 1, 1e6, c->srv.rate_burst, unsigned)
    NUM("ef_search", 0, 32768, c->eng.ef_search, uint32_t)
    NUM("guard_confidence", 0, 1, c->eng.guard_confidence, float)
    NUM("rank.in_stock_boost", 0, LK_RANK_WEIGHT_MAX, c->eng.rank.in_stock_boost, float)
    NUM("rank.low_stock_penalty", 0, LK_RANK_WEIGHT_MAX, c->eng.rank.low_stock_penalty, float)
    NUM("rank.low_stock_units", 0, 1e9, c->eng.rank.low_stock_units, int64_t)
    NUM("rank.margin_weight", 0, LK_RANK_WEIGHT_MAX, c->eng.rank.margin_weight, float)
    NUM("rank.price_weight", 0, LK_RANK_WEIGHT_MAX, c->eng.rank.price_weight, float)
    NUM("rank.weak_image_penalty", 0, LK_RANK_WEIGHT_MAX, c->eng.rank.weak_image_penalty, float)
#undef NUM
    if (!strcmp(key, "bind")) {
        snprintf(c->bind, sizeof c->bind, "%s", v);
        c->srv.bind_address = c->bind;
        return 0;
    }
    if (!strcmp(key, "token_file")) {
        snprintf(c->token_file, sizeof c->token_file, "%s", v);
        return 0;
    }
    if (!strcmp(key, "images_dir")) {
        snprintf(c->images_dir, sizeof c->images_dir, "%s", v);
        c->eng.images_dir = c->images_dir;
        return 0;
    }
    if (!strcmp(key, "search_requires_read_token")) {
        if (strcmp(v, "true") && strcmp(v, "false")) {
            fprintf(stderr, "lookalike serve: %s: search_requires_read_token must be true or false\n", where);
            return -1;
        }
        c->srv.search_requires_read_token = !strcmp(v, "true");
        return 0;
    }
    if (!strcmp(key, "admin_token") || !strcmp(key, "read_token")) {
        fprintf(stderr, "lookalike serve: %s: tokens go in token_file or the environment, not here\n", where);
        return -1;
    }
    fprintf(stderr, "lookalike serve: %s: unknown key '%s'\n", where, key);
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int conf_load(struct serve_conf *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "lookalike serve: cannot open config %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[8192], where[4200];
    int no = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        no++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        snprintf(where, sizeof where, "%s:%d", path, no);
        if (!eq) {
            fprintf(stderr, "lookalike serve: %s: expected key = value\n", where);
            rc = -1;
            break;
        }
        *eq = '\0';
        rc = conf_set(c, trim(s), trim(eq + 1), where);
    }
    fclose(f);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: lookalike serve --data DIR [--bind ADDR] [--port N] [--config FILE]\n"
               "                       [--models DIR] [--images DIR] [--threads N]\n"
               "Serves the HTTP API and the storefront.  Tokens: LOOKALIKE_ADMIN_TOKEN and\n"
               "LOOKALIKE_READ_TOKEN, or token_file in the config (never on the command line).\n"
               "SIGHUP reloads the newest index generation; SIGTERM stops gracefully.\n");
}



int lk__cmd_serve(int argc, char **argv)
{
    struct serve_conf c;
    memset(&c, 0, sizeof c);
    lk_server_config_default(&c.srv);
    lk_engine_opts_default(&c.eng);
    const char *data = NULL, *config = NULL, *models = NULL;
    const char *bind = NULL, *port = NULL, *images = NULL, *threads = NULL;
    static const struct option lo[] = {
        {"data", required_argument, 0, 'd'},   {"bind", required_argument, 0, 'b'},
        {"port", required_argument, 0, 'p'},   {"config", required_argument, 0, 'c'},
        {"models", required_argument, 0, 'm'}, {"images", required_argument, 0, 'i'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'b': bind = optarg; break;
        case 'p': port = optarg; break;
        case 'c': config = optarg; break;
        case 'm': models = optarg; break;
        case 'i': images = optarg; break;
        case 't': threads = optarg; break;
        case 'h': usage(stdout); return LK_EXIT_OK;
        default: usage(stderr); return LK_EXIT_USAGE;
        }
    }
    if (!data || optind != argc) {
        usage(stderr);
        return LK_EXIT_USAGE;
    }
    if (config && conf_load(&c, config) != 0)
        return LK_EXIT_USAGE;
    if ((bind && conf_set(&c, "bind", bind, "--bind")) || (port && conf_set(&c, "port", port, "--port")) ||
        (images && conf_set(&c, "images_dir", images, "--images")) ||
        (threads && conf_set(&c, "threads", threads, "--threads")))
        return LK_EXIT_USAGE;

    struct lk_err err = {0};
    /* Before any thread exists, so every thread inherits the mask and the
     * signals reach lk_server_run only. */
    if (lk_server_signals_block(&err) != LK_OK) {
        fprintf(stderr, "lookalike serve: %s\n", err.msg);
        return LK_EXIT_FAILED;
    }
    if (lk_server_tokens_load(&c.srv.tokens, c.token_file[0] ? c.token_file : NULL, &err) != LK_OK) {
        fprintf(stderr, "lookalike serve: tokens: %s\n", err.msg);
        return LK_EXIT_FAILED;
    }
    c.eng.data_dir = data;
    c.eng.model_dir = lk__cli_model_dir(models);
    if (!c.eng.workspaces)
        c.eng.workspaces = c.srv.threads;
    struct lk_engine *eng = NULL;
    if (lk_engine_open(&c.eng, &eng, &err) != LK_OK) {
        fprintf(stderr, "lookalike serve: %s\n", err.msg);
        return LK_EXIT_FAILED;
    }
    if (lk_engine_ready(eng, NULL) != LK_OK)
        fprintf(stderr, "lookalike serve: no index generation in %s yet; /readyz answers 503 until "
                        "`lookalike index build` commits one and the server is reloaded (SIGHUP)\n", data);
    struct lk_server_backend be;
    lk_search_backend(eng, &be);
    struct lk_server *srv = NULL;
    if (lk_server_start(&c.srv, &be, &srv, &err) != LK_OK) {
        fprintf(stderr, "lookalike serve: %s\n", err.msg);
        lk_engine_close(eng);
        return LK_EXIT_FAILED;
    }
    const char *host = c.srv.bind_address ? c.srv.bind_address : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL;
    printf("lookalike: serving generation %llu of %s on http://%s%s%s:%u/  (storefront at /, API at /v1/)\n",
           (unsigned long long)lk_engine_generation(eng), data, v6 ? "[" : "", host, v6 ? "]" : "",
           (unsigned)lk_server_port(srv));
    if (!c.srv.tokens.admin[0])
        printf("lookalike: admin API disabled (set LOOKALIKE_ADMIN_TOKEN or token_file to enable it)\n");
    fflush(stdout);
    int rc = lk_server_run(srv, &err);
    if (rc != LK_OK)
        fprintf(stderr, "lookalike serve: %s\n", err.msg);
    lk_server_stop(srv);
    lk_engine_close(eng);
    return rc == LK_OK ? LK_EXIT_OK : LK_EXIT_FAILED;
}
