"""What every scenario gets: the sizes, a work folder, the shared receiver, the set-up of
one measured run (``serve`` on a store, stopped however the run ends; the CPU meter over
serve and the receiver; the paced event load), and a place to put its figures (results,
the rounds behind each median, how the baseline ran)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.cpu import CpuMeter
from bench.processes import (
    Background,
    Receiver,
    Serve,
    events_headers,
    log,
    run_json,
    spawn_with_port,
    stop,
)
from bench.sizes import Sizes
from bench.stores import BODY


class Bench:
    def __init__(self, sizes: Sizes, workdir: Path):
        self.sizes, self.work = sizes, workdir
        self.receiver = Receiver()
        self.scenarios: dict[str, dict] = {}
        self.current = ""

    def close(self):
        self.receiver.close()

    def path(self, name: str) -> Path:
        return self.work / f"{name}.db"

    def hook_urls(self, count: int, prefix: str = "h") -> list[str]:
        return [f"{self.receiver.url}/{prefix}/{i}" for i in range(count)]

    def hook_paths(self, urls) -> set[str]:
        return {u.split(str(self.receiver.port), 1)[1] for u in urls}

    @contextmanager
    def serving(self, db: Path | str, *, grace: float = 10.0, **serve) -> Iterator[Serve]:
        """``serve`` on ``db`` for one measured run, stopped however the run ends
        (``grace``: how long attempts still in flight may hold the stop)."""
        server = Serve(db, **serve)
        try:
            yield server
        finally:
            server.stop(grace=grace)

    def meter(self, server: Serve) -> CpuMeter:
        """CPU seconds of ``server`` and the shared receiver from now on."""
        return CpuMeter([server.pid, self.receiver.pid])

    def record(self, results: dict | None = None, *, rounds: dict | None = None,
               baseline: str | None = None, **extra) -> None:
        """Add figures to the running scenario's entry."""
        entry = self.scenarios.setdefault(self.current, {"results": {}, "rounds": {},
                                                         "baseline": ""})
        entry["results"].update(results or {})
        entry["rounds"].update(rounds or {})
        if baseline is not None:
            entry["baseline"] = baseline
        entry.update(extra)

    def skip(self, why: str) -> None:
        self.record(baseline=f"skipped: {why}", skipped=why)


def events_job(port: int, account: str = "alice", body: str = BODY, **job) -> dict:
    """A loadgen job POSTing the bench event to ``/events`` (``{k}`` numbered)."""
    return {"port": port, "path": "/events", "headers": events_headers(),
            "body": f'{{"account":"{account}","event":"optin_finalized","data":{body}}}',
            **job}


def alternate(n: int, ours_job: dict, bare_job: dict) -> tuple[dict, dict]:
    """Run both loads one after the other, soapservice first in even rounds and the
    bare baseline first in odd ones (load from the neighbours drifts)."""
    if n % 2:
        base = run_json(["bench.loadgen"], bare_job)
        return run_json(["bench.loadgen"], ours_job), base
    ours = run_json(["bench.loadgen"], ours_job)
    return ours, run_json(["bench.loadgen"], bare_job)


def rounds_against_bare(bench: Bench, name: str, db: Path,
                        jobs: Callable[[Serve, int], tuple[dict, dict]]
                        ) -> tuple[list[float], list[float]]:
    """``serve --no-delivery`` on ``db`` beside ``python -m bench.bare NAME``, loaded
    ``load_rounds`` times each, alternating which goes first: (its rates, the bare
    rates). ``jobs(server, bare_port)`` gives the two loadgen jobs (and may warm up)."""
    server = Serve(db, delivery=False)
    bare, bare_port = spawn_with_port("bench.bare", name)
    ours_rates, bare_rates = [], []
    try:
        ours_job, bare_job = jobs(server, bare_port)
        for n in range(bench.sizes.load_rounds):
            ours, base = alternate(n, ours_job, bare_job)
            ours_rates.append(ours["rate"])
            bare_rates.append(base["rate"])
            log(f"{name} round {n + 1}: soapservice {ours['rate']:.0f}/s "
                f"{ours['statuses']}, bare {base['rate']:.0f}/s {base['statuses']}")
    finally:
        server.stop()
        stop(bare)
    return ours_rates, bare_rates


def paced_events(server: Serve, **job) -> Background:
    """The bench event POSTed to ``server`` at a steady pace while the caller measures
    (``rate``, ``count`` or ``seconds``, ``connections``...: a ``bench.loadgen`` job)."""
    return Background(["bench.loadgen"], events_job(server.port, mode="paced", **job))


def posted_latencies(arrivals: list, returned: list[float], paths: set[str] | None = None,
                     skip: int = 0, first_only: bool = False) -> list[float]:
    """ms from each POST /events returning to the receiver holding its delivery (0 when
    the delivery came first); the first ``skip`` events warm up. ``first_only``: one
    figure per (event, path), its first successful arrival."""
    latencies, seen = [], set()
    for at, path, k in arrivals:
        if (k is None or not skip <= k < len(returned) or not returned[k]
                or (paths is not None and path not in paths)):
            continue
        if first_only:
            if (k, path) in seen:
                continue
            seen.add((k, path))
        latencies.append(max(0.0, (at - returned[k]) * 1000))
    return latencies


def all_latencies(arrivals: list, returned: list[float], paths: set[str], final: float,
                  skip: int = 0) -> tuple[list[float], int]:
    """(ms from 202 to receiver for every (event, path) expected, missing): the first
    arrival of each; one that never arrived counts as its lower bound (``final`` - its
    202), so a p99 cannot look good by losing the slow ones."""
    first: dict[tuple[int, str], float] = {}
    for at, path, k in arrivals:
        if k is not None and path in paths and skip <= k < len(returned):
            first.setdefault((k, path), at)
    latencies, missing = [], 0
    for k in range(skip, len(returned)):
        if not returned[k]:
            continue
        for path in paths:
            at = first.get((k, path))
            if at is None:
                missing += 1
                at = final
            latencies.append(max(0.0, (at - returned[k]) * 1000))
    return latencies, missing
