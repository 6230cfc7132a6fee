"""The manifest written beside every artifact (``<artifact>.manifest.json``).

It is the only place downstream code learns what an artifact is: its format, source checkpoint,
size, bits per weight, sha256, reference artifact, tool versions and the model's shape (what the decode
roofline needs). Nothing parses file names. ``edge bench`` reads the source checkpoint (where ``source.path``
says, checked against ``source.content_sha256``) only for the one quality reference every family is compared with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core.errors import ArtifactError
from edge.core.fsutil import write_json_atomic

MANIFEST_SUFFIX = ".manifest.json"
SCHEMA = 1


@dataclass
class Manifest:
    format: str                    # "gguf:q4_k_m"
    family: str                    # "gguf"
    variant: str                   # "q4_k_m"
    artifact: str                  # file name, relative to the manifest's folder
    size_bytes: int
    sha256: str
    bits_per_weight: float         # measured: tensor data bits / parameters
    parameter_count: int
    source: dict[str, Any]         # path, name, content_sha256, architecture
    tools: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    reference: dict[str, Any] | None = None   # artifact/sha256/format of the unquantized baseline; None for itself
    verification: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None       # layers, kv_heads (int or per layer), head_dim, hidden, vocab, kv_bytes,
                                              # weight_bytes_per_token + weight_basis (the roofline's input)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema: int = SCHEMA

    @property
    def is_reference(self) -> bool:
        return self.reference is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def write_manifest(artifact: Path, manifest: Manifest) -> Path:
    path = manifest_path(artifact)
    write_json_atomic(path, manifest.to_json())
    return path


def read_manifest(artifact: Path) -> Manifest | None:
    """The artifact's manifest, or None when it has none (a GGUF made by another tool)."""
    path = manifest_path(artifact)
    if not path.exists():
        return None
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt manifest ({exc})") from None


@dataclass
class Artifact:
    """An artifact on disk and what its manifest says it is (what ``edge convert`` returns and ``edge bench`` opens)."""

    path: Path
    manifest: Manifest

    @property
    def family(self) -> str:
        return self.manifest.family

    @property
    def format(self) -> str:
        return self.manifest.format

    @property
    def model(self) -> str:
        return str(self.manifest.source.get("name") or "unknown")

    @property
    def tokenizer_path(self) -> Path | None:
        """The tokenizer file shipped beside the artifact (ExecuTorch programs carry none inside)."""
        tok = self.manifest.details.get("tokenizer_file")
        return None if not tok else self.path.parent / tok["file"]

    @property
    def reference_path(self) -> Path | None:
        ref = self.manifest.reference
        return None if ref is None else self.path.parent / ref["artifact"]
