"""Every internal name einderiv makes, built and read back in one place.

A program's own names are identifiers, ``[A-Za-z_][A-Za-z0-9_]*``. Every name the
package makes for itself holds a character no identifier can (``# @ ~ : . =``),
so no name a user writes is ever taken for an internal one, and the reverse:

======================  ==================  ==========================================
format                  example             meaning
======================  ==================  ==========================================
statement index         ``k#2``             index ``k`` of statement 2
variant                 ``k#2~1``           same size as ``k#2``, a different index
slot index              ``a@W.0``           an index over axis 0 of tensor ``W``
matrix slot             ``row@A.0~m``       a bound row/column index of ``inv(A)``
adjoint                 ``g:T``             the gradient (reverse mode) of ``T``
tangent                 ``d:T``             the tangent (forward mode) of ``T``
gradient statement      ``G:T``             ``dL/dT`` as a statement of a gradient program
split statement         ``L.1``             an intermediate product split off ``L``
value key               ``=value``          the output's value among gradient results
======================  ==================  ==========================================

Each format has a builder and a reader (``None`` for a name of another
format); :func:`display_name` and :func:`index_root` read any index. The
fresh-name pickers (:func:`fresh`, :func:`numbered`, :func:`fresh_names`,
:func:`fresh_variant`) are here too. No numpy, no lark: every layer imports this.

>>> slot_of(slot_index("a", "W", 1))
('W', 1)
>>> adjoint_of(adjoint_name(gradient_name("x")))
'G:x'
>>> display_name(variant(statement_index("k", 2), 1))
'k'
"""

from __future__ import annotations

import itertools
import re
from typing import Container, Iterable, Iterator

__all__ = [
    "IDENTIFIER", "is_identifier", "is_internal",
    "statement_index", "variant", "tagged", "index_root", "display_name",
    "slot_index", "slot_indices", "slot_of", "matrix_slot",
    "adjoint_name", "adjoint_of", "tangent_name", "tangent_of", "gradient_name", "gradient_of",
    "is_derivative", "innermost", "plain", "split_name", "is_split", "VALUE",
    "fresh", "numbered", "fresh_names", "fresh_variant", "SLOT_LETTERS",
]

#: What a user may write as a tensor or index name (the grammar's ``NAME``).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: The characters that mark internal names; none can appear in an identifier.
_MARKERS = "#@~:.="


def is_identifier(name: str) -> bool:
    """Whether a program may write ``name``.

    >>> is_identifier("W1"), is_identifier("g:W1")
    (True, False)
    """
    return IDENTIFIER.fullmatch(name) is not None


def is_internal(name: str) -> bool:
    """Whether ``name`` is one the package made (it holds a marker no identifier can).

    >>> is_internal("k#2"), is_internal("k")
    (True, False)
    """
    return any(marker in name for marker in _MARKERS)


# ---------------------------------------------------------------- indices

def statement_index(name: str, number: int | str) -> str:
    """Internal name of index ``name`` in statement ``number``.

    >>> statement_index("k", 2)
    'k#2'
    """
    return f"{name}#{number}"


def variant(index: str, tag: int | str) -> str:
    """A variant of ``index`` marked ``tag``: a different index of the same size.

    >>> variant("k#2", 1), variant("k#2~1", "t3")
    ('k#2~1', 'k#2~1~t3')
    """
    return f"{index}~{tag}"


def tagged(index: str, tag: str) -> str:
    """``index`` with ``tag`` added to its variant mark (one mark, however many tags).

    >>> tagged("n#2", "r3"), tagged("n#2~1", "r3")
    ('n#2~r3', 'n#2~1r3')
    """
    return f"{index}{tag}" if "~" in index else variant(index, tag)


def index_root(index: str) -> str:
    """The index whose size this one shares (``"k#2~1"`` → ``"k#2"``).

    >>> index_root("k#2~1"), index_root("row@A.0~m")
    ('k#2', 'row@A.0')
    """
    return index.split("~", 1)[0]


def display_name(index: str) -> str:
    """The name the user wrote for an internal index.

    >>> display_name("k#2~1"), display_name("a@W.0")
    ('k', 'a')
    """
    for marker in ("#", "@", "~"):
        index = index.split(marker, 1)[0]
    return index


def slot_index(name: str, tensor: str, axis: int) -> str:
    """An index shown as ``name`` that runs over axis ``axis`` of ``tensor`` (its size is that axis').

    >>> slot_index("a", "W", 0)
    'a@W.0'
    """
    return f"{name}@{tensor}.{axis}"


def slot_indices(tensor: str, names: Iterable[str]) -> tuple[str, ...]:
    """Slot indices over ``tensor``'s axes, in order, shown as ``names``.

    >>> slot_indices("W", "ab")
    ('a@W.0', 'b@W.1')
    """
    return tuple(slot_index(name, tensor, axis) for axis, name in enumerate(names))


def slot_of(index: str) -> tuple[str, int] | None:
    """``(tensor, axis)`` whose size a slot index (or a variant of one) has; ``None`` for other indices.

    >>> slot_of("a@W.1"), slot_of("row@A.0~m"), slot_of("k#2")
    (('W', 1), ('A', 0), None)
    """
    root = index_root(index)
    if "@" not in root:
        return None
    tensor, axis = root.split("@", 1)[1].rsplit(".", 1)
    return tensor, int(axis)


def matrix_slot(which: str, tensor: str, axis: int) -> str:
    """The bound row (or column) index of a bare matrix argument ``inv(A)``: a slot index over
    ``tensor``'s axis (so its size is that axis'), with the ``~m`` mark that keeps it apart from
    every slot index the derivatives make (``row@A.0``, say, from a user's index ``row``) and
    from their variants.

    >>> matrix_slot("row", "A", 0)
    'row@A.0~m'
    """
    return variant(slot_index(which, tensor, axis), "m")


# ---------------------------------------------------------------- derived tensors

_ADJOINT, _TANGENT, _GRADIENT = "g:", "d:", "G:"


def _prefixed(prefix: str, name: str) -> str | None:
    return name[len(prefix):] if name.startswith(prefix) else None


def adjoint_name(tensor: str) -> str:
    """Internal name of the adjoint (gradient) of ``tensor``.

    >>> adjoint_name("T")
    'g:T'
    """
    return _ADJOINT + tensor


def adjoint_of(name: str) -> str | None:
    """The tensor whose adjoint ``name`` is, else ``None``.

    >>> adjoint_of("g:T"), adjoint_of("T")
    ('T', None)
    """
    return _prefixed(_ADJOINT, name)


def tangent_name(tensor: str) -> str:
    """Internal name of the tangent of ``tensor``.

    >>> tangent_name("x")
    'd:x'
    """
    return _TANGENT + tensor


def tangent_of(name: str) -> str | None:
    """The tensor whose tangent ``name`` is, else ``None``.

    >>> tangent_of("d:x"), tangent_of("g:x")
    ('x', None)
    """
    return _prefixed(_TANGENT, name)


def gradient_name(tensor: str) -> str:
    """Name, in a gradient program, of the statement holding ``dL/d tensor``.

    >>> gradient_name("W1")
    'G:W1'
    """
    return _GRADIENT + tensor


def gradient_of(name: str) -> str | None:
    """The tensor whose gradient statement ``name`` is, else ``None``.

    >>> gradient_of("G:W1"), gradient_of("g:G:W1")
    ('W1', None)
    """
    return _prefixed(_GRADIENT, name)


def is_derivative(name: str) -> bool:
    """Whether ``name`` is an adjoint, a tangent or a gradient statement (of any tensor).

    >>> is_derivative("g:G:x"), is_derivative("d:x"), is_derivative("x")
    (True, True, False)
    """
    return any(of(name) is not None for of in (adjoint_of, tangent_of, gradient_of))


def innermost(name: str) -> str:
    """The tensor a derivative name is of, through every mark (``g:G:x`` → ``x``).

    >>> innermost("g:G:x"), innermost("d:x"), innermost("x")
    ('x', 'x', 'x')
    """
    while True:
        inner = next((of(name) for of in (adjoint_of, tangent_of, gradient_of) if of(name) is not None), None)
        if inner is None:
            return name
        name = inner


def plain(name: str) -> str:
    """A derivative's name as the plan report shows it, its marks dropped (``g:W`` → ``gW``).

    >>> plain("g:W"), plain("d:x"), plain("W")
    ('gW', 'dx', 'W')
    """
    return name.replace(":", "")


def split_name(statement: str, number: int) -> str:
    """The name of the ``number``-th intermediate split off ``statement``: no program can write it.

    >>> split_name("L", 1)
    'L.1'
    """
    return f"{statement}.{number}"


def is_split(name: str) -> bool:
    """Whether ``name`` is an intermediate split off a statement (or a derivative of one).

    >>> is_split(split_name("L", 1)), is_split("L")
    (True, False)
    """
    return "." in name


#: The key of the output's value among the results of a value-and-gradient plan (no input has this name).
VALUE = "=value"


def sliced_group_key(statement: str, term: int) -> str:
    """Where a plan run keeps the adjoints the loop over a sliced product of ``statement``'s ``term``-th
    term computed (see einderiv.numeric.sliced_reverse): no tensor has this name.

    >>> sliced_group_key("L", 0)
    '=sliced L#0'
    """
    return f"=sliced {statement}#{term}"


# ---------------------------------------------------------------- fresh names

def fresh(candidates: Iterable[str], *taken: Container[str]) -> str:
    """The first of ``candidates`` in none of ``taken``.

    >>> fresh(["G", "U", "Gbar"], {"G"}, {"U"})
    'Gbar'
    """
    return next(c for c in candidates if not any(c in t for t in taken))


def numbered(base: str, start: int = 1) -> Iterator[str]:
    """``base``, then ``base`` numbered from ``start``: ``a, a1, a2, …``.

    >>> list(itertools.islice(numbered("a"), 3))
    ['a', 'a1', 'a2']
    """
    yield base
    for k in itertools.count(start):
        yield f"{base}{k}"


#: The letters fresh index names are drawn from (``i``–``o`` are left to the programs' own indices).
SLOT_LETTERS = "abcdefghpqrstuvwxyz"


def fresh_names(count: int, taken: Iterable[str] = (), letters: str = SLOT_LETTERS) -> list[str]:
    """``count`` display names, none in ``taken``: ``a, b, …`` then ``a1, b1, …``, ``a2, …``; never runs out.

    >>> fresh_names(3, {"b"})
    ['a', 'c', 'd']
    >>> fresh_names(21)[-3:]
    ['z', 'a1', 'b1']
    """
    taken = set(taken)
    names: list[str] = []
    round_ = 0
    while len(names) < count:
        for letter in letters:
            name = f"{letter}{round_}" if round_ else letter
            if name not in taken:
                names.append(name)
                taken.add(name)
                if len(names) == count:
                    break
        round_ += 1
    return names


def fresh_variant(index: str, taken: Container[str]) -> str:
    """A variant sharing ``index``'s root and size, not in ``taken``.

    >>> fresh_variant("k#2~1", {"k#2~1"})
    'k#2~2'
    """
    root = index_root(index)
    return fresh((variant(root, k) for k in itertools.count(1)), taken)
