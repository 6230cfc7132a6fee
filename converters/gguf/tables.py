"""Data tables for the GGUF converter, apart from its logic (one entry a line).

Nominal bits per weight are llama.cpp's figures for the block formats (quantize --help); the
manifest records the bits per weight measured on the written file, which differ for K-quant mixes
and for the 1-D tensors that every type keeps at F32.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.core.family import Variant

# (variant, nominal bits per weight, quantized, what it is, llama.cpp's ftype: gguf.LlamaFileType / LLAMA_FTYPE_*)
VARIANTS: tuple[Variant, ...] = (
    Variant("f32",       32.0, False, "float32, the exact weights"                , recipe={"ftype": "ALL_F32"}),
    Variant("f16",       16.0, False, "float16 weights, F32 norms"                , recipe={"ftype": "MOSTLY_F16"}),
    Variant("bf16",      16.0, False, "bfloat16 weights, F32 norms"               , recipe={"ftype": "MOSTLY_BF16"}),
    Variant("q8_0",       8.5, True , "8-bit blocks of 32, one f16 scale"         , recipe={"ftype": "MOSTLY_Q8_0"}),
    Variant("q6_k",    6.5625, True , "6-bit K-quant super-blocks of 256"         , recipe={"ftype": "MOSTLY_Q6_K"}),
    Variant("q5_k_m",     5.5, True , "5-bit K-quant, some tensors Q6_K"          , recipe={"ftype": "MOSTLY_Q5_K_M"}),
    Variant("q5_k_s",     5.5, True , "5-bit K-quant, all Q5_K"                   , recipe={"ftype": "MOSTLY_Q5_K_S"}),
    Variant("q5_1",       6.0, True , "5-bit blocks of 32, scale and min"         , recipe={"ftype": "MOSTLY_Q5_1"}),
    Variant("q5_0",       5.5, True , "5-bit blocks of 32, one scale"             , recipe={"ftype": "MOSTLY_Q5_0"}),
    Variant("q4_k_m",     4.5, True , "4-bit K-quant, attn_v/ffn_down partly Q6_K", recipe={"ftype": "MOSTLY_Q4_K_M"}),
    Variant("q4_k_s",     4.5, True , "4-bit K-quant, all Q4_K"                   , recipe={"ftype": "MOSTLY_Q4_K_S"}),
    Variant("q4_1",       5.0, True , "4-bit blocks of 32, scale and min"         , recipe={"ftype": "MOSTLY_Q4_1"}),
    Variant("q4_0",       4.5, True , "4-bit blocks of 32, one scale"             , recipe={"ftype": "MOSTLY_Q4_0"}),
    Variant("q3_k_l",  3.4375, True , "3-bit K-quant, attn_v/ffn_down Q5_K"       , recipe={"ftype": "MOSTLY_Q3_K_L"}),
    Variant("q3_k_m",  3.4375, True , "3-bit K-quant, attn_v/ffn_down Q4_K"       , recipe={"ftype": "MOSTLY_Q3_K_M"}),
    Variant("q3_k_s",  3.4375, True , "3-bit K-quant, all Q3_K"                   , recipe={"ftype": "MOSTLY_Q3_K_S"}),
    Variant("q2_k",     2.625, True , "2-bit K-quant, the smallest that still talks", recipe={"ftype": "MOSTLY_Q2_K"}),
)

# Reference precedence: the most precise unquantized type a conversion writes is the one verified
# against transformers, quantized from, and used as the KL-divergence baseline by `edge bench`.
REFERENCE_PRECEDENCE: tuple[str, ...] = ("f32", "bf16", "f16")
DEFAULT_REFERENCE = "f16"


@dataclass(frozen=True)
class ArchSpec:
    hf_architecture: str
    gguf_arch: str        # name of the gguf.MODEL_ARCH member
    permute_qk: bool      # llama.cpp's LLAMA arch uses interleaved rope: un-permute HF's q/k rows


ARCHITECTURES: tuple[ArchSpec, ...] = (
    ArchSpec("LlamaForCausalLM",   "LLAMA", True),
    ArchSpec("MistralForCausalLM", "LLAMA", True),
    ArchSpec("Qwen2ForCausalLM",   "QWEN2", False),
    ArchSpec("Qwen3ForCausalLM",   "QWEN3", False),
)

# Byte-level BPE pre-tokenizers, by the signature of tokenizer.json's "pre_tokenizer", mapped to
# llama.cpp's tokenizer.ggml.pre names. Signatures are built by converters.gguf.vocab.pre_signature.
_LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

PRE_TOKENIZERS: dict[str, str] = {
    "ByteLevel(prefix=False,regex=True)": "gpt-2",
    "Digits(individual=True)+ByteLevel(prefix=False,regex=True)": "smollm",
    f"Split({_LLAMA3_SPLIT},Isolated)+ByteLevel(prefix=False,regex=False)": "llama-bpe",
    f"Split({_QWEN2_SPLIT},Isolated)+ByteLevel(prefix=False,regex=False)": "qwen2",
}
