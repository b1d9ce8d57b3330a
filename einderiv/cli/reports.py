"""What a command computed, before any format renders it: frozen report objects.

A command returns a :class:`Report` (numbered results, each a :class:`Section`)
or a :class:`Document` (a finished text: generated code, a plan, an
explanation). The formats of :mod:`einderiv.cli.formats` render them; the
command itself never prints. Warnings go to standard error as they arise
(through :mod:`warnings`), before any output, so they are not part of a report.

>>> section = Section(heading=("y = 3",), latex=("y = 3",))
>>> Report("eval", (section,), {"command": "eval"}).entries()
0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

__all__ = ["Section", "Report", "Document", "Result", "Label"]

#: A block label: the leading indices of a block (counted from 0) → its name, such as ``dF[1,2]/dW``.
Label = Callable[[tuple[int, ...]], str]


@dataclass(frozen=True)
class Section:
    """One result: heading lines, ``key: value`` lines, and an array (numbers or SymPy expressions).

    ``split`` leading axes of the array are printed as separate blocks named by
    ``label`` (a Jacobian: one block per output entry). ``axes`` names the
    array's axes (index names, or what the rows and columns of a flattened
    matrix hold) and ``title`` names the array as a whole (``dL/dW``), for
    formats that label rows, columns and blocks (Markdown).
    """

    heading: tuple[str, ...]
    latex: tuple[str, ...]
    meta: tuple[tuple[str, str], ...] = ()
    array: Any = None                                        # numpy array or None
    label: Label | None = None
    split: int = 0
    latex_label: Label | None = None
    json: Mapping[str, Any] = field(default_factory=dict)
    is_input: bool = False                                   # an input shown with --show-inputs
    key: str | None = None                                   # its name in an .npz archive
    title: str | None = None
    axes: tuple[str, ...] = ()

    def bare(self) -> bool:
        """A one-line section: consecutive ones print without a blank line between them."""
        return len(self.heading) == 1 and not self.meta and self.array is None


@dataclass(frozen=True)
class Report:
    """The results of a numeric or symbolic command, in order, with the document-level facts for JSON."""

    command: str
    sections: tuple[Section, ...]
    json: Mapping[str, Any]
    symbolic: bool = False

    def entries(self) -> int:
        """How many numbers (or expressions) the arrays hold together."""
        return sum(s.array.size for s in self.sections if s.array is not None)


@dataclass(frozen=True)
class Document:
    """A finished text in the format asked for (a module, a plan, a derivation), printed as it is."""

    command: str
    text: str


Result = Union[Report, Document]
