"""Benchmark (not a test): ExecuTorch programs beside GGUF files of comparable bits, from one run.

1. Export: each ExecuTorch program's time per stage (rewrite weights, load + quantize, torch.export,
   lower to XNNPACK, to_executorch, serialize) and the export's peak RSS, from its manifest.
2. Measurement: `edge bench` on the local machine over GGUF f16/q8_0/q4_k_m/q4_0 and ExecuTorch
   fp32/int8/8da8w/8da4w of the same checkpoint, same protocol and threads, then ratios of the pairs
   a team would weigh: int8 and 8da8w vs Q8_0, 8da4w vs Q4_K_M and Q4_0, fp32 vs f16.

Usage: python benchmarks/bench_executorch.py [CHECKPOINT] [--out DIR] [--chunks 32] [--reps 5]
(default checkpoint: the demo model). Artifacts already in --out with a matching manifest are reused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

GGUF = ["gguf:f16", "gguf:q8_0", "gguf:q4_k_m", "gguf:q4_0"]
ET = ["executorch:fp32", "executorch:int8", "executorch:8da8w", "executorch:8da4w"]
PAIRS = [("executorch:fp32", "gguf:f16"), ("executorch:int8", "gguf:q8_0"), ("executorch:8da8w", "gguf:q8_0"),
         ("executorch:8da4w", "gguf:q4_k_m"), ("executorch:8da4w", "gguf:q4_0")]


def existing(out: Path) -> dict[str, Path]:
    found = {}
    for mf in out.glob("*.manifest.json"):
        data = json.loads(mf.read_text())
        found[data["format"]] = out / data["artifact"]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from edge.bench import BenchConfig, bench
    from edge.convert import convert
    from edge.demo import demo_checkpoint
    from edge.manifest import read_manifest
    from edge.store import Store

    ckpt = Path(args.checkpoint) if args.checkpoint else demo_checkpoint()
    out = args.out or Path(tempfile.mkdtemp(prefix="edge-bench-et-"))
    out.mkdir(parents=True, exist_ok=True)
    have = existing(out)
    todo = [f for f in GGUF + ET if f not in have]
    if todo:
        convert(ckpt, ",".join(todo), out, threads=args.threads)
    have = existing(out)

    print(f"# export time per stage (s), {ckpt.name}")
    for fmt in ET:
        m = read_manifest(have[fmt])
        secs = m.details["export_seconds"]
        stages = "  ".join(f"{k} {v:.1f}" for k, v in secs.items())
        print(f"{fmt:20} total {sum(secs.values()):7.1f}  {stages}  peak RSS {m.details['export_peak_rss_bytes'] / 2**30:.2f} GiB")

    cfg = BenchConfig(threads=args.threads, reps=args.reps, chunks=args.chunks)
    with Store(out / "bench.sqlite") as store:
        rows = {r.format: r for r in bench([have[f] for f in GGUF + ET], config=cfg, store=store)}
    print(f"\n# local, {cfg.reps} reps, pp{cfg.n_prompt}/tg{cfg.n_gen}, perplexity {cfg.chunks} chunks of {cfg.ctx}")
    print(f"{'format':20} {'MiB':>6} {'bpw':>6} {'pp t/s':>16} {'tg t/s':>14} {'TTFT s':>7} {'load s':>7} {'peak MiB':>8} "
          f"{'PPL':>8} {'KLD':>8} {'same-top':>8}")
    for f in GGUF + ET:
        r = rows[f]
        kld = f"{r.kld_mean:.5f}" if r.kld_mean is not None else ""
        top = f"{100 * r.same_top:.2f}" if r.same_top is not None else ""
        print(f"{f:20} {r.size_bytes / 2**20:6.0f} {r.bits_per_weight:6.2f} {r.pp_tps:8.1f} ± {r.pp_tps_std:5.1f} "
              f"{r.tg_tps:6.1f} ± {r.tg_tps_std:4.1f} {r.ttft_s:7.3f} {r.load_s:7.3f} {r.peak_rss_bytes / 2**20:8.0f} "
              f"{r.ppl:8.3f} {kld:>8} {top:>8}")
    print("\n# ratios ExecuTorch / GGUF (speed > 1: ExecuTorch faster; size, peak, PPL > 1: ExecuTorch larger)")
    for et, gg in PAIRS:
        a, b = rows[et], rows[gg]
        print(f"{et:18} / {gg:12} size {a.size_bytes / b.size_bytes:5.2f}  pp {a.pp_tps / b.pp_tps:5.2f}  "
              f"tg {a.tg_tps / b.tg_tps:5.2f}  TTFT {a.ttft_s / b.ttft_s:5.2f}  peak {a.peak_rss_bytes / b.peak_rss_bytes:5.2f}  "
              f"PPL {a.ppl / b.ppl:5.3f}")
    print(f"\nartifacts and results: {out}")


if __name__ == "__main__":
    main()
