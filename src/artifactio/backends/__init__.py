"""The built-in backends. Each is imported lazily by :func:`artifactio.open_store`."""

__all__: list[str] = []
