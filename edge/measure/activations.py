"""Statistics of the inputs of a transformers model's linear layers over calibration text: what an
importance matrix (the mean of squared inputs per column) and GPTQ (the inputs' Gram matrix, ``XᵀX / n``)
are computed from.

The text is one token stream cut into chunks of ``n_ctx`` tokens whose first token is BOS (llama.cpp's
calibration layout, ``edge.measure.metrics.chunk_tokens``); every token of every chunk counts. The model
runs in fp32 on the source checkpoint. Linears fed the same tensor (q/k/v, gate/up) share one Gram matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.errors import DatasetError

N_CTX = 512

STATISTICS = ("sumsq", "gram")   # per column x_j² (llama-imatrix's), or the whole xᵀx (GPTQ's Hessian)


@dataclass
class InputStats:
    """Per name, the mean over tokens of the chosen statistic (a float64 torch tensor), and its extent."""

    data: dict[str, Any]
    tokens: int
    chunks: int
    n_ctx: int


def collect(checkpoint: Path, tokens: list[int] | Any, bos: int | None, names: Callable[[Any], dict[str, str]], *,
            statistic: str = "sumsq", n_ctx: int = N_CTX, max_chunks: int | None = None,
            n_threads: int | None = None, on_chunk: Callable[[int, int], None] | None = None,
            purpose: str = "calibration") -> InputStats:
    """Run the checkpoint's transformers model over ``tokens`` and gather ``statistic`` of each linear's
    input. ``names(model)``: module name → the name the result is keyed by (the modules to watch).
    ``on_chunk(i, n)`` reports progress; ``purpose`` names what the text is for in a refusal."""
    import torch
    from transformers import AutoModelForCausalLM

    from edge.measure.metrics import chunk_layout, chunk_tokens

    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}")
    tokens = list(tokens)
    n_chunks, _ = chunk_layout(len(tokens), n_ctx, max_chunks)
    if n_chunks < 1:
        raise DatasetError(f"the calibration text has {len(tokens)} tokens: {purpose} needs at least {n_ctx} "
                           f"(one chunk of {n_ctx})")
    if n_threads:
        torch.set_num_threads(n_threads)
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    model.eval()
    mapping = names(model)
    sums: dict[str, Any] = {}
    shared: dict[str, str] = {}      # a name → the name whose input was the same tensor
    counts: dict[str, int] = {}
    seen: dict[int, tuple[str, Any]] = {}  # data pointer of an input in this forward → (the first name fed
                                           # it, the tensor, held so that its memory is not reused meanwhile)

    def hook(name: str):
        def pre(_mod, args):
            x = args[0].detach()
            key = x.data_ptr()
            if statistic == "gram" and key in seen and seen[key][1].shape == x.shape:
                shared[name] = seen[key][0]
                return
            if statistic == "gram":  # only a Gram matrix is shared between linears fed one tensor
                seen[key] = (name, x)
            x = x.reshape(-1, x.shape[-1]).to(torch.float64)
            part = (x * x).sum(0) if statistic == "sumsq" else x.T @ x
            sums[name] = sums[name] + part if name in sums else part
            counts[name] = counts.get(name, 0) + x.shape[0]
        return pre

    handles = [mod.register_forward_pre_hook(hook(mapping[n])) for n, mod in model.named_modules() if n in mapping]
    try:
        with torch.inference_mode():
            for i in range(n_chunks):
                seen.clear()
                model(torch.tensor([chunk_tokens(tokens, i, n_ctx, bos)]), use_cache=False)
                if on_chunk:
                    on_chunk(i + 1, n_chunks)
    finally:
        for h in handles:
            h.remove()
    data = {name: sums[name] / counts[name] for name in sums}
    data.update({name: data[first] for name, first in shared.items()})
    return InputStats(data, n_chunks * n_ctx, n_chunks, n_ctx)
