/*
 * lookalike/colour.h — colour-histogram embedding of a product photo.
 *
 * The descriptor answers "does it have the same colours?" and is the cheap,
 * explainable half of the fused embedding (the CNN descriptor answers "is it
 * the same kind of thing?").  It is a joint HSV colour histogram in the
 * tradition of Swain & Ballard, "Color Indexing", IJCV 7(1), 1991, made robust
 * for shopper photos:
 *
 *  - Working size: the image is first resized (sRGB-aware) so its long side
 *    is at most LK_COLOUR_WORK_SIDE pixels; resolution and JPEG block noise
 *    then matter little, and the cost is fixed (~20k pixels).
 *  - Background exclusion: the border's median colour is estimated
 *    (lk_image_background); when the border is uniform (>= 80 % of border
 *    pixels match it) pixels within LK_QUALITY_BORDER_TOL (24 levels) of that
 *    colour get weight 0, ramping to full weight at twice that distance, so a
 *    red sneaker on white is described as red, not "mostly white".  If that
 *    would remove nearly everything (white product on white), it is skipped.
 *  - Centre weighting: a Gaussian weight (sigma = 0.6 of the half-width and
 *    half-height) favours the product over stray edges and makes crops cheap.
 *  - Achromatic split: hue is meaningless for near-greys, so each pixel is
 *    split between chromatic bins and grey bins by its chroma
 *    C = max(R,G,B) - min(R,G,B): all grey below C = 0.05, all chromatic above
 *    C = 0.15 (of full scale), linear in between.  Using chroma rather than
 *    HSV saturation keeps dark noisy pixels (S unstable) out of hue bins.
 *  - Soft assignment: each pixel's weight is split linearly between the two
 *    nearest bin centres on every axis (trilinear for chromatic, hue
 *    circular; linear for grey), so a small brightness or white-balance shift
 *    moves mass smoothly instead of jumping bins.
 *  - Hellinger map: the histogram is L1-normalised, square-rooted and
 *    L2-normalised (the "RootSIFT" trick, Arandjelovic & Zisserman, "Three
 *    things everyone should know to improve object retrieval", CVPR 2012), so
 *    the inner product of two embeddings is the Bhattacharyya coefficient of
 *    the histograms and L2 distance is the Hellinger distance: dominant bins
 *    no longer swamp the comparison.
 *
 * Layout (LK_COLOUR_DIM = 149 floats):
 *   [0, 144)   chromatic: index = (h * 3 + s) * 3 + v with
 *              h in 0..15: hue bins 22.5 degrees wide, bin h centred on
 *                          (h + 0.5) * 22.5 degrees (0 = red, 120 = green, 240 = blue)
 *              s in 0..2:  HSV saturation bins centred on 1/6, 1/2, 5/6
 *              v in 0..2:  HSV value bins centred on 1/6, 1/2, 5/6
 *   [144, 149) grey: value (max channel) bins centred on (g + 0.5) / 5, g = 0..4
 *              (black, dark grey, grey, light grey, white)
 *
 * Why these sizes: 16 hues keep red/orange/pink and blue/violet apart;
 * saturation and value get only 3 (chromatic) and 5 (grey) bins because
 * exposure moves V directly: with 8 grey bins a 30 % darker white product
 * kept only 0.34 similarity to itself, with 5 it keeps ~0.55 while white,
 * mid-grey and black products stay distinguishable (measured on synthetic
 * products; see tests/embed/test_histogram.c).
 *
 * Properties (tested in tests/embed/test_histogram.c): unit L2 norm,
 * invariant to horizontal/vertical flips, stable under +-20-30 % brightness,
 * JPEG re-compression, moderate crops; red and white products are far apart.
 *
 * Thread-safety: reentrant, no global state.
 */
#ifndef LOOKALIKE_COLOUR_H
#define LOOKALIKE_COLOUR_H

#include <stddef.h>

#include "lookalike/image.h"
#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LK_COLOUR_HUE_BINS   16
#define LK_COLOUR_SAT_BINS   3
#define LK_COLOUR_VAL_BINS   3
#define LK_COLOUR_GREY_BINS  5
#define LK_COLOUR_CHROMA_BINS (LK_COLOUR_HUE_BINS * LK_COLOUR_SAT_BINS * LK_COLOUR_VAL_BINS)
#define LK_COLOUR_DIM        (LK_COLOUR_CHROMA_BINS + LK_COLOUR_GREY_BINS)   /* 149 */

/* Long side of the working copy, pixels. */
#define LK_COLOUR_WORK_SIDE  160u

/* Compute the colour embedding of `img` into out[0 .. LK_COLOUR_DIM) (caller
 * owned).  The result has unit L2 norm and non-negative entries; the inner
 * product of two embeddings is in [0, 1] (1 = identical histograms).
 * Returns LK_OK, LK_ERR_INVALID_ARG (NULL/empty image, NULL out) or
 * LK_ERR_NOMEM.  `out` is untouched on error. */
int lk_colour_embed(const struct lk_image *img, float *out, struct lk_err *err);

/* Name the dominant colours of an embedding for people: up to `k` colour
 * names with their share of the (weighted) pixels, e.g. "red 61%, white 22%,
 * grey 9%".  Shares are the squared entries (the L1 histogram) summed per
 * name.  Writes a NUL-terminated string into buf (size > 0).  Returns buf. */
char *lk_colour_summary(const float *emb, int k, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_COLOUR_H */
