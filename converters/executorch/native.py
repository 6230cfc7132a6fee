"""The ExecuTorch native adapter: ``llama_main`` on a device without Python, its ``PyTorchObserver {…}``
stats line parsed (load, prefill, first token, decode)."""

from __future__ import annotations

import json
from typing import Any

from edge.core.errors import BenchError
from edge.core.family import NativeSession
from edge.measure.metrics import mean_std
from edge.measure.protocol import cool_down


def parse_observer(text: str) -> dict[str, Any]:
    """ExecuTorch llama_main's ``PyTorchObserver {...}`` line → load, prefill and decode figures."""
    lines = [ln for ln in text.splitlines() if ln.startswith("PyTorchObserver ")]
    if not lines:
        raise BenchError("llama_main printed no PyTorchObserver stats line")
    s = json.loads(lines[-1][len("PyTorchObserver "):])
    unit = s.get("SCALING_FACTOR_UNITS_PER_SECOND", 1000)
    prefill = (s["prompt_eval_end_ms"] - s["inference_start_ms"]) / unit
    decode = (s["inference_end_ms"] - s["first_token_ms"]) / unit
    out = {"stats": s, "load_s": (s["model_load_end_ms"] - s["model_load_start_ms"]) / unit,
           "ttft_s": (s["first_token_ms"] - s["inference_start_ms"]) / unit, "prompt_tokens": s["prompt_tokens"],
           "generated_tokens": s["generated_tokens"]}
    if prefill > 0:
        out["pp_tps"] = s["prompt_tokens"] / prefill
    if decode > 0 and s["generated_tokens"] > 1:
        out["tg_tps"] = (s["generated_tokens"] - 1) / decode
    return out


def run(s: NativeSession) -> dict[str, Any]:
    cfg, job = s.cfg, s.job
    if not job.perf:
        return {"mode": "native"}
    main = s.tool("llama_main")
    prompt = " ".join(["the"] * cfg.n_prompt)  # about n_prompt tokens; the stats line says how many
    argv = [main, "--model_path", job.artifact, "--tokenizer_path", job.tokenizer, "--prompt", prompt,
            "--seq_len", str(cfg.n_gen + 16), "--temperature", "0"]
    if cfg.threads:
        argv += ["--cpu_threads", str(cfg.threads)]
    runs, peak = [], {}
    for r in range(cfg.reps):
        s.on_event({"stage": "llama_main", "done": r, "total": cfg.reps})
        if cfg.cooldown:
            cool_down(cfg.cooldown, s.cooling)
        text, mem = s.run(argv, "llama_main")
        runs.append(parse_observer(text))
        peak = {k: max(v, peak.get(k, 0)) for k, v in mem.items()}
    res: dict[str, Any] = {"mode": "native", "load_s": runs[0]["load_s"], "peak_rss_bytes": peak.get("VmHWM"),
                           "quality_note": "llama_main has no perplexity mode: no quality figures in native mode"}
    for key in ("pp_tps", "tg_tps", "ttft_s"):
        vals = [r[key] for r in runs if key in r]
        if vals:
            res[key], res[f"{key}_std"] = mean_std(vals)
    return res
