"""The README's demo command runs cleanly: local store, then embedded S3 and GCS servers."""

from __future__ import annotations

import subprocess
import sys

from artifactio.embedded import FakeGCSServer, SeaweedFS


def _run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env_args = [sys.executable, "-X", "dev", "-W", "error", "-m", "artifactio.demo", *args]
    return subprocess.run(env_args, capture_output=True, text=True, timeout=300)


def test_demo_on_every_embedded_store() -> None:
    proc = _run_demo()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    sections = [line for line in out.splitlines() if line.startswith("== ")]
    expected = 1 + SeaweedFS.available() + FakeGCSServer.available()
    assert len(sections) == expected, out
    if SeaweedFS.available():
        assert "== s3://demo/artifacts" in out
    if FakeGCSServer.available():
        assert "== gs://demo/artifacts" in out
    # The same work gave the same answers on every store.
    for marker in (
        "SEEK_END on model.bin              ok",
        "files under the run (walk)         202",
        "crash mid-write kept old content   True",
        "after rmtree, root holds           []",
    ):
        assert out.count(marker) == expected, (marker, out)
    assert "PathOutsideStoreError" in out
    assert "Warning" not in proc.stderr, proc.stderr
    assert out.rstrip().endswith("demo finished")
