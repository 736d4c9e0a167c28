"""The ``artifactio`` command line (also ``python -m artifactio``).

``artifactio cp|sync|ls|rm|du|cat|stat ...`` over local disks, S3 and GCS;
``artifactio --help`` and ``artifactio COMMAND --help`` say more.

- ``_parser`` — the grammar: subcommands, options, sizes such as ``64MiB``;
- ``_stores`` — opening the stores named on the command line, with its options;
- ``_transfer`` — ``cp`` and ``sync`` on :func:`artifactio.copy`/:func:`artifactio.sync`;
- ``_browse`` — ``ls``, ``du``, ``stat``, ``cat``, ``rm``;
- ``_output`` — progress line, summary, failures and error messages (stderr);
- ``_main`` — :func:`main`: runs a command, maps outcomes to exit statuses.
"""

from ._main import main

__all__ = ["main"]
