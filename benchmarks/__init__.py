"""Benchmarks of einderiv against its rivals and against the hardware limit: one harness, groups as plug-ins.

Run every group with ``python -m benchmarks`` (or ``python benchmarks/run.py``);
``--quick`` for a short pass, ``--only NAME`` for one group, ``--list`` for the
groups. Results go to ``benchmarks/results/<group>.md`` and ``<group>.png``.

A group is a module of this package with one function, ``run(session) -> Report``
(:class:`benchmarks.common.Session` in, :class:`benchmarks.common.Report` out),
written with the shared helpers of :mod:`benchmarks.common` (``compare``,
``timing_table``, ``md_table``, ``blas_threads``, …); the runner writes the report.
Adding a group is one line in :data:`GROUPS` below.

Two tools stand beside the harness, with their own command lines, because they
are not timings of this checkout: ``python benchmarks/fuzz.py`` (the long fuzz
run: hostile input must raise an ``EinderivError``) and
``python benchmarks/ab_compare.py OTHER_CHECKOUT`` (this checkout against
another, in alternating fresh processes).

This package imports nothing heavy at import time, so the runner can
re-execute itself with a clean BLAS environment before numpy is loaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple


class Group(NamedTuple):
    """A registered group: the module holding its ``run(session) -> Report``; one line on what it measures."""

    module: str
    description: str


#: Every group, in the order a full run takes them. One line per group.
GROUPS: dict[str, Group] = {
    "paths": Group("benchmarks.paths", "contraction paths einderiv plans vs opt_einsum's optimizers, cotengra, numpy"),
    "jacobian": Group("benchmarks.jacobians", "full Jacobian of F = W X vs a diagonal write, jax, torch, autograd"),
    "grad": Group("benchmarks.gradients", "two-layer network gradient vs hand-written numpy, jax, torch, autograd"),
    "hessian": Group("benchmarks.hessians", "full Hessians vs their closed forms, jax and torch"),
    "overhead": Group("benchmarks.overhead", "cold parse + derivative + plan by program length; cached per-call cost"),
    "networks": Group("benchmarks.networks", "all-operand gradients of tensor networks vs the cached forward"),
    "matfun": Group("benchmarks.matfun", "gradients of logdet and a Gaussian NLL vs the closed form and jax"),
    "core": Group("benchmarks.core", "the headline numbers in one short run: vjp, Jacobian, Hessians vs their limits"),
    "growth": Group("benchmarks.growth", "CPU time of derivatives by nesting depth and of parsing by statements"),
    "backends": Group("benchmarks.backends", "torch and jax arrays through einderiv vs their autodiff; dask on 1 and 2 workers"),
}


def load(name: str) -> ModuleType:
    """The module of the group ``name`` (imported now: numpy and einderiv come with it)."""
    return importlib.import_module(GROUPS[name].module)
