"""The blocking facade's file objects: real ``io`` classes over an async file.

``ArtifactStore.open`` returns what the builtin ``open`` would: an
``io.BufferedReader``, an ``io.BufferedWriter`` or an ``io.TextIOWrapper`` over
them, so pickle, numpy, pandas and anything else that checks ``isinstance`` or
calls ``readinto``/``readline``/``seek`` accept it. Underneath, a
:class:`RawBridge` (an ``io.RawIOBase``) forwards each raw call to the store's
async binary file through the facade's runner.

Writes keep the async store's all-or-nothing rule, which the plain ``io``
classes would break (their ``__exit__`` and finalizer both *close*, which would
publish half-written data):

* leaving a ``with`` block by an exception aborts the write (old content
  intact, nothing published);
* a writer garbage-collected without ``close()`` aborts too, with a
  ``ResourceWarning`` as for an unclosed builtin file;
* only an explicit ``close()`` (or a clean ``with`` exit) publishes.

Files open for writing are streamed: ``seek`` accepts only the current position
(as the async writer does) and ``seekable()`` is false.
"""

from __future__ import annotations

import codecs
import io
import os
import warnings
from typing import IO, TYPE_CHECKING, Any, cast

from .._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType

    from _typeshed import ReadableBuffer, WriteableBuffer

    from .._files import AsyncFile
    from ._runner import Runner

__all__ = ["FileReader", "FileWriter", "RawBridge", "TextFileReader", "TextFileWriter", "wrap"]

BUFFER_SIZE = 256 * 1024
"""Buffer of the ``io.Buffered*`` layer: how much one call to the async file moves."""


_NATIVE_BOMS = {"utf-16": codecs.BOM_UTF16, "utf-32": codecs.BOM_UTF32}


class _ProbeRaw(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        view = memoryview(b)
        self.data += view
        return len(view)


def _textio_skips_bom() -> bool:
    """Whether ``io.TextIOWrapper`` omits the UTF-16 BOM on an unseekable stream.

    CPython does (it takes "not seekable" for "not at the start"); the async text
    writer writes the BOM, so the facade adds it where CPython leaves it out.
    """
    raw = _ProbeRaw()
    text = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-16")
    text.write("a")
    text.close()
    return not raw.data.startswith(codecs.BOM_UTF16)


_ADD_BOM = _textio_skips_bom()


class RawBridge(io.RawIOBase):
    """An ``io.RawIOBase`` whose every call runs on the store's async binary file.

    Args:
        afile: The async file, opened in a binary mode.
        runner: Runs the async file's coroutines.
        owner: The facade; kept referenced so it outlives its open files.
        mode: The binary mode reported as ``mode`` (``"rb" "wb" "ab" "xb"``).
    """

    def __init__(self, afile: AsyncFile[bytes], runner: Runner, owner: object, mode: str) -> None:
        super().__init__()
        self._afile = afile
        self._runner = runner
        self._owner = owner
        self._discard = False
        self.name = afile.name
        self.mode = mode

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self._runner.run(coro)

    def readable(self) -> bool:
        return self._afile.readable()

    def writable(self) -> bool:
        return self._afile.writable()

    def seekable(self) -> bool:
        return self._afile.seekable()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.name!r}")

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        data: bytes = self._run(self._afile.read(len(view)))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        self._check_open()
        data: bytes = self._run(self._afile.read(-1))
        return data

    def write(self, b: ReadableBuffer) -> int:
        self._check_open()
        view = memoryview(b).cast("B")
        if self._discard:
            return len(view)
        # The async writer copies the data into its own buffer before returning.
        written: int = self._run(self._afile.write(cast("bytes", view)))
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        pos: int = self._run(self._afile.seek(offset, whence))
        return pos

    def tell(self) -> int:
        self._check_open()
        pos: int = self._run(self._afile.tell())
        return pos

    def close(self) -> None:
        """Close the file; for writers, publish what was written (all or nothing)."""
        if self.closed:
            return
        try:
            if not self._discard:
                self._run(self._afile.aclose())
        except StoreClosedError:
            self._drop()
            if self._afile.writable():
                raise
        finally:
            super().close()

    def abort(self) -> None:
        """Close without publishing anything written (readers: same as :meth:`close`)."""
        if self.closed:
            return
        self._discard = True
        try:
            self._run(self._afile.abort())
        except StoreClosedError:
            self._drop()
        finally:
            super().close()

    def finalize(self) -> None:
        """Release from a finalizer: writers abort, readers close; never raises."""
        try:
            if not self.closed:
                self._drop()
                super().close()
        except Exception:  # a finalizer has nobody to report to
            pass

    def _drop(self) -> None:
        """Abort (readers: close) without waiting on the runner, which may be closed.

        The abort runs where the runner still can run it; either way the async
        file is marked closed, and nothing written is published.
        """
        self._discard = True
        self._runner.run_cleanup(self._afile.abort())
        self._afile._forget()

    def __del__(self) -> None:
        self.finalize()


if TYPE_CHECKING:
    _IOBase = io.IOBase
else:
    _IOBase = object  # the mixins below go before a concrete io class


class _Layer(_IOBase):
    """Mixin for the file objects handed out: collected unclosed, they release the bridge.

    The ``io`` classes' own finalizer would *close*, and so publish a writer's content.
    """

    def _bridge(self) -> RawBridge:
        raise NotImplementedError

    def _release(self) -> bool:
        """Finalizer work: drop the bridge if still open; whether it was."""
        try:
            unclosed = not self.closed
        except Exception:  # half-initialised
            return False
        if unclosed:
            self._bridge().finalize()
        return unclosed

    def __del__(self) -> None:
        self._release()


class _Publishing(_Layer):
    """Mixin for writers: publish on a clean close only, all or nothing.

    An exception inside ``with``, :meth:`abort`, a failing last flush, or being
    garbage-collected unclosed (with a ``ResourceWarning``) discards the write.
    """

    def abort(self) -> None:
        """Close without publishing anything written."""
        self._bridge().abort()

    def close(self) -> None:
        """Publish what was written; if the last flush fails, publish nothing and raise."""
        if self.closed:
            return
        try:
            self.flush()
        except BaseException:
            # The io close would close the layers below anyway, and so publish
            # the content without the part that failed to flush.
            self.abort()
            raise
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if self._release():
            warnings.warn(
                f"unclosed file {self._bridge().name!r} opened for writing was garbage-collected: "
                "the write was aborted and nothing was published (close it, or use 'with')",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )


class FileReader(_Layer, io.BufferedReader):
    """``io.BufferedReader`` over a :class:`RawBridge`, as ``open(path, "rb")`` gives."""

    raw: RawBridge

    def _bridge(self) -> RawBridge:
        return self.raw


class FileWriter(_Publishing, io.BufferedWriter):
    """``io.BufferedWriter`` over a :class:`RawBridge`: publishes on close, all or nothing.

    An exception inside ``with``, :meth:`abort`, or being garbage-collected
    unclosed discards the write. ``seek`` accepts only the current position.
    """

    raw: RawBridge

    def _bridge(self) -> RawBridge:
        return self.raw

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Stay where the file is: writers stream, so only the current position is allowed.

        Raises:
            io.UnsupportedOperation: Any other position.
        """
        here = self.tell()
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise ValueError(f"seek: invalid whence {whence!r}")
        if (whence == os.SEEK_SET and offset == here) or (whence != os.SEEK_SET and offset == 0):
            return here
        raise io.UnsupportedOperation(
            f"seek: files open for writing are streamed and cannot seek ({self.name!r})"
        )


class _TextFile(_Layer, io.TextIOWrapper):
    """``io.TextIOWrapper`` over a :class:`FileReader` or :class:`FileWriter`."""

    buffer: FileReader | FileWriter

    def __init__(
        self,
        buffer: FileReader | FileWriter,
        mode: str,
        encoding: str,
        errors: str,
        newline: str | None,
    ) -> None:
        super().__init__(buffer, encoding=encoding, errors=errors, newline=newline)
        self._mode = mode

    @property
    def mode(self) -> str:
        """The mode the file was opened with."""
        return self._mode

    def _bridge(self) -> RawBridge:
        return self.buffer.raw


class TextFileReader(_TextFile):
    """``io.TextIOWrapper`` over a :class:`FileReader`, as ``open(path, "r")`` gives."""

    buffer: FileReader


class TextFileWriter(_Publishing, _TextFile):
    """``io.TextIOWrapper`` over a :class:`FileWriter`: publishes on close, all or nothing.

    ``tell()`` gives the number of bytes written so far; ``seek`` accepts only
    that position.
    """

    buffer: FileWriter

    def __init__(
        self,
        buffer: FileWriter,
        mode: str,
        encoding: str,
        errors: str,
        newline: str | None,
    ) -> None:
        super().__init__(buffer, mode, encoding, errors, newline)
        bom = _NATIVE_BOMS.get(codecs.lookup(encoding).name)
        if _ADD_BOM and bom is not None and buffer.tell() == 0:
            buffer.write(bom)  # what io.TextIOWrapper writes at the start of a seekable file

    def tell(self) -> int:
        """The number of bytes written so far."""
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.name!r}")
        self.flush()
        return self.buffer.tell()

    def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        """Stay where the file is: writers stream, so only the current position is allowed.

        Raises:
            io.UnsupportedOperation: Any other position.
        """
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.name!r}")
        self.flush()
        return self.buffer.seek(cookie, whence)


def wrap(
    afile: AsyncFile[bytes],
    runner: Runner,
    owner: object,
    mode: str,
    kind: str,
    binary: bool,
    encoding: str,
    errors: str,
    newline: str | None,
) -> IO[Any]:
    """Build the ``io`` stack over an async binary file opened with ``kind + "b"``.

    Args:
        afile: The async binary file.
        runner: Runs its coroutines.
        owner: The facade, kept alive while the file is open.
        mode: The mode the user asked for (reported by text files).
        kind: ``"r" "w" "a" "x"``.
        binary: Whether ``mode`` is a binary mode.
        encoding: Text encoding (text modes).
        errors: Text error handler (text modes).
        newline: Newline handling, as for the builtin ``open`` (text modes).

    Returns:
        A ``FileReader``/``FileWriter`` (binary) or ``TextFileReader``/``TextFileWriter``.
    """
    raw = RawBridge(afile, runner, owner, kind + "b")
    try:
        if kind == "r":
            reader = FileReader(raw, BUFFER_SIZE)
            if binary:
                return reader
            return TextFileReader(reader, mode, encoding, errors, newline)
        writer = FileWriter(raw, BUFFER_SIZE)
        if binary:
            return writer
        return TextFileWriter(writer, mode, encoding, errors, newline)
    except BaseException:
        raw.finalize()
        raise
