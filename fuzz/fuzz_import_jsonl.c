/*
 * fuzz/fuzz_import_jsonl.c — libFuzzer target: bytes -> JSONL import file ->
 * lk_catalog_import_file (LK_IMPORT_JSONL) on a scratch catalog, then SQLite's
 * integrity_check.  See catalog_common.c for the set-up.
 */
#include "catalog_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return lk_fuzz_import(data, size, LK_IMPORT_JSONL);
}
