"""What an architecture adds to the metadata every llama.cpp model takes (converters.gguf.writer).

Each architecture's ``check`` refuses, before anything is written, a config.json that llama.cpp's graph
for it would not reproduce (one line, naming what it takes); its ``write`` adds its own keys and returns
the extra tensors it needs. The rules follow llama.cpp's own graphs (``src/models/<arch>.cpp``) and
converter (``convert_hf_to_gguf.py``) at the version llama-cpp-python pins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gguf
import numpy as np

from edge.core.errors import UnsupportedArchitectureError
from edge.core.hfconfig import Hparams

Extra = list[tuple[str, np.ndarray]]
SMOLLM3_NOPE_STEP = 4   # llama.cpp's smollm3 graph skips rope on every 4th layer (its fixed n_no_rope_layer_step)


def _refuse(arch: str, what: str) -> None:
    raise UnsupportedArchitectureError(f"{arch}: {what}")


# ------------------------------------------------------------------------------------------ SmolLM3
def smollm3_check(cfg: dict[str, Any], hp: Hparams) -> None:
    want = tuple(i for i in range(hp.n_layer) if (i + 1) % SMOLLM3_NOPE_STEP == 0)
    if cfg.get("no_rope_layers") is not None and hp.no_rope != want:
        _refuse("SmolLM3ForCausalLM", f"llama.cpp skips rope on every {SMOLLM3_NOPE_STEP}th layer only "
                f"(no_rope_layer_interval=4); this config's layers without rope are {list(hp.no_rope)}")
    if cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        _refuse("SmolLM3ForCausalLM", "llama.cpp's smollm3 graph has no sliding window (use_sliding_window=true)")


# ------------------------------------------------------------------------------------------ Phi-3
def phi3_check(cfg: dict[str, Any], hp: Hparams) -> None:
    if hp.n_head * hp.head_dim != hp.n_embd:
        _refuse("Phi3ForCausalLM", f"llama.cpp's phi3 graph needs heads × head_dim = hidden size "
                f"({hp.n_head} × {hp.head_dim} ≠ {hp.n_embd})")


def _longrope(w: gguf.GGUFWriter, cfg: dict[str, Any], hp: Hparams) -> Extra:
    """Phi-3's LongRoPE as transformers computes it: one frequency divisor per rotary pair for short and
    for long contexts (llama.cpp picks the long ones when the context it is given exceeds the original),
    and cos/sin scaled by the attention factor."""
    r, orig = hp.rope, hp.n_ctx_orig
    factor = float(r.get("factor") or hp.n_ctx / orig)
    attn = r.get("attention_factor")
    if attn is None:
        attn = math.sqrt(1 + math.log(factor) / math.log(orig)) if factor > 1.0 else 1.0
    long_f, short_f = r.get("long_factor"), r.get("short_factor")
    if not long_f or not short_f or len(long_f) != hp.rope_dims // 2 or len(short_f) != hp.rope_dims // 2:
        _refuse("Phi3ForCausalLM", f"longrope needs long_factor and short_factor of {hp.rope_dims // 2} values each")
    w.add_rope_scaling_orig_ctx_len(orig)
    w.add_rope_scaling_attn_factors(float(attn))
    return [(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight", np.asarray(long_f, np.float32)),
            (gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight", np.asarray(short_f, np.float32))]


def phi3_write(w: gguf.GGUFWriter, cfg: dict[str, Any], hp: Hparams) -> Extra:
    # llama.cpp's phi3 graph does not run a sliding window (it warns and turns it off): identical to
    # transformers on contexts within the window, which is where edge measures (512 tokens)
    w.add_sliding_window(int(cfg.get("sliding_window") or 0))
    if hp.longrope:
        return _longrope(w, cfg, hp)
    w.add_rope_scaling_orig_ctx_len(hp.n_ctx_orig)
    return []


# ------------------------------------------------------------------------------------------ Gemma 3
def gemma3_check(cfg: dict[str, Any], hp: Hparams) -> None:
    arch = "Gemma3ForCausalLM"
    scalar = cfg.get("query_pre_attn_scalar")
    if scalar is not None and int(scalar) != hp.head_dim:
        _refuse(arch, f"llama.cpp scales attention by 1/sqrt(head_dim); query_pre_attn_scalar={scalar} "
                f"differs from head_dim={hp.head_dim}")
    if cfg.get("attn_logit_softcapping"):
        _refuse(arch, "attention logit soft-capping (Gemma 2's) is not in llama.cpp's gemma3 graph")
    if cfg.get("use_bidirectional_attention"):
        _refuse(arch, "bidirectional attention (an embedding model) is not a causal LM for llama.cpp")
    act = cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"
    if act != "gelu_pytorch_tanh":
        _refuse(arch, f"activation {act!r} (llama.cpp's gemma3 graph runs gelu_pytorch_tanh)")


def gemma3_layer_types(cfg: dict[str, Any], n_layer: int) -> list[str]:
    """Each layer's attention as transformers builds it: config.json's layer_types, else every
    ``sliding_window_pattern``-th layer global (6 in Gemma 3's first configs)."""
    if cfg.get("layer_types"):
        return list(cfg["layer_types"])
    every = int(cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or 6)
    return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n_layer)]


def gemma3_write(w: gguf.GGUFWriter, cfg: dict[str, Any], hp: Hparams) -> Extra:
    types = gemma3_layer_types(cfg, hp.n_layer)
    if cfg.get("sliding_window") and "sliding_attention" in types:  # llama.cpp asserts a window has a layer
        w.add_sliding_window(int(cfg["sliding_window"]))
        w.add_sliding_window_pattern([t == "sliding_attention" for t in types])
        w.add_rope_freq_base_swa(hp.rope_theta_local)
    if cfg.get("final_logit_softcapping"):
        w.add_final_logit_softcapping(float(cfg["final_logit_softcapping"]))
    return []


# hf architecture -> (check, write); architectures with neither take the common metadata only
CHECKS: dict[str, Callable[[dict[str, Any], Hparams], None]] = {
    "SmolLM3ForCausalLM": smollm3_check,
    "Phi3ForCausalLM":    phi3_check,
    "Gemma3ForCausalLM":  gemma3_check,
}
WRITES: dict[str, Callable[[gguf.GGUFWriter, dict[str, Any], Hparams], Extra]] = {
    "Phi3ForCausalLM":    phi3_write,
    "Gemma3ForCausalLM":  gemma3_write,
}
