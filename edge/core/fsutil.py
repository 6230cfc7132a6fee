"""Atomic file writes: everything edge produces appears complete under its final name, or not at all."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.core.errors import OutputError


def ensure_writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {path} is not writable")
    return path


def final_name(tmp: Path) -> str:
    """The name an ``atomic_path`` temporary will have once in place (for messages)."""
    name = tmp.name
    return name[1:name.rindex(".partial-")] if name.startswith(".") and ".partial-" in name else name


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final`` (to be written as a file or a folder); move it into place,
    replacing an older ``final``, only if the block succeeds."""
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and final.exists():
            _remove(final)
        os.replace(tmp, final)
    except OSError as exc:
        _remove(tmp)
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"disk full while writing {final}") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OutputError(f"cannot write {final}: {exc.strerror}") from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
