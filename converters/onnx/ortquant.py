"""onnxruntime's own weight quantizer (``onnxruntime.quantization.matmul_nbits_quantizer``) for the methods
the model builder does not offer: HQQ (calibration-free, fitted scales and zero points). It quantizes the
MatMul weights of the fp32 folder the builder wrote (the family's reference) into MatMulNBits with the
builder's CPU settings (accuracy level 4: int8 compute), and the folder's other files (genai_config.json,
tokenizer) are copied beside it.

It runs in a child process, as the builder does: the quantizer's module configures the root logger at INFO
level when imported, which would print its lines through edge's output.

    python -m converters.onnx.ortquant REFERENCE OUT --method hqq --block 32
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from edge.core.errors import ConversionError

ACCURACY_LEVEL = 4      # the builder's CPU default (onnxruntime_genai quant_config): int8 activations in the kernel
MODEL = "model.onnx"


def quantize(reference: Path, out: Path, method: str, block: int, name: str) -> None:
    """Write ``out`` (a folder) from the fp32 folder ``reference``; ConversionError with the quantizer's last
    line when it fails."""
    cmd = [sys.executable, "-m", "converters.onnx.ortquant", str(reference), str(out), "--method", method,
           "--block", str(block)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith((" ", "Traceback"))]
        raise ConversionError(f"onnxruntime's quantizer failed for {name}: {lines[-1] if lines else f'exit code {proc.returncode}'}")


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m converters.onnx.ortquant")
    ap.add_argument("reference", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--method", choices=("hqq",), required=True)
    ap.add_argument("--block", type=int, default=32)
    args = ap.parse_args(argv)

    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger().setLevel(logging.WARNING)
    model = onnx.load(str(args.reference / MODEL))
    cfg = HQQWeightOnlyQuantConfig(block_size=args.block, bits=4)
    q = MatMulNBitsQuantizer(model, block_size=args.block, is_symmetric=False, accuracy_level=ACCURACY_LEVEL,
                             algo_config=cfg)
    q.process()
    for node in q.model.model.graph.node:  # the HQQ quantizer writes no accuracy level: set the builder's
        if node.op_type == "MatMulNBits":
            kept = [a for a in node.attribute if a.name != "accuracy_level"]
            node.ClearField("attribute")
            node.attribute.extend([*kept, onnx.helper.make_attribute("accuracy_level", ACCURACY_LEVEL)])
    args.out.mkdir(parents=True, exist_ok=True)
    for f in args.reference.iterdir():
        if f.is_file() and not f.name.startswith(MODEL):
            shutil.copy2(f, args.out / f.name)
    q.model.save_model_to_file(str(args.out / MODEL), use_external_data_format=True)


if __name__ == "__main__":
    _main()
