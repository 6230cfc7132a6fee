"""The GGUF family: edge's HF → GGUF writer (gguf-py), llama.cpp's quantizer, llama.cpp as runtime."""

from __future__ import annotations

from converters.gguf.tables import ARCHITECTURES, VARIANTS
from edge.core.family import Family

FAMILY = Family(
    name="gguf",
    title="llama.cpp GGUF",
    noun="a GGUF file",
    variants=VARIANTS,
    architectures=tuple(a.hf_architecture for a in ARCHITECTURES),
    tools=("gguf", "llama_cpp_python", "transformers", "torch"),
    agent_requirements=("llama-cpp-python", "numpy"),
    kv_bytes=2,                                   # llama.cpp's default f16 KV cache
    converter="converters.gguf.convert:CONVERTER",
    runtime="converters.gguf.runtime:open_runtime",
    magic=(0, b"GGUF"),
    native="converters.gguf.native:run",
    native_tools=("llama-bench", "llama-perplexity"),
    native_reference="converters.gguf.kld_base:write",
    foreign="converters.gguf.facts:foreign_manifest",
    sensitivity="converters.gguf.sensitivity:PLAN",
)
