#include "pindex.h"
int lk_index_save(const struct lk_index *idx, const char *path, struct lk_err *err) { (void)idx; (void)path; return lk_err_set(err, LK_ERR_INTERNAL, "todo"); }
int lk_index_load(const char *path, unsigned flags, struct lk_index **out, struct lk_err *err) { (void)path; (void)flags; (void)out; return lk_err_set(err, LK_ERR_INTERNAL, "todo"); }
