"""edge's ExecuTorch lowering writes export_llm's program, byte for byte, with less work: fewer whole-program
decompositions and none of the XNNPACK passes that find nothing to rewrite (converters.executorch.lowering).
Speed itself is measured in benchmarks/bench_et_export.py, not asserted here."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("executorch")

from converters.executorch.convert import _metadata, options  # noqa: E402
from converters.executorch.lowering import PASS_TRIGGERS, needed  # noqa: E402
from converters.executorch.recipe import export_pte  # noqa: E402
from edge.core.checkpoint import Checkpoint  # noqa: E402
from edge.core.formats import parse_formats  # noqa: E402


def _export(ckpt: Checkpoint, fmt: str, out, fast: bool, monkeypatch) -> tuple[bytes, Counter]:
    """Export with the real ExecuTorch stack; count (spying, each call still runs) the whole-program
    decompositions and the XNNPACK passes run."""
    from executorch.backends.xnnpack import _passes
    from torch.export import ExportedProgram

    seen: Counter = Counter()
    decompose, transform = ExportedProgram.run_decompositions, _passes.XNNPACKPassManager.transform

    def counted_decompose(self, *a, **kw):
        seen["decompositions"] += 1
        return decompose(self, *a, **kw)

    def counted_transform(self):
        seen["xnnpack passes"] += len(self.passes)
        return transform(self)

    with monkeypatch.context() as m:
        m.setattr(ExportedProgram, "run_decompositions", counted_decompose)
        m.setattr(_passes.XNNPACKPassManager, "transform", counted_transform)
        (req,) = parse_formats(fmt)
        export_pte(ckpt, options(req, ckpt), out, _metadata(ckpt), fast_lowering=fast)
    return out.read_bytes(), seen


@pytest.mark.parametrize("fmt", ["executorch:fp32", "executorch:8da4w?group=32&embedding=4"])
def test_edge_lowering_writes_export_llm_s_program_with_less_work(tiny, tmp_path, monkeypatch, fmt):
    ckpt = Checkpoint.open(tiny("llama", "bpe"))
    slow, slow_work = _export(ckpt, fmt, tmp_path / "export_llm.pte", False, monkeypatch)
    fast, fast_work = _export(ckpt, fmt, tmp_path / "edge.pte", True, monkeypatch)
    assert fast == slow  # the same program: quality, delegation and speed on the device are export_llm's
    assert fast_work["decompositions"] < slow_work["decompositions"]
    assert 0 < fast_work["xnnpack passes"] < slow_work["xnnpack passes"] / 2


def test_a_pass_is_skipped_only_where_none_of_its_operators_is():
    linear_partition = {"aten.linear.default", "aten.mul.Tensor", "aten.add.Tensor"}
    assert not needed("ConvertToUpsampleBilinear2d", linear_partition)
    assert needed("ConvertToUpsampleBilinear2d", linear_partition | {"aten._unsafe_index.Tensor"})
    assert needed("FuseActivationPass", linear_partition | {"aten.relu.default"})
    assert needed("ConvertToLinearPass", set())  # a pass the table does not name always runs
    assert all(triggers for triggers in PASS_TRIGGERS.values())
    from executorch.backends.xnnpack._passes import XNNPACKPassManager

    # every pass the table names is one XNNPACK runs (a misspelt name would quietly never be skipped)
    assert set(PASS_TRIGGERS) < {p.__name__ for p in XNNPACKPassManager(None).passes}
