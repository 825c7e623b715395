"""The benchmark harness: the docs table is in step with bench/results.json, the
figures' arithmetic is right, and every scenario runs end to end at tiny sizes (so the
harness cannot rot). No timing assertions: benchmarks judge speed, tests do not."""

import json
import math
import os
import subprocess
import sys

import pytest

from bench import report, scenarios
from bench.context import all_latencies
from bench.cpu import CpuMeter, process_seconds
from tests.conftest import ROOT


def test_docs_table_is_generated_from_results_json():
    """docs/benchmarks.rst shows what bench/results.json holds (make bench rewrites
    both; a hand edit of either shows here)."""
    assert report.table_in_docs() == report.docs_table(report.load())


def test_every_target_has_a_meaning_and_a_scenario():
    meaning = report.figures()
    for key in report.targets():
        assert key in meaning, key
    assert set(report.targets()) >= {
        "backlog_p99_ratio", "backlog_ingest_p99_ratio", "hanging_p99_ratio",
        "hanging_throughput_ratio", "flaky_10_undelivered_after_60s", "purge_gap_ms",
        "claim_sqlite_failing_ms", "claim_pg_failing_ms", "webhooks10k_p99_ratio",
        "scale_20_8_efficiency", "scale_200_4_efficiency"}


def test_verdicts_and_the_docs_table_say_missed():
    entry = {"results": {"backlog_p99_ratio": 2.0, "hanging_p99_ratio": 1.2,
                         "hanging_throughput_ratio": float("nan")}}
    text = report.docs_table({"scenarios": {"backlog": entry}})
    assert "MISSED" in text and "met" in text and "n/a" in text
    assert report.verdict("purge_file_ratio", 1.0) == ("< 1", "MISSED")
    assert report.verdict("purge_file_ratio", 0.4) == ("< 1", "met")


def test_a_delivery_that_never_arrived_counts_as_the_time_waited():
    returned = [100.0, 101.0]
    arrivals = [(100.002, "/h/0", 0), (100.5, "/h/0", 0)]  # a duplicate: first counts
    latencies, missing = all_latencies(arrivals, returned, {"/h/0"}, final=111.0)
    assert missing == 1
    assert [round(x) for x in latencies] == [2, 10_000]


def test_cpu_meter_counts_this_process():
    meter = CpuMeter([os.getpid()])
    sum(i * i for i in range(300_000))
    assert meter.stop() > 0
    assert process_seconds(2**22 + 12345) is None  # no such process
    assert math.isnan(meter.per_1000(0))


@pytest.mark.slow
@pytest.mark.server
def test_quick_bench_runs_every_scenario(tmp_path):
    output = tmp_path / "results.json"
    docs = tmp_path / "benchmarks.rst"
    docs.write_text(f"Title\n=====\n\n{report.START}\n\nold\n\n{report.END}\n\nAfter.\n")
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(output),
                          "--docs", str(docs)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(output.read_text())
    assert list(result["scenarios"]) == list(scenarios.ORDER)
    for name, entry in result["scenarios"].items():
        if entry.get("skipped"):  # no PostgreSQL or no writable cgroups: said why
            assert name in ("workers", "scale", "claim_cost"), name
            assert entry["baseline"].startswith("skipped: ")
            continue
        figures = {k: v for k, v in entry["results"].items() if isinstance(v, float)}
        assert figures, name
        assert entry["baseline"], name
        for key in getattr(scenarios.module(name), "TARGETS", {}):
            if key in entry["results"]:
                assert key in run.stdout
    # The quick sizes still measure: deliveries arrived and were timed.
    results = result["results"]
    for key in ("delivery_ratio", "backlog_p99_ratio", "hanging_p99_ratio",
                "flaky_10_per_s", "purge_gap_ms", "claim_sqlite_failing_ms",
                "webhooks10k_p99_ratio", "delivery_cpu_per_1000"):
        assert results[key] == results[key], key  # not NaN
    claimed = [v for k, v in results.items() if k.startswith("claim_sqlite_")
               and k.endswith("_claimed")]
    assert claimed and max(claimed) > 0  # the claims it timed handed work out
    assert report.table_in_docs(docs) == report.docs_table(result)
    assert docs.read_text().endswith("After.\n")
