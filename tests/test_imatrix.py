"""GGUF importance matrices (`?imatrix=TEXT`): edge's matrix against llama.cpp's own `llama-imatrix` built
from the same llama.cpp, the quantized file against one made with llama-imatrix's matrix, the i-quants
that need one, the refusals, and the warning when an artifact is measured on its own calibration text."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from converters.gguf.imatrix import Imatrix, compute, read_llama_imatrix
from converters.gguf.quantize import quantize
from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.core.errors import ConversionError, DatasetError, EdgeError
from edge.datasets import load_dataset
from edge.measure.tokens import token_stream
from edge.report import flags
from edge.store import Store

CHUNKS = 4


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """A calibration text that is not the evaluation text (pydoc's second half)."""
    text = load_dataset("pydoc").text
    path = tmp_path_factory.mktemp("calib") / "calibration.txt"
    path.write_text(text[len(text) // 2:], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def f32(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("im-f32")
    (a,) = convert(tiny("llama", "bpe"), "gguf:f32", out)
    return a.path


def _llama_imatrix(tools, model, text_file, out):
    subprocess.run([tools["llama-imatrix"], "-m", str(model), "-f", str(text_file), "-c", "512", "--chunks", str(CHUNKS),
                    "-o", str(out), "-t", "2", "--no-ppl"], check=True, capture_output=True, timeout=600)
    return read_llama_imatrix(out)


def test_edge_imatrix_equals_llama_imatrix(tiny, f32, calibration, llama_tools, tmp_path):
    theirs = _llama_imatrix(llama_tools, f32, calibration, tmp_path / "imatrix.gguf")
    ck = tiny("llama", "bpe")
    stream = token_stream(ck, calibration.read_text(encoding="utf-8"))
    ours = compute(ck, stream.ids, stream.bos, max_chunks=CHUNKS)
    assert set(ours.data) == set(theirs) and len(theirs) == 14  # 2 blocks × q, k, v, o, gate, up, down
    for name, v in theirs.items():
        assert ours.data[name].shape == v.shape
        np.testing.assert_allclose(ours.data[name], v, rtol=2e-3, atol=1e-6, err_msg=name)
    assert ours.tokens == CHUNKS * 512


def test_quantized_with_edge_matrix_is_within_noise_of_llama_imatrix_s(tiny, f32, calibration, llama_tools, tmp_path):
    theirs = _llama_imatrix(llama_tools, f32, calibration, tmp_path / "imatrix.gguf")
    spec = f"gguf:q4_k_m?imatrix={calibration}&imatrix_chunks={CHUNKS},gguf:f32"
    by = {a.manifest.variant: a for a in convert(tiny("llama", "bpe"), spec, tmp_path / "ours")}
    ours = by["q4_k_m"]
    calib = ours.manifest.details["calibration"]
    assert calib["text"] == "calibration.txt" and calib["chunks"] == CHUNKS and calib["tensors"] == 14
    assert "imatrix-calibration4" in ours.path.name
    # the same quantizer, given llama-imatrix's matrix
    other = tmp_path / "theirs-q4_k_m.gguf"
    quantize(by["f32"].path, other, "q4_k_m", imatrix=Imatrix(theirs, CHUNKS * 512, CHUNKS, 512))
    plain = tmp_path / "plain-q4_k_m.gguf"
    quantize(by["f32"].path, plain, "q4_k_m")
    assert ours.path.read_bytes() != plain.read_bytes()  # the matrix changed the rounding
    same = sum(a == b for a, b in zip(ours.path.read_bytes(), other.read_bytes())) / other.stat().st_size
    assert same > 0.99, same
    # measured against the source model on text neither was calibrated on (the file without a manifest
    # is read from its own GGUF metadata)
    rows = bench([ours.path, other], config=BenchConfig(reps=1, chunks=2), store=Store(tmp_path / "s.sqlite"),
                 source=tiny("llama", "bpe"), dataset="wiki")
    a, b = sorted(rows, key=lambda r: r.artifact_path != str(ours.path))
    assert a.kld_mean > 0 and abs(a.kld_mean - b.kld_mean) <= 2 * np.hypot(a.kld_unc, b.kld_unc) + 1e-6


def test_iquants_need_a_matrix_and_take_one(tiny, tmp_path, calibration):
    with pytest.raises(ConversionError, match=r"gguf:iq2_xs needs an importance matrix: add \?imatrix=") as e:
        convert(tiny("llama", "bpe"), "gguf:iq2_xs", tmp_path / "a")
    assert "\n" not in str(e.value) and not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    (a,) = [x for x in convert(tiny("llama", "bpe"), f"gguf:iq2_xs?imatrix={calibration}&imatrix_chunks=2", tmp_path / "b")
            if x.manifest.variant == "iq2_xs"]
    assert a.path.stat().st_size > 0 and a.manifest.details["calibration"]["chunks"] == 2


def test_bad_calibration_text_is_one_line_and_writes_nothing(tiny, tmp_path):
    with pytest.raises(DatasetError, match="dataset file not found"):
        convert(tiny("llama", "bpe"), "gguf:q4_0?imatrix=./no-such-calibration.txt", tmp_path / "a")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").glob("*.gguf"))
    short = tmp_path / "short.txt"
    short.write_text("too short to calibrate anything", encoding="utf-8")
    with pytest.raises(DatasetError, match="an importance matrix needs at least 512"):
        convert(tiny("llama", "bpe"), f"gguf:q4_0?imatrix={short}", tmp_path / "b")
    assert not any((tmp_path / "b").glob("*q4_0*"))


def test_measured_on_its_own_calibration_text_is_flagged(tiny, tmp_path):
    arts = convert(tiny("llama", "bpe"), "gguf:q4_0?imatrix=pydoc&imatrix_chunks=2", tmp_path / "a")
    q = next(a for a in arts if a.manifest.variant == "q4_0")
    from edge.core.progress import Progress

    notes = []

    class Notes(Progress):
        def note(self, message: str) -> None:
            notes.append(message)

    (row,) = bench([q.path], config=BenchConfig(reps=1, chunks=2), store=Store(tmp_path / "s.sqlite"), progress=Notes())
    assert row.quality["calibrated_on_eval_text"] is True
    assert "calibrated on the evaluation text: quality flattered" in flags(row)
    assert any(n.startswith("WARNING: gguf:q4_0") and "was calibrated on pydoc" in n for n in notes), notes


def test_tensor_type_overrides_reach_llama_cpp(tiny, tmp_path):
    import gguf

    spec = r"gguf:q4_0?types=attn_v=q8_0;blk\.0\.ffn_down=q5_0"
    (a,) = [x for x in convert(tiny("llama", "bpe"), spec, tmp_path) if x.manifest.variant == "q4_0"]
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(a.path)).tensors}  # read back by gguf-py
    assert {n: t for n, t in types.items() if "attn_v" in n} == {"blk.0.attn_v.weight": "Q8_0", "blk.1.attn_v.weight": "Q8_0"}
    assert types["blk.0.ffn_down.weight"] == "Q5_0" and types["blk.1.ffn_down.weight"] == "Q4_0"
    assert types["blk.0.attn_q.weight"] == "Q4_0"
    assert a.manifest.params["types"] == r"attn_v=q8_0;blk\.0\.ffn_down=q5_0" and "-types" in a.path.name
    recipe = tmp_path / "recipe.txt"
    recipe.write_text("attn_v=q8_0   # the values\n\n" + r"blk\.0\.ffn_down=q5_0" + "\n")
    b = next(x for x in convert(tiny("llama", "bpe"), f"gguf:q4_0?types=@{recipe}", tmp_path / "file")
             if x.manifest.variant == "q4_0")
    # a recipe file: the same overrides as written inline
    assert {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(b.path)).tensors} == types
    for bad, message in (("attn_v=q9_0", "a types entry takes f32, f16"), ("attn_v", "types entries are PATTERN=TYPE"),
                         ("attn_v(=q8_0", "is not a regular expression"), ("@/nonexistent/recipe.txt", "cannot read the recipe file")):
        with pytest.raises(EdgeError, match=message.replace("(", r"\(")):
            convert(tiny("llama", "bpe"), f"gguf:q4_0?types={bad}", tmp_path / "bad")
