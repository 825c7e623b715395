"""Process liveness: whether the process holding a lease surely is gone, so that its
leases can be taken back at start instead of when they expire."""

from __future__ import annotations

import os
import socket

LIVE_OWNERS: set[str] = set()  # owner ids of the delivery services running in this process


def _process_space() -> str:
    """Where a pid means one process: this host name and PID namespace (two containers
    may share a host name, each with its own pid 1)."""
    try:
        namespace = f"{os.stat('/proc/self/ns/pid').st_ino:x}"
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()[:32]}/{namespace}"


SPACE = _process_space()


def owner_is_dead(owner: str, space: str = SPACE, pid: int | None = None,
                  live: set[str] = LIVE_OWNERS) -> bool:
    """True only when the process that holds ``owner``'s leases surely is gone.

    Owner ids are ``host/pid-namespace:pid:token``. Within this host and PID namespace
    an owner is dead when no process has its pid (or only a zombie), or when its pid is
    this very process but not one of its running services (an earlier life under the
    same pid: a restarted container). An owner elsewhere cannot be judged (another host
    or container sharing the store): its leases run out by themselves.
    """
    pid = os.getpid() if pid is None else pid
    try:
        owner_space, owner_pid, _token = owner.rsplit(":", 2)
        owner_pid = int(owner_pid)
    except ValueError:
        return False
    if owner_space != space:
        return False
    if owner_pid == pid:
        return owner not in live
    return not _pid_alive(owner_pid)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id: don't judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
