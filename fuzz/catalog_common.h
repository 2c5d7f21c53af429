/*
 * fuzz/catalog_common.h — shared body of the two importer targets
 * (fuzz_import_csv, fuzz_import_jsonl).
 */
#ifndef LK_FUZZ_CATALOG_COMMON_H
#define LK_FUZZ_CATALOG_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/catalog.h"

/* Write `data` as the import file and run lk_catalog_import_file on a
 * catalog created once per process (under /dev/shm when present: SQLite's
 * fsyncs cost nothing on tmpfs).  Aborts on a contract violation. */
int lk_fuzz_import(const uint8_t *data, size_t size, enum lk_import_format fmt);

#endif
