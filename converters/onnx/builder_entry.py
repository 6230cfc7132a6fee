"""``python -m converters.onnx.builder_entry ARGS``: onnxruntime-genai's model builder, run with the command line
it takes, on a config in the shape its model classes read.

onnxruntime-genai 0.18's Gemma 3 class reads a flat ``rope_parameters`` and ``rope_local_base_freq``;
transformers 5 gives Gemma 3 one rope per layer type (``{"full_attention": ..., "sliding_attention": ...}``).
Its Phi-3 LongRoPE class reads the scaling's kind under transformers 4's key, ``type`` (now ``rope_type``).
The config the builder loads is given that older shape (the same values); nothing else changes.
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


if __name__ == "__main__":
    AutoConfig.from_pretrained = _flat_rope
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__", alter_sys=True)
