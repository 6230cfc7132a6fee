"""Roofline for decoding: the bytes a runtime must read from memory per generated token, and what that
means as a bandwidth next to the device's measured one.

bytes/token = weights (the artifact's size: every matrix is read once per token; an untied embedding
table is only read one row, so this is an upper bound there) + KV cache read at the mean position of
the tg run (layers × 2 × kv heads × head dim × element size × (n_gen − 1) / 2). Everything comes from
the artifact's manifest (``Manifest.model``: the shape and the runtime's KV element size — f16 for
llama.cpp, f32 for onnxruntime-genai and ExecuTorch on CPU); nothing re-reads the artifact.
"""

from __future__ import annotations

from typing import Any

from edge.core.manifest import Manifest


def decode_bytes_per_token(size_bytes: int, model: dict[str, Any] | None, n_gen: int) -> dict[str, Any]:
    if not model or None in (model.get("layers"), model.get("kv_heads"), model.get("head_dim"), model.get("kv_bytes")):
        return {"weight_bytes": size_bytes, "kv_bytes": None, "bytes_per_token": size_bytes,
                "basis": "weights only (model shape unknown)"}
    per_pos = model["layers"] * 2 * model["kv_heads"] * model["head_dim"] * model["kv_bytes"]
    kv = per_pos * (n_gen - 1) / 2
    return {"weight_bytes": size_bytes, "kv_bytes": kv, "bytes_per_token": size_bytes + kv,
            "basis": f"artifact bytes + KV at mean position {(n_gen - 1) / 2:g} ({model['kv_bytes']}-byte cache)"}


def roofline(manifest: Manifest, n_gen: int, tg_tps: float | None, membw_gbs: float | None) -> dict[str, Any]:
    out = decode_bytes_per_token(manifest.size_bytes, manifest.model, n_gen)
    if tg_tps:
        out["decode_gbs"] = out["bytes_per_token"] * tg_tps / 1e9
        if membw_gbs:
            out["pct_of_membw"] = 100 * out["decode_gbs"] / membw_gbs
    return out
