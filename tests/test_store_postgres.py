"""The results store on a real PostgreSQL server (tests/postgres.py: Debian's postgresql, started in a temp
dir on 127.0.0.1) beside SQLite: the same migrations give the same tables and columns, rows round-trip the
same (floats exactly), two processes writing one store at once lose and duplicate nothing, two migrating at
once apply each migration once, migration 005 keeps the newest of duplicate rows, a row stored again replaces
its key's row (the old one kept as superseded), errors are one line without the password, and `edge report
--store postgresql://…` reads the store. Skipped without the server or psycopg, except under CI."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edge.core.errors import StoreError
from edge.migrations import MIGRATIONS
from edge.store import Result, Run, Store, TaskItem, TaskResult
from postgres import Postgres, pg_bin
from sshd import free_port

ROOT = Path(__file__).resolve().parent.parent
PPL = 12.345678901234567  # 17 significant figures: a 4-byte REAL would keep 7
_db_names = itertools.count()


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the PostgreSQL store tests")
    pytest.skip(why)


@pytest.fixture(scope="module")
def pg():
    bin_dir = pg_bin()
    if bin_dir is None:
        _unavailable("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'edge-llm[postgres]')")
    server = Postgres(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture()
def pg_url(pg) -> str:
    """A new, empty database on the server."""
    return pg.create_database(f"t{next(_db_names)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str | Path:
    """Each store test on both: an SQLite file, and a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "s.sqlite"
    return request.getfixturevalue("pg_url")


def result(run_id: int, key: int, **kw) -> Result:
    fields = dict(run_id=run_id, device="local", model="m", format=f"gguf:k{key}", artifact_path=f"/a/{key}.gguf",
                  artifact_sha256=f"sha-{key}", size_bytes=3_000_000_000 + key, bits_per_weight=4.5 + key / 7,
                  threads=4, reps=5, n_prompt=512, n_gen=128, pp_tps=1000.0 / 3, pp_tps_std=0.1, tg_tps=100.0 / 7,
                  tg_tps_std=1e-300, ttft_s=0.1, peak_rss_bytes=2**40 + key, dataset="pydoc", dataset_sha256="text",
                  ctx=512, chunks=8, ppl=PPL, ppl_unc=0.1, kld_mean=5e-6, kld_unc=1e-7, same_top=0.99,
                  config_sha256="cfg", conditions={"before": {"max_temp_c": 40.5}}, quality={"reference": "src"},
                  raw={"per_rep": [1.0, 2.5]}, created_at="2026-01-01T00:00:00+00:00")
    return Result(**{**fields, **kw})


def task_result(run_id: int | None, fmt: str, reference_id: int | None = None, **kw) -> TaskResult:
    fields = dict(device="local", model="m", format=fmt, artifact_path=f"/a/{fmt}", artifact_sha256=f"sha-{fmt}",
                  task="arc_easy", task_sha256="t", encoded_sha256="e", kind="choice", n=2, config_sha256="c",
                  run_id=run_id, acc=0.5, acc_se=1 / 3, dacc=-0.1, dacc_lo=-0.2, dacc_hi=0.0, p_mcnemar=0.25,
                  reference_id=reference_id, raw={"load_s": 0.5}, created_at="2026-01-01T00:00:00+00:00")
    return TaskResult(**{**fields, **kw})


ITEMS = [TaskItem(0, "q0", 1, 1, 1, True, [-1.25, PPL]), TaskItem(1, "q1", 0, 1, None, False, None, output="B")]


def columns(store: Store) -> dict[str, list[str]]:
    """Each table's columns, in order, as the database itself reports them."""
    if isinstance(store.path, Path):
        tables = [r["name"] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [r["name"] for r in store.db.execute(f"PRAGMA table_info({t})")] for t in sorted(tables)}
    rows = store.db.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position").fetchall()
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append(r["column_name"])
    return out


def test_same_migrations_same_tables_and_exact_floats(pg_url, tmp_path):
    with Store(tmp_path / "s.sqlite") as lite, Store(pg_url) as pgs:
        assert columns(lite) == columns(pgs)
        cols = columns(pgs)
        assert cols["results_superseded"] == cols["results"]
        assert cols["task_results_superseded"] == cols["task_results"]
        types = {r["data_type"] for r in pgs.db.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema()").fetchall()}
        assert types == {"bigint", "double precision", "text"}
        for s in (lite, pgs):
            run = s.start_run(Run(device="local", device_facts={}, config={}, tools={}))
            s.add_result(result(run.id, 0, ppl=PPL, tg_tps_std=1e-300, pp_tps=1000.0 / 3))
            (row,) = s.results()
            assert (row.ppl, row.tg_tps_std, row.pp_tps, row.size_bytes) == (PPL, 1e-300, 1000.0 / 3, 3_000_000_000)


def test_rows_round_trip_the_same_as_on_sqlite(pg_url, tmp_path):
    def fill(s: Store) -> None:
        run = s.start_run(Run(device="local", device_facts={"ram_bytes": 2**34}, config={"reps": 5},
                              tools={"llama.cpp": "b1"}, dataset="pydoc", started_at="2026-01-01T00:00:00+00:00"))
        for key in range(3):
            s.add_result(result(run.id, key, dataset_sha256=None if key == 2 else "text"))
        src = s.add_task_result(task_result(run.id, "source"), ITEMS)
        s.add_task_result(task_result(run.id, "gguf:q4_0", reference_id=src.id, acc=None), ITEMS[:1])
        s.finish_run(run, "done")

    def read(s: Store) -> tuple:
        runs = [replace(r, finished_at=None) for r in s.runs()]
        tasks = s.task_results()
        return (runs, s.results(), tasks, [s.task_items(t.id) for t in tasks],
                s.find_done("local", "sha-2", "cfg", None), s.find_done("local", "sha-1", "cfg", "text"),
                s.find_done("local", "sha-1", "cfg", None), s.find_task_done("local", "sha-source", "e", "c"),
                s.results(model="m", device="other"), s.task_results(task="arc_easy", device="local"))

    with Store(tmp_path / "s.sqlite") as lite, Store(pg_url) as pgs:
        fill(lite)
        fill(pgs)
        got, want = read(pgs), read(lite)
    assert got == want
    assert len(got[1]) == 3 and got[4].artifact_sha256 == "sha-2" and got[6] is None
    assert got[3] == [ITEMS, ITEMS[:1]] and got[2][1].reference_id == got[2][0].id


def test_storing_a_key_again_replaces_its_row_and_keeps_the_old_one(target):
    """A re-measured row replaces its key's row (a fresh id: the latest is the largest, as the report reads);
    the old row moves to results_superseded. A task scored again keeps its id (items and reference_id point
    at it), its old row moves to task_results_superseded and its items are the new ones."""
    with Store(target) as s:
        run = s.start_run(Run(device="local", device_facts={}, config={}, tools={}))
        first = s.add_result(result(run.id, 0, tg_tps=10.0))
        other = s.add_result(result(run.id, 1))
        again = s.add_result(result(run.id, 0, tg_tps=20.0))
        assert again.id > other.id > first.id
        assert [(r.artifact_sha256, r.tg_tps, r.id) for r in s.results()] == [("sha-1", other.tg_tps, other.id),
                                                                           ("sha-0", 20.0, again.id)]
        old = s.db.execute("SELECT id, tg_tps FROM results_superseded").fetchall()
        assert [(r["id"], r["tg_tps"]) for r in old] == [(first.id, 10.0)]
        assert s.add_result(result(run.id, 0, dataset_sha256=None)).id not in {first.id, again.id}  # another text
        assert s.add_result(result(run.id, 0, config_sha256=None)).id  # no settings digest: never a key
        assert s.add_result(result(run.id, 0, config_sha256=None)).id
        assert len(s.results()) == 5

        src = s.add_task_result(task_result(run.id, "source"), ITEMS)
        scored = s.add_task_result(task_result(run.id, "gguf:q4_0", reference_id=src.id, acc=0.25), ITEMS)
        redo = s.add_task_result(task_result(run.id, "gguf:q4_0", reference_id=src.id, acc=0.75), ITEMS[1:])
        assert redo.id == scored.id and [t.acc for t in s.task_results()] == [0.5, 0.75]
        assert s.task_items(redo.id) == ITEMS[1:] and s.task_items(src.id) == ITEMS
        old = s.db.execute("SELECT id, acc FROM task_results_superseded").fetchall()
        assert [(r["id"], r["acc"]) for r in old] == [(scored.id, 0.25)]


def test_threads_share_one_store(target):
    """One bench worker per device, each in its own thread, writing through the same Store."""
    with Store(target) as s:
        run = s.start_run(Run(device="local", device_facts={}, config={}, tools={}))
        errors: list[BaseException] = []

        def write(dev: str) -> None:
            try:
                for key in range(40):
                    s.add_result(result(run.id, key, device=dev))
                    s.find_done(dev, f"sha-{key}", "cfg", "text")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(f"dev{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted((r.device, r.artifact_sha256) for r in s.results()) == sorted(
            (f"dev{i}", f"sha-{k}") for i in range(4) for k in range(40))


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_store_postgres import result
from edge.store import Run, Store

target, name, keys, ready, go = sys.argv[1], sys.argv[2], [int(k) for k in sys.argv[3].split(",")], *map(Path, sys.argv[4:6])
store = Store(target)
run = store.start_run(Run(device="local", device_facts={{}}, config={{"writer": name}}, tools={{}}))
ready.touch()
while not go.exists():
    time.sleep(0.005)
for key in keys:
    store.add_result(result(run.id, key, raw={{"writer": name}}))
store.finish_run(run, "done")
print(run.id)
"""


def _at_once(tmp_path: Path, argvs: list[list[str]], code: str) -> list[str]:
    """Start one process per argv, let them all go at the same moment, and their stdout (each must exit 0)."""
    go = tmp_path / "go"
    readies = [tmp_path / f"ready{i}" for i in range(len(argvs))]
    procs = [subprocess.Popen([sys.executable, "-c", code, *argv, str(ready), str(go)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for argv, ready in zip(argvs, readies)]
    deadline = time.time() + 60
    while not all(r.exists() for r in readies) and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
    return [out for out, _ in outs]


def test_two_processes_write_one_store_at_once(target, tmp_path):
    """200 rows each, the 100 shared keys written first by both (so they collide): afterwards every key once,
    none lost, no error; each shared key's other write is in results_superseded."""
    Store(target).close()  # migrated before: this test is about rows (migrating at once is the next one)
    shared, a_only, b_only = range(100, 200), range(0, 100), range(200, 300)
    keys_a = ",".join(map(str, [*shared, *a_only]))
    keys_b = ",".join(map(str, [*shared, *b_only]))
    code = WRITER.format(tests=str(ROOT / "tests"))
    runs = _at_once(tmp_path, [[str(target), "a", keys_a], [str(target), "b", keys_b]], code)
    with Store(target) as s:
        rows = s.results()
        assert sorted(r.artifact_sha256 for r in rows) == sorted(f"sha-{k}" for k in range(300))
        assert len({r.id for r in rows}) == 300
        assert {r.raw["writer"] for r in rows if int(r.artifact_sha256[4:]) in shared} <= {"a", "b"}
        assert {r.raw["writer"] for r in rows if int(r.artifact_sha256[4:]) in a_only} == {"a"}
        old = s.db.execute("SELECT artifact_sha256, raw FROM results_superseded").fetchall()
        assert sorted(r["artifact_sha256"] for r in old) == sorted(f"sha-{k}" for k in shared)
        survivor = {r.artifact_sha256: r.raw["writer"] for r in rows}
        assert all(json.loads(r["raw"])["writer"] != survivor[r["artifact_sha256"]] for r in old)
        assert sorted(r.status for r in s.runs()) == ["done", "done"] and len(set(runs)) == 2


MIGRATOR = """
import json, sys, time
from pathlib import Path
import edge.store as st

applied = []
migrate = st.Store.migrate
def recording(self):
    names = migrate(self)
    applied.extend(names)
    return names
st.Store.migrate = recording
ready, go = map(Path, sys.argv[2:4])
ready.touch()
while not go.exists():
    time.sleep(0.002)
st.Store(sys.argv[1]).close()
print(json.dumps(applied))
"""


def test_migrating_twice_or_from_two_processes_at_once_applies_each_once(target, tmp_path):
    outs = _at_once(tmp_path, [[str(target)], [str(target)]], MIGRATOR)
    a, b = (json.loads(o) for o in outs)
    names = [n for n, _ in MIGRATIONS]
    assert sorted(a + b) == sorted(names) and not set(a) & set(b)  # each applied once, by one of them
    with Store(target) as s:
        assert s.migrate() == []
        assert sorted(r["name"] for r in s.db.execute("SELECT name FROM _migrations").fetchall()) == sorted(names)


def test_migration_005_keeps_the_newest_of_duplicate_rows(tmp_path):
    """A store made before the unique keys (migrations 001-004) with rows measured twice: the newest stays,
    the older ones move to results_superseded / task_results_superseded; rows without a settings digest and
    rows of another text are not duplicates; a superseded task row's items stay in task_items."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:4]:
        db.executescript(sql)
        db.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    db.execute("INSERT INTO runs (id, started_at, device, device_facts, config, tools) VALUES (1, 'then', 'local', '{}', '{}', '{}')")
    rows = [  # id, artifact, config, dataset sha256, tg t/s
        (1, "a", "c", "text", 1.0), (2, "b", "c", "text", 2.0), (3, "a", "c", "text", 3.0), (4, "a", "c", "text", 4.0),
        (5, "a", "c", None, 5.0), (6, "a", "c", None, 6.0), (7, "a", None, "text", 7.0), (8, "a", None, "text", 8.0),
        (9, "a", "c", "other", 9.0)]
    db.executemany("INSERT INTO results (id, run_id, created_at, device, model, format, artifact_path, artifact_sha256, "
                   "size_bytes, config_sha256, dataset_sha256, tg_tps) VALUES (?, 1, 'then', 'local', 'm', 'f', 'p', ?, 1, ?, ?, ?)",
                   rows)
    for tid, enc in ((1, "e"), (2, "e"), (3, "other")):
        db.execute("INSERT INTO task_results (id, created_at, device, model, format, artifact_path, artifact_sha256, task, "
                   "task_sha256, encoded_sha256, kind, n, config_sha256, acc) VALUES (?, 'then', 'local', 'm', 'f', 'p', "
                   "'a', 't', 't', ?, 'choice', 1, 'c', ?)", (tid, enc, tid / 10))
        db.execute("INSERT INTO task_items VALUES (?, 0, 'q', 1, 1, 1, 1, NULL, NULL)", (tid,))
    db.commit()
    db.close()

    with Store(path) as s:
        assert [r.id for r in s.results()] == [2, 4, 6, 7, 8, 9]
        assert [r["id"] for r in s.db.execute("SELECT id FROM results_superseded ORDER BY id")] == [1, 3, 5]
        assert [r.tg_tps for r in s.results() if r.artifact_sha256 == "a" and r.dataset_sha256 == "text"
                and r.config_sha256 == "c"] == [4.0]
        assert [t.id for t in s.task_results()] == [2, 3]
        assert [r["id"] for r in s.db.execute("SELECT id FROM task_results_superseded")] == [1]
        assert len(s.task_items(1)) == 1
        s.add_result(Result(run_id=1, device="local", model="m", format="f", artifact_path="p", artifact_sha256="b",
                            size_bytes=1, config_sha256="c", dataset_sha256="text", tg_tps=2.5))
        assert len(s.results()) == 6 and s.find_done("local", "b", "c", "text").tg_tps == 2.5


def test_errors_are_one_line_without_the_password(pg, monkeypatch):
    secret = "s3cr3t-pw"
    nobody = f"postgresql://edge:{secret}@127.0.0.1:{free_port()}/edge"
    with pytest.raises(StoreError, match=r"cannot open the results store postgresql://edge@127\.0\.0\.1:\d+/edge: ") as err:
        Store(nobody)
    no_db = pg.url("no_such_db", password=secret) + f"?password={secret}&application_name=edge"
    with pytest.raises(StoreError, match="no_such_db") as err2:
        Store(no_db)
    for e in (err, err2):
        assert "\n" not in str(e.value) and secret not in str(e.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(StoreError, match=r"needs psycopg: pip install 'edge-llm\[postgres\]'") as err3:
        Store(pg.url())
    assert "\n" not in str(err3.value)


def test_cli_report_reads_a_postgres_store(pg_url):
    with Store(pg_url) as s:
        run = s.start_run(Run(device="local", device_facts={}, config={}, tools={}))
        for key in range(2):
            s.add_result(result(run.id, key, tokens_sha256="tok"))
        s.finish_run(run, "done")
    env = {k: v for k, v in os.environ.items() if k != "EDGE_STORE"}
    by_option = subprocess.run([sys.executable, "-m", "edge.cli", "report", "-f", "json", "--store", pg_url],
                               capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    by_env = subprocess.run([sys.executable, "-m", "edge.cli", "report", "-f", "json"], capture_output=True, text=True,
                            cwd=ROOT, env={**env, "EDGE_STORE": pg_url}, timeout=120)
    for proc in (by_option, by_env):
        assert proc.returncode == 0, proc.stderr[-2000:]
        (matrix,) = json.loads(proc.stdout)
        assert matrix["model"] == "m" and sorted(matrix["formats"]) == ["gguf:k0", "gguf:k1"]
        assert {r["ppl"] for r in matrix["rows"]} == {PPL}
