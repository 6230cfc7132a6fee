"""``edge convert`` as a library call: one checkpoint to many artifacts, each with its manifest."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

from edge.core.checkpoint import Checkpoint
from edge.datasets import load_dataset
from edge.core.errors import OutputError
from edge.core.family import FAMILIES
from edge.core.formats import FormatRequest, parse_formats
from edge.core.fsutil import ensure_writable_dir
from edge.core.manifest import Manifest
from edge.core.progress import NULL, Progress


def default_out_dir(ckpt: Checkpoint) -> Path:
    return Path("artifacts") / ckpt.name


def _estimate_bytes(ckpt: Checkpoint, requests: list[FormatRequest]) -> int:
    """Bytes the requested artifacts need, plus an F16 reference that may be added."""
    n = ckpt.parameter_count
    return int(sum(n * r.info.nominal_bpw / 8 for r in requests) + n * 2)


def convert(checkpoint: str | Path, formats: str | list[str], out: str | Path | None = None, *,
            verify: bool = True, allow_pickle: bool = False, threads: int | None = None,
            progress: Progress = NULL) -> list[Manifest]:
    requests = parse_formats(formats)
    ckpt = Checkpoint.open(checkpoint, allow_pickle=allow_pickle)
    families: dict[str, list[FormatRequest]] = defaultdict(list)
    for r in requests:
        families[r.info.family].append(r)
    modules = {fam: FAMILIES.get(fam).load("converter") for fam in families}
    for fam, module in modules.items():  # refuse unsupported input before writing anything
        module.check(ckpt, families[fam])
    out_dir = ensure_writable_dir(Path(out) if out else default_out_dir(ckpt))
    need, free = _estimate_bytes(ckpt, requests), shutil.disk_usage(out_dir).free
    if need > free:
        raise OutputError(f"not enough disk space in {out_dir}: about {need / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free")
    progress.start("hashing the checkpoint", total=ckpt.total_bytes())
    source = {"name": ckpt.name, "path": str(ckpt.path), "architecture": ckpt.architecture,
              "content_sha256": ckpt.content_hash(on_bytes=lambda n: progress.update(advance=n)),
              "parameter_count": ckpt.parameter_count}
    text = load_dataset(None).text
    manifests: list[Manifest] = []
    for fam, reqs in families.items():
        manifests += modules[fam].convert(ckpt, reqs, out_dir, source=source, text=text, verify=verify,
                                          n_threads=threads, progress=progress)
    return manifests
