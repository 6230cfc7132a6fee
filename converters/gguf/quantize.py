"""GGUF quantization by llama.cpp's own quantizer (``llama_model_quantize`` via llama-cpp-python)."""

from __future__ import annotations

from pathlib import Path

from converters.gguf.runtime import init_backend, last_log
from converters.gguf.tables import VARIANTS
from edge.core.errors import ConversionError

_FTYPES = {v.name: v.recipe["ftype"] for v in VARIANTS}


def quantize(src: Path, dest: Path, variant: str, *, n_threads: int = 0) -> None:
    """Quantize the GGUF ``src`` into ``dest`` with llama.cpp's ftype for ``variant`` (e.g. q4_k_m)."""
    import llama_cpp

    init_backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{_FTYPES[variant]}")
    params.nthread = n_threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params)
    if rc != 0 or not dest.exists():
        dest.unlink(missing_ok=True)
        raise ConversionError(f"llama.cpp failed to quantize {src.name} to {variant} (code {rc}: {last_log()})")
