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


def gguf_facts(path: Path) -> dict:
    """Parameter count, measured bits per weight and tensor-type census of a GGUF file."""
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
    arch, ftype = field("general.architecture"), field("general.file_type")
    n_embd, n_head = field(f"{arch}.embedding_length"), field(f"{arch}.attention.head_count")
    return {
        "name": field("general.name"),
        "parameter_count": n_params,
        "bits_per_weight": 8.0 * n_bytes / max(n_params, 1),
        "tensor_types": dict(sorted(types.items())),
        "file_type": None if ftype is None else int(ftype),
        "gguf_arch": arch,
        "shape": {"layers": field(f"{arch}.block_count"), "kv_heads": field(f"{arch}.attention.head_count_kv") or n_head,
                  "head_dim": field(f"{arch}.attention.key_length") or (n_embd // n_head if n_embd and n_head else None),
                  "hidden": n_embd},
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
        model={**facts["shape"], "kv_bytes": FAMILY.kv_bytes})
