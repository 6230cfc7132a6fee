"""Benchmark (not a test): task-level quality across the three families on the demo model, and what it costs.

One run over the artifacts in DIR (made by `edge convert`; any families): every task scored on every
artifact on this machine against the source checkpoint (``edge eval``), then, with --kld-chunks, the same
artifacts' text KL divergence against the source (``edge bench``) to compare the two rankings. Prints:
1. the per-task tables (acc ± SE, Δacc [95 %], McNemar p, flips, choice-KL, items/s);
2. minutes per artifact for the tasks (the source checkpoint's own pass separately);
3. per task, Kendall's tau between the formats' order by text KLD and by choice-KL / by −Δacc, and the
   formats whose Δacc interval excludes 0.
Usage: python benchmarks/bench_tasks.py --artifacts DIR [--tasks arc_easy,piqa] [--limit 500] [--kld-chunks 8]
Run it alone on the machine: items/s are speeds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--tasks", default="arc_easy,piqa,winogrande")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--kld-chunks", type=int, default=8, help="chunks of 512 for the text KLD (0: skip)")
    ap.add_argument("--only", default="", help="comma-separated formats to keep (default: every artifact in DIR)")
    return ap.parse_args()


def _found(folder: Path, only: set[str]) -> list[Path]:
    out = []
    for mf in sorted(folder.glob("*.manifest.json")):
        data = json.loads(mf.read_text())
        if not only or data["format"] in only:
            out.append(folder / data["artifact"])
    return out


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-a between two orderings of the same formats (+1: the same order)."""
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += (1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1 if (a[i] - a[j]) * (b[i] - b[j]) < 0 else 0)
    return 2 * s / (n * (n - 1)) if n > 1 else float("nan")


def main() -> None:
    args = _args()
    from edge.bench import BenchConfig, bench
    from edge.evaluate import SOURCE_FORMAT, EvalConfig, evaluate
    from edge.store import Store
    from edge.task_report import task_report

    arts = _found(args.artifacts, set(filter(None, args.only.split(","))))
    tasks = [t for t in args.tasks.split(",") if t]
    with Store(Path(tempfile.mkdtemp()) / "tasks.sqlite") as st:
        t0 = time.perf_counter()
        rows = evaluate(arts, tasks, config=EvalConfig(limit=args.limit), store=st, resume=False)
        wall = time.perf_counter() - t0
        print(f"# 1. tasks on {len(arts)} artifacts ({wall / 60:.1f} min in all, this machine alone)\n")
        print(task_report(rows, "md"))
        print("# 2. minutes per artifact (the tasks' scoring; load time on top)")
        per: dict[str, float] = {}
        for r in rows:
            per[r.format] = per.get(r.format, 0.0) + (r.seconds or 0.0) + ((r.raw or {}).get("load_s") or 0.0)
        items = sum(r.n for r in rows if r.format == SOURCE_FORMAT)
        for fmt, s in per.items():
            print(f"  {fmt:28} {s / 60:6.2f} min for {items} items ({items / s:.1f} items/s)")
        if not args.kld_chunks:
            return
        bench_rows = bench(arts, config=BenchConfig(reps=1, chunks=args.kld_chunks), store=st, resume=False)
    kld = {r.format: r.kld_mean for r in bench_rows}
    print(f"\n# 3. rankings: text KLD ({args.kld_chunks} chunks of 512, pydoc) vs the tasks")
    print(f"  {'task':14} {'tau(KLD, choice-KL)':>20} {'tau(KLD, -Δacc)':>16}  Δacc interval excludes 0")
    for task in tasks:
        mine = [r for r in rows if r.task == task and r.format != SOURCE_FORMAT and kld.get(r.format) is not None]
        k = [kld[r.format] for r in mine]
        excl = [f"{r.format} {100 * r.dacc:+.1f}" for r in mine if r.dacc_hi < 0 or r.dacc_lo > 0]
        print(f"  {task:14} {kendall_tau(k, [r.choice_kl for r in mine]):20.2f} "
              f"{kendall_tau(k, [-r.dacc for r in mine]):16.2f}  {', '.join(excl) or 'none'}")
    print("\n  text KLD: " + ", ".join(f"{f} {v:.4g}" for f, v in sorted(kld.items(), key=lambda kv: kv[1])))


if __name__ == "__main__":
    main()
