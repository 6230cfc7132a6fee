"""edge bench on real llama.cpp runs of tiny artifacts; the SQLite store; the matrix renderers."""

import csv
import io
import json
import math
import re
import sqlite3
from dataclasses import replace

import pytest

from converters.gguf.runtime import LlamaModel
from edge.bench import BenchConfig, bench
from edge.datasets import load_dataset
from edge.core.errors import StoreError
from edge.migrations import MIGRATIONS
from edge.core.progress import Progress
from edge.report import build_matrices, report
from edge.store import Store
from edge.measure.tokens import digest
from ppl_reference import transformers_ppl

CFG = BenchConfig(reps=2, n_prompt=128, n_gen=16, n_ttft=32, chunks=3)


@pytest.fixture(scope="module")
def benched(tiny_artifacts, tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store") / "r.sqlite")
    results = bench(list(tiny_artifacts.values()), config=CFG, store=store)
    return store, {r.format: r for r in results}


def test_bench_measures_every_artifact(benched, tiny_artifacts):
    store, rows = benched
    assert set(rows) == {"gguf:f16", "gguf:q8_0", "gguf:q4_0"}
    for r in rows.values():
        assert r.device == "local" and r.reps == 2 and r.threads >= 1
        assert r.pp_tps > 0 and r.tg_tps > 0 and r.ttft_s > 0 and r.load_s > 0
        assert r.pp_tps_std >= 0 and len(r.raw["pp_samples"]) == 2
        # peak RSS of the measuring process: more than the interpreter, less than this machine
        assert 20 * 2**20 < r.peak_rss_bytes < 8 * 2**30
        assert r.chunks == 3 and r.ctx == 512 and r.quality["tokens_scored"] == 3 * 255
        assert r.ppl > 1
    # every row is compared with the source checkpoint itself, on one token stream
    assert len({r.reference_sha256 for r in rows.values()}) == 1 and rows["gguf:f16"].reference_sha256
    assert len({r.tokens_sha256 for r in rows.values()}) == 1
    f16, q8, q4 = rows["gguf:f16"], rows["gguf:q8_0"], rows["gguf:q4_0"]
    assert 0 < f16.kld_mean < 1e-3 < q4.kld_mean  # f16 GGUF vs the fp32 source: what llama.cpp's f16 path costs
    assert f16.kld_mean < q8.kld_mean < q4.kld_mean
    assert q8.same_top >= q4.same_top
    assert len({round(r.ppl_base, 9) for r in rows.values()}) == 1
    assert q4.ln_ppl_ratio == pytest.approx(math.log(q4.ppl / q4.ppl_base), abs=1e-9) and q4.ln_ppl_ratio_unc > 0
    assert q4.kld_99_9 >= q4.kld_99 >= q4.kld_mean * 0 and q4.kld_max >= q4.kld_99_9


def test_source_reference_is_transformers_on_llama_cpp_s_tokens(benched, tiny):
    """The reference's perplexity equals transformers' own (independent oracle) on the tokens llama.cpp
    itself makes of the text (parse_special off), and every row scored those tokens."""
    _, rows = benched
    f16 = rows["gguf:f16"]
    with LlamaModel(f16.artifact_path) as m:
        tokens = m.tokenize(load_dataset("pydoc").text, add_special=True)
        bos = m.bos if m.add_bos else None
    assert f16.tokens_sha256 == digest(tokens[: 3 * 512])
    expected = transformers_ppl(tiny("llama", "bpe"), tokens, 512, 3, bos)
    assert f16.ppl_base == pytest.approx(expected, rel=1e-4)


def test_f16_perplexity_equals_transformers(benched, tiny):
    _, rows = benched
    ref = rows["gguf:f16"]
    with LlamaModel(ref.artifact_path) as m:
        tokens = m.tokenize(load_dataset("pydoc").text, add_special=True)
        bos = m.bos if m.add_bos else None
    expected = transformers_ppl(tiny("llama", "bpe"), tokens, 512, 3, bos)
    assert ref.ppl == pytest.approx(expected, rel=0.01)


def test_store_keeps_provenance(benched):
    store, rows = benched
    run = store.runs()[-1]
    assert run.status == "done" and run.device == "local" and run.finished_at
    assert run.device_facts["cores_logical"] >= 1 and run.device_facts["ram_bytes"] > 0 and run.device_facts["os"]
    assert run.tools["llama_cpp_python"] and run.config["reps"] == 2 and run.dataset == "pydoc"
    assert len(store.results(model=rows["gguf:f16"].model)) == 3


def test_report_renders_the_matrix(benched):
    store, rows = benched
    results = store.results()
    [m] = build_matrices(results)
    assert m.devices == ["local"] and m.formats == ["gguf:f16", "gguf:q8_0", "gguf:q4_0"]
    md = report(results, "md")
    assert "| `gguf:q4_0` |" in md and "pp128 t/s" in md and "KLD" in md
    data = json.loads(report(results, "json"))
    assert {r["format"] for r in data[0]["rows"]} == set(rows)
    parsed = list(csv.DictReader(io.StringIO(report(results, "csv"))))
    assert float(parsed[2]["kld_mean"]) == pytest.approx(rows["gguf:q4_0"].kld_mean)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(report(results, "table"))
    assert "gguf:q8_0" in console.export_text()


def test_matrix_gives_uncertainties_and_states_its_protocol(benched):
    store, rows = benched
    results = store.results()
    md = report(results, "md")
    assert "ctx 512 × 3 chunks (765 tokens scored" in md and "2 reps" in md and "KLD vs source checkpoint" in md
    q4 = rows["gguf:q4_0"]
    line = next(ln for ln in md.splitlines() if "`gguf:q4_0`" in ln)
    assert f"{q4.ppl:.3f} ± {q4.ppl_unc:.3f}" in line and f"{q4.kld_mean:.5f} ± {q4.kld_unc:.5f}" in line
    assert f"{100 * q4.same_top:.2f} ± {100 * q4.same_top_unc:.2f}" in line and "(n=2)" in md
    f16 = rows["gguf:f16"]  # a KLD below 1e-3 keeps its digits: 6.8e-06, not 0.00001
    assert f"{f16.kld_mean:.2e} ± " in next(ln for ln in md.splitlines() if "`gguf:f16`" in ln)
    rec = {r["format"]: r for r in json.loads(report(results, "json"))[0]["rows"]}["gguf:q4_0"]
    assert rec["ppl_delta_pct"] == pytest.approx(100 * (q4.ppl / q4.ppl_base - 1), rel=1e-6)
    assert rec["ppl_delta_pct_unc"] > 0 and rec["kld_99"] <= rec["kld_99_9"] <= rec["kld_max"]
    parsed = list(csv.DictReader(io.StringIO(report(results, "csv"))))
    assert {"ppl_unc", "kld_unc", "kld_99", "kld_99_9", "kld_max", "same_top_unc", "delta_p_rms", "ttft_s_std",
            "tokens_sha256", "reps", "ppl_delta_pct_unc"} <= set(parsed[0])


def test_rows_measured_with_other_settings_are_not_pivoted_together(benched, tiny_artifacts, tmp_path):
    store, rows = benched
    [other] = bench([tiny_artifacts["q8_0"]], config=BenchConfig(reps=1, n_prompt=64, n_gen=8, n_ttft=8, chunks=2),
                    store=store)
    matrices = build_matrices(store.results())
    assert len(matrices) == 2  # the later row does not replace the q8_0 cell measured with 3 chunks, 2 reps
    first, second = matrices
    assert first.cells[("gguf:q8_0", "local")].id == rows["gguf:q8_0"].id
    assert second.formats == ["gguf:q8_0"] and second.protocol["chunks"] == 2
    md = report(store.results(), "md")
    line = [ln for ln in md.splitlines() if "`gguf:q8_0`" in ln][1]
    assert "± n/a" in line and not re.search(r"± 0\.0+ ", line)  # one repetition has no spread to show


def test_interrupted_bench_keeps_finished_rows(tiny_artifacts, tmp_path):
    class StopOnSecond(Progress):
        def start(self, description, total=None):
            if "gguf:q8_0" in description:
                raise KeyboardInterrupt

    store = Store(tmp_path / "r.sqlite")
    with pytest.raises(KeyboardInterrupt):
        bench([tiny_artifacts["f16"], tiny_artifacts["q8_0"]], config=replace(CFG, interleave=False), store=store,
              progress=StopOnSecond())
    assert [r.format for r in store.results()] == ["gguf:f16"]
    assert store.runs()[-1].status == "interrupted"


def _runner_children() -> list[str]:
    """This process's children that are measuring processes (read from /proc)."""
    import os
    from pathlib import Path

    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and "device_bench.runner" in cmd:
            out.append(cmd)
    return out


def test_interleaved_repetitions_each_artifact_in_its_own_warm_process(tiny_artifacts, tmp_path):
    """Repetition r of every artifact before repetition r+1 of any (A B C A B C), each process loaded once;
    per-repetition values kept; quality identical to one artifact after another; an interruption leaves no
    measuring process behind and the same command then measures everything."""
    class Steps(Progress):
        def __init__(self, stop=None):
            self.seen, self.stop = [], stop

        def start(self, description, total=None):
            self.seen.append(description)
            if self.stop and self.stop in description:
                raise KeyboardInterrupt

    arts = [tiny_artifacts[v] for v in ("f16", "q8_0", "q4_0")]
    store = Store(tmp_path / "r.sqlite")
    with pytest.raises(KeyboardInterrupt):
        bench(arts, config=CFG, store=store, progress=Steps(stop="repetition 2/2, interleaved — gguf:q8_0"))
    assert store.results() == [] and store.runs()[-1].status == "interrupted"
    assert not _runner_children()
    steps = Steps()
    rows = {r.format: r for r in bench(arts, config=CFG, store=store, progress=steps)}
    order = [d.split("— ")[1] for d in steps.seen if "interleaved —" in d]
    assert order == ["gguf:f16", "gguf:q8_0", "gguf:q4_0"] * 2
    assert sum("loading" in d for d in steps.seen) == 3
    seq = {r.format: r for r in bench(arts, config=replace(CFG, interleave=False), store=store)}
    for fmt, r in rows.items():
        assert r.raw["interleaved"] == 3 and seq[fmt].raw["interleaved"] == 0
        assert len(r.raw["pp_samples"]) == len(r.raw["tg_samples"]) == 2 and r.tg_tps > 0
        assert r.ppl == pytest.approx(seq[fmt].ppl, rel=1e-9) and r.kld_mean == pytest.approx(seq[fmt].kld_mean, rel=1e-6)


def test_quantized_artifact_alone_still_gets_kld(tiny_artifacts, tmp_path):
    """The source checkpoint is the reference: no float artifact needs to be benched beside it."""
    store = Store(tmp_path / "r.sqlite")
    [row] = bench([tiny_artifacts["q4_0"]], config=BenchConfig(reps=1, n_prompt=64, n_gen=8, n_ttft=8, chunks=2),
                  store=store)
    assert row.format == "gguf:q4_0" and row.kld_mean > 0


def test_store_migrations(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with Store(path) as s:
        assert s.migrate() == []  # idempotent
        names = [r[0] for r in s.db.execute("SELECT name FROM _migrations")]
    assert names == [n for n, _ in MIGRATIONS]
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES ('999_future', 'x')")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer edge"):
        Store(path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not an edge results store"):
        Store(tmp_path / "junk.sqlite")


def test_empty_store_report_says_what_to_do(tmp_path):
    from edge.core.errors import EdgeError

    with pytest.raises(EdgeError, match="run `edge bench"):
        report([], "md")


def test_named_corpus_and_own_text(tiny_artifacts, tmp_path):
    """Quality on a named domain corpus (exllamav2's calibration text, read as a file) and on the user's file."""
    from edge.datasets import DATASETS

    code = load_dataset("code")
    assert len(code.text) > 100_000 and "def " in code.text
    assert "exllamav2" not in __import__("sys").modules  # read as a file, never imported
    own = tmp_path / "mine.txt"
    own.write_text(load_dataset("tiny").text[:40_000], encoding="utf-8")
    cfg = BenchConfig(reps=1, n_prompt=64, n_gen=8, n_ttft=8, chunks=2)
    store = Store(tmp_path / "r.sqlite")
    a = bench([tiny_artifacts["f16"]], config=cfg, dataset="code", store=store)[0]
    b = bench([tiny_artifacts["f16"]], config=cfg, dataset=str(own), store=store)[0]
    assert (a.dataset, b.dataset) == ("code", "mine.txt") and a.ppl != b.ppl
    assert "wiki" in DATASETS and len(build_matrices(store.results())) == 2  # one matrix per text


def test_metrics_table_matches_the_migrations(tmp_path):
    """edge.metrics is the results table: after every migration its columns and declared types are the
    table's lines (plus id), and Result's fields are the table's keys (a line without a migration fails)."""
    from dataclasses import fields

    from edge.metrics import METRICS
    from edge.store import Result

    with Store(tmp_path / "s.sqlite") as s:
        info = s.db.execute("PRAGMA table_info(results)").fetchall()
    columns = {r["name"]: r["type"] + (" NOT NULL" if r["notnull"] else "") for r in info}
    assert columns == {"id": "INTEGER", **{m.key: m.sql for m in METRICS}}
    assert len(METRICS) == len({m.key for m in METRICS})
    assert {f.name for f in fields(Result)} == {"id"} | {m.key for m in METRICS}


def test_jobs_cross_the_process_boundary_typed_and_versioned(tmp_path):
    """A Job goes to the measuring process as JSON and comes back whole; a job of another version is refused
    in one line, and the error comes back as the same class (BenchError)."""
    import subprocess
    import sys

    from device_bench.stream import decode_result
    from edge.core.errors import BenchError
    from edge.core.jobs import JOB_VERSION, Cooldown, Job, JobConfig, JobResult, QualityJob

    job = Job("gguf", "/x.gguf", JobConfig(reps=2, cooldown=Cooldown(45.0)), quality=QualityJob("/t.txt", tokens_file="/t.i32", bos=1, base_in="/b"))
    assert Job.from_json(json.loads(json.dumps(job.to_json()))) == job
    r = JobResult.from_json({"pp_tps": 1.5, "mode": "native"})
    assert r.pp_tps == 1.5 and r.extra == {"mode": "native"} and r.to_json()["mode"] == "native"
    old = {**job.to_json(), "version": 0}
    proc = subprocess.run([sys.executable, "-m", "device_bench.runner"], input=json.dumps(old), capture_output=True,
                          text=True)
    assert proc.returncode == 1
    with pytest.raises(BenchError, match=f"takes jobs of version {JOB_VERSION}, not 0") as err:
        decode_result(proc.stdout, proc.returncode, [])
    assert "\n" not in str(err.value)
