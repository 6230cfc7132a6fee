"""Data tables for the ExecuTorch converter, apart from its logic (one entry a line).

Weights go from Hugging Face names to the names of ExecuTorch's Llama-family transformer
(``executorch.examples.models.llama.llama_transformer``), which the ``export_llm`` stack exports
with a KV cache and lowers to XNNPACK. RoPE stays in Hugging Face's rotate-half layout
(``use_hf_rope``), so q/k rows are copied unpermuted.
"""

from __future__ import annotations

from converters.qat import LR, STEPS
from edge.core.family import Param, Variant, method_param

# (Hugging Face name, ExecuTorch name); "{}" is the layer index
WEIGHT_NAMES: tuple[tuple[str, str], ...] = (
    ("model.embed_tokens.weight",                        "tok_embeddings.weight"),
    ("model.norm.weight",                                "norm.weight"),
    ("lm_head.weight",                                   "output.weight"),
    ("model.layers.{}.input_layernorm.weight",           "layers.{}.attention_norm.weight"),
    ("model.layers.{}.post_attention_layernorm.weight",  "layers.{}.ffn_norm.weight"),
    ("model.layers.{}.self_attn.q_proj.weight",          "layers.{}.attention.wq.weight"),
    ("model.layers.{}.self_attn.k_proj.weight",          "layers.{}.attention.wk.weight"),
    ("model.layers.{}.self_attn.v_proj.weight",          "layers.{}.attention.wv.weight"),
    ("model.layers.{}.self_attn.o_proj.weight",          "layers.{}.attention.wo.weight"),
    ("model.layers.{}.self_attn.q_norm.weight",          "layers.{}.attention.q_norm_fn.weight"),
    ("model.layers.{}.self_attn.k_norm.weight",          "layers.{}.attention.k_norm_fn.weight"),
    ("model.layers.{}.self_attn.q_proj.bias",            "layers.{}.attention.wq.bias"),
    ("model.layers.{}.self_attn.k_proj.bias",            "layers.{}.attention.wk.bias"),
    ("model.layers.{}.self_attn.v_proj.bias",            "layers.{}.attention.wv.bias"),
    ("model.layers.{}.mlp.gate_proj.weight",             "layers.{}.feed_forward.w1.weight"),
    ("model.layers.{}.mlp.down_proj.weight",             "layers.{}.feed_forward.w2.weight"),
    ("model.layers.{}.mlp.up_proj.weight",               "layers.{}.feed_forward.w3.weight"),
)

# fused Hugging Face weights (Phi-3) cut into ExecuTorch's, one entry a line: (Hugging Face name, the ExecuTorch
# weights its rows are, in order, each with its row count: "q" heads × head_dim, "kv" kv heads × head_dim, "ff" n_ff)
FUSED_WEIGHTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("model.layers.{}.self_attn.qkv_proj.weight", (("layers.{}.attention.wq.weight", "q"),
                                                   ("layers.{}.attention.wk.weight", "kv"),
                                                   ("layers.{}.attention.wv.weight", "kv"))),
    ("model.layers.{}.mlp.gate_up_proj.weight",   (("layers.{}.feed_forward.w1.weight", "ff"),
                                                   ("layers.{}.feed_forward.w3.weight", "ff"))),
)

# Hugging Face architectures the export path reproduces (verified against transformers in tests)
ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "MistralForCausalLM",     # a Llama whose sliding window, if any, is at least the program's context
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",       # q/k norms before rope (ModelArgs.use_qk_norm, qk_norm_before_rope)
    "SmolLM3ForCausalLM",     # layers without rope: their rope made the identity (recipe._without_rope)
    "Phi3ForCausalLM",        # fused qkv / gate_up cut apart (FUSED_WEIGHTS), LongRoPE and partial rotary
)
# architectures edge's ExecuTorch path does not take, and why: (architecture, why)
CANNOT_ARCHITECTURES: tuple[tuple[str, str], ...] = (
    ("Gemma3ForCausalLM",  "ExecuTorch 1.5.1's XNNPACK Llama transformer has no rope base per layer type "
                           "(ModelArgs.local_rope_theta is read by its Qualcomm model only), which Gemma 3's "
                           "sliding-window layers need"),
)

# RoPE variants ExecuTorch's HF-layout rope implements
ROPE_TYPES: tuple[str, ...] = ("default", "longrope", "su")
# what ExecuTorch's HF-layout rope computes LongRoPE from (its ModelArgs): params.json key -> rope key
LONGROPE_ARGS: tuple[tuple[str, str], ...] = (
    ("rope_scaling_short_factor",      "short_factor"),
    ("rope_scaling_long_factor",       "long_factor"),
    ("rope_scaling_attention_factor",  "attention_factor"),
)


# the parameters after "?" (validated generically by edge.core.family.Param)
GROUP = Param("group", int, default="auto", help="weight group size; 8da4w: the largest of 128/64/32/16 dividing every "
              "linear, 8da8w: 0 = one scale per output channel")
EMBEDDING = Param("embedding", str, ("8", "4", "float"), default="float; 8 for 8da4w",
                  help="the embedding table's bits (8: one scale per row; 4: groups of 32)", choices_help="(bits)")
OUTPUT = Param("output", str, ("8", "4"), default="8", help="bits of the output layer (lm_head): 8 per channel, or "
               "4 like the other linears, a cliff on small models", choices_help="(bits)")
MAX_SEQ_LEN = Param("max_seq_len", int, default="min(2048, the model's limit)", help="KV-cache positions")
LOGITS = Param("logits", str, ("last", "all"), default="last", help="what forward returns: the last position's or every one's")
TYPES = Param("types", help="per-module overrides: PATTERN=BITS;... (a regex searched in ExecuTorch module names: "
              "layers.N.attention.wq|wk|wv|wo, layers.N.feed_forward.w1|w2|w3, output, tok_embeddings; bits 8, 4 "
              "or float; the first match wins), e.g. layers\\.29\\.=8;feed_forward.w2=8")
TARGET_KLD = Param("target_kld", float, help="a mixed-precision recipe: the most sensitive layers kept at `promote` bits until "
                   "the KLD against the source, measured on the torchao proxy, is at most this (edge.recipes)")
TARGET_TEXT = Param("target_text", default="wiki", help="the held-out text the target KLD is measured on", text=True)
PROMOTE = Param("promote", choices=("8", "float"), default="8", help="what a recipe keeps a sensitive layer at")
RECIPE = (TYPES, TARGET_KLD, TARGET_TEXT, PROMOTE)

# how the linears' integers are chosen (converters.executorch.methods), one entry a line: (name, what it is)
METHODS: tuple[tuple[str, str], ...] = (
    ("hqq",    "HQQ scale-only: each group's scale fitted to its weights, no calibration (export_llm's use_hqq default)"),
    ("affine", "round-to-nearest, scale max |w| / ((qmax - qmin) / 2), no calibration"),
    ("gptq",   "GPTQ on that same grid from calibration text (calib=), edge's own: torchao's asserts CUDA"),
    ("qat",    "quantization-aware training: a copy fine-tuned on calibration text (calib=) with torchao's QATConfig "
               "on the affine grid, the source model's log-probs as the target, then written as affine"),
)
# what a team may ask for that this stack cannot do: (name, why)
CANNOT: tuple[tuple[str, str], ...] = (
    ("awq",         "AWQ needs an activation pre-scale that 8da4w's weight tensor (IntxUnpackedToInt8Tensor) does not take"),
    ("smoothquant", "SmoothQuant needs the same activation pre-scale, which IntxUnpackedToInt8Tensor does not take"),
    ("fp8",         "no FP8 weight kernels on CPU (torchao's float8 targets CUDA, XNNPACK has none)"),
)
METHOD = method_param(METHODS, CANNOT, "hqq")
CALIB = Param("calib", help="the calibration text of method=gptq and method=qat: a dataset name (wiki, code, ...) or a text file; "
              "never the text you evaluate on", text=True)
CALIB_TOKENS = Param("calib_tokens", int, default="32768", help="calibration tokens (chunks of 512)")
METHOD_PARAMS = (METHOD, CALIB, CALIB_TOKENS, STEPS, LR)
UNGROUPED = (EMBEDDING, MAX_SEQ_LEN, LOGITS)
GROUPED = (GROUP, EMBEDDING, MAX_SEQ_LEN, LOGITS, *METHOD_PARAMS, *RECIPE)
INT4 = (GROUP, OUTPUT, EMBEDDING, MAX_SEQ_LEN, LOGITS, *METHOD_PARAMS, *RECIPE)

# recipe: export_llm's quantization.qmode; default_group None: no groups, 0: one scale per output channel, -1: auto;
# bits: the linears of 8da8w and 8da4w are quantized by edge's per-module plan (converters.executorch.quant);
# embedding: the embedding's bits when the request names none
VARIANTS: tuple[Variant, ...] = (
    Variant("fp32",  32.0, False, "float32 program, XNNPACK delegate, KV cache (the reference)",   UNGROUPED, {"qmode": None,    "default_group": None}),
    Variant("int8",   8.0, True,  "int8 weight-only linears, one scale per output channel",         UNGROUPED, {"qmode": "int8",  "default_group": None}),
    Variant("8da8w",  8.0, True,  "int8 weights per channel, int8 dynamic activations (XNNPACK)",   GROUPED,   {"qmode": "8da8w", "default_group": 0, "bits": 8}),
    Variant("8da4w",  4.5, True,  "int4 weights in groups, int8 dynamic activations (XNNPACK); output layer and embedding at 8 bits",
            INT4, {"qmode": "8da4w", "default_group": -1, "bits": 4, "embedding": "8"}),
)

# group sizes tried, largest first, when a 8da4w request names none: the largest dividing every linear
AUTO_GROUPS: tuple[int, ...] = (128, 64, 32, 16)

# embedding quantization: bits -> export_llm's "bits,group" (group 0: one scale per row)
EMBEDDING_QUANT: dict[str, str] = {
    "8": "8,0",
    "4": "4,32",
}

# methods a .pte from this converter must have; the bench refuses programs without them
REQUIRED_METHODS: tuple[str, ...] = ("forward", "get_max_seq_len", "get_vocab_size", "use_kv_cache")

# ExecuTorch ScalarType -> bytes per element (executorch.exir.scalar_type.ScalarType)
ELEMENT_BYTES: dict[str, int] = {
    "BYTE": 1, "CHAR": 1, "SHORT": 2, "INT": 4, "LONG": 8, "HALF": 2, "FLOAT": 4, "DOUBLE": 8, "BOOL": 1,
    "QINT8": 1, "QUINT8": 1, "QINT32": 4, "BFLOAT16": 2, "QUINT4x2": 1, "QUINT2x4": 1, "BITS16": 2,
    "FLOAT8E5M2": 1, "FLOAT8E4M3FN": 1, "FLOAT8E5M2FNUZ": 1, "FLOAT8E4M3FNUZ": 1, "UINT16": 2, "UINT32": 4,
    "UINT64": 8,
}

# the ops that gather embedding rows (their constant inputs are read one row per token)
EMBEDDING_OP = "embedding"   # aten::embedding, quantized_decomposed::embedding_byte / embedding_4bit, ...
