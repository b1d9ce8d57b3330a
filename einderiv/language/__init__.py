"""The input language: grammar, parser, lowering to the IR, the printer. Imports core only."""
