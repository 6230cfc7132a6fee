"""``edge bench`` as a library call: measure artifacts on devices and store one row per artifact."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from device_bench.devices import Device, get_device
from device_bench.roofline import roofline
from edge.artifacts import Artifact, open_artifact
from edge.datasets import load_dataset
from edge.core.errors import DeviceError, EdgeError
from edge.core.family import FAMILIES
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

    def job_config(self) -> JobConfig:
        """The protocol settings a measuring process needs: the fields the two share, and the cooldown."""
        shared = {f.name for f in fields(JobConfig)} & {f.name for f in fields(self)} - {"cooldown"}
        cooldown = None if self.cooldown is None else Cooldown(self.cooldown, self.cooldown_timeout_s)
        return JobConfig(**{k: getattr(self, k) for k in shared}, cooldown=cooldown)

    def sha256(self, mode: str) -> str:
        """What makes two rows comparable: the protocol's settings and how the device ran them."""
        return hashlib.sha256(json.dumps([asdict(self), mode], sort_keys=True).encode()).hexdigest()


@dataclass
class Plan:
    order: list[Artifact]            # references first
    refs: dict[Path, Path]           # artifact -> the reference it is compared with (when that file exists)


def plan(artifacts: list[Artifact]) -> Plan:
    refs = {a.path: a.reference_path.resolve() for a in artifacts
            if a.reference_path is not None and a.reference_path.exists()}
    order = sorted(artifacts, key=lambda a: (a.manifest.reference is not None, a.path.name))
    return Plan(order, refs)


def _row(run: Run, device: Device, art: Artifact, result: JobResult, cfg: BenchConfig, dataset, ref_sha: str | None,
         conditions: dict[str, Any]) -> Result:
    q = result.quality or {}
    res = result.to_json()
    m = art.manifest
    facts = device.facts()
    roof = roofline(m, cfg.n_gen, result.tg_tps, facts.get("membw_gbs"))
    measured = {"res": res, "quality": q}  # the metrics table says which fields come from where
    return Result(
        **{f.key: measured[f.source].get(f.key) for f in METRICS if f.source},
        run_id=run.id or 0, device=device.name, model=art.model, format=art.format, artifact_path=str(art.path),
        artifact_sha256=m.sha256, size_bytes=m.size_bytes, source_sha256=m.source.get("content_sha256"),
        reference_sha256=ref_sha, bits_per_weight=m.bits_per_weight, parameter_count=m.parameter_count,
        reps=cfg.reps, n_prompt=cfg.n_prompt, n_gen=cfg.n_gen, dataset=dataset.name if q else None,
        dataset_sha256=dataset.sha256 if q else None, quality=q,
        raw={**{k: v for k, v in res.items() if k != "quality"}, "roofline": roof},
        config_sha256=cfg.sha256(facts.get("mode", "agent")), conditions=conditions,
        membw_gbs=facts.get("membw_gbs"), decode_gbs=roof.get("decode_gbs"))


def bench(artifacts: list[str | Path], *, devices: list[str] | None = None, config: BenchConfig | None = None,
          dataset: str | Path | None = None, store: Store | None = None, progress: Progress = NULL,
          devices_file: Path | None = None, resume: bool = True) -> list[Result]:
    """Measure ``artifacts`` on each device (``local``, a name from devices.toml, ``adb:SERIAL``) and store a
    row per artifact as soon as it is measured. With ``resume``, rows already in the store for the same
    artifact, device, settings and text are kept and not measured again, so an interrupted run goes on
    where it stopped; ``resume=False`` measures everything again."""
    cfg = config or BenchConfig()
    if cfg.cores not in ("all", "big"):
        raise EdgeError(f"--cores must be all or big, not {cfg.cores!r}")
    the_plan = plan([open_artifact(a, progress) for a in artifacts])
    data = load_dataset(dataset) if cfg.quality else None
    targets = [get_device(d, devices_file) for d in devices or ["local"]]  # unknown names fail before any work
    own_store = store is None
    store = store or Store()
    results: list[Result] = []
    workdir = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    try:
        text_file = workdir / "eval.txt"
        if data:
            text_file.write_text(data.text, encoding="utf-8")
        for device in targets:
            results += _bench_device(device, the_plan, cfg, data, text_file, store, progress, resume)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_store:
            store.close()
    return results


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


def _done(device: Device, order: list[Artifact], store: Store, cfg_sha: str, data_sha: str | None,
          progress: Progress) -> dict[Path, Result]:
    """Rows already measured for these artifacts on this device with these settings and text (kept)."""
    done = {art.path: row for art in order
            if (row := store.find_done(device.name, art.manifest.sha256, cfg_sha, data_sha)) is not None}
    for art in order:
        if art.path in done:
            progress.note(f"{device.name} {art.format}: already measured with these settings (row {done[art.path].id}); kept")
    return done


def _bench_device(device: Device, the_plan: Plan, cfg: BenchConfig, data, text_file: Path,
                  store: Store, progress: Progress, resume: bool) -> list[Result]:
    order, refs = the_plan.order, the_plan.refs
    progress.start(f"{device.name}: reading the device's facts")
    facts = device.facts()
    _check_fits(device, order, facts)
    data_sha = data.sha256 if data else None
    done = _done(device, order, store, cfg.sha256(facts.get("mode", "agent")), data_sha, progress) if resume else {}
    todo = [a for a in order if a.path not in done]
    if not todo:
        return [done[a.path] for a in order]
    # references whose log-probs a remaining artifact needs but that are not measured again
    needed = {refs[a.path] for a in todo if a.path in refs}
    log_prob_only = sorted(needed - {a.path for a in todo})
    run = store.start_run(Run(device=device.name, device_facts=facts, config=asdict(cfg),
                              tools=tool_versions(*dict.fromkeys(d for f in FAMILIES.values() for d in f.tools), "numpy"),
                              dataset=data.name if data else None, dataset_sha256=data_sha))
    remote_text = None
    base_files: dict[Path, str] = {}
    results: dict[Path, Result] = dict(done)
    status = "failed"
    try:
        if data:
            remote_text = device.place(text_file)
        for ref in log_prob_only:
            if data:
                art = open_artifact(ref, progress)
                base_files[ref] = device.scratch(f"base-{art.manifest.sha256[:16]}.logits")
                _run_one(device, art, cfg, remote_text, None, base_files[ref], progress, perf=False, facts=facts)
        for art in todo:
            base_in = base_out = None
            if data:
                ref = refs.get(art.path)
                if art.manifest.reference is None:
                    base_files[art.path] = base_out = device.scratch(f"base-{art.manifest.sha256[:16]}.logits")
                elif ref is not None and ref in base_files:
                    base_in = base_files[ref]
                elif ref is None:
                    progress.note(f"{art.path.name}: its reference {art.manifest.reference['artifact']} is not "
                                  "beside it; perplexity only, no KL divergence")
            before = device.conditions()
            res = _run_one(device, art, cfg, remote_text, base_in, base_out, progress, perf=True, facts=facts)
            conditions = {"before": before, "after": device.conditions()}
            ref_sha = art.manifest.reference["sha256"] if base_in else None
            results[art.path] = store.add_result(_row(run, device, art, res, cfg, data, ref_sha, conditions))
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run, status)
    return [results[a.path] for a in order]


def _run_one(device: Device, art: Artifact, cfg: BenchConfig, text_file: str | None, base_in: str | None,
             base_out: str | None, progress: Progress, *, perf: bool, facts: dict[str, Any]) -> JobResult:
    label = f"{device.name} {art.format}"
    progress.start(f"{label}: placing the artifact on the device", total=art.manifest.size_bytes)
    where = device.place(art.path, art.manifest.sha256, lambda n: progress.update(advance=n))
    job = Job(family=art.family, artifact=where, config=cfg.job_config(), perf=perf, cpus=pinned_cpus(cfg, facts),
              max_context=art.manifest.details.get("max_seq_len"),
              tokenizer=None if art.tokenizer_path is None else device.place(art.tokenizer_path),
              quality=None if text_file is None else QualityJob(text_file, base_in=base_in, base_out=base_out))
    progress.start(f"{label}: starting")

    def on_event(ev: dict[str, Any]) -> None:
        stage = ev.get("stage", "")
        if "total" not in ev:
            progress.start(f"{label}: {stage}")
            return
        if ev.get("done") == 0:
            progress.start(f"{label}: {stage}", total=ev["total"])
        progress.update(ev["done"], description=f"{label}: {stage}")

    return device.run_job(job, on_event)
