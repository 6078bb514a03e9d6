"""The benchmarks on tiny inputs: each runs and writes its figures. Never a timed assertion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_bench(out: Path, *argv: str, timeout_s: float) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench", *argv, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "latest.json").read_text())


def test_the_rebuild_benchmark_writes_every_figure_with_a_positive_rate(tmp_path):
    latest = run_bench(tmp_path, "rebuild", "--events", "200", timeout_s=120)
    [result] = latest["results"]
    figures = {figure["name"]: figure for figure in result["figures"]}
    assert {"raw read, next_msg", "decode only (memory)", "rebuild kv", "rebuild graph"} <= set(figures)
    assert all(figure["value"] > 0 for figure in figures.values())
    assert figures["rebuild graph"]["ratio"] > 0 and figures["rebuild graph"]["target"] == 20_000
    assert result["details"]["applied"] == {"kv": 200, "graph": 200}
    assert result["details"]["content_hash_stable"] == {"kv": True, "graph": True}
    assert latest["machine"]["cpu_count"] and latest["machine"]["git_commit"]


@pytest.mark.e2e
def test_the_mesh_benchmark_writes_every_latency_and_throughput_figure(tmp_path):
    """A whole mesh on the stand-in LLM, 2 latency samples of each council and 3 deliberations in a row."""
    latest = run_bench(tmp_path, "mesh", "--samples", "2", "--deliberations", "3", timeout_s=300)
    [result] = latest["results"]
    figures = {figure["name"]: figure for figure in result["figures"]}
    assert set(figures) == {
        "raw hop p50 (baseline)", "raw hop p99", "propose-only p50", "propose-only p99", "full protocol p50",
        "full protocol p99", "raw publish+consume (baseline)", "full deliberations",
    }
    assert all(figure["value"] > 0 for figure in figures.values())
    assert figures["full protocol p50"]["target"] == 50 and figures["full protocol p50"]["ratio"] > 0
    assert figures["full deliberations"]["ratio"] > 0 and figures["full deliberations"]["target"] == 50
    assert result["details"]["throughput"]["failed"] == 0
    # A full deliberation of 3 agents stores its approval, request, start, 13 turns asked and answered, and more.
    assert result["details"]["throughput"]["events_per_deliberation"] > 30
    assert len(result["details"]["latency_ms"]["QA"]) == len(result["details"]["latency_ms"]["DEV"]) == 2
