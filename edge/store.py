"""The results store: an SQLite file (the embedded default) or a PostgreSQL database shared by a team
(``postgresql://…``), through the same named migrations. Rows are typed dataclasses.

Each finished artifact is committed at once, so an interrupted bench keeps what it measured. One row per key
(device, artifact sha256, settings, text): storing a row again replaces it atomically, the old one kept in
``results_superseded`` / ``task_results_superseded``, so concurrent writers (threads, processes, hosts) never
lose or duplicate a row. The SQL dialects' differences live in edge.store_sql.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core.errors import StoreError
from edge.core.paths import default_store, is_store_url
from edge.metrics import METRICS, Metric
from edge.migrations import MIGRATIONS
from edge.store_sql import POSTGRES, SQLITE, connect_postgres, connect_sqlite, one_line, redact


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


def _decode(cls: type, row: Any) -> Any:
    names = {f.name for f in fields(cls)}
    data = {k: (json.loads(row[k]) if k in _JSON_COLUMNS and row[k] is not None else row[k])
            for k in row.keys() if k in names}
    return cls(**data)


# each table's unique key (migration 005's unique indexes), as (expression, the column it reads)
Key = tuple[tuple[str, str], ...]
RESULT_KEY: Key = (("device", "device"), ("artifact_sha256", "artifact_sha256"), ("config_sha256", "config_sha256"),
                   ("COALESCE(dataset_sha256, '')", "dataset_sha256"))
TASK_KEY: Key = (("device", "device"), ("artifact_sha256", "artifact_sha256"), ("encoded_sha256", "encoded_sha256"),
                 ("config_sha256", "config_sha256"))
MIGRATION_LOCK = "edge migrations"  # what two hosts migrating one PostgreSQL store take in turn


def _conflict_target(key: Key) -> str:
    return ", ".join(expr if expr == col else f"({expr})" for expr, col in key)


def _key_where(key: Key) -> str:
    """The rows with the key of the row given (as ``_key_args``)."""
    return " AND ".join(f"{expr} = {expr.replace(col, '?')}" for expr, col in key)


def _key_args(key: Key, row: dict[str, Any]) -> list[Any]:
    return [row[col] for _, col in key]


def _lock_name(table: str, key: Key, row: dict[str, Any]) -> str:
    return json.dumps([table, *("" if v is None else v for v in _key_args(key, row))])


class Store:
    """Thread-safe: every access holds one lock (a bench worker per device writes through the same Store)."""

    def __init__(self, path: str | Path | None = None) -> None:
        target = path or default_store()
        self._lock = threading.Lock()
        self.path: str | Path
        if is_store_url(target):
            self.path, self.dialect = redact(str(target)), POSTGRES
            self.db, self._errors = connect_postgres(str(target))
        else:
            self.path, self.dialect = Path(target), SQLITE
            self.db, self._errors = connect_sqlite(self.path)
        self.migrate()

    @contextmanager
    def _access(self) -> Iterator[Any]:
        """The connection, to one thread at a time; the database's errors as one-line StoreErrors."""
        with self._lock:
            try:
                yield self.db
            except self._errors as exc:
                raise StoreError(f"results store {self.path}: {one_line(exc)}") from None

    def _sql(self, db: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        return db.execute(self.dialect.query(sql), list(args))

    @contextmanager
    def _transaction(self, lock: str | None = None) -> Iterator[Any]:
        """One write transaction; ``lock`` names what concurrent writers take in turn (PostgreSQL's advisory
        lock; SQLite's IMMEDIATE transaction already holds the whole file)."""
        with self._access() as db:
            db.execute(self.dialect.begin)
            try:
                if lock is not None and self.dialect.key_lock:
                    self._sql(db, self.dialect.key_lock, [lock])
                yield db
            except BaseException:
                self._rollback()
                raise
            db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._access() as db:
            return self._sql(db, sql, args).fetchall()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied, in one transaction that other writers wait for (PostgreSQL: an
        advisory lock; SQLite: the file's write lock). An up-to-date store is only read (it may be read-only)."""
        known = {name for name, _ in MIGRATIONS}
        with self._lock:
            done = self._migrations_done()
            if done is not None and done >= known:
                self._refuse_newer(done - known)
                return []
            try:
                self.db.execute(self.dialect.begin)
                if self.dialect.key_lock:
                    self._sql(self.db, self.dialect.key_lock, [MIGRATION_LOCK])
                self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
                done = {r["name"] for r in self.db.execute("SELECT name FROM _migrations").fetchall()}
            except self._errors as exc:
                self._rollback()
                raise StoreError(f"{self.path} is not an edge results store ({one_line(exc)})") from None
            if done - known:
                self._rollback()
                self._refuse_newer(done - known)
            applied: list[str] = []
            name = ""
            try:
                for name, sql in MIGRATIONS:
                    if name not in done:
                        for statement in self.dialect.script(sql):
                            self.db.execute(statement)
                        self._sql(self.db, "INSERT INTO _migrations VALUES (?, ?)", [name, now()])
                        applied.append(name)
                self.db.execute("COMMIT")
            except self._errors as exc:
                self._rollback()
                raise StoreError(f"{self.path}: migration {name} failed: {one_line(exc)}") from None
            return applied

    def _migrations_done(self) -> set[str] | None:
        """The migrations applied, read without a lock; None when that cannot be read (a new store)."""
        try:
            return {r["name"] for r in self.db.execute("SELECT name FROM _migrations").fetchall()}
        except self._errors:
            return None

    def _refuse_newer(self, unknown: set[str]) -> None:
        if unknown:
            raise StoreError(f"{self.path} was written by a newer edge (migrations {', '.join(sorted(unknown))})")

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except self._errors:  # none open (SQLite rolls back by itself on some errors)
            pass

    def _insert(self, db: Any, table: str, row: dict[str, Any]) -> int:
        sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)}) RETURNING id"
        return int(self._sql(db, sql, list(row.values())).fetchone()["id"])

    def _upsert(self, db: Any, table: str, key: Key, row: dict[str, Any], new_id: bool) -> int:
        """Insert ``row``, or replace the row with its key after copying that one to ``<table>_superseded``
        (writers of one key take turns: ``_transaction``'s lock). ``new_id``: the replaced row gets a fresh id,
        so ids keep the order rows were measured in (the report's latest row is the one with the largest id)."""
        cols = ", ".join(["id", *row])
        self._sql(db, f"INSERT INTO {table}_superseded ({cols}) SELECT {cols} FROM {table} WHERE {_key_where(key)}",
                  _key_args(key, row))
        sets = [f"id = {self.dialect.next_id.format(table=table)}"] if new_id else []
        sets += [f"{c} = excluded.{c}" for c in row]
        sql = (f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)}) "
               f"ON CONFLICT ({_conflict_target(key)}) DO UPDATE SET {', '.join(sets)} RETURNING id")
        return int(self._sql(db, sql, list(row.values())).fetchone()["id"])

    def start_run(self, run: Run) -> Run:
        with self._transaction() as db:
            run.id = self._insert(db, "runs", _encode(run))
        return run

    def finish_run(self, run: Run, status: str) -> None:
        run.status, run.finished_at = status, now()
        with self._transaction() as db:
            self._sql(db, "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, run.finished_at, run.id))

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
        """The row, or in place of the row with its key (re-measured), which moves to results_superseded."""
        row = _encode(result)
        with self._transaction(_lock_name("results", RESULT_KEY, row)) as db:
            result.id = self._upsert(db, "results", RESULT_KEY, row, new_id=True)
        return result

    def results(self, *, model: str | None = None, device: str | None = None) -> list[Result]:
        sql, args = "SELECT * FROM results WHERE 1=1", []
        if model:
            sql += " AND model = ?"
            args.append(model)
        if device:
            sql += " AND device = ?"
            args.append(device)
        return [_decode(Result, r) for r in self._rows(sql + " ORDER BY id", args)]

    def find_done(self, device: str, artifact_sha256: str, config_sha256: str, dataset_sha256: str | None) -> Result | None:
        """The row already measured for this artifact on this device with these settings (resume)."""
        rows = self._rows(
            "SELECT * FROM results WHERE device = ? AND artifact_sha256 = ? AND config_sha256 = ? "
            "AND dataset_sha256 IS ? ORDER BY id DESC LIMIT 1", (device, artifact_sha256, config_sha256, dataset_sha256))
        return _decode(Result, rows[0]) if rows else None

    def add_task_result(self, result: TaskResult, items: list[TaskItem]) -> TaskResult:
        """The task's row and its items in one transaction: a task is stored whole or not at all. A task scored
        again replaces the row with its key in place (same id: task_items and other rows' reference_id point at
        it); the old row moves to task_results_superseded, its items are replaced by the new ones."""
        row = _encode(result)
        with self._transaction(_lock_name("task_results", TASK_KEY, row)) as db:
            self._sql(db, f"DELETE FROM task_items WHERE task_result_id IN (SELECT id FROM task_results WHERE "
                          f"{_key_where(TASK_KEY)})", _key_args(TASK_KEY, row))
            result.id = self._upsert(db, "task_results", TASK_KEY, row, new_id=False)
            db.cursor().executemany(self.dialect.query(
                "INSERT INTO task_items (task_result_id, idx, item_id, gold, pred, pred_norm, correct, lls, output) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
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
        return [_decode(TaskResult, r) for r in self._rows(sql + " ORDER BY id", args)]

    def task_items(self, result_id: int) -> list[TaskItem]:
        rows = self._rows("SELECT * FROM task_items WHERE task_result_id = ? ORDER BY idx", (result_id,))
        return [TaskItem(r["idx"], r["item_id"], r["gold"], r["pred"], r["pred_norm"], bool(r["correct"]),
                         None if r["lls"] is None else json.loads(r["lls"]), r["output"]) for r in rows]

    def find_task_done(self, device: str, artifact_sha256: str, encoded_sha256: str, config_sha256: str) -> TaskResult | None:
        rows = self._rows(
            "SELECT * FROM task_results WHERE device = ? AND artifact_sha256 = ? AND encoded_sha256 = ? "
            "AND config_sha256 = ? ORDER BY id DESC LIMIT 1", (device, artifact_sha256, encoded_sha256, config_sha256))
        return _decode(TaskResult, rows[0]) if rows else None

    def runs(self) -> list[Run]:
        return [_decode(Run, r) for r in self._rows("SELECT * FROM runs ORDER BY id")]

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
