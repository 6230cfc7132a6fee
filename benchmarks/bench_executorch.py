"""Benchmark (not a test): ExecuTorch programs beside GGUF files of comparable bits, from one run.

1. Export: each ExecuTorch program's time per stage (rewrite weights, load + quantize, torch.export,
   lower to XNNPACK, to_executorch, serialize) and the export's peak RSS, from its manifest.
2. Measurement: `edge bench` on the local machine over GGUF f16/q8_0/q4_k_m/q4_0 and ExecuTorch
   fp32/int8/8da8w/8da4w of the same checkpoint, same protocol and threads, then ratios of the pairs
   a team would weigh: int8 and 8da8w vs Q8_0, 8da4w vs Q4_K_M and Q4_0, fp32 vs f16.

Usage: python benchmarks/bench_executorch.py [CHECKPOINT] [--out DIR] [--chunks 32] [--reps 5]
(default checkpoint: the demo model). Artifacts already in --out with a manifest are reused.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from beside_gguf import artifacts, bench_and_print, parse_args  # noqa: E402

ET = ["executorch:fp32", "executorch:int8", "executorch:8da8w", "executorch:8da4w"]
PAIRS = [("executorch:fp32", "gguf:f16"), ("executorch:int8", "gguf:q8_0"), ("executorch:8da8w", "gguf:q8_0"),
         ("executorch:8da4w", "gguf:q4_k_m"), ("executorch:8da4w", "gguf:q4_0")]


def print_export_profile(have: dict[str, Path]) -> None:
    from edge.core.manifest import read_manifest

    print("# export time per stage (s)")
    for fmt in ET:
        m = read_manifest(have[fmt])
        secs = m.details["export_seconds"]
        stages = "  ".join(f"{k} {v:.1f}" for k, v in secs.items())
        print(f"{fmt:20} total {sum(secs.values()):7.1f}  {stages}  "
              f"peak RSS {m.details['export_peak_rss_bytes'] / 2**30:.2f} GiB  delegation {m.details['delegation']}")


if __name__ == "__main__":
    args = parse_args(__doc__)
    out, have = artifacts(args, ET)
    print_export_profile(have)
    bench_and_print(args, out, have, ET, PAIRS)
