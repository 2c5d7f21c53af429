#!/usr/bin/python3
"""bench/report.py DIR — Markdown tables from the JSON-lines results in DIR
(bench-results/), for BENCHMARKS.md.  Prints to stdout; sections whose
results are absent are left out.  Every table is followed by the revision,
date and load average of the records it came from.
"""
import json
import os
import sys


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(l) for l in f if l.strip()]


def prov(recs):
    gits = sorted({r["git"] for r in recs})
    dates = sorted(r["date"] for r in recs)
    loads = [r.get("load1", r.get("load1_start", 0)) for r in recs]
    return (f"\n_Source: git {', '.join(gits)}, {dates[0]} .. {dates[-1]}, {recs[0]['cpu']} "
            f"({recs[0]['cores']} CPUs), {recs[0]['compiler']} `{recs[0]['flags']}`, SIMD {recs[0]['simd']}; "
            f"1-min load average {min(loads):.1f}..{max(loads):.1f}._\n")


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out) + "\n"


def f(x, nd=3):
    if x is None:
        return "–"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return f"{x:,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def ann(d):
    recs = load(d, "ann")
    if not recs:
        return
    print("### ANN: equal-recall ratios (single thread)\n")
    rows = []
    for r in recs:
        if r["phase"] != "equal_recall":
            continue
        rows.append((r["set"], f(r["n"]), r["dim"], r["target_recall_at_10"], f(r.get("ours_qps"), 0),
                     f(r.get("hnswlib_qps"), 0), f(r.get("qps_ratio"), 2), f(r.get("qps_ratio_cpu_time"), 2),
                     f(r.get("exact_qps"), 0), f(r.get("build_ratio"), 2), f(r.get("memory_ratio"), 2)))
    print(table(["set", "n", "dim", "recall@10", "ours QPS", "hnswlib QPS", "ours/h wall", "ours/h CPU",
                 "exact QPS", "build ours/h", "memory ours/h"], rows))
    mt = [r for r in recs if r["phase"] == "equal_recall_mt"]
    if mt:
        print(f"### ANN: equal-recall ratios ({mt[0]['threads']} threads searching one index at once)\n")
        rows = [(r["set"], f(r["n"]), r["dim"], r["target_recall_at_10"], f(r.get("ours_qps"), 0),
                 f(r.get("hnswlib_qps"), 0), f(r.get("qps_ratio"), 2)) for r in mt]
        print(table(["set", "n", "dim", "recall@10", "ours QPS", "hnswlib QPS", "ours/h wall"], rows))
    print("### ANN: build\n")
    rows = []
    for r in recs:
        if r["phase"] == "build":
            rows.append((r["set"], r["method"], r["threads"], f(r["build_s"], 2), f(r.get("build_cpu_s"), 2),
                         f(r.get("bytes_per_vector"), 0)))
    print(table(["set", "index", "threads", "build s (wall)", "build s (CPU)", "bytes/vector"], rows))
    print(prov(recs))


def filtered(d):
    recs = [r for r in load(d, "ann") if r["phase"] == "filtered"]
    if recs:
        print("### Filtered search: recall@10 and QPS vs selectivity (ef_search = lowest of the sweep)\n")
        rows = []
        for s in dict.fromkeys(r["set"] for r in recs):
            ef = min(r["ef_search"] for r in recs if r["set"] == s and "ef_search" in r)
            keys = dict.fromkeys((r["filter"], r["selectivity"]) for r in recs if r["set"] == s)
            for kind, sel in keys:
                by = {r["method"]: r for r in recs if r["set"] == s and r["filter"] == kind
                      and r["selectivity"] == sel and r.get("ef_search", ef) == ef}
                o, e = by.get("ours"), by.get("exact")
                h = next((v for k, v in by.items() if k.startswith("hnswlib")), None)
                rows.append((s, kind, f"{sel * 100:g} %", ef,
                             f(o and o["recall_at_10"]), f(o and o["qps"], 0),
                             f(h and h["recall_at_10"]), f(h and h["qps"], 0), f(e and e["qps"], 0),
                             f(o and o.get("qps_ratio_vs_exact"), 2)))
        print(table(["set", "filter", "selectivity", "ef", "ours R@10", "ours QPS", "hnswlib R@10",
                     "hnswlib QPS", "exact QPS", "ours/exact"], rows))
        print(prov(recs))
    cf = [r for r in load(d, "filter") if r["phase"] == "allow_build"]
    if cf:
        print("### Allow-list build (business filters -> bitmap), synthetic catalog\n")
        rows = [(r["filter"], f(r["products"]), f(r["images"]), f"{r['selectivity'] * 100:.1f} %",
                 f(r["ms_per_build"], 3), f(r["sql_ms"], 2), f"{r['speedup_vs_sql']:.0f}x") for r in cf]
        print(table(["filter", "products", "images", "selectivity", "ms / build", "SQL ms (baseline)",
                     "speed-up"], rows))
        print(prov(cf))


def embed(d):
    recs = load(d, "embed")
    st = [r for r in recs if r["phase"] == "stage"]
    if st:
        print("### Embedding speed, ms per image, one thread\n")
        rows = [(r["stage"], f(r["median_ms"], 2), f(r["p90_ms"], 2), f(r["min_ms"], 2), r["n"]) for r in st]
        print(table(["stage", "median", "p90", "min", "n"], rows))
    im = [r for r in recs if r["phase"] == "decode_resize"]
    if im:
        print("### Decode + resize to 224x224, ms per image (median)\n")
        rows = [(r["image"], f"{r['width']}x{r['height']}", f(r["full_ms"], 2), f(r["dct_ms"], 2),
                 f"{r.get('dct_num', 1)}/{r['dct_denom']}", f"x{r['full_ms'] / r['dct_ms']:.2f}") for r in im]
        print(table(["image", "size", "full decode", "DCT-scaled decode", "scale", "speed-up"], rows))
    if st or im:
        print(prov(st + im))


def index(d):
    recs = load(d, "index")
    builds = [r for r in recs if r["phase"] == "build"]
    if not builds:
        return
    src = "SYNTHETIC photos (no product data)" if builds[0]["source"] == "synthetic" else "real product photos"
    print(f"### Indexing throughput: `lk_index_build` on {builds[0]['images']:,} {src}\n")
    rows = [(r["threads"], f(r["images"]), f(r["products"]), f(r["wall_s"], 1), f(r["images_per_s"], 1),
             f(r["embed_images_per_s"], 1), f(r["cpu_s"], 1), f(r["cpu_ms_per_image"], 1), f(r["load1_before"], 1))
            for r in builds]
    print(table(["threads", "images", "products", "wall s", "images/s (whole build)", "images/s (embed phase)",
                 "CPU s", "CPU ms/image", "load before"], rows))
    sc = [r for r in recs if r["phase"] == "scaling"]
    if sc:
        r = sc[0]
        print(f"Speed-up {r['threads']} vs {r['threads_base']} threads: x{r['speedup_wall']:.2f} whole build, "
              f"x{r['speedup_embed']:.2f} embed phase (wall clock); CPU time x{r['cpu_ratio']:.2f}.\n")
    print("Share of the build's CPU time by stage, and CPU ms per image:\n")
    head = ["stage"]
    for r in builds:
        head += [f"share ({r['threads']} thr)", f"ms/image ({r['threads']} thr)"]
    rows = []
    for k in builds[0]["stages"]:
        row = [k]
        for r in builds:
            st = r["stages"][k]
            row += [f"{st['share'] * 100:.1f} %", f(st["cpu_ms_per_image"], 2)]
        rows.append(row)
    print(table(head, rows))
    print(prov(recs))


def quality(d):
    recs = load(d, "quality")
    if not recs or recs[0]["phase"] == "skipped":
        return
    g = [r for r in recs if r["phase"] == "grocery"]
    if g:
        r = g[0]
        print("### Quality (a): grocery, held-out shopper photos\n")
        print(table(["products", "catalog photos", "queries", "recall@1", "recall@5", "category (top-1)",
                     "category (guard)"],
                    [(r["products"], f(r["catalog_images"]), f(r["queries"]), f(r["recall_at_1"]),
                      f(r["recall_at_5"]), f(r["category_top1"]), f(r["category_guard"]))]))
    c = [r for r in recs if r["phase"] == "category"]
    if c:
        print("### Quality (b): one photo per product, 10 % held out\n")
        print(table(["set", "catalog", "queries", "category precision@10", "colour agreement@10",
                     "category (guard)"],
                    [(r["set"], f(r["catalog_images"]), f(r["queries"]), f(r["category_precision_at_10"]),
                      f(r["colour_agreement_at_10"]) if r["colour_agreement_at_10"] >= 0 else "n/a (no labels)",
                      f(r["category_guard"])) for r in c]))
    ds = [r for r in recs if r["phase"] == "distortion"]
    if ds:
        print("### Quality (c): distorted grocery catalog photos, recall@1 of the original SKU\n")
        print(table(["distortion", "queries", "recall@1"], [(r["distortion"], r["queries"], f(r["recall_at_1"]))
                                                              for r in ds]))
    b = [r for r in recs if r["phase"] == "band"]
    rt = [r for r in recs if r["phase"] == "rates"]
    if b:
        print("### Quality (d): precision per confidence band\n")
        print(table(["band", "results", "right product", "right category"],
                    [(r["band"], f(r["results"]), f(r["precision_product"]) if r["precision_product"] >= 0 else "–",
                      f(r["precision_category"]) if r["precision_category"] >= 0 else "–") for r in b]))
    if rt:
        r = rt[0]
        print(f"Searches: {r['searches']:,}; zero-result rate {r['zero_result_rate']:.3f}; "
              f"fallback applied {r['fallback_rate']:.3f}.\n")
    print(prov(recs))


def e2e(d):
    recs = [r for r in load(d, "e2e") if r["phase"] == "level"]
    if not recs:
        return
    print("### End-to-end: POST /v1/search with a 1-megapixel JPEG, loopback\n")
    rows = [(r["catalog"], r["concurrency"], r["requests"], f(r["p50_ms"], 1), f(r["p95_ms"], 1), f(r["p99_ms"], 1),
             f(r["searches_per_s"], 1), r["errors"]) for r in recs]
    print(table(["catalog", "concurrency", "requests", "p50 ms", "p95 ms", "p99 ms", "searches/s", "errors"], rows))
    print(f"Image: {recs[0]['image']}, {recs[0]['image_bytes']:,} bytes.\n")
    print(prov(recs))


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "bench-results"
    for fn in (ann, filtered, embed, index, quality, e2e):
        fn(d)


if __name__ == "__main__":
    main()
