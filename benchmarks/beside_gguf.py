"""Shared by the family benchmarks: convert one checkpoint to GGUF and another family's formats (reusing
artifacts already in --out), bench them all on the local machine in one run, print the rows and the
ratios of the pairs a team would weigh (other family / GGUF)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

GGUF = ["gguf:f16", "gguf:q8_0", "gguf:q4_k_m", "gguf:q4_0"]


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", help="HF checkpoint folder (default: the demo model)")
    ap.add_argument("--out", type=Path, default=None, help="artifacts folder (reused when it holds them)")
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    return ap.parse_args()


def artifacts(args: argparse.Namespace, formats: list[str]) -> tuple[Path, dict[str, Path]]:
    from edge.convert import convert
    from edge.demo import demo_checkpoint

    ckpt = Path(args.checkpoint) if args.checkpoint else demo_checkpoint()
    out = args.out or Path(tempfile.mkdtemp(prefix="edge-bench-"))
    out.mkdir(parents=True, exist_ok=True)

    def existing() -> dict[str, Path]:
        found = {}
        for mf in out.glob("*.manifest.json"):
            data = json.loads(mf.read_text())
            found[data["format"]] = out / data["artifact"]
        return found

    todo = [f for f in GGUF + formats if f not in existing()]
    if todo:
        convert(ckpt, ",".join(todo), out, threads=args.threads)
    return out, existing()


def bench_and_print(args: argparse.Namespace, out: Path, have: dict[str, Path], formats: list[str],
                    pairs: list[tuple[str, str]]) -> None:
    from edge.bench import BenchConfig, bench
    from edge.store import Store

    cfg = BenchConfig(threads=args.threads, reps=args.reps, chunks=args.chunks)
    with Store(out / "bench.sqlite") as store:
        rows = {r.format: r for r in bench([have[f] for f in GGUF + formats], config=cfg, store=store, resume=False)}
    print(f"\n# local, {cfg.reps} reps, pp{cfg.n_prompt}/tg{cfg.n_gen}, perplexity {cfg.chunks} chunks of {cfg.ctx}")
    print(f"{'format':24} {'MiB':>6} {'bpw':>6} {'pp t/s':>16} {'tg t/s':>14} {'TTFT s':>7} {'load s':>7} "
          f"{'peak MiB':>8} {'PPL':>8} {'KLD':>8} {'same-top':>8}")
    for f in GGUF + formats:
        r = rows[f]
        kld = f"{r.kld_mean:.5f}" if r.kld_mean is not None else ""
        top = f"{100 * r.same_top:.2f}" if r.same_top is not None else ""
        print(f"{f:24} {r.size_bytes / 2**20:6.0f} {r.bits_per_weight:6.2f} {r.pp_tps:8.1f} ± {r.pp_tps_std:5.1f} "
              f"{r.tg_tps:6.1f} ± {r.tg_tps_std:4.1f} {r.ttft_s:7.3f} {r.load_s:7.3f} {r.peak_rss_bytes / 2**20:8.0f} "
              f"{r.ppl:8.3f} {kld:>8} {top:>8}")
    print("\n# ratios other / GGUF (speed > 1: other faster; size, TTFT, peak, PPL > 1: other larger)")
    for a_f, b_f in pairs:
        a, b = rows[a_f], rows[b_f]
        print(f"{a_f:20} / {b_f:12} size {a.size_bytes / b.size_bytes:5.2f}  pp {a.pp_tps / b.pp_tps:5.2f}  "
              f"tg {a.tg_tps / b.tg_tps:5.2f}  TTFT {a.ttft_s / b.ttft_s:5.2f}  "
              f"peak {a.peak_rss_bytes / b.peak_rss_bytes:5.2f}  PPL {a.ppl / b.ppl:5.3f}")
    print(f"\nartifacts and results: {out}")
