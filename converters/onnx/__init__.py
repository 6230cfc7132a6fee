"""The ONNX family: onnxruntime-genai model folders made by its model builder, onnxruntime-genai as runtime."""

from __future__ import annotations

from converters.onnx.tables import ARCHITECTURES, CANNOT_ARCHITECTURES, VARIANTS
from edge.core.family import Family

FAMILY = Family(
    name="onnx",
    title="ONNX (onnxruntime-genai)",
    noun="an onnxruntime-genai model folder",
    variants=VARIANTS,
    architectures=ARCHITECTURES,
    cannot=CANNOT_ARCHITECTURES,
    tools=("onnxruntime_genai", "onnxruntime", "onnx", "onnx_ir", "transformers", "torch"),
    agent_requirements=("onnxruntime-genai", "onnxruntime", "tokenizers", "numpy"),
    kv_bytes=4,                                   # fp32 KV cache on CPU
    converter="converters.onnx.convert:CONVERTER",
    runtime="converters.onnx.runtime:open_runtime",
    folder_marker="genai_config.json",
    sensitivity="converters.onnx.sensitivity:PLAN",
)
