"""Group ``core``: the headline numbers of the core in one short run, each against its physical limit.

* the cached gradient of the two-layer network on tiny arrays (N=4, D=3, H=5,
  C=2) against hand-written numpy: the per-call overhead;
* ``vjp`` of ``F[i,k] = W[i,j] X[j,k]`` w.r.t. W at m = n = p = 512 against ``G @ X.T``;
* ``jacobian`` of the same F at m = n = p = 64 against a zeroed array with ``Xᵀ``
  written into its diagonal view;
* ``hessian`` of ``xᵀAx`` at n = 400 against ``A + Aᵀ``, and of ``‖XW − Y‖²_F``
  (X 200×50, W 50×20) against ``2 XᵀX`` written into a diagonal view.

Only einderiv and the limit run (the rivals are in the ``grad``, ``jacobian``,
``hessian`` and ``overhead`` groups, which also sweep the sizes); BLAS runs on
one thread, so that the minima of small GEMMs are not thrown about by idle
threads on a shared machine. The cold column is einderiv's first call after
every cache is cleared: parse, differentiate, plan and run.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from benchmarks import gradients, hessians, jacobians
from benchmarks.common import (Contender, Report, Row, Session, blas_threads, compare, einderiv_reset, find, fmt_time,
                               md_table, ratio)

PRODUCT = jacobians.PROGRAM
RTOL = 1e-10


def cases(rng: np.random.Generator) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(measurement, einderiv's call, the limit's call) for every headline number."""
    import einderiv
    tiny = gradients.make_inputs(4, 3, 5, 2, np.float64)
    W, X, G = (rng.standard_normal((512, 512)) for _ in range(3))
    W64, X64 = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    A, x = rng.standard_normal((400, 400)), rng.standard_normal(400)
    XL, WL, YL = rng.standard_normal((200, 50)), rng.standard_normal((50, 20)), rng.standard_normal((200, 20))
    return [
        ("grad, two-layer network, tiny arrays (per-call overhead)",
         lambda: einderiv.grad(gradients.PROGRAM, list(gradients.WRT), tiny), lambda: gradients.numpy_backprop(**tiny)),
        ("vjp of F = W X w.r.t. W, m = n = p = 512",
         lambda: einderiv.vjp(PRODUCT, "W", {"W": W, "X": X}, G), lambda: G @ X.T),
        ("jacobian of F = W X w.r.t. W, m = n = p = 64 (128 MiB)",
         lambda: einderiv.jacobian(PRODUCT, "W", {"W": W64, "X": X64}), lambda: jacobians.diagonal_write(W64, X64)),
        ("hessian of xᵀAx, n = 400",
         lambda: einderiv.hessian(hessians.QUADRATIC, "x", {"A": A, "x": x}), lambda: hessians.quadratic_closed(A)),
        ("hessian of ‖XW − Y‖²_F, X 200×50, W 50×20",
         lambda: einderiv.hessian(hessians.LEAST_SQUARES, "W", {"X": XL, "W": WL, "Y": YL}),
         lambda: hessians.least_squares_closed(XL, 20)),
    ]


def summary_row(label: str, rows: list[Row]) -> list[str]:
    """measurement, einderiv warm and cold, the limit, the ratio, and the status of whichever is not ok."""
    e, lim = find(rows, "einderiv"), find(rows, "limit")
    q = ratio(e, lim)
    status = "; ".join(f"{r.name}: {r.status}" for r in rows if r.status != "ok") or "ok"
    return [label, fmt_time(e.timing.min) if e.ok else "–", fmt_time(e.timing.cold) if e.timing else "–",
            fmt_time(lim.timing.min) if lim.ok else "–", f"{q:.2f}×" if q is not None else "–", status]


def run(session: Session) -> Report:
    """Run the group and return its report."""
    report = Report("core", "Headline numbers of the core", __doc__.split("\n\n", 1)[1])
    table = []
    with blas_threads(1, report):
        for label, ours, limit in cases(np.random.default_rng(1)):
            rows = compare(session, label, [Contender("limit", "limit", lambda limit=limit: limit),
                                            Contender("einderiv", "einderiv", lambda ours=ours: ours,
                                                      reset=einderiv_reset)],
                           rtol=RTOL, budget=0.3 if session.quick else 1.5, min_repeats=3,
                           max_repeats=10 if session.quick else 50)
            report.check_rows(label, rows)
            table.append(summary_row(label, rows))
    report.add("Summary", md_table(["measurement", "einderiv (min)", "einderiv cold", "limit (min)",
                                    "einderiv ÷ limit", "status"], table))
    report.notes.append(f"Agreement: einderiv's result equals the limit's to {RTOL:.0e} (relative to its largest "
                        "entry) before anything is timed; a disagreement is a failure.")
    return report
