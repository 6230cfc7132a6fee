"""QAT for ExecuTorch (``executorch:8da4w?method=qat``): torchao's ``QATConfig`` prepares the transformers
model from the very configs the program is quantized with (``converters.executorch.quant``: 8da4w / 8da8w
linears by the request's plan, int8 dynamic activations, the embedding's weight-only config), with
torchao's affine scale rule, so the copy learns the grid that ``method=affine`` then writes. The fine-tuned
copy is exported through the normal path with ``method=affine``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from converters.executorch.methods import hf_module_names
from converters.executorch.quant import AFFINE, EMBEDDING, LinearQuant, embedding_config, linear_config
from converters.qat import Settings, chunks_of, distill, load_pair, record, save_copy
from edge.core.progress import NULL, Progress

EMBEDDING_GROUP = {8: 0, 4: 32}   # export_llm's embedding quantization: bits -> group (tables.EMBEDDING_QUANT)


def prepare(model, plan: dict[str, LinearQuant | None], emb_bits: int | None, n_layer: int) -> dict[str, int]:
    """Swap ``model``'s planned linears (and its embedding when ``emb_bits``) for torchao's fake-quantized
    ones; returns how many modules of each kind."""
    import torch
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    names = hf_module_names(n_layer)
    by_quant: dict[LinearQuant, set[str]] = {}
    for fqn, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and plan.get(names.get(fqn, "")) is not None:
            by_quant.setdefault(plan[names[fqn]], set()).add(fqn)
    for q, fqns in by_quant.items():
        quantize_(model, QATConfig(linear_config(q, AFFINE), step="prepare"), filter_fn=lambda m, fqn, fqns=fqns: fqn in fqns)
    out = {q.label(): len(f) for q, f in by_quant.items()}
    if emb_bits:
        quantize_(model, QATConfig(embedding_config(emb_bits, EMBEDDING_GROUP[emb_bits], AFFINE), step="prepare"),
                  filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding))
        out[f"{EMBEDDING} {emb_bits}-bit"] = 1
    return out


def grid_check(model, plan: dict[str, LinearQuant | None], n_layer: int) -> dict[str, Any]:
    """Each fake-quantized linear's weight as it trained (torchao's fake quantizer) against the same weight
    quantized by the config the program is written with (torchao's quantized tensor, dequantized)."""
    import torch
    from torchao.quantization import quantize_
    from torchao.quantization.qat.linear import FakeQuantizedLinear

    names = hf_module_names(n_layer)
    worst, n = 0.0, 0
    with torch.no_grad():
        for fqn, mod in model.named_modules():
            if isinstance(mod, FakeQuantizedLinear) and mod.weight_fake_quantizer is not None:
                fake = mod.weight_fake_quantizer(mod.weight)
                lin = torch.nn.Linear(mod.in_features, mod.out_features, bias=False)
                lin.weight = torch.nn.Parameter(mod.weight.detach().clone(), requires_grad=False)
                quantize_(lin, linear_config(plan[names[fqn]], AFFINE))
                worst = max(worst, float((lin.weight.dequantize().float() - fake).abs().max()))
                n += 1
    return {"linears": n, "max_abs_diff": worst}


def train(ckpt, plan: dict[str, LinearQuant | None], emb_bits: int | None, text, settings: Settings, scratch: Path, *,
          threads: int | None = None, progress: Progress = NULL) -> tuple[Path, dict[str, Any]]:
    """Fine-tune a copy of ``ckpt`` on ``text`` with the program's quantization fake-quantized; returns
    (the copy's checkpoint folder under ``scratch``, the manifest's method record)."""
    from edge.measure.procmem import reset_peak_rss
    from edge.measure.tokens import token_stream

    t0 = time.perf_counter()
    per_run = reset_peak_rss()
    stream = token_stream(ckpt.path, text.text)
    chunks = chunks_of(stream.ids, stream.bos, settings)
    progress.start("QAT: loading the source model twice (student and teacher)")
    student, teacher = load_pair(ckpt.path, threads)
    n_layer = ckpt.hparams.n_layer
    census = prepare(student, plan, emb_bits, n_layer)
    run = distill(lambda ids: student(input_ids=ids).logits, [p for p in student.parameters() if p.requires_grad],
                  teacher, chunks, settings, progress=progress, label="QAT 8da")
    check = grid_check(student, plan, n_layer)
    state = student.state_dict()
    del student, teacher
    dest = save_copy(ckpt, state, Path(tempfile.mkdtemp(dir=scratch)) / ckpt.name)
    return dest, record(settings, text, run, t0, per_run,
                        grid="torchao's QATConfig from the program's own configs (affine scales: max |w| / ((qmax - qmin) / 2)), "
                             "int8 dynamic per-token activations fake-quantized too", fake_quantized=census,
                        grid_check=check)
