"""``edge bench`` as a library call: measure artifacts on devices and store one row per artifact."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from device_bench.devices import Device, get_device
from edge.artifacts import Artifact, open_artifact
from edge.datasets import load_dataset
from edge.errors import DeviceError
from edge.progress import NULL, Progress
from edge.store import Result, Run, Store
from edge.versions import tool_versions


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


@dataclass
class Plan:
    order: list[Artifact]            # references first
    refs: dict[Path, Path]           # artifact -> the reference it is compared with (when that file exists)
    extra_refs: list[Path]           # references not asked for: run for their log-probs only, no row


def plan(artifacts: list[Artifact]) -> Plan:
    refs = {a.path: a.reference_path.resolve() for a in artifacts
            if a.reference_path is not None and a.reference_path.exists()}
    order = sorted(artifacts, key=lambda a: (a.manifest.reference is not None, a.path.name))
    asked = {a.path for a in artifacts}
    return Plan(order, refs, sorted({r for r in refs.values() if r not in asked}))


def _row(run: Run, device: Device, art: Artifact, res: dict[str, Any], cfg: BenchConfig, dataset, ref_sha: str | None) -> Result:
    q = res.get("quality") or {}
    m = art.manifest
    return Result(
        run_id=run.id or 0, device=device.name, model=art.model, format=art.format, artifact_path=str(art.path),
        artifact_sha256=m.sha256, size_bytes=m.size_bytes, source_sha256=m.source.get("content_sha256"),
        reference_sha256=ref_sha, bits_per_weight=m.bits_per_weight, parameter_count=m.parameter_count,
        threads=res.get("threads"), reps=cfg.reps, n_prompt=cfg.n_prompt, n_gen=cfg.n_gen, load_s=res.get("load_s"),
        pp_tps=res.get("pp_tps"), pp_tps_std=res.get("pp_tps_std"), tg_tps=res.get("tg_tps"),
        tg_tps_std=res.get("tg_tps_std"), ttft_s=res.get("ttft_s"), ttft_s_std=res.get("ttft_s_std"),
        peak_rss_bytes=res.get("peak_rss_bytes"), dataset=dataset.name if q else None,
        dataset_sha256=dataset.sha256 if q else None, ctx=q.get("ctx"), chunks=q.get("chunks"), ppl=q.get("ppl"),
        ppl_unc=q.get("ppl_unc"), kld_mean=q.get("kld_mean"), kld_unc=q.get("kld_unc"), same_top=q.get("same_top"),
        delta_p_mean=q.get("delta_p_mean"), delta_p_rms=q.get("delta_p_rms"), quality=q,
        raw={k: v for k, v in res.items() if k != "quality"})


def bench(artifacts: list[str | Path], *, devices: list[str] | None = None, config: BenchConfig | None = None,
          dataset: str | Path | None = None, store: Store | None = None, progress: Progress = NULL) -> list[Result]:
    cfg = config or BenchConfig()
    the_plan = plan([open_artifact(a, progress) for a in artifacts])
    data = load_dataset(dataset) if cfg.quality else None
    own_store = store is None
    store = store or Store()
    results: list[Result] = []
    workdir = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    try:
        text_file = workdir / "eval.txt"
        if data:
            text_file.write_text(data.text, encoding="utf-8")
        for dev_name in devices or ["local"]:
            device = get_device(dev_name)
            results += _bench_device(device, the_plan, cfg, data, text_file, workdir, store, progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_store:
            store.close()
    return results


def _bench_device(device: Device, the_plan: Plan, cfg: BenchConfig, data, text_file: Path, workdir: Path,
                  store: Store, progress: Progress) -> list[Result]:
    order, refs = the_plan.order, the_plan.refs
    facts = device.facts()
    avail = facts.get("ram_available_bytes")
    for art in order:
        if avail and art.manifest.size_bytes > avail:
            raise DeviceError(f"{art.path.name} is {art.manifest.size_bytes / 2**20:.0f} MiB but {device.name} has "
                              f"{avail / 2**20:.0f} MiB of RAM available")
    run = store.start_run(Run(device=device.name, device_facts=facts, config=asdict(cfg),
                              tools=tool_versions("llama_cpp_python", "gguf", "executorch", "torch", "numpy"),
                              dataset=data.name if data else None, dataset_sha256=data.sha256 if data else None))
    base_files: dict[Path, str] = {}
    results: list[Result] = []
    status = "failed"
    try:
        for ref in the_plan.extra_refs:
            if data:
                art = open_artifact(ref, progress)
                base_files[ref] = str(workdir / f"base-{len(base_files)}.f16")
                _run_one(device, art, cfg, text_file, None, base_files[ref], progress, perf=False)
        for art in order:
            base_in = base_out = None
            if data:
                ref = refs.get(art.path)
                if art.manifest.reference is None:
                    base_files[art.path] = base_out = str(workdir / f"base-{len(base_files)}.f16")
                elif ref is not None and ref in base_files:
                    base_in = base_files[ref]
                elif ref is None:
                    progress.note(f"{art.path.name}: its reference {art.manifest.reference['artifact']} is not "
                                  "beside it; perplexity only, no KL divergence")
            res = _run_one(device, art, cfg, text_file if data else None, base_in, base_out, progress, perf=True)
            ref_sha = None
            if base_in:
                ref_sha = art.manifest.reference["sha256"]
            row = store.add_result(_row(run, device, art, res, cfg, data, ref_sha))
            results.append(row)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run, status)
    return results


def _run_one(device: Device, art: Artifact, cfg: BenchConfig, text_file: Path | None, base_in: str | None,
             base_out: str | None, progress: Progress, *, perf: bool) -> dict[str, Any]:
    job: dict[str, Any] = {"family": art.family, "artifact": str(art.path), "config": asdict(cfg), "perf": perf}
    if art.tokenizer_path is not None:
        job["tokenizer"] = str(art.tokenizer_path)
    if text_file is not None:
        job["quality"] = {"text_file": str(text_file), "base_in": base_in, "base_out": base_out}
    label = f"{device.name} {art.format}"
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
