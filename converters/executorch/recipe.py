"""The ExecuTorch recipe: a Hugging Face Llama-family checkpoint → a ``.pte`` program with a KV cache,
lowered to XNNPACK, through ExecuTorch's own LLM export stack (``export_llm``'s ``LlmConfig`` and its
``LLMEdgeManager`` stages), each stage timed and shown as progress.

The checkpoint is rewritten once into what that stack reads (a ``params.json`` and a state dict with
ExecuTorch's weight names, float32) in a scratch folder that is removed afterwards.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.executorch.lowering import lower
from converters.executorch.tables import (ARCHITECTURES, CANNOT_ARCHITECTURES, EMBEDDING_QUANT, FUSED_WEIGHTS,
                                          LONGROPE_ARGS, ROPE_TYPES, WEIGHT_NAMES)
from edge.core.checkpoint import Checkpoint
from edge.core.family import check_architecture
from edge.core.hfconfig import Hparams
from edge.core.errors import ConversionError, UnsupportedArchitectureError
from edge.core.progress import NULL, Progress

# known ExecuTorch failures -> what the user can do (searched in the exception text)
FAILURE_HINTS: tuple[tuple[str, str], ...] = (
    ("Missing out variants", " (an op with no ExecuTorch kernel was left outside the delegate: try without "
                             "embedding= or with another qmode)"),
    ("must be a multiple of group size", " (choose a group that divides the width; see `edge formats`)"),
)

STAGES = ("rewrite weights", "load + quantize", "torch.export", "lower to XNNPACK", "to_executorch", "serialize")


@dataclass(frozen=True)
class EtOptions:
    qmode: str | None
    group_size: int | None          # None: not grouped; 0: per output channel
    embedding_bits: int | None      # None: float embedding
    max_seq_len: int
    full_logits: bool               # forward returns logits for every input token, not only the last
    linear_plan: dict | None = None  # ExecuTorch linear name -> LinearQuant | None (edge's per-module plan)
    method: str = "hqq"             # how the plan's integers are chosen (converters.executorch.methods)
    custom: dict | None = None      # ExecuTorch linear name -> converters.gptq.Quantized, given integers and scales

    @property
    def extended_ops(self) -> bool:
        # XNNPACK has no weight-only int8 linear: with the extended partitioner, the float linears it takes
        # around the int8 dequantization break ExecuTorch's ConvertToLinearPass in to_executorch
        # (pytorch/executorch#10499), so int8 programs lower with the dynamic-quantization partitioner only
        return self.qmode != "int8"

    @property
    def const_prop(self) -> bool:
        # constant propagation would fold int8 weight-only dequantization into float32 weights (a program
        # as large as fp32); without it the int8 weights stay int8 and are widened at run time
        return self.qmode != "int8"

    @property
    def embedding_quantize(self) -> str | None:
        return None if self.embedding_bits is None else EMBEDDING_QUANT[str(self.embedding_bits)]


@dataclass
class ExportProfile:
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    delegation: dict[str, Any] = field(default_factory=dict)
    peak_is_per_export: bool = False    # False: the peak is the converting process's so far

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


def check_supported(ckpt: Checkpoint) -> Hparams:
    check_architecture("ExecuTorch", ckpt.architecture, ARCHITECTURES, CANNOT_ARCHITECTURES)
    hp = ckpt.hparams
    if hp.rope_type not in ROPE_TYPES:
        raise UnsupportedArchitectureError(
            f"{ckpt.name}: RoPE scaling {hp.rope_type!r} is not supported for ExecuTorch (supported: {', '.join(ROPE_TYPES)})")
    return hp


def linear_in_features(hp: Hparams) -> set[int]:
    """Input widths of every linear the quantizer sees (attention, MLP, output)."""
    return {hp.n_embd, hp.n_head * hp.head_dim, hp.n_ff}


def params_json(ckpt: Checkpoint, hp: Hparams) -> dict[str, Any]:
    return {
        "dim": hp.n_embd, "n_layers": hp.n_layer, "n_heads": hp.n_head, "n_kv_heads": hp.n_head_kv,
        "head_dim": hp.head_dim, "hidden_dim": hp.n_ff, "vocab_size": hp.n_vocab, "norm_eps": hp.rms_eps,
        "rope_theta": hp.rope_theta, "use_hf_rope": True,
        "attention_qkv_bias": ckpt.has("model.layers.0.self_attn.q_proj.bias"),
        # Qwen 3: an RMSNorm over each head of q and k, before rope
        **({"use_qk_norm": True, "qk_norm_before_rope": True} if ckpt.has("model.layers.0.self_attn.q_norm.weight") else {}),
        **({"partial_rotary_factor": hp.rope_dims / hp.head_dim} if hp.rope_dims != hp.head_dim else {}),
        **(longrope_args(hp) if hp.longrope else {}),
    }


def longrope_args(hp: Hparams) -> dict[str, Any]:
    """Phi-3's LongRoPE for ExecuTorch's HF-layout rope, which picks the long factors when the program's
    context exceeds the original (so edge caps the program's context there: converters.executorch.convert)."""
    out: dict[str, Any] = {key: hp.rope[rope_key] for key, rope_key in LONGROPE_ARGS if hp.rope.get(rope_key) is not None}
    out["original_max_position_embeddings"] = hp.n_ctx_orig
    # transformers: the factor given, else the model's context over the original one
    factor = hp.rope.get("factor")
    out["max_position_embeddings"] = int(out["original_max_position_embeddings"] * float(factor)) if factor else hp.n_ctx
    return out


def fused(ckpt: Checkpoint) -> bool:
    """Whether the checkpoint fuses projections ExecuTorch keeps apart (Phi-3's qkv, gate_up)."""
    return any(ckpt.has(hf.format(0)) for hf, _ in FUSED_WEIGHTS)


def _split(name: str, data, hp: Hparams) -> list[tuple[str, Any]] | None:
    """A fused weight cut into the ExecuTorch weights its rows are (tables.FUSED_WEIGHTS), or None."""
    rows = {"q": hp.n_head * hp.head_dim, "kv": hp.n_head_kv * hp.head_dim, "ff": hp.n_ff}
    for hf, parts in FUSED_WEIGHTS:
        m = re.fullmatch(re.escape(hf).replace(r"\{\}", r"(\d+)"), name)
        if m:
            sizes = [rows[kind] for _, kind in parts]
            if sum(sizes) != data.shape[0]:
                raise ConversionError(f"{name}: {data.shape[0]} rows, expected {' + '.join(map(str, sizes))}")
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            return [(et.format(m.group(1)), data[a:a + n]) for (et, _), a, n in zip(parts, starts, sizes)]
    return None


def name_map(n_layer: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for hf, et in WEIGHT_NAMES:
        if "{}" in hf:
            out.update({hf.format(i): et.format(i) for i in range(n_layer)})
        else:
            out[hf] = et
    return out


def rewrite_weights(ckpt: Checkpoint, hp: Hparams, path: Path, on_tensor: Callable[[int], None]) -> None:
    import torch

    names = name_map(hp.n_layer)
    state: dict[str, torch.Tensor] = {}
    for i, name in enumerate(ckpt.tensor_names()):
        if name.endswith("rotary_emb.inv_freq"):
            continue
        data = ckpt.tensor(name).astype("float32", copy=False)
        parts = _split(name, data, hp)
        if parts is None and name not in names:
            raise ConversionError(f"{ckpt.name}: tensor {name} has no place in ExecuTorch's Llama transformer")
        for et, part in parts or [(names[name], data)]:
            state[et] = torch.from_numpy(part.copy() if parts else part)
        on_tensor(i + 1)
    if "output.weight" not in state:  # tied embeddings: the output layer is its own copy in the program
        state["output.weight"] = state["tok_embeddings.weight"]
    torch.save(state, path)


def llm_config(weights: Path, params: Path, workdir: Path, opts: EtOptions, metadata: dict[str, Any]):
    from executorch.extension.llm.export.config.llm_config import LlmConfig, ModelType

    cfg = LlmConfig()
    cfg.base.model_class = ModelType.llama3
    cfg.base.checkpoint = str(weights)
    cfg.base.params = str(params)
    cfg.base.metadata = json.dumps(metadata)
    cfg.model.use_kv_cache = True
    cfg.model.use_sdpa_with_kv_cache = True
    cfg.model.enable_dynamic_shape = True
    cfg.export.max_seq_length = opts.max_seq_len
    cfg.export.max_context_length = opts.max_seq_len
    cfg.export.output_dir = str(workdir)
    cfg.debug.generate_full_logits = opts.full_logits
    # qmode is set after construction: LlmConfig's validator does not list 8da8w, which its quantizer implements
    cfg.quantization.qmode = None if opts.linear_plan is not None else opts.qmode
    cfg.quantization.group_size = opts.group_size
    cfg.quantization.embedding_quantize = opts.embedding_quantize
    cfg.quantization.use_hqq = opts.method != "affine"   # the embedding's scales (GPTQ does not do tables)
    cfg.backend.xnnpack.enabled = True
    cfg.backend.xnnpack.extended_ops = opts.extended_ops
    return cfg


@contextmanager
def _quiet_logging() -> Iterator[None]:
    """export_llm's info logs, and the lines its quantizers print ("quantize ('tok_embeddings', ...)"), kept
    out of edge's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _without_rope(model, layers: tuple[int, ...]):
    """Layers that apply no rope (SmolLM3's): their attention's rope made the identity, since ExecuTorch's
    XNNPACK transformer does not read ModelArgs.no_rope_layer_interval."""
    import torch

    class NoRope(torch.nn.Module):
        def forward(self, q, k, freqs_cos, freqs_sin):
            return q, k

    for i in layers:
        model.layers[i].attention.rope = NoRope()
    return model


def _quantize_linears(model, plan: dict, method: str = "hqq", custom: dict | None = None):
    from converters.executorch.quant import AFFINE, HQQ, apply

    n = apply(model, plan, name_of=lambda fqn: fqn if fqn in plan else None,
              algorithm=AFFINE if method == "affine" else HQQ, custom=custom)
    if n != sum(q is not None for q in plan.values()):
        raise ConversionError(f"the quantization plan names {sum(q is not None for q in plan.values())} linears; "
                              f"ExecuTorch's transformer had {n} of them")
    return model


def to_executorch(edge_manager, *, const_prop: bool):
    """``LLMEdgeManager.to_executorch`` with constant propagation made a choice (it folds an int8
    weight-only dequantization back into float32 weights)."""
    from executorch.backends.xnnpack._passes.convert_to_linear import ConvertToLinearPass
    from executorch.exir.capture._config import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    edge_manager.transform([ConvertToLinearPass()])  # leftover linears run as op_linear, not transpose + mm
    return edge_manager.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True, do_quant_fusion_and_const_prop=const_prop,
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False),
        sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass()))


def delegation_census(graph_module) -> dict[str, Any]:
    """How much of the program runs in XNNPACK: delegate calls, and the ops left to ExecuTorch's kernels."""
    from collections import Counter

    outside: Counter[str] = Counter()
    delegates = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(getattr(node.target, "__name__", node.target)).removesuffix(".default")
        if "executorch_call_delegate" in name:
            delegates += 1
        elif name not in ("getitem", "_assert_scalar", "_local_scalar_dense") and not name.startswith("sym_"):
            outside[name.removeprefix("aten.")] += 1
    return {"xnnpack_delegate_calls": delegates, "ops_outside_delegate": sum(outside.values()),
            "outside_by_op": dict(outside.most_common(8))}


def _scratch_dir(near: Path) -> tempfile.TemporaryDirectory:
    # export_llama treats a checkpoint path containing "int8" or "8da4w" as pre-quantized: avoid such paths
    for base in (near, Path(tempfile.gettempdir())):
        d = tempfile.TemporaryDirectory(prefix=".edge-et-", dir=base)
        if "int8" not in d.name and "8da4w" not in d.name:
            return d
        d.cleanup()
    raise ConversionError(f"no scratch folder whose path avoids 'int8'/'8da4w' (export_llama reads those as "
                          f"pre-quantized checkpoints): rename {near}")


def export_pte(ckpt: Checkpoint, opts: EtOptions, out: Path, metadata: dict[str, Any], *,
               progress: Progress = NULL, label: str = "", fast_lowering: bool = True) -> ExportProfile:
    """Export ``ckpt`` to ``out`` (a path the caller renames into place). Raises ConversionError naming
    the stage that failed. ``fast_lowering=False`` lowers as ``export_llm`` does (converters.executorch.lowering)."""
    from edge.core.quiet import import_quietly
    from edge.measure.procmem import peak_rss, reset_peak_rss

    import_quietly("pytorch_tokenizers")  # its C++ registers a regex fallback with a log line at import
    hp = check_supported(ckpt)
    profile = ExportProfile(peak_is_per_export=reset_peak_rss())
    stage = STAGES[0]

    def begin(name: str, total: float | None = None) -> float:
        nonlocal stage
        stage = name
        progress.start(f"{label}: {name}", total=total)
        return time.perf_counter()

    def end(t0: float) -> None:
        profile.seconds[stage] = time.perf_counter() - t0

    with _scratch_dir(out.parent) as scratch, _quiet_logging():
        work = Path(scratch)
        try:
            t0 = begin(STAGES[0], total=len(ckpt.tensor_names()))
            (work / "params.json").write_text(json.dumps(params_json(ckpt, hp)))
            rewrite_weights(ckpt, hp, work / "weights.pth", lambda i: progress.update(i))
            end(t0)

            from executorch.examples.models.llama.export_llama_lib import (
                _get_xnnpack_partitioners,
                _prepare_for_llama_export,
            )

            cfg = llm_config(work / "weights.pth", work / "params.json", work, opts, metadata)
            t0 = begin(STAGES[1])
            manager = _prepare_for_llama_export(cfg)
            if hp.no_rope:
                manager.source_transform([partial(_without_rope, layers=hp.no_rope)])
            if opts.linear_plan is not None:  # the linears, module by module (torchao filter functions)
                manager.source_transform([partial(_quantize_linears, plan=opts.linear_plan, method=opts.method,
                                                 custom=opts.custom)])
            end(t0)
            t0 = begin(STAGES[2])
            manager = manager.export()
            manager.run_canonical_optimizations()
            end(t0)
            t0 = begin(STAGES[3])
            manager = lower(manager.pt2e_quantize(None), _get_xnnpack_partitioners(cfg), fast=fast_lowering)
            profile.delegation = delegation_census(manager.edge_manager.exported_program().graph_module)
            end(t0)
            t0 = begin(STAGES[4])
            program = to_executorch(manager.edge_manager, const_prop=opts.const_prop)
            end(t0)
            t0 = begin(STAGES[5])
            with open(out, "wb") as fh:
                program.write_to_file(fh)
            end(t0)
        except (ConversionError, KeyboardInterrupt, MemoryError, OSError):
            raise
        except Exception as exc:  # ExecuTorch raises many kinds; the user needs the stage and the cause
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = next((h for k, h in FAILURE_HINTS if k in str(exc)), "")
            raise ConversionError(f"ExecuTorch export failed at stage '{stage}': {type(exc).__name__}: {cause}{hint}") from exc
    profile.peak_rss_bytes = peak_rss()
    return profile
