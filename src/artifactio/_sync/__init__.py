"""The blocking facade: ``ArtifactStore`` (generated) and the runner that drives it."""

from ._store import ArtifactStore

__all__ = ["ArtifactStore"]
