"""Benchmark (not a test): edge's GGUF path against references measured in the same run.

1. Conversion: `edge convert` (HF → F16 GGUF, without and with verification) against transformers
   loading the same checkpoint and saving it again (save_pretrained), the nearest thing a user
   would otherwise run.
2. Speed: edge bench's pp512 / tg128 against a bare llama-cpp-python loop (the high-level
   ``Llama.eval``) on the same file, same threads.

Prints figures and ratios. Usage: python benchmarks/bench_gguf.py [CHECKPOINT] [--reps 5]
(default checkpoint: the demo model).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def transformers_roundtrip(ckpt: Path, dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float16)
    model.save_pretrained(dest)


def bare_llama_cpp(path: Path, threads: int, reps: int) -> tuple[list[float], list[float]]:
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=640, n_batch=512, n_ubatch=512, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    rng = random.Random(0)
    prompt = [rng.randrange(llm.n_vocab()) for _ in range(512)]
    pp, tg = [], []
    for rep in range(reps + 1):  # first repetition is the warm-up
        llm.reset()  # eval() then drops the KV cache from position 0
        t = time.perf_counter()
        llm.eval(prompt)
        t_pp = time.perf_counter() - t
        llm.reset()  # eval() then drops the KV cache from position 0
        t = time.perf_counter()
        for _ in range(128):
            llm.eval([rng.randrange(llm.n_vocab())])
        t_tg = time.perf_counter() - t
        if rep:
            pp.append(512 / t_pp)
            tg.append(128 / t_tg)
    return pp, tg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from edge.bench import BenchConfig, bench
    from edge.convert import convert
    from edge.demo import demo_checkpoint
    from edge.store import Store

    ckpt = Path(args.checkpoint) if args.checkpoint else demo_checkpoint()
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="edge-benchmark-"))
    try:
        t_hf, _ = timed(lambda: transformers_roundtrip(ckpt, work / "hf"))
        t_edge, _ = timed(lambda: [a.manifest for a in convert(ckpt, "gguf:f16", work / "a", verify=False)])
        t_edge_v, ms = timed(lambda: [a.manifest for a in convert(ckpt, "gguf:f16", work / "b", verify=True)])
        print(f"checkpoint: {ckpt} ({ms[0].parameter_count / 1e6:.1f} M parameters), threads: {threads}")
        print("\n== conversion (HF → F16), seconds")
        print(f"transformers load + save_pretrained (fp16):  {t_hf:7.2f}")
        print(f"edge convert gguf:f16, no verification:      {t_edge:7.2f}   ratio edge/transformers {t_edge / t_hf:.2f}")
        print(f"edge convert gguf:f16, verified:             {t_edge_v:7.2f}   ratio edge/transformers {t_edge_v / t_hf:.2f}")

        q = [a.manifest for a in convert(ckpt, "gguf:f16,gguf:q4_k_m", work / "c", verify=False)]
        print("\n== speed, tokens/s (mean ± stddev over", args.reps, "reps after a warm-up)")
        print(f"{'file':28} {'':8} {'edge bench':>18} {'bare llama-cpp':>18} {'ratio':>6}")
        for m in q:
            path = work / "c" / m.artifact
            [row] = bench([path], config=BenchConfig(threads=threads, reps=args.reps, quality=False),
                          store=Store(work / "s.sqlite"))
            pp, tg = bare_llama_cpp(path, threads, args.reps)
            for name, mine, sd, ref in [("pp512", row.pp_tps, row.pp_tps_std, pp), ("tg128", row.tg_tps, row.tg_tps_std, tg)]:
                rm, rs = statistics.mean(ref), statistics.stdev(ref)
                print(f"{m.format:28} {name:8} {mine:10.1f} ± {sd:5.1f} {rm:10.1f} ± {rs:5.1f} {mine / rm:6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
