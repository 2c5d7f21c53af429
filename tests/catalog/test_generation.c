/*
 * test_generation.c — atomic index generations: commit and switch, content
 * verification, abandoned builds, a builder killed with SIGKILL mid-write
 * (fork), crashes injected at each step of the commit, the builder lock,
 * garbage collection with keep_old, and a corrupt manifest.
 */
#include <signal.h>
#include <sys/wait.h>

#include "../../src/catalog/pcatalog.h"
#include "lookalike/catalog.h"
#include "util.h"

static char *dir, *data;

static void setup(void)
{
    dir = tu_tmpdir();
    data = tu_path(dir, "data");
    cr_assert_eq(mkdir(data, 0755), 0);
}

static void teardown(void)
{
    free(data);
    tu_rm_rf(dir);
}

TestSuite(generation, .init = setup, .fini = teardown);

static int exists(const char *d, const char *name)
{
    char *p = tu_path(d, name);
    int r = access(p, F_OK) == 0;
    free(p);
    return r;
}

/* Build and commit one generation holding `payload` in index.bin. */
static uint64_t build(const char *payload)
{
    struct lk_gen_build *b;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_begin(data, 1, &b, &e), LK_OK, "%s", e.msg);
    tu_write_str(lk_gen_build_dir(b), "index.bin", payload);
    tu_write_str(lk_gen_build_dir(b), "calibration.json", "{\"exact\":0.97}");
    char *sub = tu_path(lk_gen_build_dir(b), "embed");
    cr_assert_eq(mkdir(sub, 0755), 0);
    tu_write_str(sub, "params.bin", payload);
    free(sub);
    struct lk_generation g;
    cr_assert_eq(lk_generation_commit(b, &g, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(g.number, lk_gen_build_number(b));
    cr_assert_eq(g.files, 3);
    uint64_t n = g.number;
    lk_gen_build_free(b);
    return n;
}

static uint64_t current(void)
{
    struct lk_generation g;
    struct lk_err e = {0};
    int rc = lk_generation_current(data, &g, &e);
    if (rc == LK_ERR_NOT_FOUND)
        return 0;
    cr_assert_eq(rc, LK_OK, "%s", e.msg);
    cr_assert_eq(lk_generation_verify(&g, &e), LK_OK, "%s", e.msg);
    return g.number;
}

Test(generation, no_generation_yet)
{
    struct lk_generation g;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_current(data, &g, &e), LK_ERR_NOT_FOUND);
    lk_gen_build_free(NULL);
}

Test(generation, commit_switches_and_verifies)
{
    cr_assert_eq(build("one"), 1);
    cr_assert_eq(current(), 1);
    cr_assert_eq(build("two"), 2);
    cr_assert_eq(current(), 2);
    struct lk_generation g;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_current(data, &g, &e), LK_OK);
    cr_assert(strstr(g.dir, "gen-000002"), "%s", g.dir);
    cr_assert_eq(strlen(g.content_sha1), 40);
    cr_assert_gt(g.created, 0);
    /* tamper with a file: verify notices */
    tu_write_str(g.dir, "index.bin", "TWO");
    cr_assert_eq(lk_generation_verify(&g, &e), LK_ERR_CHECKSUM);
    tu_write_str(g.dir, "index.bin", "two");
    cr_assert_eq(lk_generation_verify(&g, &e), LK_OK);
    tu_write_str(g.dir, "extra", "x");
    cr_assert_eq(lk_generation_verify(&g, &e), LK_ERR_CHECKSUM);
    cr_assert_not(exists(data, "MANIFEST.tmp"));
}

Test(generation, commit_twice_is_a_state_error)
{
    struct lk_gen_build *b;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_begin(data, 1, &b, &e), LK_OK);
    cr_assert_eq(lk_generation_commit(b, NULL, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_generation_commit(b, NULL, &e), LK_ERR_STATE);
    lk_gen_build_free(b);
    cr_assert_eq(current(), 1);
}

Test(generation, abandoned_build_leaves_previous_current)
{
    cr_assert_eq(build("one"), 1);
    struct lk_gen_build *b;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_begin(data, 1, &b, &e), LK_OK);
    cr_assert_eq(lk_gen_build_number(b), 2);
    tu_write_str(lk_gen_build_dir(b), "index.bin", "half");
    lk_gen_build_free(b); /* abort */
    cr_assert_not(exists(data, "gen-000002"));
    cr_assert_eq(current(), 1);
    cr_assert_eq(build("two"), 2);
}

Test(generation, builder_lock_is_exclusive)
{
    struct lk_gen_build *b, *b2 = NULL;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_begin(data, 1, &b, &e), LK_OK);
    cr_assert_eq(lk_generation_begin(data, 1, &b2, &e), LK_ERR_STATE);
    cr_assert_null(b2);
    cr_assert_eq(lk_generation_gc(data, 1, NULL, &e), LK_ERR_STATE);
    cr_assert(exists(data, "gen-000001"), "the running build survives");
    lk_gen_build_free(b);
    cr_assert_eq(lk_generation_begin(data, 1, &b2, &e), LK_OK);
    lk_gen_build_free(b2);
}

Test(generation, builder_killed_mid_write_is_cleaned_up)
{
    cr_assert_eq(build("one"), 1);
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct lk_gen_build *b;
        if (lk_generation_begin(data, 1, &b, NULL) != LK_OK)
            _exit(2);
        char *p = tu_path(lk_gen_build_dir(b), "index.bin");
        FILE *f = fopen(p, "wb");
        char buf[4096] = {0};
        fwrite(buf, 1, sizeof buf, f);
        fflush(f);
        (void)!write(pipefd[1], "w", 1); /* tell the parent we are mid-write */
        for (;;)
            fwrite(buf, 1, sizeof buf, f), fflush(f), usleep(1000);
    }
    close(pipefd[1]);
    char c;
    cr_assert_eq(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    /* The child holds the lock: a second build must wait its turn. */
    struct lk_gen_build *b;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_begin(data, 1, &b, &e), LK_ERR_STATE);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    /* Previous generation is current and loads; the orphan is still there. */
    cr_assert_eq(current(), 1);
    cr_assert(exists(data, "gen-000002"));
    /* The next build cleans the orphan and proceeds. */
    cr_assert_eq(lk_generation_begin(data, 1, &b, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(lk_gen_build_number(b), 2);
    struct stat sb;
    char *p = tu_path(lk_gen_build_dir(b), "index.bin");
    cr_assert_neq(stat(p, &sb), 0, "orphan contents were removed");
    free(p);
    lk_gen_build_free(b);
    cr_assert_eq(current(), 1);
}

/* Commit in a child that SIGKILLs itself at crash point k. */
static void crash_commit_at(int k)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct lk_gen_build *b;
        if (lk_generation_begin(data, 1, &b, NULL) != LK_OK)
            _exit(2);
        tu_write_str(lk_gen_build_dir(b), "index.bin", "new");
        lk__gen_crash_point = k;
        lk_generation_commit(b, NULL, NULL);
        _exit(3); /* not reached when the crash point fires */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "crash point %d did not fire", k);
}

Test(generation, crash_before_manifest_switch_keeps_old)
{
    cr_assert_eq(build("one"), 1);
    crash_commit_at(1);
    cr_assert_eq(current(), 1);
    crash_commit_at(2);
    cr_assert_eq(current(), 1);
    cr_assert(exists(data, "MANIFEST.tmp"));
    unsigned removed = 0;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_gc(data, 1, &removed, &e), LK_OK, "%s", e.msg);
    cr_assert_eq(removed, 1);
    cr_assert_not(exists(data, "MANIFEST.tmp"));
    cr_assert_not(exists(data, "gen-000002"));
    cr_assert_eq(build("two"), 2);
}

Test(generation, crash_after_rename_has_new_generation)
{
    cr_assert_eq(build("one"), 1);
    crash_commit_at(3);
    cr_assert_eq(current(), 2);
    cr_assert_eq(build("three"), 3);
}

Test(generation, gc_keeps_current_and_keep_old)
{
    for (int i = 1; i <= 4; i++)
        cr_assert_eq(build("x"), (uint64_t)i);
    /* build() passes keep_old = 1: when gen 4 began, current was 3, so 2 and 3
     * were kept and 1 removed. */
    cr_assert_not(exists(data, "gen-000001"));
    cr_assert(exists(data, "gen-000002"));
    cr_assert(exists(data, "gen-000003"));
    cr_assert(exists(data, "gen-000004"));
    unsigned removed = 0;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_gc(data, 0, &removed, &e), LK_OK);
    cr_assert_eq(removed, 2);
    cr_assert(exists(data, "gen-000004"));
    cr_assert_not(exists(data, "gen-000003"));
    /* unrelated entries are never touched */
    tu_write_str(data, "gen-notes.txt", "keep me");
    cr_assert_eq(lk_generation_gc(data, 0, &removed, &e), LK_OK);
    cr_assert_eq(removed, 0);
    cr_assert(exists(data, "gen-notes.txt"));
    cr_assert_eq(current(), 4);
}

Test(generation, corrupt_manifest_is_detected_and_blocks_gc)
{
    cr_assert_eq(build("one"), 1);
    cr_assert_eq(build("two"), 2);
    char *m = tu_path(data, "MANIFEST");
    FILE *f = fopen(m, "r+");
    cr_assert_not_null(f);
    fseek(f, 30, SEEK_SET);
    fputc('9', f);
    fclose(f);
    free(m);
    struct lk_generation g;
    struct lk_err e = {0};
    cr_assert_eq(lk_generation_current(data, &g, &e), LK_ERR_CORRUPT);
    struct lk_gen_build *b = NULL;
    cr_assert_eq(lk_generation_begin(data, 0, &b, &e), LK_ERR_CORRUPT);
    cr_assert_null(b);
    cr_assert(exists(data, "gen-000001"));
    cr_assert(exists(data, "gen-000002"));

    tu_write_str(data, "MANIFEST", "garbage");
    cr_assert_eq(lk_generation_current(data, &g, &e), LK_ERR_CORRUPT);
}
