"""The GGUF native adapter: llama.cpp's own tools on a device without Python (phones), their real
output parsed — ``llama-bench -o json`` (pp, TTFT as the prefill of ``n_ttft`` tokens, tg; its own warm-up
and repetitions) and ``llama-perplexity`` (final estimate; with a reference, the ``--kl-divergence-base``
file and the KLD / same-top / Δp summary lines)."""

from __future__ import annotations

import json
import re
from typing import Any

from edge.core.errors import BenchError
from edge.core.family import NativeSession
from edge.core.jobs import JobConfig, QualityJob
from edge.measure.metrics import mean_std
from edge.measure.protocol import cool_down


def llama_bench_argv(tool: str, artifact: str, cfg: JobConfig, threads: list[str]) -> list[str]:
    """pp of n_prompt tokens, pp of n_ttft tokens (the TTFT; one test when the two are equal), tg of n_gen."""
    sizes = ",".join(str(n) for n in dict.fromkeys((cfg.n_prompt, cfg.n_ttft)))
    return [tool, "-m", artifact, "-p", sizes, "-n", str(cfg.n_gen), "-o", "json", *threads]


def llama_perplexity_argv(tool: str, artifact: str, cfg: JobConfig, q: QualityJob, threads: list[str]) -> list[str]:
    """With the source reference (``q.base_in``, in llama-perplexity's KL-base format: it holds the tokens,
    chunks and ctx) a KL-divergence run; without one, perplexity on llama.cpp's own tokenization of the text."""
    argv = [tool, "-m", artifact, "-c", str(cfg.ctx), "-b", str(cfg.ctx), *threads]
    if q.base_in:
        return argv + ["--kl-divergence-base", q.base_in, "--kl-divergence"]
    return argv + ["-f", q.text_file, *(["--chunks", str(cfg.chunks)] if cfg.chunks else [])]


def parse_llama_bench(text: str, n_prompt: int, n_gen: int, n_ttft: int) -> dict[str, Any]:
    """llama-bench ``-o json``: one record per test (pp: n_prompt > 0, n_gen == 0; tg: the reverse). When
    n_ttft == n_prompt one pp record gives both pp and TTFT."""
    try:
        records = json.loads(text[text.index("["):text.rindex("]") + 1])
    except ValueError:
        raise BenchError(f"llama-bench printed no JSON results ({text.strip()[-200:] or 'nothing'})") from None
    out: dict[str, Any] = {}
    for r in records:
        prefill = r.get("n_gen") == 0
        if prefill and r.get("n_prompt") == n_prompt:
            out.update(pp_tps=r["avg_ts"], pp_tps_std=r["stddev_ts"], pp_samples=r.get("samples_ts", []))
        if prefill and r.get("n_prompt") == n_ttft:
            ns = r.get("samples_ns") or [r["avg_ns"]]
            m, s = mean_std([x / 1e9 for x in ns])
            out.update(ttft_s=m, ttft_s_std=s, ttft_samples=[x / 1e9 for x in ns])
        if r.get("n_prompt") == 0 and r.get("n_gen") == n_gen:
            out.update(tg_tps=r["avg_ts"], tg_tps_std=r["stddev_ts"], tg_samples=r.get("samples_ts", []))
        out["threads"] = r.get("n_threads")
        out["llama_cpp_build"] = f"{r.get('build_number')} ({r.get('build_commit')})"
    if "pp_tps" not in out or "tg_tps" not in out:
        raise BenchError("llama-bench's JSON has no pp/tg records for the requested sizes")
    return out


_NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)"


def parse_llama_perplexity(text: str) -> dict[str, Any]:
    """llama-perplexity's summary: ``Final estimate: PPL = x +/- u``, or with ``--kl-divergence`` the
    ``Mean PPL(Q)``, ``Mean    KLD``, ``Same top p``, ``Mean    Δp`` and ``RMS Δp`` lines (percent → fraction)."""
    def grab(pattern: str) -> tuple[float, float] | None:
        m = re.search(pattern, text)
        return (float(m.group(1)), float(m.group(2))) if m else None

    out: dict[str, Any] = {}
    final = grab(rf"Final estimate: PPL = {_NUM} \+/- {_NUM}")
    q = grab(rf"Mean PPL\(Q\)\s*:\s*{_NUM}\s*±\s*{_NUM}")
    if q or final:
        out["ppl"], out["ppl_unc"] = q or final
    base = grab(rf"Mean PPL\(base\)\s*:\s*{_NUM}\s*±\s*{_NUM}")
    if base:
        out["ppl_base"], out["ppl_base_unc"] = base
    ratio = grab(rf"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s*:\s*{_NUM}\s*±\s*{_NUM}")
    if ratio:
        out["ln_ppl_ratio"], out["ln_ppl_ratio_unc"] = ratio
    kld = grab(rf"Mean\s+KLD:\s*{_NUM}\s*±\s*{_NUM}")
    if kld:
        out["kld_mean"], out["kld_unc"] = kld
    for key, pat in (("kld_max", "Maximum KLD"), ("kld_99_9", r"99\.9%\s+KLD"), ("kld_99", r"99\.0%\s+KLD"),
                     ("kld_median", r"Median\s+KLD")):
        m = re.search(rf"{pat}:\s*{_NUM}", text)
        if m:
            out[key] = float(m.group(1))
    top = grab(rf"Same top p:\s*{_NUM}\s*±\s*{_NUM}\s*%")
    if top:
        out["same_top"], out["same_top_unc"] = top[0] / 100, top[1] / 100
    dp = grab(rf"Mean\s+Δp:\s*{_NUM}\s*±\s*{_NUM}\s*%")
    if dp:
        out["delta_p_mean"], out["delta_p_unc"] = dp[0] / 100, dp[1] / 100
    rms = grab(rf"RMS Δp\s*:\s*{_NUM}\s*±\s*{_NUM}\s*%")
    if rms:
        out["delta_p_rms"] = rms[0] / 100
    load = re.search(rf"load time =\s*{_NUM} ms", text)
    if load:
        out["load_s"] = float(load.group(1)) / 1000
    # "perplexity: calculating perplexity over N chunks, n_ctx=C, ..."; with --kl-divergence
    # "kl_divergence: computing over N chunks, n_ctx=C, ..."
    chunks = re.search(r"(?:calculating perplexity|computing) over (\d+) chunks, n_ctx=(\d+)", text)
    if chunks:
        out["chunks"], out["ctx"] = int(chunks.group(1)), int(chunks.group(2))
    if "ppl" not in out:
        raise BenchError(f"llama-perplexity printed no estimate ({text.strip().splitlines()[-1:] or 'nothing'})")
    return out


def _merge_reps(reps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"threads": reps[0].get("threads"), "llama_cpp_build": reps[0].get("llama_cpp_build")}
    for key, samples in (("pp_tps", "pp_samples"), ("tg_tps", "tg_samples"), ("ttft_s", "ttft_samples")):
        vals = [v for r in reps for v in (r.get(samples) or [r[key]])]
        out[key], out[f"{key}_std"] = mean_std(vals)
        out[samples] = vals
    return out


PERPLEXITY_TRIES = 3  # llama.cpp's logger can lose its last lines at exit (ggml-org/llama.cpp#22142)
KL_SUMMARY = ("kld_mean", "same_top", "delta_p_rms")  # the KL summary's lines, the last of them printed last


def _perplexity(s: NativeSession, argv: list[str], kl: bool = False) -> dict[str, Any]:
    """Run llama-perplexity and parse its summary, again when the summary (or, with ``kl``, any line of
    the KL-divergence summary) was lost at exit; after the last try, what it printed, with a note."""
    attempt = 1
    while True:
        s.on_event({"stage": "llama-perplexity" + (f" (again: its summary was lost, try {attempt})" if attempt > 1 else "")})
        text, _ = s.run(argv, "llama-perplexity")
        try:
            out = {**parse_llama_perplexity(text), **({"tries": attempt} if attempt > 1 else {})}
        except BenchError:
            if attempt == PERPLEXITY_TRIES:
                raise
            attempt += 1
            continue
        missing = [k for k in KL_SUMMARY if kl and k not in out]
        if not missing:
            return out
        if attempt == PERPLEXITY_TRIES:
            return {**out, "quality_notes": [f"llama-perplexity lost {', '.join(missing)} from its summary "
                                             f"{attempt} times (ggml-org/llama.cpp#22142)"]}
        attempt += 1


def run(s: NativeSession) -> dict[str, Any]:
    cfg, job = s.cfg, s.job
    res: dict[str, Any] = {"mode": "native"}
    if job.perf:
        base = llama_bench_argv(s.tool("llama-bench"), job.artifact, cfg, s.threads())
        s.on_event({"stage": "llama-bench"})
        if cfg.cooldown:  # one repetition per call, cooled down before each
            reps, waits, peak = [], [], {}
            for r in range(cfg.reps):
                s.on_event({"stage": "llama-bench (cooled)", "done": r, "total": cfg.reps})
                waits.append(cool_down(cfg.cooldown, s.cooling))
                text, mem = s.run([*base, "-r", "1"], "llama-bench")
                reps.append(parse_llama_bench(text, cfg.n_prompt, cfg.n_gen, cfg.n_ttft))
                peak = {k: max(v, peak.get(k, 0)) for k, v in mem.items()}
            res.update(_merge_reps(reps), cooldown_waits=waits)
        else:
            text, peak = s.run([*base, "-r", str(cfg.reps)], "llama-bench")
            res.update(parse_llama_bench(text, cfg.n_prompt, cfg.n_gen, cfg.n_ttft))
        res["peak_rss_bytes"] = peak.get("VmHWM")
        res["peak_swap_bytes"] = peak.get("VmSwap")
        res["peak_basis"] = "VmHWM of llama-bench, sampled from /proc/PID/status every 0.05 s"
    q = job.quality
    if q:
        argv = llama_perplexity_argv(s.tool("llama-perplexity"), job.artifact, cfg, q, s.threads())
        quality = _perplexity(s, argv, kl=bool(q.base_in))
        res["load_s"] = quality.pop("load_s", None)  # printed only where libllama's perf log is on
        res["quality"] = quality
    if res.get("load_s") is None:
        res["load_note"] = "llama-bench and llama-perplexity at default verbosity print no load time"
    return res
