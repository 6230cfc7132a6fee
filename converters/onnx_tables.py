"""Data tables for the ONNX converter (onnxruntime-genai's model builder), apart from its logic.

Each variant is the builder's ``--precision`` plus ``--extra_options``; the weights of int8/int4 are
MatMulNBits (weight-only, in blocks), not QDQ activations: plain ``quantize_dynamic`` INT8 raised the
demo model's perplexity from 26.1 to ~44 and is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OnnxVariant:
    variant: str
    precision: str                                  # builder -p
    options: dict[str, str] = field(default_factory=dict)
    blocks: bool = False                            # takes block=<n>
    nominal_bpw: float = 32.0
    description: str = ""


VARIANTS: tuple[OnnxVariant, ...] = (
    OnnxVariant("fp32",       "fp32", {},                                   False, 32.0, "float32 ONNX, GroupQueryAttention with KV cache (the reference)"),
    OnnxVariant("int8",       "int8", {"block_size": "32"},                 True,  8.5,  "MatMulNBits 8-bit weights in blocks (default 32), float activations"),
    OnnxVariant("int4",       "int4", {"block_size": "32"},                 True,  4.5,  "MatMulNBits 4-bit weights in blocks (default 32), RTN"),
    OnnxVariant("int4-mixed", "int4", {"block_size": "32", "algo_config": "k_quant_mixed"}, True, 5.0,
                "4-bit k_quant; lm_head and the most sensitive layers at 8 bits (llama.cpp's mixed strategy)"),
)

BLOCK_SIZES: tuple[int, ...] = (16, 32, 64, 128, 256)

# architectures edge hands to the builder (tested with tiny checkpoints; the builder knows more)
ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
)

# Tied embeddings make the builder share one matrix for embedding and lm_head; with mixed precision
# (k_quant_mixed) or asymmetric weights that builds models onnxruntime cannot load, so edge unties them.
UNTIE_WHEN: tuple[str, ...] = ("algo_config", "is_symmetric")

PARAMS: tuple[str, ...] = ("block",)

REQUIRED_FILES: tuple[str, ...] = ("genai_config.json",)
