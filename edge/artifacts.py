"""Opening an artifact for benchmarking: its family (recognised by magic bytes or folder marker, never by
its name), its manifest (or, where the family allows it, one derived from the file's own metadata for an
artifact made elsewhere) and an integrity check against the manifest's sha256."""

from __future__ import annotations

from pathlib import Path

from edge.core.errors import ArtifactError
from edge.core.family import FAMILIES, family_of
from edge.core.hashing import artifact_digest, sha256_file, tree_size
from edge.core.manifest import Artifact, Manifest, manifest_path, read_manifest
from edge.core.progress import NULL, Progress

__all__ = ["Artifact", "open_artifact"]


def _not_recognised(p: Path, manifest: Manifest | None) -> ArtifactError:
    files = [f.noun for f in FAMILIES.values() if f.magic]
    if p.is_dir():
        folders = [f for f in FAMILIES.values() if f.folder_marker]
        return ArtifactError(f"{p} is a folder without {' or '.join(f.folder_marker for f in folders)}: give an "
                             f"artifact file ({', '.join(files)}) or {' or '.join(f.noun for f in folders)}")
    kind = f" (its manifest says {manifest.format})" if manifest else ""
    return ArtifactError(f"{p} is neither {' nor '.join(files)}{kind}: no magic bytes of any")


def open_artifact(path: str | Path, progress: Progress = NULL) -> Artifact:
    p = Path(path).expanduser()
    if not p.exists():
        raise ArtifactError(f"artifact not found: {p}")
    family = family_of(p)
    manifest = read_manifest(p)
    if family is None:
        raise _not_recognised(p, manifest)
    if manifest is None and family.foreign is None:
        raise ArtifactError(f"{p} has no manifest beside it ({manifest_path(p).name}): edge benches "
                            f"{family.title} artifacts that `edge convert` wrote (the manifest says what they need)")
    if manifest is not None and manifest.family != family.name:
        raise ArtifactError(f"{p} is {family.noun} but its manifest says {manifest.format}")
    progress.start(f"checking {p.name}", total=tree_size(p))
    digest, size = artifact_digest(p, on_bytes=lambda n: progress.update(advance=n))
    if manifest is None:
        manifest = family.load("foreign")(p, digest)
    elif manifest.sha256 != digest or manifest.size_bytes != size:
        raise ArtifactError(f"{p}: sha256 does not match its manifest: the artifact is corrupt or was changed "
                            "after conversion")
    art = Artifact(p.resolve(), manifest)
    tok = art.tokenizer_path
    if tok is not None:
        if not tok.exists():
            raise ArtifactError(f"{p.name} needs its tokenizer {tok.name} beside it; it is missing")
        if sha256_file(tok) != manifest.details["tokenizer_file"]["sha256"]:
            raise ArtifactError(f"{tok}: sha256 does not match the manifest of {p.name}")
    return art
