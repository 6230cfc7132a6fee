"""The measuring process: ``python -m device_bench.runner`` reads one job (JSON) on stdin, runs it,
and prints one JSON object on stdout. Progress goes to stderr as JSON lines prefixed ``@edge ``.

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
from edge.measure.protocol import measure

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


def main() -> int:
    try:
        job = Job.from_json(json.loads(sys.stdin.read()))
        pin_cpus(job)
        open_runtime = FAMILIES.get(job.family).load("runtime")
        result = {"ok": True, "result": measure(lambda: open_runtime(job), job, emit, local_conditions).to_json()}
    except EdgeError as exc:
        result = {"ok": False, "error": str(exc), "error_type": type(exc).__name__}
    except Exception as exc:  # report, never hang the parent
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "error_type": "BenchError",
                  "traceback": traceback.format_exc()}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
