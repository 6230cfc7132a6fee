"""HF → GGUF on tiny random checkpoints of every supported architecture, run through llama.cpp."""

import json
from importlib import metadata
from pathlib import Path

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM

from converters.gguf.convert import verify_gguf
from converters.gguf.runtime import LlamaModel
from edge.core.hashing import sha256_file
from edge.convert import convert
from edge.datasets import load_dataset
from edge.core.manifest import read_manifest

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 256}

CASES = [
    pytest.param("llama", "bpe", {"pre": "gpt2"}, "gpt-2", id="llama-bpe-gpt2"),
    pytest.param("llama", "spm", {}, "default", id="llama-sentencepiece"),
    pytest.param("llama", "bpe", {"pre": "llama3", "rope": LLAMA3_ROPE}, "llama-bpe", id="llama3-rope-scaling"),
    pytest.param("mistral", "spm", {}, "default", id="mistral-sentencepiece"),
    pytest.param("qwen2", "bpe", {"pre": "qwen2", "tied": True}, "qwen2", id="qwen2-tied"),
    pytest.param("qwen3", "bpe", {"pre": "qwen2"}, "qwen2", id="qwen3-qk-norm"),
]


def _field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


@pytest.mark.parametrize("arch,tok,kw,pre", CASES)
def test_convert_every_architecture(tiny, tmp_path, arch, tok, kw, pre):
    ckpt = tiny(arch, tok, **kw)
    manifests = [a.manifest for a in convert(ckpt, "gguf:f32,gguf:q8_0,gguf:q4_0", tmp_path)]
    by = {m.variant: m for m in manifests}
    assert set(by) == {"f32", "q8_0", "q4_0"}
    ref = by["f32"]
    # the reference was verified against transformers and says so
    assert ref.verification["passed"] and ref.verification["greedy_tokens"] >= 16
    assert ref.verification["top1_agreement"] >= 0.99 and ref.verification["tokenizer_match"]
    assert ref.reference is None and by["q4_0"].reference["sha256"] == ref.sha256
    for m in manifests:
        path = tmp_path / m.artifact
        assert read_manifest(path) == m
        assert m.sha256 == sha256_file(path) and m.size_bytes == path.stat().st_size
        assert m.source["architecture"] == json.loads((ckpt / "config.json").read_text())["architectures"][0]
        assert m.tools["llama_cpp_python"] == metadata.version("llama_cpp_python")
        assert m.tools["gguf"] == metadata.version("gguf")
    assert by["f32"].bits_per_weight == pytest.approx(32.0, abs=0.01)
    assert by["q4_0"].bits_per_weight < by["q8_0"].bits_per_weight < 16
    assert not list(tmp_path.glob(".*partial*"))

    reader = gguf.GGUFReader(str(tmp_path / ref.artifact))
    assert _field(reader, "tokenizer.ggml.pre") == pre
    assert _field(reader, "tokenizer.chat_template")
    names = {t.name for t in reader.tensors}
    assert ("output.weight" in names) is (not kw.get("tied", False))
    if kw.get("rope"):
        assert "rope_freqs.weight" in names
    if arch == "qwen3":
        assert "blk.0.attn_q_norm.weight" in names
    # every artifact runs in llama.cpp, and greedy decoding of the F32 file equals transformers' own generate()
    hf = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).eval()
    with torch.inference_mode():
        expected = hf.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False, min_new_tokens=4,
                               eos_token_id=None, pad_token_id=0)[0, 3:].tolist()
    for m in manifests:
        with LlamaModel(tmp_path / m.artifact, f32_kv_cache=m.variant == "f32") as llm:  # exact attention for f32
            got = llm.greedy([1, 2, 3], 4)
            assert all(0 <= t < llm.n_vocab for t in got)
            if m.variant == "f32":
                assert got == expected


def test_k_quants_on_256_aligned_rows(tiny, tmp_path):
    ckpt = tiny("llama", "bpe", hidden=256, heads=4, kv_heads=2)
    manifests = [a.manifest for a in convert(ckpt, "gguf:f32,gguf:q6_k,gguf:q5_k_m,gguf:q4_k_m,gguf:q3_k_m,gguf:q2_k", tmp_path)]
    by = {m.variant: m for m in manifests}
    assert by["f32"].verification["passed"]
    assert "Q4_K" in by["q4_k_m"].details["tensor_types"] and "Q2_K" in by["q2_k"].details["tensor_types"]
    bpw = [by[v].bits_per_weight for v in ["f32", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k"]]
    assert bpw == sorted(bpw, reverse=True)


def test_f16_reference_is_added_when_only_quantized_types_are_asked(tiny, tmp_path):
    manifests = [a.manifest for a in convert(tiny("llama", "bpe"), "gguf:q8_0", tmp_path)]
    assert [m.format for m in manifests] == ["gguf:f16", "gguf:q8_0"]
    assert manifests[0].verification["passed"] and manifests[1].reference["format"] == "gguf:f16"


def test_verification_can_fail(tiny, tmp_path):
    """A GGUF of one checkpoint checked against another checkpoint must fail loudly."""
    a = tiny("llama", "bpe")
    b = tiny("llama", "bpe", seed=1)
    m = [a.manifest for a in convert(a, "gguf:f32", tmp_path)][0]
    result = verify_gguf(b, tmp_path / m.artifact, load_dataset("pydoc").text)
    assert not result.passed and result.top1_agreement < 0.5


def test_sharded_bf16_checkpoint(tiny, tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM

    src = tiny("llama", "bpe")
    sharded = tmp_path / "sharded"
    model = AutoModelForCausalLM.from_pretrained(src)
    model.to(dtype=__import__("torch").bfloat16).save_pretrained(sharded, max_shard_size="100KB")
    for f in src.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("chat_template.jinja", "special_tokens_map.json"):
            shutil.copy(f, sharded / f.name)
    assert (sharded / "model.safetensors.index.json").exists()
    manifests = [a.manifest for a in convert(sharded, "gguf:bf16,gguf:f32", tmp_path / "out")]
    # bf16 weights upcast exactly, so the F32 GGUF is the reference and matches transformers
    assert [m.format for m in manifests] == ["gguf:f32", "gguf:bf16"]
    assert manifests[0].verification["passed"]
    assert manifests[1].details["tensor_types"]["BF16"] > 0 and manifests[1].bits_per_weight < 17


def test_cli_convert_prints_the_paths_it_wrote(tiny, tmp_path, monkeypatch):
    """`edge convert .` inside the checkpoint folder: the paths printed are the files written."""
    import shutil

    from typer.testing import CliRunner

    from edge.cli import app

    ckpt = tmp_path / "my-model"
    shutil.copytree(tiny("llama", "bpe"), ckpt)
    monkeypatch.chdir(ckpt)
    r = CliRunner().invoke(app, ["convert", ".", "-f", "gguf:q8_0"])
    assert r.exit_code == 0, r.output
    printed = [line.split()[-1] for line in r.output.splitlines() if line.startswith("gguf:")]
    assert len(printed) == 2 and all((ckpt / p).is_file() for p in printed), r.output
    assert {Path(p).name for p in printed} == {"my-model-f16.gguf", "my-model-q8_0.gguf"}
