"""Talking to a measuring process (``python -m device_bench.runner``, here or on a device): its job in on
stdin, its progress lines relayed, its one-line JSON result decoded — an error it reports is raised
again here as the same ``EdgeError`` class. ``RunnerSession`` keeps one loaded and steps it (interleaved
repetitions)."""

from __future__ import annotations

import json
import subprocess
import threading
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
        proc.stdin.write(json.dumps(job.to_json()) + "\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    tail: list[str] = []
    chunks: list[str] = []
    # stdout is drained beside the stderr relay: a result larger than a pipe's buffer (a task's items)
    # would otherwise block the runner on its write while this side waits for stderr to end
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    try:
        relay(proc.stderr, on_event, tail)
        reader.join()
        out = "".join(chunks)
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if not out.strip():
        _raise_if_lost(lost, proc.returncode, tail)
    return decode_result(out, proc.returncode, tail)


def relay(lines, on_event: OnEvent, tail: list[str]) -> None:
    """A runner's stderr: progress lines to ``on_event``, the last 5 other lines kept in ``tail``."""
    for line in lines:
        if line.startswith(PROGRESS_PREFIX):
            on_event(json.loads(line[len(PROGRESS_PREFIX):]))
        elif line.strip():
            tail.append(line.rstrip())
            del tail[:-5]


def _raise_if_lost(lost: str | None, returncode: int | None, tail: list[str]) -> None:
    """A runner that ended with ssh's own exit code (255) and said nothing: the link went, not the job."""
    if lost and returncode == 255:
        raise DeviceError(f"{lost} ({' | '.join(tail) or 'no message'})")


def _reply(stdout: str, returncode: int | None, stderr_tail: list[str]) -> dict[str, Any]:
    try:
        reply = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        why = " | ".join(stderr_tail) or f"exit code {returncode}"
        raise BenchError(f"the measuring process died without a result ({why})") from None
    if not reply.get("ok"):
        raise error_class(reply.get("error_type", ""))(reply.get("error", "unknown error"))
    return reply


def decode_result(stdout: str, returncode: int, stderr_tail: list[str]) -> JobResult:
    """Turn a runner's stdout into its result, or raise the error it reported as an EdgeError."""
    return JobResult.from_json(_reply(stdout, returncode, stderr_tail)["result"])


class RunnerSession:
    """A measuring process that stays loaded (``Job.session``): ``rep()`` runs one repetition, ``finish()``
    the summary and quality pass and returns the result. Progress lines are relayed from a thread."""

    def __init__(self, proc: subprocess.Popen, job: Job, on_event: OnEvent, lost: str | None = None) -> None:
        assert proc.stdin and proc.stderr and proc.stdout
        self.proc, self.lost = proc, lost
        self.tail: list[str] = []
        self._relay = threading.Thread(target=relay, args=(proc.stderr, on_event, self.tail), daemon=True)
        self._relay.start()
        self._step({**job.to_json(), "session": True})  # answered once loaded

    def _step(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the process is gone: its last words (or none) are read below
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._relay.join(timeout=5)
            _raise_if_lost(self.lost, self.proc.returncode, self.tail)
        return _reply(line, self.proc.returncode, self.tail)

    def rep(self) -> None:
        self._step({"op": "rep"})

    def finish(self) -> JobResult:
        result = JobResult.from_json(self._step({"op": "finish"})["result"])
        self.close()
        return result

    def close(self) -> None:
        """End the process (politely when it has finished, else killed) and wait for it."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._relay.join(timeout=5)
