"""``python -m polyoptim``: the same command line as the ``polyoptim`` script."""

import sys

from polyoptim.cli import main

if __name__ == "__main__":
    sys.exit(main())
