"""``edge bench`` as a library call: measure artifacts on devices and store one row per artifact."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

from device_bench.devices import Device, get_device
from device_bench.roofline import roofline
from edge.artifacts import Artifact, open_artifact
from edge.datasets import load_dataset
from edge.core.errors import DeviceError, EdgeError
from edge.core.family import FAMILIES
from edge.core.fsutil import atomic_path
from edge.core.paths import cache_dir
from edge.measure.reference import PROTOCOL as REFERENCE_PROTOCOL, SourceReference
from edge.core.lanes import HostGate, LaneOutcome, Once, run_lanes
from edge.core.jobs import Cooldown, Job, JobConfig, JobResult, QualityJob
from edge.core.progress import NULL, Progress
from edge.metrics import METRICS
from edge.store import Result, Run, Store
from edge.core.versions import tool_versions


@dataclass
class BenchConfig:
    threads: int | None = None
    reps: int = 5
    n_prompt: int = 512
    n_gen: int = 128
    n_ttft: int = 128
    ctx: int = 512
    chunks: int | None = 32
    warmup: bool = True
    quality: bool = True
    seed: int = 0
    cooldown: float | None = None     # °C: before each repetition wait until the device is this cool (or idle)
    cooldown_timeout_s: float = 300
    cores: str = "all"                # "big": pin to the fastest cluster (taskset / sched_setaffinity)
    interleave: bool = True           # repetitions A B C A B C … across artifacts, each in its own warm process

    def job_config(self) -> JobConfig:
        """The protocol settings a measuring process needs: the fields the two share, and the cooldown."""
        shared = {f.name for f in fields(JobConfig)} & {f.name for f in fields(self)} - {"cooldown"}
        cooldown = None if self.cooldown is None else Cooldown(self.cooldown, self.cooldown_timeout_s)
        return JobConfig(**{k: getattr(self, k) for k in shared}, cooldown=cooldown)

    def sha256(self, mode: str) -> str:
        """What makes two rows comparable: the protocol's settings and how the device ran them."""
        return hashlib.sha256(json.dumps([asdict(self), mode, "source-reference", REFERENCE_PROTOCOL],
                                         sort_keys=True).encode()).hexdigest()


Sources = dict[Path, "SourceReference | None"]   # artifact -> the source reference it is compared with


def _source_candidate(art: Artifact, source: Path | None) -> Path | None:
    if source is not None:
        return source
    path = art.manifest.source.get("path")
    return Path(path) if path and Path(path).is_dir() else None


def source_checkpoint(art: Artifact, source: Path | None, hashes: dict[Path, str], progress: Progress,
                      needed_for: str = "perplexity on the runtime's own tokens, no KL divergence") -> tuple[Path, str] | None:
    """The checkpoint ``art`` was converted from (the manifest's path, or ``source``) and its content hash,
    checked against the manifest; None when it is not here (``needed_for`` says what is lost)."""
    from edge.core.checkpoint import Checkpoint

    want = art.manifest.source.get("content_sha256")
    path = _source_candidate(art, source)
    if path is None:
        progress.note(f"{art.path.name}: its source checkpoint {art.manifest.source.get('path') or '(none recorded)'} "
                      f"is not here: {needed_for} (give --source)")
        return None
    if path not in hashes:
        progress.start(f"hashing the source checkpoint {path.name}")
        hashes[path] = Checkpoint.open(path).content_hash()
    if want and hashes[path] != want:
        raise EdgeError(f"{path} is not the checkpoint {art.path.name} was converted from (its content hash "
                        "differs from the manifest's): give the original with --source")
    return path, hashes[path]


def source_references(arts: list[Artifact], data, cfg: BenchConfig, source: Path | None,
                      progress: Progress) -> Sources:
    """The source checkpoint's reference for each artifact (``edge.measure.reference``), computed once per
    source and cached: the checkpoint the manifest names (or ``source``), checked by its content hash."""
    from edge.measure.reference import source_reference

    out: Sources = {}
    hashes: dict[Path, str] = {}
    refs: dict[tuple[Path, str], SourceReference] = {}
    for art in arts:
        found = source_checkpoint(art, source, hashes, progress)
        if found is None:
            out[art.path] = None
            continue
        if found not in refs:
            path, sha = found
            refs[found] = source_reference(path, data.text, data.sha256, cfg.ctx, cfg.chunks, cache_dir(),
                                           progress_events(progress, f"reference {path.name}"), sha)
            progress.note(refs[found].summary())
        out[art.path] = refs[found]
    return out


def _calibrated_on(art: Artifact, dataset) -> bool:
    """Was the artifact's quantization calibrated (an importance matrix) or its recipe searched on this very text?"""
    details = art.manifest.details or {}
    texts = {(details.get("calibration") or {}).get("sha256"), (details.get("recipe") or {}).get("text_sha256")}
    return dataset.sha256 in texts - {None}


def _row(run: Run, device: Device, art: Artifact, result: JobResult, cfg: BenchConfig, dataset,
         ref: SourceReference | None, conditions: dict[str, Any]) -> Result:
    q = dict(result.quality or {})
    if q and _calibrated_on(art, dataset):
        q["calibrated_on_eval_text"] = True
    if q and ref is not None and q.get("kld_mean") is not None:
        q.update(reference=ref.meta["label"], reference_key=ref.key)
        if q.get("tokens_sha256") is None:  # a native tool that read the reference's own tokens (llama-perplexity)
            q.update({k: q.get(k) or ref.meta[k] for k in ("tokens_sha256", "tokens_scored", "ctx", "chunks")})
    res = result.to_json()
    m = art.manifest
    facts = device.facts()
    roof = roofline(m, cfg.n_gen, result.tg_tps, facts.get("membw_gbs"))
    measured = {"res": res, "quality": q}  # the metrics table says which fields come from where
    return Result(
        **{f.key: measured[f.source].get(f.key) for f in METRICS if f.source},
        run_id=run.id or 0, device=device.name, model=art.model, format=art.format, artifact_path=str(art.path),
        artifact_sha256=m.sha256, size_bytes=m.size_bytes, source_sha256=m.source.get("content_sha256"),
        reference_sha256=q.get("reference_key"), bits_per_weight=m.bits_per_weight, parameter_count=m.parameter_count,
        reps=cfg.reps, n_prompt=cfg.n_prompt, n_gen=cfg.n_gen, dataset=dataset.name if q else None,
        dataset_sha256=dataset.sha256 if q else None, quality=q,
        raw={**{k: v for k, v in res.items() if k != "quality"}, "roofline": roof,
             "protocol": {"n_ttft": cfg.n_ttft, "threads": cfg.threads, "warmup": cfg.warmup, "seed": cfg.seed,
                          "cooldown": cfg.cooldown, "cores": cfg.cores},
             "interleaved": res.get("interleaved", 0)},
        config_sha256=cfg.sha256(facts.get("mode", "agent")), conditions=conditions,
        membw_gbs=facts.get("membw_gbs"), decode_gbs=roof.get("decode_gbs"))


def bench(artifacts: list[str | Path], *, devices: list[str] | None = None, config: BenchConfig | None = None,
          dataset: str | Path | None = None, store: Store | None = None, progress: Progress = NULL,
          devices_file: Path | None = None, resume: bool = True, source: str | Path | None = None) -> list[Result]:
    """Measure ``artifacts`` on each device (``local``, a name from devices.toml, ``adb:SERIAL``) and store a
    row per artifact as soon as it is measured. Quality is scored on the source checkpoint's tokens and
    compared with the source checkpoint itself (``source``: its folder, when not where the manifests say).
    With ``resume``, rows already in the store for the same artifact, device, settings and text are kept
    and not measured again, so an interrupted run goes on where it stopped; ``resume=False`` measures
    everything again."""
    cfg = config or BenchConfig()
    if cfg.cores not in ("all", "big"):
        raise EdgeError(f"--cores must be all or big, not {cfg.cores!r}")
    source_dir = None if source is None else Path(source).expanduser()
    if source_dir is not None and not source_dir.is_dir():
        raise EdgeError(f"--source {source_dir}: not a checkpoint folder")
    arts = [open_artifact(a, progress) for a in artifacts]
    data = load_dataset(dataset) if cfg.quality else None
    for a in arts:
        if data and _calibrated_on(a, data):
            progress.note(f"WARNING: {a.format} was calibrated on {data.name}, the text it is now measured on: its "
                          "quality figures flatter it (the row says so; measure on another text)")
    targets = list({d.name: d for d in (get_device(n, devices_file) for n in devices or ["local"])}.values())
    own_store = store is None  # unknown device names have failed above, before any work
    store = store or Store()
    workdir = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    try:
        text_file = workdir / "eval.txt"
        if data:
            text_file.write_text(data.text, encoding="utf-8")
        gate = HostGate()

        def make_refs() -> Sources:
            with gate.busy():
                return source_references(arts, data, cfg, source_dir, progress)

        refs = Once(make_refs)
        lanes = len(targets) > 1  # several devices: measured at once, one bar each
        outcomes = run_lanes({d.name: partial(_lane, d, arts, cfg, data, text_file, refs, store,
                                              progress.lane(d.name) if lanes else progress, resume, gate)
                              for d in targets})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_store:
            store.close()
    return _lab_results(outcomes)


def _lab_results(outcomes: list[LaneOutcome[list[Result]]]) -> list[Result]:
    """Every device's rows, in the order the devices were given; a device's failure (after the others
    finished) as its own error when it was the only device, else one line naming each failed device."""
    failed = [o for o in outcomes if o.error is not None]
    for o in failed:
        if not isinstance(o.error, EdgeError):  # a bug, or Ctrl-C: as it is, with its traceback
            raise o.error
    if len(outcomes) == 1 and failed:
        raise failed[0].error
    if failed:
        done = [o.name for o in outcomes if o.error is None]
        raise DeviceError(f"{len(failed)} of {len(outcomes)} devices failed: "
                          + "; ".join(f"{o.name}: {str(o.error).removeprefix(o.name + ': ')}" for o in failed)
                          + (f" (the rows of {', '.join(done)} are stored)" if done else ""))
    return [r for o in outcomes for r in o.value or []]


class _GatedDevice:
    """A device whose pushes count as the host being busy (``HostGate.busy``)."""

    def __init__(self, device: Device, gate: HostGate) -> None:
        self._device, self._gate = device, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._device, name)

    def place(self, *args: Any, **kwargs: Any) -> str:
        with self._gate.busy():
            return self._device.place(*args, **kwargs)


def _lane(device: Device, arts: list[Artifact], cfg: BenchConfig, data, text_file: Path, refs: Once[Sources],
          store: Store, progress: Progress, resume: bool, gate: HostGate) -> list[Result]:
    """One device's share of a bench, in its own lane: what is done, the source references (computed once
    for every lane), then each artifact measured. The host's own device is measured only while the host
    does nothing for the other lanes."""
    host = device.name == "local" or getattr(device, "transport", None) == "local"
    quiet = gate.quiet if host else nullcontext
    with quiet():
        todo = _todo(device, arts, cfg, data, store, progress, resume)
    got = refs.get() if data and any(r is None for r in todo.values()) else {}
    with quiet():
        rows = _bench_device(device if host else _GatedDevice(device, gate), arts, todo, cfg, data, text_file, got,
                             store, progress)
    progress.finish()
    return rows


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 10 * 2**20 else f"{n / 1024:.0f} KiB"


def pinned_cpus(cfg: BenchConfig, facts: dict[str, Any]) -> list[int] | None:
    """The CPUs a job is pinned to: the fastest cluster with --cores big on a big.LITTLE device, else None."""
    if cfg.cores != "big":
        return None
    clusters = facts.get("clusters") or []
    if len(clusters) < 2:
        return None  # one cluster (or no cpufreq): all cores are the big ones
    return clusters[0]["cpus"]


def _check_fits(device: Device, order: list[Artifact], facts: dict[str, Any]) -> None:
    avail = facts.get("ram_available_bytes")
    for art in order:
        if avail and art.manifest.size_bytes > avail:
            raise DeviceError(f"{art.path.name} is {_size(art.manifest.size_bytes)} but {device.name} has "
                              f"{_size(avail)} of RAM available")


def _todo(device: Device, arts: list[Artifact], cfg: BenchConfig, data, store: Store, progress: Progress,
          resume: bool) -> dict[Path, Result | None]:
    """Each artifact's row already measured on this device with these settings and text (kept), or None."""
    progress.start(f"{device.name}: reading the device's facts")
    facts = device.facts()
    _check_fits(device, arts, facts)
    cfg_sha = cfg.sha256(facts.get("mode", "agent"))
    out: dict[Path, Result | None] = {}
    for art in arts:
        row = store.find_done(device.name, art.manifest.sha256, cfg_sha, data.sha256 if data else None) if resume else None
        if row is not None:
            progress.note(f"{device.name} {art.format}: already measured with these settings (row {row.id}); kept")
        out[art.path] = row
    return out


@dataclass
class Placed:
    """What one device holds of the quality protocol: the text and, per source reference, its tokens and log-probs."""

    device: Device
    mode: str
    text: str | None = None
    files: dict[tuple[str, str], str] = field(default_factory=dict)

    def file(self, key: tuple[str, str], local: Path, digest: str | None, progress: Progress, what: str) -> str:
        if key not in self.files:
            progress.start(f"{self.device.name}: placing {what}", total=local.stat().st_size)
            self.files[key] = self.device.place(local, digest, lambda n: progress.update(advance=n))
        return self.files[key]

    def quality_job(self, art: Artifact, ref: SourceReference | None, progress: Progress) -> QualityJob:
        if ref is None:
            return QualityJob(self.text)
        tokens = self.file((ref.key, "tokens"), ref.tokens, None, progress, "the evaluation tokens")
        job = QualityJob(self.text, tokens_file=tokens, tokens_sha256=ref.meta["stream_sha256"], bos=ref.meta["bos"])
        if self.mode != "native":
            job.base_in = self.file((ref.key, "logprobs"), ref.logprobs, ref.meta.get("logprobs_sha256"), progress,
                                    "the source reference's log-probs")
        elif FAMILIES.get(art.family).native_reference:
            local = native_reference_file(ref, art.family)
            job.base_in = self.file((ref.key, art.family), local, None, progress,
                                    f"the source reference for {art.family} native tools")
        return job


def native_reference_file(ref: SourceReference, family: str) -> Path:
    """The source reference in a family's native tool format (llama-perplexity's KL base), made once in the cache."""
    out = ref.folder / f"native-{family}.bin"
    if not out.exists():
        write = FAMILIES.get(family).load("native_reference")
        with atomic_path(out) as tmp:
            write(ref.logprobs, ref.stream.ids, ref.meta["ctx"], ref.meta["chunks"], ref.meta["n_vocab"], tmp)
    return out


def _bench_device(device: Device, arts: list[Artifact], todo: dict[Path, Result | None], cfg: BenchConfig, data,
                  text_file: Path, refs: Sources, store: Store, progress: Progress) -> list[Result]:
    results: dict[Path, Result] = {p: r for p, r in todo.items() if r is not None}
    pending = [a for a in arts if a.path not in results]
    if not pending:
        return [results[a.path] for a in arts]
    facts = device.facts()
    run = Run(device=device.name, device_facts=facts, config=asdict(cfg), tools=family_tool_versions(),
              dataset=data.name if data else None, dataset_sha256=data.sha256 if data else None)
    placed = Placed(device, facts.get("mode", "agent"))

    def stored(art: Artifact, res: JobResult, conditions: dict[str, Any]) -> None:
        results[art.path] = store.add_result(_row(run, device, art, res, cfg, data, refs.get(art.path), conditions))

    with store.running(run):
        if data:
            placed.text = device.place(text_file)
        jobs = ((art, placed.quality_job(art, refs.get(art.path), progress) if data else None) for art in pending)
        if _interleaving(device, pending, cfg, placed.mode, facts, progress):
            _interleaved(device, [(art, _job(device, art, cfg, q, progress, facts)) for art, q in jobs], cfg,
                         progress, stored)
        else:
            for art, q in jobs:
                before = device.conditions()
                res = device.run_job(_job(device, art, cfg, q, progress, facts), progress_events(progress, _label(device, art)))
                stored(art, res, {"before": before, "after": device.conditions()})
    return [results[a.path] for a in arts]


def _interleaving(device: Device, pending: list[Artifact], cfg: BenchConfig, mode: str, facts: dict[str, Any],
                  progress: Progress) -> bool:
    """Whether this device's repetitions are interleaved across artifacts: asked for, more than one artifact
    and more than one repetition, a mode with sessions (agent), and every artifact fits in RAM at once."""
    if not (cfg.interleave and len(pending) > 1 and cfg.reps > 1) or mode == "native":
        return False
    avail = facts.get("ram_available_bytes")
    total = sum(a.manifest.size_bytes for a in pending)
    if avail and total > 0.8 * avail:
        progress.note(f"{device.name}: the {len(pending)} artifacts ({_size(total)}) do not fit in its RAM together "
                      f"({_size(avail)} available): repetitions one artifact after another, not interleaved")
        return False
    return True


def _interleaved(device: Device, jobs: list[tuple[Artifact, Job]], cfg: BenchConfig, progress: Progress,
                 stored: Callable[[Artifact, JobResult, dict[str, Any]], None]) -> None:
    """Every artifact loaded in its own process, then repetition r of each in turn (A B C A B C …), so
    that a drift of the device (heat, a neighbour) is spread over all of them; then each one's summary and
    quality pass, its row stored as it finishes."""
    sessions: dict[Path, Any] = {}
    before: dict[Path, dict[str, Any]] = {}
    try:
        for art, job in jobs:
            before[art.path] = device.conditions()
            progress.start(f"{_label(device, art)}: loading")
            sessions[art.path] = device.open_session(job, progress_events(progress, _label(device, art)))
        for r in range(cfg.reps):
            for art, _ in jobs:
                progress.start(f"{device.name}: repetition {r + 1}/{cfg.reps}, interleaved — {art.format}")
                sessions[art.path].rep()
        for art, _ in jobs:
            res = sessions.pop(art.path).finish()
            res.extra["interleaved"] = len(jobs)
            stored(art, res, {"before": before[art.path], "after": device.conditions()})
    finally:
        for session in sessions.values():
            session.close()


def _label(device: Device, art: Artifact) -> str:
    return f"{device.name} {art.format}"


def progress_events(progress: Progress, label: str):
    """A measuring process's progress events (``{"stage", "done", "total"}``) as progress bars."""
    def on_event(ev: dict[str, Any]) -> None:
        stage = ev.get("stage", "")
        if "total" not in ev:
            progress.start(f"{label}: {stage}")
            return
        if ev.get("done") == 0:
            progress.start(f"{label}: {stage}", total=ev["total"])
        progress.update(ev["done"], description=f"{label}: {stage}")
    return on_event


def family_tool_versions() -> dict[str, str]:
    """The versions of every family's tools and numpy, recorded with each run."""
    return tool_versions(*dict.fromkeys(d for f in FAMILIES.values() for d in f.tools), "numpy")


def place_artifact(device: Device, art: Artifact, progress: Progress) -> str:
    """The artifact on the device (pushed once, sha256-checked), with a progress bar: its path there."""
    progress.start(f"{_label(device, art)}: placing the artifact on the device", total=art.manifest.size_bytes)
    return device.place(art.path, art.manifest.sha256, lambda n: progress.update(advance=n))


def _job(device: Device, art: Artifact, cfg: BenchConfig, quality: QualityJob | None, progress: Progress,
         facts: dict[str, Any]) -> Job:
    """The artifact placed on the device, and the job that measures it there."""
    where = place_artifact(device, art, progress)
    return Job(family=art.family, artifact=where, config=cfg.job_config(), cpus=pinned_cpus(cfg, facts),
               max_context=art.manifest.details.get("max_seq_len"),
               tokenizer=None if art.tokenizer_path is None else device.place(art.tokenizer_path), quality=quality)
