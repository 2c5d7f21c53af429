/*
 * bench/hnswlib_wrap.cpp — extern "C" wrapper around hnswlib 0.6.2
 * (/usr/include/hnswlib, Debian libhnswlib-dev) for bench/ann.  See
 * hnswlib_wrap.h for the contract.
 *
 * Non-obvious points:
 * - hnswlib decides SIMD at compile time (__SSE__/__AVX__/__AVX512F__ in
 *   hnswlib.h), then checks the CPU at run time.  bench/meson.build compiles
 *   this file with -mavx2 -mfma so it gets its AVX kernels on this machine;
 *   hnswlib_simd_path() reports the kernel it really uses for a dimension
 *   (for dim % 16 != 0 but dim % 4 == 0, e.g. 100, hnswlib itself falls back
 *   to its 4-wide SSE kernel: that is hnswlib's behaviour, not ours).
 * - Multi-threaded insertion copies the pattern of hnswlib's python
 *   bindings (ParallelFor: threads take the next row from an atomic counter
 *   and call addPoint).  Internal ids then differ from labels, which is why
 *   the filter emulation maps labels through label_lookup_.
 * - Filter emulation by deletion marks: see hnswlib_wrap.h.
 */
#include "hnswlib_wrap.h"

#include <hnswlib/hnswlib.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct hnswlib_index {
    hnswlib::L2Space *space;
    hnswlib::HierarchicalNSW<float> *alg;
    size_t dim;
    std::vector<hnswlib::tableint> marked;   /* internal ids marked by the filter */
    std::vector<hnswlib::tableint> internal; /* label -> internal id, built on first filter */
};

static void set_msg(char *msg, size_t msglen, const char *what)
{
    if (msg && msglen)
        std::snprintf(msg, msglen, "hnswlib: %s", what);
}

extern "C" int hnswlib_new(size_t dim, size_t max_elements, size_t M, size_t ef_construction,
                           size_t seed, struct hnswlib_index **out, char *msg, size_t msglen)
{
    *out = nullptr;
    hnswlib_index *h = nullptr;
    try {
        h = new hnswlib_index();
        h->dim = dim;
        h->space = new hnswlib::L2Space(dim);
        h->alg = new hnswlib::HierarchicalNSW<float>(h->space, max_elements, M, ef_construction, seed);
    } catch (const std::exception &e) {
        set_msg(msg, msglen, e.what());
        hnswlib_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

extern "C" void hnswlib_free(struct hnswlib_index *h)
{
    if (!h)
        return;
    delete h->alg;
    delete h->space;
    delete h;
}

extern "C" int hnswlib_add_batch(struct hnswlib_index *h, const float *vecs, size_t n,
                                 unsigned threads, char *msg, size_t msglen)
{
    try {
        if (threads <= 1) {
            for (size_t i = 0; i < n; i++)
                h->alg->addPoint(vecs + i * h->dim, (hnswlib::labeltype)i);
            return 0;
        }
        /* hnswlib's python bindings insert the first point alone, then the
         * rest in parallel; do the same. */
        if (n > 0)
            h->alg->addPoint(vecs, (hnswlib::labeltype)0);
        std::atomic<size_t> next(1);
        std::atomic<bool> failed(false);
        std::string what;
        std::mutex what_lock;
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; t++) {
            pool.emplace_back([&]() {
                for (;;) {
                    size_t i = next.fetch_add(1);
                    if (i >= n || failed.load())
                        break;
                    try {
                        h->alg->addPoint(vecs + i * h->dim, (hnswlib::labeltype)i);
                    } catch (const std::exception &e) {
                        std::lock_guard<std::mutex> g(what_lock);
                        what = e.what();
                        failed = true;
                    }
                }
            });
        }
        for (auto &t : pool)
            t.join();
        if (failed) {
            set_msg(msg, msglen, what.c_str());
            return -1;
        }
    } catch (const std::exception &e) {
        set_msg(msg, msglen, e.what());
        return -1;
    }
    return 0;
}

extern "C" void hnswlib_set_ef(struct hnswlib_index *h, size_t ef)
{
    h->alg->setEf(ef);
}

extern "C" size_t hnswlib_search(const struct hnswlib_index *h, const float *q, size_t k,
                                 int64_t *labels, float *dists)
{
    /* searchKnn returns a max-heap (farthest on top): fill from the back. */
    auto heap = h->alg->searchKnn(q, k);
    size_t m = heap.size();
    for (size_t i = m; i-- > 0;) {
        labels[i] = (int64_t)heap.top().second;
        dists[i] = heap.top().first;
        heap.pop();
    }
    return m;
}

extern "C" size_t hnswlib_memory(const struct hnswlib_index *h)
{
    const hnswlib::HierarchicalNSW<float> *a = h->alg;
    size_t bytes = a->max_elements_ * a->size_data_per_element_;      /* level 0 */
    bytes += a->max_elements_ * sizeof(void *);                      /* linkLists_ */
    for (size_t i = 0; i < a->cur_element_count; i++)
        if (a->element_levels_[i] > 0)
            bytes += a->size_links_per_element_ * (size_t)a->element_levels_[i];
    bytes += a->element_levels_.capacity() * sizeof(int);
    bytes += a->link_list_locks_.capacity() * sizeof(std::mutex);
    bytes += a->link_list_update_locks_.capacity() * sizeof(std::mutex);
    /* std::unordered_map node: next pointer + key + value, padded to 8,
     * plus the cached hash libstdc++ does not store for integer keys. */
    bytes += a->label_lookup_.size() * (sizeof(void *) + sizeof(hnswlib::labeltype) + 8);
    bytes += a->label_lookup_.bucket_count() * sizeof(void *);
    bytes += a->max_elements_ * sizeof(hnswlib::vl_type);             /* one visited list */
    return bytes;
}

extern "C" void hnswlib_filter_set(struct hnswlib_index *h, const uint8_t *allowed, size_t n)
{
    hnswlib_filter_clear(h);
    if (h->internal.size() != n) {
        /* one hash lookup per label, once, instead of once per filter */
        h->internal.assign(n, (hnswlib::tableint)-1);
        for (size_t i = 0; i < n; i++) {
            auto it = h->alg->label_lookup_.find((hnswlib::labeltype)i);
            if (it != h->alg->label_lookup_.end())
                h->internal[i] = it->second;
        }
    }
    for (size_t i = 0; i < n; i++) {
        hnswlib::tableint id = h->internal[i];
        if (allowed[i] || id == (hnswlib::tableint)-1)
            continue;
        h->alg->markDeletedInternal(id);
        h->marked.push_back(id);
    }
}

extern "C" void hnswlib_filter_clear(struct hnswlib_index *h)
{
    for (hnswlib::tableint id : h->marked)
        h->alg->unmarkDeletedInternal(id);
    h->marked.clear();
}

extern "C" const char *hnswlib_simd_path(size_t dim)
{
#if defined(USE_AVX512)
    if (AVX512Capable()) {
        if (dim % 16 == 0) return "AVX-512 (16-float blocks)";
        if (dim % 4 == 0) return "SSE (4-float blocks; hnswlib uses AVX only when dim % 16 == 0)";
        if (dim > 16) return "AVX-512 16-float blocks + scalar tail";
    }
#endif
#if defined(USE_AVX)
    if (AVXCapable()) {
        if (dim % 16 == 0) return "AVX (8-float lanes, 16-float blocks)";
        if (dim % 4 == 0) return "SSE (4-float blocks; hnswlib uses AVX only when dim % 16 == 0)";
        if (dim > 16) return "AVX 16-float blocks + scalar tail";
    }
#endif
#if defined(USE_SSE)
    if (dim % 4 == 0) return "SSE (4-float blocks)";
    if (dim > 4) return "SSE + scalar tail";
#endif
    (void)dim;
    return "scalar";
}
