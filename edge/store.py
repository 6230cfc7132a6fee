"""The local results store (SQLite). Rows are typed dataclasses; the schema comes from migrations.

Each finished artifact is committed at once, so an interrupted bench keeps what it measured.
"""

from __future__ import annotations

import json
import sqlite3
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

_JSON_COLUMNS = {"device_facts", "config", "tools"} | {m.key for m in METRICS if m.has("json")}


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

    def runs(self) -> list[Run]:
        return [_decode(Run, r) for r in self.db.execute("SELECT * FROM runs ORDER BY id")]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
