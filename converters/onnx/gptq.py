"""GPTQ for onnxruntime's MatMulNBits: edge's GPTQ (``converters.gptq``, the one ExecuTorch's 8da4w uses) on
the MatMul weights of the fp32 folder the builder wrote, its Hessians the Gram matrices of each MatMul's
input in that very graph, run by onnxruntime over calibration chunks of token ids (an empty KV cache, one
pass per chunk for every input at once). The integers and scales go into MatMulNBits as they are
(symmetric: the default zero point 8, one fp32 scale per block of ``block`` input rows, chosen by onnxruntime's
own symmetric rule — the value of largest magnitude over −8 — so GPTQ rounds onto the builder's grid), packed by
onnxruntime's own node builder, with the builder's CPU accuracy level.

onnxruntime's own ``GPTQWeightOnlyQuantConfig`` is not used: measured here (onnxruntime 1.31), it returns
round-to-nearest's integers — on a layer with correlated inputs its asymmetric result equals RTN's weight for
weight, its symmetric one doubles RTN's output error — because its error feedback reads the column of an
upper Cholesky factor (zero below the diagonal) where GPTQ takes the row.

It runs in a child process, as the builder and onnxruntime's quantizer do (onnxruntime's quantization
modules configure the root logger at import); progress comes back as ``PROGRESS label i n`` lines.

    python -m converters.onnx.gptq REFERENCE OUT --block 32 --calib CHUNKS.npy
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from edge.core.errors import ConversionError

ACCURACY_LEVEL = 4      # the builder's CPU default: int8 activations in the kernel
MODEL = "model.onnx"
RECORD = "edge-gptq.json"   # what the child reports, removed from the folder once read
# the settings measured for ExecuTorch's GPTQ on the demo model (converters.executorch.methods): act order
# and 10 % damping keep GPTQ from overfitting the calibration text
DAMP = 0.1
ACT_ORDER = True


def quantize(reference: Path, out: Path, block: int, calib: Path, name: str, threads: int | None = None,
             on_progress: Callable[[str, int, int], None] = lambda label, i, n: None) -> dict:
    """Write ``out`` (a folder) from the fp32 folder ``reference`` with GPTQ over the chunks in ``calib``;
    ConversionError with the child's last line when it fails. Returns the record the child wrote."""
    cmd = [sys.executable, "-m", "converters.onnx.gptq", str(reference), str(out), "--block", str(block),
           "--calib", str(calib), *(["--threads", str(threads)] if threads else [])]
    # one pipe for both streams, read as it comes: a child whose stderr filled an unread pipe would block
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = []
    for line in proc.stdout:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "PROGRESS":
            on_progress(parts[1], int(parts[2]), int(parts[3]))
        elif line.strip() and not line.startswith((" ", "Traceback")):
            lines.append(line.strip())
    if proc.wait() != 0:
        raise ConversionError(f"GPTQ failed for {name}: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    record = json.loads((out / RECORD).read_text())
    (out / RECORD).unlink()
    return record


def feed(inputs, ids, head_size: int):
    """One chunk as the builder's graph inputs: ids, an all-ones mask, positions where the graph takes them,
    an empty KV cache (``inputs``: onnxruntime's input metadata; the cache's last axis, symbolic in the
    graph, is the head size genai_config.json states)."""
    import numpy as np

    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32}
    n, out = len(ids), {}
    for i in inputs:
        dtype = types[i.type]
        if i.name == "input_ids":
            out[i.name] = np.asarray(ids, dtype=dtype)[None, :]
        elif i.name == "attention_mask":
            out[i.name] = np.ones((1, n), dtype=dtype)
        elif i.name == "position_ids":
            out[i.name] = np.arange(n, dtype=dtype)[None, :]
        else:  # past key / value [batch, kv heads, past length 0, head size]
            sizes = {"batch_size": 1, "past_sequence_length": 0, "kv_cache_dim": head_size, "head_size": head_size}
            dims = [d if isinstance(d, int) else sizes[d] for d in i.shape]
            out[i.name] = np.zeros(dims, dtype=dtype)
    return out


def hessians(model, acts: list[str], chunks, head_size: int, threads: int) -> tuple[dict, int]:
    """``XᵀX / n`` of each tensor in ``acts`` (MatMul inputs) over the chunks, float64; and n."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    aug.graph.ClearField("output")
    aug.graph.output.extend(onnx.helper.make_tensor_value_info(a, onnx.TensorProto.FLOAT, None) for a in acts)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    del aug
    h, n = {}, 0
    for c, ids in enumerate(chunks):
        for a, x in zip(acts, sess.run(acts, feed(sess.get_inputs(), ids, head_size))):
            x = x.reshape(-1, x.shape[-1]).astype(np.float64)
            h[a] = h[a] + x.T @ x if a in h else x.T @ x
        n += len(ids)
        print(f"PROGRESS hessians {c + 1} {len(chunks)}", flush=True)
    return {a: m / n for a, m in h.items()}, n


def quantized_node(node, w_kn, hessian, block: int):
    """GPTQ of one MatMul's weight ``w_kn`` [K in, N out] against the Hessian of its input [K, K] as a
    MatMulNBits node (onnxruntime's own packing) and its initializers; and GPTQ's output error over
    round-to-nearest's on the same grid."""
    import numpy as np
    import torch
    from onnxruntime.quantization.neural_compressor.weight_only import make_matmul_weight_only_node

    from converters.gptq import EXTREME, Grid, gptq, output_error, rtn

    grid = Grid(4, block, EXTREME)
    w = torch.from_numpy(np.ascontiguousarray(w_kn.T, dtype=np.float32))
    hess = torch.as_tensor(hessian, dtype=torch.float64)
    q = gptq(w, hess, grid, damp=DAMP, act_order=ACT_ORDER)
    ratio = output_error(w, q.dequantize(), hess) / max(output_error(w, rtn(w, grid).dequantize(), hess), 1e-30)
    codes = (q.codes.to(torch.int16) + 8).to(torch.uint8).numpy().reshape(-1, block)
    new, extra = make_matmul_weight_only_node(node, w_kn.shape, 4, block, w_kn.shape[0] // block, codes,
                                              q.scales.numpy().astype(np.float32).reshape(-1), None, ACCURACY_LEVEL)
    return new, extra, ratio


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m converters.onnx.gptq")
    ap.add_argument("reference", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--calib", type=Path, required=True, help="calibration chunks of token ids, [chunks, ctx] (.npy)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)

    import statistics

    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load(str(args.reference / MODEL))
    inits = {t.name: t for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits
             and len(inits[n.input[1]].dims) == 2]
    bad = sorted({inits[n.input[1]].dims[0] for n in nodes if inits[n.input[1]].dims[0] % args.block})
    if bad:
        raise SystemExit(f"block {args.block} does not divide the MatMul input width(s) {bad}")
    head_size = json.loads((args.reference / "genai_config.json").read_text())["model"]["decoder"]["head_size"]
    h, tokens = hessians(model, sorted({n.input[0] for n in nodes}), np.load(args.calib), head_size, args.threads)
    torch.set_num_threads(args.threads)
    ratios, new_inits, replaced = [], [], {}
    for i, node in enumerate(nodes):
        new, extra, ratio = quantized_node(node, numpy_helper.to_array(inits[node.input[1]]), h[node.input[0]], args.block)
        replaced[node.name] = new
        new_inits += extra
        ratios.append(ratio)
        print(f"PROGRESS linears {i + 1} {len(nodes)}", flush=True)
    graph = model.graph
    kept = [replaced.get(n.name, n) for n in graph.node]
    graph.ClearField("node")
    graph.node.extend(kept)
    used = {x for n in graph.node for x in n.input}
    remaining = [t for t in graph.initializer if t.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend([*remaining, *new_inits])
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    args.out.mkdir(parents=True, exist_ok=True)
    for f in args.reference.iterdir():
        if f.is_file() and not f.name.startswith(MODEL):
            shutil.copy2(f, args.out / f.name)
    onnx.save_model(model, str(args.out / MODEL), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=MODEL + ".data", size_threshold=1024)
    record = {"grid": "symmetric 4-bit in blocks of input rows, onnxruntime's scale rule (the value of largest "
              "magnitude / -8, as the builder's default), MatMulNBits' default zero point 8", "damp": DAMP, "act_order": ACT_ORDER, "accuracy_level": ACCURACY_LEVEL,
              "hessians": "inputs' Gram matrices of every MatMul in the fp32 graph, onnxruntime, one pass",
              "tokens": tokens, "output_error_vs_rtn": {
                  "linears": len(ratios), "below_rtn": sum(r < 1 for r in ratios),
                  "median_ratio": round(statistics.median(ratios), 4), "max_ratio": round(max(ratios), 4)}}
    (args.out / RECORD).write_text(json.dumps(record))


if __name__ == "__main__":
    _main()
