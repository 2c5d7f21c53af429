/*
 * fuzz/fuzz_multipart.c — libFuzzer target: bytes -> a multipart/form-data
 * POST /v1/search sent to a real in-process lk_server over loopback.
 *
 * The multipart decoder is libmicrohttpd's post-processor driven by
 * routes.c (post_iter, lk__body_feed/_end); it needs a live MHD connection,
 * so the target runs the whole server once per process (1 worker thread,
 * port 0, no rate limit, 64 KiB body limit) with a backend whose search
 * decodes the upload with small limits, as the real backend would.
 *
 * Input: the boundary is everything up to the first '\n' (at most 70
 * bytes, RFC 2046), the rest is the body, sent verbatim with an exact
 * Content-Length.  Byte 0 of the boundary line set to '"' quotes the
 * boundary parameter.  Finding: a crash or sanitizer report in the server
 * (server code is instrumented, so its coverage guides the fuzzer even on
 * the worker thread), or any 5xx reply (a malformed upload is a 4xx).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lookalike/image.h"
#include "lookalike/search_types.h"
#include "lookalike/server.h"
#include "lookalike/status.h"

static struct lk_server *srv;
static uint16_t port;

static int be_search(void *ctx, const void *image, size_t len, const struct lk_search_request *req,
                     struct lk_search_response *resp, struct lk_err *err)
{
    (void)ctx;
    (void)req;
    (void)resp;
    struct lk_decode_opts o = {.max_bytes = 1u << 16, .max_width = 1024, .max_height = 1024,
                               .max_pixels = 1u << 18};
    struct lk_image img;
    int rc = lk_image_decode(image, len, &o, &img, NULL, err);
    if (rc == LK_OK)
        lk_image_free(&img);
    return rc;
}

static void stop(void)
{
    lk_server_stop(srv);
    srv = NULL;
}

static void start(void)
{
    struct lk_server_config cfg;
    lk_server_config_default(&cfg);
    cfg.bind_address = "127.0.0.1";
    cfg.port = 0;
    cfg.threads = 1;
    cfg.max_body_bytes = 64u << 10;
    cfg.max_buffered_bytes = 1u << 20;
    cfg.rate_rps = 0;
    cfg.request_timeout_s = 5;
    cfg.connection_timeout_s = 5;
    cfg.log = NULL;
    static struct lk_server_backend be;
    be.search = be_search;
    struct lk_err err = {0};
    if (lk_server_start(&cfg, &be, &srv, &err) != LK_OK) {
        fprintf(stderr, "lk_server_start: %s\n", err.msg);
        abort();
    }
    port = lk_server_port(srv);
    atexit(stop);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;     /* the server may close early (413, 400): fine */
        c += w;
        n -= (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        start();
    const uint8_t *nl = memchr(data, '\n', size < 71 ? size : 71);
    if (!nl)
        return 0;
    size_t blen = (size_t)(nl - data);
    int quoted = blen > 0 && data[0] == '"';
    char boundary[80];
    memcpy(boundary, data + quoted, blen - (size_t)quoted);
    boundary[blen - (size_t)quoted] = '\0';
    if (strpbrk(boundary, "\r\n") || strlen(boundary) != blen - (size_t)quoted)
        return 0;       /* header injection / NUL: not a body test */
    const uint8_t *body = nl + 1;
    size_t len = size - blen - 1;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    struct timeval tv = {.tv_sec = 8};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        abort();
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: multipart/form-data; boundary=%s%s%s\r\nContent-Length: %zu\r\n\r\n",
                      quoted ? "\"" : "", boundary, quoted ? "\"" : "", len);
    send_all(fd, head, (size_t)hn);
    send_all(fd, body, len);
    shutdown(fd, SHUT_WR);

    char resp[4096];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof resp - 1)
            got = 16;   /* keep the status line, drop the rest */
    }
    close(fd);
    resp[got] = '\0';
    unsigned status = 0;
    if (got >= 12 && sscanf(resp, "HTTP/1.%*c %u", &status) == 1 && status >= 500) {
        fprintf(stderr, "server answered %u:\n%s\n", status, resp);
        abort();
    }
    return 0;
}
