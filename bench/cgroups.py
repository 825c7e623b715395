"""CPU-capped cgroups for the ``scale`` scenario: each worker in its own group, so that
N capped workers show whether the design scales rather than how many cores there are.

cgroup v2 where the unified hierarchy offers the cpu controller (``cpu.max``), else the
v1 cpu controller (``cpu.cfs_period_us`` / ``cpu.cfs_quota_us``). :func:`available`
says why not when neither is writable; groups are removed once their process exited.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PERIOD_US = 10_000
ROOTS_V2 = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
ROOT_V1 = Path("/sys/fs/cgroup/cpu")


def _v2_root() -> Path | None:
    for root in ROOTS_V2:
        controllers = root / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            return root
    return None


def available() -> tuple[str | None, str]:
    """("v2" | "v1" | None, why): which kind of group can cap a process here."""
    root = _v2_root()
    if root is not None:
        if os.access(root, os.W_OK):
            return "v2", f"cgroup v2 cpu.max under {root}"
        return None, f"{root} is not writable"
    if (ROOT_V1 / "cpu.cfs_quota_us").exists():
        if os.access(ROOT_V1, os.W_OK):
            return "v1", f"cgroup v1 cpu.cfs_quota_us under {ROOT_V1}"
        return None, f"{ROOT_V1} is not writable"
    return None, "no cgroup cpu controller (neither v2 cpu.max nor v1 cpu.cfs_quota_us)"


class CpuGroup:
    """A cgroup capping its processes at ``cpus`` CPUs."""

    def __init__(self, name: str, cpus: float):
        kind, why = available()
        if kind is None:
            raise RuntimeError(why)
        self.kind = kind
        quota = max(1000, int(cpus * PERIOD_US))
        if kind == "v2":
            root = _v2_root()
            subtree = root / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
            self.path = root / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            self.path = ROOT_V1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> float | None:
        """Seconds this group was held back by its cap (cpu.stat), if told."""
        try:
            text = (self.path / "cpu.stat").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "throttled_usec":
                return int(value) / 1e6
            if name == "throttled_time":
                return int(value) / 1e9
        return None

    def remove(self, timeout: float = 10.0) -> None:
        """rmdir once the group's processes are gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
