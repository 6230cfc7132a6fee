"""Roofline for decoding: the bytes a runtime must read from memory per generated token, and what that
means as a bandwidth next to the device's measured one.

bytes/token = weights (the artifact's size: every matrix is read once per token; an untied embedding
table is only read one row, so this is an upper bound there) + KV cache read at the mean position of
the tg run (layers × 2 × kv heads × head dim × element size × (n_gen − 1) / 2). The KV element size is
the runtime's cache type: f16 for llama.cpp, f32 for onnxruntime-genai and ExecuTorch on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.core.family import FAMILIES



def _gguf_shape(path: Path) -> dict[str, int] | None:
    from gguf import GGUFReader

    fields = GGUFReader(path).fields

    def field(key: str):
        f = fields.get(key)
        return None if f is None else f.contents()

    arch = field("general.architecture")
    n_embd, n_head = field(f"{arch}.embedding_length"), field(f"{arch}.attention.head_count")
    layers, kv = field(f"{arch}.block_count"), field(f"{arch}.attention.head_count_kv") or n_head
    head = field(f"{arch}.attention.key_length") or (n_embd // n_head if n_embd and n_head else None)
    return None if None in (layers, kv, head) else {"layers": layers, "kv_heads": kv, "head_dim": head}


def _onnx_shape(folder: Path) -> dict[str, int] | None:
    d = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]
    return {"layers": d["num_hidden_layers"], "kv_heads": d["num_key_value_heads"], "head_dim": d["head_size"]}


def _config_shape(config: Path) -> dict[str, int] | None:
    if not config.exists():
        return None
    c = json.loads(config.read_text())
    heads = c.get("num_attention_heads")
    head = c.get("head_dim") or (c["hidden_size"] // heads if heads else None)
    return {"layers": c["num_hidden_layers"], "kv_heads": c.get("num_key_value_heads") or heads, "head_dim": head}


def model_shape(family: str, path: Path, source_path: str | None) -> dict[str, int] | None:
    try:
        if family == "gguf":
            return _gguf_shape(path)
        if family == "onnx":
            return _onnx_shape(path)
        return _config_shape(Path(source_path) / "config.json") if source_path else None
    except (OSError, KeyError, ValueError, TypeError, ZeroDivisionError):
        return None


def decode_bytes_per_token(family: str, size_bytes: int, shape: dict[str, int] | None, n_gen: int) -> dict[str, Any]:
    if shape is None:
        return {"weight_bytes": size_bytes, "kv_bytes": None, "bytes_per_token": size_bytes,
                "basis": "weights only (model shape unknown)"}
    kv_bytes = FAMILIES.get(family).kv_bytes
    per_pos = shape["layers"] * 2 * shape["kv_heads"] * shape["head_dim"] * kv_bytes
    kv = per_pos * (n_gen - 1) / 2
    return {"weight_bytes": size_bytes, "kv_bytes": kv, "bytes_per_token": size_bytes + kv,
            "basis": f"artifact bytes + KV at mean position {(n_gen - 1) / 2:g} ({kv_bytes}-byte cache)"}


def roofline(family: str, path: Path, size_bytes: int, source_path: str | None, n_gen: int, tg_tps: float | None,
             membw_gbs: float | None) -> dict[str, Any]:
    out = decode_bytes_per_token(family, size_bytes, model_shape(family, path, source_path), n_gen)
    if tg_tps:
        out["decode_gbs"] = out["bytes_per_token"] * tg_tps / 1e9
        if membw_gbs:
            out["pct_of_membw"] = 100 * out["decode_gbs"] / membw_gbs
    return out
