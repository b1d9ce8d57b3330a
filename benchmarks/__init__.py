"""Benchmarks of einderiv against its rivals and against the hardware limit.

Run everything with ``python -m benchmarks`` (or ``python benchmarks/run.py``);
``--quick`` for a short pass, ``--only NAME`` for one group. Results go to
``benchmarks/results/<group>.md`` and ``<group>.png``. This package imports
nothing heavy at import time, so the runner can re-execute itself with a clean
BLAS environment before numpy is loaded.
"""

GROUPS = ("paths", "jacobian", "grad", "hessian", "overhead", "networks", "backends")
