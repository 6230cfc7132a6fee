from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from checkpoints import make_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own results store; the demo checkpoint cache stays shared (built once)."""
    monkeypatch.setenv("EDGE_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("EDGE_HOME", str(tmp_path / "edge-home"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """make(arch, tokenizer, **kw) -> a cached tiny random checkpoint folder."""
    made: dict[tuple, Path] = {}

    def make(arch: str = "llama", tokenizer: str = "bpe", **kw) -> Path:
        key = (arch, tokenizer, tuple(sorted((k, repr(v)) for k, v in kw.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{arch}-{tokenizer}") / f"tiny-{arch}-{tokenizer}"
            made[key] = make_checkpoint(folder, arch, tokenizer, **kw)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_artifacts(tiny, tmp_path_factory):
    """A tiny Llama converted to f16 (reference), q8_0 and q4_0 — shared by the bench/report tests."""
    from edge.convert import convert

    out = tmp_path_factory.mktemp("tiny-artifacts")
    manifests = convert(tiny("llama", "bpe"), "gguf:f16,gguf:q8_0,gguf:q4_0", out)
    return {m.variant: out / m.artifact for m in manifests}


@pytest.fixture(scope="session")
def demo_ckpt():
    from edge.demo import demo_checkpoint

    return demo_checkpoint()


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
