/*
 * src/embed/describe.c — the whole analysis of one decoded photo, shared by
 * the index build, incremental adds, shopper queries, `lookalike describe`
 * and the benches, so that all of them compute exactly the same vectors.
 *
 * The decoded image is resized ONCE, to the network's input size (224 x 224
 * for the shipped model), and both descriptors are computed from that copy:
 *   - the CNN descriptor: lk_cnn_describe() sees an image that already has
 *     the input size, so its own resize is a plain copy;
 *   - the colour histogram: lk_colour_embed() reduces the 224 x 224 copy to
 *     its 160 x 160 working size.
 * Resampling with stb_image_resize is the most expensive step after the CNN
 * (a 1-megapixel photo decoded at 3/8 is ~140k pixels; filtering them costs
 * 3-5 ms per target size on this machine), so resizing the full decoded
 * image once instead of twice halves that cost, and the resize is area
 * averaging (lk_image_resize_area: stb's box filter, ~1.5x cheaper than its
 * default Mitchell filter when shrinking, and free of ringing).  The histogram then sees
 * the photo squeezed to a square: its centre weighting and background
 * detection work in coordinates normalised to the image's width and height,
 * so the squeeze changes only sampling density, equally in every region,
 * and the histogram's expected value is unchanged (bench/quality measures
 * the end result).
 */
#include "lookalike/colour.h"
#include "lookalike/embed.h"

int lk_embed_describe(const struct lk_cnn_model *m, struct lk_cnn_workspace *ws, const struct lk_image *img,
                      float *cnn_out, float *colour_out, struct lk_err *err)
{
    if (!m || !ws || !img || !cnn_out || !colour_out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_embed_describe: NULL argument");
    uint32_t w = 0, h = 0;
    lk_cnn_input_size(m, &w, &h);
    struct lk_image sized = {0};
    int rc = lk_image_resize_area(img, w, h, &sized, err);
    if (rc != LK_OK)
        return rc;
    rc = lk_cnn_describe(ws, &sized, cnn_out, err);
    if (rc == LK_OK)
        rc = lk_colour_embed(&sized, colour_out, err);
    lk_image_free(&sized);
    return rc;
}
