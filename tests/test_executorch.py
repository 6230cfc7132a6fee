"""ExecuTorch: tiny random checkpoints through every variant — exported with ExecuTorch's LLM export
stack, lowered to XNNPACK, run with ExecuTorch's Python runtime, verified and benched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.core.errors import ArtifactError, ConversionError, EdgeError, UnsupportedArchitectureError
from edge.store import Store

pytest.importorskip("executorch")

SMALL = BenchConfig(reps=2, n_prompt=64, n_gen=16, n_ttft=16, ctx=128, chunks=3)


@pytest.fixture(scope="module")
def et_artifacts(tiny, tmp_path_factory):
    """int8, 8da8w with 8-bit embeddings, 8da4w in groups of 32 with 4-bit embeddings, an fp32 program
    that returns every position's logits, and the plain fp32 program (the reference, exported first)."""
    out = tmp_path_factory.mktemp("et")
    ms = [a.manifest for a in convert(tiny("llama", "bpe"), "executorch:int8,executorch:8da8w?embedding=8,"
                 "executorch:8da4w?group=32&embedding=4,executorch:fp32?logits=all,executorch:fp32", out)]
    return out, {m.format: m for m in ms}


def test_every_variant_is_exported_verified_and_described(et_artifacts):
    out, ms = et_artifacts
    assert set(ms) == {"executorch:fp32", "executorch:int8", "executorch:8da8w?embedding=8",
                       "executorch:8da4w?embedding=4&group=32", "executorch:fp32?logits=all"}
    ref = ms["executorch:fp32"]
    assert ref.reference is None
    v = ref.verification
    assert v["passed"] and v["greedy_tokens"] == 16 and v["top1_agreement"] >= 0.99 and v["tokenizer_match"]
    assert ref.details["delegation"]["xnnpack_delegate_calls"] > 0
    for fmt, m in ms.items():
        assert (out / m.artifact).stat().st_size == m.size_bytes
        assert m.details["backend"] == "xnnpack" and m.details["kv_cache"]
        assert m.details["max_seq_len"] == 1024  # the tiny model's limit, below the default 2048
        assert {"executorch", "torchao", "torch"} <= set(m.tools)
        assert m.details["tokenizer_file"]["file"] == "tiny-llama-bpe.tokenizer.json"
        # read from the program for the roofline, also without delegate weights (int8 runs outside XNNPACK)
        assert 0.2 * m.size_bytes < m.model["weight_bytes_per_token"] <= m.size_bytes, fmt
        if fmt != "executorch:fp32":
            assert m.reference == {"artifact": ref.artifact, "sha256": ref.sha256, "format": "executorch:fp32"}
    q4 = ms["executorch:8da4w?embedding=4&group=32"]
    assert (q4.details["qmode"], q4.details["group_size"], q4.details["embedding_bits"]) == ("8da4w", 32, 4)
    assert ms["executorch:8da8w?embedding=8"].details["group_size"] == 0
    assert ms["executorch:int8"].details["delegation"]["xnnpack_delegate_calls"] == 0  # recorded, not hidden
    sizes = {f: m.size_bytes for f, m in ms.items()}
    assert sizes["executorch:8da4w?embedding=4&group=32"] < sizes["executorch:8da8w?embedding=8"] \
        < sizes["executorch:int8"] < sizes["executorch:fp32"]
    assert not list(out.glob(".*partial*")) and not list(out.glob(".edge-et-*"))


def test_last_logits_program_feeds_tokens_one_by_one_to_the_same_numbers(et_artifacts):
    from converters.executorch.runtime import EtModel

    out, ms = et_artifacts
    tok = out / ms["executorch:fp32"].details["tokenizer_file"]["file"]
    ids = list(range(3, 83))
    with EtModel(out / ms["executorch:fp32"].artifact, tok, n_threads=1) as last, \
            EtModel(out / ms["executorch:fp32?logits=all"].artifact, tok, n_threads=1) as full:
        assert not last.full_logits and full.full_logits
        a = last.decode(ids, logits_from=40)
        b = full.decode(ids, logits_from=40)
    assert a.shape == b.shape == (40, full.n_vocab)
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_bench_puts_executorch_rows_in_the_matrix_beside_gguf(et_artifacts, tiny_artifacts, tiny):
    from ppl_reference import transformers_ppl

    from edge.report import build_matrices

    out, ms = et_artifacts
    paths = [out / ms[f].artifact for f in ("executorch:fp32", "executorch:8da4w?embedding=4&group=32")]
    rows = bench(paths + [tiny_artifacts["f16"]], config=SMALL, dataset="pydoc")
    by = {r.format: r for r in rows}
    ref, q4 = by["executorch:fp32"], by["executorch:8da4w?embedding=4&group=32"]
    for r in (ref, q4):
        assert r.pp_tps > 0 and r.tg_tps > 0 and r.load_s > 0 and r.peak_rss_bytes > 0 and r.chunks == 3
    # one reference (the source checkpoint) and one token stream for both families
    assert len({r.reference_sha256 for r in rows}) == 1 and len({r.tokens_sha256 for r in rows}) == 1
    assert 0 <= ref.kld_mean < 1e-4 < q4.kld_mean  # the fp32 program against the fp32 source: nearly nothing
    # the fp32 program's perplexity is transformers' own on the same tokens
    from tokenizers import Tokenizer

    from edge.datasets import load_dataset

    tok = Tokenizer.from_file(str(out / ms["executorch:fp32"].details["tokenizer_file"]["file"]))
    ids = tok.encode(load_dataset("pydoc").text, add_special_tokens=True).ids
    expect = transformers_ppl(tiny("llama", "bpe"), ids, 128, 3, None)
    assert ref.ppl == pytest.approx(expect, rel=1e-3)
    with Store() as store:
        matrices = build_matrices(store.results())
    assert [(m.model, m.dataset, m.formats) for m in matrices] == [
        ("tiny-llama-bpe", "pydoc", ["executorch:fp32", "gguf:f16", "executorch:8da4w?embedding=4&group=32"])]


def test_qwen2_bias_and_tied_embeddings_reproduce_transformers(tiny, tmp_path):
    # an fp32 program with parameters is the reference itself: one program, not two
    (m,) = [a.manifest for a in convert(tiny("qwen2", "bpe", pre="qwen2", tied=True), "executorch:fp32?max_seq_len=256", tmp_path)]
    assert m.verification["passed"] and m.verification["greedy_tokens"] == 16
    assert m.details["max_seq_len"] == 256


def test_refusals_come_before_anything_is_written(tiny, tmp_path):
    ckpt = tiny("llama", "bpe")
    out = tmp_path / "out"
    cases = [
        ("executorch:8da4w?group=48", "does not divide"),
        ("executorch:int8?group=32", "no parameter group"),
        ("executorch:fp32?max_seq_len=4096", "beyond"),
        ("executorch:8da4w?embedding=3", "embedding must be one of"),
        ("executorch:fp32?logits=some", "logits must be"),
        ("gguf:q8_0,executorch:8da4w?group=0x", "must be an integer"),
    ]
    for spec, words in cases:
        with pytest.raises(EdgeError, match=words):
            convert(ckpt, spec, out)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(UnsupportedArchitectureError, match="Gemma3ForCausalLM is not supported for ExecuTorch: .*rope base per layer type"):
        convert(tiny("gemma3", "bpe"), "executorch:fp32", out)


def test_failed_export_names_the_stage_and_leaves_no_program(tiny, tmp_path):
    # 4-bit embeddings are quantized in groups of 32: a 48-wide embedding fails inside ExecuTorch's stack
    ckpt = tiny("llama", "bpe", hidden=48, heads=4, kv_heads=2)
    with pytest.raises(ConversionError, match=r"ExecuTorch export failed at stage '[a-z +_A-Z]+': \w+") as err:
        convert(ckpt, "executorch:8da4w?embedding=4", tmp_path)
    assert "\n" not in str(err.value)
    # the fp32 reference (added, exported first) is complete and kept; the failed program left nothing
    assert [p.name for p in tmp_path.glob("*.pte")] == ["tiny-llama-bpe-et-fp32.pte"]
    assert [p.name for p in tmp_path.glob("*.manifest.json")] == ["tiny-llama-bpe-et-fp32.pte.manifest.json"]
    assert not list(tmp_path.glob(".*"))


def test_bench_refuses_a_program_without_the_llm_methods(et_artifacts, tmp_path):
    import torch
    from executorch.exir import to_edge

    from edge.core.manifest import read_manifest, write_manifest
    from edge.core.hashing import sha256_file

    class Add(torch.nn.Module):
        def forward(self, x):
            return x + 1

    program = to_edge(torch.export.export(Add(), (torch.ones(2),))).to_executorch()
    pte = tmp_path / "add.pte"
    pte.write_bytes(program.buffer)
    out, ms = et_artifacts
    m = read_manifest(out / ms["executorch:fp32"].artifact)
    (tmp_path / m.details["tokenizer_file"]["file"]).write_bytes((out / m.details["tokenizer_file"]["file"]).read_bytes())
    m.artifact, m.size_bytes, m.sha256 = pte.name, pte.stat().st_size, sha256_file(pte)
    write_manifest(pte, m)
    with pytest.raises(ArtifactError, match="lacks the method"):
        bench([pte], config=SMALL)
    pte.with_name("bare.pte").write_bytes(program.buffer)
    with pytest.raises(ArtifactError, match="no manifest"):
        bench([pte.with_name("bare.pte")], config=SMALL)


def test_manifest_is_json_with_export_profile(et_artifacts):
    out, ms = et_artifacts
    data = json.loads((out / (ms["executorch:int8"].artifact + ".manifest.json")).read_text())
    assert set(data["details"]["export_seconds"]) >= {"torch.export", "lower to XNNPACK", "to_executorch"}
    assert data["details"]["export_peak_rss_bytes"] > 0 and data["details"]["export_peak_rss_per_export"] is True


def test_task_loglikelihoods_equal_transformers_on_the_positional_kv_cache(et_artifacts, tiny, tmp_path):
    """fp32 (both logits layouts) within 1e-3 nats of transformers; continuing each choice after the shared
    prefix equals recomputing it from position 0, on fp32 and 8da4w."""
    from converters.executorch.runtime import EtModel
    from edge.measure.verify import load_hf_model
    from task_oracle import check_runtime, choice_items

    out, ms = et_artifacts
    ck = tiny("llama", "bpe")
    items, model = choice_items(ck, tmp_path), load_hf_model(ck)
    for fmt, atol in (("executorch:fp32", 1e-3), ("executorch:fp32?logits=all", 1e-3),
                      ("executorch:8da4w?embedding=4&group=32", None)):
        art = out / ms[fmt].artifact
        with EtModel(art, art.with_name(ms[fmt].details["tokenizer_file"]["file"])) as m:
            check_runtime(m, model, items, atol=atol)
