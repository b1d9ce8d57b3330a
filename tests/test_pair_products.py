"""Two-operand products as one batched matmul of views (einderiv/numeric/pair_products.py), against np.einsum.

Random index layouts (batch, contracted, output-only indices in any order on either side), contiguous
and strided operands; and the cases the cost model must send to the batched product.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from einderiv.core import caching
from einderiv.numeric import pair_products
from einderiv.numeric.pair_products import batched_matmul, cheaper_batched_matmul, pair_layout

LETTERS = "abcdefgh"


@st.composite
def pair_products_(draw):
    """(a, b, out, sizes): each index in x, y or both; an index in one operand only is in the output."""
    count = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(["x", "y", "batch", "contracted"]), min_size=count, max_size=count))
    sizes = draw(st.lists(st.integers(1, 4), min_size=count, max_size=count))
    a = [i for i, kind in enumerate(kinds) if kind != "y"]
    b = [i for i, kind in enumerate(kinds) if kind != "x"]
    a = draw(st.permutations(a))
    b = draw(st.permutations(b))
    out = draw(st.permutations([i for i, kind in enumerate(kinds) if kind != "contracted"]))
    return list(a), list(b), list(out), dict(enumerate(sizes))


def _einsum(a, b, out, x, y):
    word = lambda sub: "".join(LETTERS[i] for i in sub)     # noqa: E731
    return np.einsum(f"{word(a)},{word(b)}->{word(out)}", x, y)


@settings(max_examples=300, deadline=None)
@given(pair_products_(), st.booleans(), st.booleans(), st.integers(0, 2 ** 31))
def test_the_batched_product_equals_einsum_on_any_layout(case, strided_x, strided_y, seed):
    a, b, out, sizes = case
    rng = np.random.default_rng(seed)
    shape_x, shape_y = tuple(sizes[i] for i in a), tuple(sizes[i] for i in b)

    def operand(shape, strided):
        if not strided:
            return rng.standard_normal(shape)
        # the same values, laid out with the axes reversed (a transposed view)
        return rng.standard_normal(shape[::-1]).transpose(tuple(range(len(shape)))[::-1])
    x, y = operand(shape_x, strided_x), operand(shape_y, strided_y)
    product = batched_matmul(a, b, out, [shape_x, shape_y])
    if product is None:          # no BLAS-strided layout: the last axis of an operand is a batch axis
        layout_last = [s[-1] for s in (a, b) if s]
        assert any(i in out and i in a and i in b or i not in out for i in layout_last)
        return
    got = product(x, y)
    assert got.shape == tuple(sizes[i] for i in out)
    np.testing.assert_allclose(got, _einsum(a, b, out, x, y), rtol=1e-12, atol=1e-12)
    assert not np.shares_memory(got, x) and not np.shares_memory(got, y)


def test_a_cotangent_against_a_large_operand_reads_it_in_place():
    # g[b] = Σ_a Σ_r G[a,r] T[a,b,r]: tensordot would copy T into (b, a, r) order
    a, b, out = [0, 2], [0, 1, 2], [1]
    shapes = [(6, 5000), (6, 8, 5000)]
    layout = pair_layout(a, b, out, {0: 6, 1: 8, 2: 5000})
    assert layout is not None and layout.k_run == (2,) and layout.summed == (0,)
    product = cheaper_batched_matmul(a, b, out, shapes, 10 ** 9)
    assert product is not None
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    np.testing.assert_allclose(product(x, y), np.einsum("ar,abr->b", x, y), rtol=1e-12)


def test_a_summed_batch_axis_respects_the_element_limit():
    a, b, out = [0, 2], [0, 1, 2], [1]
    shapes = [(6, 5000), (6, 8, 5000)]
    assert cheaper_batched_matmul(a, b, out, shapes, 6 * 8 - 1) is None
    assert cheaper_batched_matmul(a, b, out, shapes, 6 * 8) is not None


def test_a_plain_matrix_product_stays_with_tensordot():
    assert cheaper_batched_matmul([0, 1], [1, 2], [0, 2], [(30, 40), (40, 50)], 10 ** 9) is None


@pytest.mark.parametrize("equation, shapes", [
    ("bij,bjk->bik", [(4, 30, 40), (4, 40, 50)]),        # batch index: opt_einsum would use np.einsum
    ("abr,b->ar", [(6, 8, 5000), (8,)]),                  # a vector against a middle axis
])
def test_the_engine_uses_the_batched_product_and_gets_the_same_numbers(equation, shapes):
    import einderiv
    (left, right), out = equation.split("->")[0].split(","), equation.split("->")[1]
    text = (f"Z[{','.join(out)}] = X[{','.join(left)}] Y[{','.join(right)}]")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    calls = []
    original = pair_products._compile

    def spy(*args):
        calls.append(args)
        return original(*args)
    pair_products._compile = spy
    try:
        caching.clear_caches()
        got = einderiv.evaluate(text, {"X": x, "Y": y})
    finally:
        pair_products._compile = original
        caching.clear_caches()
    assert calls
    np.testing.assert_allclose(got, np.einsum(equation, x, y), rtol=1e-10, atol=1e-12)
