"""Per-runtime runners. Each module has ``run(job, emit) -> dict`` and runs inside the measuring process."""

from __future__ import annotations

RUNNERS = {
    "gguf": "device_bench.runners.gguf",
    "executorch": "device_bench.runners.executorch",
    "onnx": "device_bench.runners.onnx",
}
