#!/usr/bin/python3
"""bench/plot.py — check the benches' JSON-lines results and plot them.

    bench/plot.py check DIR NAME...   every DIR/NAME.json must exist, every
                                      line be a JSON object carrying the
                                      machine/build keys; exit 1 otherwise
    bench/plot.py plot DIR            PNGs into DIR/plots with gnuplot
    bench/plot.py check-plots DIR     the PNGs exist, are PNG and non-empty

Python because parsing JSON in bash would be absurd (GUIDE: project code is
C; Python only in dev/bench scripts).  Uses only the standard library and
gnuplot (Debian gnuplot-nox).  Plots from whatever results exist: a bench
that was not run (or skipped for lack of data) leaves its plots out, except
that `plot` always draws at least the plots whose data is present.
"""
import json
import os
import subprocess
import sys

REQUIRED = ("cpu", "cores", "compiler", "flags", "simd", "git", "date", "phase")


def load(path):
    recs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON: {e}")
            if not isinstance(r, dict):
                raise ValueError(f"{path}:{n}: not a JSON object")
            missing = [k for k in REQUIRED if k not in r]
            if missing:
                raise ValueError(f"{path}:{n}: missing keys {missing}")
            recs.append(r)
    if not recs:
        raise ValueError(f"{path}: no records")
    return recs


INDEX_STAGES = ("setup", "import", "decode", "quality", "colour", "cnn", "fuse", "index", "calibrate", "dups",
                "commit", "other")


def check_index(p, recs):
    """index.json: unless skipped, one build record per thread count with
    every stage, shares adding up to 1 (the stages partition the build's CPU
    time), and the scaling record across them."""
    if all(r["phase"] == "skipped" for r in recs):
        return
    builds = [r for r in recs if r["phase"] == "build"]
    if not builds:
        raise ValueError(f"{p}: no build records")
    for r in builds:
        if r.get("images", 0) <= 0 or r.get("images_per_s", 0) <= 0:
            raise ValueError(f"{p}: build on {r.get('threads')} threads: no images or images/s")
        st = r.get("stages", {})
        missing = [k for k in INDEX_STAGES if k not in st]
        if missing:
            raise ValueError(f"{p}: build on {r['threads']} threads: stages {missing} missing")
        share = sum(st[k]["share"] for k in INDEX_STAGES)
        if not 0.98 <= share <= 1.02:
            raise ValueError(f"{p}: build on {r['threads']} threads: stage shares add up to {share:.3f}")
    if len(builds) >= 2 and not any(r["phase"] == "scaling" for r in recs):
        raise ValueError(f"{p}: no scaling record")


def check(d, names):
    bad = 0
    for name in names:
        p = os.path.join(d, name + ".json")
        try:
            recs = load(p)
            if name == "index":
                check_index(p, recs)
            phases = sorted({r["phase"] for r in recs})
            print(f"ok   {p}: {len(recs)} records, phases {', '.join(phases)}")
        except (OSError, ValueError) as e:
            print(f"FAIL {e}")
            bad += 1
    return bad


def load_opt(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return []
    return load(p)


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def q(s):
    return '"' + str(s).replace('"', "'") + '"'


HEAD = 'set terminal pngcairo size 900,560 font "DejaVu Sans,10" noenhanced\nset grid\nset key outside right top\n'


def footer(recs):
    r = recs[0]
    return f'set label 99 {q("{} ({} cores), {} {}, simd {}, git {}, {}".format(r["cpu"], r["cores"], r["compiler"], r["flags"], r["simd"], r["git"], r["date"]))} at screen 0.01,0.015 font ",8"\n'


def write_series(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")


def plot_ann(d, out, made):
    recs = load_opt(d, "ann")
    sets = sorted({r["set"] for r in recs if r["phase"] == "search"})
    for s in sets:
        rows = [r for r in recs if r["set"] == s and r["phase"] == "search" and r.get("threads", 1) == 1]
        methods = sorted({r["method"] for r in rows})
        plots = []
        for m in methods:
            pts = sorted((r["recall_at_10"], r["qps"], r.get("ef_search", 0)) for r in rows if r["method"] == m)
            f = os.path.join(out, f"ann_{s}_{m}.tsv")
            write_series(f, pts)
            style = "points pt 7 ps 1.5" if m == "exact" else "linespoints pt 7"
            plots.append(f"{q(f)} using 1:2 with {style} title {q(m)}")
        eq = [r for r in recs if r["set"] == s and r["phase"] == "equal_recall" and r.get("exact_qps")]
        if eq and "exact" not in methods:
            f = os.path.join(out, f"ann_{s}_exact.tsv")
            write_series(f, [(1.0, eq[0]["exact_qps"])])
            plots.append(f"{q(f)} using 1:2 with points pt 5 ps 1.5 title 'exact (flat scan)'")
        if not plots:
            continue
        png = os.path.join(out, f"ann_{s}.png")
        n = rows[0].get("n", "?") if rows else "?"
        gnuplot(HEAD + footer(rows) + f"set output {q(png)}\nset title {q(f'{s} (n={n}): recall@10 vs queries/s, 1 thread, k=10, ef_search sweep')}\n"
                "set xlabel 'recall@10'\nset ylabel 'queries/s (log)'\nset logscale y\n"
                "set bmargin 5\nplot " + ", ".join(plots) + "\n")
        made.append(png)


def plot_filtered(d, out, made):
    recs = [r for r in load_opt(d, "ann") if r["phase"] == "filtered"]
    for s in sorted({r["set"] for r in recs}):
        rows = [r for r in recs if r["set"] == s]
        efs = sorted({r["ef_search"] for r in rows if "ef_search" in r})
        ef = efs[0] if efs else None
        series_r, series_q = [], []
        for kind in sorted({r["filter"] for r in rows}):
            for m in sorted({r["method"] for r in rows}):
                pts = sorted((r["selectivity"], r["recall_at_10"], r["qps"]) for r in rows
                             if r["filter"] == kind and r["method"] == m and r.get("ef_search") in (ef, None))
                if not pts:
                    continue
                f = os.path.join(out, f"filt_{s}_{kind}_{m}.tsv")
                write_series(f, pts)
                series_r.append(f"{q(f)} using 1:2 with linespoints title {q(m + ', ' + kind)}")
                series_q.append(f"{q(f)} using 1:3 with linespoints title {q(m + ', ' + kind)}")
        if not series_r:
            continue
        png = os.path.join(out, f"filtered_{s}.png")
        gnuplot('set terminal pngcairo size 1200,520 font "DejaVu Sans,10" noenhanced\nset grid\n' + footer(rows)
                + f"set output {q(png)}\nset multiplot layout 1,2 title {q(f'{s}: filtered search, ef_search={ef}, k=10')}\n"
                "set logscale x\nset xlabel 'selectivity (share of rows allowed, log)'\nset bmargin 5\n"
                "set key bottom left font ',8'\nset ylabel 'recall@10'\nplot " + ", ".join(series_r) + "\n"
                "set logscale y\nset ylabel 'queries/s (log)'\nset key top left font ',8'\nplot " + ", ".join(series_q) + "\n"
                "unset multiplot\n")
        made.append(png)


def plot_e2e(d, out, made):
    recs = [r for r in load_opt(d, "e2e") if r["phase"] == "level"]
    if not recs:
        return
    lat, thr = [], []
    for cat in sorted({r["catalog"] for r in recs}):
        pts = sorted((r["concurrency"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["searches_per_s"]) for r in recs
                     if r["catalog"] == cat)
        f = os.path.join(out, f"e2e_{cat}.tsv")
        write_series(f, pts)
        for col, name in ((2, "p50"), (3, "p95"), (4, "p99")):
            lat.append(f"{q(f)} using 1:{col} with linespoints title {q(cat + ' ' + name)}")
        thr.append(f"{q(f)} using 1:5 with linespoints title {q(cat)}")
    png = os.path.join(out, "e2e_latency.png")
    gnuplot('set terminal pngcairo size 1200,520 font "DejaVu Sans,10" noenhanced\nset grid\n' + footer(recs)
            + f"set output {q(png)}\nset multiplot layout 1,2 title 'POST /v1/search, 1-megapixel JPEG, loopback'\n"
            "set logscale x 2\nset xlabel 'concurrency'\nset bmargin 5\nset key top left font ',8'\n"
            "set ylabel 'upload-to-result latency, ms (log)'\nset logscale y\n"
            "plot " + ", ".join(lat) + ", 25 with lines dt 2 lc 'gray' title 'p50 target (c=1)', 60 with lines dt 3 lc 'gray' title 'p99 target (c=1)'\n"
            "unset logscale y\nset ylabel 'searches/s'\nset yrange [0:*]\n"
            "plot " + ", ".join(thr) + ", 60 with lines dt 2 lc 'gray' title 'target at c=8'\n"
            "unset multiplot\n")
    made.append(png)


def plot_quality(d, out, made):
    recs = load_opt(d, "quality")
    bands = [r for r in recs if r["phase"] == "band"]
    if not bands:
        return
    order = ["exact", "high", "medium", "low"]
    rows = []
    for b in order:
        r = next((x for x in bands if x["band"] == b), None)
        if r:
            rows.append((b, max(r["precision_product"], 0), max(r["precision_category"], 0), r["results"]))
    f = os.path.join(out, "quality_bands.tsv")
    write_series(f, rows)
    png = os.path.join(out, "quality_bands.png")
    gnuplot(HEAD + footer(bands) + f"set output {q(png)}\nset title 'Precision per confidence band (all quality queries)'\n"
            "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
            "set yrange [0:1.05]\nset ylabel 'share of results in the band'\nset bmargin 5\n"
            f"plot {q(f)} using 2:xtic(1) title 'right product (grocery + distortions)', '' using 3 title 'right category'\n")
    made.append(png)


def plot_index(d, out, made):
    builds = [r for r in load_opt(d, "index") if r["phase"] == "build"]
    if not builds:
        return
    stages = list(builds[0]["stages"])
    rows = [[k] + [r["stages"][k]["cpu_ms_per_image"] for r in builds] for k in stages]
    f = os.path.join(out, "index_stages.tsv")
    write_series(f, rows)
    png = os.path.join(out, "index_stages.png")
    series = []
    for i, r in enumerate(builds):
        src = q(f) if i == 0 else "''"
        xtic = ":xtic(1)" if i == 0 else ""
        series.append(f"{src} using {i + 2}{xtic} title {q('%d thread(s): %.1f images/s' % (r['threads'], r['images_per_s']))}")
    what = "real product" if builds[0]["source"] == "products" else "synthetic"
    title = f"lk_index_build on {builds[0]['images']} {what} photos: CPU ms per image by stage"
    gnuplot(HEAD + footer(builds) + f"set output {q(png)}\nset title {q(title)}\n"
            "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
            "set yrange [0:*]\nset ylabel 'CPU ms per image (summed over threads)'\nset xtics rotate by -30\n"
            f"set bmargin 6\nplot {', '.join(series)}\n")
    made.append(png)


def plot(d):
    out = os.path.join(d, "plots")
    os.makedirs(out, exist_ok=True)
    made = []
    for fn in (plot_ann, plot_filtered, plot_e2e, plot_quality, plot_index):
        fn(d, out, made)
    for f in os.listdir(out):
        if f.endswith(".tsv"):
            os.remove(os.path.join(out, f))
    for p in made:
        print("plot", p)
    return made


def check_plots(d):
    out = os.path.join(d, "plots")
    pngs = [f for f in os.listdir(out)] if os.path.isdir(out) else []
    pngs = [f for f in pngs if f.endswith(".png")]
    bad = 0
    for f in pngs:
        with open(os.path.join(out, f), "rb") as fh:
            head = fh.read(8)
        size = os.path.getsize(os.path.join(out, f))
        if head != b"\x89PNG\r\n\x1a\n" or size < 1000:
            print("FAIL plot", f)
            bad += 1
    if not pngs:
        print("FAIL no plots in", out)
        bad += 1
    else:
        print(f"ok   {len(pngs)} plots in {out}")
    return bad


def main(argv):
    if len(argv) >= 3 and argv[1] == "check":
        return 1 if check(argv[2], argv[3:]) else 0
    if len(argv) == 3 and argv[1] == "plot":
        plot(argv[2])
        return 0
    if len(argv) >= 3 and argv[1] == "check-plots":
        bad = check_plots(argv[2])
        need = argv[3:]
        have = set(os.listdir(os.path.join(argv[2], "plots"))) if os.path.isdir(os.path.join(argv[2], "plots")) else set()
        for n in need:
            if not any(h.startswith(n) and h.endswith(".png") for h in have):
                print("FAIL missing plot", n + "*.png")
                bad += 1
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
