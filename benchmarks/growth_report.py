"""Growth that must stay polynomial: derivative CPU time by nesting depth, parse CPU time by statements.

    python benchmarks/growth_report.py

CPU time (``time.process_time``), so a loaded machine does not inflate the numbers.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import einderiv  # noqa: E402  (after the sys.path fix)


def _cpu(call) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def nested(fn: str, depth: int) -> str:
    """``y[i] = fn(fn(…fn(x[i])…))``; ``exp`` alternates signs so values stay finite."""
    inner = "x[i]"
    for _ in range(depth):
        inner = f"{fn}(-{inner})" if fn == "exp" else f"{fn}({inner})"
    return f"y[i] = {inner}"


def main() -> None:
    print("| depth | tanh | sigmoid | exp(−·) |\n| --- | --- | --- | --- |")
    for depth in (5, 10, 20, 40):
        times = []
        for fn in ("tanh", "sigmoid", "exp"):
            text = nested(fn, depth)
            einderiv.clear_cache()
            times.append(_cpu(lambda: str(einderiv.parse(text).derivative("x"))))
        print(f"| {depth} | " + " | ".join(f"{t:.3f} s" for t in times) + " |")
    print("\n| statements | parse |\n| --- | --- |")
    for n in (1000, 2000, 4000, 8000, 16000):
        text = "h0[i] = x[i]\n" + "\n".join(f"h{k}[i] = tanh(h{k - 1}[i])" for k in range(1, n))
        einderiv.clear_cache()
        print(f"| {n} | {_cpu(lambda: einderiv.parse(text)):.2f} s |")


if __name__ == "__main__":
    main()
