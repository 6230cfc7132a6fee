"""Per-module quantization for ExecuTorch programs: torchao's configs built exactly as ``export_llm``'s
quantizer builds them (``Int8DynamicActivationIntxWeightConfig`` for the linears, ``IntxWeightOnlyConfig``
for the embedding, scales chosen by HQQ scale-only, ``LlmConfig.quantization.use_hqq``'s default), applied
module by module through torchao filter functions from a plan: ExecuTorch module name → bits.

The same plan quantizes ExecuTorch's Llama transformer before export (the program) and, for ``edge
sensitivity`` and ``target_kld`` searches, the transformers model in eager torch (the proxy: the same
torchao quantized tensors, computed by torch instead of XNNPACK's kernels).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge.core.errors import EdgeError
from edge.core.overrides import parse

HQQ = "hqq_scale_only"     # export_llm's default (LlmConfig.quantization.use_hqq = True)
AFFINE = "affine"          # round-to-nearest, torchao's symmetric scale rule
FLOAT = "float"


@dataclass(frozen=True)
class LinearQuant:
    bits: int     # 4 or 8: XNNPACK's dynamically quantized linears
    group: int    # 0: one scale per output channel

    def label(self) -> str:
        return f"{self.bits}-bit {'per channel' if not self.group else f'group {self.group}'}"

    def bytes(self, out_features: int, in_features: int) -> int:
        """Storage of the weight: packed integers and one fp32 scale per group (per row when 0)."""
        groups = out_features * (1 if not self.group else in_features // self.group)
        return out_features * in_features * self.bits // 8 + 4 * groups


def parse_types(raw: str | None, fmt: str) -> list[tuple[str, str]]:
    """``PATTERN=BITS;...`` (a regex searched in ExecuTorch module names; bits 8, 4 or float), or
    ``@recipe.txt``, → pairs, refusing a bad entry in one line."""
    return parse(raw, fmt, ("8", "4", FLOAT), "layers\\.0\\.=8")


def linear_plan(shapes: dict[str, tuple[int, int]], base: LinearQuant, output: LinearQuant | None,
                types: Iterable[tuple[str, str]]) -> dict[str, LinearQuant | None]:
    """Each linear (ExecuTorch name → (out, in) features) → its quantization (None: float): the first
    ``types`` entry whose pattern is found in the name decides, else ``output`` for the output layer, else
    ``base``. 8 bits: per output channel (8da8w's); 4 bits: ``base``'s group."""
    types = list(types)
    plan: dict[str, LinearQuant | None] = {}
    for name, (_, n_in) in shapes.items():
        value = next((v for p, v in types if re.search(p, name)), None)
        if value == FLOAT:
            plan[name] = None
        elif value == "8":
            plan[name] = LinearQuant(8, 0)
        elif value == "4":
            plan[name] = LinearQuant(4, base.group if base.bits == 4 else _group_for(n_in))
        else:
            plan[name] = output if name == "output" and output is not None else base
        q = plan[name]
        if q is not None and q.group and n_in % q.group:
            raise EdgeError(f"{name}: group {q.group} does not divide its {n_in} input features")
    return plan


def _group_for(n_in: int) -> int:
    return next((g for g in (128, 64, 32, 16) if n_in % g == 0), 0)


def linear_config(q: LinearQuant, algorithm: str = HQQ):
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    return Int8DynamicActivationIntxWeightConfig(
        weight_dtype=getattr(torch, f"int{q.bits}"),
        weight_granularity=PerAxis(0) if not q.group else PerGroup(q.group),
        intx_choose_qparams_algorithm=algorithm)


def embedding_config(bits: int, group: int, algorithm: str = HQQ):
    """What ``export_llm``'s ``EmbeddingQuantHandler`` quantizes the table with (``embedding_quantize``)."""
    import torch
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import IntxWeightOnlyConfig

    return IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"),
                                granularity=PerAxis(0) if not group else PerGroup(group),
                                intx_choose_qparams_algorithm=algorithm)


def apply(model, plan: dict[str, LinearQuant | None], name_of: Callable[[str], str | None] = lambda f: f, *,
          algorithm: str = HQQ, custom: dict | None = None) -> int:
    """Quantize ``model``'s linears in place by ``plan`` (``name_of``: the model's module name → the
    plan's name, None for a module outside it), their scales chosen by torchao's ``algorithm``, or, for the
    names in ``custom``, given (``converters.gptq.Quantized``: integers and scales); returns how many were
    quantized."""
    import torch
    from torchao.quantization import quantize_

    by_quant: dict[LinearQuant, set[str]] = {}
    given = 0
    with torch.no_grad():
        for fqn, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) and (name := name_of(fqn)) is not None and plan.get(name) is not None:
                if custom and name in custom:
                    mod.weight = torch.nn.Parameter(quantized_tensor(custom[name], plan[name].bits), requires_grad=False)
                    given += 1
                else:
                    by_quant.setdefault(plan[name], set()).add(fqn)
        for q, fqns in by_quant.items():
            quantize_(model, linear_config(q, algorithm), filter_fn=lambda m, fqn, fqns=fqns: fqn in fqns)
    return given + sum(len(f) for f in by_quant.values())


def quantized_tensor(q, bits: int):
    """torchao's 8da4w / 8da8w weight tensor (``IntxUnpackedToInt8Tensor``, int8 dynamic activations)
    holding ``q``'s integers and scales as they are (nothing re-chooses them)."""
    import torch
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import IntxUnpackedToInt8Tensor

    return IntxUnpackedToInt8Tensor.from_hp(
        q.dequantize(), (1, q.group), getattr(torch, f"int{bits}"), activation_quantization="int8_asym_per_token",
        intx_choose_qparams_algorithm=None, custom_scale=q.scales,
        custom_zero_point=torch.zeros_like(q.scales, dtype=torch.int8))


def census(plan: dict[str, LinearQuant | None]) -> dict[str, list[str] | int]:
    """The plan as a manifest records it: how many linears at each quantization, and the names of the
    ones that differ from the most common."""
    counts: dict[str, list[str]] = {}
    for name, q in plan.items():
        counts.setdefault(FLOAT if q is None else q.label(), []).append(name)
    common = max(counts, key=lambda k: len(counts[k]))
    return {k: (len(v) if k == common else v) for k, v in counts.items()}


def linear_shapes(hp) -> dict[str, tuple[int, int]]:
    """ExecuTorch's Llama transformer linears (name → (out, in) features) for ``hp`` (edge's Hparams)."""
    q, kv = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim
    per_layer = {"attention.wq": (q, hp.n_embd), "attention.wk": (kv, hp.n_embd), "attention.wv": (kv, hp.n_embd),
                 "attention.wo": (hp.n_embd, q), "feed_forward.w1": (hp.n_ff, hp.n_embd),
                 "feed_forward.w2": (hp.n_embd, hp.n_ff), "feed_forward.w3": (hp.n_ff, hp.n_embd)}
    out = {f"layers.{i}.{k}": v for i in range(hp.n_layer) for k, v in per_layer.items()}
    out["output"] = (hp.n_vocab, hp.n_embd)
    return out


def embedding_bits(types: Iterable[tuple[str, str]], default: int | None) -> int | None:
    """The embedding table's bits: the first ``types`` entry found in ``tok_embeddings``, else ``default``."""
    value = next((v for p, v in types if re.search(p, EMBEDDING)), None)
    return default if value is None else (None if value == FLOAT else int(value))


EMBEDDING = "tok_embeddings"
