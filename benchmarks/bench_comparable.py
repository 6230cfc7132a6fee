"""Benchmark (not a test): are edge's numbers comparable across families, and do they agree with llama.cpp's
own tools? One run, on the demo model by default, printing figures and ratios measured in the same run:

1. oracle: edge's PPL of the Q8_0 GGUF vs `llama-perplexity` on the same file and text (goal: within 0.1 %);
   edge's KLD / same-top vs `llama-perplexity --kl-divergence` with the same base — edge's source reference
   written in llama-perplexity's format (goal: within the float16/uint16 storage error);
2. speed: edge's pp512 / tg128 vs `llama-bench` on the same file and threads (goal: within 3 %), alternated
   over --rounds; 2b. the same loops edge's bench times, each call also timed by llama.cpp's own eval
   counters in the same process — a paired ratio the machine's drift cannot move (what edge adds);
3. drift: the GGUF ladder measured with repetitions interleaved and one artifact after another — does the
   ranking change, and how far does each artifact's speed drift from its first to its last repetition;
4. the matrix: every family against the source checkpoint, side by side, with uncertainties;
5. what a board is sent: the tokens and the reference's log-probs, in bytes.

Usage: python benchmarks/bench_comparable.py [--artifacts DIR] [--llama-bin DIR] [--chunks 32] [--reps 5] [--rounds 3]
DIR holds artifacts made by `edge convert` (any families; the GGUF Q8_0 is needed for 1-2). llama.cpp's tools:
`--llama-bin` (default: what the test suite builds, ~/.cache/edge-test/llama.cpp-<version>/bin).
Run it alone on the machine: every figure is a speed or a ratio of speeds.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

LADDER = ["gguf:f16", "gguf:q8_0", "gguf:q4_k_m", "gguf:q4_0"]
MATRIX = LADDER + ["executorch:fp32", "executorch:8da8w", "executorch:8da4w", "onnx:fp32", "onnx:int8", "onnx:int4"]


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, required=True, help="folder of artifacts with manifests")
    ap.add_argument("--llama-bin", type=Path,
                    default=Path.home() / ".cache" / "edge-test" / f"llama.cpp-{metadata.version('llama-cpp-python')}" / "bin")
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="speed: edge / llama-bench alternations per file")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: oracle,speed,overhead,drift,matrix")
    return ap.parse_args()


def _found(folder: Path) -> dict[str, Path]:
    out = {}
    for mf in folder.glob("*.manifest.json"):
        data = json.loads(mf.read_text())
        out[data["format"]] = folder / data["artifact"]
    return out


def _grab(text: str, label: str) -> float:
    m = re.search(label + r"\s*[:=]\s*([-0-9.e+]+)", text)
    if not m:
        raise SystemExit(f"llama.cpp printed no {label!r}:\n{text[-2000:]}")
    return float(m.group(1))


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return proc.stdout + proc.stderr


def oracle(args, have, store, cfg) -> None:
    from edge.bench import bench, native_reference_file
    from edge.core.paths import cache_dir
    from edge.datasets import load_dataset
    from edge.measure.reference import SourceReference

    q8 = have["gguf:q8_0"]
    [row] = bench([q8], config=cfg, store=store, resume=False)
    threads = str(row.threads)
    text = Path(tempfile.mkdtemp()) / "pydoc.txt"
    text.write_text(load_dataset("pydoc").text, encoding="utf-8")
    ppl_tool = str(args.llama_bin / "llama-perplexity")
    t = time.perf_counter()
    plain = _run([ppl_tool, "-m", str(q8), "-f", str(text), "-c", str(cfg.ctx), "-b", str(cfg.ctx),
                  "--chunks", str(cfg.chunks), "-t", threads])
    ppl_llama = _grab(plain, r"Final estimate: PPL")
    folder = cache_dir() / "references" / row.reference_sha256
    ref = SourceReference(folder, "", "", json.loads((folder / "meta.json").read_text()))
    base = native_reference_file(ref, "gguf")
    kl = _run([ppl_tool, "-m", str(q8), "--kl-divergence-base", str(base), "--kl-divergence", "-c", str(cfg.ctx),
               "-b", str(cfg.ctx), "-t", threads])
    took = time.perf_counter() - t
    kld_llama, top_llama = _grab(kl, r"Mean\s+KLD"), _grab(kl, r"Same top p") / 100
    base_llama = _grab(kl, r"Mean PPL\(base\)")
    print(f"\n# 1. oracle: gguf:q8_0, {row.chunks} chunks of {row.ctx} on pydoc ({row.quality['tokens_scored']} tokens scored)")
    print(f"PPL        edge {row.ppl:.5f}   llama-perplexity {ppl_llama:.5f}   ratio {row.ppl / ppl_llama:.5f}  (goal |1 - r| <= 0.001)")
    print(f"PPL(src)   edge {row.ppl_base:.5f}   llama-perplexity (its uint16 copy) {base_llama:.5f}   ratio {row.ppl_base / base_llama:.5f}")
    print(f"KLD        edge {row.kld_mean:.6f} ± {row.kld_unc:.6f}   llama-perplexity {kld_llama:.6f}   ratio {row.kld_mean / kld_llama:.4f}")
    print(f"same-top   edge {100 * row.same_top:.3f} %   llama-perplexity {100 * top_llama:.3f} %   diff {100 * (row.same_top - top_llama):+.3f} pp")
    print(f"(llama-perplexity's two runs: {took:.0f} s; reference base file {base.stat().st_size / 1e6:.0f} MB)")


def speed(args, have, cfg, rounds: int = 3) -> None:
    """edge and llama-bench alternated (edge, llama-bench, edge, …) ``rounds`` times per file, so that the
    machine's drift falls on both; the ratio of their means, and the spread of the per-round ratios."""
    from statistics import mean, median, stdev

    from edge.bench import bench
    from edge.store import Store

    print(f"\n# 2. speed vs llama-bench: same files, same threads, {cfg.reps} reps per call, {rounds} rounds "
          "alternating edge and llama-bench")
    print("ratio: mean edge / mean llama-bench; [lo, hi]: the 95 % interval of the mean per-round ratio "
          "(t-based); med: the median per-round ratio")
    print(f"{'format':12} {'edge pp512':>11} {'llama-bench':>11} {'ratio [95 %] med':>26}   "
          f"{'edge tg128':>10} {'llama-bench':>11} {'ratio [95 %] med':>26}")
    for f in ("gguf:q8_0", "gguf:q4_0"):
        ours: dict[str, list[float]] = {"pp": [], "tg": []}
        theirs: dict[str, list[float]] = {"pp": [], "tg": []}
        for _ in range(rounds):
            with Store(Path(tempfile.mkdtemp()) / "s.sqlite") as st:
                [row] = bench([have[f]], config=_replace(cfg, quality=False), store=st, resume=False)
            ours["pp"].append(row.pp_tps)
            ours["tg"].append(row.tg_tps)
            out = _run([str(args.llama_bin / "llama-bench"), "-m", str(have[f]), "-p", "512", "-n", "128", "-t",
                        str(row.threads), "-r", str(cfg.reps), "-o", "json"])
            recs = json.loads(out[out.index("["):out.rindex("]") + 1])
            theirs["pp"].append(next(r["avg_ts"] for r in recs if r["n_gen"] == 0))
            theirs["tg"].append(next(r["avg_ts"] for r in recs if r["n_prompt"] == 0))
        cells = []
        for k in ("pp", "tg"):
            per_round = [a / b for a, b in zip(ours[k], theirs[k])]
            half = _t95(len(per_round)) * stdev(per_round) / len(per_round) ** 0.5 if len(per_round) > 1 else float("nan")
            m = mean(per_round)
            cells.append(f"{mean(ours[k]):11.1f} {mean(theirs[k]):11.1f} "
                         f"{mean(ours[k]) / mean(theirs[k]):6.3f} [{m - half:.3f}, {m + half:.3f}] {median(per_round):.3f}")
        print(f"{f:12} {cells[0]}   {cells[1]}")


def overhead(args, have, cfg) -> None:
    """What edge's timing adds to llama.cpp's own: the exact loops edge's bench times (edge.measure.protocol),
    each call also timed by llama.cpp's internal eval counters (``llama_perf_context``) in the same process,
    so the machine's drift falls on both sides of each ratio."""
    import random
    from statistics import mean

    import llama_cpp

    from converters.gguf.runtime import LlamaModel
    from edge.measure.protocol import _random_tokens, _time_pp, _time_tg

    print(f"\n# 2b. edge's wall time vs llama.cpp's own eval timers, same calls, {cfg.reps * 4} reps "
          "(mean [min–max]; > 1: what edge's Python loop adds)")
    print(f"{'format':12} {'pp512 wall/llama':>17} {'tg128 wall/llama':>17}")
    for f in ("gguf:q8_0", "gguf:q4_0"):
        rng = random.Random(0)
        with LlamaModel(have[f], n_ctx=512, n_threads=args.threads, perf_counters=True) as m:
            ratios: dict[str, list[float]] = {"pp": [], "tg": []}
            _time_tg(m, 16, rng)  # warm-up, as the bench does
            for _ in range(cfg.reps * 4):
                llama_cpp.llama_perf_context_reset(m._ctx)
                wall = _time_pp(m, _random_tokens(m, 512, rng))
                ratios["pp"].append(wall / (llama_cpp.llama_perf_context(m._ctx).t_p_eval_ms / 1e3))
                llama_cpp.llama_perf_context_reset(m._ctx)
                wall = _time_tg(m, 128, rng)
                ratios["tg"].append(wall / (llama_cpp.llama_perf_context(m._ctx).t_eval_ms / 1e3))
        print(f"{f:12} {mean(ratios['pp']):7.4f} [{min(ratios['pp']):.3f}–{max(ratios['pp']):.3f}]"
              f" {mean(ratios['tg']):7.4f} [{min(ratios['tg']):.3f}–{max(ratios['tg']):.3f}]")


def _t95(n: int) -> float:
    """Student's t quantile (two-sided 95 %) for n - 1 degrees of freedom."""
    table = {2: 12.71, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262,
             12: 2.201, 15: 2.145, 20: 2.093}
    return table.get(n) or table[max(k for k in table if k <= n)] if n < 30 else 1.96


def _replace(cfg, **kw):
    from dataclasses import replace

    return replace(cfg, **kw)


def drift(args, have, cfg) -> None:
    from edge.bench import bench
    from edge.store import Store

    arts = [have[f] for f in LADDER if f in have]
    print(f"\n# 3. drift: {len(arts)} GGUFs, {cfg.reps} reps, speed only, interleaved vs one at a time")
    ranks = {}
    for mode in (True, False):
        with Store(Path(tempfile.mkdtemp()) / "s.sqlite") as st:
            t = time.perf_counter()
            rows = bench(arts, config=_replace(cfg, quality=False, interleave=mode), store=st, resume=False)
            wall = time.perf_counter() - t
        name = "interleaved" if mode else "one at a time"
        print(f"{name} ({wall:.0f} s):")
        for r in rows:
            tg = r.raw["tg_samples"]
            print(f"  {r.format:12} tg {r.tg_tps:7.1f} ± {r.tg_tps_std:5.1f}  pp {r.pp_tps:7.1f} ± {r.pp_tps_std:5.1f}  "
                  f"tg first→last rep {tg[0]:6.1f} → {tg[-1]:6.1f} ({100 * (tg[-1] / tg[0] - 1):+.1f} %)")
        ranks[name] = ([r.format for r in sorted(rows, key=lambda r: -r.tg_tps)],
                       [r.format for r in sorted(rows, key=lambda r: -r.pp_tps)])
    same = ranks["interleaved"] == ranks["one at a time"]
    print(f"tg ranking interleaved:   {' > '.join(ranks['interleaved'][0])}")
    print(f"tg ranking one at a time: {' > '.join(ranks['one at a time'][0])}")
    print(f"pp ranking interleaved:   {' > '.join(ranks['interleaved'][1])}")
    print(f"pp ranking one at a time: {' > '.join(ranks['one at a time'][1])}")
    print(f"rankings {'identical' if same else 'DIFFER'}")


def matrix(args, have, store, cfg) -> None:
    from edge.bench import bench
    from edge.report import report

    fmts = [f for f in MATRIX if f in have]
    print(f"\n# 4. the matrix, every family against the source checkpoint ({', '.join(fmts)})")
    t = time.perf_counter()
    rows = bench([have[f] for f in fmts], config=cfg, store=store, resume=False)
    print(f"(bench of {len(rows)} artifacts: {time.perf_counter() - t:.0f} s)\n")
    print(report(rows, "md"))
    from edge.core.paths import cache_dir

    entry = cache_dir() / "references" / rows[0].reference_sha256
    sizes = {p.name: p.stat().st_size for p in entry.iterdir()}
    print("# 5. what a board is sent for quality, once per device (sha256-checked):")
    for name, size in sorted(sizes.items()):
        print(f"  {name:24} {size / 1e6:10.1f} MB")


def main() -> None:
    args = _args()
    from edge.bench import BenchConfig
    from edge.store import Store

    have = _found(args.artifacts)
    skip = set(filter(None, args.skip.split(",")))
    cfg = BenchConfig(threads=args.threads, reps=args.reps, chunks=args.chunks)
    with Store(Path(tempfile.mkdtemp()) / "bench.sqlite") as store:
        if "oracle" not in skip:
            oracle(args, have, store, cfg)
        if "speed" not in skip:
            speed(args, have, cfg, args.rounds)
        if "overhead" not in skip:
            overhead(args, have, cfg)
        if "drift" not in skip:
            drift(args, have, cfg)
        if "matrix" not in skip:
            matrix(args, have, store, cfg)


if __name__ == "__main__":
    main()
