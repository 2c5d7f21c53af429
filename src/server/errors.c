/*
 * errors.c — the ONE table mapping lookalike status codes to HTTP.
 *
 * Every backend failure goes through lk__reply_status, so a decode error
 * deep in src/image surfaces as the same HTTP status and machine code on
 * every route.  Messages: 4xx replies carry the module's message (it
 * describes the client's input); 5xx replies carry a generic text and the
 * detail goes to the request log, so internals (paths, SQL) never reach a
 * client.
 */
#include <stdio.h>

#include "pserver.h"

static const struct {
    int code;
    unsigned http;
    const char *name;
} status_map[] = {
    {LK_ERR_NOMEM, 503, "out_of_memory"},
    {LK_ERR_INVALID_ARG, 400, "invalid_parameter"},
    {LK_ERR_IO, 500, "io_error"},
    {LK_ERR_UNSUPPORTED_FORMAT, 415, "unsupported_format"},
    {LK_ERR_CORRUPT, 400, "corrupt_image"},
    {LK_ERR_TRUNCATED, 400, "truncated_image"},
    {LK_ERR_TOO_LARGE, 413, "payload_too_large"},
    {LK_ERR_DIMENSIONS, 422, "image_dimensions"},
    {LK_ERR_NOT_FOUND, 404, "not_found"},
    {LK_ERR_EXISTS, 409, "already_exists"},
    {LK_ERR_FORMAT, 500, "wrong_file_format"},
    {LK_ERR_CHECKSUM, 500, "checksum_mismatch"},
    {LK_ERR_DB, 500, "database_error"},
    {LK_ERR_PARSE, 400, "parse_error"},
    {LK_ERR_STATE, 503, "not_ready"},
    {LK_ERR_LIMIT, 507, "capacity_exceeded"},
    {LK_ERR_MODEL, 500, "model_error"},
    {LK_ERR_INTERNAL, 500, "internal_error"},
    {LK_ERR_EMPTY, 400, "empty_input"},
};

unsigned lk__http_status(int lk_code)
{
    for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
        if (status_map[i].code == lk_code)
            return status_map[i].http;
    return 500;
}

const char *lk__error_code(int lk_code)
{
    for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
        if (status_map[i].code == lk_code)
            return status_map[i].name;
    return "internal_error";
}

void lk__reply_discard(struct lk__reply *r)
{
    if (r && r->body && r->free_fn)
        r->free_fn(r->body);
    if (r) {
        r->body = NULL;
        r->len = 0;
        r->free_fn = NULL;
    }
}

void lk__reply_error(struct lk__reply *out, unsigned http, const char *code, const char *message,
                     const char *param)
{
    /* Last resort when even the error body cannot be allocated. */
    static char nomem_body[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";

    lk__reply_discard(out);
    if (lk__json_error(out, http, code, message, param) != LK_OK) {
        out->status = http;
        out->body = nomem_body;
        out->len = sizeof nomem_body - 1;
        out->free_fn = NULL;
        out->content_type = "application/json";
    }
    out->error_code = code;
}

void lk__reply_status(struct lk__reply *out, int lk_code, const struct lk_err *err, const char *param)
{
    unsigned http = lk__http_status(lk_code);
    const char *msg;
    if (http >= 500 || !err || !err->msg[0])
        msg = lk_status_str(lk_code);
    else
        msg = err->msg;
    lk__reply_error(out, http, lk__error_code(lk_code), msg, param);
    if (http == 503)
        out->retry_after = 1;
}
