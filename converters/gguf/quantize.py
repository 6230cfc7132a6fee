"""GGUF quantization by llama.cpp's own quantizer (``llama_model_quantize`` via llama-cpp-python)."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any

from converters.gguf.runtime import init_backend, last_log
from converters.gguf.tables import OVERRIDE_TYPES, VARIANTS
from edge.core.errors import ConversionError
from edge.core.overrides import parse

_FTYPES = {v.name: v.recipe["ftype"] for v in VARIANTS}


def parse_types(text: str, where: str) -> list[tuple[str, str]]:
    """``attn_v=q8_0;ffn_down=q6_k`` (or ``@recipe.txt``) -> [(pattern, type)], each refusal one line."""
    return parse(text, where, OVERRIDE_TYPES, "attn_v=q8_0")


def _overrides(types: list[tuple[str, str]]) -> Any:
    import llama_cpp

    arr = (llama_cpp.llama_model_tensor_override * (len(types) + 1))()
    for i, (pattern, typ) in enumerate(types):
        arr[i].pattern = pattern.encode()
        arr[i].type = getattr(llama_cpp, f"GGML_TYPE_{typ.upper()}")
    arr[len(types)].pattern = None
    return arr


def quantize(src: Path, dest: Path, variant: str, *, n_threads: int = 0, imatrix: Any = None,
             types: list[tuple[str, str]] | None = None) -> None:
    """Quantize the GGUF ``src`` into ``dest`` with llama.cpp's ftype for ``variant`` (e.g. q4_k_m),
    weighing the rounding by ``imatrix`` (``converters.gguf.imatrix.Imatrix``) when given; ``types``:
    (pattern, type) overrides, the first pattern found in a tensor's name deciding its type."""
    import llama_cpp

    init_backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{_FTYPES[variant]}")
    params.nthread = n_threads
    if imatrix is not None:
        arr = imatrix.as_c_array()
        params.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    if types:
        tt = _overrides(types)
        params.tt_overrides = ctypes.cast(tt, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params)
    if rc != 0 or not dest.exists():
        dest.unlink(missing_ok=True)
        raise ConversionError(f"llama.cpp failed to quantize {src.name} to {variant} (code {rc}: {last_log()})")
