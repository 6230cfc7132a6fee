"""Work on several devices at once from one host: one worker thread per device (a lane), a gate that keeps
the host quiet while its own ``local`` device is measured, and a value computed once for all lanes.

A device's measurements run in processes on the device (over SSH, adb, or a local subprocess), so a
lane's thread mostly waits; threads are enough. The host itself is busy only while it pushes files or
computes something for the lanes (the source reference): ``HostGate.busy()`` marks that, and
``HostGate.quiet()`` (held while ``local`` is measured) waits until nobody is busy and holds off new
busy work until the measurement is over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class HostGate:
    """Busy host work may overlap other busy work; a quiet measurement overlaps none of it. A waiting
    quiet measurement goes first: busy work that arrives after it waits (no starvation by a stream of pushes)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0
        self._quiet = False
        self._quiet_waiting = 0
        self.busy_seconds_waited = 0.0

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._quiet and not self._quiet_waiting)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        with self._cond:
            self._quiet_waiting += 1
            try:
                self._cond.wait_for(lambda: not self._quiet and not self._busy)
            finally:
                self._quiet_waiting -= 1
            self._quiet = True
        try:
            yield
        finally:
            with self._cond:
                self._quiet = False
                self._cond.notify_all()


class Once(Generic[T]):
    """``make()`` run by the first lane that asks, the others waiting for its value (or its error)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._make()
                except BaseException as exc:  # every lane that asks sees the same failure
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


@dataclass
class LaneOutcome(Generic[R]):
    name: str
    value: R | None = None
    error: BaseException | None = None


def run_lanes(work: dict[str, Callable[[], R]]) -> list[LaneOutcome[R]]:
    """Run each named piece of work in its own thread, all at once; every outcome (value or error), in the
    order given. One piece runs in the caller's thread. Ctrl-C in the caller stops waiting at once (the
    lanes' measuring processes get the same signal from the terminal) and is raised."""
    outcomes = {name: LaneOutcome[R](name) for name in work}
    if len(work) == 1:
        (name, fn), = work.items()
        outcomes[name].value = fn()  # errors and Ctrl-C as without lanes
        return list(outcomes.values())

    def lane(name: str, fn: Callable[[], R]) -> None:
        try:
            outcomes[name].value = fn()
        except BaseException as exc:  # noqa: BLE001 - a lane's failure is reported, never lost
            outcomes[name].error = exc

    threads = [threading.Thread(target=lane, args=(n, fn), name=f"lane-{n}", daemon=True) for n, fn in work.items()]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # a timed join lets Ctrl-C through to this thread
    return list(outcomes.values())
