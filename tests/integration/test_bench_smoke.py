"""`python -m bench rebuild` on a tiny log: it runs and writes its figures. Never a timed assertion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_rebuild_benchmark_writes_every_figure_with_a_positive_rate(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "rebuild", "--events", "200", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    latest = json.loads((tmp_path / "latest.json").read_text())
    [result] = latest["results"]
    figures = {figure["name"]: figure for figure in result["figures"]}
    assert {"raw read, next_msg", "decode only (memory)", "rebuild kv", "rebuild graph"} <= set(figures)
    assert all(figure["value"] > 0 for figure in figures.values())
    assert figures["rebuild graph"]["ratio"] > 0 and figures["rebuild graph"]["target"] == 20_000
    assert result["details"]["applied"] == {"kv": 200, "graph": 200}
    assert result["details"]["content_hash_stable"] == {"kv": True, "graph": True}
    assert latest["machine"]["cpu_count"] and latest["machine"]["git_commit"]
