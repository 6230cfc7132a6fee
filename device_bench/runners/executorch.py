"""The ExecuTorch runner: the shared protocol (``device_bench.protocol``) on ExecuTorch's Python runtime
(pybindings, XNNPACK delegate, its thread pool set to the requested thread count)."""

from __future__ import annotations

from typing import Any

from device_bench.et_runtime import EtModel
from device_bench.protocol import Emit, measure


def run(job: dict[str, Any], emit: Emit) -> dict[str, Any]:
    cfg = job["config"]
    return measure(lambda: EtModel(job["artifact"], job["tokenizer"], n_threads=cfg.get("threads")), job, emit)
