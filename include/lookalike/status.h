/*
 * lookalike/status.h — status codes and the caller-owned error struct shared by
 * every module (index, image, embed, catalog, search, server).
 *
 * Convention (as in SQLite/libvips): every public function returns an int
 * status, LK_OK (0) on success or a negative LK_ERR_* code; results travel
 * through out-parameters.  When the caller passes a non-NULL `struct lk_err *`,
 * the function also writes the code and a human-readable message into it.
 * The struct is a plain value owned by the caller (typically one per request
 * or per thread), so no global error buffer and no locking are needed.
 *
 * Header-only on purpose: the index library must build without anything in
 * src/, and these helpers are too small to deserve a library of their own.
 *
 * Thread-safety: all functions here are reentrant; an lk_err must not be
 * shared between threads without external locking.
 */
#ifndef LOOKALIKE_STATUS_H
#define LOOKALIKE_STATUS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes.  Values are stable (they appear in logs and tests); add new
 * ones at the end. */
enum lk_status {
    LK_OK = 0,
    LK_ERR_NOMEM = -1,              /* allocation failed */
    LK_ERR_INVALID_ARG = -2,        /* caller passed a bad argument (NULL, out of range, NaN) */
    LK_ERR_IO = -3,                 /* open/read/write/fsync/rename failed (errno in message) */
    LK_ERR_UNSUPPORTED_FORMAT = -4, /* bytes are not an image format we decode (magic-number sniffing) */
    LK_ERR_CORRUPT = -5,            /* data is malformed (corrupt image stream, bad file contents) */
    LK_ERR_TRUNCATED = -6,          /* data ends before it should */
    LK_ERR_TOO_LARGE = -7,          /* encoded input larger than the configured byte limit */
    LK_ERR_DIMENSIONS = -8,         /* width, height or pixel count beyond limits (decompression bomb) */
    LK_ERR_NOT_FOUND = -9,          /* id/SKU/file not present */
    LK_ERR_EXISTS = -10,            /* id/SKU already present */
    LK_ERR_FORMAT = -11,            /* file of the wrong kind or version (index file, model file) */
    LK_ERR_CHECKSUM = -12,          /* checksum mismatch */
    LK_ERR_DB = -13,                /* SQLite reported an error */
    LK_ERR_PARSE = -14,             /* text input (CSV, JSON, config) could not be parsed */
    LK_ERR_STATE = -15,             /* call not valid in the object's current state */
    LK_ERR_LIMIT = -16,             /* a configured capacity/limit would be exceeded */
    LK_ERR_MODEL = -17,             /* model file missing, inconsistent, or runtime failure */
    LK_ERR_INTERNAL = -18,          /* a bug: an invariant did not hold */
    LK_ERR_EMPTY = -19,             /* input is empty (zero bytes, empty catalog) */
};

#define LK_ERR_MSG_MAX 256

/* Caller-owned error report.  Zero-initialise it (`struct lk_err e = {0};`). */
struct lk_err {
    int code;                   /* last LK_ERR_* code written, LK_OK if none */
    char msg[LK_ERR_MSG_MAX];   /* NUL-terminated message, "" if none */
};

/* Short stable name of a status code ("unsupported image format" etc.).
 * Returns a static string; never NULL. */
static inline const char *lk_status_str(int code)
{
    switch (code) {
    case LK_OK: return "ok";
    case LK_ERR_NOMEM: return "out of memory";
    case LK_ERR_INVALID_ARG: return "invalid argument";
    case LK_ERR_IO: return "i/o error";
    case LK_ERR_UNSUPPORTED_FORMAT: return "unsupported image format";
    case LK_ERR_CORRUPT: return "corrupt data";
    case LK_ERR_TRUNCATED: return "truncated data";
    case LK_ERR_TOO_LARGE: return "input too large";
    case LK_ERR_DIMENSIONS: return "image dimensions over limit";
    case LK_ERR_NOT_FOUND: return "not found";
    case LK_ERR_EXISTS: return "already exists";
    case LK_ERR_FORMAT: return "wrong file format or version";
    case LK_ERR_CHECKSUM: return "checksum mismatch";
    case LK_ERR_DB: return "database error";
    case LK_ERR_PARSE: return "parse error";
    case LK_ERR_STATE: return "invalid state";
    case LK_ERR_LIMIT: return "limit exceeded";
    case LK_ERR_MODEL: return "model error";
    case LK_ERR_INTERNAL: return "internal error";
    case LK_ERR_EMPTY: return "empty input";
    default: return "unknown error";
    }
}

/* Record `code` and a printf-style message in `err` (may be NULL) and return
 * `code`, so callers can write `return lk_err_set(err, LK_ERR_IO, "...")`. */
static inline int lk_err_set(struct lk_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline int lk_err_set(struct lk_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Reset `err` (may be NULL) to LK_OK with an empty message. */
static inline void lk_err_clear(struct lk_err *err)
{
    if (err) {
        err->code = LK_OK;
        err->msg[0] = '\0';
    }
}

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_STATUS_H */
