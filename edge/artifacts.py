"""Opening an artifact for benchmarking: its kind, its manifest (or one derived from the file's own
metadata for a GGUF made elsewhere) and an integrity check against the manifest's sha256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from converters.gguf_tables import GGUF_TYPES
from edge.checkpoint import folder_digest, sha256_file
from edge.errors import ArtifactError
from edge.manifest import Manifest, read_manifest
from edge.progress import NULL, Progress
from edge.versions import tool_versions

GGUF_MAGIC = b"GGUF"
PTE_IDENTIFIER = b"ET12"   # ExecuTorch program flatbuffer file identifier, bytes 4..8
_FTYPE_TO_VARIANT = {t.ftype: t.name for t in GGUF_TYPES}


@dataclass
class Artifact:
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


def sniff_family(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] == GGUF_MAGIC:
        return "gguf"
    if head[4:8] == PTE_IDENTIFIER:
        return "executorch"
    return None


def _manifest_from_gguf(path: Path, digest: str) -> Manifest:
    import gguf

    from converters.gguf import gguf_facts

    facts = gguf_facts(path)
    ftype = facts["file_type"]
    variant = "unknown"
    if ftype is not None:
        try:
            variant = _FTYPE_TO_VARIANT.get(gguf.LlamaFileType(ftype).name, "unknown")
        except ValueError:
            pass
    return Manifest(
        format=f"gguf:{variant}", family="gguf", variant=variant, artifact=path.name, size_bytes=path.stat().st_size,
        sha256=digest, bits_per_weight=round(facts["bits_per_weight"], 4), parameter_count=facts["parameter_count"],
        source={"name": facts["name"] or "unknown", "path": None, "content_sha256": None},
        tools=tool_versions("gguf"), reference=None,
        details={"derived": "no manifest beside the file; facts read from its GGUF metadata",
                 "tensor_types": facts["tensor_types"]})


def _open_folder(p: Path, progress: Progress) -> Artifact:
    """An ONNX artifact is a folder made by onnxruntime-genai's builder, its manifest beside it."""
    if not (p / "genai_config.json").exists():
        raise ArtifactError(f"{p} is a folder without genai_config.json: give an artifact file (model-q4_k_m.gguf, "
                            "model-et-8da4w.pte) or an onnxruntime-genai model folder")
    manifest = read_manifest(p)
    if manifest is None:
        raise ArtifactError(f"{p} has no manifest beside it ({p.name}.manifest.json): edge benches ONNX folders "
                            "that `edge convert` wrote")
    progress.start(f"checking {p.name}")
    digest, size = folder_digest(p)
    if manifest.sha256 != digest or manifest.size_bytes != size:
        raise ArtifactError(f"{p}: sha256 does not match its manifest: a file in the folder is corrupt or was changed")
    return Artifact(p.resolve(), manifest)


def open_artifact(path: str | Path, progress: Progress = NULL) -> Artifact:
    p = Path(path).expanduser()
    if not p.exists():
        raise ArtifactError(f"artifact not found: {p}")
    if p.is_dir():
        return _open_folder(p, progress)
    family = sniff_family(p)
    manifest = read_manifest(p)
    if family is None:
        kind = f" (its manifest says {manifest.format})" if manifest else ""
        raise ArtifactError(f"{p} is neither a GGUF file nor an ExecuTorch program{kind}: no magic bytes of either")
    if family == "executorch" and manifest is None:
        raise ArtifactError(f"{p} has no manifest beside it: edge benches ExecuTorch programs that `edge convert` "
                            "wrote (the manifest names the tokenizer the program needs)")
    if manifest is not None and manifest.family != family:
        raise ArtifactError(f"{p} is a {family} file but its manifest says {manifest.format}")
    size = p.stat().st_size
    progress.start(f"checking {p.name}", total=size)
    digest = sha256_file(p, on_bytes=lambda n: progress.update(advance=n))
    if manifest is None:
        manifest = _manifest_from_gguf(p, digest)
    elif manifest.sha256 != digest or manifest.size_bytes != size:
        raise ArtifactError(f"{p}: sha256 does not match its manifest: the file is corrupt or was changed after conversion")
    art = Artifact(p.resolve(), manifest)
    tok = art.tokenizer_path
    if tok is not None:
        if not tok.exists():
            raise ArtifactError(f"{p.name} needs its tokenizer {tok.name} beside it; it is missing")
        if sha256_file(tok) != manifest.details["tokenizer_file"]["sha256"]:
            raise ArtifactError(f"{tok}: sha256 does not match the manifest of {p.name}")
    return art
