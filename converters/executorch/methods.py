"""How 8da8w / 8da4w choose their weights' integers (``?method=``): torchao's scale rules (HQQ scale-only,
export_llm's default; plain affine round-to-nearest) or GPTQ, edge's own on the same symmetric grid
(torchao's GPTQ asserts CUDA), handed to torchao's ``IntxUnpackedToInt8Tensor`` as custom scales so that
the program carries GPTQ's integers exactly.

GPTQ's Hessians are the inputs' Gram matrices of the source checkpoint's linears in transformers (fp32),
over the calibration text, in one pass: every layer sees the float model's inputs, not those of the layers
quantized before it (the reference implementation's sequential pass).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from converters.executorch.quant import linear_shapes
from converters.gptq import BLOCK, Grid, Quantized, gptq, output_error, rtn
from edge.core.progress import NULL, Progress

CALIB_CTX = 512
# measured on the demo model (wiki calibration, pydoc held out): with act order and 10 % damping GPTQ's
# layer errors on text it was not calibrated on fall below round-to-nearest's on layers where the reference
# settings (no act order, 1 %) overfit the calibration text (the MLP down projections)
DAMP = 0.1
ACT_ORDER = True
TIED = "model.embed_tokens.weight"   # the output layer's weight when the checkpoint ties it to the embedding

# GPTQ's inputs and results within a process (a recipe search asks for the same linears many times):
# (checkpoint, text digest, chunks) → Hessians of every linear; (that, name, grid) → integers and scales
_HESSIANS: dict[tuple, dict[str, Any]] = {}
_WEIGHTS: dict[tuple, Quantized] = {}


def hf_module_names(n_layer: int) -> dict[str, str]:
    """transformers module name → ExecuTorch module name, for the weights of the linears and embedding."""
    from converters.executorch.recipe import name_map

    return {hf.removesuffix(".weight"): et.removesuffix(".weight") for hf, et in name_map(n_layer).items()
            if hf.endswith(".weight")}


def grid(q) -> Grid:
    """The integer grid of a ``LinearQuant``."""
    return Grid(q.bits, q.group)


def gptq_weights(ckpt, plan: dict, text, calib_tokens: int, *, threads: int | None = None,
                 progress: Progress = NULL) -> tuple[dict[str, Quantized], dict[str, Any]]:
    """GPTQ's integers and scales for every quantized linear of ``plan`` (ExecuTorch name → LinearQuant),
    from ``text`` (an edge dataset) cut to ``calib_tokens`` tokens; and the record a manifest keeps
    (the method, its calibration, wall time, peak RSS, and its output error against round-to-nearest)."""
    import torch

    from edge.measure.activations import collect
    from edge.measure.procmem import peak_rss, reset_peak_rss
    from edge.measure.tokens import token_stream

    t0 = time.perf_counter()
    per_run = reset_peak_rss()
    chunks = max(1, calib_tokens // CALIB_CTX)
    names = hf_module_names(ckpt.hparams.n_layer)
    base = (str(ckpt.path), text.sha256, chunks)
    if base not in _HESSIANS:
        stream = token_stream(ckpt.path, text.text)
        linears = set(linear_shapes(ckpt.hparams))
        label = f"GPTQ: Hessians from {text.name}"
        progress.start(label, total=min(chunks, len(stream.ids) // CALIB_CTX))
        if threads:
            torch.set_num_threads(threads)
        stats = collect(ckpt.path, stream.ids, stream.bos,
                        lambda model: {n: names[n] for n, _ in model.named_modules() if names.get(n) in linears},
                        statistic="gram", n_ctx=CALIB_CTX, max_chunks=chunks, n_threads=threads, purpose="GPTQ",
                        on_chunk=lambda i, n: progress.update(i, description=f"{label}: chunk {i}/{n}"))
        _HESSIANS.clear()  # one text's at a time: they are the model's size again
        _HESSIANS[base] = {"data": stats.data, "tokens": stats.tokens, "chunks": stats.chunks, "ctx": stats.n_ctx}
    hess = _HESSIANS[base]
    todo = [(hf, et) for hf, et in names.items() if plan.get(et) is not None]
    out: dict[str, Quantized] = {}
    ratios = []
    progress.start("GPTQ: quantizing the linears", total=len(todo))
    for i, (hf, et) in enumerate(todo):
        g = grid(plan[et])
        tensor = hf + ".weight" if ckpt.has(hf + ".weight") or et != "output" else TIED  # tied: the embedding's
        w = torch.from_numpy(ckpt.tensor(tensor).astype("float32", copy=False))
        h = hess["data"][et]
        if (*base, et, g) not in _WEIGHTS:
            _WEIGHTS[(*base, et, g)] = gptq(w, h, g, damp=DAMP, act_order=ACT_ORDER)
        out[et] = _WEIGHTS[(*base, et, g)]
        ratios.append(output_error(w, out[et].dequantize(), h) / max(output_error(w, rtn(w, g).dequantize(), h), 1e-30))
        progress.update(i + 1, description=f"GPTQ: {et}")
    record = {
        "name": "gptq", "grid": "symmetric, torchao's scale rule (max |w| / ((qmax - qmin) / 2)), each group's "
        "scale chosen from the unchanged weights", "damp": DAMP, "block": BLOCK, "act_order": ACT_ORDER,
        "hessians": "inputs' Gram matrices of the source model in transformers fp32, one pass (not layer by layer)",
        "calibration": {"text": text.name, "sha256": text.sha256, "tokens": hess["tokens"], "chunks": hess["chunks"],
                        "ctx": hess["ctx"]},
        "output_error_vs_rtn": {"linears": len(ratios), "below_rtn": sum(r < 1 for r in ratios),
                                "median_ratio": round(statistics.median(ratios), 4) if ratios else None,
                                "max_ratio": round(max(ratios), 4) if ratios else None},
        "seconds": round(time.perf_counter() - t0, 1), "peak_rss_bytes": peak_rss(), "peak_rss_per_run": per_run,
    }
    return out, record
