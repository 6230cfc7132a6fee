"""edge's output is edge's own: no other library's progress bars, log lines or warnings, in edge's process or
the measuring processes it starts — checked on the real CLI in a fresh interpreter (EDGE_DEBUG unset)."""

import os
import subprocess
import sys

import pytest

NOISE = ["threadpool.cpp", "Failed to load", "Warning", "it/s]", "past_key_values", "Registering override", "Token indices sequence",
         "torch.utils._pytree", "W1", "I tokenizers"]


def _edge(*args: str, timeout: int = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _clean(out: str) -> None:
    found = [n for n in NOISE if n in out]
    assert not found, f"{found} in:\n{out[-3000:]}"


def test_convert_and_bench_print_only_edge_s_lines(tiny, tmp_path):
    out = _edge("convert", str(tiny("llama", "bpe")), "-f", "gguf:q8_0", "-o", str(tmp_path / "a"))
    _clean(out)
    assert "gguf:q8_0" in out
    gguf = next((tmp_path / "a").glob("*q8_0.gguf"))
    out = _edge("bench", str(gguf), "--reps", "2", "--chunks", "1", "--store", str(tmp_path / "s.sqlite"))
    _clean(out)
    assert "source checkpoint, transformers fp32" in out


def test_executorch_export_prints_only_edge_s_lines(tiny, tmp_path):
    pytest.importorskip("executorch")
    out = _edge("convert", str(tiny("llama", "bpe")), "-f", "executorch:8da8w", "-o", str(tmp_path / "e"), "--no-verify")
    _clean(out)
