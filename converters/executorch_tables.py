"""Data tables for the ExecuTorch converter, apart from its logic (one entry a line).

Weights go from Hugging Face names to the names of ExecuTorch's Llama-family transformer
(``executorch.examples.models.llama.llama_transformer``), which the ``export_llm`` stack exports
with a KV cache and lowers to XNNPACK. RoPE stays in Hugging Face's rotate-half layout
(``use_hf_rope``), so q/k rows are copied unpermuted.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    ("model.layers.{}.self_attn.q_proj.bias",            "layers.{}.attention.wq.bias"),
    ("model.layers.{}.self_attn.k_proj.bias",            "layers.{}.attention.wk.bias"),
    ("model.layers.{}.self_attn.v_proj.bias",            "layers.{}.attention.wv.bias"),
    ("model.layers.{}.mlp.gate_proj.weight",             "layers.{}.feed_forward.w1.weight"),
    ("model.layers.{}.mlp.down_proj.weight",             "layers.{}.feed_forward.w2.weight"),
    ("model.layers.{}.mlp.up_proj.weight",               "layers.{}.feed_forward.w3.weight"),
)

# Hugging Face architectures the export path reproduces (verified against transformers in tests)
ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
)

# RoPE variants ExecuTorch's HF-layout rope implements
ROPE_TYPES: tuple[str, ...] = ("default",)


@dataclass(frozen=True)
class EtQuant:
    variant: str                 # edge's name: executorch:<variant>
    qmode: str | None            # export_llm's quantization.qmode
    default_group: int | None    # None: no groups; 0: one scale per output channel; "auto" handled by the recipe
    nominal_bpw: float
    description: str


QUANTS: tuple[EtQuant, ...] = (
    EtQuant("fp32",  None,    None, 32.0, "float32 program, XNNPACK delegate, KV cache (the reference)"),
    EtQuant("int8",  "int8",  None, 8.0,  "int8 weight-only linears, one scale per output channel"),
    EtQuant("8da8w", "8da8w", 0,    8.0,  "int8 weights per channel, int8 dynamic activations (XNNPACK)"),
    EtQuant("8da4w", "8da4w", -1,   4.5,  "int4 weights in groups, int8 dynamic activations (XNNPACK)"),
)

# group sizes tried, largest first, when a 8da4w request names none: the largest dividing every linear
AUTO_GROUPS: tuple[int, ...] = (128, 64, 32, 16)

# embedding quantization: bits -> export_llm's "bits,group" (group 0: one scale per row)
EMBEDDING_QUANT: dict[str, str] = {
    "8": "8,0",
    "4": "4,32",
}

PARAMS: tuple[str, ...] = ("group", "embedding", "max_seq_len", "logits")

# methods a .pte from this converter must have; the bench refuses programs without them
REQUIRED_METHODS: tuple[str, ...] = ("forward", "get_max_seq_len", "get_vocab_size", "use_kv_cache")
