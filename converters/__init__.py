"""Converters: one module per target family (GGUF, ExecuTorch, ONNX).

Each family module exposes ``FAMILY`` (its name in format specs such as ``gguf:q4_k_m``) and
``check(checkpoint, requests)`` (refuse before writing) and
``convert(checkpoint, requests, out_dir, ...) -> list[Manifest]``; ``converters.families`` maps names
to modules lazily so importing edge does not import torch or llama.cpp.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edge.registry import Registry

# family name -> module path, imported on first use
FAMILY_MODULES: Registry[str] = Registry("converter family")
FAMILY_MODULES.register("gguf", "converters.gguf")
FAMILY_MODULES.register("executorch", "converters.executorch")
FAMILY_MODULES.register("onnx", "converters.onnx")


def family_module(family: str) -> ModuleType:
    return importlib.import_module(FAMILY_MODULES.get(family))
