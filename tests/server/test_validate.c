/*
 * test_validate.c — validate.c: identifiers, prices, text.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "pserver.h"

#define S(x) x, strlen(x)

Test(validate, sku)
{
    cr_assert(lk__valid_sku(S("SOFA-1")));
    cr_assert(lk__valid_sku(S("a.b_c-9")));
    cr_assert(!lk__valid_sku(S("")));
    cr_assert(!lk__valid_sku(S(".")));
    cr_assert(!lk__valid_sku(S("..")));
    cr_assert(!lk__valid_sku(S("a/b")));
    cr_assert(!lk__valid_sku(S("a b")));
    cr_assert(!lk__valid_sku(S("\xc3\xa9")));
    cr_assert(!lk__valid_sku("ab\0c", 4));
    char longsku[LK_HTTP_SKU_MAX + 2];
    memset(longsku, 'a', sizeof longsku);
    cr_assert(lk__valid_sku(longsku, LK_HTTP_SKU_MAX));
    cr_assert(!lk__valid_sku(longsku, LK_HTTP_SKU_MAX + 1));
}

Test(validate, search_id_and_region)
{
    cr_assert(lk__valid_search_id(S("0123456789abcdef0123456789abcdef")));
    cr_assert(!lk__valid_search_id(S("0123456789abcdef0123456789abcdeF")));
    cr_assert(!lk__valid_search_id(S("0123456789abcdef0123456789abcde")));
    cr_assert(lk__valid_region(S("EU")));
    cr_assert(lk__valid_region(S("us-west_2")));
    cr_assert(!lk__valid_region(S("")));
    cr_assert(!lk__valid_region(S("E.U")));
    cr_assert(!lk__valid_region(S("ABCDEFGHIJKLMNOPQ")));
}

Test(validate, prices)
{
    int64_t m = -1;
    cr_assert(lk__parse_price(S("0"), &m) && m == 0);
    cr_assert(lk__parse_price(S("12"), &m) && m == 1200);
    cr_assert(lk__parse_price(S("12.5"), &m) && m == 1250);
    cr_assert(lk__parse_price(S("12.05"), &m) && m == 1205);
    cr_assert(lk__parse_price(S("999999999999.99"), &m) && m == 99999999999999);
    cr_assert(!lk__parse_price(S("9999999999999"), &m));
    cr_assert(!lk__parse_price(S(""), &m));
    cr_assert(!lk__parse_price(S("."), &m));
    cr_assert(!lk__parse_price(S("1."), &m));
    cr_assert(!lk__parse_price(S(".5"), &m));
    cr_assert(!lk__parse_price(S("1.234"), &m));
    cr_assert(!lk__parse_price(S("-1"), &m));
    cr_assert(!lk__parse_price(S("+1"), &m));
    cr_assert(!lk__parse_price(S("1e3"), &m));
    cr_assert(!lk__parse_price(S("1,5"), &m));
    cr_assert(!lk__parse_price(S(" 1"), &m));
}

Test(validate, uints_and_bools)
{
    uint64_t u;
    bool b;
    cr_assert(lk__parse_uint(S("1"), 1, 100, &u) && u == 1);
    cr_assert(lk__parse_uint(S("100"), 1, 100, &u) && u == 100);
    cr_assert(lk__parse_uint(S("007"), 1, 100, &u) && u == 7);
    cr_assert(!lk__parse_uint(S("101"), 1, 100, &u));
    cr_assert(!lk__parse_uint(S("0"), 1, 100, &u));
    cr_assert(!lk__parse_uint(S("18446744073709551616"), 0, UINT64_MAX, &u));
    cr_assert(!lk__parse_uint(S("1 "), 1, 100, &u));
    cr_assert(lk__parse_bool(S("true"), &b) && b);
    cr_assert(lk__parse_bool(S("0"), &b) && !b);
    cr_assert(!lk__parse_bool(S("TRUE"), &b));
    cr_assert(!lk__parse_bool(S("yes"), &b));
}

Test(validate, utf8_text)
{
    cr_assert(lk__valid_utf8_text(S("Sofa \xc3\xa9l\xc3\xa9gant \xe2\x82\xac \xf0\x9f\x9b\x8b")));
    cr_assert(!lk__valid_utf8_text(S("tab\there")));
    cr_assert(!lk__valid_utf8_text(S("\x7f")));
    cr_assert(!lk__valid_utf8_text(S("\xc2\x85")));            /* C1 control (NEL) */
    cr_assert(!lk__valid_utf8_text(S("\xc0\x80")));            /* overlong NUL */
    cr_assert(!lk__valid_utf8_text(S("\xe0\x80\xaf")));        /* overlong */
    cr_assert(!lk__valid_utf8_text(S("\xed\xa0\x80")));        /* surrogate */
    cr_assert(!lk__valid_utf8_text(S("\xf4\x90\x80\x80")));    /* > U+10FFFF */
    cr_assert(!lk__valid_utf8_text(S("\xe2\x82")));            /* truncated */
    cr_assert(!lk__valid_category(S("")));
    cr_assert(lk__valid_category(S("furniture/sofas")));
}
