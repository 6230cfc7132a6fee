"""The ONNX runner: the shared protocol (``device_bench.protocol``) on onnxruntime-genai (CPU provider,
intra-op threads set through the session-options overlay)."""

from __future__ import annotations

from typing import Any

from device_bench.og_runtime import OgModel
from device_bench.protocol import Emit, measure


def run(job: dict[str, Any], emit: Emit) -> dict[str, Any]:
    cfg = job["config"]
    n_ctx = max(cfg["n_prompt"], cfg["n_gen"], cfg["n_ttft"], cfg["ctx"]) + 1
    return measure(lambda: OgModel(job["artifact"], n_threads=cfg.get("threads"), max_length=max(n_ctx, 2048)),
                   job, emit)
