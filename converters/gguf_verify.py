"""Does an unquantized GGUF reproduce its Hugging Face model? (``converters.verify`` on llama.cpp.)"""

from __future__ import annotations

from pathlib import Path

from converters.verify import Verification, compare, require
from device_bench.llama_runtime import LlamaModel


def verify_gguf(checkpoint: Path, gguf_path: Path, text: str, *, n_greedy: int = 16, n_positions: int = 256,
                min_top1: float = 0.99, n_threads: int | None = None) -> Verification:
    # F32 KV cache: an F16 cache alone can flip near-tied argmaxes of a random tiny model
    with LlamaModel(gguf_path, n_ctx=max(512, n_positions + 8), n_threads=n_threads, f32_kv_cache=True) as llm:
        return compare(checkpoint, llm, text, n_greedy=n_greedy, n_positions=n_positions, min_top1=min_top1)


__all__ = ["Verification", "require", "verify_gguf"]
