"""Roofline for decoding: the bytes a runtime must read from memory per generated token, and what that
means as a bandwidth next to the device's measured one.

bytes/token = weights read per token + KV cache read at the mean position of the tg run.

- Weights: ``Manifest.model["weight_bytes_per_token"]`` where the converter measured it from the artifact
  (every weight tensor, but one row of an embedding table that is only gathered; a table that is also
  the output layer is read whole); else the artifact's size, an upper bound (``weight_basis`` says which).
- KV: Σ over layers of 2 × kv heads × head dim × element size, × (n_gen − 1) / 2. ``kv_heads`` is one
  number or one per layer (llama.cpp allows per-layer arrays). The element size is the runtime's (f16
  for llama.cpp, f32 for onnxruntime-genai and ExecuTorch on CPU).

Everything comes from the manifest; nothing re-reads the artifact. The roofline never raises: a row must
not be lost to it, so what cannot be computed is left None with a basis saying why.
"""

from __future__ import annotations

from typing import Any

from edge.core.manifest import Manifest

UPPER_BOUND = "artifact bytes (upper bound: whole embedding tables and non-weight bytes counted)"


def _count(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def kv_heads_total(model: dict[str, Any]) -> int | None:
    """KV heads summed over layers: ``layers × kv_heads``, or the sum of a per-layer list."""
    heads = model.get("kv_heads")
    if isinstance(heads, (list, tuple)):
        per_layer = [_count(h) for h in heads]
        return None if not per_layer or None in per_layer else sum(per_layer)
    layers, heads = _count(model.get("layers")), _count(heads)
    return None if layers is None or heads is None else layers * heads


def kv_bytes_per_position(model: dict[str, Any] | None) -> int | None:
    """Bytes of K and V one position holds over all layers (None: the shape is unknown)."""
    if not model:
        return None
    heads, head_dim, elem = kv_heads_total(model), _count(model.get("head_dim")), _count(model.get("kv_bytes"))
    return None if None in (heads, head_dim, elem) else 2 * heads * head_dim * elem


def weights_per_token(size_bytes: int, model: dict[str, Any] | None) -> tuple[int, str]:
    measured = _count((model or {}).get("weight_bytes_per_token"))
    if measured:
        return measured, str(model.get("weight_basis") or "weight tensors read per token")
    return size_bytes, UPPER_BOUND


def decode_bytes_per_token(size_bytes: int, model: dict[str, Any] | None, n_gen: int) -> dict[str, Any]:
    weights, basis = weights_per_token(size_bytes, model)
    per_pos = kv_bytes_per_position(model)
    if per_pos is None:
        return {"weight_bytes": weights, "kv_bytes": None, "bytes_per_token": weights,
                "basis": f"{basis}; no KV (model shape unknown)"}
    kv = per_pos * (n_gen - 1) / 2
    return {"weight_bytes": weights, "kv_bytes": kv, "bytes_per_token": weights + kv,
            "basis": f"{basis} + KV at mean position {(n_gen - 1) / 2:g} ({model['kv_bytes']}-byte cache)"}


def roofline(manifest: Manifest, n_gen: int, tg_tps: float | None, membw_gbs: float | None) -> dict[str, Any]:
    try:
        out = decode_bytes_per_token(manifest.size_bytes, manifest.model, n_gen)
        if tg_tps:
            out["decode_gbs"] = out["bytes_per_token"] * tg_tps / 1e9
            if membw_gbs:
                out["pct_of_membw"] = 100 * out["decode_gbs"] / membw_gbs
        return out
    except Exception as exc:  # never lose a measured row to the roofline: say what is unknown instead
        return {"weight_bytes": None, "kv_bytes": None, "bytes_per_token": None,
                "basis": f"not computed: the manifest's model facts are unusable ({type(exc).__name__}: {exc})"}
