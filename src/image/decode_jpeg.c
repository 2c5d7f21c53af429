/*
 * src/image/decode_jpeg.c — JPEG decoding with libjpeg-turbo.  The only file
 * in lookalike that includes jpeglib.h; setjmp/longjmp never leave it.
 *
 * Decisions:
 *  - Errors: libjpeg reports fatal errors through error_exit, which must not
 *    return.  Ours longjmps back to run_guarded(), which turns the jump
 *    into a status.  Everything that must survive the jump (decompressor,
 *    pixel buffer) lives in a struct jdec owned by lk__decode_jpeg(), one
 *    frame above the setjmp, so no modified local of the setjmp frame is
 *    read after a longjmp (C17 7.13.2.1p3).  Warnings ("corrupt JPEG data: N extraneous
 *    bytes") are counted and tolerated, as every viewer does, except
 *    "premature end of data segment" (JWRN_HIT_MARKER): the entropy-coded
 *    data stopped before the image did, the rest would be grey, and that is
 *    LK_ERR_TRUNCATED.
 *  - Truncation: our memory source manager fails at once when libjpeg asks
 *    for bytes past the end (instead of the stock fake-EOI-and-continue, which
 *    yields a grey half image); that is LK_ERR_TRUNCATED.  This is strict on
 *    purpose: a progressive file cut at a scan boundary is indistinguishable
 *    from one missing only its EOI marker, and both are damaged files a
 *    merchandiser should re-export.
 *  - Limits before allocation: width, height and pixel count are checked
 *    right after jpeg_read_header(); libjpeg's own working memory
 *    (progressive coefficient buffers) is capped via max_memory_to_use, and a
 *    progress monitor stops files with absurd scan counts (a known CPU
 *    exhaustion trick: thousands of tiny progressive scans).
 *  - Shrink-on-load: scale_num/scale_denom = M/8 (M = 1..7) makes the IDCT
 *    output a smaller image directly, skipping most of the IDCT, upsampling
 *    and colour conversion work (libvips' "shrink" option does the same).
 *    The smallest M that keeps the short side >= the hint is used, not only
 *    1/2, 1/4, 1/8: every pixel the decoder does not produce is one the
 *    (slower) resize does not have to filter.
 *  - CMYK/YCCK: libjpeg converts YCCK to CMYK; we convert CMYK to RGB with
 *    the naive formula R = (1-C)(1-K) (no ICC profile).  Photoshop writes
 *    CMYK inverted (0 = full ink) and marks it with an Adobe APP14 marker, so
 *    the Adobe marker selects the inverted reading.
 *  - EXIF orientation (TIFF tag 0x0112 in the APP1 "Exif" segment, EXIF 2.32
 *    4.6.4) is parsed with bounds checks on every offset; an unreadable EXIF
 *    block means orientation 1, never an error.
 */
#include <setjmp.h>
#include <stdio.h>      /* jpeglib.h needs FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "pimage.h"

/* Progressive JPEGs from cameras and encoders have ~10 scans; libjpeg-turbo's
 * TurboJPEG API caps them at 500 for the same reason. */
#define JPEG_MAX_SCANS 500
/* Decoder working memory beyond the pixel limit: Huffman tables, MCU rows. */
#define JPEG_MEM_SLACK (64u << 20)

/* ==== Error manager ===================================================== */

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int too_many_scans;
    int data_short;     /* JWRN_HIT_MARKER: entropy data ended before the image did */
    char msg[JMSG_LENGTH_MAX];
};

static void on_error_exit(j_common_ptr c)
{
    struct jerr *e = (struct jerr *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void on_emit_message(j_common_ptr c, int level)
{
    /* level < 0: a corrupt-data warning; count it (libjpeg's own policy).
     * Trace messages (level >= 0) are dropped: a library never prints. */
    if (level < 0) {
        c->err->num_warnings++;
        if (c->err->msg_code == JWRN_HIT_MARKER)
            ((struct jerr *)c->err)->data_short = 1;
    }
}

static void on_progress(j_common_ptr c)
{
    if (c->is_decompressor && ((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS) {
        struct jerr *e = (struct jerr *)c->err;
        e->too_many_scans = 1;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

/* ==== Memory source that fails on EOF =================================== */

struct jsrc {
    struct jpeg_source_mgr pub;
    int hit_eof;
};

static void src_init(j_decompress_ptr c) { (void)c; }
static void src_term(j_decompress_ptr c) { (void)c; }

static boolean src_fill(j_decompress_ptr c)
{
    /* The whole file was handed over at once, so being asked for more means
     * the data ended before the image did. */
    ((struct jsrc *)c->src)->hit_eof = 1;
    ERREXIT(c, JERR_INPUT_EOF);
    return FALSE; /* not reached */
}

static void src_skip(j_decompress_ptr c, long n)
{
    struct jpeg_source_mgr *s = c->src;
    if (n <= 0)
        return;
    if ((size_t)n > s->bytes_in_buffer)
        src_fill(c);
    s->next_input_byte += n;
    s->bytes_in_buffer -= (size_t)n;
}

/* ==== EXIF orientation ================================================== */

static unsigned rd16(const uint8_t *p, int le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Orientation from an APP1 payload; 0 when this is not a usable EXIF block. */
static int exif_orientation(const uint8_t *p, size_t n)
{
    if (n < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0)
        return 0;
    const uint8_t *t = p + 6;   /* TIFF header; offsets are relative to it */
    size_t tn = n - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I')
        le = 1;
    else if (t[0] == 'M' && t[1] == 'M')
        le = 0;
    else
        return 0;
    if (rd16(t + 2, le) != 42)
        return 0;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd < 8 || (uint64_t)ifd + 2 > tn)
        return 0;
    size_t count = rd16(t + ifd, le);
    size_t room = (tn - ifd - 2) / 12;
    if (count > room)
        count = room;   /* a lying entry count cannot read past the segment */
    for (size_t i = 0; i < count; i++) {
        const uint8_t *e = t + ifd + 2 + 12 * i;
        if (rd16(e, le) != 0x0112)
            continue;
        /* type SHORT (3), count >= 1, value left-justified in the 4-byte field */
        if (rd16(e + 2, le) != 3 || rd32(e + 4, le) < 1)
            return 0;
        unsigned v = rd16(e + 8, le);
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

/* Return a new buffer holding `src` (w x h, RGB) displayed per orientation
 * o (2..8); *ow, *oh receive the new size.  NULL on allocation failure.
 * Mapping from display pixel (x, y) to stored pixel, per the EXIF spec:
 *   2 mirror: (W-1-x, y)        3 rotate 180: (W-1-x, H-1-y)
 *   4 flip:   (x, H-1-y)        5 transpose:  (y, x)
 *   6 rotate 90 CW: (y, H-1-x)  7 transverse: (W-1-y, H-1-x)
 *   8 rotate 90 CCW: (W-1-y, x) */
static uint8_t *apply_orientation(const uint8_t *src, uint32_t w, uint32_t h, int o, uint32_t *ow,
                                  uint32_t *oh)
{
    int swap = o >= 5;
    uint32_t dw = swap ? h : w, dh = swap ? w : h;
    uint8_t *dst = malloc((size_t)w * h * 3);
    if (!dst)
        return NULL;
    for (uint32_t y = 0; y < dh; y++) {
        uint8_t *row = dst + (size_t)y * dw * 3;
        for (uint32_t x = 0; x < dw; x++) {
            uint32_t sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;
            case 4: sx = x; sy = h - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = h - 1 - x; break;
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;
            default: sx = w - 1 - y; sy = x; break; /* 8 */
            }
            memcpy(row + (size_t)x * 3, src + ((size_t)sy * w + sx) * 3, 3);
        }
    }
    *ow = dw;
    *oh = dh;
    return dst;
}

/* ==== Decoder =========================================================== */

/* State that outlives a longjmp: owned by lk__decode_jpeg()'s frame. */
struct jdec {
    struct jpeg_decompress_struct c;
    struct jerr jerr;
    struct jsrc src;
    struct jpeg_progress_mgr progress;
    int created;            /* jpeg_create_decompress done */
    int status;             /* non-LK_OK: a limit/format check failed (no longjmp) */
    uint8_t *px;            /* output RGB (ow*oh*3) */
    uint8_t *row4;          /* CMYK scanline buffer */
    uint32_t ow, oh;
    int orientation;
};

/* Largest 1/d (d in 8, 4, 2) keeping the decoded short side >= hint. */
/* Smallest DCT scale M/8 (M = 1..8) whose decoded short side,
 * ceil(side * M / 8) as libjpeg rounds it, is still >= hint; M = 8 (full
 * size) when even that is too small or there is no hint.  libjpeg-turbo
 * implements every M/8 with a reduced-size IDCT (jidctint.c/jidctred.c), so
 * a 1280x800 photo with hint 224 decodes at 3/8 (480x300) instead of 1/2
 * (640x400): 44 % fewer pixels for the resize that follows, which costs more
 * than the decode itself. */
static unsigned pick_scale_num(uint32_t w, uint32_t h, uint32_t hint)
{
    if (hint == 0)
        return 8;
    uint64_t s = w < h ? w : h;
    for (unsigned m = 1; m < 8; m++)
        if ((s * m + 7) / 8 >= hint)
            return m;
    return 8;
}

/* Runs under setjmp; returns normally on success or on a limit check
 * (st->status set), longjmps out of libjpeg on a decode error. */
static void decode_inner(struct jdec *st, const uint8_t *data, size_t len,
                         const struct lk__limits *lim, struct lk_image_info *info,
                         struct lk_err *err)
{
    j_decompress_ptr c = &st->c;
    jpeg_create_decompress(c);
    st->created = 1;

    st->src.pub.next_input_byte = data;
    st->src.pub.bytes_in_buffer = len;
    st->src.pub.init_source = src_init;
    st->src.pub.fill_input_buffer = src_fill;
    st->src.pub.skip_input_data = src_skip;
    st->src.pub.resync_to_restart = jpeg_resync_to_restart;
    st->src.pub.term_source = src_term;
    c->src = &st->src.pub;

    st->progress.progress_monitor = on_progress;
    c->progress = &st->progress;

    jpeg_save_markers(c, JPEG_APP0 + 1, 0xFFFF);
    if (jpeg_read_header(c, TRUE) != JPEG_HEADER_OK) {
        st->status = lk_err_set(err, LK_ERR_CORRUPT, "JPEG holds tables only, no image");
        return;
    }

    /* EXIF: first APP1 segment that parses wins. */
    st->orientation = 1;
    for (jpeg_saved_marker_ptr m = c->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1)
            continue;
        int o = exif_orientation(m->data, m->data_length);
        if (o) {
            st->orientation = o;
            break;
        }
    }

    uint32_t w = c->image_width, h = c->image_height;
    int swap = st->orientation >= 5;
    info->orig_width = swap ? h : w;
    info->orig_height = swap ? w : h;
    st->status = lk__check_dims("JPEG", info->orig_width, info->orig_height, lim, err);
    if (st->status)
        return;

    switch (c->jpeg_color_space) {
    case JCS_GRAYSCALE:
        info->colour = LK_COLOUR_MODEL_GREY;
        c->out_color_space = JCS_RGB;   /* libjpeg-turbo expands grey to RGB */
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        info->colour = LK_COLOUR_MODEL_RGB;
        c->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        info->colour = c->jpeg_color_space == JCS_CMYK ? LK_COLOUR_MODEL_CMYK : LK_COLOUR_MODEL_YCCK;
        info->adobe_inverted = c->saw_Adobe_marker ? 1 : 0;
        c->out_color_space = JCS_CMYK;
        break;
    default:
        st->status = lk_err_set(err, LK_ERR_CORRUPT, "JPEG has an unknown colour space (%d components)",
                                c->num_components);
        return;
    }
    info->bit_depth = c->data_precision;
    info->progressive = c->progressive_mode ? 1 : 0;

    unsigned m = pick_scale_num(w, h, lim->min_side_hint);
    c->scale_num = m;
    c->scale_denom = 8;
    /* Report the scale in lowest terms: 4/8 -> 1/2, 8/8 -> 1/1. */
    unsigned num = m, den = 8;
    while (num % 2 == 0 && den > 1)
        num /= 2, den /= 2;
    info->scale_num = num;
    info->scale_denom = den;
    jpeg_calc_output_dimensions(c);
    st->ow = c->output_width;
    st->oh = c->output_height;
    if (st->ow == 0 || st->oh == 0 || (c->output_components != 3 && c->output_components != 4)) {
        st->status = lk_err_set(err, LK_ERR_INTERNAL, "libjpeg produced %ux%u x %d output", st->ow,
                                st->oh, c->output_components);
        return;
    }

    /* Cap libjpeg's internal "virtual arrays" (whole-image coefficient
     * buffers of progressive files: 2 bytes per sample, <= 4 components). */
    c->mem->max_memory_to_use = (long)(lim->max_pixels * 8 + JPEG_MEM_SLACK);

    jpeg_start_decompress(c);

    size_t stride = (size_t)st->ow * 3;
    st->px = malloc(stride * st->oh);
    if (!st->px) {
        st->status = lk_err_set(err, LK_ERR_NOMEM, "cannot allocate %ux%u RGB image", st->ow, st->oh);
        return;
    }
    if (c->output_components == 4) {
        st->row4 = malloc((size_t)st->ow * 4);
        if (!st->row4) {
            st->status = lk_err_set(err, LK_ERR_NOMEM, "cannot allocate JPEG scanline");
            return;
        }
        const int inv = info->adobe_inverted;
        while (c->output_scanline < c->output_height) {
            JSAMPROW r = st->row4;
            uint8_t *o = st->px + (size_t)c->output_scanline * stride;
            if (jpeg_read_scanlines(c, &r, 1) != 1)
                continue;   /* suspension cannot happen with our source; loop is defensive */
            for (uint32_t x = 0; x < st->ow; x++) {
                unsigned cy = r[4 * x], m = r[4 * x + 1], ye = r[4 * x + 2], k = r[4 * x + 3];
                if (!inv) {
                    cy = 255 - cy; m = 255 - m; ye = 255 - ye; k = 255 - k;
                }
                /* stored values are now "1 - ink": R = (1-C)(1-K) */
                o[3 * x] = (uint8_t)((cy * k + 127) / 255);
                o[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                o[3 * x + 2] = (uint8_t)((ye * k + 127) / 255);
            }
        }
    } else {
        /* Decode straight into the output, several rows per call. */
        JSAMPROW rows[16];
        while (c->output_scanline < c->output_height) {
            unsigned n = c->output_height - c->output_scanline;
            if (n > 16)
                n = 16;
            for (unsigned i = 0; i < n; i++)
                rows[i] = st->px + (size_t)(c->output_scanline + i) * stride;
            jpeg_read_scanlines(c, rows, n);
        }
    }
    jpeg_finish_decompress(c);
}

/* The setjmp frame.  `st` belongs to the caller's frame and no local here
 * is modified after setjmp, so nothing is indeterminate after a longjmp. */
static int run_guarded(struct jdec *st, const uint8_t *data, size_t len,
                       const struct lk__limits *lim, struct lk_image_info *info, struct lk_err *err)
{
    if (setjmp(st->jerr.jb) == 0) {
        decode_inner(st, data, len, lim, info, err);
        if (st->status == LK_OK && st->jerr.data_short)
            return lk_err_set(err, LK_ERR_TRUNCATED,
                              "JPEG image data ends before the image does (missing rows are grey)");
        return st->status;
    }
    if (st->src.hit_eof)
        return lk_err_set(err, LK_ERR_TRUNCATED, "JPEG data ends early (%zu bytes): %s", len, st->jerr.msg);
    if (st->jerr.too_many_scans)
        return lk_err_set(err, LK_ERR_CORRUPT, "corrupt JPEG: %s", st->jerr.msg);
    switch (st->jerr.pub.msg_code) {
    case JERR_OUT_OF_MEMORY:
        return lk_err_set(err, LK_ERR_NOMEM, "JPEG decoder: %s", st->jerr.msg);
    case JERR_NO_BACKING_STORE:
        return lk_err_set(err, LK_ERR_DIMENSIONS, "JPEG needs more than %ld MiB of decoder memory",
                          st->c.mem ? st->c.mem->max_memory_to_use >> 20 : 0L);
    case JERR_BAD_PRECISION:
        return lk_err_set(err, LK_ERR_UNSUPPORTED_FORMAT, "JPEG variant not decoded: %s", st->jerr.msg);
    default:
        return lk_err_set(err, LK_ERR_CORRUPT, "corrupt JPEG: %s", st->jerr.msg);
    }
}

int lk__decode_jpeg(const uint8_t *data, size_t len, const struct lk__limits *lim,
                    struct lk_image *out, struct lk_image_info *info, struct lk_err *err)
{
    struct jdec st;
    memset(&st, 0, sizeof st);
    st.c.err = jpeg_std_error(&st.jerr.pub);
    st.jerr.pub.error_exit = on_error_exit;
    st.jerr.pub.emit_message = on_emit_message;

    int rc = run_guarded(&st, data, len, lim, info, err);

    if (st.created)
        jpeg_destroy_decompress(&st.c);
    free(st.row4);
    if (rc != LK_OK) {
        free(st.px);
        return rc;
    }

    info->exif_orientation = st.orientation;
    if (st.orientation != 1) {
        uint32_t nw, nh;
        uint8_t *rot = apply_orientation(st.px, st.ow, st.oh, st.orientation, &nw, &nh);
        free(st.px);
        if (!rot)
            return lk_err_set(err, LK_ERR_NOMEM, "cannot allocate rotated %ux%u image", st.ow, st.oh);
        st.px = rot;
        st.ow = nw;
        st.oh = nh;
    }
    out->width = st.ow;
    out->height = st.oh;
    out->rgb = st.px;
    return LK_OK;
}
