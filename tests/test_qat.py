"""Quantization-aware training (``method=qat``): the GGUF fake quantizers are llama.cpp's own block rules
(checked against llama.cpp's quantizer, the oracle), QAT lowers the quantized artifact's divergence on its
training text as the runtime measures it, each family names the method in its manifest, refusals are one
line (tests/test_methods.py, with every method's), and an interrupted run leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.convert import convert


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    from edge.datasets import load_dataset

    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text(load_dataset("pydoc").text[:40_000], encoding="utf-8")
    return path


@pytest.mark.parametrize("variant", ["q4_0", "q8_0"])
def test_fake_quantizers_are_llama_cpps_block_rules(tiny, tmp_path, variant):
    """llama.cpp's quantizer on the f32 GGUF of a checkpoint, dequantized by gguf-py, equals the fake
    quantizer applied to the checkpoint's weights — every block weight, to the bit."""
    import gguf
    import torch

    from converters.gguf import qat
    from converters.gguf.quantize import quantize
    from converters.gguf.writer import gguf_names, unpermute_qk, write_gguf
    from edge.core.checkpoint import Checkpoint

    ck = Checkpoint.open(tiny("llama", "bpe", hidden=64, init=0.5, seed=3))
    f32, out = tmp_path / "f32.gguf", tmp_path / f"{variant}.gguf"
    write_gguf(ck, f32, "f32", name="t")
    quantize(f32, out, variant)
    stored = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
    checked = 0
    for hf, g in gguf_names(ck).items():
        t = stored[g]
        if t.tensor_type.name not in qat.FAKE:
            continue
        w = ck.tensor(hf)
        if hf.endswith("q_proj.weight"):
            w = unpermute_qk(w, ck.hparams.n_head)
        elif hf.endswith("k_proj.weight"):
            w = unpermute_qk(w, ck.hparams.n_head_kv)
        want = qat.FAKE[t.tensor_type.name](torch.from_numpy(np.ascontiguousarray(w))).numpy()
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
        np.testing.assert_array_equal(got, want, err_msg=hf)
        checked += 1
    assert checked >= 2 * 7


def test_q4_0_rule_on_hard_blocks():
    """Ties in magnitude (the first wins, its sign decides), an all-zero block, the positive extreme."""
    import torch

    from converters.gguf.qat import q4_0

    block = torch.zeros(3, 32)
    block[0, 3], block[0, 9] = -2.0, 2.0       # equal magnitudes: the first, −2, maps to −8 → d = 0.25
    block[0, 1] = 1.9
    block[2, 0] = 4.0                          # the largest positive maps to −8: d = −0.5
    block[2, 5] = -4.0 + 1e-3
    out = q4_0(block.reshape(1, -1)).reshape(3, 32)
    assert out[0, 3] == -2.0 and out[0, 9] == pytest.approx(1.75)      # +2 clamps at 7 · 0.25
    assert torch.all(out[1] == 0)
    assert out[2, 0] == 4.0 and out[2, 5] == pytest.approx(-3.5)


def _kld(artifacts, text, tmp_path) -> dict[str, float]:
    from edge.bench import BenchConfig, bench
    from edge.store import Store

    store = Store(tmp_path / "kld.sqlite")
    rows = bench([a.path for a in artifacts], config=BenchConfig(reps=1, chunks=4), dataset=str(text), store=store)
    return {r.format: r.kld_mean for r in rows}


def test_gguf_qat_lowers_divergence_and_matches_the_grid(tiny, tmp_path, calib):
    """On its training text, the QAT Q4_0 file (re-quantized by llama.cpp) diverges less from the source
    than plain Q4_0, as llama.cpp measures it; the manifest names the method, its calibration, and a grid
    check with no weight off llama.cpp's re-quantization."""
    ck = tiny("llama", "bpe", tied=True)
    fmt = f"gguf:q4_0?method=qat&calib={calib}&calib_tokens=2048&steps=40&lr=2e-3"
    arts = convert(ck, f"gguf:q4_0,{fmt}", tmp_path / "out")
    qat = next(a for a in arts if "qat" in a.manifest.format)
    m = qat.manifest.details["method"]
    assert m["name"] == "qat" and m["steps"] == 40 and m["calibration"]["tokens"] == 2048
    assert m["fake_quantized"] == {"Q4_0": 14, "Q8_0": 1}, m["fake_quantized"]   # the tied embedding: Q8_0
    assert m["grid_check"]["weights_differing"] == 0 and m["grid_check"]["tensors"] == 15
    assert qat.manifest.details["calibration"]["sha256"] == m["calibration"]["sha256"]
    assert m["train_seconds"] > 0 and m["peak_rss_bytes"] > 0
    kld = _kld([a for a in arts if a.manifest.variant == "q4_0"], calib, tmp_path)
    assert kld[qat.manifest.format] < 0.8 * kld["gguf:q4_0"], kld
    assert not any(p.name.startswith("tmp") for p in (tmp_path / "out").iterdir())


def test_executorch_qat_changes_the_program_and_lowers_divergence(tiny, tmp_path, calib):
    """8da4w with QAT writes other weights than the affine program, names its method and torchao's grid
    check (the fake-quantized weights are the ones written), and diverges less on its training text."""
    ck = tiny("llama", "bpe", layers=2)
    fmt = f"executorch:8da4w?method=qat&calib={calib}&calib_tokens=2048&steps=40&lr=2e-3"
    arts = convert(ck, f"executorch:8da4w?method=affine,{fmt}", tmp_path / "out")
    qat = next(a for a in arts if "qat" in a.manifest.format)
    m = qat.manifest.details["method"]
    assert m["name"] == "qat" and m["grid_check"] == {"linears": 15, "max_abs_diff": 0.0}, m.get("grid_check")
    assert m["fake_quantized"]["4-bit group 64"] == 14
    kld = _kld([a for a in arts if a.manifest.variant == "8da4w"], calib, tmp_path)
    assert kld[qat.manifest.format] < 0.8 * kld["executorch:8da4w?method=affine"], kld


def test_interrupted_qat_leaves_nothing(tiny, tmp_path, calib):
    """Ctrl-C in the middle of the training loop: the conversion stops, no artifact or manifest of the QAT
    request is written, the scratch copy is gone, and the source checkpoint is unchanged."""
    from edge.core.checkpoint import Checkpoint
    from edge.core.progress import Progress

    class CtrlC(Progress):
        def update(self, completed=None, *, advance=None, description=None):
            if description and description.startswith("QAT q4_0: step 3/"):
                raise KeyboardInterrupt

    ck = tiny("llama", "bpe", tied=True)
    before = Checkpoint.open(ck).content_hash()
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert(ck, f"gguf:q4_0?method=qat&calib={calib}&calib_tokens=2048&steps=20", out, progress=CtrlC())
    assert not [p.name for p in out.rglob("*qat*")]
    assert Checkpoint.open(ck).content_hash() == before


def test_quantized_after_a_kept_reference(tiny, tmp_path):
    """A second conversion into the same folder keeps the earlier float reference and still records the
    writer's facts (architecture, tokenizer) in the quantized manifest."""
    ck = tiny("llama", "bpe")
    convert(ck, "gguf:q8_0", tmp_path)
    (art,) = convert(ck, "gguf:q4_0", tmp_path)
    assert art.manifest.details["architecture"] == "LlamaForCausalLM" and art.manifest.details["method"]["name"] == "rtn"
    assert "tensor_types" in art.manifest.details
