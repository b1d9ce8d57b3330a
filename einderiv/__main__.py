"""``python -m einderiv``: the command line (see :mod:`einderiv.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
