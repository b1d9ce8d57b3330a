"""Presentation: LaTeX, matrix forms, explanations, generated code. Imports every layer below."""
