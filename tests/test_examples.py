"""The examples and the README's code run as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from _extras import installed
from artifactio.embedded import SeaweedFS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

OWN_ENVIRONMENT = {"zenml_pipeline.py": "zenml"}
"""Examples of frameworks the test extra leaves out: run by their own environment's tests
(``tox -e zenml`` runs tests/zenml_flavors), here only where the framework is installed."""


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
@pytest.mark.parametrize("target", ["local", "memory"])
def test_example_runs(example: Path, target: str, tmp_path: Path) -> None:
    framework = OWN_ENVIRONMENT.get(example.name)
    if framework is not None:
        if not installed(framework):
            pytest.skip(f"{framework} is not in the test extra: tox -e {framework} runs it")
        if target == "memory":
            pytest.skip("a ZenML artifact store here is a local directory, not a memory:// store")
    uri = str(tmp_path / "store") if target == "local" else f"memory://example-{tmp_path.name}"
    proc = subprocess.run(
        [sys.executable, str(example), uri], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "Warning" not in proc.stderr, proc.stderr


def _run_bare(example: Path) -> subprocess.CompletedProcess[str]:
    """Run an example with no argument (its embedded default), warnings as errors."""
    framework = OWN_ENVIRONMENT.get(example.name)
    if framework is not None and not installed(framework):
        pytest.skip(f"{framework} is not in the test extra: tox -e {framework} runs it")
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(example)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    return proc


BARE = [p for p in EXAMPLES if p.name != "bulk_transfer.py"]  # that one is checked below

SAYS = {
    "async_pipeline.py": [
        "read 70 metrics files, at most 8 in flight",
        "the task group raised ExceptionGroup: ['evaluation crashed']",
        "checkpoint.bin exists after the failure: False",
    ],
    "sync_step.py": [
        "cards: 8",
        "exists after rmtree: False",
        "steps called inside a running event loop: score 1.1",
    ],
    "remote_stores.py": ["same: True", "run-1 exists after rmtree: False"],
    "pandas_fsspec.py": [
        "Parquet round trip equal: True",
        "CSV round trip equal: True",
        "dataset: 20 rows from 4 files",
        "CSV unchanged: True",
    ],
    "custom_backend.py": ["running artifactio.testing.ConformanceSuite on SQLiteStore"],
}
"""What an example's output must contain when run with no argument (an example that ran
but did the wrong thing fails here); the ZenML example is checked by its own test."""


@pytest.mark.parametrize("example", BARE, ids=[p.name for p in BARE])
def test_example_runs_with_no_arguments(example: Path) -> None:
    out = _run_bare(example).stdout
    for expected in SAYS.get(example.name, []):
        assert expected in out, f"{expected!r} not in the output:\n{out}"
    if example.name == "custom_backend.py":  # pytest's closing line
        assert re.search(r"^\d+ passed, \d+ skipped in ", out, re.MULTILINE), out


def test_bulk_transfer_example_runs_with_no_arguments() -> None:
    """With no argument it starts the embedded S3 server (or says why not) and stops it."""
    proc = _run_bare(ROOT / "examples" / "bulk_transfer.py")
    out = proc.stdout
    assert "byte-identical: True" in out
    assert "transferred 0 files" in out  # the second sync
    if SeaweedFS.available():
        started = re.search(r"started SeaweedFS \(pid (\d+)\)", out)
        assert started, out
        assert f"stopped SeaweedFS (pid {started[1]})" in out
    else:
        assert "SeaweedFS is not installed" in out
    assert "Warning" not in proc.stderr, proc.stderr


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    """The README's Python snippets, run in order against a temporary directory."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 2
    code = "\n".join(blocks).replace("/tmp/artifacts", str(tmp_path / "artifacts"))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "['model.bin', 'notes.txt']" in proc.stdout
    assert "trained 3 epochs" in proc.stdout
