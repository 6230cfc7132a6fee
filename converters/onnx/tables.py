"""Data tables for the ONNX converter (onnxruntime-genai's model builder), apart from its logic.

Each variant is the builder's ``--precision`` plus ``--extra_options``; the weights of int8/int4 are
MatMulNBits (weight-only, in blocks), not QDQ activations: plain ``quantize_dynamic`` INT8 raised the
demo model's perplexity from 26.1 to ~44 and is not offered.
"""

from __future__ import annotations

from edge.core.family import Param, Variant, method_param


BLOCK_SIZES: tuple[int, ...] = (16, 32, 64, 128, 256)
BLOCK = Param("block", int, tuple(map(str, BLOCK_SIZES)), default="32", help="MatMulNBits block size")
LM_HEAD = Param("lm_head", str, ("4", "8"), default="4", help="bits of the lm_head MatMul (8: the builder's last_matmul "
                "int8; a tied embedding is then its own 4-bit table)", choices_help="(bits)")
TYPES = Param("types", help="per-node overrides: PATTERN=int8|int4|float;... (a regex searched in the builder's node names: "
              "/model/layers.N/attn/qkv_proj/MatMul, .../o_proj/..., /model/layers.N/mlp/gate_proj|up_proj|down_proj/MatMul, "
              "/lm_head/MatMul, /model/embed_tokens/Gather; the first match wins), e.g. layers\\.29/=int8;down_proj=int8")
TARGET_KLD = Param("target_kld", float, help="a mixed-precision recipe: the most sensitive layers kept at `promote` until the "
                   "measured KLD against the source is at most this (edge.recipes)")
TARGET_TEXT = Param("target_text", default="wiki", help="the held-out text the target KLD is measured on", text=True)
PROMOTE = Param("promote", choices=("int8", "float"), default="int8", help="what a recipe keeps a sensitive layer at")

# how the weights' integers are chosen (the builder's algo_config), one entry a line: (name, what it is)
METHODS: tuple[tuple[str, str], ...] = (
    ("default", "the builder's default: onnxruntime's MatMulNBits quantizer, round-to-nearest in blocks"),
    ("rtn",     "the builder's rtn (onnxruntime's port of neural-compressor's RTN), which its docs call coarser than default"),
    ("k_quant", "the builder's k_quant: each block's scale and minimum searched to minimise a weighted rounding error, after llama.cpp's k-quants"),
    ("hqq",     "onnxruntime's HQQ quantizer on the fp32 graph (fitted scales and zero points, no calibration); the builder has none"),
    ("gptq",    "edge's GPTQ (the one ExecuTorch's uses) on the fp32 graph's MatMuls, Hessians from calib= text run through that graph, written as MatMulNBits; onnxruntime's own GPTQ returns round-to-nearest's integers"),
)
# methods run on the fp32 folder instead of the builder: onnxruntime's HQQ quantizer (converters.onnx.ortquant),
# edge's GPTQ (converters.onnx.gptq)
FP32_METHODS: tuple[str, ...] = ("hqq", "gptq")
CALIBRATED: tuple[str, ...] = ("gptq",)   # the methods that take calib=
# what a team may ask for that this stack cannot do here: (name, why)
CANNOT: tuple[tuple[str, str], ...] = (
    ("awq",         "onnxruntime's AWQ (nvidia_awq) needs NVIDIA ModelOpt and CUDA"),
    ("smoothquant", "SmoothQuant is for int8 activations (QDQ), which MatMulNBits weight-only models do not have"),
    ("fp8",         "onnxruntime's FP8 GEMM is CUDA-only"),
)
METHOD = method_param(METHODS, CANNOT, "default")
CALIB = Param("calib", help="method=gptq: the calibration text, a dataset name (wiki, code, ...) or a text file; not the "
              "text you will evaluate on", text=True)
CALIB_TOKENS = Param("calib_tokens", int, default="32768", help="method=gptq: calibration tokens (chunks of 512)")
INT4 = (BLOCK, LM_HEAD, METHOD, CALIB, CALIB_TOKENS, TYPES, TARGET_KLD, TARGET_TEXT, PROMOTE)

# recipe: the builder's --precision and --extra_options
VARIANTS: tuple[Variant, ...] = (
    Variant("fp32",       32.0, False, "float32 ONNX, GroupQueryAttention with KV cache (the reference)",    (),       {"precision": "fp32", "options": {}}),
    Variant("int8",        8.5, True,  "MatMulNBits 8-bit weights in blocks (default 32), float activations", (BLOCK,), {"precision": "int8", "options": {"block_size": "32"}}),
    Variant("int4",        4.5, True,  "MatMulNBits 4-bit weights in blocks (default 32), RTN",              INT4,     {"precision": "int4", "options": {"block_size": "32"}}),
    Variant("int4-mixed",  5.0, True,  "4-bit k_quant; lm_head and the most sensitive layers at 8 bits (llama.cpp's mixed strategy)",
            (BLOCK,), {"precision": "int4", "options": {"block_size": "32", "algo_config": "k_quant_mixed"}}),
)

# architectures edge hands to the builder (tested with tiny checkpoints; the builder knows more)
ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Phi3ForCausalLM",
    "Gemma3ForCausalLM",      # through converters.onnx.builder_entry (the builder reads transformers 4's rope shape)
    "SmolLM3ForCausalLM",     # through converters.onnx.builder_entry (the builder's layers without rope fail)
)
# architectures this stack does not take, and why: (architecture, why)
CANNOT_ARCHITECTURES: tuple[tuple[str, str], ...] = ()

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
