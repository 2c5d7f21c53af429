/*
 * index/hnsw_io.c — persistence: lk_index_save (crash-safe) and
 * lk_index_load (validates everything, optional mmap).  The byte layout is
 * documented in docs/index-format.md; keep the two in step.
 *
 * Decisions:
 *  - The NODES section is the in-memory node blocks verbatim (with the
 *    writer-lock byte zeroed), at a page-aligned offset, so LK_LOAD_MMAP can
 *    map it straight into the chunk table: chunk c of the index is the file
 *    bytes at c * 4096 * node_size.  The mapping is MAP_PRIVATE inside an
 *    anonymous reservation rounded up to whole chunks, so later inserts
 *    write into the same chunk without touching the file (copy-on-write).
 *  - Upper-level links are variable length and live in their own section
 *    (per node with level > 0, in slot order: level * (1 + M) uint32).
 *  - Every section has a CRC-32C in the header, and the header has its own.
 *    Load checks the header CRC and field ranges first, then each section's
 *    bounds against the file size, then its CRC, and then its contents
 *    (every flag, level, link count and neighbour id, the entry point,
 *    finite vectors, unique external ids) before the index is handed out.
 *    A hostile file therefore gets LK_ERR_FORMAT / TRUNCATED / CHECKSUM /
 *    CORRUPT, never an out-of-bounds access.
 *  - Save holds the writer mutex (searches continue) so it writes a
 *    consistent snapshot; temp file + fsync + rename + fsync(dir).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pindex.h"

#define LK__FILE_VERSION 1u
#define LK__HDR_BYTES 256u
#define LK__BOM 0x01020304u
#define LK__ALIGN 4096u
enum { SEC_NODES = 0, SEC_RAW = 1, SEC_UPPER = 2, SEC_N = 3 };
static const unsigned char MAGIC[8] = {'L', 'K', 'I', 'D', 'X', '\r', '\n', 0x1a};

struct hdr {
    uint32_t version, bom, hdr_bytes, kind, metric, storage, dim, m, efc, efs;
    uint64_t seed;
    float compact_fraction;
    uint32_t node_size, chunk_slots, n_slots;
    uint64_t n_live, n_deleted, ep, seq;
    uint64_t off[SEC_N], len[SEC_N];
    uint32_t crc[SEC_N];
};

/* ---- little-endian field codec (the format is little-endian; we refuse
 * big-endian hosts at compile time instead of byte-swapping) ---- */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lookalike index files are little-endian; port hnsw_io.c before using a big-endian host"
#endif
static void put32(unsigned char *b, size_t o, uint32_t v) { memcpy(b + o, &v, 4); }
static void put64(unsigned char *b, size_t o, uint64_t v) { memcpy(b + o, &v, 8); }
static uint32_t get32(const unsigned char *b, size_t o) { uint32_t v; memcpy(&v, b + o, 4); return v; }
static uint64_t get64(const unsigned char *b, size_t o) { uint64_t v; memcpy(&v, b + o, 8); return v; }

static void hdr_encode(const struct hdr *h, unsigned char *b)
{
    memset(b, 0, LK__HDR_BYTES);
    memcpy(b, MAGIC, 8);
    put32(b, 8, h->version), put32(b, 12, h->bom), put32(b, 16, h->hdr_bytes);
    put32(b, 20, h->kind), put32(b, 24, h->metric), put32(b, 28, h->storage), put32(b, 32, h->dim);
    put32(b, 36, h->m), put32(b, 40, h->efc), put32(b, 44, h->efs), put64(b, 48, h->seed);
    memcpy(b + 56, &h->compact_fraction, 4);
    put32(b, 60, h->node_size), put32(b, 64, h->chunk_slots), put32(b, 68, h->n_slots);
    put64(b, 72, h->n_live), put64(b, 80, h->n_deleted), put64(b, 88, h->ep), put64(b, 96, h->seq);
    for (int s = 0; s < SEC_N; s++) {
        put64(b, 104 + 24 * (size_t)s, h->off[s]);
        put64(b, 112 + 24 * (size_t)s, h->len[s]);
        put32(b, 120 + 24 * (size_t)s, h->crc[s]);
    }
    put32(b, 252, lk__crc32c(0, b, 252));
}

static void hdr_decode(const unsigned char *b, struct hdr *h)
{
    h->version = get32(b, 8), h->bom = get32(b, 12), h->hdr_bytes = get32(b, 16);
    h->kind = get32(b, 20), h->metric = get32(b, 24), h->storage = get32(b, 28), h->dim = get32(b, 32);
    h->m = get32(b, 36), h->efc = get32(b, 40), h->efs = get32(b, 44), h->seed = get64(b, 48);
    memcpy(&h->compact_fraction, b + 56, 4);
    h->node_size = get32(b, 60), h->chunk_slots = get32(b, 64), h->n_slots = get32(b, 68);
    h->n_live = get64(b, 72), h->n_deleted = get64(b, 80), h->ep = get64(b, 88), h->seq = get64(b, 96);
    for (int s = 0; s < SEC_N; s++) {
        h->off[s] = get64(b, 104 + 24 * (size_t)s);
        h->len[s] = get64(b, 112 + 24 * (size_t)s);
        h->crc[s] = get32(b, 120 + 24 * (size_t)s);
    }
}

/* ==== Save ==== */

struct wbuf {
    int fd;
    unsigned char *buf;
    size_t n, cap;
    uint64_t pos;
    uint32_t crc;
    int err;
};

static int wb_flush(struct wbuf *w)
{
    size_t done = 0;
    while (done < w->n) {
        ssize_t r = write(w->fd, w->buf + done, w->n - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            w->err = errno;
            return -1;
        }
        done += (size_t)r;
    }
    w->n = 0;
    return 0;
}

static int wb_put(struct wbuf *w, const void *p, size_t len)
{
    const unsigned char *s = p;
    w->crc = lk__crc32c(w->crc, p, len);
    w->pos += len;
    while (len) {
        size_t k = w->cap - w->n < len ? w->cap - w->n : len;
        memcpy(w->buf + w->n, s, k);
        w->n += k, s += k, len -= k;
        if (w->n == w->cap && wb_flush(w))
            return -1;
    }
    return 0;
}

static int wb_pad(struct wbuf *w)
{
    static const unsigned char zero[LK__ALIGN];
    size_t pad = (size_t)((LK__ALIGN - w->pos % LK__ALIGN) % LK__ALIGN);
    uint32_t keep = w->crc;
    int r = wb_put(w, zero, pad);
    w->crc = keep;
    return r;
}

static int io_err(struct lk_err *err, const char *what, const char *path)
{
    return lk_err_set(err, LK_ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

int lk_index_save(const struct lk_index *cix, const char *path, struct lk_err *err)
{
    struct lk_index *ix = (struct lk_index *)cix;
    if (!ix || !path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_save: NULL argument");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *dircopy = strdup(path);
    struct wbuf w = {.fd = -1, .cap = 1u << 20};
    w.buf = malloc(w.cap);
    unsigned char *node = malloc(ix->node_size);
    int rc = LK_OK;
    if (!tmp || !dircopy || !w.buf || !node) {
        rc = lk_err_set(err, LK_ERR_NOMEM, "lk_index_save: out of memory");
        goto out;
    }
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    w.fd = mkstemp(tmp);
    if (w.fd < 0) {
        rc = io_err(err, "cannot create temporary file for", path);
        goto out;
    }
    fchmod(w.fd, 0644);

    pthread_mutex_lock(&ix->write_mu);
    const struct lk__ctab *t = lk__tab(ix);
    struct hdr h = {0};
    h.version = LK__FILE_VERSION, h.bom = LK__BOM, h.hdr_bytes = LK__HDR_BYTES;
    h.kind = ix->p.kind, h.metric = ix->p.metric, h.storage = ix->p.storage, h.dim = ix->p.dim;
    h.m = ix->p.M, h.efc = ix->p.ef_construction, h.efs = ix->p.ef_search, h.seed = ix->p.seed;
    h.compact_fraction = ix->p.compact_fraction;
    h.node_size = (uint32_t)ix->node_size, h.chunk_slots = LK__CHUNK_SLOTS;
    h.n_slots = atomic_load(&ix->s.n_slots);
    h.n_live = atomic_load(&ix->s.n_live), h.n_deleted = atomic_load(&ix->s.n_deleted);
    h.ep = atomic_load(&ix->s.ep), h.seq = ix->s.seq;
    unsigned char hb[LK__HDR_BYTES] = {0};
    int bad = wb_put(&w, hb, LK__HDR_BYTES) || wb_pad(&w);
    /* NODES */
    h.off[SEC_NODES] = w.pos, w.crc = 0;
    for (uint32_t i = 0; i < h.n_slots && !bad; i++) {
        memcpy(node, lk__node_t(ix, t, i), ix->node_size);
        node[6] = 0; /* lock byte */
        bad = wb_put(&w, node, ix->node_size);
    }
    h.len[SEC_NODES] = w.pos - h.off[SEC_NODES], h.crc[SEC_NODES] = w.crc;
    /* RAW */
    bad = bad || wb_pad(&w);
    h.off[SEC_RAW] = w.pos, w.crc = 0;
    if (ix->compressed)
        for (uint32_t i = 0; i < h.n_slots && !bad; i++)
            bad = wb_put(&w, lk__raw_t(ix, t, i), ix->p.dim * sizeof(float));
    h.len[SEC_RAW] = w.pos - h.off[SEC_RAW], h.crc[SEC_RAW] = w.crc;
    /* UPPER */
    h.off[SEC_UPPER] = w.pos, w.crc = 0;
    for (uint32_t i = 0; i < h.n_slots && !bad; i++) {
        unsigned lvl = *lk__level(lk__node_t(ix, t, i));
        if (lvl)
            bad = wb_put(&w, lk__upper_t(ix, t, i, 1), (size_t)lvl * (ix->max_m + 1) * sizeof(uint32_t));
    }
    h.len[SEC_UPPER] = w.pos - h.off[SEC_UPPER], h.crc[SEC_UPPER] = w.crc;
    pthread_mutex_unlock(&ix->write_mu);

    if (bad || wb_flush(&w)) {
        errno = w.err;
        rc = io_err(err, "write", tmp);
        goto out;
    }
    hdr_encode(&h, hb);
    if (pwrite(w.fd, hb, LK__HDR_BYTES, 0) != (ssize_t)LK__HDR_BYTES) {
        rc = io_err(err, "write", tmp);
        goto out;
    }
    if (fsync(w.fd)) {
        rc = io_err(err, "fsync", tmp);
        goto out;
    }
    if (close(w.fd)) {
        w.fd = -1;
        rc = io_err(err, "close", tmp);
        goto out;
    }
    w.fd = -1;
    if (rename(tmp, path)) {
        rc = io_err(err, "rename to", path);
        goto out;
    }
    tmp[0] = '\0'; /* renamed: nothing to unlink */
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd)) {
        rc = io_err(err, "fsync directory of", path);
        if (dfd >= 0)
            close(dfd);
        goto out;
    }
    close(dfd);
out:
    if (w.fd >= 0)
        close(w.fd);
    if (rc && tmp && tmp[0])
        unlink(tmp);
    free(tmp), free(dircopy), free(w.buf), free(node);
    return rc;
}

/* ==== Load ==== */

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    unsigned char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r, len -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

/* Map `len` file bytes at `off` inside an anonymous reservation of
 * `reserve` bytes (>= len).  Returns the base or NULL. */
static void *map_section(int fd, uint64_t off, size_t len, size_t reserve)
{
    void *base = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (len) {
        void *m = mmap(base, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)off);
        if (m == MAP_FAILED) {
            munmap(base, reserve);
            return NULL;
        }
    }
    return base;
}

static int vec_finite(const struct lk_index *ix, char *n)
{
    const void *v = lk__vec(ix, n);
    switch (ix->p.storage) {
    case LK_STORAGE_F32:
        for (size_t i = 0; i < ix->p.dim; i++) {
            float x;
            memcpy(&x, (const char *)v + 4 * i, 4);
            if (!isfinite(x))
                return 0;
        }
        return 1;
    case LK_STORAGE_F16:
        for (size_t i = 0; i < ix->p.dim; i++) {
            uint16_t x;
            memcpy(&x, (const char *)v + 2 * i, 2);
            if ((x & 0x7c00u) == 0x7c00u)
                return 0;
        }
        return 1;
    case LK_STORAGE_I8: {
        float s;
        memcpy(&s, v, 4);
        return isfinite(s) && s >= 0.0f;
    }
    }
    return 0;
}

static int load_fail(struct lk_index *ix, int fd, int rc)
{
    if (ix)
        lk_index_free(ix);
    if (fd >= 0)
        close(fd);
    return rc;
}

int lk_index_load(const char *path, unsigned flags, struct lk_index **out, struct lk_err *err)
{
    if (!path || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_load: NULL argument");
    *out = NULL;
    if (flags & ~LK_LOAD_MMAP)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_index_load: unknown flags 0x%x", flags);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_err(err, "cannot open", path);
    struct stat st;
    if (fstat(fd, &st))
        return load_fail(NULL, fd, io_err(err, "cannot stat", path));
    uint64_t fsize = (uint64_t)st.st_size;
    unsigned char hb[LK__HDR_BYTES];
    size_t got = fsize < LK__HDR_BYTES ? (size_t)fsize : LK__HDR_BYTES;
    if (read_at(fd, hb, got, 0))
        return load_fail(NULL, fd, io_err(err, "cannot read", path));
    if (got == 0)
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_EMPTY, "%s: empty file", path));
    if (got < 8 || memcmp(hb, MAGIC, got < 8 ? got : 8) != 0)
        return load_fail(NULL, fd,
                         got < 8 && memcmp(hb, MAGIC, got) == 0
                             ? lk_err_set(err, LK_ERR_TRUNCATED, "%s: truncated index header (%zu bytes)", path, got)
                             : lk_err_set(err, LK_ERR_FORMAT, "%s: not a lookalike index file (bad magic)", path));
    if (got < LK__HDR_BYTES)
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_TRUNCATED, "%s: truncated index header (%zu of %u bytes)",
                                              path, got, LK__HDR_BYTES));
    if (get32(hb, 252) != lk__crc32c(0, hb, 252))
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_CHECKSUM, "%s: header checksum mismatch", path));
    struct hdr h;
    hdr_decode(hb, &h);
    if (h.version != LK__FILE_VERSION)
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_FORMAT, "%s: unsupported index format version %u (this build reads %u)",
                                              path, h.version, LK__FILE_VERSION));
    if (h.bom != LK__BOM || h.hdr_bytes != LK__HDR_BYTES || h.chunk_slots != LK__CHUNK_SLOTS)
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_FORMAT, "%s: unsupported byte order or layout", path));

    struct lk_index_params p;
    memset(&p, 0, sizeof p);
    p.kind = (enum lk_index_kind)h.kind, p.metric = (enum lk_metric)h.metric;
    p.storage = (enum lk_storage)h.storage, p.dim = h.dim, p.M = h.m, p.ef_construction = h.efc;
    p.ef_search = h.efs, p.seed = h.seed, p.compact_fraction = h.compact_fraction;
    if (h.kind > LK_INDEX_FLAT || h.metric > LK_METRIC_COSINE || h.storage > LK_STORAGE_I8)
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: unknown kind/metric/storage", path));
    if (p.kind == LK_INDEX_FLAT && (p.M || p.ef_construction))
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: flat index with graph parameters", path));
    struct lk_index *ix = malloc(sizeof *ix);
    if (!ix)
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory"));
    struct lk_err e2 = {0};
    if (lk__validate_params(&p, &e2)) {
        free(ix);
        return load_fail(NULL, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: %s", path, e2.msg));
    }
    lk__index_init(ix, &p, NULL);
    uint32_t ns = h.n_slots;
    if (h.node_size != ix->node_size || ns > LK_INDEX_SLOTS_MAX || h.n_live + h.n_deleted != ns)
        return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: inconsistent node size or counts", path));
    /* section bounds */
    uint64_t want[SEC_N] = {(uint64_t)ns * ix->node_size,
                            ix->compressed ? (uint64_t)ns * ix->p.dim * sizeof(float) : 0, 0};
    uint64_t end = LK__HDR_BYTES;
    for (int s = 0; s < SEC_N; s++) {
        if (s != SEC_UPPER && h.len[s] != want[s])
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: section %d length %llu, expected %llu",
                                                path, s, (unsigned long long)h.len[s], (unsigned long long)want[s]));
        if (h.off[s] < end || h.off[s] > UINT64_MAX / 2 || h.len[s] > UINT64_MAX / 2 ||
            (s != SEC_UPPER && h.off[s] % LK__ALIGN))
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: section %d offset %llu invalid", path, s,
                                                (unsigned long long)h.off[s]));
        end = h.off[s] + h.len[s];
        if (end > fsize)
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_TRUNCATED, "%s: truncated (section %d ends at %llu, file has %llu bytes)",
                                                path, s, (unsigned long long)end, (unsigned long long)fsize));
    }
    /* the alignment padding between sections is not checksummed: it must
     * be zero, so that no byte of the file goes unchecked */
    {
        uint64_t gap_from = LK__HDR_BYTES;
        unsigned char gap[LK__ALIGN];
        for (int sct = 0; sct < SEC_N; sct++) {
            uint64_t glen = h.off[sct] - gap_from;
            if (glen >= LK__ALIGN)
                return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: section %d misplaced", path, sct));
            if (glen && read_at(fd, gap, (size_t)glen, gap_from))
                return load_fail(ix, fd, io_err(err, "cannot read", path));
            for (uint64_t i = 0; i < glen; i++)
                if (gap[i])
                    return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: non-zero padding at byte %llu",
                                                        path, (unsigned long long)(gap_from + i)));
            gap_from = h.off[sct] + h.len[sct];
        }
    }
    if (end != fsize)
        return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: %llu trailing bytes", path,
                                            (unsigned long long)(fsize - end)));
    if (h.len[SEC_UPPER] % 4 || h.len[SEC_UPPER] > (uint64_t)ns * LK_HNSW_LEVEL_MAX * (ix->max_m + 1) * 4)
        return load_fail(ix, fd, lk_err_set(err, LK_ERR_CORRUPT, "%s: upper-link section size invalid", path));

    /* storage */
    struct lk__store *s = &ix->s;
    uint32_t nch = (uint32_t)(((uint64_t)ns + LK__CHUNK_SLOTS - 1) >> LK__CHUNK_SHIFT);
    size_t chunk_bytes = (size_t)LK__CHUNK_SLOTS * ix->node_size;
    if (flags & LK_LOAD_MMAP && ns) {
        struct lk__ctab *t = calloc(1, sizeof *t);
        uint32_t cap = 4;
        while (cap < nch)
            cap *= 2;
        if (t) {
            t->cap = cap;
            t->node = calloc(cap, sizeof *t->node);
            t->upper = calloc(cap, sizeof *t->upper);
            t->flg = calloc(cap, sizeof *t->flg);
            t->raw = ix->compressed ? calloc(cap, sizeof *t->raw) : NULL;
        }
        if (!t || !t->node || !t->upper || !t->flg || (ix->compressed && !t->raw)) {
            if (t)
                free(t->node), free(t->upper), free(t->flg), free(t->raw), free(t);
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory"));
        }
        atomic_store(&s->tab, t);
        s->map_len = (size_t)nch * chunk_bytes;
        s->map_base = map_section(fd, h.off[SEC_NODES], (size_t)h.len[SEC_NODES], s->map_len);
        if (!s->map_base)
            return load_fail(ix, fd, io_err(err, "cannot map", path));
        if (ix->compressed) {
            size_t rchunk = (size_t)LK__CHUNK_SLOTS * ix->p.dim * sizeof(float);
            s->raw_map_len = (size_t)nch * rchunk;
            s->raw_map_base = map_section(fd, h.off[SEC_RAW], (size_t)h.len[SEC_RAW], s->raw_map_len);
            if (!s->raw_map_base)
                return load_fail(ix, fd, io_err(err, "cannot map", path));
            for (uint32_t c = 0; c < nch; c++)
                t->raw[c] = (float *)((char *)s->raw_map_base + (size_t)c * rchunk);
        }
        for (uint32_t c = 0; c < nch; c++) {
            t->node[c] = (char *)s->map_base + (size_t)c * chunk_bytes;
            t->upper[c] = calloc(LK__CHUNK_SLOTS, sizeof(uint32_t *));
            t->flg[c] = calloc(LK__CHUNK_SLOTS, 1);
            s->n_chunks = c + 1;
            s->mapped_chunks = c + 1;
            if (!t->upper[c] || !t->flg[c])
                return load_fail(ix, fd, lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory"));
        }
    } else if (ns) {
        if (lk__store_grow(ix, ns))
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory"));
        struct lk__ctab *t = lk__tab(ix);
        for (uint32_t c = 0; c < nch; c++) {
            uint32_t k = ns - c * LK__CHUNK_SLOTS < LK__CHUNK_SLOTS ? ns - c * LK__CHUNK_SLOTS : LK__CHUNK_SLOTS;
            if (read_at(fd, t->node[c], (size_t)k * ix->node_size, h.off[SEC_NODES] + (uint64_t)c * chunk_bytes))
                return load_fail(ix, fd, io_err(err, "cannot read", path));
            if (ix->compressed &&
                read_at(fd, t->raw[c], (size_t)k * ix->p.dim * sizeof(float),
                        h.off[SEC_RAW] + (uint64_t)c * LK__CHUNK_SLOTS * ix->p.dim * sizeof(float)))
                return load_fail(ix, fd, io_err(err, "cannot read", path));
        }
    }
    struct lk__ctab *t = lk__tab(ix);
    atomic_store(&s->n_slots, ns); /* so lk_index_free releases upper blocks on failure */
    /* checksums */
    uint32_t crc = 0;
    for (uint32_t c = 0; c < nch; c++) {
        uint32_t k = ns - c * LK__CHUNK_SLOTS < LK__CHUNK_SLOTS ? ns - c * LK__CHUNK_SLOTS : LK__CHUNK_SLOTS;
        crc = lk__crc32c(crc, t->node[c], (size_t)k * ix->node_size);
    }
    if (crc != h.crc[SEC_NODES])
        return load_fail(ix, fd, lk_err_set(err, LK_ERR_CHECKSUM, "%s: node section checksum mismatch", path));
    if (ix->compressed) {
        crc = 0;
        for (uint32_t c = 0; c < nch; c++) {
            uint32_t k = ns - c * LK__CHUNK_SLOTS < LK__CHUNK_SLOTS ? ns - c * LK__CHUNK_SLOTS : LK__CHUNK_SLOTS;
            crc = lk__crc32c(crc, t->raw[c], (size_t)k * ix->p.dim * sizeof(float));
        }
        if (crc != h.crc[SEC_RAW])
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_CHECKSUM, "%s: vector section checksum mismatch", path));
    }
    uint32_t *up = NULL;
    size_t uplen = (size_t)h.len[SEC_UPPER];
    if (uplen) {
        up = malloc(uplen);
        if (!up)
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory"));
        if (read_at(fd, up, uplen, h.off[SEC_UPPER])) {
            free(up);
            return load_fail(ix, fd, io_err(err, "cannot read", path));
        }
        if (lk__crc32c(0, up, uplen) != h.crc[SEC_UPPER]) {
            free(up);
            return load_fail(ix, fd, lk_err_set(err, LK_ERR_CHECKSUM, "%s: upper-link section checksum mismatch", path));
        }
    } else if (h.crc[SEC_UPPER] != 0) {
        return load_fail(ix, fd, lk_err_set(err, LK_ERR_CHECKSUM, "%s: upper-link section checksum mismatch", path));
    }
    close(fd);
    fd = -1;

    /* contents: nodes */
    int hnsw = ix->p.kind == LK_INDEX_HNSW;
    uint32_t top = h.ep == LK__EP_NONE ? 0 : (uint32_t)(h.ep >> 32);
    if (hnsw && ((ns == 0) != (h.ep == LK__EP_NONE) ||
                 (h.ep != LK__EP_NONE && ((uint32_t)h.ep >= ns || top > LK_HNSW_LEVEL_MAX ||
                                          *lk__level(lk__node_t(ix, t, (uint32_t)h.ep)) != top)))) {
        free(up);
        return load_fail(ix, -1, lk_err_set(err, LK_ERR_CORRUPT, "%s: invalid entry point", path));
    }
    if (!hnsw && h.ep != LK__EP_NONE) {
        free(up);
        return load_fail(ix, -1, lk_err_set(err, LK_ERR_CORRUPT, "%s: flat index with an entry point", path));
    }
    size_t upos = 0, upn = uplen / 4;
    size_t live = 0;
    int rc = LK_OK;
    for (uint32_t id = 0; id < ns && !rc; id++) {
        char *n = lk__node_t(ix, t, id);
        uint8_t fl = *lk__flags(n), lvl = *lk__level(n);
        uint32_t c0 = *lk__count0(n);
        if ((fl & ~LK__NODE_DELETED) || *lk__lockb(n) || lvl > top || (!hnsw && (lvl || c0)) || c0 > ix->max_m0) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: node %u: bad header (flags %u, level %u, links %u)", path,
                            id, fl, lvl, c0);
            break;
        }
        if (!vec_finite(ix, n)) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: node %u: non-finite vector", path, id);
            break;
        }
        for (uint32_t i = 0; i < c0; i++) {
            uint32_t nb = lk__links0(n)[i];
            if (nb >= ns || nb == id) {
                rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: node %u: bad level-0 link %u", path, id, nb);
                break;
            }
        }
        if (rc)
            break;
        if (lvl) {
            size_t need = (size_t)lvl * (ix->max_m + 1);
            if (upos + need > upn) {
                rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: upper-link section too short at node %u", path, id);
                break;
            }
            uint32_t *blk = malloc(need * sizeof *blk);
            if (!blk) {
                rc = lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory");
                break;
            }
            memcpy(blk, up + upos, need * sizeof *blk);
            atomic_fetch_add_explicit(&s->upper_bytes, need * sizeof *blk, memory_order_relaxed);
            upos += need;
            t->upper[id >> LK__CHUNK_SHIFT][id & LK__CHUNK_MASK] = blk;
            for (unsigned l = 1; l <= lvl && !rc; l++) {
                uint32_t *b = blk + (size_t)(l - 1) * (ix->max_m + 1);
                if (b[0] > ix->max_m) {
                    rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: node %u level %u: %u links", path, id, l, b[0]);
                    break;
                }
                for (uint32_t i = 0; i < b[0]; i++)
                    if (b[1 + i] >= ns || b[1 + i] == id) {
                        rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: node %u level %u: bad link %u", path, id, l, b[1 + i]);
                        break;
                    }
            }
        }
        t->flg[id >> LK__CHUNK_SHIFT][id & LK__CHUNK_MASK] = fl;
        if (!(fl & LK__NODE_DELETED))
            live++;
    }
    if (!rc && upos != upn)
        rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: upper-link section has %zu extra words", path, upn - upos);
    free(up);
    /* link targets' levels (needs all levels validated first) */
    for (uint32_t id = 0; id < ns && !rc; id++) {
        char *n = lk__node_t(ix, t, id);
        for (unsigned l = 1; l <= *lk__level(n) && !rc; l++) {
            uint32_t *b = lk__upper_t(ix, t, id, l);
            for (uint32_t i = 0; i < b[0]; i++)
                if (*lk__level(lk__node_t(ix, t, b[1 + i])) < l) {
                    rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: node %u level %u links to a lower node", path, id, l);
                    break;
                }
        }
    }
    if (!rc && live != h.n_live)
        rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: %zu live nodes, header says %llu", path, live,
                        (unsigned long long)h.n_live);
    /* id map and free list */
    for (uint32_t id = 0; id < ns && !rc; id++) {
        char *n = lk__node_t(ix, t, id);
        if (*lk__flags(n) & LK__NODE_DELETED) {
            if (s->n_free == s->free_cap) {
                size_t cap = s->free_cap ? s->free_cap * 2 : 64;
                uint32_t *f = realloc(s->free_slots, cap * sizeof *f);
                if (!f) {
                    rc = lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory");
                    break;
                }
                s->free_slots = f, s->free_cap = cap;
            }
            s->free_slots[s->n_free++] = id;
            continue;
        }
        uint64_t ext = *lk__extid(ix, n);
        if (lk__map_get(&s->map, ext) != LK__NONE) {
            rc = lk_err_set(err, LK_ERR_CORRUPT, "%s: external id %llu appears twice", path, (unsigned long long)ext);
            break;
        }
        if (lk__map_put(&s->map, ext, id))
            rc = lk_err_set(err, LK_ERR_NOMEM, "lk_index_load: out of memory");
    }
    if (rc)
        return load_fail(ix, -1, rc);
    atomic_store(&s->n_live, (size_t)h.n_live);
    atomic_store(&s->n_deleted, (size_t)h.n_deleted);
    atomic_store(&s->ep, h.ep);
    s->seq = h.seq;
    *out = ix;
    return LK_OK;
}
