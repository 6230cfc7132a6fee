"""What crosses the process boundary between ``edge bench`` and a measuring process (here, or an agent on a
device): a versioned ``Job`` in, a ``JobResult`` out, each a typed dataclass serialised as JSON.

A measuring process refuses a job of another version (an agent installed by another edge), so a
mismatch is one clear line instead of a KeyError deep in a runner. Runtime-specific figures (samples,
llama.cpp's build, native mode's notes) ride in ``JobResult.extra`` and are stored with the row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edge.core.errors import BenchError

JOB_VERSION = 3  # 2: the source reference's token stream, sessions, Job.max_context; 3: tasks


@dataclass
class Cooldown:
    max_temp_c: float
    timeout_s: float = 300
    min_idle: float = 0.9
    poll_s: float = 2.0


@dataclass
class JobConfig:
    """The protocol's settings for one job (what ``edge.bench.BenchConfig`` says, as the runner needs it)."""

    n_prompt: int = 512
    n_gen: int = 128
    n_ttft: int = 128
    ctx: int = 512
    reps: int = 5
    chunks: int | None = 32
    threads: int | None = None
    warmup: bool = True
    seed: int = 0
    n_batch: int = 512
    n_task: int = 0                 # the most positions one task item needs
    cooldown: Cooldown | None = None

    @property
    def n_ctx(self) -> int:
        """The context every part of the protocol fits in."""
        return max(self.n_prompt, self.n_gen, self.n_ttft, self.ctx, self.n_task)


@dataclass
class QualityJob:
    text_file: str                  # the evaluation text, on the device
    tokens_file: str | None = None  # its tokens by the source tokenizer (int32), on the device; None: the
                                    # runtime tokenizes the text itself (an artifact without its source)
    tokens_sha256: str | None = None
    bos: int | None = None          # the token every chunk starts with (None: the tokenizer adds no BOS)
    base_in: str | None = None      # the source reference's log-probs to compare with (KL divergence):
                                    # float16 rows in agent mode, the native tool's own format in native mode


@dataclass
class TaskJob:
    items_file: str                 # the task's items as the source tokenizer's ids (edge.tasks.encode), on the device
    items_sha256: str               # of that file


@dataclass
class Job:
    family: str
    artifact: str                   # path on the device
    config: JobConfig
    perf: bool = True
    tokenizer: str | None = None    # path on the device (ExecuTorch programs ship theirs beside them)
    quality: QualityJob | None = None
    cpus: list[int] | None = None   # --cores big: pin to these
    session: bool = False           # stay loaded and take steps on stdin ("rep", "finish"): interleaved repetitions
    max_context: int | None = None  # positions the artifact holds, from its manifest when it says (ExecuTorch's max_seq_len)
    tasks: list[TaskJob] = field(default_factory=list)  # scored after speed and quality, in this process
    version: int = JOB_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        version = data.get("version")
        if version != JOB_VERSION:
            raise BenchError(f"this measuring process takes jobs of version {JOB_VERSION}, not {version!r}: "
                             "the edge that sent it is another version (its agent is reinstalled when they differ)")
        cfg = dict(data["config"])
        cfg["cooldown"] = Cooldown(**cfg["cooldown"]) if cfg.get("cooldown") else None
        quality = QualityJob(**data["quality"]) if data.get("quality") else None
        tasks = [TaskJob(**t) for t in data.get("tasks") or []]
        return cls(**{**data, "config": JobConfig(**cfg), "quality": quality, "tasks": tasks})


@dataclass
class JobResult:
    """One artifact measured: speed and memory (None where not measured), quality, and ``extra``."""

    load_s: float | None = None
    threads: int | None = None
    pp_tps: float | None = None
    pp_tps_std: float | None = None
    tg_tps: float | None = None
    tg_tps_std: float | None = None
    ttft_s: float | None = None
    ttft_s_std: float | None = None
    peak_rss_bytes: int | None = None
    quality: dict[str, Any] | None = None
    tasks: list[dict[str, Any]] | None = None   # per task: edge.measure.tasks.score_items's result
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Flat: the declared fields and the extras side by side (the shape stored as a row's ``raw``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})
