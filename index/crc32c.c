/*
 * index/crc32c.c — CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected
 * 0x82F63B78), the checksum of the index file format.
 *
 * Two implementations, chosen once: the SSE4.2 CRC32 instruction (8 bytes
 * per instruction, ~10 GB/s, so checksumming a 600 MB index costs well under
 * a second at load) when CPUID reports it, else a byte-wise table.  Both give
 * identical results (tested).  Same check value as RFC 3720 / iSCSI:
 * crc32c("123456789") = 0xE3069283.
 */
#include <cpuid.h>
#include <pthread.h>
#include <string.h>
#include <nmmintrin.h>

#include "pindex.h"

static uint32_t g_table[256];
static int g_hw;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
        g_table[i] = c;
    }
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d))
        g_hw = (c >> 20) & 1;
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len--)
        crc = g_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return crc;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8, len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}

/* Continue a CRC: start with crc = 0. */
uint32_t lk__crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&g_once, init);
    crc = ~crc;
    crc = g_hw ? crc_hw(crc, buf, len) : crc_sw(crc, buf, len);
    return ~crc;
}

uint32_t lk__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&g_once, init);
    return ~crc_sw(~crc, buf, len);
}
