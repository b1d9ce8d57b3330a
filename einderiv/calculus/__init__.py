"""Symbolic derivatives: differentiation rules, programs and their derivatives. Imports language and core."""
