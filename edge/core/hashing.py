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


def folder_digest(folder: Path) -> tuple[str, int]:
    """sha256 over a folder's files (relative path and content hash, sorted) and their total size."""
    h = hashlib.sha256()
    size = 0
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size += f.stat().st_size
        h.update(f"{f.relative_to(folder).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest(), size
