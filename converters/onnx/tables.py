"""Data tables for the ONNX converter (onnxruntime-genai's model builder), apart from its logic.

Each variant is the builder's ``--precision`` plus ``--extra_options``; the weights of int8/int4 are
MatMulNBits (weight-only, in blocks), not QDQ activations: plain ``quantize_dynamic`` INT8 raised the
demo model's perplexity from 26.1 to ~44 and is not offered.
"""

from __future__ import annotations

from edge.core.family import Param, Variant


BLOCK_SIZES: tuple[int, ...] = (16, 32, 64, 128, 256)
BLOCK = Param("block", int, tuple(map(str, BLOCK_SIZES)), default="32", help="MatMulNBits block size")

# recipe: the builder's --precision and --extra_options
VARIANTS: tuple[Variant, ...] = (
    Variant("fp32",       32.0, False, "float32 ONNX, GroupQueryAttention with KV cache (the reference)",    (),       {"precision": "fp32", "options": {}}),
    Variant("int8",        8.5, True,  "MatMulNBits 8-bit weights in blocks (default 32), float activations", (BLOCK,), {"precision": "int8", "options": {"block_size": "32"}}),
    Variant("int4",        4.5, True,  "MatMulNBits 4-bit weights in blocks (default 32), RTN",              (BLOCK,), {"precision": "int4", "options": {"block_size": "32"}}),
    Variant("int4-mixed",  5.0, True,  "4-bit k_quant; lm_head and the most sensitive layers at 8 bits (llama.cpp's mixed strategy)",
            (BLOCK,), {"precision": "int4", "options": {"block_size": "32", "algo_config": "k_quant_mixed"}}),
)

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

REQUIRED_FILES: tuple[str, ...] = ("genai_config.json",)

# weights read per token (converters.onnx.weights): the graph input holding token ids, the ops that only
# cast, reshape or transpose a tensor (between input_ids or an initializer and the embedding's gather),
# and the gathering ops with the inputs that are its table
TOKEN_INPUT = "input_ids"
PASS_THROUGH: tuple[str, ...] = ("Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose")
GATHER_TABLE_INPUTS: dict[str, tuple[int, ...]] = {
    "Gather": (0,),                          # data, indices
    "GatherBlockQuantized": (0, 2, 3),       # data, indices, scales, zero_points
}
# onnx TensorProto data types stored packed below a byte (INT4, UINT4, FLOAT4E2M1) -> bits per element
PACKED_BITS: dict[int, int] = {22: 4, 21: 4, 23: 4}
