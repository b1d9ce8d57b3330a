"""The bottom layer: the expression IR, the elementwise functions, simplification. No numpy."""
