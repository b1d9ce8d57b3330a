"""Internal names: each format is read back as built, and none can be a name a program writes.

Properties over every valid user identifier (hypothesis, derandomised): the
builders of :mod:`einderiv.names` and their readers are inverse, the display
name of an internal index is the identifier it was made from, and no reader
takes a user's identifier for an internal name (nor the parser an internal
name for a user's).
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einderiv
from einderiv import names
from einderiv.errors import ParseError

identifiers = st.from_regex(names.IDENTIFIER, fullmatch=True).filter(lambda s: len(s) <= 12)
counts = st.integers(min_value=0, max_value=10_000)
fast = settings(max_examples=60, derandomize=True, deadline=None)


def _internal_names(user: str, tensor: str, k: int) -> list[str]:
    """One name of every internal format, built from identifiers."""
    index = names.statement_index(user, k)
    return [
        index, names.variant(index, k), names.tagged(index, f"r{k}"), names.tagged(names.variant(index, 1), "r2"),
        names.slot_index(user, tensor, k), names.matrix_slot(user, tensor, k),
        names.adjoint_name(tensor), names.tangent_name(tensor), names.gradient_name(tensor),
        names.adjoint_name(names.gradient_name(tensor)), names.split_name(tensor, k), names.VALUE,
        names.fresh_variant(index, set()),
    ]


@fast
@given(identifiers, counts)
def test_an_index_of_a_statement_and_its_variants_show_the_users_name_and_share_its_size(user, k):
    index = names.statement_index(user, k)
    for made in (index, names.variant(index, k), names.variant(names.variant(index, 1), f"t{k}"),
                 names.tagged(index, f"r{k}"), names.tagged(names.variant(index, 2), f"r{k}")):
        assert names.display_name(made) == user
        assert names.index_root(made) == index
        assert names.slot_of(made) is None


@fast
@given(identifiers, identifiers, st.integers(min_value=0, max_value=40))
def test_a_slot_index_reads_back_as_its_tensor_and_axis(user, tensor, axis):
    for owner in (tensor, names.split_name(tensor, 3)):       # split statements' names hold a '.' too
        slot = names.slot_index(user, owner, axis)
        assert names.slot_of(slot) == (owner, axis)
        assert names.slot_of(names.variant(slot, 2)) == (owner, axis)
        assert names.display_name(slot) == user
    assert names.slot_indices(tensor, [user, "b"]) == (names.slot_index(user, tensor, 0),
                                                       names.slot_index("b", tensor, 1))


@fast
@given(st.sampled_from(["row", "col"]), identifiers, st.integers(min_value=0, max_value=40))
def test_a_matrix_slot_is_a_marked_slot_index_apart_from_the_derivatives_own(which, tensor, axis):
    slot = names.matrix_slot(which, tensor, axis)
    assert names.slot_of(slot) == (tensor, axis)
    assert names.display_name(slot) == which
    assert slot != names.slot_index(which, tensor, axis)


@fast
@given(identifiers)
def test_derived_tensor_names_read_back_and_are_never_taken_for_one_another(tensor):
    makers = {"adjoint": (names.adjoint_name, names.adjoint_of), "tangent": (names.tangent_name, names.tangent_of),
              "gradient": (names.gradient_name, names.gradient_of)}
    for kind, (make, _) in makers.items():
        made = make(tensor)
        assert names.is_derivative(made)
        for other, (_, read) in makers.items():
            assert read(made) == (tensor if other == kind else None)
    nested = names.adjoint_name(names.gradient_name(tensor))       # an adjoint of a gradient program's statement
    assert names.gradient_of(names.adjoint_of(nested)) == tensor
    assert names.gradient_of(nested) is None
    assert names.plain(names.adjoint_name(tensor)) == f"g{tensor}"
    assert names.innermost(nested) == names.innermost(names.tangent_name(tensor)) == tensor


@fast
@given(identifiers, st.integers(min_value=1, max_value=10_000))
def test_a_split_statement_name_is_recognised_and_no_identifier_is_one(statement, number):
    assert names.is_split(names.split_name(statement, number))
    assert names.is_split(names.adjoint_name(names.split_name(statement, number)))
    assert not names.is_split(statement)


@fast
@given(identifiers)
def test_no_reader_takes_a_users_identifier_for_an_internal_name(user):
    assert names.is_identifier(user) and not names.is_internal(user)
    assert names.display_name(user) == user and names.index_root(user) == user
    assert names.slot_of(user) is None and not names.is_split(user) and not names.is_derivative(user)
    assert names.adjoint_of(user) is None and names.tangent_of(user) is None and names.gradient_of(user) is None
    assert user != names.VALUE


@fast
@given(identifiers, identifiers, identifiers, counts)
def test_no_internal_name_is_an_identifier_a_program_could_write(other, user, tensor, k):
    for made in _internal_names(user, tensor, k):
        assert names.is_internal(made) and not names.is_identifier(made)
        assert made != other


@pytest.mark.parametrize("text, message", [
    ("g:x = y", "unexpected character ':'"), ("x@W.0 = y", "unexpected character '@'"),
    ("a[i~1] = y[i~1]", "unexpected character '~'"), ("L.1 = y", "missing '='"),
    ("a[i#1] = y[i]", r"unclosed '\['"),                       # '#' starts a comment
])
def test_the_parser_refuses_an_internal_name_written_in_a_program(text, message):
    with pytest.raises(ParseError, match=message):
        einderiv.parse(text)


@fast
@given(st.sets(identifiers, max_size=30), st.integers(min_value=0, max_value=40))
def test_fresh_names_are_distinct_and_avoid_the_taken_ones(taken, count):
    made = names.fresh_names(count, taken)
    assert len(made) == count == len(set(made)) and not set(made) & taken
    assert all(names.is_identifier(n) for n in made)


@fast
@given(identifiers, counts, st.sets(counts, max_size=8))
def test_a_fresh_variant_shares_the_root_and_avoids_the_taken_ones(user, k, used):
    index = names.statement_index(user, k)
    taken = {names.variant(index, n) for n in used}
    made = names.fresh_variant(names.variant(index, 5), taken)
    assert made not in taken and names.index_root(made) == index
    assert made == names.variant(index, min(set(range(1, len(used) + 2)) - used))


def test_fresh_takes_the_first_candidate_free_in_every_taken_set():
    assert names.fresh(names.numbered("a"), {"a", "a1"}, {"a2"}) == "a3"
    assert names.fresh(["G", "U"], {"G"}) == "U"
    with pytest.raises(StopIteration, match="^$"):
        names.fresh(["G"], {"G"})


def _name_building(tree: ast.AST) -> list[int]:
    """Lines that build or read an internal name by hand: a ``"g:"``-style prefix, an f-string that
    glues ``@ ~ # :`` to a value, or ``.split("@")``; docstrings are skipped."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                and re.match(r"[gGd]:", node.value):
            found.append(node.lineno)
        elif isinstance(node, ast.JoinedStr):
            parts = node.values
            for k, part in enumerate(parts):
                if isinstance(part, ast.Constant) and (
                        (k > 0 and part.value[:1] in "@~#:" and part.value[:2] != ": ")
                        or (k + 1 < len(parts) and part.value[-1:] in "@~#")):
                    found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("split", "rsplit", "partition") and node.args \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in ("@", "~", ":"):
            found.append(node.lineno)
    return found


def test_internal_names_are_built_only_in_the_names_module():
    package = pathlib.Path(einderiv.__file__).parent
    found = [f"{path.relative_to(package)}:{line}" for path in sorted(package.rglob("*.py")) if path.name != "names.py"
             for line in _name_building(ast.parse(path.read_text(encoding="utf-8")))]
    assert found == []


@pytest.mark.parametrize("source", ['f"{x}@{t}.{k}"', 'name.split("@", 1)', 'f"g:{t}"', '"G:" + t', 'f"{i}~{n}"'])
def test_the_scan_sees_names_built_by_hand(source):
    assert _name_building(ast.parse(source)) == [1]
