"""Per-runtime runners. Each module has ``run(job, emit) -> dict`` and runs inside the measuring process."""

from __future__ import annotations

RUNNERS = {
    "gguf": "device_bench.runners.gguf",
    "executorch": "device_bench.runners.executorch",
    "onnx": "device_bench.runners.onnx",
}

# what the agent installs on a device next to edge, per family (pinned there to the versions installed here)
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "gguf": ("llama-cpp-python", "numpy"),
    "executorch": ("executorch", "tokenizers", "numpy"),
    "onnx": ("onnxruntime-genai", "onnxruntime", "tokenizers", "numpy"),
}
