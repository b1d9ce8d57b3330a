"""The ``networks`` benchmark's program building: equations of tensor networks → einderiv programs.

The built-in generators (chain, MPS, lattice, tree) are turned into programs
``L = T0[...] T1[...] ...``; the program's value must be the network's value
(opt_einsum on the same equation), and einderiv's gradient of one small
network must match central finite differences, operand by operand.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import opt_einsum
import pytest

import einderiv

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the checkout: benchmarks/
from benchmarks import networks as nets  # noqa: E402

SMALL = {
    "chain": nets.builtin_chain(4, 2, 4, seed=0),
    "mps": nets.builtin_mps(3, 3, 2, seed=0),
    "lattice": nets.builtin_lattice(2, 3, 2, 3, seed=0),
    "tree": nets.builtin_tree(6, 2, 3, seed=1),
}


def test_program_text_names_operands_and_indices_in_order():
    program, names = nets.network_program("ab,bc,c->a")
    assert program == "L = T0[x0,x1] T1[x1,x2] T2[x2]"
    assert names == ("T0", "T1", "T2")


def test_scalar_operand_is_a_bare_name():
    program, _ = nets.network_program("ab,,b->")
    assert program == "L = T0[x0,x1] T1 T2[x1]"


def test_unicode_symbols_become_identifiers():
    eq = ",".join(opt_einsum.get_symbol(k) + opt_einsum.get_symbol(k + 1) for k in range(60)) + "->"
    program, names = nets.network_program(eq)
    assert len(names) == 60
    assert "T59[x59,x60]" in program
    assert program.isascii()


def test_ellipsis_is_refused():
    with pytest.raises(ValueError, match="ellipsis"):
        nets.network_program("a...,ab->")


@pytest.mark.parametrize("family", sorted(SMALL))
def test_program_value_is_the_network_value(family):
    eq, shapes = SMALL[family]
    scalar = nets.scalar_equation(eq)
    program, names = nets.network_program(scalar)
    inputs = nets.make_inputs(scalar, shapes, seed=3)
    assert [inputs[n].shape for n in names] == [tuple(s) for s in shapes]
    expected = opt_einsum.contract(scalar, *(inputs[n] for n in names))
    assert float(expected) == pytest.approx(1.0, rel=1e-12)          # make_inputs normalises the value
    assert float(einderiv.evaluate(program, inputs)) == pytest.approx(float(expected), rel=1e-12)


def test_gradient_matches_finite_differences():
    eq, shapes = SMALL["lattice"]
    program, names = nets.network_program(eq)
    inputs = nets.make_inputs(eq, shapes, seed=5)
    grads = einderiv.grad(program, list(names), inputs)
    value = opt_einsum.contract_expression(eq, *shapes)
    eps = 1e-6
    for name in names:
        numeric = np.zeros_like(inputs[name])
        for idx in np.ndindex(*inputs[name].shape):
            values = []
            for step in (eps, -eps):
                shifted = dict(inputs)
                shifted[name] = inputs[name].copy()
                shifted[name][idx] += step
                values.append(float(value(*(shifted[n] for n in names))))
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9, err_msg=name)


def test_builtin_networks_have_the_advertised_sizes():
    sizes = {n.name: n.operands for n in nets.builtin_networks()}
    assert sizes == {"chain12": 12, "lattice4x5": 20, "tree40": 40, "mps25": 50, "mps100": 200}
    assert nets.planning_network(5).operands == 6
    assert nets.planning_network(200).operands == 200
