"""GGUF quantization by llama.cpp's own quantizer (``llama_model_quantize`` via llama-cpp-python)."""

from __future__ import annotations

from pathlib import Path

from converters.gguf_tables import GGUF_TYPES
from device_bench.llama_runtime import _init, last_log
from edge.errors import ConversionError

_BY_NAME = {t.name: t for t in GGUF_TYPES}


def quantize(src: Path, dest: Path, variant: str, *, n_threads: int = 0) -> None:
    """Quantize the GGUF ``src`` into ``dest`` with llama.cpp's ftype for ``variant`` (e.g. q4_k_m)."""
    import llama_cpp

    _init()
    gtype = _BY_NAME[variant]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{gtype.ftype}")
    params.nthread = n_threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params)
    if rc != 0 or not dest.exists():
        dest.unlink(missing_ok=True)
        raise ConversionError(f"llama.cpp failed to quantize {src.name} to {variant} (code {rc}: {last_log()})")
