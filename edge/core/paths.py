"""Where edge keeps its files: the results store, caches, the demo checkpoint. All overridable."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    return Path(os.environ.get("EDGE_HOME") or platformdirs.user_data_dir("edge", appauthor=False))


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_CACHE") or platformdirs.user_cache_dir("edge", appauthor=False))


def default_store() -> Path:
    return Path(os.environ.get("EDGE_STORE") or data_dir() / "results.sqlite")
