/*
 * fake_server.c — TEST-ONLY program: the real HTTP server (lk_server) with
 * the in-memory fake backend (fake_backend.h), for driving the storefront
 * from a real browser (tests/server/browser_test.mjs) before the search
 * pipeline is integrated.  Not installed, not product code.
 *
 * Usage: fake_server [PORT]   (default 0 = ephemeral; prints "port N")
 * Serves on 127.0.0.1 until SIGINT/SIGTERM.  LK_FAKE_RATE_RPS=0 turns the
 * per-client rate limit off (for load generators on loopback).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fake_backend.h"
#include "lookalike/server.h"

int main(int argc, char **argv)
{
    struct fake_backend fb;
    struct lk_server_backend be;
    struct lk_server_config cfg;
    struct lk_server *srv = NULL;
    struct lk_err err = {0};
    if (lk_server_signals_block(&err) != LK_OK) {
        fprintf(stderr, "fake_server: %s\n", err.msg);
        return 1;
    }
    fake_backend_init(&fb);
    be = fake_backend_table(&fb);
    lk_server_config_default(&cfg);
    cfg.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 0);
    cfg.threads = 2;
    if (getenv("LK_FAKE_RATE_RPS"))
        cfg.rate_rps = atof(getenv("LK_FAKE_RATE_RPS"));
    if (lk_server_start(&cfg, &be, &srv, &err) != LK_OK) {
        fprintf(stderr, "fake_server: %s\n", err.msg);
        return 1;
    }
    printf("port %u\n", (unsigned)lk_server_port(srv));
    fflush(stdout);
    lk_server_run(srv, &err);
    lk_server_stop(srv);
    fake_backend_destroy(&fb);
    return 0;
}
