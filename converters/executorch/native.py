"""The ExecuTorch native adapter: ``llama_main`` on a device without Python, its ``PyTorchObserver {…}``
stats line parsed (load, prefill, first token, decode).

How ExecuTorch's runner (``extension/llm/runner``: ``TextLLMRunner::generate``, ``stats.h``) counts:
``--seq_len`` is prompt + generated tokens (``GenerationConfig.resolve_max_new_tokens``: seq_len, capped
by the program's max context, minus the prompt's positions), so each run asks for n_prompt + n_gen +
a margin, within the program's max context when its manifest says it. ``inference_start_ms`` is taken
before the prompt is tokenized, so prefill and first-token times include llama_main's own tokenization;
``generated_tokens`` counts the decode loop's steps (the first token comes from the prefill), timed
from ``prompt_eval_end_ms`` to ``inference_end_ms`` (each step also detokenizes and prints its token).

Per repetition: one run with an n_prompt-token prompt (pp and tg) and one with an n_ttft-token prompt
(TTFT, as every other path measures it); one warm-up run first, not counted.
"""

from __future__ import annotations

import json
from typing import Any

from edge.core.errors import BenchError
from edge.core.family import NativeSession
from edge.core.jobs import Job
from edge.measure.metrics import mean_std
from edge.measure.protocol import cool_down

SEQ_MARGIN = 16        # positions beyond prompt + n_gen: the prompt's token count is about, not exactly, n
TTFT_NEW_TOKENS = 2    # what a TTFT run generates after its first token (positions beyond the prompt)
NOTES = (
    "llama_main's prefill and TTFT include its own tokenization of the prompt (the runner starts timing "
    "before encoding); its decode steps include detokenizing and printing each token",
    "llama_main has no perplexity mode: no quality figures in native mode",
)


def parse_observer(text: str) -> dict[str, Any]:
    """ExecuTorch llama_main's ``PyTorchObserver {...}`` line → load, prefill and decode figures (decode:
    ``generated_tokens`` steps from ``prompt_eval_end_ms`` to ``inference_end_ms``, ExecuTorch's own rate)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("PyTorchObserver ")]
    if not lines:
        raise BenchError("llama_main printed no PyTorchObserver stats line")
    s = json.loads(lines[-1][len("PyTorchObserver "):])
    unit = s.get("SCALING_FACTOR_UNITS_PER_SECOND", 1000)
    prefill = (s["prompt_eval_end_ms"] - s["inference_start_ms"]) / unit
    decode = (s["inference_end_ms"] - s["prompt_eval_end_ms"]) / unit
    out = {"stats": s, "load_s": (s["model_load_end_ms"] - s["model_load_start_ms"]) / unit,
           "ttft_s": (s["first_token_ms"] - s["inference_start_ms"]) / unit, "prompt_tokens": s["prompt_tokens"],
           "generated_tokens": s["generated_tokens"]}
    if prefill > 0:
        out["pp_tps"] = s["prompt_tokens"] / prefill
    if decode > 0 and s["generated_tokens"] > 0:
        out["tg_tps"] = s["generated_tokens"] / decode
    return out


def seq_len(job: Job, n_prompt: int, n_new: int) -> int:
    """--seq_len for an ``n_prompt``-token prompt and ``n_new`` tokens, refused beyond the program's context."""
    need = n_prompt + n_new
    limit = job.max_context
    if limit is not None and need >= limit:
        raise BenchError(f"llama_main needs {n_prompt} prompt + {n_new} generated positions but the program holds "
                         f"{limit} (its max_seq_len): export it with a larger max_seq_len or bench with smaller sizes")
    return need + SEQ_MARGIN if limit is None else min(need + SEQ_MARGIN, limit)


def prompt(n: int) -> str:
    return " ".join(["the"] * n)  # about n tokens; the stats line says how many


def llama_main_argv(tool: str, job: Job, n_prompt: int, n_new: int) -> list[str]:
    argv = [tool, "--model_path", job.artifact, "--tokenizer_path", job.tokenizer, "--prompt", prompt(n_prompt),
            "--seq_len", str(seq_len(job, n_prompt, n_new)), "--temperature", "0"]
    if job.config.threads:
        argv += ["--cpu_threads", str(job.config.threads)]
    return argv


def run_plan(tool: str, job: Job) -> dict[str, list[str]]:
    """The argv of each kind of run: warm-up (not counted), pp/tg (n_prompt prompt, n_gen tokens), TTFT."""
    cfg = job.config
    gen = llama_main_argv(tool, job, cfg.n_prompt, cfg.n_gen)
    return {"warmup": gen, "gen": gen, "ttft": llama_main_argv(tool, job, cfg.n_ttft, TTFT_NEW_TOKENS)}


def _mean(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    vals = [r[key] for r in runs if key in r]
    if not vals:
        return {}
    m, s = mean_std(vals)
    return {key: m, f"{key}_std": s}


def assemble(gen_runs: list[dict[str, Any]], ttft_runs: list[dict[str, Any]], peak: dict[str, int],
             n_gen: int) -> dict[str, Any]:
    """The job's result from the parsed runs: pp and tg from the generation runs, TTFT from the TTFT runs."""
    res: dict[str, Any] = {"mode": "native", "load_s": gen_runs[0]["load_s"], "peak_rss_bytes": peak.get("VmHWM"),
                           "peak_swap_bytes": peak.get("VmSwap"), **_mean(gen_runs, "pp_tps"),
                           **_mean(gen_runs, "tg_tps"), **_mean(ttft_runs, "ttft_s"),
                           "prompt_tokens": [r["prompt_tokens"] for r in gen_runs],
                           "ttft_prompt_tokens": [r["prompt_tokens"] for r in ttft_runs],
                           "generated_tokens": [r["generated_tokens"] for r in gen_runs], "notes": list(NOTES)}
    short = min(res["generated_tokens"])
    if short < n_gen:
        res["notes"].append(f"a run generated {short} tokens, fewer than tg{n_gen} (end of sequence): its tg is over those")
    return res


def run(s: NativeSession) -> dict[str, Any]:
    cfg, job = s.cfg, s.job
    if not job.perf:
        return {"mode": "native", "notes": [NOTES[1]]}
    plan = run_plan(s.tool("llama_main"), job)
    s.on_event({"stage": "llama_main warm-up"})
    _, peak = s.run(plan["warmup"], "llama_main")
    gen_runs, ttft_runs = [], []
    for r in range(cfg.reps):
        s.on_event({"stage": "llama_main", "done": r, "total": cfg.reps})
        if cfg.cooldown:
            cool_down(cfg.cooldown, s.cooling)
        for kind, runs in (("gen", gen_runs), ("ttft", ttft_runs)):
            text, mem = s.run(plan[kind], "llama_main")
            runs.append(parse_observer(text))
            peak = {k: max(v, peak.get(k, 0)) for k, v in mem.items()}
    s.on_event({"stage": "llama_main", "done": cfg.reps, "total": cfg.reps})
    return assemble(gen_runs, ttft_runs, peak, cfg.n_gen)
