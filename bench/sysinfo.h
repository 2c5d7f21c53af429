/*
 * bench/sysinfo.h — the facts every benchmark record carries, so a number can
 * be traced to the machine, compiler, flags, SIMD path and revision that
 * produced it (GUIDE: "Performance claims ... with the CPU, compiler flags
 * and SIMD path").
 *
 * Compiler, flags and build type come from meson as -D defines
 * (bench/meson.build); the git revision from vcs_tag at build time; the CPU
 * from /proc/cpuinfo; the SIMD path from lk_simd_path(); load from
 * /proc/loadavg (the bench machine is shared, so record how busy it was).
 */
#ifndef LK_BENCH_SYSINFO_H
#define LK_BENCH_SYSINFO_H

#include <stdio.h>

struct bench_sysinfo {
    char cpu[128];          /* "model name" of the first processor */
    int cores;              /* online CPUs */
    char compiler[64];      /* e.g. "gcc 12.2.0" */
    char cflags[256];       /* optimisation and user flags of our code */
    char cxxflags[256];     /* flags of the hnswlib wrapper */
    char buildtype[32];
    char simd[32];          /* our dispatch: lk_simd_path() */
    char git_rev[64];       /* git describe --always --dirty at build time */
    char date[32];          /* ISO 8601 UTC, at start of run */
    char host[64];
    double load1;           /* 1-minute load average at start of run */
};

/* Fill `si` (never fails: unknown fields become "unknown"). */
void bench_sysinfo_get(struct bench_sysinfo *si);

/* 1-minute load average now (-1 if unreadable). */
double bench_loadavg(void);

/* Human-readable block, one "key: value" per line. */
void bench_sysinfo_print(const struct bench_sysinfo *si, FILE *f);

/* The fields as JSON members without braces: "cpu":"...","cores":2,... */
void bench_sysinfo_json(const struct bench_sysinfo *si, FILE *f);

/* Write s as a JSON string literal (with quotes and escapes). */
void bench_json_str(FILE *f, const char *s);

/*
 * JSON-lines output shared by every bench except ann (which has --out):
 * bench_json_open() opens the file named by `path`, or by the environment
 * variable LK_BENCH_JSON when `path` is NULL, for appending (bench/run sets
 * it, one file per bench); it returns NULL when neither names a file, and
 * the bench then only prints its table.  A record is
 *   bench_json_begin(f, si, "embed", "stage");  fprintf(f, ",\"ms\":%.3f", ms);
 *   bench_json_end(f);
 * which writes {"bench":"embed","phase":"stage",<sysinfo>,"ms":...}\n.
 * All three accept f == NULL and then do nothing.
 */
FILE *bench_json_open(const char *path);
void bench_json_begin(FILE *f, const struct bench_sysinfo *si, const char *bench, const char *phase);
void bench_json_end(FILE *f);

/* The record a bench writes when its data is absent (a fresh clone has no
 * ../shared): {"bench":...,"phase":"skipped",<sysinfo>,"reason":...}.
 * f == NULL does nothing. */
void bench_json_skipped(FILE *f, const struct bench_sysinfo *si, const char *bench, const char *reason);

#endif
