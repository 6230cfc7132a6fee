"""Hugging Face checkpoint → unquantized GGUF (F32 / F16 / BF16), written with gguf-py.

Tensors stream one at a time from safetensors into the file (``add_tensor_info`` for the plan, then
``write_tensor_data``), so memory stays at one tensor whatever the model size. Names come from
gguf-py's ``TensorNameMap``; the only math is the q/k row un-permutation llama.cpp's LLAMA
architecture needs, Gemma's norm offset and the rope frequency factors (Llama 3, Phi-3's LongRoPE).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from converters.gguf.archs import CHECKS, WRITES
from converters.gguf.tables import ARCHITECTURES, COMMON_ROPES, NAME_RULES, ArchSpec
from converters.gguf.vocab import add_vocab
from edge.core.checkpoint import Checkpoint
from edge.core.hfconfig import Hparams
from edge.core.errors import ConversionError, UnsupportedArchitectureError

SKIP_SUFFIXES = ("rotary_emb.inv_freq",)
OUT_TYPES = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "bf16": gguf.GGMLQuantizationType.BF16}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "bf16": gguf.LlamaFileType.MOSTLY_BF16}


def arch_spec(architecture: str) -> ArchSpec:
    for spec in ARCHITECTURES:
        if spec.hf_architecture == architecture:
            return spec
    supported = ", ".join(s.hf_architecture for s in ARCHITECTURES)
    raise UnsupportedArchitectureError(f"architecture {architecture} is not supported for GGUF (supported: {supported})")


def check_config(ckpt: Checkpoint) -> ArchSpec:
    """The checkpoint's architecture, refused in one line when its config is one llama.cpp's graph for it
    would not reproduce (before anything is written)."""
    spec = arch_spec(ckpt.architecture)
    hp = ckpt.hparams
    if hp.rope_type not in spec.ropes:
        raise ConversionError(f"rope scaling {hp.rope_type!r} is not supported for {spec.hf_architecture} "
                              f"(supported: {', '.join(spec.ropes)})")
    if spec.hf_architecture in CHECKS:
        CHECKS[spec.hf_architecture](ckpt.config, hp)
    return spec


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores q/k rows in rotate-half order; llama.cpp's LLAMA rope wants them interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(hp: Hparams) -> np.ndarray:
    """Per-frequency divisors for Llama 3.x long-context rope (the rope_freqs tensor)."""
    r = hp.rope
    factor, low, high = float(r["factor"]), float(r.get("low_freq_factor", 1.0)), float(r.get("high_freq_factor", 4.0))
    old_ctx = float(r.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def safe_name(name: str, vocab: set[str]) -> str:
    """``name``, unless words in it would make llama.cpp's loader look up tokens the vocabulary lacks
    (tables.NAME_RULES): then with those words written apart."""
    for words, instead, needed in NAME_RULES:
        if not set(needed) <= vocab:
            name = re.sub(words, instead, name, flags=re.IGNORECASE)
    return name


def _write_hparams(w: gguf.GGUFWriter, hp: Hparams, spec: ArchSpec, cfg: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """Model metadata; returns extra tensors to write (rope factors)."""
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_rope_dimension_count(hp.rope_dims or hp.head_dim)
    w.add_vocab_size(hp.n_vocab)
    w.add_key_length(hp.head_dim)  # always: llama.cpp's n_embd / n_head default is wrong where head_dim is set
    w.add_value_length(hp.head_dim)
    extra = WRITES[spec.hf_architecture](w, cfg, hp) if spec.hf_architecture in WRITES else []
    kind = hp.rope_type
    if kind == "default" or kind not in COMMON_ROPES:  # an architecture's own scaling is its write's
        pass
    elif kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(hp.rope["factor"]))
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(hp.rope["factor"]))
        w.add_rope_scaling_orig_ctx_len(int(hp.rope.get("original_max_position_embeddings", hp.n_ctx)))
    elif kind == "llama3":
        extra.append((gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(hp)))
    return extra


@dataclass
class _Planned:
    gguf_name: str
    hf_name: str | None
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    data: np.ndarray | None = None  # only for synthesized tensors

    @property
    def nbytes(self) -> int:
        n = int(np.prod(self.shape))
        return n * (4 if self.qtype == gguf.GGMLQuantizationType.F32 else 2)


def _plan(ckpt: Checkpoint, hp: Hparams, spec: ArchSpec, outtype: str,
          extra: list[tuple[str, np.ndarray]]) -> list[_Planned]:
    arch = getattr(gguf.MODEL_ARCH, spec.gguf_arch)
    names = gguf.get_tensor_name_map(arch, hp.n_layer)
    plan: list[_Planned] = []
    for hf_name in ckpt.tensor_names():
        if hf_name.endswith(SKIP_SUFFIXES):
            continue
        if hf_name == "lm_head.weight" and hp.tied:
            continue  # llama.cpp reuses token_embd for the output when output.weight is absent
        new = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ConversionError(f"tensor {hf_name} has no GGUF name for {spec.hf_architecture}")
        shape = ckpt.shape(hf_name)
        qtype = OUT_TYPES[outtype] if len(shape) >= 2 else gguf.GGMLQuantizationType.F32
        plan.append(_Planned(new, hf_name, shape, qtype))
    if not hp.tied and not ckpt.has("lm_head.weight"):
        raise ConversionError("config.json says tie_word_embeddings=false but there is no lm_head.weight")
    for name, data in extra:
        plan.append(_Planned(name, None, data.shape, gguf.GGMLQuantizationType.F32, data))
    return plan


def gguf_names(ckpt: Checkpoint) -> dict[str, str]:
    """Each checkpoint tensor the writer writes → its GGUF name (a tied output layer has none)."""
    return {p.hf_name: p.gguf_name for p in _plan(ckpt, ckpt.hparams, arch_spec(ckpt.architecture), "f32", [])
            if p.hf_name is not None}


def as_written(data: np.ndarray, hf_name: str, hp: Hparams, spec: ArchSpec) -> np.ndarray:
    """A checkpoint tensor in the layout the writer gives it (llama.cpp's q/k rows unpermuted where the
    architecture needs it, Gemma's norms offset)."""
    if spec.norm_shift and hf_name.endswith("norm.weight"):
        return data + np.float32(spec.norm_shift)
    if spec.permute_qk:
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            return unpermute_qk(data, hp.n_head)
        if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            return unpermute_qk(data, hp.n_head_kv)
    return data


def _tensor_data(ckpt: Checkpoint, item: _Planned, hp: Hparams, spec: ArchSpec) -> np.ndarray:
    if item.data is not None:
        return item.data
    data = as_written(ckpt.tensor(item.hf_name), item.hf_name, hp, spec)  # float32
    if item.qtype == gguf.GGMLQuantizationType.F16:
        return data.astype(np.float16)
    if item.qtype == gguf.GGMLQuantizationType.BF16:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16)
    return np.ascontiguousarray(data, dtype=np.float32)


def write_gguf(ckpt: Checkpoint, out_path: Path, outtype: str, *, name: str,
               on_tensor: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Write ``ckpt`` as an unquantized GGUF at ``out_path`` (the caller handles temp names)."""
    spec = check_config(ckpt)
    hp = ckpt.hparams
    arch = getattr(gguf.MODEL_ARCH, spec.gguf_arch)
    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    vocab_info = add_vocab(writer, ckpt.path, hp.n_vocab)
    writer.add_name(safe_name(name, set(vocab_info.pop("vocab"))))
    writer.add_file_type(FILE_TYPES[outtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    extra = _write_hparams(writer, hp, spec, ckpt.config)
    plan = _plan(ckpt, hp, spec, outtype, extra)
    for item in plan:
        writer.add_tensor_info(item.gguf_name, item.shape, np.dtype(np.float32), item.nbytes, raw_dtype=item.qtype)
    writer.write_header_to_file(out_path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i, item in enumerate(plan):
        data = _tensor_data(ckpt, item, hp, spec)
        if data.nbytes != item.nbytes:
            raise ConversionError(f"tensor {item.hf_name}: {data.nbytes} bytes, planned {item.nbytes}")
        writer.write_tensor_data(data)
        if on_tensor:
            on_tensor(i + 1, len(plan), item.gguf_name)
    writer.close()
    return {"architecture": spec.hf_architecture, "gguf_arch": gguf.MODEL_ARCH_NAMES[arch],
            "rope": hp.rope_type, "tied_embeddings": hp.tied, **vocab_info}
