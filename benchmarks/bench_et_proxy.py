"""How well ExecuTorch's sensitivity proxy (the program's torchao quantization in eager torch, which
``edge sensitivity -f executorch:…`` and ``executorch:8da4w?target_kld=`` measure on) agrees with the
programs themselves: for each ``.pte`` given, the KLD against the source checkpoint of the program (run by
ExecuTorch's runtime) and of its proxy (built from the program's own format and parameters), on the same
tokens.

    python benchmarks/bench_et_proxy.py PROGRAM.pte [...] [--dataset pydoc] [--chunks 8]

Prints one row per program and the relative difference; the figures are deterministic (no timing), so
the machine need not be quiet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from converters.executorch.runtime import EtModel
from converters.executorch.sensitivity import PLAN
from edge.core.formats import parse_format
from edge.core.manifest import read_manifest
from edge.core.paths import cache_dir
from edge.datasets import load_dataset
from edge.measure.protocol import quality
from edge.measure.reference import source_reference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("programs", nargs="+", type=Path)
    ap.add_argument("--dataset", default="pydoc")
    ap.add_argument("--chunks", type=int, default=8)
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    print(f"| program | format | program KLD | proxy KLD | proxy / program - 1 | program PPL | proxy PPL |")
    print("|---|---|---|---|---|---|---|")
    for pte in args.programs:
        m = read_manifest(pte)
        src = Path(m.source["path"])
        ref = source_reference(src, data.text, data.sha256, 512, args.chunks, cache_dir(), lambda e: None,
                               content_sha256=m.source.get("content_sha256"))
        tok = pte.parent / m.details["tokenizer_file"]["file"]
        t0 = time.perf_counter()
        with EtModel(pte, tok) as et:
            real = quality(et, ref.stream, 512, args.chunks, str(ref.logprobs), None, lambda e: None)
        t1 = time.perf_counter()
        req = parse_format(m.format)
        # a program of export_llm's own qmode path (no per-module plan recorded) is the plain 8da4w
        if req.info.variant == "8da4w" and "linears" not in m.details:
            req = parse_format("executorch:8da4w?output=4&embedding=" + (str(m.details.get("embedding_bits")) if m.details.get("embedding_bits") else "float"))
        with tempfile.TemporaryDirectory() as scratch, PLAN.quantized(src, src, req, None, Path(scratch), None) as (proxy, _):
            est = quality(proxy, ref.stream, 512, args.chunks, str(ref.logprobs), None, lambda e: None)
        t2 = time.perf_counter()
        print(f"| {pte.name} | {req.name} | {real['kld_mean']:.4f} ± {real['kld_unc']:.4f} | {est['kld_mean']:.4f} ± "
              f"{est['kld_unc']:.4f} | {est['kld_mean'] / real['kld_mean'] - 1:+.1%} | {real['ppl']:.3f} | {est['ppl']:.3f} |"
              f"  <!-- program {t1 - t0:.0f} s, proxy {t2 - t1:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
