"""What a GGUF file says about itself (gguf-py's reader): parameter count, measured bits per weight,
tensor types, file type, architecture, model shape — for manifests, and for GGUFs made elsewhere."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gguf

from converters.gguf import FAMILY
from converters.gguf.tables import VARIANTS
from edge.core.errors import ArtifactError
from edge.core.manifest import Manifest
from edge.core.versions import tool_versions

_VARIANT_OF_FTYPE = {v.recipe["ftype"]: v.name for v in VARIANTS}


EMBEDDING, OUTPUT = "token_embd.weight", "output.weight"


def per_layer(value) -> int | list[int] | None:
    """A GGUF hyper-parameter that is one number or, as llama.cpp allows, an array of one per layer."""
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return None if value is None else int(value)


def _first_nonzero(value: int | list[int] | None) -> int | None:
    if isinstance(value, list):
        return next((v for v in value if v), None)
    return value or None


def weights_per_token(tensors) -> dict:
    """Tensor bytes read per generated token: every tensor, but only one row of ``token_embd`` where it is
    only gathered (a separate ``output.weight`` exists); without one, token_embd is the output layer, read whole."""
    sizes = {t.name: int(t.n_bytes) for t in tensors}
    total = sum(sizes.values())
    embd = next((t for t in tensors if t.name == EMBEDDING), None)
    if embd is None:
        return {"weight_bytes_per_token": total, "weight_basis": "GGUF tensor bytes (no token_embd)"}
    if OUTPUT not in sizes:
        return {"weight_bytes_per_token": total,
                "weight_basis": "GGUF tensor bytes; token_embd read whole (tied: it is the output layer)"}
    rows = int(embd.shape[-1])  # ne[1]: one row per token id
    return {"weight_bytes_per_token": total - sizes[EMBEDDING] + sizes[EMBEDDING] // max(rows, 1),
            "weight_basis": "GGUF tensor bytes; token_embd one row per token (gathered)"}


def model_shape(field) -> dict:
    """What the roofline needs of the model's shape, from the GGUF's own keys (kv_heads may be per layer)."""
    arch = field("general.architecture")
    n_embd, n_head = field(f"{arch}.embedding_length"), per_layer(field(f"{arch}.attention.head_count"))
    kv_heads = per_layer(field(f"{arch}.attention.head_count_kv"))
    head = _first_nonzero(n_head)
    key_length = field(f"{arch}.attention.key_length")
    return {"layers": field(f"{arch}.block_count"), "kv_heads": kv_heads if kv_heads is not None else n_head,
            "head_dim": int(key_length) if key_length else (n_embd // head if n_embd and head else None),
            "hidden": n_embd}


def gguf_facts(path: Path) -> dict:
    """Parameter count, measured bits per weight, tensor-type census, model shape and the weight bytes
    read per token of a GGUF file."""
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise ArtifactError(f"{path}: not a readable GGUF file ({exc})") from None
    n_params = sum(int(t.n_elements) for t in reader.tensors)

    def field(key: str):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    n_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    types = Counter(t.tensor_type.name for t in reader.tensors)
    ftype = field("general.file_type")
    return {
        "name": field("general.name"),
        "parameter_count": n_params,
        "bits_per_weight": 8.0 * n_bytes / max(n_params, 1),
        "tensor_types": dict(sorted(types.items())),
        "file_type": None if ftype is None else int(ftype),
        "gguf_arch": field("general.architecture"),
        "shape": model_shape(field),
        "weights": weights_per_token(reader.tensors),
    }


def foreign_manifest(path: Path, digest: str) -> Manifest:
    """A manifest for a GGUF that another tool made, from the file's own metadata (nothing from its name)."""
    facts = gguf_facts(path)
    ftype = facts["file_type"]
    variant = "unknown"
    if ftype is not None:
        try:
            variant = _VARIANT_OF_FTYPE.get(gguf.LlamaFileType(ftype).name, "unknown")
        except ValueError:
            pass
    return Manifest(
        format=f"gguf:{variant}", family="gguf", variant=variant, artifact=path.name, size_bytes=path.stat().st_size,
        sha256=digest, bits_per_weight=round(facts["bits_per_weight"], 4), parameter_count=facts["parameter_count"],
        source={"name": facts["name"] or "unknown", "path": None, "content_sha256": None},
        tools=tool_versions("gguf"), reference=None,
        details={"derived": "no manifest beside the file; facts read from its GGUF metadata",
                 "tensor_types": facts["tensor_types"]},
        model={**facts["shape"], **facts["weights"], "kv_bytes": FAMILY.kv_bytes})
