"""Matrix notation for index expressions (see :mod:`einderiv.render.matrix.convert`)."""

from einderiv.render.matrix.convert import (Hadamard, MatrixForm, Node, Ones, Product, Tensor, TermNode, Transpose,
                                            column_vector_notes, describe_matrix_form, fold_definitions,
                                            kronecker_form, kronecker_matrix, to_matrix)

__all__ = ["MatrixForm", "to_matrix", "kronecker_form", "kronecker_matrix", "fold_definitions", "Node",
           "describe_matrix_form", "column_vector_notes", "Hadamard", "Ones", "Product", "Tensor", "TermNode",
           "Transpose"]
