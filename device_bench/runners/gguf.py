"""The GGUF runner: the shared protocol (``device_bench.protocol``) on llama.cpp.

Runs inside the process being measured (a fresh interpreter per artifact), so the peak resident
memory it reports is that of loading and running this one model.
"""

from __future__ import annotations

from typing import Any

from device_bench.llama_runtime import LlamaModel
from device_bench.protocol import Emit, measure


def run(job: dict[str, Any], emit: Emit) -> dict[str, Any]:
    cfg = job["config"]
    n_ctx = max(cfg["n_prompt"], cfg["n_gen"], cfg["n_ttft"], cfg["ctx"])
    return measure(lambda: LlamaModel(job["artifact"], n_ctx=n_ctx, n_batch=cfg.get("n_batch", 512),
                                      n_threads=cfg.get("threads")), job, emit)
