"""The command line: ``einderiv <command> ...`` (the top layer)."""

from einderiv.cli.app import main

__all__ = ["main"]
