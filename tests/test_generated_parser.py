"""The checked-in parser (einderiv/language/generated_parser.py, lark's standalone generator run by
scripts/regenerate_parser.py) is the parser of einderiv/language/grammar.lark as it is now.

Its header records the SHA-256 of the grammar it was generated from; a corpus of programs, good and
bad, parses to the same trees (or fails at the same place) with it and with lark building the parser
from the grammar text in this process.
"""

from __future__ import annotations

import hashlib
import pathlib

import pytest

lark = pytest.importorskip("lark")

from einderiv.language import generated_parser  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "einderiv" / "language" / "grammar.lark"
GENERATED = ROOT / "einderiv" / "language" / "generated_parser.py"

GOOD = [
    "F[i,k] = W[i,j] X[j,k]",
    "L = x[i] A[i,j] x[j]",
    "y[i] = sum[j](A[i,j] x[j]) + 2.5e-3 * b[i] / N",
    "D[i,a] = δ[i,a] - delta[i,a]; E[] = -x[i]^2 ** -y[i]",
    "H[n,h] = relu(X[n,d] W1[d,h] + b1[h])  # a comment\n\nZ[n,c] = H[n,h] W2[h,c]\r\nL = (Z[n,c] - T[n,c])^2 / N",
    "B[i,j] = inv(A)[i,j] + max(0, A[i,j]) + f()",
    ";\n y = +-+x ;; z = .5 x 3. x",
    "C[i,j] = A[i,k] B[k,j]\n# trailing comment",
]
BAD = ["F[i = W[i]", "y = ", "y[i] = x[i] +", "= x", "y = x\x0c", "y = sum[i] x[i]", "y[i,] = x[i]", "y = f(,)"]


def _plain(node):
    """A tree of either lark as nested tuples: rule names, and tokens with their types and positions."""
    if hasattr(node, "data"):
        return (str(node.data), tuple(_plain(child) for child in node.children))
    if node is None:
        return None
    return (node.type, str(node), node.line, node.column)


@pytest.fixture(scope="module")
def parsers():
    built = lark.Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                      maybe_placeholders=True)
    return built, generated_parser.Lark_StandAlone()


def test_the_header_names_the_grammar_as_it_is_now():
    digest = hashlib.sha256(GRAMMAR.read_text(encoding="utf-8").encode("utf-8")).hexdigest()
    header = GENERATED.read_text(encoding="utf-8").splitlines()[:5]
    assert f"# grammar sha256: {digest}" in header, \
        "grammar.lark changed: run python scripts/regenerate_parser.py"


@pytest.mark.parametrize("text", GOOD)
def test_a_program_parses_to_the_same_tree_with_both(parsers, text):
    built, generated = parsers
    assert _plain(generated.parse(text)) == _plain(built.parse(text))


@pytest.mark.parametrize("text", BAD)
def test_a_bad_program_fails_at_the_same_place_with_both(parsers, text):
    built, generated = parsers
    with pytest.raises(lark.exceptions.UnexpectedInput, match=".") as expected:
        built.parse(text)
    with pytest.raises(generated_parser.UnexpectedInput, match=".") as found:
        generated.parse(text)
    assert (type(found.value).__name__, found.value.line, found.value.column) == \
        (type(expected.value).__name__, expected.value.line, expected.value.column)


def test_the_comparison_above_can_fail(parsers):
    built, generated = parsers
    assert _plain(generated.parse("y = a + b")) != _plain(built.parse("y = a - b"))
