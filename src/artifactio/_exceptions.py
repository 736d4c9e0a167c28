"""The errors artifactio raises.

Every backend raises the builtin exception a Python programmer already catches
(``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError``, ...), with the
operation and the path in the message. The few conditions that have no builtin
class get one here, always with a builtin base so ``except OSError`` still works::

    Exception
    ├── ValueError
    │   ├── InvalidPathError ............ empty path, NUL byte, undecodable bytes
    │   └── UnsupportedSchemeError ...... a URI scheme no backend handles
    ├── ImportError
    │   └── MissingDependencyError ...... a backend's extra is not installed
    ├── RuntimeError
    │   └── StoreClosedError ............ the store was closed
    └── OSError
        ├── PermissionError
        │   └── PathOutsideStoreError ... the path is not the root or below it
        ├── ConnectionError
        │   └── StoreConnectionError .... the endpoint cannot be reached
        └── IntegrityError .............. a checksum did not match

Backends translate their client library's errors only at their boundary, with
:func:`os_error` and the small helpers below, always ``raise ... from exc``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import TypeVar

E = TypeVar("E", bound=BaseException)

__all__ = [
    "ArtifactioError",
    "IntegrityError",
    "InvalidPathError",
    "MissingDependencyError",
    "PathOutsideStoreError",
    "StoreClosedError",
    "StoreConnectionError",
    "UnsupportedSchemeError",
    "directory_not_empty",
    "invalid_argument",
    "mark_retried",
    "os_error",
    "renamed",
    "was_retried",
]

_RETRIED = "_artifactio_retried"


class ArtifactioError(Exception):
    """Marker base of every exception class defined by artifactio."""


class InvalidPathError(ArtifactioError, ValueError):
    """The path is empty, holds a NUL byte, or is bytes that cannot be decoded."""


class UnsupportedSchemeError(ArtifactioError, ValueError):
    """No backend is registered for the URI's scheme."""


class MissingDependencyError(ArtifactioError, ImportError):
    """A backend needs an optional dependency (an extra) that is not installed."""


class StoreClosedError(ArtifactioError, RuntimeError):
    """The store (or the sync facade) was closed and cannot be used again."""


class PathOutsideStoreError(ArtifactioError, PermissionError):
    """The path lies outside the store's root (after normalising and resolving links)."""

    def __init__(self, path: str, root: str, op: str = "", detail: str = "") -> None:
        where = f"{op}: " if op else ""
        text = detail or f"path is outside the store root {root!r}"
        super().__init__(errno.EACCES, f"{where}{text}", path)


class StoreConnectionError(ArtifactioError, ConnectionError):
    """The backend's endpoint could not be reached (refused, timed out, reset)."""


class IntegrityError(ArtifactioError, OSError):
    """Data read or written did not match its checksum."""


_MESSAGES = {
    FileNotFoundError: (errno.ENOENT, "no such file or directory"),
    FileExistsError: (errno.EEXIST, "file exists"),
    IsADirectoryError: (errno.EISDIR, "is a directory"),
    NotADirectoryError: (errno.ENOTDIR, "not a directory"),
    PermissionError: (errno.EACCES, "permission denied"),
}


def mark_retried(exc: E) -> E:
    """Note on ``exc`` that it was retried already, so that no outer layer retries it again.

    A store whose requests are retried (S3, GCS: their ``retries`` option) marks
    what it raises after its retries; so does a transfer's retry of one part of
    a large file. Retries then never multiply across layers. Returns ``exc``.
    """
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _RETRIED, True)
    return exc


def was_retried(exc: BaseException) -> bool:
    """Whether :func:`mark_retried` marked ``exc``."""
    return bool(getattr(exc, _RETRIED, False))


def os_error(
    cls: type[OSError], op: str, path: str, detail: str = "", *, code: int | None = None
) -> OSError:
    """Build an ``OSError`` subclass whose message names the operation and the path.

    Args:
        cls: The exception class, e.g. ``FileNotFoundError``.
        op: The operation, e.g. ``"remove"``.
        path: The full path the operation was given.
        detail: Replaces the default description when given.
        code: The errno; derived from ``cls`` when omitted.

    Returns:
        The exception, ready to be raised. ``exc.filename`` is the path.
    """
    default_code, default_text = _MESSAGES.get(cls, (errno.EIO, "input/output error"))
    text = detail or default_text
    return cls(default_code if code is None else code, f"{op}: {text}", path)


def directory_not_empty(op: str, path: str) -> OSError:
    """``OSError(ENOTEMPTY)`` for renaming a directory onto a non-empty one."""
    return OSError(errno.ENOTEMPTY, f"{op}: {os.strerror(errno.ENOTEMPTY).lower()}", path)


def invalid_argument(op: str, path: str, detail: str) -> OSError:
    """``OSError(EINVAL)``, e.g. for moving a directory into itself."""
    return OSError(errno.EINVAL, f"{op}: {detail}", path)


_STEP = re.compile(r"[a-z_]+: ")


def _takes_os_error_arguments(cls: type[OSError]) -> bool:
    """Whether ``cls(errno, strerror, filename)`` builds it (no ``__init__`` of its own)."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return klass.__module__ == "builtins"
    return True


def renamed(exc: OSError, op: str, path: str) -> OSError:
    """``exc`` as the error of operation ``op`` on ``path``: same class, errno and detail.

    A backend's request names its own step and object (``list: ... 'dir/'``); the
    user called ``open`` on ``dir``. The step's name is dropped from the message.

    Returns:
        A new exception; ``exc`` itself when it already names ``op`` and ``path``,
        has no ``errno``/``strerror`` to carry over, or its class takes other arguments.
    """
    if exc.strerror is None or exc.errno is None or not _takes_os_error_arguments(type(exc)):
        return exc
    detail = exc.strerror
    step = _STEP.match(detail)
    if step is not None:
        detail = detail[step.end() :]
    text = f"{op}: {detail}"
    if text == exc.strerror and exc.filename == path:
        return exc
    new = type(exc)(exc.errno, text, path)
    return mark_retried(new) if was_retried(exc) else new
