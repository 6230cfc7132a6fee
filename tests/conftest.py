from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from checkpoints import make_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own results store and data dir; edge's cache (the demo checkpoint, built once)
    is the session's own (set in pytest_configure)."""
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
    manifests = [a.manifest for a in convert(tiny("llama", "bpe"), "gguf:f16,gguf:q8_0,gguf:q4_0", out)]
    return {m.variant: out / m.artifact for m in manifests}


@pytest.fixture(scope="session")
def demo_ckpt():
    from edge.demo import demo_checkpoint

    return demo_checkpoint()


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # edge's cache (the demo checkpoint, measured bandwidths) is the session's own, not the user's
    os.environ["EDGE_CACHE"] = tempfile.mkdtemp(prefix="edge-test-cache-")


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(os.environ.get("EDGE_CACHE", ""), ignore_errors=True)


_TOOLS_BUILD: dict = {}


def tools_cache() -> Path:
    return Path(os.environ.get("EDGE_TEST_TOOLS") or Path.home() / ".cache" / "edge-test")


def pytest_collection_finish(session):
    """Native-mode tests need llama.cpp's tools built for this machine (minutes, cached): start that build
    in the background as soon as such a test is collected, so it overlaps the tests that run before it."""
    import threading

    if not any("llama_tools" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    from sshd import llama_tools

    def build():
        try:
            _TOOLS_BUILD["tools"] = llama_tools(tools_cache())
        except BaseException as exc:  # reported by the fixture
            _TOOLS_BUILD["error"] = exc

    thread = threading.Thread(target=build, name="llama-tools-build", daemon=True)
    _TOOLS_BUILD["thread"] = thread
    thread.start()


@pytest.fixture(scope="session")
def llama_tools():
    """{"llama-bench": path, "llama-perplexity": path} built from the llama-cpp-python sdist of the installed version."""
    from sshd import llama_tools as build

    thread = _TOOLS_BUILD.get("thread")
    if thread is not None:
        thread.join()
        if "error" in _TOOLS_BUILD:
            pytest.fail(f"building llama.cpp's tools failed: {_TOOLS_BUILD['error']}")
        return _TOOLS_BUILD["tools"]
    return build(tools_cache())
