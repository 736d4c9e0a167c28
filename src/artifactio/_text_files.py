"""Text files: an incremental decoder or encoder over the binary async files.

``open(path, "r")`` wraps an :class:`~artifactio._files.AsyncReadFile` in an
:class:`AsyncTextReadFile` (universal newlines unless ``newline=`` says
otherwise, byte offsets as ``tell()`` cookies); ``"w"``/``"a"``/``"x"`` wrap an
:class:`~artifactio._files.AsyncWriteFile` in an :class:`AsyncTextWriteFile`.
"""

from __future__ import annotations

import codecs
import io
import os
from typing import TYPE_CHECKING, Any

from ._files import AsyncFile

if TYPE_CHECKING:
    from ._files import AsyncReadFile, AsyncWriteFile

__all__ = ["AsyncTextReadFile", "AsyncTextWriteFile"]


class AsyncTextReadFile(AsyncFile[str]):
    """A text reader decoding a binary reader incrementally (universal newlines by default).

    ``tell()`` and ``seek()`` take byte offsets, as opaque cookies: ``seek(0)`` and
    ``seek(0, SEEK_END)`` always work, and a value from ``tell()`` can be passed back
    (``tell()`` is the byte offset of the next character; only where a lenient
    ``errors`` handler made several characters of one invalid byte and reading
    stopped among them is there no such offset, and the position before them is
    given).
    """

    def __init__(
        self, binary: AsyncReadFile, encoding: str, errors: str, newline: str | None
    ) -> None:
        super().__init__(binary.name, binary.mode)
        self._bin = binary
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self._reset_decoder(binary._pos)

    def _new_decoder(self) -> Any:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self.newline in (None, ""):
            return io.IncrementalNewlineDecoder(decoder, translate=self.newline is None)
        return decoder

    def _reset_decoder(self, anchor: int) -> None:
        """Start decoding afresh at byte offset ``anchor`` (after a seek)."""
        self._decoder: Any = self._new_decoder()
        self._pending = ""
        self._eof = False
        # tell() bookkeeping: ``_anchor`` is a byte offset where decoding can start
        # afresh (decoder state ``_anchor_state``), ``_fed`` the bytes decoded since,
        # ``_used`` how many characters of their text were handed out.
        self._anchor = anchor
        self._anchor_state: tuple[bytes, int] = self._decoder.getstate()
        self._fed = bytearray()
        self._used = 0

    def _clean_state(self) -> tuple[bytes, int] | None:
        """The decoder's state if it holds nothing back (no partial character, no ``\r``)."""
        buf, flags = self._decoder.getstate()
        held = flags & 1 if isinstance(self._decoder, io.IncrementalNewlineDecoder) else 0
        return None if buf or held else (buf, flags)

    def _take(self, n: int) -> str:
        """Hand out the first ``n`` decoded characters."""
        out, self._pending = self._pending[:n], self._pending[n:]
        self._used += len(out)
        if not self._pending:
            state = self._clean_state()
            if state is not None:  # everything decoded was handed out: a fresh anchor
                self._anchor += len(self._fed)
                self._anchor_state = state
                self._fed.clear()
                self._used = 0
        return out

    def _advance_anchor(self) -> None:
        """Move the anchor to the first character not handed out yet.

        Decodes the bytes since the anchor again, from the anchor's state, until
        ``_used`` characters came out, and stops where the decoder holds nothing
        back, so decoding afresh from there gives the same text.
        """
        need = self._used
        if need == 0:
            return
        decoder = self._new_decoder()
        decoder.setstate(self._anchor_state)
        newline_decoder = isinstance(decoder, io.IncrementalNewlineDecoder)
        data = bytes(self._fed)
        pos = produced = held = 0
        best: tuple[int, tuple[bytes, int], int] = (0, self._anchor_state, 0)
        one_byte = False  # after a step gave more characters than bytes (backslashreplace)
        while pos < len(data):
            # Most decoders give at most one character per byte, so this many bytes
            # never reach past the character being looked for.
            step = 1 if one_byte else max(need - produced - held, 1)
            out = decoder.decode(data[pos : pos + step])
            if step > 1 and produced + len(out) > need:
                pos, state, produced = best
                decoder.setstate(state)
                held, one_byte = 0, True
                continue
            produced += len(out)
            pos = min(pos + step, len(data))
            buf, flags = decoder.getstate()
            held = flags & 1 if newline_decoder else 0
            if buf:
                continue
            if produced + held > need:
                break  # a held "\r" came out as a character of its own: best stands
            if not held:
                best = (pos, (buf, flags), produced)
                if produced == need:
                    break
            elif produced + 1 == need:
                # The "\r" was handed out, unless it pairs with a "\n" still to come
                # (translated to one "\n"): the next steps tell.
                best = (pos, (buf, flags & ~1), need)
        else:
            if self._eof and best[2] < need:  # handed out by the end of file's flush
                best = (len(data), (b"", 0), need)
        pos, state, produced = best
        self._anchor += pos
        self._anchor_state = state
        del self._fed[:pos]
        self._used = need - produced  # 0 unless no byte offset lies exactly there

    def readable(self) -> bool:
        return True

    async def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = await self._bin.read(self._bin._raw.block_size)
        final = not chunk
        self._fed += chunk
        self._pending += self._decoder.decode(chunk, final=final)
        if final:
            self._eof = True
        elif self._used and len(self._fed) > 2 * self._bin._raw.block_size:
            self._advance_anchor()  # keeps the bytes remembered for tell() bounded
        return True

    async def read(self, size: int = -1) -> str:
        self._check_open()
        if size is None or size < 0:
            parts = [self._take(len(self._pending))]
            while await self._fill():
                parts.append(self._take(len(self._pending)))
            return "".join(parts)
        while len(self._pending) < size and await self._fill():
            pass
        return self._take(size)

    def _line_end(self) -> int:
        sep = "\n" if self.newline in (None, "", "\n") else self.newline
        if self.newline == "":
            idxs = [i for i in (self._pending.find("\r\n"), self._pending.find("\n")) if i >= 0]
            cr = self._pending.find("\r")
            lone_cr = cr >= 0 and not self._pending.startswith("\r\n", cr)
            if lone_cr and (cr + 1 < len(self._pending) or self._eof):
                idxs.append(cr)
            if not idxs:
                return -1
            i = min(idxs)
            return i + (2 if self._pending.startswith("\r\n", i) else 1)
        i = self._pending.find(sep)
        return -1 if i < 0 else i + len(sep)

    async def readline(self, size: int = -1) -> str:
        self._check_open()
        while True:
            end = self._line_end()
            if end >= 0 or (size is not None and 0 <= size <= len(self._pending)):
                break
            if not await self._fill():
                end = len(self._pending)
                break
        if size is not None and size >= 0:
            end = min(end if end >= 0 else len(self._pending), size)
        return self._take(end)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        if whence == os.SEEK_CUR and offset != 0:
            raise io.UnsupportedOperation("seek: can't do nonzero cur-relative seeks in text mode")
        if whence == os.SEEK_END and offset != 0:
            raise io.UnsupportedOperation("seek: can't do nonzero end-relative seeks in text mode")
        if whence == os.SEEK_CUR:
            return await self.tell()
        pos = await self._bin.seek(offset, whence)
        self._reset_decoder(pos)
        return pos

    async def tell(self) -> int:
        self._check_open()
        self._advance_anchor()
        return self._anchor

    async def aclose(self) -> None:
        self._closed = True
        await self._bin.aclose()


class AsyncTextWriteFile(AsyncFile[str]):
    """A text writer encoding into a binary writer; ``"\\n"`` is written as ``newline`` if set."""

    def __init__(
        self, binary: AsyncWriteFile, encoding: str, errors: str, newline: str | None
    ) -> None:
        super().__init__(binary.name, binary.mode)
        self._bin = binary
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self._encoder = codecs.getincrementalencoder(encoding)(errors)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    async def write(self, data: str) -> int:
        self._check_open()
        if not isinstance(data, str):
            raise TypeError(f"write: {self.name!r} is open in text mode; write str, not bytes")
        text = data.replace("\n", self.newline) if self.newline not in (None, "", "\n") else data
        await self._bin.write(self._encoder.encode(text))
        return len(data)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await self._bin.seek(offset, whence)

    async def tell(self) -> int:
        return await self._bin.tell()

    async def aclose(self) -> None:
        if self._closed:
            return
        tail = self._encoder.encode("", final=True)
        if tail:
            await self._bin.write(tail)
        await self._bin.aclose()
        self._closed = True

    async def abort(self) -> None:
        self._closed = True
        await self._bin.abort()
