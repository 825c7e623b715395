"""``python -m bench``: soapservice against the bare parts of its stack and against
itself under stress, side by side in one run.

Every scenario runs a real ``soapservice serve`` (or ``soapservice worker`` processes on
PostgreSQL), the webhook receiver (``bench.receiver``) and the load (``bench.loadgen``,
``bench.bare``) in their own processes. Each ratio is soapservice ÷ bare (or loaded ÷
unloaded) measured in the same run; delivery scenarios also report CPU seconds per
1,000 deliveries of all their processes (from /proc). Writes ``bench/results.json``
(a run of some scenarios replaces theirs and keeps the others') and regenerates the
table in ``docs/benchmarks.rst``.

    python -m bench                     # every scenario (make bench)
    python -m bench backlog hanging     # chosen ones
    python -m bench --quick             # smoke run with tiny sizes
    python -m bench --table             # only regenerate the docs table from results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from bench import report, scenarios
from bench.context import Bench
from bench.cpu import machine_busy
from bench.processes import log
from bench.sizes import QUICK, Sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="*", help=f"any of: {' '.join(scenarios.ORDER)}")
    parser.add_argument("--only", help="comma-separated scenarios (same as naming them)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds per ratio (median kept)")
    parser.add_argument("--deliveries", type=int, help="deliveries per drain")
    parser.add_argument("--replay-events", type=int)
    parser.add_argument("--old-delivered", type=int)
    parser.add_argument("--scale-cpu", type=float, help="CPU cap per scale worker (0.2)")
    parser.add_argument("--output", default=str(report.RESULTS))
    parser.add_argument("--docs", default=str(report.DOCS),
                        help="docs file whose table is regenerated ('' for none)")
    parser.add_argument("--table", action="store_true",
                        help="only regenerate the docs table from the results file")
    args = parser.parse_args(argv)
    if args.table:
        if not report.update_docs(report.load(Path(args.output)), Path(args.docs)):
            parser.error(f"{args.docs} has no table markers")
        print(f"table regenerated in {args.docs}")
        return 0
    sizes = QUICK if args.quick else Sizes()
    for name in ("rounds", "deliveries", "replay_events", "old_delivered", "scale_cpu"):
        if getattr(args, name) is not None:
            sizes = replace(sizes, **{name: getattr(args, name)})
    chosen = list(args.scenario) + (args.only.split(",") if args.only else [])
    unknown = set(chosen) - set(scenarios.ORDER)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    # Named scenarios run in the order given; the file lists them in ORDER.
    chosen = list(dict.fromkeys(chosen)) or list(scenarios.ORDER)
    started = time.monotonic()
    busy_start = machine_busy()
    output = Path(args.output)
    previous = {}
    if output.exists() and set(chosen) != set(scenarios.ORDER):
        try:
            previous = json.loads(output.read_text()).get("scenarios", {})
        except (ValueError, AttributeError):
            previous = {}
    with tempfile.TemporaryDirectory(prefix="soapservice-bench-") as tmp:
        bench = Bench(sizes, Path(tmp))
        try:
            for name in chosen:
                log(f"scenario {name}")
                bench.current = name
                begun, busy_before = time.monotonic(), machine_busy()
                scenarios.module(name).run(bench)
                busy_after = machine_busy()
                bench.record(seconds=round(time.monotonic() - begun, 1), commit=_commit(),
                             finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                             machine_busy_cores=round(
                                 (busy_after[0] - busy_before[0])
                                 / max(busy_after[1] - busy_before[1], 1e-9)
                                 * (os.cpu_count() or 1), 2))
                # Written after every scenario: a run cut short keeps what it measured.
                result = _result(bench, previous, chosen, sizes, args.quick, started,
                                 busy_start)
                output.write_text(json.dumps(result, indent=2) + "\n")
        finally:
            bench.close()
    result = _result(bench, previous, chosen, sizes, args.quick, started, busy_start)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(report.console_table(result))
    print(f"\n{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{result['run']['seconds']} s, the machine {result['run']['machine_busy_cores']} "
          f"busy cores on average; written to {output}")
    print("seconds and busy cores (whole machine) per scenario: " + ", ".join(
        f"{name} {entry.get('seconds')} s {entry.get('machine_busy_cores', '?')}"
        for name, entry in bench.scenarios.items()))
    if args.docs and report.update_docs(result, Path(args.docs)):
        print(f"table regenerated in {args.docs}")
    return 0


def _commit() -> str:
    """The commit the measured code is (with "+changes" when the tree differs)."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=report.ROOT, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "soapservice"],
                               capture_output=True, text=True, cwd=report.ROOT,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + ("+changes" if dirty else "")


def _result(bench, previous, chosen, sizes, quick, started, busy_start) -> dict:
    busy, total = machine_busy()
    merged = {name: bench.scenarios.get(name) or previous[name]
              for name in scenarios.ORDER if name in bench.scenarios or name in previous}
    return {
        "scenarios": merged,
        "results": {k: v for entry in merged.values() for k, v in entry["results"].items()},
        "targets": {k: f"{op} {v:g}" for k, (op, v) in report.targets().items()},
        "sizes": asdict(sizes),
        "quick": quick,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "implementation": platform.python_implementation(),
                    "platform": platform.platform()},
        "run": {"scenarios": [n for n in chosen if n in bench.scenarios],
                "seconds": round(time.monotonic() - started, 1),
                "machine_busy_cores": round((busy - busy_start[0])
                                            / max(total - busy_start[1], 1e-9)
                                            * (os.cpu_count() or 1), 2),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")},
    }


if __name__ == "__main__":
    sys.exit(main())
