/*
 * validate.c — syntax of the identifiers and values the API accepts.
 *
 * Validation happens at the boundary (query strings, URL paths, JSON
 * bodies) so the backend only ever sees well-formed values.  All checks are
 * allow-lists over explicit lengths (inputs are not trusted to be
 * NUL-terminated at the right place, e.g. "abc\0def" in a JSON string).
 */
#include <string.h>

#include "pserver.h"

static bool is_id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool all_id_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_id_char((unsigned char)s[i]))
            return false;
    return true;
}

bool lk__valid_sku(const char *s, size_t len)
{
    /* "." and ".." are refused: they would read as path segments. */
    if (!s || len == 0 || len > LK_HTTP_SKU_MAX)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    return all_id_chars(s, len);
}

bool lk__valid_image_id(const char *s, size_t len)
{
    if (!s || len == 0 || len > 128)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    return all_id_chars(s, len);
}

bool lk__valid_search_id(const char *s, size_t len)
{
    if (!s || len != LK_SEARCH_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

bool lk__valid_region(const char *s, size_t len)
{
    if (!s || len == 0 || len > 16)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF) without C0/C1
 * control characters or DEL. */
bool lk__valid_utf8_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    if (!s)
        return false;
    while (i < len) {
        unsigned c = p[i];
        unsigned cp, n;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += n + 1;
    }
    return true;
}

bool lk__valid_category(const char *s, size_t len)
{
    return s && len > 0 && len <= LK_ITEM_CATEGORY_MAX && lk__valid_utf8_text(s, len);
}

bool lk__parse_uint(const char *s, size_t len, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');   /* 19 digits cannot overflow */
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool lk__parse_price(const char *s, size_t len, int64_t *minor)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;
    int64_t whole = 0, frac = 0;
    if (!s || len == 0)
        return false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (++int_digits > 12)
            return false;
        whole = whole * 10 + (s[i] - '0');
        i++;
    }
    if (int_digits == 0)
        return false;
    if (i < len) {
        if (s[i] != '.')
            return false;
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (++frac_digits > 2)
                return false;
            frac = frac * 10 + (s[i] - '0');
            i++;
        }
        if (frac_digits == 0 || i != len)
            return false;
        if (frac_digits == 1)
            frac *= 10;
    }
    *minor = whole * 100 + frac;
    return true;
}

bool lk__parse_bool(const char *s, size_t len, bool *out)
{
    if (!s)
        return false;
    if ((len == 4 && memcmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1')) {
        *out = true;
        return true;
    }
    if ((len == 5 && memcmp(s, "false", 5) == 0) || (len == 1 && s[0] == '0')) {
        *out = false;
        return true;
    }
    return false;
}
