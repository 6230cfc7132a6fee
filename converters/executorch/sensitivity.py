"""Per-layer sensitivity for ExecuTorch, on a proxy: the checkpoint in eager torch (transformers, float32)
with its linears and embedding quantized by the program's own quantizer — the same torchao configs, the
same per-module plan (converters.executorch.quant) — computed by torch instead of XNNPACK's kernels. An
export takes minutes; a proxy measurement seconds. ``benchmarks/bench_et_proxy.py`` checks the proxy
against real programs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from converters.executorch.methods import gptq_weights, hf_module_names
from converters.executorch.quant import AFFINE, EMBEDDING, FLOAT, HQQ, LinearQuant, apply, embedding_config, linear_shapes
from converters.executorch.tables import CALIB_TOKENS

KINDS = ("attention.wq", "attention.wk", "attention.wv", "attention.wo", "feed_forward.w1", "feed_forward.w2",
         "feed_forward.w3")
EMBEDDING_GROUP = {8: 0, 4: 32}   # export_llm's embedding quantization: bits -> group (converters/executorch/tables)
PROXY = "a proxy: torchao's quantized tensors in eager torch (the program's quantizer and plan, not XNNPACK's kernels)"


def groups(names: list[str], by: str) -> list[tuple[str, str]]:
    """(label, regex) of ExecuTorch's module ``names``: ``layer`` (one block each) or ``tensor`` (each
    block's linears), plus the output layer and the embedding."""
    blocks = sorted({int(m.group(1)) for n in names if (m := re.match(r"layers\.(\d+)\.", n))})
    out = []
    for b in blocks:
        if by == "layer":
            out.append((f"layers.{b}", rf"^layers\.{b}\."))
        else:
            out += [(f"layers.{b}.{k}", rf"^layers\.{b}\.{re.escape(k)}$") for k in KINDS if f"layers.{b}.{k}" in names]
    return out + [(n, rf"^{n}$") for n in ("output", EMBEDDING) if n in names]


def isolate(regex: str) -> list[tuple[str, str]]:
    """Every module outside the group kept float (its own quantization: the variant's base bits)."""
    return [(f"^(?!{regex.lstrip('^')})", FLOAT), (regex, "low")]


def _quantize_embedding(model, bits: int, algorithm: str = HQQ) -> None:
    """The table as the program's embedding op reads it: torchao's integers and scales, dequantized."""
    import torch
    from torchao.quantization import quantize_

    emb = model.get_input_embeddings()
    table = torch.nn.Embedding(*emb.weight.shape)
    table.weight = torch.nn.Parameter(emb.weight.detach().clone())
    with torch.no_grad():
        quantize_(table, embedding_config(bits, EMBEDDING_GROUP[bits], algorithm), lambda m, fqn: isinstance(m, torch.nn.Embedding))
        emb.weight = torch.nn.Parameter(table.weight.dequantize().to(torch.float32), requires_grad=False)


class EtGroups:
    """The family's sensitivity part (``Family.sensitivity``), measured on the proxy."""

    reference_format = None        # the checkpoint itself
    promote_default = "8"
    proxy = PROXY

    def weight_names(self, checkpoint: Path, reference: Path) -> list[str]:
        from edge.core.checkpoint import Checkpoint

        return [*linear_shapes(Checkpoint.open(checkpoint).hparams), EMBEDDING]

    groups = staticmethod(groups)
    isolate = staticmethod(isolate)

    @staticmethod
    def promote(group_regex: str, to: str) -> tuple[str, str]:
        return group_regex.lstrip("^"), to

    @staticmethod
    def already(req, group: str, to: str) -> bool:
        """The output layer or embedding a request already keeps at ``to`` bits (8da4w's defaults)."""
        from converters.executorch.tables import OUTPUT

        if group == "output":
            return req.params.get("output", OUTPUT.default if OUTPUT in req.info.params else "") == to
        if group == EMBEDDING:
            return (req.params.get("embedding") or req.info.spec.recipe.get("embedding", FLOAT)) == to
        return False

    @contextmanager
    def quantized(self, checkpoint: Path, reference: Path, req, types: list[tuple[str, str]] | None,
                  scratch: Path, threads: int | None, texts: dict | None = None) -> Iterator[tuple[object, int]]:
        """(the proxy of the program ``req`` would be, ``types`` ahead of its own plan, and the estimated size
        of its weights); ``req`` None: the float checkpoint."""
        import torch

        from converters.executorch.convert import options
        from converters.executorch.recipe import fused
        from edge.core.errors import EdgeError
        from edge.core.checkpoint import Checkpoint
        from edge.measure.reference import HfRuntime

        if threads:
            torch.set_num_threads(threads)
        ckpt = Checkpoint.open(checkpoint)
        if fused(ckpt):
            raise EdgeError(f"the ExecuTorch proxy quantizes the checkpoint's own linears in transformers, and "
                            f"{ckpt.architecture} fuses qkv and gate_up that ExecuTorch keeps apart: no proxy for it yet")
        hp = ckpt.hparams
        m = HfRuntime(ckpt.path)
        shapes = linear_shapes(hp)
        plan: dict = {n: None for n in shapes}
        emb_bits = None
        if req is not None:
            low = str(req.info.spec.recipe.get("bits") or 8)
            opts = options(req, ckpt, first=[(p, low if v == "low" else v) for p, v in types or []])
            plan, emb_bits = opts.linear_plan or plan, opts.embedding_bits
            custom = None
            if opts.method == "gptq":
                custom, _ = gptq_weights(ckpt, plan, (texts or {})[req.params["calib"]],
                                         int(req.params.get("calib_tokens") or CALIB_TOKENS.default), threads=threads)
            apply(m._model, plan, name_of=hf_module_names(hp.n_layer).get,
                  algorithm=AFFINE if opts.method == "affine" else HQQ, custom=custom)
            if emb_bits:
                _quantize_embedding(m._model, emb_bits, AFFINE if opts.method == "affine" else HQQ)
        with m:
            yield m, estimated_bytes(hp, plan, emb_bits)


def estimated_bytes(hp, plan: dict, emb_bits: int | None) -> int:
    """The program's weights by the plan: the linears (the output layer its own copy), the embedding table,
    the norms in fp32."""
    size = sum(4 * o * i if plan.get(n) is None else plan[n].bytes(o, i) for n, (o, i) in linear_shapes(hp).items())
    n, d = hp.n_vocab, hp.n_embd
    size += 4 * n * d if not emb_bits else LinearQuant(emb_bits, EMBEDDING_GROUP[emb_bits]).bytes(n, d)
    return size + 4 * (2 * hp.n_layer + 1) * d


PLAN = EtGroups()
