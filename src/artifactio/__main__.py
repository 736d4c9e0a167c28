"""``python -m artifactio``: the command line (see :mod:`artifactio.cli`)."""

import sys

from artifactio.cli import main

if __name__ == "__main__":
    sys.exit(main())
