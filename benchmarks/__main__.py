"""``python -m benchmarks``: run the benchmark groups (see ``benchmarks/run.py``)."""

import sys

from benchmarks.run import main

sys.exit(main())
