"""Benchmark (not a test): ExecuTorch export time, edge's lowering against ``export_llm``'s, same run.

Each format is exported twice from the same checkpoint with the same settings, each export alone in
its own process (so peak RSS and warm caches are its own): once lowered as ExecuTorch's
``export_llm`` lowers (``to_edge_transform_and_lower`` as it comes), once as edge lowers
(``converters.executorch.lowering``). Printed: seconds per stage, total, peak RSS, delegation, the
ratio export_llm / edge, and whether the two programs are byte for byte the same (then their quality
is the same by construction; otherwise both are measured).

Usage: python benchmarks/bench_et_export.py [CHECKPOINT] [--formats executorch:fp32,executorch:8da4w]
(default checkpoint: the demo model). Run it alone: on 2 cores anything beside it is measured too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("export_llm", "edge")


def one(mode: str, fmt: str, ckpt_path: str, out: str) -> dict:
    from converters.executorch.convert import _metadata, options
    from converters.executorch.recipe import export_pte
    from edge.core.checkpoint import Checkpoint
    from edge.core.formats import parse_formats
    from edge.core.hashing import sha256_file

    ckpt = Checkpoint.open(ckpt_path)
    (req,) = parse_formats(fmt)
    t = time.perf_counter()
    prof = export_pte(ckpt, options(req, ckpt), Path(out), _metadata(ckpt), fast_lowering=mode == "edge")
    total = time.perf_counter() - t
    return {"seconds": prof.seconds, "total_s": total, "peak_rss_bytes": prof.peak_rss_bytes,
            "delegation": prof.delegation, "sha256": sha256_file(Path(out))}


def ppl(path: Path, ckpt_path: str, n_ctx: int = 512, chunks: int = 4) -> float:
    """The program's perplexity on pydoc by edge's own protocol (``edge.measure.protocol.quality``)."""
    import numpy as np

    from converters.executorch.runtime import EtModel
    from edge.datasets import load_dataset
    from edge.measure.protocol import quality
    from edge.measure.tokens import TokenStream

    with EtModel(path, Path(ckpt_path) / "tokenizer.json") as m:
        ids = np.asarray(m.tokenize(load_dataset("pydoc").text, add_special=True), dtype=np.int32)
        stream = TokenStream(ids, m.bos if m.add_bos else None)
        return quality(m, stream, n_ctx, chunks, None, None, lambda event: None)["ppl"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--formats", default="executorch:fp32,executorch:8da4w")
    ap.add_argument("--one", nargs=3, metavar=("MODE", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.checkpoint is None:
        from edge.demo import demo_checkpoint

        args.checkpoint = str(demo_checkpoint())
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.checkpoint, args.one[2])))
        return
    with tempfile.TemporaryDirectory(prefix="bench-et-export-") as tmp:
        for fmt in args.formats.split(","):
            res = {}
            program = {mode: Path(tmp) / f"{mode}-{fmt.split(':')[1]}.pte" for mode in MODES}
            for mode, out in program.items():
                r = subprocess.run([sys.executable, __file__, args.checkpoint, "--one", mode, fmt, str(out)],
                                   capture_output=True, text=True)
                if r.returncode:
                    sys.exit(f"{fmt} ({mode}) failed:\n{r.stderr[-3000:]}")
                res[mode] = json.loads(r.stdout.strip().splitlines()[-1])
                s = res[mode]
                stages = "  ".join(f"{k} {v:.1f}" for k, v in s["seconds"].items())
                print(f"{fmt:18} {mode:10} total {s['total_s']:6.1f} s  {stages}  peak RSS "
                      f"{s['peak_rss_bytes'] / 2**30:.2f} GiB  delegate calls {s['delegation']['xnnpack_delegate_calls']}, "
                      f"ops outside {s['delegation']['ops_outside_delegate']}", flush=True)
            a, b = res["export_llm"], res["edge"]
            lo = "lower to XNNPACK"
            print(f"{fmt:18} export_llm / edge: total {a['total_s'] / b['total_s']:.2f}x, lowering "
                  f"{a['seconds'][lo] / b['seconds'][lo]:.2f}x; programs byte-identical: {a['sha256'] == b['sha256']}"
                  f"; same delegation: {a['delegation'] == b['delegation']}", flush=True)
            if a["sha256"] != b["sha256"]:
                pa, pb = (ppl(program[m], args.checkpoint) for m in MODES)
                print(f"{fmt:18} PPL export_llm {pa:.4f}, edge {pb:.4f} ({(pb / pa - 1) * 100:+.3f} %)")


if __name__ == "__main__":
    main()
