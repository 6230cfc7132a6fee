"""ONNX: tiny random checkpoints through every variant of onnxruntime-genai's model builder, load-checked,
verified (fp32 perplexity = transformers' within 0.5 %) and benched with onnxruntime-genai."""

from __future__ import annotations

import json
import shutil

import pytest
from checkpoints import copy_with_config

from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.core.errors import ArtifactError, EdgeError, UnsupportedArchitectureError
from edge.core.manifest import read_manifest

pytest.importorskip("onnxruntime_genai")

SMALL = BenchConfig(reps=2, n_prompt=64, n_gen=16, n_ttft=16, ctx=128, chunks=3)


@pytest.fixture(scope="module")
def onnx_artifacts(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    ms = [a.manifest for a in convert(tiny("llama", "bpe"), "onnx:int8,onnx:int4?block=64,onnx:int4-mixed", out)]
    return out, {m.format: m for m in ms}


def test_every_variant_is_built_loaded_and_described(onnx_artifacts):
    from edge.core.hashing import folder_digest

    out, ms = onnx_artifacts
    assert set(ms) == {"onnx:fp32", "onnx:int8", "onnx:int4?block=64", "onnx:int4-mixed"}
    ref = ms["onnx:fp32"]
    v = ref.verification
    assert ref.reference is None and v["passed"] and abs(v["ppl_rel_diff"]) <= 0.005 and v["greedy_tokens"] == 16
    for fmt, m in ms.items():
        folder = out / m.artifact
        assert folder.is_dir() and {"genai_config.json", "model.onnx", "tokenizer.json"} <= set(m.details["files"])
        assert folder_digest(folder) == (m.sha256, m.size_bytes)
        assert {"onnxruntime_genai", "onnxruntime", "onnx_ir"} <= set(m.tools)
        if fmt != "onnx:fp32":
            assert m.reference["sha256"] == ref.sha256
    assert ms["onnx:int4?block=64"].details["builder_options"]["block_size"] == "64"
    assert ms["onnx:int4-mixed"].details["builder_options"]["algo_config"] == "k_quant_mixed"
    size = {f: m.size_bytes for f, m in ms.items()}
    assert size["onnx:int4?block=64"] < size["onnx:int4-mixed"] < size["onnx:int8"] < size["onnx:fp32"]
    assert not list(out.glob(".*"))


def test_bench_rows_beside_gguf_with_the_quality_cliffs(onnx_artifacts, tiny_artifacts, tiny):
    from ppl_reference import transformers_ppl

    from converters.onnx.runtime import OgModel
    from edge.datasets import load_dataset

    out, ms = onnx_artifacts
    arts = [out / ms[f].artifact for f in ("onnx:fp32", "onnx:int8", "onnx:int4?block=64")]
    rows = {r.format: r for r in bench(arts + [tiny_artifacts["q8_0"]], config=SMALL)}
    fp32, q8, q4 = rows["onnx:fp32"], rows["onnx:int8"], rows["onnx:int4?block=64"]
    for r in (fp32, q8, q4):
        assert r.pp_tps > 0 and r.tg_tps > 0 and r.peak_rss_bytes > 0 and r.threads >= 1
    assert 0 < q8.kld_mean < q4.kld_mean and q4.same_top < q8.same_top
    # one reference (the source checkpoint) and one token stream for both families
    assert len({r.reference_sha256 for r in rows.values()}) == 1 and len({r.tokens_sha256 for r in rows.values()}) == 1
    assert 0 <= fp32.kld_mean < 1e-4 < q8.kld_mean
    with OgModel(out / ms["onnx:fp32"].artifact) as m:
        tokens = m.tokenize(load_dataset("pydoc").text, add_special=True)
        bos = m.bos if m.add_bos else None
    assert fp32.ppl == pytest.approx(transformers_ppl(tiny("llama", "bpe"), tokens, 128, 3, bos), rel=1e-3)
    assert "gguf:q8_0" in rows


def test_tied_embeddings_with_mixed_precision_are_untied_and_load(tiny, tmp_path):
    ms = [a.manifest for a in convert(tiny("qwen2", "bpe", pre="qwen2", tied=True), "onnx:int4-mixed", tmp_path)]
    mixed = {m.format: m for m in ms}["onnx:int4-mixed"]
    assert mixed.details["builder_options"]["shared_embeddings"] == "false"
    assert {m.format: m for m in ms}["onnx:fp32"].verification["passed"]


def test_bad_input(tiny, tmp_path, onnx_artifacts):
    ckpt = tiny("llama", "bpe")
    with pytest.raises(EdgeError, match="block must be one of"):
        convert(ckpt, "onnx:int4?block=48", tmp_path / "o")
    with pytest.raises(EdgeError, match="takes no parameter block"):
        convert(ckpt, "onnx:fp32?block=32", tmp_path / "o")
    ck = copy_with_config(ckpt, tmp_path / "ck", architectures=["GPTNeoXForCausalLM"])
    with pytest.raises(UnsupportedArchitectureError, match="GPTNeoXForCausalLM is not supported for ONNX"):
        convert(ck, "onnx:int4", tmp_path / "o")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ArtifactError, match="without genai_config.json"):
        bench([bare], config=SMALL)
    out, ms = onnx_artifacts
    copy = tmp_path / "copy"
    shutil.copytree(out / ms["onnx:int8"].artifact, copy)
    with pytest.raises(ArtifactError, match="no manifest"):
        bench([copy], config=SMALL)
    m = read_manifest(out / ms["onnx:int8"].artifact)
    (tmp_path / "copy.manifest.json").write_text(json.dumps({**m.to_json(), "artifact": "copy"}))
    (copy / "genai_config.json").write_text((copy / "genai_config.json").read_text() + " ")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        bench([copy], config=SMALL)


def test_builder_failure_keeps_its_message_and_no_folder(tiny, tmp_path):
    # a config whose head count contradicts the stored k/v weights: the builder fails loading them
    ck = copy_with_config(tiny("llama", "bpe"), tmp_path / "ck", num_attention_heads=8)
    out = tmp_path / "out"
    with pytest.raises(EdgeError, match="builder failed for ck-onnx-fp32: .+") as err:
        convert(ck, "onnx:fp32", out)
    assert "\n" not in str(err.value)
    assert not any(out.iterdir())


def test_task_loglikelihoods_equal_transformers_with_the_kv_cache_rewound(onnx_artifacts, tiny, tmp_path):
    """fp32 within 1e-3 nats of transformers; the shared-prefix path (rewind_to) equals recomputing every
    choice from position 0, on fp32 and int4."""
    from converters.onnx.runtime import OgModel
    from edge.measure.verify import load_hf_model
    from task_oracle import check_runtime, choice_items

    out, ms = onnx_artifacts
    ck = tiny("llama", "bpe")
    items, model = choice_items(ck, tmp_path), load_hf_model(ck)
    with OgModel(out / ms["onnx:fp32"].artifact) as m:
        check_runtime(m, model, items, atol=1e-3)
    with OgModel(out / ms["onnx:int4?block=64"].artifact) as m:
        check_runtime(m, model, items, atol=None)
