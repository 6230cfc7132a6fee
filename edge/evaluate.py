"""``edge eval`` as a library call: tasks scored on each artifact's own runtime on each device, through
the same measuring process as ``edge bench`` (agent mode on SSH/adb devices), each compared item by item
with the source checkpoint (transformers, fp32) on the same token ids.

Items are tokenized once, by the source checkpoint's tokenizer (``edge.tasks.encode``), so every runtime
and the source score the same ids; per-item results go into the store (``task_items``) with the row."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from device_bench.devices import Device, get_device
from edge.artifacts import Artifact, open_artifact
from edge.bench import Placed, family_tool_versions, place_artifact, progress_events, source_checkpoint
from edge.core.errors import DeviceError, EdgeError
from edge.core.fsutil import atomic_path
from edge.core.hashing import sha256_file
from edge.core.jobs import Job, JobConfig, TaskJob
from edge.core.paths import cache_dir
from edge.core.progress import NULL, Progress
from edge.measure.tasks import ENCODED_VERSION
from edge.measure.tokens import load_tokenizer, special_flags
from edge.store import Run, Store, TaskItem, TaskResult
from edge.tasks.checks import CHECKERS, cut_at_stop
from edge.tasks.items import ChoiceItem, Task
from edge.tasks.sources import expand, load_task
from edge.tasks import stats

SOURCE_FORMAT = "source:fp32"           # the rows of the source checkpoint itself (transformers, float32)
SOURCE_DEVICE = "host"


@dataclass
class EvalConfig:
    limit: int | None = None            # items per task, drawn by ``seed`` (None: all)
    seed: int = 0
    threads: int | None = None
    max_len: int = 2048                 # positions an item may take; longer ones lose context from the left

    def sha256(self, mode: str) -> str:
        return hashlib.sha256(json.dumps([asdict(self), mode, ENCODED_VERSION], sort_keys=True).encode()).hexdigest()


@dataclass
class Encoded:
    """One task as the source tokenizer's ids, in a file the devices are sent."""

    task: Task
    file: Path
    sha256: str
    data: dict[str, Any]
    tokenizer: Any                      # the source checkpoint's: generated ids are decoded with it


def evaluate(artifacts: list[str | Path], tasks: list[str], *, devices: list[str] | None = None,
             config: EvalConfig | None = None, store: Store | None = None, progress: Progress = NULL,
             devices_file: Path | None = None, resume: bool = True, source: str | Path | None = None) -> list[TaskResult]:
    """Score ``tasks`` (built-in names or JSONL files) on each artifact on each device; store and return one
    row per (artifact, device, task), the source checkpoint's own rows first."""
    cfg = config or EvalConfig()
    if not tasks:
        raise EdgeError("no task given: --task NAME[,NAME…] (see `edge tasks`) or a JSONL file")
    if cfg.limit is not None and cfg.limit < 1:
        raise EdgeError(f"--limit must be at least 1, not {cfg.limit}")
    loaded = [load_task(t, progress).subset(cfg.limit or implied, cfg.seed) for t, implied in expand(tasks)]
    if len({t.name for t in loaded}) < len(loaded):
        raise EdgeError(f"two tasks are called the same ({', '.join(t.name for t in loaded)}): give each file its own name")
    source_dir = None if source is None else Path(source).expanduser()
    if source_dir is not None and not source_dir.is_dir():
        raise EdgeError(f"--source {source_dir}: not a checkpoint folder")
    arts = [open_artifact(a, progress) for a in artifacts]
    targets = [get_device(d, devices_file) for d in devices or ["local"]]
    hashes: dict[Path, str] = {}
    sources = {}
    for art in arts:
        found = source_checkpoint(art, source_dir, hashes, progress, "its tasks cannot be scored")
        if found is None:
            raise EdgeError(f"{art.path.name}: tasks are scored on the source checkpoint's tokens and compared with "
                            "it; its source is not here: give --source CHECKPOINT")
        sources[art.path] = found
    limits = [cfg.max_len] + [int(a.manifest.details["max_seq_len"]) for a in arts if a.manifest.details.get("max_seq_len")]
    max_len = min(limits)
    own_store = store is None
    store = store or Store()
    workdir = Path(tempfile.mkdtemp(prefix="edge-eval-"))
    out: list[TaskResult] = []
    try:
        encoded: dict[tuple[str, str], Encoded] = {}
        references: dict[tuple[str, str], tuple[TaskResult, list[TaskItem]]] = {}
        for path, sha in dict.fromkeys(sources.values()):
            tok = load_tokenizer(path)
            flags = special_flags(path, tok)
            for task in loaded:
                enc = _encode(path, sha, task, max_len, workdir, progress, tok, flags)
                encoded[sha, task.name] = enc
                references[sha, task.name] = _source_rows(path, sha, enc, cfg, store, progress)
                out.append(references[sha, task.name][0])
        for device in targets:
            out += _eval_device(device, arts, loaded, sources, encoded, references, cfg, store, progress, resume)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_store:
            store.close()
    return out


def _encode(path: Path, sha: str, task: Task, max_len: int, workdir: Path, progress: Progress, tok, flags) -> Encoded:
    from edge.tasks.encode import encode, write_encoded

    progress.start(f"{task.name}: tokenizing {len(task.items)} items with {path.name}'s tokenizer")
    data = encode(task, tok, flags, max_len)
    file = write_encoded(data, workdir / f"{sha[:16]}-{task.sha256[:16]}.json")
    return Encoded(task, file, sha256_file(file), data, tok)


def _source_rows(path: Path, sha: str, enc: Encoded, cfg: EvalConfig, store: Store,
                 progress: Progress) -> tuple[TaskResult, list[TaskItem]]:
    """The source checkpoint's own answers on the task (transformers, fp32), cached by content and items."""
    from edge.measure.reference import HfRuntime
    from edge.measure.tasks import score_items

    cfg_sha = cfg.sha256("source")
    row = store.find_task_done(SOURCE_DEVICE, sha, enc.sha256, cfg_sha)
    if row is not None:
        return row, store.task_items(row.id or 0)
    cached = cache_dir() / "task-references" / f"{sha[:24]}-{enc.sha256[:24]}.json"
    if cached.exists():
        scored = json.loads(cached.read_text())
    else:
        progress.start(f"{enc.task.name}: scoring on the source checkpoint {path.name} (transformers, fp32)")
        with HfRuntime(path) as hf:
            scored = score_items(hf, enc.data, progress_events(progress, f"source {path.name}"))
            scored["threads"] = hf.n_threads
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            tmp.write_text(json.dumps(scored))
    items = _items(enc, scored)
    summary = _summary(enc.task, items, None)
    result = TaskResult(device=SOURCE_DEVICE, model=path.name, format=SOURCE_FORMAT, artifact_path=str(path),
                        artifact_sha256=sha, source_sha256=sha, task=enc.task.name, task_sha256=enc.task.sha256,
                        encoded_sha256=enc.sha256, task_source=enc.task.source, licence=enc.task.licence,
                        kind=enc.task.kind, n=len(items), config_sha256=cfg_sha, items_per_s=scored.get("items_per_s"),
                        seconds=scored.get("seconds"), threads=scored.get("threads"),
                        raw={"label": "source checkpoint, transformers fp32", "task_meta": enc.task.meta}, **summary)
    store.add_task_result(result, items)
    progress.note(_line(result))
    return result, items


def _items(enc: Encoded, scored: dict[str, Any]) -> list[TaskItem]:
    """Each item's outcome from what the measuring process returned (generated ids decoded by the source tokenizer)."""
    tok = enc.tokenizer
    out: list[TaskItem] = []
    for idx, (item, res) in enumerate(zip(enc.task.items, scored["results"], strict=True)):
        if isinstance(item, ChoiceItem) and len(item.choices) == 1:   # greedy cloze: right if greedy
            right = bool(res["greedy"][0])
            out.append(TaskItem(idx, item.id, 0, 0 if right else None, None, right, list(res["lls"])))
        elif isinstance(item, ChoiceItem):
            lengths = [len(c.continuation) for c in item.choices]
            pred, pred_norm = (int(x[0]) for x in stats.choose([res["lls"]], [lengths]))
            out.append(TaskItem(idx, item.id, item.gold, pred, pred_norm, pred == item.gold, list(res["lls"])))
        else:
            text = cut_at_stop(tok.decode(res["ids"], skip_special_tokens=True), item.stop)
            out.append(TaskItem(idx, item.id, None, None, None, CHECKERS[item.check](text, item.target), output=text))
    return out


def _answer(it: TaskItem) -> str:
    if it.lls is None:
        return f"text {it.output}"
    return f"greedy {it.correct}" if len(it.lls) == 1 else f"choice {it.pred}"


def _summary(task: Task, items: list[TaskItem], ref: list[TaskItem] | None) -> dict[str, Any]:
    """The row's statistics (``edge.tasks.stats``): accuracy over every item, length-normalised accuracy
    over the choice items; against the source's items: Δacc with its paired interval and McNemar's p, the
    share of answers that changed (a choice, or a generated text), the KL between the choices' softmaxes."""
    out: dict[str, Any] = {}
    acc = stats.accuracy([it.correct for it in items])
    out.update(acc=acc.value, acc_se=acc.se)
    choice = [i for i, it in enumerate(items) if it.lls is not None and len(it.lls) > 1]
    if choice:
        norm = stats.accuracy([items[i].pred_norm == items[i].gold for i in choice])
        out.update(acc_norm=norm.value, acc_norm_se=norm.se)
    if ref is None:
        return out
    d = stats.paired_delta([it.correct for it in items], [it.correct for it in ref])
    f = stats.flips([_answer(it) for it in items], [_answer(it) for it in ref])
    out.update(dacc=d.delta, dacc_lo=d.lo, dacc_hi=d.hi, dacc_se=d.se, p_mcnemar=d.p_mcnemar, flips=f.value,
               flips_se=f.se)
    if choice:
        kl = stats.choice_kl([ref[i].lls for i in choice], [items[i].lls for i in choice])
        out.update(choice_kl=kl.value, choice_kl_se=kl.se)
    return out


def _line(r: TaskResult) -> str:
    acc = f"acc {100 * r.acc:.1f} ± {100 * (r.acc_se or 0):.1f} %" if r.acc is not None else "acc n/a"
    vs = "" if r.dacc is None else (f", Δacc {100 * r.dacc:+.1f} [{100 * r.dacc_lo:+.1f}, {100 * r.dacc_hi:+.1f}]"
                                    f", flips {100 * (r.flips or 0):.1f} %")
    rate = f" — {r.items_per_s:.1f} items/s" if r.items_per_s else ""
    return f"{r.device} {r.format} {r.task}: {acc}{vs} on {r.n} items{rate}"


def _eval_device(device: Device, arts: list[Artifact], tasks: list[Task], sources, encoded, references,
                 cfg: EvalConfig, store: Store, progress: Progress, resume: bool) -> list[TaskResult]:
    progress.start(f"{device.name}: reading the device's facts")
    facts = device.facts()
    mode = facts.get("mode", "agent")
    if mode == "native":
        raise DeviceError(f"{device.name} runs in native mode: tasks are scored by edge's measuring process "
                          "(agent mode); set mode = \"agent\" for it in devices.toml")
    cfg_sha = cfg.sha256(mode)
    out: list[TaskResult] = []
    run = Run(device=device.name, device_facts=facts, config={"eval": asdict(cfg)}, tools=family_tool_versions())
    placed = Placed(device, mode)
    with store.running(run):
        for art in arts:
            sha = sources[art.path][1]
            todo: list[Encoded] = []
            for task in tasks:
                enc = encoded[sha, task.name]
                done = store.find_task_done(device.name, art.manifest.sha256, enc.sha256, cfg_sha) if resume else None
                if done is not None:
                    progress.note(f"{device.name} {art.format} {task.name}: already scored (row {done.id}); kept")
                    out.append(done)
                else:
                    todo.append(enc)
            if todo:
                out += _eval_artifact(device, art, todo, references, sha, placed, run, cfg, cfg_sha, facts, store, progress)
    return out


def _eval_artifact(device: Device, art: Artifact, todo: list[Encoded], references, sha: str, placed: Placed, run: Run,
                   cfg: EvalConfig, cfg_sha: str, facts: dict[str, Any], store: Store, progress: Progress) -> list[TaskResult]:
    from edge.tasks.encode import longest

    label = f"{device.name} {art.format}"
    where = place_artifact(device, art, progress)
    jobs = [TaskJob(placed.file((enc.sha256, "task"), enc.file, enc.sha256, progress, f"the {enc.task.name} items"),
                    enc.sha256) for enc in todo]
    job = Job(family=art.family, artifact=where, perf=False,
              config=JobConfig(threads=cfg.threads, reps=0, warmup=False, chunks=None,
                               n_task=max(longest(enc.data) for enc in todo)),
              max_context=art.manifest.details.get("max_seq_len"), tasks=jobs,
              tokenizer=None if art.tokenizer_path is None else device.place(art.tokenizer_path))
    res = device.run_job(job, progress_events(progress, label))
    out = []
    for enc, scored in zip(todo, res.tasks or [], strict=True):
        ref_row, ref_items = references[sha, enc.task.name]
        items = _items(enc, scored)
        row = TaskResult(device=device.name, model=art.model, format=art.format, artifact_path=str(art.path),
                         artifact_sha256=art.manifest.sha256, source_sha256=sha, task=enc.task.name,
                         task_sha256=enc.task.sha256, encoded_sha256=enc.sha256, task_source=enc.task.source,
                         licence=enc.task.licence, kind=enc.task.kind, n=len(items), config_sha256=cfg_sha,
                         run_id=run.id, items_per_s=scored.get("items_per_s"), seconds=scored.get("seconds"),
                         threads=res.threads, reference_id=ref_row.id,
                         raw={"task_meta": enc.task.meta, "load_s": res.load_s,
                              "truncated": sum(bool(r.get("truncated")) for r in scored["results"])},
                         **_summary(enc.task, items, ref_items))
        store.add_task_result(row, items)
        progress.note(_line(row))
        out.append(row)
    return out
