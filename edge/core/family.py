"""What a target family is (GGUF, ExecuTorch, ONNX, ...): one ``Family`` object per family folder under
``converters/``, registered lazily in ``FAMILIES``. Everything that iterates families — the formats
registry, ``edge formats``, opening artifacts, the measuring process, the device agent, the roofline —
reads it from here, so a new family is one new folder plus one line in ``FAMILY_MODULES``.

A family declares its variants with one row type (``Variant``) and their parameters with typed rows
(``Param``: validated here, generically, and shown by ``edge formats``). Its heavy parts — converter,
runtime, native adapter — are named as ``"module:attr"`` and imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.core.errors import EdgeError, UnsupportedArchitectureError
from edge.core.registry import Registry


class NativeSession(Protocol):
    """What a family's native adapter gets from the device side (``device_bench.native.NativeRun``): the
    job, its tools pushed to the device, commands run under the memory sampler, the device's conditions."""

    job: Any                       # edge.core.jobs.Job
    cfg: Any                       # its JobConfig

    def on_event(self, event: dict[str, Any]) -> None: ...

    def tool(self, name: str) -> str: ...

    def run(self, argv: list[str], what: str) -> tuple[str, dict[str, int]]: ...

    def threads(self) -> list[str]: ...

    def cooling(self) -> dict[str, Any]: ...


@dataclass
class ConvertContext:
    """What the convert driver hands a family's converter for one checkpoint: the checkpoint, where to
    write, the verification text, settings, progress, a scratch folder removed afterwards, and ``state``
    for what the family keeps between its artifacts (a tokenizer file written once, a builder cache)."""

    ckpt: Any                      # edge.core.checkpoint.Checkpoint
    out_dir: Path
    text: str
    verify: bool
    n_threads: int | None
    progress: Any                  # edge.core.progress.Progress
    scratch: Path
    state: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, Any] = field(default_factory=dict)  # the text parameters' values -> edge.datasets.Dataset


@dataclass
class Checked:
    """A verification: the record the manifest keeps (None: not verified) and its one-line summary."""

    record: dict[str, Any] | None
    summary: str = ""


@dataclass
class Description:
    """What a family reads back from a finished artifact for its manifest; None leaves the driver's
    default (parameters of the source checkpoint; bits per weight = 8 × size / parameters). ``model``
    joins the manifest's model dict: ``weight_bytes_per_token`` and its ``weight_basis`` (the roofline's
    weights; without them it falls back to the artifact's size, an upper bound)."""

    details: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    bits_per_weight: float | None = None
    parameter_count: int | None = None


class Converter(Protocol):
    """A family's part of ``edge convert``; ``edge.convert.convert`` drives it: plan (``check``,
    ``reference_for``), then per artifact ``build`` → ``verify`` into a temporary path, moved into place
    only when both succeed, then ``describe`` → manifest (with the reference link)."""

    def check(self, ckpt: Any, requests: list[Any]) -> None:
        """Refuse an unsupported checkpoint or parameter before anything is written."""

    def reference_for(self, ckpt: Any, requests: list[Any]) -> tuple[Any, bool]:
        """The request for the family's float reference, and whether the user asked for it."""

    def file_name(self, ckpt: Any, request: Any, *, added: bool) -> str:
        """The artifact's name in the output folder (``added``: a reference nobody asked for)."""

    def prepare(self, ctx: ConvertContext) -> None:
        """Write what every artifact of the family needs beside it, once, before the first build."""

    def build(self, ctx: ConvertContext, request: Any, tmp: Path, reference: Any | None) -> dict[str, Any]:
        """Make the artifact at ``tmp`` (``reference``: the family's reference ``Artifact``, already
        written, for every other request); return what its manifest's details should hold."""

    def verify(self, ctx: ConvertContext, request: Any, tmp: Path, *, strict: bool) -> Checked:
        """Check the artifact against transformers (``strict``: raise VerificationError below the thresholds)."""

    def describe(self, ctx: ConvertContext, request: Any, path: Path) -> Description:
        """Facts read from the finished artifact for its manifest."""


@dataclass(frozen=True)
class Param:
    """A parameter a variant takes after ``?`` (``executorch:8da4w?group=32``)."""

    name: str
    type: type = str              # int, float (above 0) or str: the raw text must parse as this
    choices: tuple[str, ...] = ()  # when given, the raw text must be one of these
    default: str = ""             # what applies when the parameter is not given (shown by `edge formats`)
    help: str = ""
    choices_help: str = ""        # how the choices read in an error ("(bits)")
    text: bool = False            # a text: a dataset name (pydoc, wiki, ...) or a text file, loaded by the convert
                                  # driver into ``ConvertContext.texts`` (calibration text)
    refused: tuple[tuple[str, str], ...] = ()  # values a user may ask for that the family cannot do: (value, why)

    def check(self, fmt: str, raw: str) -> None:
        """Refuse a value of the wrong type or outside the choices, in one line."""
        if raw == "":
            return
        if self.type is int:
            try:
                int(raw)
            except ValueError:
                raise EdgeError(f"{fmt}: {self.name} must be an integer, not {raw!r}") from None
        if self.type is float:
            try:
                ok = float(raw) > 0
            except ValueError:
                ok = False
            if not ok:
                raise EdgeError(f"{fmt}: {self.name} must be a number above 0, e.g. 0.02, not {raw!r}")
        why = dict(self.refused).get(raw.lower())
        if why:
            raise EdgeError(f"{fmt}: {self.name}={raw} is not available here: {why}; {self.name} may be "
                            f"{', '.join(self.choices)}")
        if self.choices and raw not in self.choices:
            import difflib

            close = difflib.get_close_matches(raw, self.choices, n=1)
            raise EdgeError(f"{fmt}: {self.name} must be one of {', '.join(self.choices)}"
                            f"{' ' + self.choices_help if self.choices_help else ''}, not {raw!r}"
                            f"{f' (did you mean {close[0]}?)' if close else ''}")

    def describe(self) -> str:
        values = "|".join(self.choices) if self.choices else ("<n>" if self.type in (int, float) else "<text>")
        default = f"; default {self.default}" if self.default else ""
        return f"{self.name}={values} ({self.help}{default})"


def method_param(methods: tuple[tuple[str, str], ...], cannot: tuple[tuple[str, str], ...], default: str) -> Param:
    """A family's ``method=``: how its weights' integers are chosen (``methods``: (name, what it is)), and what
    its stack cannot do (``cannot``: (name, why), refused in one line); ``edge formats`` prints both."""
    return Param("method", choices=tuple(m for m, _ in methods), default=default, refused=cannot,
                 help="how the weights' integers are chosen: " + "; ".join(f"{m}: {d}" for m, d in methods))


@dataclass(frozen=True)
class Variant:
    """One format of a family: ``gguf:q4_k_m``. ``recipe`` holds what the family's converter needs to make
    it (llama.cpp's ftype, export_llm's qmode, the builder's precision and options)."""

    name: str
    nominal_bpw: float
    quantized: bool
    description: str
    params: tuple[Param, ...] = ()
    recipe: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    name: str
    title: str                                # "llama.cpp GGUF"
    noun: str                                 # its artifact in a sentence: "a GGUF file"
    variants: tuple[Variant, ...]
    architectures: tuple[str, ...]            # Hugging Face architectures its converter takes
    tools: tuple[str, ...]                    # distributions recorded in its manifests
    agent_requirements: tuple[str, ...]       # what a device's agent installs to run its artifacts
    kv_bytes: int                             # KV-cache element size of its CPU runtime (roofline)
    converter: str                            # "module:attr" of its Converter
    runtime: str                              # "module:attr" of open_runtime(job) -> Runtime
    magic: tuple[int, bytes] | None = None    # (offset, bytes) that identify its artifact files
    folder_marker: str | None = None          # a file inside its artifact folders
    native: str | None = None                 # "module:attr" of its native adapter (devices without Python)
    native_tools: tuple[str, ...] = ()        # the command-line tools that adapter runs (devices.toml [tools])
    native_reference: str | None = None       # "module:attr" of write(logprobs, tokens, n_ctx, n_chunk, n_vocab,
                                              # out): the source reference in that tool's format (None: no KLD)
    foreign: str | None = None                # "module:attr" of manifest_for(path, sha256) for artifacts made
                                              # elsewhere (no manifest beside them); None: refused
    sensitivity: str | None = None            # "module:attr" of its per-layer sensitivity part (edge.sensitivity)
    notes: str = ""                           # one line for `edge formats`
    cannot: tuple[tuple[str, str], ...] = ()  # (architecture, why) asked for that this family does not take

    def recognises(self, path: Path) -> bool:
        """Whether ``path`` is one of this family's artifacts, from its bytes or folder layout alone."""
        if path.is_dir():
            return self.folder_marker is not None and (path / self.folder_marker).exists()
        if self.magic is None:
            return False
        offset, magic = self.magic
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(len(magic)) == magic

    def load(self, part: str) -> Any:
        """Import one of the family's parts: ``converter``, ``runtime``, ``native``, ``native_reference``,
        ``foreign`` or ``sensitivity``."""
        target = getattr(self, part)
        if target is None:
            raise EdgeError(f"the {self.name} family has no {part}")
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


# family name -> its Family object, imported on first use (one line a family)
FAMILY_MODULES: tuple[tuple[str, str], ...] = (
    ("gguf",       "converters.gguf:FAMILY"),
    ("executorch", "converters.executorch:FAMILY"),
    ("onnx",       "converters.onnx:FAMILY"),
)

FAMILIES: Registry[Family] = Registry("family")
for _name, _target in FAMILY_MODULES:
    FAMILIES.register_lazy(_name, _target)


def family_of(path: Path) -> Family | None:
    """The family whose artifacts look like ``path`` (magic bytes or folder marker), or None."""
    return next((f for f in FAMILIES.values() if f.recognises(path)), None)


def check_architecture(family: str, architecture: str, supported: Sequence[str],
                       cannot: Sequence[tuple[str, str]] = ()) -> None:
    """One line refusing an architecture a family does not take: why, where it is known, and what it takes."""
    if architecture in supported:
        return
    why = dict(cannot).get(architecture)
    raise UnsupportedArchitectureError(f"architecture {architecture} is not supported for {family}"
                                       f"{f': {why}' if why else ''} (supported: {', '.join(supported)})")
