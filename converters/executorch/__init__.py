"""The ExecuTorch family: ``.pte`` programs with a KV cache on XNNPACK (ExecuTorch's LLM export stack),
ExecuTorch's Python runtime as runtime, ``llama_main`` natively."""

from __future__ import annotations

from converters.executorch.tables import ARCHITECTURES, CANNOT_ARCHITECTURES, VARIANTS
from edge.core.family import Family

FAMILY = Family(
    name="executorch",
    title="ExecuTorch (XNNPACK)",
    noun="an ExecuTorch program",
    variants=VARIANTS,
    architectures=ARCHITECTURES,
    cannot=CANNOT_ARCHITECTURES,
    tools=("executorch", "torchao", "torch", "transformers"),
    agent_requirements=("executorch", "tokenizers", "numpy"),
    kv_bytes=4,                                   # fp32 KV cache on CPU
    converter="converters.executorch.convert:CONVERTER",
    runtime="converters.executorch.runtime:open_runtime",
    magic=(4, b"ET12"),                           # the program flatbuffer's file identifier, bytes 4..8
    native="converters.executorch.native:run",
    native_tools=("llama_main",),
    notes="RoPE unscaled or Phi-3's LongRoPE (no llama3 / linear / yarn scaling)",
    sensitivity="converters.executorch.sensitivity:PLAN",
)
