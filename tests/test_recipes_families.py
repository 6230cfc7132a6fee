"""Recipes for ExecuTorch and ONNX: per-module / per-node overrides land in the written program and graph
(read back with ExecuTorch's program reader and onnx, not edge's plan), and `edge sensitivity` ranks a
layer made deliberately fragile first in every family."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from edge.convert import convert
from edge.core.errors import EdgeError
from edge.sensitivity import sensitivity

FRAGILE_LAYER = 1


def _fragile(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose layer 1 computes the same function but cannot be quantized: a few input
    features of its linears are zeroed by the norms before them, and those features' weight columns made
    100× the largest weight; every block of 32 (or 64) inputs then takes its scale from a weight that never
    matters, and the weights that do round to zero."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    f = dst / "model.safetensors"
    sd = load_file(str(f))
    hidden = sd["model.embed_tokens.weight"].shape[1]
    dead = list(range(0, hidden, 32))
    pre = f"model.layers.{FRAGILE_LAYER}."
    for norm, linears in (("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
                          ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"))):
        sd[f"{pre}{norm}.weight"][dead] = 0.0
        for lin in linears:
            w = sd[f"{pre}{lin}.weight"]
            w[:, dead] = 100.0 * w.abs().max()
    save_file({k: v.contiguous() for k, v in sd.items()}, str(f), metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="module")
def fragile(tiny, tmp_path_factory):
    return _fragile(tiny("llama", "bpe", layers=3), tmp_path_factory.mktemp("fragile") / "tiny-fragile")


@pytest.mark.parametrize("fmt, top", [
    ("gguf:q4_0", f"blk.{FRAGILE_LAYER}"),
    ("executorch:8da4w", f"layers.{FRAGILE_LAYER}"),
    ("onnx:int4", f"layers.{FRAGILE_LAYER}"),
])
def test_a_fragile_layer_ranks_first(fragile, fmt, top):
    s = sensitivity(fragile, fmt, chunks=1)
    assert s.groups[0].group == top, [(g.group, round(g.kld, 4)) for g in s.groups]
    assert s.groups[0].kld > 2 * s.groups[1].kld
    assert s.float_reference.kld < 1e-3
    assert ("proxy" in s.measured_on) == fmt.startswith("executorch")


def _named_sizes(pte: Path) -> collections.Counter:
    """Byte sizes of the program's delegate data (XNNPACK's weights), read with ExecuTorch's own reader."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    data = deserialize_pte_binary(pte.read_bytes()).named_data
    return collections.Counter(len(data.buffers[e.buffer_index]) for e in data.pte_data.values())


def test_executorch_output_layer_is_8_bit_by_default_and_overrides_land(tiny, tmp_path):
    ck = tiny("llama", "bpe")
    cfg = json.loads((ck / "config.json").read_text())
    vocab, hidden, ff = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    arts = {a.manifest.format: a for a in convert(
        ck, "executorch:8da4w?embedding=float,executorch:8da4w?output=4&embedding=float&types=layers\\.1\\.=8", tmp_path)}
    default = _named_sizes(arts["executorch:8da4w?embedding=float"].path)
    four = arts["executorch:8da4w?embedding=float&output=4&types=layers\\.1\\.=8"]
    mixed = _named_sizes(four.path)
    assert vocab * hidden not in {hidden * hidden, ff * hidden}  # the output layer's size is its own
    assert default[vocab * hidden] == 1 and default[vocab * hidden // 2] == 0     # int8 lm_head
    assert mixed[vocab * hidden] == 0 and mixed[vocab * hidden // 2] == 1         # int4 lm_head
    # layer 1's MLP linears at int8 (ff × hidden bytes each), the other layers' at int4 (half that)
    assert mixed[ff * hidden] == 3 and default[ff * hidden] == 0
    assert four.manifest.details["linears"]["8-bit per channel"] == [f"layers.1.{k}" for k in (
        "attention.wq", "attention.wk", "attention.wv", "attention.wo", "feed_forward.w1", "feed_forward.w2",
        "feed_forward.w3")]


def _onnx_bits(folder: Path) -> dict[str, int | None]:
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    return {n.name: next((a.i for a in n.attribute if a.name == "bits"), 4 if n.op_type != "MatMul" else None)
            for n in graph.node if n.op_type in ("MatMulNBits", "MatMul", "GatherBlockQuantized")}


def test_onnx_lm_head_8_bit_and_per_node_overrides_land(tiny, tmp_path):
    ck = tiny("llama", "bpe", tied=True)
    arts = {a.manifest.format: a for a in convert(
        ck, "onnx:int4,onnx:int4?lm_head=8,onnx:int4?types=layers\\.1/mlp/down_proj=int8;layers\\.0/attn=float", tmp_path)}
    plain = _onnx_bits(arts["onnx:int4"].path)
    head = _onnx_bits(arts["onnx:int4?lm_head=8"].path)
    mixed = _onnx_bits(arts["onnx:int4?types=layers\\.1/mlp/down_proj=int8;layers\\.0/attn=float"].path)
    assert plain["/lm_head/MatMul_Q4"] == 4 and head["/lm_head/MatMul_Q8"] == 8
    assert head["/model/embed_tokens/Gather_Q4"] == 4   # the tied table untied, still 4-bit (GatherBlockQuantized)
    assert mixed["/model/layers.1/mlp/down_proj/MatMul_Q8"] == 8
    assert mixed["/model/layers.0/attn/qkv_proj/MatMul"] is None and mixed["/model/layers.0/attn/o_proj/MatMul"] is None
    assert mixed["/model/layers.0/mlp/down_proj/MatMul_Q4"] == 4
    assert "/lm_head/MatMul_Q4" in mixed
    nodes = arts["onnx:int4?types=layers\\.1/mlp/down_proj=int8;layers\\.0/attn=float"].manifest.details["nodes"]
    assert nodes["int8"] == ["/model/layers.1/mlp/down_proj/MatMul"] and len(nodes["float"]) == 2


@pytest.mark.parametrize("fmt, message", [
    ("onnx:int4?types=embed_tokens=int8", "takes 4-bit tables only"),
    ("onnx:int4?types=lm_head=int3", "takes int8, int4, float"),
    ("executorch:8da4w?types=output=6", "takes 8, 4, float"),
    ("executorch:8da4w?types=layers[=8", "not a regular expression"),
    ("executorch:8da4w?output=2", "output must be one of 8, 4"),
])
def test_bad_overrides_are_one_line(tiny, tmp_path, fmt, message):
    with pytest.raises(EdgeError, match=message):
        convert(tiny("llama", "bpe", tied=True), fmt, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything is written


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    from edge.datasets import load_dataset

    path = tmp_path_factory.mktemp("held-out") / "held-out.txt"
    text = load_dataset("pydoc").text
    path.write_text(text[len(text) // 2:], encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt, tol", [
    ("onnx:int4", 1e-3),          # searched on real builder folders: the same artifact, the same KLD
    ("executorch:8da4w", 0.25),   # searched on the proxy: the program agrees within this (relative)
])
def test_target_kld_recipe_for_onnx_and_executorch(tiny, tmp_path, held_out, fmt, tol):
    from edge.bench import BenchConfig, bench
    from edge.store import Store

    ck = tiny("llama", "bpe", layers=3)
    arts = convert(ck, f"{fmt}?target_kld=0.2&target_text={held_out}", tmp_path / "out")
    (art,) = [a for a in arts if a.manifest.format.startswith(fmt)]
    rec = art.manifest.details["recipe"]
    assert rec["all_quantized_kld"] > 0.2 >= rec["kld"] and rec["promoted"], rec
    assert ("proxy" in rec.get("measured_on", "")) == fmt.startswith("executorch")
    (row,) = bench([art.path], config=BenchConfig(reps=1, chunks=4), dataset=str(held_out), store=Store(tmp_path / "s.sqlite"))
    assert row.kld_mean == pytest.approx(rec["kld"], rel=tol), (row.kld_mean, rec["kld"])
    assert row.quality["calibrated_on_eval_text"] is True
