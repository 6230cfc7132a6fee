"""Benchmark (not a test): ONNX (onnxruntime-genai) model folders beside GGUF files of comparable bits.

Converts the checkpoint to GGUF f16/q8_0/q4_k_m/q4_0 and ONNX fp32/int8/int4/int4-mixed, benches all
on the local machine in one run, prints the rows and the ratios int8 vs Q8_0, int4 vs Q4_K_M and Q4_0,
int4-mixed vs Q4_K_M, fp32 vs f16. Usage: python benchmarks/bench_onnx.py [CHECKPOINT] [--out DIR]
[--chunks 32] [--reps 5] (default checkpoint: the demo model).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from beside_gguf import artifacts, bench_and_print, parse_args  # noqa: E402

ONNX = ["onnx:fp32", "onnx:int8", "onnx:int4", "onnx:int4-mixed"]
PAIRS = [("onnx:fp32", "gguf:f16"), ("onnx:int8", "gguf:q8_0"), ("onnx:int4", "gguf:q4_k_m"),
         ("onnx:int4", "gguf:q4_0"), ("onnx:int4-mixed", "gguf:q4_k_m")]

if __name__ == "__main__":
    args = parse_args(__doc__)
    out, have = artifacts(args, ONNX)
    bench_and_print(args, out, have, ONNX, PAIRS)
