"""Where edge keeps its files: the results store, caches, the demo checkpoint. All overridable."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    return Path(os.environ.get("EDGE_HOME") or platformdirs.user_data_dir("edge", appauthor=False))


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_CACHE") or platformdirs.user_cache_dir("edge", appauthor=False))


STORE_URL_SCHEMES = ("postgresql://", "postgres://")  # a shared PostgreSQL store; anything else is an SQLite file


def is_store_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(STORE_URL_SCHEMES)


def default_store() -> str | Path:
    """$EDGE_STORE (a postgresql:// URL stays the string it is), else results.sqlite in the user data dir."""
    env = os.environ.get("EDGE_STORE")
    if env:
        return env if is_store_url(env) else Path(env)
    return data_dir() / "results.sqlite"
