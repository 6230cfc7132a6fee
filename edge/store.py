"""The local results store (SQLite). Rows are typed dataclasses; the schema comes from migrations.

Each finished artifact is committed at once, so an interrupted bench keeps what it measured.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core.errors import StoreError
from edge.metrics import METRICS, Metric
from edge.migrations import MIGRATIONS
from edge.core.paths import default_store


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Run:
    device: str
    device_facts: dict[str, Any]
    config: dict[str, Any]
    tools: dict[str, str]
    dataset: str | None = None
    dataset_sha256: str | None = None
    started_at: str = field(default_factory=now)
    finished_at: str | None = None
    status: str = "running"
    id: int | None = None


_PY_TYPES = {"TEXT": str, "INTEGER": int, "REAL": float}


def _result_field(m: Metric) -> tuple[str, Any, Any]:
    if m.has("json"):
        return m.key, dict[str, Any], field(default_factory=dict)
    typ = _PY_TYPES[m.sql.split()[0]]
    if m.has("stamp"):
        return m.key, typ, field(default_factory=now)
    return (m.key, typ, field()) if m.required else (m.key, typ | None, field(default=None))


# one row of the results table, made from edge.metrics (the fields a Result must be given come first)
Result = make_dataclass("Result", [_result_field(m) for m in sorted(METRICS, key=lambda m: not m.required)]
                        + [("id", int | None, field(default=None))])
Result.__module__ = __name__

@dataclass
class TaskResult:
    """One task scored on one artifact on one device (or on the source checkpoint: format ``source``),
    with its statistics against the source model on the same items (``edge.tasks.stats``)."""

    device: str
    model: str
    format: str
    artifact_path: str
    artifact_sha256: str
    task: str
    task_sha256: str
    encoded_sha256: str
    kind: str
    n: int
    config_sha256: str
    run_id: int | None = None
    source_sha256: str | None = None
    task_source: str | None = None
    licence: str | None = None
    acc: float | None = None
    acc_se: float | None = None
    acc_norm: float | None = None
    acc_norm_se: float | None = None
    dacc: float | None = None
    dacc_lo: float | None = None
    dacc_hi: float | None = None
    dacc_se: float | None = None
    p_mcnemar: float | None = None
    flips: float | None = None
    flips_se: float | None = None
    choice_kl: float | None = None
    choice_kl_se: float | None = None
    items_per_s: float | None = None
    seconds: float | None = None
    threads: int | None = None
    reference_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now)
    id: int | None = None


@dataclass
class TaskItem:
    """One item's outcome: the choices' log-likelihoods (or the generated text), the answer chosen."""

    idx: int
    item_id: str
    gold: int | None
    pred: int | None
    pred_norm: int | None
    correct: bool
    lls: list[float] | None = None
    output: str | None = None


_JSON_COLUMNS = {"device_facts", "config", "tools", "lls"} | {m.key for m in METRICS if m.has("json")}


def _encode(obj: Any) -> dict[str, Any]:
    row = asdict(obj)
    row.pop("id")
    return {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in row.items()}


def _decode(cls: type, row: sqlite3.Row) -> Any:
    names = {f.name for f in fields(cls)}
    data = {k: (json.loads(row[k]) if k in _JSON_COLUMNS and row[k] is not None else row[k])
            for k in row.keys() if k in names}
    return cls(**data)


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_store()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the results store {self.path}: {exc}") from None
        self.db.row_factory = sqlite3.Row
        self.migrate()

    def migrate(self) -> list[str]:
        try:
            self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {r[0] for r in self.db.execute("SELECT name FROM _migrations")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not an edge results store ({exc})") from None
        known = {name for name, _ in MIGRATIONS}
        if done - known:
            raise StoreError(f"{self.path} was written by a newer edge (migrations {', '.join(sorted(done - known))})")
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.db:
                self.db.executescript("BEGIN;" + sql + ";INSERT INTO _migrations VALUES ('%s', '%s');COMMIT;" % (name, now()))
            applied.append(name)
        return applied

    def _insert(self, table: str, obj: Any) -> int:
        row = _encode(obj)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.db:
            cur = self.db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))
        obj.id = cur.lastrowid
        return int(cur.lastrowid)

    def start_run(self, run: Run) -> Run:
        self._insert("runs", run)
        return run

    def finish_run(self, run: Run, status: str) -> None:
        run.status, run.finished_at = status, now()
        with self.db:
            self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, run.finished_at, run.id))

    @contextmanager
    def running(self, run: Run) -> Iterator[Run]:
        """``run`` started, and finished as done, interrupted (Ctrl-C) or failed, whatever happens inside."""
        self.start_run(run)
        status = "failed"
        try:
            yield run
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.finish_run(run, status)

    def add_result(self, result: Result) -> Result:
        self._insert("results", result)
        return result

    def results(self, *, model: str | None = None, device: str | None = None) -> list[Result]:
        sql, args = "SELECT * FROM results WHERE 1=1", []
        if model:
            sql += " AND model = ?"
            args.append(model)
        if device:
            sql += " AND device = ?"
            args.append(device)
        return [_decode(Result, r) for r in self.db.execute(sql + " ORDER BY id", args)]

    def find_done(self, device: str, artifact_sha256: str, config_sha256: str, dataset_sha256: str | None) -> Result | None:
        """The latest row already measured for this artifact on this device with these settings (resume)."""
        row = self.db.execute(
            "SELECT * FROM results WHERE device = ? AND artifact_sha256 = ? AND config_sha256 = ? "
            "AND dataset_sha256 IS ? ORDER BY id DESC LIMIT 1", (device, artifact_sha256, config_sha256, dataset_sha256)).fetchone()
        return None if row is None else _decode(Result, row)

    def add_task_result(self, result: TaskResult, items: list[TaskItem]) -> TaskResult:
        """The task's row and its items in one transaction: a task is stored whole or not at all."""
        row = _encode(result)
        with self.db:
            cur = self.db.execute(f"INSERT INTO task_results ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                                  list(row.values()))
            result.id = int(cur.lastrowid)
            self.db.executemany(
                "INSERT INTO task_items (task_result_id, idx, item_id, gold, pred, pred_norm, correct, lls, output) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(result.id, it.idx, it.item_id, it.gold, it.pred, it.pred_norm, int(it.correct),
                  None if it.lls is None else json.dumps(it.lls), it.output) for it in items])
        return result

    def task_results(self, *, model: str | None = None, device: str | None = None,
                     task: str | None = None) -> list[TaskResult]:
        sql, args = "SELECT * FROM task_results WHERE 1=1", []
        for col, val in (("model", model), ("device", device), ("task", task)):
            if val:
                sql += f" AND {col} = ?"
                args.append(val)
        return [_decode(TaskResult, r) for r in self.db.execute(sql + " ORDER BY id", args)]

    def task_items(self, result_id: int) -> list[TaskItem]:
        rows = self.db.execute("SELECT * FROM task_items WHERE task_result_id = ? ORDER BY idx", (result_id,))
        return [TaskItem(r["idx"], r["item_id"], r["gold"], r["pred"], r["pred_norm"], bool(r["correct"]),
                         None if r["lls"] is None else json.loads(r["lls"]), r["output"]) for r in rows]

    def find_task_done(self, device: str, artifact_sha256: str, encoded_sha256: str, config_sha256: str) -> TaskResult | None:
        row = self.db.execute(
            "SELECT * FROM task_results WHERE device = ? AND artifact_sha256 = ? AND encoded_sha256 = ? "
            "AND config_sha256 = ? ORDER BY id DESC LIMIT 1", (device, artifact_sha256, encoded_sha256, config_sha256)).fetchone()
        return None if row is None else _decode(TaskResult, row)

    def runs(self) -> list[Run]:
        return [_decode(Run, r) for r in self.db.execute("SELECT * FROM runs ORDER BY id")]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
