/*
 * generation.c — atomic index generations in a data directory.
 *
 *     DATA/MANIFEST        names the current generation (text, self-checksummed)
 *     DATA/gen-000007/     one generation: index, embed params, calibration
 *     DATA/LOCK            flock()ed by the one builder allowed at a time
 *
 * A build writes generation N+1 beside the serving generation N and then
 * switches the manifest with the classic durable-rename sequence: fsync every
 * file of gen-N+1 and the directory, write MANIFEST.tmp, fsync it, rename it
 * over MANIFEST (atomic on POSIX), fsync DATA.  Readers only ever follow
 * MANIFEST, so they see N or N+1, never a partial generation.
 *
 * Crash safety: the builder holds an flock on DATA/LOCK, which the kernel
 * drops when the process dies (even by SIGKILL).  The next builder takes the
 * lock and garbage-collects: any gen dir numbered above the manifest's is the
 * remains of a crashed build and is removed, as are older generations beyond
 * `keep_old` (kept so servers still mapping the previous generation can drain)
 * and a stray MANIFEST.tmp.  GC refuses to run when MANIFEST is corrupt, so a
 * damaged manifest never causes a good generation to be deleted.
 *
 * The manifest records a content checksum: SHA-1 over the sorted list of
 * "relative-path\tsize\tsha1(file)\n" lines, so a loader can verify a
 * generation (lk_generation_verify) before serving it.  The manifest itself
 * ends with the SHA-1 of its preceding bytes to detect corruption.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pcatalog.h"

/* Crash-injection point for tests (0 = off): the committing process raises
 * SIGKILL at point k of lk_generation_commit.  See tests/catalog. */
int lk__gen_crash_point = 0;
#define CRASH_POINT(k)                                                                 \
    do {                                                                               \
        if (lk__gen_crash_point == (k))                                                \
            raise(SIGKILL);                                                            \
    } while (0)

#define MANIFEST_MAX 4096
#define GEN_DIGITS 6

struct lk_gen_build {
    char *data_dir;
    uint64_t number;
    char dir[PATH_MAX];
    int lock_fd;
    int committed;
};

/* ==== Helpers =========================================================== */

static int parse_gen_name(const char *name, uint64_t *n)
{
    if (strncmp(name, "gen-", 4))
        return -1;
    const char *p = name + 4;
    size_t len = strlen(p);
    if (len < GEN_DIGITS || len > 18)
        return -1;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0)
        return -1;
    *n = v;
    return 0;
}

static int fsync_path(const char *path, int dir, struct lk_err *err)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "open %s: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return lk_err_set(err, LK_ERR_IO, "fsync %s: %s", path, strerror(e));
    }
    close(fd);
    return LK_OK;
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

static int rm_rf(const char *path)
{
    return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int take_lock(const char *data_dir, int *fd_out, struct lk_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/LOCK", data_dir) >= (int)sizeof path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "data dir path too long");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return lk_err_set(err, LK_ERR_STATE, "another index build holds %s", path);
        return lk_err_set(err, LK_ERR_IO, "flock %s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return LK_OK;
}

/* ==== Content checksum ================================================== */

struct walk {
    char **names;       /* relative paths of regular files */
    size_t n, cap;
};

static int walk_dir(const char *root, const char *rel, struct walk *w, int do_fsync,
                    struct lk_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return lk_err_set(err, LK_ERR_IO, "opendir %s: %s", path, strerror(errno));
    int rc = LK_OK;
    struct dirent *de;
    while (rc == LK_OK && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char sub[PATH_MAX], full[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof sub ||
            snprintf(full, sizeof full, "%s/%s", root, sub) >= (int)sizeof full) {
            rc = lk_err_set(err, LK_ERR_INVALID_ARG, "path too long in %s", path);
            break;
        }
        struct stat sb;
        if (lstat(full, &sb) != 0) {
            rc = lk_err_set(err, LK_ERR_IO, "stat %s: %s", full, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            rc = walk_dir(root, sub, w, do_fsync, err);
            if (!rc && do_fsync)
                rc = fsync_path(full, 1, err);
        } else if (S_ISREG(sb.st_mode)) {
            if (do_fsync)
                rc = fsync_path(full, 0, err);
            if (!rc && w->n == w->cap) {
                size_t nc = w->cap ? w->cap * 2 : 16;
                char **nn = realloc(w->names, nc * sizeof *nn);
                if (!nn)
                    rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
                else {
                    w->names = nn;
                    w->cap = nc;
                }
            }
            if (!rc && !(w->names[w->n++] = strdup(sub))) {
                w->n--;
                rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
            }
        }
        /* other file types (symlinks, fifos) are not part of a generation */
    }
    closedir(d);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int content_checksum(const char *dir, int do_fsync, char out[41], uint64_t *files,
                            struct lk_err *err)
{
    struct walk w = {0};
    struct lk__buf b = {0};
    int rc = walk_dir(dir, "", &w, do_fsync, err);
    if (!rc) {
        if (w.n)
            qsort(w.names, w.n, sizeof *w.names, cmp_name);
        for (size_t i = 0; i < w.n && !rc; i++) {
            char full[PATH_MAX], h[41], line[PATH_MAX + 80];
            uint64_t size;
            snprintf(full, sizeof full, "%s/%s", dir, w.names[i]);
            rc = lk__sha1_file(full, h, &size, err);
            if (!rc) {
                int n = snprintf(line, sizeof line, "%s\t%" PRIu64 "\t%s\n", w.names[i], size, h);
                if (lk__buf_append(&b, line, (size_t)n))
                    rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
            }
        }
    }
    if (!rc) {
        lk__sha1_hex(b.p ? b.p : "", b.len, out);
        *files = w.n;
    }
    for (size_t i = 0; i < w.n; i++)
        free(w.names[i]);
    free(w.names);
    lk__buf_free(&b);
    return rc;
}

/* ==== Manifest ========================================================== */

int lk_generation_current(const char *data_dir, struct lk_generation *out, struct lk_err *err)
{
    if (!data_dir || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "data_dir and out required");
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return lk_err_set(err, LK_ERR_NOT_FOUND, "no index generation committed in %s",
                              data_dir);
        return lk_err_set(err, LK_ERR_IO, "open %s: %s", path, strerror(errno));
    }
    char buf[MANIFEST_MAX + 1];
    ssize_t n = read(fd, buf, MANIFEST_MAX);
    close(fd);
    if (n < 0)
        return lk_err_set(err, LK_ERR_IO, "read %s: %s", path, strerror(errno));
    buf[n] = '\0';
    char *tail = strstr(buf, "manifest-sha1 ");
    if (!tail || (tail != buf && tail[-1] != '\n'))
        return lk_err_set(err, LK_ERR_CORRUPT, "%s: no manifest checksum", path);
    char want[41], got[41];
    if (sscanf(tail, "manifest-sha1 %40[0-9a-f]", want) != 1)
        return lk_err_set(err, LK_ERR_CORRUPT, "%s: bad manifest checksum line", path);
    lk__sha1_hex(buf, (size_t)(tail - buf), got);
    if (strcmp(want, got))
        return lk_err_set(err, LK_ERR_CORRUPT, "%s: manifest checksum mismatch", path);
    int version = 0;
    unsigned long long gen = 0, files = 0;
    long long created = 0;
    char dirname[64] = "", sha[41] = "";
    for (char *line = buf; line < tail;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        if (sscanf(line, "lookalike-manifest %d", &version) == 1 ||
            sscanf(line, "generation %llu", &gen) == 1 || sscanf(line, "dir %63s", dirname) == 1 ||
            sscanf(line, "files %llu", &files) == 1 ||
            sscanf(line, "content-sha1 %40[0-9a-f]", sha) == 1 ||
            sscanf(line, "created %lld", &created) == 1) {
        }
        line = nl + 1;
    }
    uint64_t dn;
    if (version != 1)
        return lk_err_set(err, LK_ERR_FORMAT, "%s: unsupported manifest version %d", path, version);
    if (gen == 0 || parse_gen_name(dirname, &dn) || dn != gen || strlen(sha) != 40)
        return lk_err_set(err, LK_ERR_CORRUPT, "%s: incomplete manifest", path);
    out->number = gen;
    if (snprintf(out->dir, sizeof out->dir, "%s/%s", data_dir, dirname) >= (int)sizeof out->dir)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "data dir path too long");
    memcpy(out->content_sha1, sha, 41);
    out->files = files;
    out->created = created;
    return LK_OK;
}

int lk_generation_verify(const struct lk_generation *g, struct lk_err *err)
{
    if (!g)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "generation is NULL");
    char got[41];
    uint64_t files;
    int rc = content_checksum(g->dir, 0, got, &files, err);
    if (rc)
        return rc;
    if (strcmp(got, g->content_sha1) || files != g->files)
        return lk_err_set(err, LK_ERR_CHECKSUM,
                          "generation %" PRIu64 " content does not match its manifest", g->number);
    return LK_OK;
}

static int write_manifest(const char *data_dir, uint64_t gen, const char *sha, uint64_t files,
                          struct lk_generation *g, struct lk_err *err)
{
    char body[MANIFEST_MAX], h[41], tmp[PATH_MAX], fin[PATH_MAX];
    int64_t now = (int64_t)time(NULL);
    int n = snprintf(body, sizeof body,
                     "lookalike-manifest 1\n"
                     "generation %" PRIu64 "\n"
                     "dir gen-%06" PRIu64 "\n"
                     "files %" PRIu64 "\n"
                     "content-sha1 %s\n"
                     "created %" PRId64 "\n",
                     gen, gen, files, sha, now);
    lk__sha1_hex(body, (size_t)n, h);
    n += snprintf(body + n, sizeof body - (size_t)n, "manifest-sha1 %s\n", h);
    snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", data_dir);
    snprintf(fin, sizeof fin, "%s/MANIFEST", data_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return lk_err_set(err, LK_ERR_IO, "create %s: %s", tmp, strerror(errno));
    ssize_t w = write(fd, body, (size_t)n);
    if (w != n || fsync(fd) != 0) {
        int e = w < 0 ? errno : (w != n ? ENOSPC : errno);
        close(fd);
        unlink(tmp);
        return lk_err_set(err, LK_ERR_IO, "write %s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0) {
        unlink(tmp);
        return lk_err_set(err, LK_ERR_IO, "close %s: %s", tmp, strerror(errno));
    }
    CRASH_POINT(2); /* new manifest durable in .tmp, old one still current */
    if (rename(tmp, fin) != 0) {
        int e = errno;
        unlink(tmp);
        return lk_err_set(err, LK_ERR_IO, "rename %s: %s", tmp, strerror(e));
    }
    CRASH_POINT(3); /* switched; directory entry may not be durable yet */
    int rc = fsync_path(data_dir, 1, err);
    if (rc)
        return rc;
    if (g) {
        memset(g, 0, sizeof *g);
        g->number = gen;
        snprintf(g->dir, sizeof g->dir, "%s/gen-%06" PRIu64, data_dir, gen);
        memcpy(g->content_sha1, sha, 41);
        g->files = files;
        g->created = now;
    }
    return LK_OK;
}

/* ==== GC ================================================================ */

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Caller holds the lock.  *max_left = highest generation number remaining. */
static int gc_locked(const char *data_dir, unsigned keep_old, unsigned *removed,
                     uint64_t *max_left, struct lk_err *err)
{
    struct lk_generation cur;
    uint64_t current = 0;
    int rc = lk_generation_current(data_dir, &cur, err);
    if (rc == LK_OK)
        current = cur.number;
    else if (rc != LK_ERR_NOT_FOUND)
        return rc; /* never delete anything on a corrupt/unreadable manifest */
    lk_err_clear(err);

    DIR *d = opendir(data_dir);
    if (!d)
        return lk_err_set(err, LK_ERR_IO, "opendir %s: %s", data_dir, strerror(errno));
    uint64_t *older = NULL;
    size_t nolder = 0, capolder = 0;
    unsigned rm = 0;
    uint64_t maxl = current;
    struct dirent *de;
    rc = LK_OK;
    while (rc == LK_OK && (de = readdir(d))) {
        uint64_t g;
        if (parse_gen_name(de->d_name, &g))
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", data_dir, de->d_name);
        if (g > current) {
            /* Incomplete: a build that never committed (crashed or aborted). */
            if (rm_rf(path) != 0)
                rc = lk_err_set(err, LK_ERR_IO, "remove %s: %s", path, strerror(errno));
            else
                rm++;
        } else if (g < current) {
            if (nolder == capolder) {
                size_t nc = capolder ? capolder * 2 : 8;
                uint64_t *no = realloc(older, nc * sizeof *no);
                if (!no) {
                    rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
                    break;
                }
                older = no;
                capolder = nc;
            }
            older[nolder++] = g;
        }
    }
    closedir(d);
    if (!rc && nolder) {
        qsort(older, nolder, sizeof *older, cmp_u64_desc);
        for (size_t i = keep_old; i < nolder && !rc; i++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/gen-%06" PRIu64, data_dir, older[i]);
            if (rm_rf(path) != 0)
                rc = lk_err_set(err, LK_ERR_IO, "remove %s: %s", path, strerror(errno));
            else
                rm++;
        }
    }
    free(older);
    if (!rc) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", data_dir);
        unlink(tmp);
        if (rm)
            rc = fsync_path(data_dir, 1, err);
    }
    if (removed)
        *removed = rm;
    if (max_left)
        *max_left = maxl;
    return rc;
}

int lk_generation_gc(const char *data_dir, unsigned keep_old, unsigned *removed,
                     struct lk_err *err)
{
    if (removed)
        *removed = 0;
    if (!data_dir)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "data_dir required");
    int fd;
    int rc = take_lock(data_dir, &fd, err);
    if (rc)
        return rc;
    rc = gc_locked(data_dir, keep_old, removed, NULL, err);
    close(fd);
    return rc;
}

/* ==== Build lifecycle =================================================== */

int lk_generation_begin(const char *data_dir, unsigned keep_old, struct lk_gen_build **out,
                        struct lk_err *err)
{
    if (!data_dir || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "data_dir and out required");
    *out = NULL;
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST)
        return lk_err_set(err, LK_ERR_IO, "mkdir %s: %s", data_dir, strerror(errno));
    struct lk_gen_build *b = calloc(1, sizeof *b);
    if (!b || !(b->data_dir = strdup(data_dir))) {
        free(b);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    b->lock_fd = -1;
    int rc = take_lock(data_dir, &b->lock_fd, err);
    uint64_t maxl = 0;
    if (!rc)
        rc = gc_locked(data_dir, keep_old, NULL, &maxl, err);
    if (!rc) {
        b->number = maxl + 1;
        if (snprintf(b->dir, sizeof b->dir, "%s/gen-%06" PRIu64, data_dir, b->number) >=
            (int)sizeof b->dir)
            rc = lk_err_set(err, LK_ERR_INVALID_ARG, "data dir path too long");
        else if (mkdir(b->dir, 0755) != 0)
            rc = lk_err_set(err, LK_ERR_IO, "mkdir %s: %s", b->dir, strerror(errno));
    }
    if (rc) {
        b->committed = 1; /* nothing of ours to remove */
        lk_gen_build_free(b);
        return rc;
    }
    *out = b;
    return LK_OK;
}

const char *lk_gen_build_dir(const struct lk_gen_build *b) { return b ? b->dir : NULL; }

uint64_t lk_gen_build_number(const struct lk_gen_build *b) { return b ? b->number : 0; }

int lk_generation_commit(struct lk_gen_build *b, struct lk_generation *committed,
                         struct lk_err *err)
{
    if (!b)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "build is NULL");
    if (b->committed)
        return lk_err_set(err, LK_ERR_STATE, "generation %" PRIu64 " already committed", b->number);
    char sha[41];
    uint64_t files;
    /* fsync every file and subdirectory while hashing, then the gen dir and
     * DATA (which holds the new gen dir's entry). */
    int rc = content_checksum(b->dir, 1, sha, &files, err);
    if (!rc)
        rc = fsync_path(b->dir, 1, err);
    if (!rc)
        rc = fsync_path(b->data_dir, 1, err);
    if (rc)
        return rc;
    CRASH_POINT(1); /* generation complete on disk, manifest untouched */
    rc = write_manifest(b->data_dir, b->number, sha, files, committed, err);
    if (!rc)
        b->committed = 1;
    return rc;
}

void lk_gen_build_free(struct lk_gen_build *b)
{
    if (!b)
        return;
    if (!b->committed && b->dir[0])
        rm_rf(b->dir); /* abort: best effort; the next GC removes leftovers */
    if (b->lock_fd >= 0)
        close(b->lock_fd);
    free(b->data_dir);
    free(b);
}
