"""Process plumbing shared by the test-server launchers (SeaweedFS, fake-gcs-server).

A :class:`ServerProcess` runs one server binary on 127.0.0.1 with its output in
a log file, waits until it answers (an error ends with the tail of that log),
creates buckets, and stops it by its own process id: SIGTERM, a bounded wait,
then SIGKILL. Servers a caller forgot to stop are stopped when Python exits.
A subclass says only what is its own: how to find the binary, how to launch it
(choosing its ports, then calling :meth:`ServerProcess._spawn`), when it
answers, and how to create a bucket.
"""

from __future__ import annotations

import abc
import atexit
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["HOST", "ServerProcess", "find_executable", "free_port", "port_free"]

HOST = "127.0.0.1"
_START_ATTEMPTS = 3  # a port chosen free may be taken before the server binds it
_TAIL_BYTES = 256 * 1024  # log_tail() reads no more than this from the end of the log


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (the system's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def find_executable(variable: str, candidates: Iterable[Path], missing: str) -> Path:
    """The executable ``$variable`` names, else the first candidate.

    Args:
        variable: The environment variable that may name it (``SEAWEEDFS_BIN``...).
        candidates: Where to look otherwise, in order (looked at lazily).
        missing: What to say when nothing is found (``$variable`` is added).

    Returns:
        The executable's path.

    Raises:
        FileNotFoundError: ``$variable`` names something that is not a file, or
            it is unset and there is no candidate.
    """
    explicit = os.environ.get(variable)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"${variable} names {explicit!r}, which is not a file")
        return path
    found = next(iter(candidates), None)
    if found is None:
        raise FileNotFoundError(f"{missing} or set ${variable}")
    return found


_RUNNING: set[ServerProcess] = set()
"""Servers started and not stopped yet; held strongly so the exit hook always stops them."""


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - only when a caller forgot stop()
    for server in list(_RUNNING):
        server.stop()


class _Exited(RuntimeError):
    """The server exited while starting; ``log`` is the tail of its output."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


class ServerProcess(abc.ABC):
    """A server binary run on 127.0.0.1, stopped by its own process id.

    Args:
        buckets: Buckets to create once the server answers.
        binary: The executable; found with :meth:`_find_binary` when omitted.
        startup_timeout: Seconds to wait for the server to answer (all attempts).

    Attributes:
        startup_seconds: How long the last :meth:`start` took until the server
            answered and the buckets existed.
    """

    _name: ClassVar[str]  # the server's name in error messages

    def __init__(
        self,
        *,
        buckets: Iterable[str],
        binary: str | os.PathLike[str] | None,
        startup_timeout: float,
    ) -> None:
        self._buckets = list(buckets)
        self._binary = Path(binary) if binary is not None else None
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.startup_seconds = 0.0

    # ------------------------------------------------------- for subclasses

    @staticmethod
    @abc.abstractmethod
    def _find_binary() -> Path:
        """Locate the executable (raises FileNotFoundError)."""

    @abc.abstractmethod
    def _launch(self, binary: Path) -> None:
        """Choose ports, prepare files, and call :meth:`_spawn`."""

    @abc.abstractmethod
    def _answers(self) -> bool:
        """Whether the server answers requests yet (one quick try)."""

    @abc.abstractmethod
    def create_bucket(self, name: str) -> None:
        """Create a bucket (an existing one is fine)."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>``."""

    def _retry_after_exit(self, log: str) -> bool:
        """Whether to launch again after the server exited while starting.

        Args:
            log: The tail of its output.
        """
        return False

    def _spawn(
        self,
        args: Sequence[str],
        *,
        log: Path | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Run ``args`` with stdin closed and its output in ``log`` (an unnamed file if None)."""
        if log is None:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        else:
            self._log = open(log, "w+b")  # noqa: SIM115 - closed by stop(); read by log_tail()
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
        )
        _RUNNING.add(self)

    # ------------------------------------------------------------ public API

    @classmethod
    def available(cls) -> bool:
        """Whether the executable can be found."""
        try:
            cls._find_binary()
        except FileNotFoundError:
            return False
        return True

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Start the server, wait until it answers, and create the buckets.

        A server that exits while starting (a port taken meanwhile) may be
        launched again on other ports; anything that fails stops it.

        Returns:
            The server itself.

        Raises:
            FileNotFoundError: No executable was found.
            RuntimeError: The server exited or did not answer in time (the
                message ends with the tail of its log).
        """
        if self._process is not None:
            return self
        binary = self._binary or self._find_binary()
        started = time.perf_counter()
        try:
            for attempt in range(_START_ATTEMPTS):
                self._launch(binary)
                try:
                    self._wait_ready(started + self._startup_timeout)
                    break
                except _Exited as exc:
                    if attempt == _START_ATTEMPTS - 1 or not self._retry_after_exit(exc.log):
                        raise
                    self.stop()
            for bucket in self._buckets:
                self.create_bucket(bucket)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    def _wait_ready(self, deadline: float) -> None:
        delay = 0.02
        while True:
            process = self._process
            assert process is not None
            code = process.poll()
            if code is not None:
                log = self.log_tail()
                raise _Exited(
                    f"{self._name} exited with status {code} while starting on {self.url}:\n{log}",
                    log,
                )
            if self._answers():
                return
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self._name} did not answer on {self.url} within "
                    f"{self._startup_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output (empty once stopped)."""
        if self._log is None:
            return ""
        fd = self._log.fileno()
        try:  # pread leaves the offset the server writes at alone
            size = os.fstat(fd).st_size
            data = os.pread(fd, min(size, _TAIL_BYTES), max(0, size - _TAIL_BYTES))
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server by its process id. Idempotent.

        Args:
            timeout: Seconds to wait after SIGTERM before SIGKILL.
        """
        process, self._process = self._process, None
        _RUNNING.discard(self)
        try:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)
        finally:
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
        state = f"pid={self.pid} {self.url}" if self._process is not None else "stopped"
        return f"<{type(self).__name__} {state}>"
