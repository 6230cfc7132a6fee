"""Calibration text against evaluation text: a text's two halves are disjoint and whole, and the calibration ×
evaluation table built from real bench rows marks the cells measured on their own calibration text."""

from __future__ import annotations

import json

import pytest

from edge.core.errors import DatasetError
from edge.datasets import halves, load_dataset


@pytest.mark.parametrize("name", ["pydoc", "wiki"])
def test_a_texts_halves_split_it_at_a_paragraph(name):
    whole = load_dataset(name).text
    calib, held = load_dataset(f"{name}:calib"), load_dataset(f"{name}:heldout")
    assert calib.name == f"{name}:calib" and calib.sha256 != held.sha256
    assert whole == calib.text + "\n\n" + held.text
    assert 0.4 < len(calib.text) / len(whole) < 0.6


def test_halves_of_a_file_and_of_a_text_without_breaks(tmp_path):
    f = tmp_path / "ours.txt"
    f.write_text("one line\nanother line\n", encoding="utf-8")
    assert load_dataset(f"{f}:calib").text == "one line" and load_dataset(f"{f}:heldout").text == "another line\n"
    assert halves("abcd") == ("ab", "cd")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"{tmp_path / 'missing.txt'}:calib")


def test_calibration_table_from_bench_rows(tiny, tmp_path):
    from edge.bench import BenchConfig, bench
    from edge.calibration import calibration_report
    from edge.convert import convert
    from edge.store import Store

    arts = convert(tiny("llama", "bpe"), "gguf:f16,gguf:q4_0,gguf:q4_0?imatrix=pydoc:calib&imatrix_chunks=2", tmp_path / "a")
    paths = [a.path for a in arts if a.manifest.variant == "q4_0"]
    store = Store(tmp_path / "s.sqlite")
    for text in ("pydoc:calib", "pydoc:heldout"):
        bench(paths, config=BenchConfig(reps=1, chunks=2), dataset=text, store=store)
    recs = json.loads(calibration_report(store.results(), "json"))
    cells = {(r["calibration"], r["text"]): r for r in recs}
    assert set(cells) == {(c, t) for c in ("none", "pydoc:calib imatrix_chunks=2") for t in ("pydoc:calib", "pydoc:heldout")}
    assert [k for k, r in cells.items() if r["own_text"]] == [("pydoc:calib imatrix_chunks=2", "pydoc:calib")]
    assert all(r["format"] == "gguf:q4_0" and r["kld_mean"] > 0 for r in recs)
    md = calibration_report(store.results(), "md")
    assert "(own text)" in md and "| none |" in md


def test_report_by_calibration_on_the_cli(tmp_path):
    from typer.testing import CliRunner

    from edge.cli import app

    res = CliRunner().invoke(app, ["report", "--by", "calibration", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code != 0 and "no calibrated format in the store" in res.output
    res = CliRunner().invoke(app, ["report", "--by", "nonsense", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "calibration" in res.output
