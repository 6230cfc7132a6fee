"""`edge report --format html` as a person sees it: the file opens in a real headless Chromium (Debian's
``chromium``) with no JavaScript error and no request leaving the file, every plot drew the marks the
store's rows call for (counted in the rendered DOM, each with a real on-screen box), and each plot's
area holds ink in a screenshot. The expected counts come from the rows the test wrote, not from edge."""

from __future__ import annotations

import os
import re

import pytest
from typer.testing import CliRunner

from browser import Chromium, chromium_binary, inked
from edge.cli import app
from test_recommend import LADDER, _store, ladder, row, task_row

needs_chromium = pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),
                                    reason="no chromium here (the README's test command installs it; CI fails instead)")


def lab_rows():
    """Two devices, three families; the phone lacks one format and its roofline."""
    rows = ladder("local", decode_gbs=12.0, membw_gbs=20.0)
    rows += [row("onnx:int4", "local", size_mib=86, kld=0.326, kld_se=0.006, tg=260.0, tg_std=5.0, decode_gbs=9.0, membw_gbs=20.0),
             row("executorch:8da8w", "local", size_mib=180, kld=0.021, kld_se=0.0005, tg=80.0, tg_std=2.0)]
    rows += [r for r in ladder("phone", tg_std=3.0) if r.format != "gguf:q8_0"]
    return rows


def tasks():
    return [task_row("gguf:f16", 0.0, -0.004, 0.004), task_row("gguf:q8_0", -0.004, -0.012, 0.004),
            task_row("gguf:q4_0", -0.06, -0.09, -0.03)]


@pytest.fixture()
def html_report(tmp_path):
    rows = lab_rows()
    st = _store(tmp_path, rows)
    for t in tasks():
        st.add_task_result(t, [])
    devices = tmp_path / "devices.toml"
    devices.write_text('[devices.phone]\ntransport = "adb"\nserial = "X1"\n\n[tiers]\nall = ["local", "phone"]\n')
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", "-f", "html", "-o", str(out), "--store", str(st.path),
                                   "--devices-file", str(devices), "--min-tg", "100", "--max-kld", "0.1"])
    assert res.exit_code == 0, res.output
    return out, rows


def test_html_is_one_self_contained_file(html_report):
    out, rows = html_report
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert not re.search(r'(?:src|href)="(?!#|data:)', text), "a resource outside the file"
    assert "Recommendation for m" in text and text.count('class="plot"') >= 5
    # every cell of the matrix is in the table, the flags too
    for r in rows:
        assert f"<td>{r.format}</td>" in text
    assert out.stat().st_size < 1_000_000


@needs_chromium
def test_html_draws_in_a_real_browser(html_report, tmp_path):
    out, rows = html_report
    local = [r for r in rows if r.device == "local"]
    expected = {  # marks per plot, from the rows written above
        "quality": len(local),                                      # local has the most KLD rows
        "decode": len(rows), "prefill": len(rows),
        "roofline": sum(1 for r in rows if r.decode_gbs and r.membw_gbs),
        "accuracy": len(tasks()), "tasks": len(tasks()),
    }
    with Chromium() as b:
        load = b.open(out)
        assert load.errors == []
        assert all(u.startswith(("file://", "data:")) for u in load.requests), load.requests
        plots = b.evaluate("""[...document.querySelectorAll('figure.plot')].map(f => {
            const r = f.getBoundingClientRect();
            const marks = [...f.querySelectorAll('g[id^="pt-"], g[id^="bar-"]')];
            return {id: f.id, marks: marks.length, titled: marks.filter(m => m.querySelector('title')).length,
                    drawn: marks.filter(m => { const b = m.getBoundingClientRect();
                        return b.width > 0 && b.height > 0 && b.left >= r.left - 1 && b.right <= r.right + 1; }).length,
                    x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height}; })""")
        by = {p["id"].removeprefix("plot-"): p for p in plots}
        assert {k: by[k]["marks"] for k in expected} == expected
        for name, p in by.items():
            assert p["drawn"] == p["marks"] == p["titled"], name
            png = b.screenshot({"x": p["x"], "y": p["y"], "width": p["w"], "height": p["h"]})
            assert inked(png) > 0.02, f"plot {name} is blank"
        assert "domains" not in by  # one text: no per-text plot
        # the recommendation sits on top, and the q4_0 point says what it is on hover
        assert b.evaluate("document.querySelector('h2').textContent") == "Recommendation"
        assert "KLD 0.251" in b.evaluate("[...document.querySelectorAll('#plot-quality title')].map(t => t.textContent).join('|')")
        assert inked(b.screenshot()) > 0.02


@needs_chromium
def test_quality_per_text_when_several_texts_were_measured(tmp_path):
    rows = ladder("local", dataset="pydoc") + [row(f, "local", size_mib=sz, kld=k * 2, kld_se=k / 25, dataset="code")
                                               for f, sz, k, _ in LADDER[1:]]
    st = _store(tmp_path, rows)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", "-f", "html", "-o", str(out), "--store", str(st.path)])
    assert res.exit_code == 0, res.output
    with Chromium() as b:
        assert b.open(out).errors == []
        marks = b.evaluate("[...document.querySelectorAll('#plot-domains g[id^=\"bar-\"]')].map(g => g.querySelector('title').textContent)")
    assert len(marks) == len(LADDER) + len(LADDER) - 1            # every format on pydoc, all but f16 on code
    assert any("on code: KLD 0.502" in t for t in marks)           # q4_0 on the code text: 2 × 0.251
