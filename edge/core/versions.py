"""Versions of edge and the libraries that made or measured an artifact (recorded for provenance)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["tool_versions", "edge_version"]


def edge_version() -> str:
    try:
        return metadata.version("edge-llm")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def tool_versions(*dists: str) -> dict[str, str]:
    out = {"edge": edge_version()}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out
