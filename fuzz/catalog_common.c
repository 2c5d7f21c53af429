/*
 * fuzz/catalog_common.c — one catalog per fuzzing process, fed one import
 * file per input.
 *
 * The images directory holds a valid 1x1 PNG (a.png), a file that only looks
 * like a JPEG (b.jpg) and a subdirectory, so rows naming images reach the
 * path checks, the magic/header check and (with decode_images) the decoder;
 * paths that escape the directory must be refused, never read.  The
 * database is recreated every RESET_EVERY inputs so it stays small (import
 * and integrity_check cost grow with it, and speed is coverage).  Inputs whose
 * length is a multiple of 5 run in strict mode (all-or-nothing).  After every
 * import the database must pass SQLite's integrity_check: an importer may
 * refuse rows, never corrupt the store.
 */
#include "catalog_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lookalike/status.h"

#define RESET_EVERY 256

static struct lk_catalog *cat;
static unsigned long runs;
static char dir[256], images[300], input[300];

static const uint8_t png_1x1[] = {
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41, 0x54, 0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xDD, 0x8D, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E,
    0x44, 0xAE, 0x42, 0x60, 0x82};

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f) != 0)
        abort();
}

static void setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/lk-fuzz-catalog-XXXXXX", base);
    if (!mkdtemp(dir))
        abort();
    snprintf(images, sizeof images, "%s/images", dir);
    if (mkdir(images, 0700) != 0)
        abort();
    char p[400];
    snprintf(p, sizeof p, "%s/a.png", images);
    write_file(p, png_1x1, sizeof png_1x1);
    snprintf(p, sizeof p, "%s/b.jpg", images);
    write_file(p, "\xff\xd8\xff\xe0\0\x10JFIF\0", 11);
    snprintf(p, sizeof p, "%s/sub", images);
    if (mkdir(p, 0700) != 0)
        abort();
    snprintf(input, sizeof input, "%s/input", dir);
    /* The directory is removed at exit; a crash leaves it for inspection. */
}

static void open_catalog(void)
{
    char data[300], cmd[400];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd) != 0)
        abort();
    struct lk_err err = {0};
    if (lk_catalog_open(data, NULL, &cat, &err) != LK_OK) {
        fprintf(stderr, "lk_catalog_open: %s\n", err.msg);
        abort();
    }
}

static void cleanup(void)
{
    char cmd[400];
    lk_catalog_close(cat);
    cat = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int lk_fuzz_import(const uint8_t *data, size_t size, enum lk_import_format fmt)
{
    if (runs++ == 0) {
        setup();
        atexit(cleanup);
    }
    if (runs % RESET_EVERY == 1) {
        lk_catalog_close(cat);
        open_catalog();
    }
    write_file(input, data, size);

    struct lk_import_opts o;
    lk_import_opts_default(&o);
    o.format = fmt;
    o.images_dir = images;
    o.strict = size % 5 == 0;
    o.check_images = 1;
    o.decode_images = size % 3 == 0;
    o.max_issues = 8;
    struct lk_import_report rep;
    memset(&rep, 0, sizeof rep);
    struct lk_err err = {0};
    int rc = lk_catalog_import_file(cat, input, &o, &rep, &err);
    if (rc > 0 || (rc != LK_OK && err.msg[0] == '\0'))
        abort();
    if (rc == LK_ERR_INTERNAL || rc == LK_ERR_DB) {
        fprintf(stderr, "import: %s (%s)\n", lk_status_str(rc), err.msg);
        abort();    /* no input may break an invariant or the database */
    }
    if (rep.n_issues > 8 || rep.rows_imported + rep.rows_skipped > rep.rows_read)
        abort();
    lk_import_report_free(&rep);
    if (lk_catalog_integrity_check(cat, &err) != LK_OK) {
        fprintf(stderr, "integrity_check after import: %s\n", err.msg);
        abort();
    }
    return 0;
}
