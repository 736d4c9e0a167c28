"""The hand-written half of :class:`~artifactio.ArtifactStore`.

The generated ``_store.py`` holds one method per public method of
:class:`~artifactio.AsyncArtifactStore`; each forwards to the async store
through the helpers here: :meth:`FacadeBase._run` (a coroutine),
:meth:`FacadeBase._iterate` (an async iterator), :meth:`FacadeBase._open` (a
file) and :meth:`FacadeBase._close`.
"""

from __future__ import annotations

import weakref
from typing import IO, TYPE_CHECKING, Any, TypeVar

from .._exceptions import StoreClosedError
from .._files import resolve_open_args
from .._registry import open_store
from .._store import AsyncArtifactStore
from ._files import wrap
from ._runner import Runner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Generator

    from .._paths import PathType

__all__ = ["FacadeBase"]

T = TypeVar("T")


class FacadeBase:
    """Construction, the runner, files, iteration and closing for the blocking facade.

    Args:
        uri_or_store: A URI or local path (opened with
            :func:`artifactio.open_store`), or an existing
            :class:`~artifactio.AsyncArtifactStore` to wrap.
        **options: The backend's options, when opening by URI.

    Raises:
        TypeError: Options were given together with an async store.
    """

    def __init__(self, uri_or_store: AsyncArtifactStore | PathType, /, **options: Any) -> None:
        if isinstance(uri_or_store, AsyncArtifactStore):
            if options:
                raise TypeError(
                    "ArtifactStore(async_store) takes no options; they apply when opening by URI"
                )
            store = uri_or_store
            self._uri: PathType | None = None
        else:
            store = open_store(uri_or_store, **options)
            self._uri = uri_or_store
        self._options = options
        self._async = store
        self._runner = Runner(type(store).inline_capable, store.aclose, store.root)
        # A facade dropped without close(): stop its loop thread (and close the
        # store it opened itself). Files and iterators keep the facade alive.
        self._finalizer = weakref.finalize(
            self, self._runner.release, close_store=self._uri is not None
        )
        self._finalizer.atexit = False

    @property
    def async_store(self) -> AsyncArtifactStore:
        """The :class:`~artifactio.AsyncArtifactStore` this facade drives."""
        return self._async

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.call(coro)

    def _iterate(self, agen: AsyncIterator[T]) -> Generator[T, None, None]:
        """Step ``agen`` one item per ``next()``; close it when abandoned early."""
        finished = False
        try:
            while True:
                try:
                    step = self._runner.run(_anext(agen))
                except StoreClosedError:
                    raise  # agen may never have run: still close it (inline stores can)
                except BaseException:
                    finished = True  # it came out of agen, which is finished now
                    raise
                if not step:
                    finished = True
                    return
                yield step[0]
        finally:
            aclose = getattr(agen, "aclose", None)
            if not finished and aclose is not None:
                self._runner.run_cleanup(aclose())

    def _open(
        self,
        path: PathType | None = None,
        mode: str = "r",
        *,
        name: PathType | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]:
        kind, binary, text_encoding, text_errors = resolve_open_args(
            mode, encoding, errors, newline
        )
        afile = self._runner.run(_opened(self._async, path, kind + "b", name))
        return wrap(
            afile, self._runner, self, mode, kind, binary, text_encoding, text_errors, newline
        )

    def _close(self) -> None:
        self._finalizer.detach()
        self._runner.close()

    def __repr__(self) -> str:
        state = " closed" if self._runner.closed else ""
        return f"{type(self).__name__}({self._async.root!r}){state}"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._uri is not None:
            return (_reopen, (type(self), self._uri, self._options))
        return (type(self), (self._async,))


async def _anext(agen: AsyncIterator[T]) -> list[T]:
    """The next item of ``agen`` in a one-item list; an empty list at the end."""
    try:
        return [await agen.__anext__()]
    except StopAsyncIteration:
        return []


async def _opened(
    store: AsyncArtifactStore, path: PathType | None, mode: str, name: PathType | None
) -> Any:
    return await store.open(path, mode, name=name)


def _reopen(cls: type[FacadeBase], uri: PathType, options: dict[str, Any]) -> FacadeBase:
    """Unpickle a facade that was opened by URI: open the same URI again."""
    return cls(uri, **options)
