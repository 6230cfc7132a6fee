"""The HTML report of a results store: its size, the time edge takes to make it, the time a real headless
Chromium takes to load and draw it, and a screenshot (the README's, under docs/) — plus the
recommendations for the constraint sets given.

    python benchmarks/bench_report.py --store ~/.local/share/edge/results.sqlite \\
        --screenshot docs/report.png --constraints "--max-mem 1GiB --min-tg 30" "--max-kld 0.01"

Run it alone on the machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import Chromium, inked  # noqa: E402

from edge import api  # noqa: E402


def _constraints(words: str) -> dict:
    """'--max-mem 1GiB --min-tg 30' → keyword arguments of edge.api.constraints."""
    parts = shlex.split(words)
    out = {}
    for flag, value in zip(parts[::2], parts[1::2]):
        key = flag.lstrip("-").replace("-", "_")
        out[key] = value if key in ("max_mem", "max_ppl_loss", "task", "tier") else float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--model")
    ap.add_argument("--devices-file", type=Path)
    ap.add_argument("--constraints", nargs="*", default=[], help="constraint sets, each one quoted string")
    ap.add_argument("--screenshot", type=Path, help="write a full-page PNG here")
    ap.add_argument("--out", type=Path, help="keep the HTML here")
    ap.add_argument("--shot-height", type=int, default=0, help="the screenshot's height in px (0: the whole page)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    st = api.Store(args.store)
    results, tasks = st.results(model=args.model), st.task_results(model=args.model)
    sets = args.constraints or [""]
    for words in sets:
        kw = _constraints(words)
        tier = kw.pop("tier", None)
        recs = api.recommend_from_store(st, api.constraints(**kw), model=args.model, devices_file=args.devices_file, tier=tier)
        print(f"## edge recommend {words}\n")
        print(api.render_recommendation(recs, "md"))
    kw = _constraints(sets[0])
    tier = kw.pop("tier", None)
    recs = api.recommend_from_store(st, api.constraints(**kw), model=args.model, devices_file=args.devices_file, tier=tier)
    make = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        page = api.report(results, "html", tasks, recs)
        make.append(time.perf_counter() - t0)
    out = args.out or Path(tempfile.mkdtemp()) / "report.html"
    out.write_text(page, encoding="utf-8")
    size = out.stat().st_size
    loads = []
    with Chromium(width=1280) as b:
        for _ in range(args.reps):
            load = b.open(out)
            loads.append(load.seconds)
        plots = b.evaluate("[...document.querySelectorAll('figure.plot')].map(f => [f.id, +f.dataset.marks])")
        shot = b.screenshot({"x": 0, "y": 0, "width": 1280, "height": args.shot_height} if args.shot_height else None)
    print(f"rows {len(results)}, task rows {len(tasks)}, matrices {page.count('<h2>') - (1 if recs else 0)}")
    print(f"report.html: {size:,} bytes ({size / 2**20:.2f} MiB), {len(plots)} plots: "
          + ", ".join(f"{i.removeprefix('plot-')} {n}" for i, n in plots))
    print(f"made by edge in {statistics.median(make):.2f} s (median of {args.reps}; min {min(make):.2f})")
    print(f"loaded and drawn by Chromium in {statistics.median(loads) * 1000:.0f} ms (navigate → load event, "
          f"median of {args.reps}; min {min(loads) * 1000:.0f}); errors: {load.errors or 'none'}")
    if args.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        args.screenshot.write_bytes(shot)
        print(f"screenshot {args.screenshot}: {len(shot):,} bytes, {100 * inked(shot):.0f} % inked")


if __name__ == "__main__":
    main()
