"""Printed derivatives never depend on string hashing: the same text comes out
under PYTHONHASHSEED=0, 1 and 2 (each in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import einderiv

ROOT = pathlib.Path(__file__).resolve().parents[1]

# (program, wrt, of)
CASES = [
    ("F[i,k] = W[i,j] X[j,k]", "W", None),
    ("F[i,k] = W[i,j] X[j,k]", "X", None),
    ("Y[j] = X[i] W[i,j] + B[j]; L = G[j] Y[j]", "W", None),
    (
        "H0[n,h] = X[n,d] W1[d,h]\nH1[n,h] = H0[n,h] + b1[h]\nH2[n,h] = max(0, H1[n,h])\n"
        "H3[n,c] = H2[n,h] W2[h,c]\nZ[n,c] = H3[n,c] + b2[c]\nL = (Z[n,c] - T[n,c])^2 / (2 N)",
        "W1",
        None,
    ),
    ("out[j] = h2[i] W[i,j]; Yh[j] = sigmoid(out[j]); L = (Yh[j] - Y[j])^2 / 2", "W", None),
    ("C[p,q,r] = A[p,s] B[s,q] D[q,r] + E[r,p] u[q] + A[p,t] D[t,r] v[q]", "A", None),
    ("y[zeta,alpha] = exp(M[zeta,beta] x[beta]) + cos(M[zeta,gamma]) w[alpha]", "M", None),
]

SCRIPT = r"""
import json, sys, warnings
import einderiv
warnings.simplefilter("ignore")
cases = json.loads(sys.argv[1])
out = []
for text, wrt, of in cases:
    d = einderiv.parse(text).derivative(wrt, of=of)
    out.append([str(d), d.to_text(ascii=True)])
print(json.dumps(out))
"""


def _run_with_seed(seed):
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(seed)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(CASES)],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_derivative_text_independent_of_hash_seed():
    results = [_run_with_seed(seed) for seed in (0, 1, 2)]
    assert len(results[0]) == len(CASES)
    for (text, wrt, _), texts in zip(CASES, results[0]):
        assert texts[0] and texts[1], f"empty derivative text for d/d{wrt} of {text!r}"
    for seed, other in zip((1, 2), results[1:]):
        for case, a, b in zip(CASES, results[0], other):
            assert a == b, f"PYTHONHASHSEED=0 vs {seed} differ for {case}:\n{a}\n{b}"


def test_derivative_text_same_in_process_as_in_subprocess():
    import warnings

    expected = _run_with_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (text, wrt, of), (uni, asc) in zip(CASES, expected):
            d = einderiv.parse(text).derivative(wrt, of=of)
            assert str(d) == uni, text
            assert d.to_text(ascii=True) == asc, text
