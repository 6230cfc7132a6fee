"""Native libraries that write to the process's stderr themselves (C++ log lines at import, which Python's
logging and warnings filters cannot reach): their imports run with file descriptor 2 pointed at
/dev/null, unless EDGE_DEBUG is set. A failing import still raises its Python exception."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    if os.environ.get("EDGE_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_quietly(*modules: str) -> None:
    """Import ``modules`` (once; later imports are free) without their native log lines."""
    todo = [m for m in modules if m not in sys.modules]
    if todo:
        with native_stderr_silenced():
            for m in todo:
                importlib.import_module(m)
