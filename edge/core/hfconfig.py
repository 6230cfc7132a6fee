"""The one reader of a Hugging Face ``config.json``: the model's shape and hyper-parameters, for every
family's converter and for the manifest (what the roofline reads later, without the checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.core.errors import ConversionError

# model types whose config class ties the output layer to the embedding when config.json does not say
TIED_BY_DEFAULT: tuple[str, ...] = ("gemma", "gemma2", "gemma3", "gemma3_text")


@dataclass
class Hparams:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    n_vocab: int
    rms_eps: float
    rope_theta: float
    rope: dict[str, Any]
    tied: bool
    rope_dims: int = 0                 # rotary dimensions per head (partial_rotary_factor × head_dim)
    rope_theta_local: float = 0.0      # sliding-window layers' rope base where it differs (Gemma 3)
    no_rope: tuple[int, ...] = ()      # layers that apply no rope (SmolLM3's no_rope_layers: 0 = none)
    n_ctx_orig: int = 0                # the context a scaled rope was trained for (LongRoPE's short factors)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Hparams:
        try:
            n_head = int(cfg["num_attention_heads"])
            n_embd = int(cfg["hidden_size"])
            params = cfg.get("rope_parameters") or {}
            local: dict[str, Any] = {}
            if "full_attention" in params:  # one rope per layer type (Gemma 3 in transformers 5)
                local, params = params.get("sliding_attention") or {}, params["full_attention"]
            rope = {**(cfg.get("rope_scaling") or {}), **params}
            rope_theta = float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
            head_dim = int(cfg.get("head_dim") or n_embd // n_head)
            partial = float(rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0)))
            return cls(
                n_layer=int(cfg["num_hidden_layers"]), n_embd=n_embd, n_ff=int(cfg["intermediate_size"]),
                n_head=n_head, n_head_kv=int(cfg.get("num_key_value_heads") or n_head),
                head_dim=head_dim,
                n_ctx=int(cfg.get("max_position_embeddings", 2048)), n_vocab=int(cfg["vocab_size"]),
                rms_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                rope_theta=rope_theta, rope=rope, tied=bool(cfg.get("tie_word_embeddings", cfg.get("model_type") in TIED_BY_DEFAULT)),
                rope_dims=int(head_dim * partial),
                rope_theta_local=float(local.get("rope_theta", cfg.get("rope_local_base_freq", rope_theta))),
                no_rope=tuple(i for i, use in enumerate(cfg.get("no_rope_layers") or ()) if not use),
                n_ctx_orig=int(rope.get("original_max_position_embeddings") or cfg.get("original_max_position_embeddings")
                               or cfg.get("max_position_embeddings", 2048)))
        except KeyError as exc:
            raise ConversionError(f"config.json lacks {exc.args[0]!r}") from None

    @property
    def rope_type(self) -> str:
        return str(self.rope.get("rope_type") or self.rope.get("type") or "default")

    @property
    def longrope(self) -> bool:
        """Phi-3's LongRoPE ("su" is its first name)."""
        return self.rope_type in ("longrope", "su")

    def shape(self) -> dict[str, int]:
        """What a manifest records of the model's shape: enough to size its KV cache."""
        return {"layers": self.n_layer, "kv_heads": self.n_head_kv, "head_dim": self.head_dim,
                "hidden": self.n_embd, "vocab": self.n_vocab}
