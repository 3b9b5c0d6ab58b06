"""Batch throughput: pages per second with 1 and 2 local workers and with Ray, scaling efficiency, peak memory.

    python benchmarks/batch_speed.py                       # 200 documents of 2-3 pages, local 1 and 2, ray 2
    python benchmarks/batch_speed.py --docs 20 --engines local     # a quick look
    python benchmarks/batch_speed.py --dir /tmp/bench-docs         # keep (and reuse) the generated folder

The folder: ``--docs`` synthetic documents of 2 or 3 pages (cheque, envelope or numeric form, chosen per
document; every page of a document uses the same form), written by formocr.synth with a random moderate scan
degradation, alternately as PDF and as multi-page TIFF, at ``--dpi`` (150 by default: the pipeline reads it
as well as 300 dpi for these forms, and 200+ documents stay feasible on a 2-core machine). Each run is a
separate ``formocr batch`` process (fresh output, no ``--template``: every page is matched against the
built-in templates, as a user with a mixed folder would run it) whose ``--summary-json`` gives the figures:

* seconds: wall time of the run inside the driver, worker/actor start-up included (Ray's own start-up too);
* pages/s and scaling efficiency = pages/s with N workers / (N × pages/s with 1 local worker);
* worker peak RSS: the largest ``ru_maxrss`` any worker reported with a record; driver peak RSS likewise.

With 1 worker the worker gets all the cores' torch/OpenCV threads; with N workers each gets cores/N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table

TEMPLATES = ("cheque", "envelope", "numeric_form")


def generate(folder: Path, docs: int, dpi: int, seed: int) -> tuple[int, float]:
    """Write the documents (reusing a folder made with the same settings); returns (pages, seconds)."""
    from formocr.layout.template import load_template
    from formocr.synth import Degrade, render_form, save_pdf, save_tiff

    manifest = folder / "manifest.json"
    want = {"docs": docs, "dpi": dpi, "seed": seed, "version": 1}
    if manifest.is_file():
        have = json.loads(manifest.read_text())
        if {k: have.get(k) for k in want} == want:
            return int(have["pages"]), 0.0
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    templates = {name: load_template(name) for name in TEMPLATES}
    pages_total = 0
    for i in range(docs):
        rng = np.random.default_rng(seed * 100_003 + i)
        tpl = templates[TEMPLATES[i % len(TEMPLATES)]]
        n = int(rng.integers(2, 4))
        pages = [render_form(tpl, None, rng, dpi=dpi, degrade=Degrade.random(rng, max_skew=3.0)).image
                 for _ in range(n)]
        sub = folder / "docs" / f"batch{i // 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2:
            save_pdf(pages, sub / f"doc{i:04d}.pdf", dpi=dpi)
        else:
            save_tiff(pages, sub / f"doc{i:04d}.tif", dpi=dpi)
        pages_total += n
    seconds = time.perf_counter() - t0
    manifest.write_text(json.dumps({**want, "pages": pages_total}) + "\n")
    return pages_total, seconds


def run(folder: Path, work: Path, engine: str, workers: int, dpi: int, config: str | None) -> dict[str, Any]:
    out = work / f"{engine}-{workers}.jsonl"
    summary = work / f"{engine}-{workers}.summary.json"
    for p in (out, summary):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "formocr", "batch", str(folder / "docs"), "-o", str(out), "--engine", engine,
           "--workers", str(workers), "--dpi", str(dpi), "--summary-json", str(summary), "--no-progress"]
    if config:
        cmd += ["--config", config]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 8) or not summary.is_file():
        sys.exit(f"{engine} × {workers} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    s = json.loads(summary.read_text())
    s["process_seconds"] = wall
    values = {}
    with out.open() as f:
        for line in f:
            r = json.loads(line)
            if r["status"] == "ok":
                values[r["source"]] = [fl["value"] for p in r["document"]["pages"] for fl in p["fields"]]
    s["values"] = values
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--dpi", type=int, default=150)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--dir", default=None, help="where to generate (and keep) the documents [default: a temp dir]")
    ap.add_argument("--engines", default="local,ray", help="comma-separated: local, ray")
    ap.add_argument("--workers", default="1,2", help="local worker counts; Ray runs with the largest")
    ap.add_argument("--config", default=None, help="formocr options file passed to every run")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    counts = sorted({int(w) for w in args.workers.split(",")})
    load_before = os.getloadavg()[0]  # other processes competing for the CPUs
    with tempfile.TemporaryDirectory(prefix="formocr-bench-") as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp) / "folder"
        pages, gen_s = generate(folder, args.docs, args.dpi, args.seed)
        made = f"generated in {gen_s:.0f} s" if gen_s else "reused"
        print(f"# {args.docs} documents, {pages} pages at {args.dpi} dpi ({made}); {machine()}", flush=True)
        work = Path(tmp) / "runs"
        work.mkdir()
        plan = [("local", w) for w in counts] if "local" in engines else []
        if "ray" in engines:
            plan.append(("ray", max(counts)))
        results = []
        for engine, w in plan:
            results.append((engine, w, run(folder, work, engine, w, args.dpi, args.config)))
            s = results[-1][2]
            print(f"#   {engine} × {w}: {s['pages']} pages in {s['seconds']:.1f} s", flush=True)
    base = next((s["pages_per_second"] for e, w, s in results if e == "local" and w == 1), None)
    rows = []
    reference = results[0][2]["values"]
    for engine, w, s in results:
        pps = float(s["pages_per_second"])
        eff = f"{pps / (w * base):.2f}" if base else "-"
        same = sum(s["values"].get(k) == v for k, v in reference.items())
        rows.append([engine, w, s["processed"], s["pages"], f"{s['seconds']:.1f}", f"{pps:.2f}", eff,
                     f"{s['worker_peak_rss_mib']:.0f}", f"{s['driver_peak_rss_mib']:.0f}",
                     f"{s['ok']}/{s['failed']}", f"{same}/{len(reference)}"])
    print(table(["engine", "workers", "documents", "pages", "seconds", "pages/s", "efficiency",
                 "worker peak RSS MiB", "driver peak RSS MiB", "ok/failed", "same values"], rows))
    print("efficiency = pages/s ÷ (workers × pages/s of 1 local worker); seconds include worker start-up. "
          f"1-min load average before the runs (other processes): {load_before:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
