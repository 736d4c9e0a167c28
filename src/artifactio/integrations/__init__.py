"""Where artifactio's users already are: each module connects it to one framework.

- :mod:`artifactio.integrations.fsspec`: an fsspec filesystem (protocol
  ``artifactio``) for pandas, pyarrow and anything else that speaks fsspec.
- :mod:`artifactio.integrations.zenml`: ZenML artifact-store flavors backed by
  the sync facade (extra ``zenml``).
- :mod:`artifactio.integrations.dask`: bulk transfers on a Dask cluster (extra
  ``dask``).

Each module imports its framework when it is imported, never before: importing
``artifactio`` costs none of them.
"""

__all__: list[str] = []
