"""The measuring process: ``python -m device_bench.runner`` reads one job (a JSON line) on stdin, runs it,
and prints one JSON object on stdout. Progress goes to stderr as JSON lines prefixed ``@edge ``.

A session job (``Job.session``) stays loaded and takes its steps from stdin, one JSON line each —
``{"op": "rep"}`` (one repetition), ``{"op": "finish"}`` (summary and quality, then exit) — answering each
with one line on stdout, so that the repetitions of several artifacts can be interleaved.

The same entry point serves the local machine and a device's agent (over SSH or adb): the job
(``edge.core.jobs.Job``, refused if of another version) names its family, whose runtime
(``edge.core.family.FAMILIES``) ``edge.measure.protocol`` measures; a ``JobResult`` goes back.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

from device_bench.sysinfo import read_conditions
from device_bench.transports import LocalTransport
from edge.core.errors import EdgeError
from edge.core.family import FAMILIES
from edge.core.jobs import Job
from edge.measure.protocol import Measurement, measure

PROGRESS_PREFIX = "@edge "


def emit(event: dict[str, Any]) -> None:
    sys.stderr.write(PROGRESS_PREFIX + json.dumps(event) + "\n")
    sys.stderr.flush()


def pin_cpus(job: Job) -> None:
    """``--cores big``: run on the listed CPUs only (and, unless threads were given, one thread each)."""
    if job.cpus:
        os.sched_setaffinity(0, job.cpus)
        if not job.config.threads:
            job.config.threads = len(job.cpus)


def local_conditions() -> dict[str, Any]:
    """Conditions and a 1-second idle sample of the machine this process runs on (the agent's cooldown)."""
    return read_conditions(LocalTransport(), ".", idle=True)


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(job: Job, open_runtime) -> None:
    """A session: load, then one step per stdin line until "finish" (or stdin closes)."""
    run = Measurement(lambda: open_runtime(job), job, emit, local_conditions)
    try:
        reply({"ok": True, "op": "loaded"})
        for line in sys.stdin:
            op = json.loads(line).get("op")
            if op == "rep":
                run.rep()
                reply({"ok": True, "op": "rep"})
            elif op == "finish":
                reply({"ok": True, "result": run.finish().to_json()})
                return
            else:
                raise EdgeError(f"unknown session step {op!r}")
    finally:
        run.close()


def main() -> int:
    result: dict[str, Any] = {"ok": True}
    try:
        job = Job.from_json(json.loads(sys.stdin.readline()))
        pin_cpus(job)
        open_runtime = FAMILIES.get(job.family).load("runtime")
        if job.session:
            serve(job, open_runtime)
            return 0
        result = {"ok": True, "result": measure(lambda: open_runtime(job), job, emit, local_conditions).to_json()}
    except EdgeError as exc:
        result = {"ok": False, "error": str(exc), "error_type": type(exc).__name__}
    except Exception as exc:  # report, never hang the parent
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "error_type": "BenchError",
                  "traceback": traceback.format_exc()}
    reply(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
