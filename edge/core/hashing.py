"""Content hashes: of a file, of a folder's files (the identity of every artifact and checkpoint)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path


def iter_file(path: Path, block: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            yield chunk


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    for chunk in iter_file(path):
        h.update(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    return h.hexdigest()


def folder_digest(folder: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """sha256 over a folder's files (relative path and content hash, sorted) and their total size."""
    h = hashlib.sha256()
    size = 0
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size += f.stat().st_size
        h.update(f"{f.relative_to(folder).as_posix()}\0{sha256_file(f, on_bytes)}\n".encode())
    return h.hexdigest(), size


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def artifact_digest(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """An artifact's identity, as its manifest records it: (sha256, size) of a file, or ``folder_digest``."""
    if path.is_dir():
        return folder_digest(path, on_bytes)
    return sha256_file(path, on_bytes), path.stat().st_size
