"""`edge sensitivity`: one group quantized at a time by llama.cpp's own quantizer, the rest kept f16 (read
back with gguf-py), each group's KLD equal to what `edge bench` measures on the same artifact made through
`edge convert ?types=`, and one-line refusals."""

from __future__ import annotations

import re

import gguf
import pytest
from typer.testing import CliRunner

from converters.gguf.sensitivity import groups, quantize_group
from edge.bench import BenchConfig, bench
from edge.cli import app
from edge.convert import convert
from edge.core.errors import EdgeError
from edge.sensitivity import sensitivity
from edge.store import Store


def test_a_group_alone_is_quantized_and_the_rest_kept_f16(tiny, tmp_path):
    (ref,) = convert(tiny("llama", "bpe"), "gguf:f16", tmp_path)
    names = [t.name for t in gguf.GGUFReader(str(ref.path)).tensors if len(t.shape) > 1]
    by_layer = dict(groups(names, "layer"))
    assert list(by_layer) == ["blk.0", "blk.1", "token_embd", "output"]
    assert len(groups(names, "tensor")) == 2 * 7 + 2
    quantize_group(ref.path, tmp_path / "g.gguf", "q4_0", by_layer["blk.1"])
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(tmp_path / "g.gguf")).tensors if len(t.shape) > 1}
    assert {n for n, t in types.items() if t == "Q4_0"} == {n for n in names if n.startswith("blk.1.")}
    assert all(t == "F16" for n, t in types.items() if not n.startswith("blk.1."))


def test_ranking_agrees_with_edge_bench_on_the_same_artifact(tiny, tmp_path):
    ck = tiny("llama", "bpe")
    s = sensitivity(ck, "gguf:q4_0", chunks=2)
    assert [g.kld for g in s.groups] == sorted((g.kld for g in s.groups), reverse=True)
    assert s.float_reference.kld < min(g.kld for g in s.groups) and s.all_quantized.kld > max(g.kld for g in s.groups)
    top = s.groups[0]
    # the same group, made by `edge convert` with a tensor-type override and measured by `edge bench`
    pattern = top.pattern.lstrip("^")
    arts = convert(ck, f"gguf:q4_0?types=^(?!{pattern})=f16", tmp_path)
    q = next(a for a in arts if a.manifest.variant == "q4_0")
    (row,) = bench([q.path], config=BenchConfig(reps=1, chunks=2), store=Store(tmp_path / "s.sqlite"))
    assert row.kld_mean == pytest.approx(top.kld, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("fmt, message", [
    ("gguf:q4_0?target_kld=0.1", "belong to a recipe search"),
    ("gguf:f16", "is not quantized"),
])
def test_refusals_are_one_line(tiny, fmt, message):
    with pytest.raises(EdgeError, match=message):
        sensitivity(tiny("llama", "bpe"), fmt)


def test_cli_md(tiny):
    res = CliRunner().invoke(app, ["sensitivity", str(tiny("llama", "bpe")), "-f", "gguf:q4_0", "--chunks", "1",
                                   "--output-format", "md"])
    assert res.exit_code == 0, res.output
    assert "| 1 | " in res.stdout and "all groups" in res.stdout and "none (the float reference)" in res.stdout
    res = CliRunner().invoke(app, ["sensitivity", str(tiny("llama", "bpe")), "--by", "block"])
    assert res.exit_code != 0 and "--by must be one of layer, tensor" in res.output


def test_target_kld_recipe_reaches_the_target_measured_by_edge_bench(tiny, tmp_path):
    from edge.datasets import load_dataset

    held_out = tmp_path / "held-out.txt"
    text = load_dataset("pydoc").text
    held_out.write_text(text[len(text) // 2:], encoding="utf-8")
    ck = tiny("llama", "bpe")
    arts = convert(ck, f"gguf:q4_0?target_kld=0.05&target_text={held_out}", tmp_path / "out")
    q = next(a for a in arts if a.manifest.variant == "q4_0")
    rec = q.manifest.details["recipe"]
    assert rec["all_quantized_kld"] > 0.05 >= rec["kld"] and rec["promoted"] and rec["text"] == "held-out.txt"
    assert q.manifest.params["types"].count("=q8_0") == len(rec["promoted"])
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(q.path)).tensors if len(t.shape) > 1}
    for label in rec["promoted"]:
        assert all(t == "Q8_0" for n, t in types.items() if n.startswith(label + "."))
    # the artifact as `edge bench` measures it on the same text: the KLD the search stopped at
    (row,) = bench([q.path], config=BenchConfig(reps=1, chunks=4), dataset=str(held_out), store=Store(tmp_path / "s.sqlite"))
    assert row.kld_mean == pytest.approx(rec["kld"], rel=1e-4) and row.quality["calibrated_on_eval_text"] is True
    with pytest.raises(EdgeError, match="out of reach with q8_0 groups"):
        convert(ck, f"gguf:q4_0?target_kld=0.0000001&target_text={held_out}", tmp_path / "out2")
    with pytest.raises(EdgeError, match="target_kld must be a number above 0"):
        convert(ck, "gguf:q4_0?target_kld=lots", tmp_path / "out3")


def test_cli_html_plots_the_ranking(tiny, tmp_path):
    out = tmp_path / "s.html"
    res = CliRunner().invoke(app, ["sensitivity", str(tiny("llama", "bpe")), "-f", "gguf:q4_0", "--chunks", "1",
                                   "--output-format", "html", "-o", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert page.count("<svg") == 1 and "<script" not in page
    # one bar per group, each with its figures on hover, in the table's order
    titles = [t.split(" alone")[0] for t in re.findall(r"<title>([^<]+ alone: KLD[^<]+)</title>", page)]
    assert titles and titles == re.findall(r"<tr><td>\d+</td><td>([^<]+)</td>", page)
