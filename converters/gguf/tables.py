"""Data tables for the GGUF converter, apart from its logic (one entry a line).

Nominal bits per weight are llama.cpp's figures for the block formats (quantize --help); the
manifest records the bits per weight measured on the written file, which differ for K-quant mixes
and for the 1-D tensors that every type keeps at F32.
"""

from __future__ import annotations

from dataclasses import dataclass

from converters.qat import LR, STEPS
from edge.core.family import Param, Variant, method_param

# the calibration text llama.cpp's quantizer weighs its rounding with (converters.gguf.imatrix)
IMATRIX = Param("imatrix", help="importance matrix from this calibration text: a dataset (pydoc, wiki, c4, code, "
                "...) or a text file; it must not be the text the artifact is then measured on", text=True)
IMATRIX_CHUNKS = Param("imatrix_chunks", int, default="64", help="chunks of 512 tokens of the calibration text used")
TYPES = Param("types", help="tensor-type overrides, llama.cpp's --tensor-type: PATTERN=TYPE;... (a regex searched in "
              "the GGUF tensor names), e.g. attn_v=q8_0;ffn_down=q6_k;blk\\.0\\.=q8_0")
TARGET_KLD = Param("target_kld", float, help="a mixed-precision recipe: the most sensitive blocks kept at `promote` until the "
                   "measured KLD against the source is at most this (edge.recipes)")
TARGET_TEXT = Param("target_text", default="wiki", help="the held-out text the target KLD is measured on", text=True)
PROMOTE = Param("promote", choices=("q8_0", "q6_k", "q5_1", "q5_0", "f16"), default="q8_0", help="the type a recipe keeps a sensitive block at")

# how the weights' integers are chosen, one entry a line: (name, what it is)
METHODS: tuple[tuple[str, str], ...] = (
    ("rtn", "llama.cpp's own quantizer: per-block scales searched to minimise the rounding error, weighted by "
            "the importance matrix when imatrix= is given"),
    ("qat", "quantization-aware training: a copy fine-tuned on calibration text (calib=) with its weights "
            "fake-quantized by llama.cpp's own Q4_0 / Q8_0 block rules, the source model's log-probs as the target; "
            "q4_0 and q8_0 only"),
)
QAT_VARIANTS = ("q4_0", "q8_0")   # the types whose block weights all get a mirrored rule (converters.gguf.qat)
# what a team may ask for that this stack cannot do: (name, why)
CANNOT: tuple[tuple[str, str], ...] = (
    ("gptq", "llama.cpp has no GPTQ quantizer (its importance matrix, imatrix=, is its calibrated method)"),
    ("awq",  "llama.cpp removed its AWQ support"),
    ("fp8",  "llama.cpp has no FP8 tensor type"),
)
METHOD = method_param(METHODS, CANNOT, "rtn")
# the other quantized types: round-to-nearest only
METHOD_RTN = method_param(METHODS[:1], (*CANNOT, ("qat", "QAT mirrors llama.cpp's Q4_0 and Q8_0 block rules only: "
                                                  "use gguf:q4_0 or gguf:q8_0")), "rtn")
CALIB = Param("calib", help="method=qat: the text the copy is fine-tuned on, a dataset name (wiki, code, ...) or a "
              "text file; never the text you evaluate on", text=True)
CALIB_TOKENS = Param("calib_tokens", int, default="32768", help="method=qat: calibration tokens (chunks of 512)")
CALIBRATED = (METHOD_RTN, IMATRIX, IMATRIX_CHUNKS, TYPES, TARGET_KLD, TARGET_TEXT, PROMOTE)
WITH_QAT = (METHOD, *CALIBRATED[1:], CALIB, CALIB_TOKENS, STEPS, LR)
# the ggml tensor types an override may name (llama.cpp's GGML_TYPE_* of the quantizer), one a line
OVERRIDE_TYPES: tuple[str, ...] = (
    "f32", "f16", "bf16",
    "q8_0", "q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1", "q4_0", "q3_k", "q2_k",
    "iq4_xs", "iq4_nl", "iq3_s", "iq3_xxs", "iq2_s", "iq2_xs", "iq2_xxs", "iq1_m", "iq1_s",
)
# i-quants whose block weights llama.cpp refuses to quantize without an importance matrix
NEEDS_IMATRIX = frozenset({"iq3_xxs", "iq2_m", "iq2_s", "iq2_xs", "iq2_xxs", "iq1_m", "iq1_s"})

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
    Variant("iq4_xs",    4.25, True , "4-bit non-linear i-quant, super-blocks of 256", recipe={"ftype": "MOSTLY_IQ4_XS"}),
    Variant("iq4_nl",     4.5, True , "4-bit non-linear i-quant, blocks of 32"    , recipe={"ftype": "MOSTLY_IQ4_NL"}),
    Variant("iq3_m",     3.66, True , "3-bit i-quant mix"                         , recipe={"ftype": "MOSTLY_IQ3_M"}),
    Variant("iq3_s",     3.44, True , "3-bit i-quant"                             , recipe={"ftype": "MOSTLY_IQ3_S"}),
    Variant("iq3_xxs",   3.06, True , "3-bit i-quant; needs ?imatrix="            , recipe={"ftype": "MOSTLY_IQ3_XXS"}),
    Variant("iq2_m",      2.7, True , "2-bit i-quant mix; needs ?imatrix="        , recipe={"ftype": "MOSTLY_IQ2_M"}),
    Variant("iq2_s",      2.5, True , "2-bit i-quant; needs ?imatrix="            , recipe={"ftype": "MOSTLY_IQ2_S"}),
    Variant("iq2_xs",    2.31, True , "2-bit i-quant; needs ?imatrix="            , recipe={"ftype": "MOSTLY_IQ2_XS"}),
    Variant("iq2_xxs",   2.06, True , "2-bit i-quant; needs ?imatrix="            , recipe={"ftype": "MOSTLY_IQ2_XXS"}),
    Variant("iq1_m",     1.75, True , "1-bit i-quant mix; needs ?imatrix="        , recipe={"ftype": "MOSTLY_IQ1_M"}),
    Variant("iq1_s",     1.56, True , "1-bit i-quant; needs ?imatrix="            , recipe={"ftype": "MOSTLY_IQ1_S"}),
)
# every quantized type takes a calibration text; q4_0 and q8_0 also QAT's
VARIANTS = tuple(Variant(v.name, v.nominal_bpw, v.quantized, v.description,
                         (WITH_QAT if v.name in QAT_VARIANTS else CALIBRATED) if v.quantized else v.params, v.recipe)
                 for v in VARIANTS)

# Reference precedence: the most precise unquantized type a conversion writes is the one verified
# against transformers, quantized from, and used as the KL-divergence baseline by `edge bench`.
REFERENCE_PRECEDENCE: tuple[str, ...] = ("f32", "bf16", "f16")
DEFAULT_REFERENCE = "f16"


COMMON_ROPES = ("default", "linear", "yarn", "llama3")


@dataclass(frozen=True)
class ArchSpec:
    hf_architecture: str
    gguf_arch: str        # name of the gguf.MODEL_ARCH member
    permute_qk: bool      # llama.cpp's LLAMA-style archs use interleaved rope: un-permute HF's q/k rows
    norm_shift: float = 0.0                 # Gemma's RMSNorm multiplies by (1 + w): written as w + 1
    ropes: tuple[str, ...] = COMMON_ROPES   # rope scalings the architecture's llama.cpp graph takes


# one entry a line; each architecture's own checks and keys are in converters.gguf.archs
ARCHITECTURES: tuple[ArchSpec, ...] = (
    ArchSpec("LlamaForCausalLM",   "LLAMA",   True),
    ArchSpec("MistralForCausalLM", "LLAMA",   True),
    ArchSpec("Qwen2ForCausalLM",   "QWEN2",   False),
    ArchSpec("Qwen3ForCausalLM",   "QWEN3",   False),
    ArchSpec("SmolLM3ForCausalLM", "SMOLLM3", True),
    ArchSpec("Phi3ForCausalLM",    "PHI3",    False, ropes=("default", "longrope", "su")),
    ArchSpec("Gemma3ForCausalLM",  "GEMMA3",  False, norm_shift=1.0, ropes=("default",)),
)

# llama.cpp's vocabulary loader sets token attributes by words in general.name, and looks those tokens up
# without checking they exist (a load failure, "unordered_map::at"): (the words as a regex, how edge writes
# them instead where the vocabulary lacks those tokens, the tokens llama.cpp looks up)
NAME_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (r"(phi)-?(3)", r"\1_\2", ("</s>", "<unk>", "<s>", "<|endoftext|>")),
)

# Byte-level BPE pre-tokenizers, by the signature of tokenizer.json's "pre_tokenizer", mapped to
# llama.cpp's tokenizer.ggml.pre names. Signatures are built by converters.gguf.vocab.pre_signature.
_LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_GPT4O_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
                r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
                r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")   # o200k (GPT-4o, Phi-4)
_QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

PRE_TOKENIZERS: dict[str, str] = {
    "ByteLevel(prefix=False,regex=True)": "gpt-2",
    "Digits(individual=True)+ByteLevel(prefix=False,regex=True)": "smollm",
    f"Split({_LLAMA3_SPLIT},Isolated)+ByteLevel(prefix=False,regex=False)": "llama-bpe",
    f"Split({_QWEN2_SPLIT},Isolated)+ByteLevel(prefix=False,regex=False)": "qwen2",
    f"Split({_GPT4O_SPLIT},Isolated)+ByteLevel(prefix=False,regex=False)": "gpt-4o",
}
