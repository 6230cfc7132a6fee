"""What an importance matrix buys on the demo model: each GGUF type with and without ``?imatrix=`` (the
calibration text is never the evaluation text), KLD / ΔPPL against the source checkpoint; and edge's
matrix against ``llama-imatrix``'s (built from the same llama.cpp) on the real model.

    python benchmarks/bench_imatrix.py [--calibration wiki] [--dataset pydoc] [--chunks 16] \\
        [--types q4_0,q4_k_m,iq4_xs,iq3_xxs] [--llama-imatrix PATH]

Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edge import api  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", default="wiki")
    ap.add_argument("--dataset", default="pydoc")
    ap.add_argument("--chunks", type=int, default=16, help="evaluation chunks of 512 tokens")
    ap.add_argument("--imatrix-chunks", type=int, default=64)
    ap.add_argument("--types", default="q4_0,q4_k_m,q3_k_m,iq4_xs,iq3_xxs")
    ap.add_argument("--llama-imatrix", help="llama-imatrix binary (default: the one the tests build)")
    args = ap.parse_args()

    ckpt = api.demo_checkpoint()
    out = Path(tempfile.mkdtemp(prefix="edge-imatrix-"))
    types = args.types.split(",")
    spec = ["gguf:f16"]
    for t in types:
        if t not in ("iq3_xxs", "iq2_xs", "iq2_xxs", "iq2_s", "iq2_m", "iq1_s", "iq1_m"):
            spec.append(f"gguf:{t}")
        spec.append(f"gguf:{t}?imatrix={args.calibration}&imatrix_chunks={args.imatrix_chunks}")
    t0 = time.perf_counter()
    arts = api.convert(ckpt, ",".join(spec), out)
    print(f"converted {len(arts)} artifacts in {time.perf_counter() - t0:.0f} s "
          f"(one importance matrix of {args.imatrix_chunks} × 512 tokens of {args.calibration})")
    rows = api.bench([a.path for a in arts], config=api.BenchConfig(reps=1, chunks=args.chunks),
                     dataset=args.dataset, store=api.Store(out / "s.sqlite"))
    by = {r.artifact_path: r for r in rows}
    print(f"\nKLD / ΔPPL vs the source on {args.dataset} ({args.chunks} × 512 tokens); calibration {args.calibration}\n")
    print("| type | bpw | KLD | ΔPPL % | KLD with imatrix | ΔPPL % with imatrix | bpw | KLD ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in types:
        plain = next((by[str(a.path)] for a in arts if a.manifest.variant == t and not a.manifest.params.get("imatrix")), None)
        cal = next(by[str(a.path)] for a in arts if a.manifest.variant == t and a.manifest.params.get("imatrix"))

        def cells(r):
            if r is None:
                return ["", "", "(needs one)"]
            d = 100 * (np.exp(r.ln_ppl_ratio) - 1)
            return [f"{r.bits_per_weight:.2f}", f"{r.kld_mean:.4f} ± {r.kld_unc:.4f}", f"{d:+.2f}"]

        ratio = "" if plain is None else f"{cal.kld_mean / plain.kld_mean:.2f}"
        c = cells(cal)
        print("| " + " | ".join([t, *cells(plain), c[1], c[2], c[0], ratio]) + " |")

    # edge's matrix against llama-imatrix's on the real model, the same text and chunks
    from converters.gguf.imatrix import compute, read_llama_imatrix
    from edge.measure.tokens import token_stream
    from sshd import llama_tools

    tool = args.llama_imatrix or llama_tools(Path.home() / ".cache" / "edge-test")["llama-imatrix"]
    from edge.datasets import load_dataset

    text = load_dataset(args.calibration).text
    calib = out / "calibration.txt"
    calib.write_text(text, encoding="utf-8")
    f16 = next(a.path for a in arts if a.manifest.variant == "f16")
    n = min(args.imatrix_chunks, 16)
    t0 = time.perf_counter()
    subprocess.run([tool, "-m", str(f16), "-f", str(calib), "-c", "512", "--chunks", str(n), "-o", str(out / "im.gguf"),
                    "--no-ppl"], check=True, capture_output=True)
    t_llama = time.perf_counter() - t0
    theirs = read_llama_imatrix(out / "im.gguf")
    stream = token_stream(ckpt, text)
    t0 = time.perf_counter()
    ours = compute(ckpt, stream.ids, stream.bos, max_chunks=n)
    t_edge = time.perf_counter() - t0
    rel = [float(np.max(np.abs(ours.data[k] - v) / np.maximum(np.abs(v), 1e-6))) for k, v in theirs.items()]
    corr = [float(np.corrcoef(ours.data[k], v)[0, 1]) for k, v in theirs.items()]
    print(f"\nedge vs llama-imatrix on the demo model ({n} chunks of {args.calibration}, llama-imatrix on the f16 GGUF): "
          f"{len(theirs)} tensors (edge {len(ours.data)}); max relative difference median {np.median(rel):.2e}, "
          f"worst {max(rel):.2e}; correlation min {min(corr):.6f}; edge {t_edge:.1f} s, llama-imatrix {t_llama:.1f} s")


if __name__ == "__main__":
    main()
