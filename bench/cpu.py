"""CPU time of the processes under test, from ``/proc`` (the figure least sensitive to
a busy machine: other processes slow a run down but do not add to its CPU seconds).

``CpuMeter(pids)`` samples each process's user + system time (all its threads) at the
start and at :meth:`stop`; a process that appeared meanwhile (a PostgreSQL backend of a
new connection) counts from its birth. The machine's own load during the run is kept
beside it (``/proc/stat``: busy cores on average), to tell how loaded the machine was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` (all threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> tuple[float, float]:
    """(busy core-seconds, total core-seconds) since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


class CpuMeter:
    """CPU seconds used by a set of processes between start and :meth:`stop`."""

    def __init__(self, pids: Iterable[int] | Callable[[], Iterable[int]]):
        self._pids = pids if callable(pids) else (lambda fixed=tuple(pids): fixed)
        self.start_values = self._sample()
        self.started = time.monotonic()
        self.busy_start = machine_busy()
        self.per_pid: dict[int, float] = {}
        self.seconds = float("nan")
        self.machine_cores = float("nan")

    def _sample(self) -> dict[int, float]:
        values = {}
        for pid in self._pids():
            value = process_seconds(pid)
            if value is not None:
                values[pid] = value
        return values

    def stop(self) -> float:
        end = self._sample()
        self.per_pid = {pid: value - self.start_values.get(pid, 0.0)
                        for pid, value in end.items()}
        self.seconds = sum(self.per_pid.values())
        busy, total = machine_busy()
        elapsed = total - self.busy_start[1]
        cores = os.cpu_count() or 1
        self.machine_cores = (busy - self.busy_start[0]) / max(elapsed, 1e-9) * cores
        return self.seconds

    def per_1000(self, deliveries: int) -> float:
        """CPU seconds per 1,000 deliveries (NaN without deliveries)."""
        return self.seconds / deliveries * 1000 if deliveries else float("nan")
