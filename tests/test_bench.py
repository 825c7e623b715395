"""The benchmark harness runs end to end (quick mode, tiny sizes), so it cannot rot.
No timing assertions: only that every scenario produced its figures."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

KEYS = ("delivery_ratio", "soap_ratio", "ingest_ratio", "latency_p50_ms", "latency_p99_ms",
        "isolation_ratio", "backlog_ratio", "replay_rss_mb")


@pytest.mark.slow
def test_quick_bench_writes_every_figure(tmp_path):
    output = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(output.read_text())
    for key in KEYS:
        value = report["results"][key]
        assert isinstance(value, float) and value == value, (key, value)  # not NaN
        assert key in run.stdout
    assert report["machine"]["cpu_count"] >= 1
    assert set(report["baselines"]) >= {"delivery", "soap", "ingest", "latency",
                                        "isolation", "replay", "backlog", "workers"}
    if not report["baselines"]["workers"].startswith("skipped"):  # PostgreSQL answered
        for key in ("workers_1_per_s", "workers_2_ratio", "workers_3_ratio"):
            assert report["results"][key] > 0, key
