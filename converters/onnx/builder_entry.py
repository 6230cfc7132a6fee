"""``python -m converters.onnx.builder_entry ARGS``: onnxruntime-genai's model builder, run with the command line
it takes, on a config in the shape its model classes read.

onnxruntime-genai 0.18's Gemma 3 class reads a flat ``rope_parameters`` and ``rope_local_base_freq``;
transformers 5 gives Gemma 3 one rope per layer type (``{"full_attention": ..., "sliding_attention": ...}``).
Its Phi-3 LongRoPE class reads the scaling's kind under transformers 4's key, ``type`` (now ``rope_type``).
The config the builder loads is given that older shape (the same values).

Its SmolLM3 class turns off rope inside attention for SmolLM3's layers without rope, and the base class
then builds a separate rotary op for them from a ``position_ids`` input the model does not have (a
KeyError). Those layers are built with no rope at all, which is what transformers computes.
"""

from __future__ import annotations

import runpy
from typing import Any

from transformers import AutoConfig

# model types whose per-layer-type rope the builder reads in the flat form: (global layers' key, local layers' key)
PER_LAYER_ROPE: dict[str, tuple[str, str]] = {
    "gemma3_text": ("full_attention", "sliding_attention"),
}

_load = AutoConfig.from_pretrained


def _flat_rope(*args: Any, **kwargs: Any) -> Any:
    cfg = _load(*args, **kwargs)
    keys = PER_LAYER_ROPE.get(getattr(cfg, "model_type", ""))
    rope = getattr(cfg, "rope_parameters", None)
    if keys and isinstance(rope, dict) and keys[0] in rope:
        cfg.rope_local_base_freq = rope[keys[1]]["rope_theta"]
        cfg.rope_parameters = rope = dict(rope[keys[0]])
    if isinstance(rope, dict) and "rope_type" in rope and "type" not in rope:
        rope["type"] = rope["rope_type"]
    return cfg


def _smollm3_without_rope() -> None:
    import onnxruntime_genai.models  # noqa: F401  (puts its folder on sys.path: the builder imports "builders")
    from builders.smollm import SmolLM3Model

    make_attention = SmolLM3Model.make_attention

    def without_rope(self, layer_id, attention, root_input, **kwargs):
        rope = self.attention_attrs["rope"]
        self.attention_attrs["rope"] = rope and bool(self.no_rope_layers[layer_id])
        try:
            make_attention(self, layer_id, attention, root_input, **kwargs)
        finally:
            self.attention_attrs["rope"] = rope

    SmolLM3Model.make_attention = without_rope


if __name__ == "__main__":
    AutoConfig.from_pretrained = _flat_rope
    _smollm3_without_rope()
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__", alter_sys=True)
