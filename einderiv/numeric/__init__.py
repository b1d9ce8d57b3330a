"""Numbers: planning, cached plans, evaluation, Hessians. The only layer that imports numpy."""
