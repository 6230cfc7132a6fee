"""Native mode: devices without Python (phones). edge pushes the runtime's own command-line tools (named
in devices.toml) and parses their real output:

- GGUF: llama.cpp's ``llama-bench -o json`` (pp, TTFT as the prefill of ``n_ttft`` tokens, tg; its own
  warm-up and repetitions) and ``llama-perplexity`` (final estimate; with a reference, the
  ``--kl-divergence-base`` file and the KLD / same-top / Δp summary lines).
- ExecuTorch: ``llama_main``'s ``PyTorchObserver {…}`` stats line (load, prefill, first token, decode).

Peak memory is the VmHWM (and VmSwap) of the tool's own process, sampled from ``/proc/PID/status`` on
the device every 0.05 s by a small sh wrapper — not device-wide used memory.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from device_bench.config import expand
from device_bench.metrics import mean_std
from device_bench.protocol import cool_down
from device_bench.sysinfo import split_sections
from edge.errors import BenchError, DeviceError

# ELF e_machine → the `uname -m` names of CPUs that run it
ELF_MACHINES: dict[int, tuple[str, ...]] = {
    0x03: ("i386", "i686", "x86_64"),
    0x28: ("armv7l", "armv8l", "arm", "aarch64"),
    0x3E: ("x86_64", "amd64"),
    0xB7: ("aarch64", "arm64", "armv8l"),
    0xF3: ("riscv64",),
}

# run "$@" in the background, sample its /proc/PID/status until it exits, then print its output
SAMPLER = r'''out="$1"; shift
"$@" > "$out.stdout" 2> "$out.stderr" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
  s=$(grep -E '^(VmHWM|VmRSS|VmSwap):' "/proc/$pid/status" 2>/dev/null | tr -s ' \t\n' ' ')
  [ -n "$s" ] && echo "@mem $s"
  sleep 0.05
done
wait "$pid"; rc=$?
echo; echo "=== @edge-stdout"; cat "$out.stdout"; echo; echo "=== @edge-stderr"; cat "$out.stderr"; echo; echo "=== @edge-exit"; echo "$rc"
rm -f "$out.stdout" "$out.stderr"
'''


def elf_machine(path: Path) -> int | None:
    """The e_machine of an ELF file (None when it is not ELF)."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return struct.unpack("<H" if head[5] == 1 else ">H", head[18:20])[0]


def check_binary(path: Path, arch: str | None, device: str) -> None:
    if not path.exists():
        raise DeviceError(f"{device}: runtime binary {path} does not exist")
    machine = elf_machine(path)
    if machine is None:
        raise DeviceError(f"{device}: {path} is not an ELF executable")
    runs_on = ELF_MACHINES.get(machine, ())
    if arch and arch not in runs_on:
        raise DeviceError(f"{device}: {path.name} is built for {runs_on[0] if runs_on else f'ELF machine {machine:#x}'} "
                          f"but the device is {arch}")


def parse_mem_samples(lines: list[str]) -> dict[str, int]:
    """``@mem VmHWM: 1234 kB VmRSS: ... kB VmSwap: 0 kB`` lines → the largest of each, in bytes."""
    peak: dict[str, int] = {}
    for line in lines:
        for key, kb in re.findall(r"(Vm\w+): (\d+) kB", line):
            peak[key] = max(peak.get(key, 0), int(kb) * 1024)
    return peak


def parse_llama_bench(text: str, n_prompt: int, n_gen: int, n_ttft: int) -> dict[str, Any]:
    """llama-bench ``-o json``: one record per test (pp: n_prompt > 0, n_gen == 0; tg: the reverse)."""
    try:
        records = json.loads(text[text.index("["):text.rindex("]") + 1])
    except ValueError:
        raise BenchError(f"llama-bench printed no JSON results ({text.strip()[-200:] or 'nothing'})") from None
    out: dict[str, Any] = {}
    for r in records:
        if r.get("n_gen") == 0 and r.get("n_prompt") == n_prompt:
            out.update(pp_tps=r["avg_ts"], pp_tps_std=r["stddev_ts"], pp_samples=r.get("samples_ts", []))
        elif r.get("n_gen") == 0 and r.get("n_prompt") == n_ttft:
            ns = r.get("samples_ns") or [r["avg_ns"]]
            m, s = mean_std([x / 1e9 for x in ns])
            out.update(ttft_s=m, ttft_s_std=s, ttft_samples=[x / 1e9 for x in ns])
        elif r.get("n_prompt") == 0 and r.get("n_gen") == n_gen:
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
        out["ppl_base"] = base[0]
    kld = grab(rf"Mean\s+KLD:\s*{_NUM}\s*±\s*{_NUM}")
    if kld:
        out["kld_mean"], out["kld_unc"] = kld
    for key, pat in (("kld_max", "Maximum KLD"), ("kld_99", r"99\.0%\s+KLD"), ("kld_median", r"Median\s+KLD")):
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
    chunks = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+)", text)
    if chunks:
        out["chunks"], out["ctx"] = int(chunks.group(1)), int(chunks.group(2))
    if "ppl" not in out:
        raise BenchError(f"llama-perplexity printed no estimate ({text.strip().splitlines()[-1:] or 'nothing'})")
    return out


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


class NativeRun:
    """One job on a native device: its tools pushed and checked, each command run under the sampler."""

    def __init__(self, device, job: dict[str, Any], on_event) -> None:
        self.d, self.job, self.on_event = device, job, on_event
        self.cfg = job["config"]
        self.arch = device.facts().get("arch")

    def cooling(self) -> dict[str, Any]:
        return self.d.conditions(idle=True)

    def tool(self, name: str) -> str:
        local = self.d.spec.tools.get(name)
        if not local:
            raise DeviceError(f"{self.d.name}: native mode needs {name} for this artifact: add it under "
                              f"[devices.{self.d.name}.tools] in devices.toml (a build for the device's CPU, {self.arch})")
        path = expand(local)
        check_binary(path, self.arch, self.d.name)
        remote = self.d.place(path)
        self.d.t.check(["chmod", "755", remote], what="chmod")
        return remote

    def run(self, argv: list[str], what: str) -> tuple[str, dict[str, int]]:
        if self.job.get("cpus"):
            argv = ["taskset", "-c", ",".join(map(str, self.job["cpus"])), *argv]
        out = self.d.scratch("native-run")
        proc = self.d.t.run(["sh", "-c", SAMPLER, "sampler", out, *argv])
        text = proc.stdout.decode("utf-8", "replace")
        mem = parse_mem_samples([ln for ln in text.splitlines() if ln.startswith("@mem ")])
        parts = split_sections("\n".join(ln for ln in text.splitlines() if not ln.startswith("@mem ")))
        rc = parts.get("@edge-exit", "").strip()
        both = parts.get("@edge-stdout", "") + "\n" + parts.get("@edge-stderr", "")
        if rc != "0":
            last = [ln for ln in parts.get("@edge-stderr", "").splitlines() if ln.strip()][-1:] or ["no output"]
            raise BenchError(f"{self.d.name}: {what} failed (exit {rc or '?'}): {last[0].strip()}")
        return both, mem

    def threads(self) -> list[str]:
        t = self.cfg.get("threads") or (len(self.job["cpus"]) if self.job.get("cpus") else None)
        return ["-t", str(t)] if t else []

    def gguf(self) -> dict[str, Any]:
        cfg, job = self.cfg, self.job
        res: dict[str, Any] = {"mode": "native"}
        if job.get("perf", True):
            bench = self.tool("llama-bench")
            base = [bench, "-m", job["artifact"], "-p", f"{cfg['n_prompt']},{cfg['n_ttft']}", "-n", str(cfg["n_gen"]),
                    "-o", "json", *self.threads()]
            self.on_event({"stage": "llama-bench"})
            if cfg.get("cooldown"):  # one repetition per call, cooled down before each
                reps, waits, peak = [], [], {}
                for r in range(cfg["reps"]):
                    self.on_event({"stage": "llama-bench (cooled)", "done": r, "total": cfg["reps"]})
                    waits.append(cool_down(cfg["cooldown"], self.cooling))
                    text, mem = self.run([*base, "-r", "1"], "llama-bench")
                    reps.append(parse_llama_bench(text, cfg["n_prompt"], cfg["n_gen"], cfg["n_ttft"]))
                    peak = {k: max(v, peak.get(k, 0)) for k, v in mem.items()}
                res.update(_merge_reps(reps), cooldown_waits=waits)
            else:
                text, peak = self.run([*base, "-r", str(cfg["reps"])], "llama-bench")
                res.update(parse_llama_bench(text, cfg["n_prompt"], cfg["n_gen"], cfg["n_ttft"]))
            res["peak_rss_bytes"] = peak.get("VmHWM")
            res["peak_swap_bytes"] = peak.get("VmSwap")
            res["peak_basis"] = "VmHWM of llama-bench, sampled from /proc/PID/status every 0.05 s"
        q = job.get("quality")
        if q:
            ppl = self.tool("llama-perplexity")
            argv = [ppl, "-m", job["artifact"], "-f", q["text_file"], "-c", str(cfg["ctx"]), "-b", str(cfg["ctx"]), *self.threads()]
            if cfg.get("chunks"):
                argv += ["--chunks", str(cfg["chunks"])]
            if q.get("base_out"):
                argv += ["--kl-divergence-base", q["base_out"]]
            elif q.get("base_in"):
                argv += ["--kl-divergence-base", q["base_in"], "--kl-divergence"]
            self.on_event({"stage": "llama-perplexity"})
            text, _ = self.run(argv, "llama-perplexity")
            quality = parse_llama_perplexity(text)
            res["load_s"] = quality.pop("load_s", None)  # printed only where libllama's perf log is on
            res["quality"] = quality
        if res.get("load_s") is None:
            res["load_note"] = "llama-bench and llama-perplexity at default verbosity print no load time"
        return res

    def executorch(self) -> dict[str, Any]:
        cfg, job = self.cfg, self.job
        if not job.get("perf", True):
            return {"mode": "native"}
        main = self.tool("llama_main")
        prompt = " ".join(["the"] * cfg["n_prompt"])  # about n_prompt tokens; the stats line says how many
        argv = [main, "--model_path", job["artifact"], "--tokenizer_path", job["tokenizer"], "--prompt", prompt,
                "--seq_len", str(cfg["n_gen"] + 16), "--temperature", "0"]
        if cfg.get("threads"):
            argv += ["--cpu_threads", str(cfg["threads"])]
        runs, peak = [], {}
        for r in range(cfg["reps"]):
            self.on_event({"stage": "llama_main", "done": r, "total": cfg["reps"]})
            if cfg.get("cooldown"):
                cool_down(cfg["cooldown"], self.cooling)
            text, mem = self.run(argv, "llama_main")
            runs.append(parse_observer(text))
            peak = {k: max(v, peak.get(k, 0)) for k, v in mem.items()}
        res: dict[str, Any] = {"mode": "native", "load_s": runs[0]["load_s"], "peak_rss_bytes": peak.get("VmHWM"),
                               "quality_note": "llama_main has no perplexity mode: no quality figures in native mode"}
        for key in ("pp_tps", "tg_tps", "ttft_s"):
            vals = [r[key] for r in runs if key in r]
            if vals:
                res[key], res[f"{key}_std"] = mean_std(vals)
        return res


def _merge_reps(reps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"threads": reps[0].get("threads"), "llama_cpp_build": reps[0].get("llama_cpp_build")}
    for key, samples in (("pp_tps", "pp_samples"), ("tg_tps", "tg_samples"), ("ttft_s", "ttft_samples")):
        vals = [v for r in reps for v in (r.get(samples) or [r[key]])]
        out[key], out[f"{key}_std"] = mean_std(vals)
        out[samples] = vals
    return out


def run_native(device, job: dict[str, Any], on_event) -> dict[str, Any]:
    run = NativeRun(device, job, on_event)
    if job["family"] == "gguf":
        return run.gguf()
    if job["family"] == "executorch":
        return run.executorch()
    raise DeviceError(f"{device.name}: {job['family']} artifacts need agent mode (a device with Python); "
                      "native mode runs llama.cpp's and ExecuTorch's command-line tools")


__all__ = ["run_native", "parse_llama_bench", "parse_llama_perplexity", "parse_observer", "parse_mem_samples",
           "check_binary", "elf_machine"]
