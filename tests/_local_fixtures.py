"""Local-backend fixtures and helpers: a fresh root directory, a store on it, what lies on disk.

The test modules import the fixtures under their Python names (``local_root``,
``local_store``); tests ask for them as ``root`` and ``store``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from artifactio.backends.local import LocalStore

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["local_root", "local_store", "on_disk", "temp_files"]


def on_disk(root: Path) -> set[str]:
    """Every file and directory below ``root``, relative, temporary files included."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    return found


def temp_files(root: Path) -> set[str]:
    return {p for p in on_disk(root) if p.rpartition("/")[2].endswith(".tmp")}


@pytest.fixture(name="root")
def local_root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture(name="store")
def local_store(root: Path) -> LocalStore:
    return LocalStore(str(root))
