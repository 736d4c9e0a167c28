"""Whether a framework outside the test extra (ZenML has its own environment) is installed here."""

from __future__ import annotations

import importlib.util

__all__ = ["installed"]


def installed(package: str) -> bool:
    """Whether ``package`` is importable as itself.

    A directory of tests named like the package is a namespace package, not it.
    """
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None
