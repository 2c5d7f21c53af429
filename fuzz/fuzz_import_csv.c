/*
 * fuzz/fuzz_import_csv.c — libFuzzer target: bytes -> CSV import file ->
 * lk_catalog_import_file (LK_IMPORT_CSV) on a scratch catalog, then SQLite's
 * integrity_check.  See catalog_common.c for the set-up.
 */
#include "catalog_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return lk_fuzz_import(data, size, LK_IMPORT_CSV);
}
