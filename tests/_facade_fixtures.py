"""The ``store`` fixture of the sync-facade test modules: one facade per way of driving it.

``inline``: the memory backend, driven inline in the caller's thread; ``loop``:
:class:`~artifactio.testing.SuspendingMemoryStore`, whose primitives really suspend,
so the facade runs it on its loop thread. Modules import it as ``facade_store``.

:class:`StuckStore` is a loop-only store whose lookups of ``*stuck`` never finish.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import anyio
import pytest

from artifactio import ArtifactStore
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from artifactio._store import EntryInfo

__all__ = ["StuckStore", "facade_store"]


@pytest.fixture(name="store", params=["inline", "loop"])
def facade_store(request: pytest.FixtureRequest, memory_root: str) -> Iterator[ArtifactStore]:
    if request.param == "inline":
        facade = ArtifactStore(memory_root)
    else:
        facade = ArtifactStore(SuspendingMemoryStore(memory_root))
    assert facade._runner.inline is (request.param == "inline")
    with facade:
        yield facade


class StuckStore(SuspendingMemoryStore):
    """``_info`` of a path ending in "stuck" waits until it is cancelled."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def _info(self, key: str) -> EntryInfo | None:
        if key.endswith("stuck"):
            self.started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
        return await super()._info(key)
