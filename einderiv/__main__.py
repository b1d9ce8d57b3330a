"""``python -m einderiv``: the command line (see :mod:`einderiv.cli.app`)."""

import sys

from einderiv.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
