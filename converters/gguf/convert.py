"""The GGUF family: HF checkpoint → reference GGUF (verified) → llama.cpp quantizations, with manifests."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import gguf

from converters.gguf.facts import gguf_facts
from converters.gguf.writer import arch_spec, write_gguf
from converters.gguf.quantize import quantize
from converters.gguf.tables import DEFAULT_REFERENCE, REFERENCE_PRECEDENCE
from converters.gguf.runtime import LlamaModel
from edge.measure.verify import Verification, compare, require
from edge.core.checkpoint import Checkpoint
from edge.core.hashing import sha256_file
from edge.core.errors import ArtifactError
from edge.core.formats import FormatRequest
from edge.core.fsutil import atomic_path
from edge.core.manifest import Manifest, write_manifest
from edge.core.progress import NULL, Progress
from edge.core.versions import tool_versions

FAMILY = "gguf"
TOOLS = ("gguf", "llama_cpp_python", "transformers", "torch")


def check(ckpt: Checkpoint, requests: list[FormatRequest] | None = None) -> None:
    """Refuse an unsupported checkpoint before anything is written."""
    arch_spec(ckpt.architecture)


def verify_gguf(checkpoint: Path, gguf_path: Path, text: str, *, n_greedy: int = 16, n_positions: int = 256,
                min_top1: float = 0.99, n_threads: int | None = None) -> Verification:
    """Does an unquantized GGUF reproduce its Hugging Face model? (``edge.measure.verify`` on llama.cpp.)"""
    # F32 KV cache: an F16 cache alone can flip near-tied argmaxes of a random tiny model
    with LlamaModel(gguf_path, n_ctx=max(512, n_positions + 8), n_threads=n_threads, f32_kv_cache=True) as llm:
        return compare(checkpoint, llm, text, n_greedy=n_greedy, n_positions=n_positions, min_top1=min_top1)


def reference_variant(requests: list[FormatRequest]) -> tuple[str, bool]:
    """The unquantized type to write first (and whether the user asked for it)."""
    asked = {r.info.variant for r in requests}
    for variant in REFERENCE_PRECEDENCE:
        if variant in asked:
            return variant, True
    return DEFAULT_REFERENCE, False


def _manifest(path: Path, variant: str, ckpt: Checkpoint, source: dict, reference: dict | None,
              verification: dict | None, details: dict, progress: Progress) -> Manifest:
    size = path.stat().st_size
    progress.start(f"sha256 {path.name}", total=size)
    digest = sha256_file(path, on_bytes=lambda n: progress.update(advance=n))
    facts = gguf_facts(path)
    m = Manifest(
        format=f"gguf:{variant}", family=FAMILY, variant=variant, artifact=path.name, size_bytes=size,
        sha256=digest, bits_per_weight=round(facts["bits_per_weight"], 4), parameter_count=facts["parameter_count"],
        source=source, tools=tool_versions(*TOOLS), reference=reference, verification=verification,
        details={**details, "tensor_types": facts["tensor_types"], "file_type": facts["file_type"]})
    write_manifest(path, m)
    return m


def convert(ckpt: Checkpoint, requests: list[FormatRequest], out_dir: Path, *, source: dict, text: str,
            verify: bool = True, n_threads: int | None = None, progress: Progress = NULL) -> list[Manifest]:
    check(ckpt)
    ref_variant, ref_asked = reference_variant(requests)
    stem = ckpt.name
    ref_path = out_dir / f"{stem}-{ref_variant}.gguf"
    manifests: list[Manifest] = []

    progress.start(f"writing {ref_path.name}", total=len(ckpt.tensor_names()))
    with atomic_path(ref_path) as tmp:
        info = write_gguf(ckpt, tmp, ref_variant, name=stem,
                          on_tensor=lambda i, n, name: progress.update(i, description=f"writing {ref_path.name}: {name}"))
        verification = None
        if verify:
            progress.start(f"verifying {ref_path.name} against transformers")
            result = verify_gguf(ckpt.path, tmp, text, n_threads=n_threads)
            progress.note(f"verified {ref_path.name}: {result.summary()}")
            require(result, ref_path)
            verification = result.to_json()
    if not ref_asked:
        progress.note(f"also wrote {ref_path.name}: the verified reference that quantized types are made from "
                      "and that `edge bench` measures KL divergence against")
    ref = _manifest(ref_path, ref_variant, ckpt, source, None, verification, info, progress)
    manifests.append(ref)
    ref_link = {"artifact": ref.artifact, "sha256": ref.sha256, "format": ref.format}

    for req in requests:
        variant = req.info.variant
        if variant == ref_variant:
            continue
        path = out_dir / f"{stem}-{variant}.gguf"
        progress.start(f"{'quantizing' if req.info.quantized else 'writing'} {path.name}")
        with atomic_path(path) as tmp:
            if req.info.quantized:
                quantize(ref_path, tmp, variant, n_threads=n_threads or os.cpu_count() or 1)
            else:
                write_gguf(ckpt, tmp, variant, name=stem)
        manifests.append(_manifest(path, variant, ckpt, source, ref_link, None, info, progress))
    return manifests


__all__ = ["check", "convert"]


CONVERTER = SimpleNamespace(check=check, convert=convert)  # interim: replaced by the shared convert driver
