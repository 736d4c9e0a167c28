"""The peer benchmark suite runs from the test suite in its quick form (a smoke run, not a measure).

Speed is judged by the suite's ratios in one run (``tox -e bench``), never by timings here: this
only checks that every scenario still runs, checks its results and reports, with whatever peers
are installed (the ``bench`` extra's are skipped with a reason when missing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_the_benchmark_suite_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    suite = ROOT / "benchmarks" / "bench_suite.py"
    proc = subprocess.run(
        [sys.executable, str(suite), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    scenarios = {row["scenario"] for row in results["rows"]}
    assert scenarios == {f"S{n}" for n in range(1, 9)}
    mine = [row for row in results["rows"] if row["artifactio"]]
    assert mine
    assert all(row["median"] > 0 for row in mine)
    assert results["targets"]
