/*
 * fuzz/fuzz_image_decode.c — libFuzzer target: bytes -> lk_image_decode
 * (format sniffer, then the JPEG or PNG decoder) -> lk_colour_embed.
 *
 * Limits are small (1 MiB input, 2048 px a side, 1 Mpx) so a decompression
 * bomb is refused from the header and no input can make the decoder allocate
 * more than a few MB; the real limits are tested in tests/image.  The first
 * input byte picks the shrink-on-load hint (JPEG DCT scaling paths), the rest
 * is the image.  Every outcome must be LK_OK or a negative LK_ERR_* with a
 * message; anything else (crash, leak, UB, hang) is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lookalike/colour.h"
#include "lookalike/image.h"
#include "lookalike/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t hints[4] = {0, 16, 64, 224};
    struct lk_decode_opts o;
    lk_decode_opts_default(&o);
    o.max_bytes = 1u << 20;
    o.max_width = o.max_height = 2048;
    o.max_pixels = 1u << 20;
    o.min_side_hint = hints[data[0] & 3];
    data++;
    size--;

    struct lk_image img;
    struct lk_image_info info;
    struct lk_err err = {0};
    int rc = lk_image_decode(data, size, &o, &img, &info, &err);
    if (rc != LK_OK) {
        if (rc > 0 || err.msg[0] == '\0')
            abort();        /* every error is negative and explained */
        return 0;
    }
    if (img.width == 0 || img.height == 0 || img.width > o.max_width || img.height > o.max_height)
        abort();
    float emb[LK_COLOUR_DIM];
    if (lk_colour_embed(&img, emb, &err) != LK_OK)
        abort();            /* a decoded image always embeds */
    struct lk_image_quality q;
    if (lk_image_quality_orig(&img, info.orig_width, info.orig_height, &q, &err) != LK_OK)
        abort();
    struct lk_image crop;
    if (lk_image_center_crop(&img, 64, 64, &crop, &err) != LK_OK)
        abort();
    lk_image_free(&crop);
    lk_image_free(&img);
    return 0;
}
