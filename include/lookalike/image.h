/*
 * lookalike/image.h — decode, normalise and inspect product photos.
 *
 * The image pipeline turns untrusted bytes (a catalog photo, a shopper upload)
 * into an 8-bit sRGB RGB raster, and from there into the fixed-size inputs the
 * embedders need.  Every function here treats its input as hostile: the
 * format is detected from the bytes (magic numbers, never a file name or a
 * Content-Type), limits are checked from the header before any pixel buffer
 * is allocated, and every failure is a returned status, never a crash.
 *
 *   bytes --lk_image_decode--> struct lk_image (RGB, EXIF orientation applied)
 *         --lk_image_center_crop / lk_image_letterbox / lk_image_resize-->
 *         --lk_image_to_float--> float tensor for a CNN
 *   struct lk_image --lk_image_quality--> blur / contrast / background signals
 *
 * Libraries: JPEG via libjpeg-turbo (DCT-domain scaling for shrink-on-load),
 * PNG via libpng, resampling via stb_image_resize (sRGB-aware: filtering
 * happens in linear light, so downscaled edges keep their brightness).
 *
 * Errors: every function returning int returns LK_OK or a negative LK_ERR_*
 * (lookalike/status.h) and, when `err` is non-NULL, writes a message into it.
 * Outputs are written only on success; on failure an output struct lk_image is
 * left as {0}.
 *
 * Thread-safety: all functions are reentrant and keep no global state; two
 * threads may decode at once.  A struct lk_image must not be written by one
 * thread while another reads it.
 */
#ifndef LOOKALIKE_IMAGE_H
#define LOOKALIKE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Images ============================================================ */

/* An 8-bit sRGB image: interleaved R,G,B bytes, row-major, no row padding
 * (stride = width * 3 bytes).  `rgb` holds width*height*3 bytes, is owned by
 * the struct and is released by lk_image_free().  A zeroed struct is a valid
 * empty image. */
struct lk_image {
    uint32_t width, height;     /* pixels, >= 1 for a non-empty image */
    uint8_t *rgb;               /* width*height*3 bytes, owned */
};

/* Largest image any function here will create: LK_IMAGE_MAX_SIDE pixels per
 * side and LK_IMAGE_MAX_PIXELS in total.  These are hard ceilings on top of
 * the per-call decode limits; they keep every byte count well inside size_t
 * and int (stb_image_resize takes int sizes). */
#define LK_IMAGE_MAX_SIDE   65535u
#define LK_IMAGE_MAX_PIXELS 400000000ull   /* 1.2 GB of RGB */

/* Allocate a width x height image with all pixels set to 0 (black).
 * Returns LK_OK, LK_ERR_INVALID_ARG (NULL img), LK_ERR_DIMENSIONS (a side is
 * 0 or beyond the LK_IMAGE_MAX_* ceilings) or LK_ERR_NOMEM.  `img` is
 * overwritten (not freed) and must be released with lk_image_free(). */
int lk_image_init(struct lk_image *img, uint32_t width, uint32_t height, struct lk_err *err);

/* Release the pixels and leave *img as {0}.  NULL and empty images are no-ops. */
void lk_image_free(struct lk_image *img);

/* ==== Format detection ================================================== */

/* Formats recognised by their magic numbers.  Only JPEG and PNG are decoded;
 * the others are recognised so the error message can name what was sent. */
enum lk_image_format {
    LK_FORMAT_UNKNOWN = 0,
    LK_FORMAT_JPEG,
    LK_FORMAT_PNG,
    LK_FORMAT_GIF,
    LK_FORMAT_BMP,
    LK_FORMAT_TIFF,
    LK_FORMAT_WEBP,
    LK_FORMAT_SVG,              /* XML/SVG text */
    LK_FORMAT_HEIF,             /* ISO-BMFF "ftyp" heic/heix/mif1/msf1 */
    LK_FORMAT_AVIF,             /* ISO-BMFF "ftyp" avif/avis */
    LK_FORMAT_JPEG2000,
    LK_FORMAT_JPEGXL,
    LK_FORMAT_PDF,
};

/* Detect the format of `len` bytes at `data` from magic numbers only (at most
 * the first 512 bytes are read).  A buffer that is a proper prefix of a JPEG
 * (>= 2 bytes) or PNG (>= 4 bytes) signature counts as that format, so that a
 * file truncated inside its signature reports LK_ERR_TRUNCATED rather than
 * "unsupported".  Never fails; NULL or empty input gives LK_FORMAT_UNKNOWN. */
enum lk_image_format lk_image_sniff(const void *data, size_t len);

/* Short upper-case name ("JPEG", "PNG", "GIF", ..., "unknown").  Static
 * string, never NULL. */
const char *lk_image_format_name(enum lk_image_format f);

/* ==== Decoding ========================================================== */

/* Default limits.  MAX_BYTES bounds the encoded input (a 12-megapixel phone
 * JPEG is 3-8 MiB); MAX_SIDE/MAX_PIXELS bound the decoded raster, checked from
 * the header before allocating (50 Mpx of RGB is 150 MB), which is what stops
 * decompression bombs: a few hundred bytes declaring 100000 x 100000 pixels. */
#define LK_DECODE_MAX_BYTES_DEFAULT   (32u << 20)   /* 32 MiB */
#define LK_DECODE_MAX_SIDE_DEFAULT    16384u        /* pixels per side */
#define LK_DECODE_MAX_PIXELS_DEFAULT  50000000ull   /* width * height */

/* Decode options.  A field left 0 takes its default, so `{0}` and
 * lk_decode_opts_default() are equivalent. */
struct lk_decode_opts {
    size_t   max_bytes;         /* encoded input limit, bytes (default 32 MiB) -> LK_ERR_TOO_LARGE */
    uint32_t max_width, max_height; /* pixels (default 16384 each) -> LK_ERR_DIMENSIONS */
    uint64_t max_pixels;        /* width*height (default 50e6), checked from the header -> LK_ERR_DIMENSIONS */
    uint32_t min_side_hint;     /* shrink-on-load: JPEG DCT scaling M/8 (M = 1..7) is used when the
                                 * decoded short side stays >= this many pixels; 0 = full decode.
                                 * PNG is always decoded at full size. */
};

/* Source colour model, for reporting. */
enum lk_image_colour {
    LK_COLOUR_MODEL_RGB = 0,    /* JPEG YCbCr/RGB, PNG truecolour */
    LK_COLOUR_MODEL_GREY,
    LK_COLOUR_MODEL_PALETTE,    /* PNG indexed colour */
    LK_COLOUR_MODEL_CMYK,       /* JPEG CMYK (Adobe-inverted or plain) */
    LK_COLOUR_MODEL_YCCK,       /* JPEG YCCK (Adobe transform 2) */
};

/* What the file said about itself. */
struct lk_image_info {
    enum lk_image_format format;        /* LK_FORMAT_JPEG or LK_FORMAT_PNG */
    uint32_t orig_width, orig_height;   /* full-resolution size in pixels, after EXIF orientation */
    int exif_orientation;               /* 1..8 (EXIF tag 0x0112); 1 when absent or invalid; PNG: 1 */
    uint32_t scale_num, scale_denom;    /* JPEG DCT scale used, in lowest terms: scale_num/scale_denom
                                         * is one of 1/8, 1/4, 3/8, 1/2, 5/8, 3/4, 7/8, 1/1
                                         * (decoded side = ceil(orig * num / denom)); PNG: 1/1 */
    enum lk_image_colour colour;        /* source colour model */
    int bit_depth;                      /* bits per sample in the file (8, or 1..16 for PNG) */
    int has_alpha;                      /* 1 if alpha/tRNS was present (composited over white) */
    int progressive;                    /* JPEG progressive or PNG Adam7 interlaced */
    int adobe_inverted;                 /* CMYK/YCCK stored inverted (Adobe APP14 marker) */
};

/* Fill `o` with the defaults above. */
void lk_decode_opts_default(struct lk_decode_opts *o);

/* Decode an in-memory JPEG or PNG into an 8-bit sRGB image.
 *
 *   data, len  the encoded bytes (borrowed; not modified, not retained)
 *   opts       limits and shrink-on-load hint; NULL = defaults
 *   out        receives a new image (overwritten, not freed); free with lk_image_free()
 *   info       may be NULL; filled on success
 *
 * JPEG: baseline, progressive and arithmetic-coded; YCbCr, RGB, grayscale,
 * CMYK and YCCK (Adobe-inverted CMYK as written by Photoshop is detected from
 * the APP14 marker); EXIF orientation (APP1) is applied so the image is
 * upright; with min_side_hint, libjpeg-turbo's DCT scaling decodes directly
 * at the smallest M/8 size (M = 1..8) whose short side is >= the hint.
 * PNG: every colour type and bit depth (1..16 bits, palette, grey, alpha,
 * tRNS), Adam7 interlacing; 16-bit samples are scaled to 8 bits with
 * rounding; alpha is composited over white (catalog cut-outs are transparent
 * PNGs); gAMA/iCCP are ignored (samples are taken as sRGB).
 *
 * Returns LK_OK or:
 *   LK_ERR_INVALID_ARG        NULL data (with len > 0) or NULL out
 *   LK_ERR_TOO_LARGE          len > max_bytes
 *   LK_ERR_UNSUPPORTED_FORMAT empty input, or not JPEG/PNG (GIF, BMP, TIFF, WebP, SVG, text, random)
 *   LK_ERR_DIMENSIONS         header declares a size beyond max_width/max_height/max_pixels
 *   LK_ERR_TRUNCATED          data ends before the image does
 *   LK_ERR_CORRUPT            malformed stream (bad marker, CRC, Huffman data, too many scans)
 *   LK_ERR_NOMEM              allocation failed
 */
int lk_image_decode(const void *data, size_t len, const struct lk_decode_opts *opts,
                    struct lk_image *out, struct lk_image_info *info, struct lk_err *err);

/* Read a file and decode it as lk_image_decode() does.  The size is checked
 * with fstat() against max_bytes before anything is read.  Additional errors:
 * LK_ERR_IO (cannot open/read, not a regular file; errno text in the message). */
int lk_image_load_file(const char *path, const struct lk_decode_opts *opts, struct lk_image *out,
                       struct lk_image_info *info, struct lk_err *err);

/* ==== Resampling and normalisation ====================================== */

/* Resize `src` to exactly w x h pixels with stb_image_resize
 * (stbir_resize_uint8_srgb: sRGB decoded to linear light, Mitchell filter for
 * downsampling, Catmull-Rom for upsampling, edges clamped).  Aspect ratio is
 * not preserved (see lk_image_center_crop / lk_image_letterbox).
 * `dst` receives a new image (overwritten, not freed) and must not be `src`.
 * Returns LK_OK, LK_ERR_INVALID_ARG (NULL/empty src, NULL dst),
 * LK_ERR_DIMENSIONS (w or h is 0 or beyond LK_IMAGE_MAX_*), LK_ERR_NOMEM. */
int lk_image_resize(const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                    struct lk_err *err);

/* As lk_image_resize(), but an axis that shrinks is filtered with stb's box
 * filter: each output pixel is the area-weighted mean (in linear light) of
 * the source pixels it covers, like OpenCV's INTER_AREA; an axis that grows
 * keeps Catmull-Rom.  About 1.5x cheaper than Mitchell when shrinking a
 * photo to a network input, without ringing; the analysis path
 * (lk_embed_describe, the colour histogram's working copy) uses it.  Same
 * errors and ownership as lk_image_resize(). */
int lk_image_resize_area(const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                         struct lk_err *err);

/* Scale `src` so that it covers w x h (short side fits), then keep the centre
 * w x h window: the usual CNN "resize + centre crop" preprocessing, done in a
 * single stb_image_resize pass over the source region.  Same errors and
 * ownership as lk_image_resize(). */
int lk_image_center_crop(const struct lk_image *src, uint32_t w, uint32_t h, struct lk_image *dst,
                         struct lk_err *err);

/* Scale `src` to fit inside w x h (long side fits, aspect preserved) and
 * centre it on a w x h canvas filled with `fill` (RGB; NULL = white).  Nothing
 * of the product is cut off.  Same errors and ownership as lk_image_resize(). */
int lk_image_letterbox(const struct lk_image *src, uint32_t w, uint32_t h, const uint8_t fill[3],
                       struct lk_image *dst, struct lk_err *err);

/* Tensor layouts: HWC = interleaved (y, x, channel); CHW = planar (channel, y, x). */
enum lk_layout { LK_LAYOUT_HWC, LK_LAYOUT_CHW };

/* Convert to floats: out[...] = (pixel[c] - mean[c]) * scale[c], pixel in 0..255.
 * `out` holds width*height*3 floats (caller-owned).  mean NULL = {0,0,0},
 * scale NULL = {1,1,1}; e.g. MobileNetV2's [-1, 1] input is mean 127.5,
 * scale 1/127.5.  Returns LK_OK or LK_ERR_INVALID_ARG (NULL/empty img, NULL
 * out, bad layout, non-finite mean/scale). */
int lk_image_to_float(const struct lk_image *img, enum lk_layout layout, const float mean[3],
                      const float scale[3], float *out, struct lk_err *err);

/* ==== Quality signals (for merchandisers) =============================== */

/* Thresholds that call an image "weak".  Blur, contrast and border are
 * measured on a working copy whose long side is at most
 * LK_QUALITY_WORK_SIDE pixels (downscaled with lk_image_resize; never
 * upscaled), so the numbers mean the same for a 12 Mpx phone photo and a
 * 600 px catalog image.
 *
 *   too small       short side < LK_QUALITY_MIN_SIDE: below the 224 px the CNN
 *                   looks at, so the descriptor sees an upscaled, soft image.
 *   blurry          variance of the 4-neighbour Laplacian of the grey image
 *                   (Pech-Pacheco et al., "Diatom autofocusing in brightfield
 *                   microscopy", ICPR 2000) < LK_QUALITY_BLUR_MIN.
 *   low contrast    standard deviation of grey (0..255) < LK_QUALITY_CONTRAST_MIN:
 *                   washed out, under-exposed or nearly blank.
 *   cluttered       fewer than LK_QUALITY_CLUTTER_MAX of the border pixels
 *                   match the border's median colour: the product is shot in
 *                   a scene rather than on a studio background.
 * The blur/contrast thresholds sit below the tail of real photos: on 150-photo
 * samples of the development sets (`lookalike describe`), blur had 5th
 * percentile / median 81 / 337 for grocery phone photos, 61 / 243 for
 * clothing phone photos, 485 / 2462 for 60x80 catalog images; contrast had
 * 5th percentile 42, 24 and 30.  So only clearly out-of-focus, upscaled or
 * washed-out images are flagged. */
#define LK_QUALITY_WORK_SIDE      512u
#define LK_QUALITY_MIN_SIDE       224u
#define LK_QUALITY_BLUR_MIN       40.0f
#define LK_QUALITY_CONTRAST_MIN   20.0f
#define LK_QUALITY_PLAIN_MIN      0.90f   /* border uniformity >= this: plain studio background */
#define LK_QUALITY_CLUTTER_MAX    0.50f   /* border uniformity < this: cluttered background */
/* A border pixel "matches" the background if every channel is within this
 * many levels of the border's per-channel median (absorbs JPEG noise and
 * gentle studio gradients). */
#define LK_QUALITY_BORDER_TOL     24

enum lk_weak_flag {
    LK_WEAK_TOO_SMALL    = 1u << 0,
    LK_WEAK_BLURRY       = 1u << 1,
    LK_WEAK_LOW_CONTRAST = 1u << 2,
    LK_WEAK_CLUTTERED    = 1u << 3,
};

struct lk_image_quality {
    uint32_t width, height;     /* resolution judged for "too small" (pixels) */
    float blur;                 /* variance of Laplacian on grey at the working size; higher = sharper */
    float contrast;             /* std of grey, 0..~128 */
    float border_uniformity;    /* fraction 0..1 of border pixels matching the border's median colour */
    int plain_background;       /* border_uniformity >= LK_QUALITY_PLAIN_MIN */
    unsigned weak_flags;        /* OR of enum lk_weak_flag; 0 = fine */
    uint8_t background[3];      /* the border's median colour (RGB) */
};

/* Compute the quality signals of `img` (width/height = the image's own size).
 * Returns LK_OK, LK_ERR_INVALID_ARG (NULL/empty img, NULL q) or LK_ERR_NOMEM. */
int lk_image_quality(const struct lk_image *img, struct lk_image_quality *q, struct lk_err *err);

/* As lk_image_quality(), but judge "too small" on orig_width x orig_height
 * (e.g. lk_image_info.orig_* when the image was shrunk on load).  0 = use the
 * image's size. */
int lk_image_quality_orig(const struct lk_image *img, uint32_t orig_width, uint32_t orig_height,
                          struct lk_image_quality *q, struct lk_err *err);

/* Estimate a plain background from the image border: the border strip is
 * the outer max(1, 4 %) of the short side on all four edges; `rgb` gets its
 * per-channel median colour and `uniformity` (may be NULL) the fraction of
 * strip pixels within LK_QUALITY_BORDER_TOL of it on every channel.
 * Returns LK_OK or LK_ERR_INVALID_ARG. */
int lk_image_background(const struct lk_image *img, uint8_t rgb[3], float *uniformity,
                        struct lk_err *err);

/* Write a comma-separated list of the weak flags ("too-small,blurry"), or
 * "none", into buf (always NUL-terminated when size > 0).  Returns buf. */
char *lk_weak_flags_str(unsigned flags, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_IMAGE_H */
