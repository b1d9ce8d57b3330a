"""Side-by-side timing of this checkout against another one (say a release), in one sitting.

    git worktree add /tmp/v01 <commit>
    python benchmarks/ab_compare.py /tmp/v01

Runs the tiny two-layer gradient (per-call overhead, min of 3,000 calls) and the
N=4096, D=512, H=1024, C=10 two-layer gradient against hand-written numpy (BLAS
one thread, min of 12 interleaved calls), each in a fresh process per checkout,
alternating, twice: on a noisy machine only what both runs agree on counts.

A tool beside the benchmark harness (``python -m benchmarks``), not one of its
groups: it runs two checkouts, where a group times this one.
"""

from __future__ import annotations

import os
import subprocess
import sys

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = r"""
import sys, time
import numpy as np
sys.path.insert(1, sys.argv[1])                       # this checkout's benchmarks package
import einderiv
from benchmarks import gradients as G
from threadpoolctl import threadpool_limits

def best(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); call(); times.append(time.perf_counter() - start)
    return min(times)

def inputs(n, d, h, c, scale=1.0):
    rng = np.random.default_rng(0)
    return dict(X=rng.standard_normal((n, d)), W1=rng.standard_normal((d, h)) * scale, b1=rng.standard_normal(h),
                W2=rng.standard_normal((h, c)) * scale, b2=rng.standard_normal(c), T=rng.standard_normal((n, c)),
                N=float(n))

tiny = inputs(4, 3, 5, 2)
call = lambda: einderiv.grad(G.PROGRAM, list(G.WRT), tiny)
call()
per_call = best(call, 3000)
big = inputs(4096, 512, 1024, 10, 1 / 30)
with threadpool_limits(1):
    e = lambda: einderiv.grad(G.PROGRAM, list(G.WRT), big)
    h = lambda: G.numpy_backprop(**big)
    e(); h()
    te, th = [], []
    for _ in range(12):
        te.append(best(e, 1)); th.append(best(h, 1))
print(f"{einderiv.__file__.rsplit('/einderiv/', 1)[0]}: tiny grad {per_call * 1e6:.0f} µs per call; "
      f"MLP grad {min(te) * 1e3:.1f} ms vs numpy {min(th) * 1e3:.1f} ms ({min(te) / min(th):.3f}×)")
"""


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    other = os.path.abspath(argv[0])
    for _ in range(2):
        for checkout in (other, _HERE):
            env = {**os.environ, "PYTHONPATH": checkout}
            subprocess.run([sys.executable, "-c", _PROBE, _HERE], env=env, check=True, cwd=checkout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
