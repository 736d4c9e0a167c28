"""examples/zenml_pipeline.py runs as documented: no arguments, a ZenML setup of its own.

The main suite's tests/test_examples.py cannot run it (ZenML is not in the test extra).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zenml_pipeline.py"


def test_the_zenml_example_runs_with_no_arguments(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
    env["TMPDIR"] = str(tmp_path)  # its ZenML config and artifact directories go there
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"^run: training-\S+ completed$", out, re.MULTILINE), out
    assert "card: ModelCard(name='tiny', layers=[8])" in out
    assert "metrics: {'loss': 0.25, 'accuracy': 0.9}" in out
    assert "evaluate: tiny: 8 weights, accuracy 0.90" in out
    stored = re.findall(r"^stored (\w+): (\S+)$", out, re.MULTILINE)
    assert [name for name, _ in stored] == ["card", "metrics", "weights"]
    # The artifact directory is a fresh one below TMPDIR; the files are there.
    (artifact_dir,) = tmp_path.glob("artifactio-example-artifacts-*")
    assert not list(tmp_path.glob("artifactio-example-zenml-config-*"))  # removed at exit
    for _, relative in stored:
        assert (artifact_dir / relative).stat().st_size > 0
    assert "Warning" not in proc.stderr, proc.stderr
