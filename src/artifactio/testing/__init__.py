"""The artifactio conformance suite: the behaviour rows of ``docs/semantics.md``, for any backend.

A backend joins by subclassing :class:`ConformanceSuite` and providing one
fixture, ``async_store_factory``, that returns a :class:`StoreFactory` whose
stores share a fresh, empty root for the test::

    import uuid

    import pytest

    from artifactio.backends.memory import MemoryStore, clear
    from artifactio.testing import Capabilities, ConformanceSuite, StoreFactory


    class TestMemory(ConformanceSuite):
        @pytest.fixture
        def async_store_factory(self):
            name = f"test-{uuid.uuid4().hex}"
            yield StoreFactory(lambda: MemoryStore(f"memory://{name}"))
            clear(name)

Every test runs twice: through the async API (``AsyncArtifactStore``) and
through the blocking facade (``artifactio.ArtifactStore``, driven from worker
threads by :class:`SyncAsAsync`). Where the behaviour document lets backends
differ, the :class:`Capabilities` given to the factory decide which rows apply.

Each test names the rows it checks with :func:`covers` (read them back with
:func:`covered_rows`); the repository's ``tests/test_semantics_doc.py`` checks
that every row of ``docs/semantics.md`` has a test and every named row exists.
A few tests inject a failure by replacing one primitive of the store under test
(the ``backend`` fixture) on the instance, as a failing service would fail.

Where each part of the document is checked:

- "Paths" (forms, normalising, bounds, invalid paths, other schemes, paths
  below a file): :class:`PathRulesTests`; every operation is called with each
  bad path (:func:`every_operation`) and must raise without changing the tree.
- ``open``, file objects, "writes" (all or nothing, implicit parents),
  ``read_bytes``/``write_bytes``: :class:`FileTests`.
- "Interface" and "Operations" (``exists`` ... ``size``): :class:`OperationTests`;
  ``copyfile``, "Rename" and the error order: :class:`CopyRenameTests`;
  "Listing" (``glob``, checked against ``glob.glob`` too, and ``walk``):
  :class:`ListingTests`.
- "Object stores" (a file and a directory of one name): :class:`ObjectStoreTests`;
  markers and special keys are in :class:`OperationTests`, for every backend.
- "Concurrency": :class:`ConcurrencyTests` (tasks, or threads through the facade)
  and :class:`FacadeThreadingTests` (threads, a running loop, ``fork``).

The tests are async and use pytest-asyncio (``asyncio_mode = "auto"`` or
``"strict"``). For readable assertion messages call
``pytest.register_assert_rewrite("artifactio.testing")`` in your ``conftest.py``
before importing this package.
"""

from __future__ import annotations

import pytest

from ._covers import covered_rows, covers
from ._harness import (
    Capabilities,
    ConformanceFixtures,
    StoreAPI,
    StoreFactory,
    SyncAsAsync,
    Tree,
    full_path,
    make_tree,
    rejects,
    snapshot,
)
from ._stores import SuspendingMemoryStore
from ._suite_concurrency import ConcurrencyTests, FacadeThreadingTests, ObjectStoreTests
from ._suite_copy_rename import CopyRenameTests
from ._suite_files import FileTests
from ._suite_listing import ListingTests
from ._suite_ops import OperationTests
from ._suite_paths import PathRulesTests, every_operation

__all__ = [
    "Capabilities",
    "ConcurrencyTests",
    "ConformanceFixtures",
    "ConformanceSuite",
    "CopyRenameTests",
    "FacadeThreadingTests",
    "FileTests",
    "ListingTests",
    "ObjectStoreTests",
    "OperationTests",
    "PathRulesTests",
    "StoreAPI",
    "StoreFactory",
    "SuspendingMemoryStore",
    "SyncAsAsync",
    "Tree",
    "covered_rows",
    "covers",
    "every_operation",
    "full_path",
    "make_tree",
    "rejects",
    "snapshot",
]


class ConformanceSuite(
    ConformanceFixtures,
    PathRulesTests,
    FileTests,
    OperationTests,
    CopyRenameTests,
    ListingTests,
    ObjectStoreTests,
    ConcurrencyTests,
    FacadeThreadingTests,
):
    """All conformance tests. Subclass it and provide the ``async_store_factory`` fixture."""

    pytestmark = pytest.mark.asyncio
