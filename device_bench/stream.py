"""Talking to a measuring process (``python -m device_bench.runner``, here or on a device): its job in on
stdin, its progress lines relayed, its one-line JSON result decoded — an error it reports is raised
again here as the same ``EdgeError`` class."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from device_bench.runner import PROGRESS_PREFIX
from edge.core.errors import BenchError, DeviceError, error_class
from edge.core.jobs import Job, JobResult

OnEvent = Callable[[dict[str, Any]], None]


def stream_job(proc: subprocess.Popen, job: Job, on_event: OnEvent, lost: str | None = None) -> JobResult:
    """Feed a runner process its job, relay its progress lines, and decode its one-line JSON result."""
    assert proc.stdin and proc.stderr and proc.stdout
    try:
        proc.stdin.write(json.dumps(job.to_json()))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    tail: list[str] = []
    try:
        for line in proc.stderr:
            if line.startswith(PROGRESS_PREFIX):
                on_event(json.loads(line[len(PROGRESS_PREFIX):]))
            elif line.strip():
                tail = (tail + [line.rstrip()])[-5:]
        out = proc.stdout.read()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if lost and proc.returncode == 255 and not out.strip():
        raise DeviceError(f"{lost} ({' | '.join(tail) or 'no message'})")
    return decode_result(out, proc.returncode, tail)


def decode_result(stdout: str, returncode: int, stderr_tail: list[str]) -> JobResult:
    """Turn a runner's stdout into its result, or raise the error it reported as an EdgeError."""
    try:
        reply = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        why = " | ".join(stderr_tail) or f"exit code {returncode}"
        raise BenchError(f"the measuring process died without a result ({why})") from None
    if not reply.get("ok"):
        raise error_class(reply.get("error_type", ""))(reply.get("error", "unknown error"))
    return JobResult.from_json(reply["result"])
