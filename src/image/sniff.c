/*
 * src/image/sniff.c — detect an image format from its magic numbers.
 *
 * The format is decided from the bytes alone, never from a file name or a
 * Content-Type header: uploads lie about both.  Only JPEG and PNG are
 * decoded; the other formats are recognised so the "unsupported image
 * format" error can say what was actually sent.  Signatures follow each
 * format's specification (JPEG SOI marker FF D8, ITU T.81 B.1.1.3; PNG
 * signature, RFC 2083 3.1; "GIF87a"/"GIF89a"; "BM"; TIFF byte-order mark
 * "II*\0"/"MM\0*"; RIFF....WEBP; ISO-BMFF ftyp brands for HEIF/AVIF; JPEG
 * 2000 signature box; JPEG XL codestream FF 0A and container box).
 */
#include <string.h>
#include <strings.h>

#include "pimage.h"

static int has_prefix(const uint8_t *d, size_t len, const void *magic, size_t n)
{
    return len >= n && memcmp(d, magic, n) == 0;
}

/* True if `d` is a non-empty proper prefix of magic (the file was cut short
 * inside its own signature). */
static int is_partial(const uint8_t *d, size_t len, const void *magic, size_t n)
{
    return len < n && memcmp(d, magic, len) == 0;
}

/* SVG/XML: optional UTF-8 BOM and whitespace, then "<?xml", "<svg" or a
 * comment/doctype that leads to an <svg element within the first 512 bytes. */
static int looks_like_svg(const uint8_t *d, size_t len)
{
    size_t i = 0;
    if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
        i = 3;
    while (i < len && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n'))
        i++;
    if (i >= len || d[i] != '<')
        return 0;
    if (len - i >= 4 && strncasecmp((const char *)d + i, "<svg", 4) == 0)
        return 1;
    if (len - i >= 5 && strncasecmp((const char *)d + i, "<?xml", 5) == 0)
        return 1;
    if (len - i >= 4 && (memcmp(d + i, "<!--", 4) == 0 ||
                       (len - i >= 9 && strncasecmp((const char *)d + i, "<!DOCTYPE", 9) == 0))) {
        size_t end = len < 512 ? len : 512;
        for (size_t k = i; k + 4 <= end; k++)
            if (strncasecmp((const char *)d + k, "<svg", 4) == 0)
                return 1;
    }
    return 0;
}

enum lk_image_format lk_image_sniff(const void *data, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    static const uint8_t jpeg_sig[3] = {0xFF, 0xD8, 0xFF};
    static const uint8_t jp2_sig[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    static const uint8_t jxl_box[12] = {0, 0, 0, 0x0C, 'J', 'X', 'L', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    const uint8_t *d = data;

    if (!d || len == 0)
        return LK_FORMAT_UNKNOWN;
    if (has_prefix(d, len, jpeg_sig, 3) || (len == 2 && is_partial(d, len, jpeg_sig, 3)))
        return LK_FORMAT_JPEG;
    if (has_prefix(d, len, png_sig, 8) || (len >= 4 && is_partial(d, len, png_sig, 8)))
        return LK_FORMAT_PNG;
    if (has_prefix(d, len, "GIF87a", 6) || has_prefix(d, len, "GIF89a", 6))
        return LK_FORMAT_GIF;
    if (has_prefix(d, len, "II*\0", 4) || has_prefix(d, len, "MM\0*", 4))
        return LK_FORMAT_TIFF;
    if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return LK_FORMAT_WEBP;
    if (len >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
        const char *brand = (const char *)d + 8;
        if (memcmp(brand, "avif", 4) == 0 || memcmp(brand, "avis", 4) == 0)
            return LK_FORMAT_AVIF;
        if (memcmp(brand, "heic", 4) == 0 || memcmp(brand, "heix", 4) == 0 ||
            memcmp(brand, "hevc", 4) == 0 || memcmp(brand, "mif1", 4) == 0 ||
            memcmp(brand, "msf1", 4) == 0)
            return LK_FORMAT_HEIF;
    }
    if (has_prefix(d, len, jp2_sig, 12) || has_prefix(d, len, "\xFF\x4F\xFF\x51", 4))
        return LK_FORMAT_JPEG2000;
    if (has_prefix(d, len, jxl_box, 12) || has_prefix(d, len, "\xFF\x0A", 2))
        return LK_FORMAT_JPEGXL;
    if (has_prefix(d, len, "%PDF-", 5))
        return LK_FORMAT_PDF;
    /* "BM" alone is two printable letters; also require the BMP header's
     * reserved fields (bytes 6..9) to be zero so text starting "BM" is not
     * called a bitmap. */
    if (len >= 14 && d[0] == 'B' && d[1] == 'M' && d[6] == 0 && d[7] == 0 && d[8] == 0 && d[9] == 0)
        return LK_FORMAT_BMP;
    if (looks_like_svg(d, len))
        return LK_FORMAT_SVG;
    return LK_FORMAT_UNKNOWN;
}

const char *lk_image_format_name(enum lk_image_format f)
{
    switch (f) {
    case LK_FORMAT_JPEG: return "JPEG";
    case LK_FORMAT_PNG: return "PNG";
    case LK_FORMAT_GIF: return "GIF";
    case LK_FORMAT_BMP: return "BMP";
    case LK_FORMAT_TIFF: return "TIFF";
    case LK_FORMAT_WEBP: return "WebP";
    case LK_FORMAT_SVG: return "SVG";
    case LK_FORMAT_HEIF: return "HEIF";
    case LK_FORMAT_AVIF: return "AVIF";
    case LK_FORMAT_JPEG2000: return "JPEG 2000";
    case LK_FORMAT_JPEGXL: return "JPEG XL";
    case LK_FORMAT_PDF: return "PDF";
    case LK_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}
