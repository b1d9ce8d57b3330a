"""The cache registry: every cache of the package is cleared and reported through core/caching."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.core import caching
from einderiv.errors import ProgramError


def _size(info: dict[str, int]) -> int:
    return info.get("size", info.get("currsize", 0))


def test_clear_cache_empties_every_registered_cache():
    program = einderiv.parse("h[i] = W[i,j] x[j]; g[i] = tanh(h[i]); L = g[i] g[i]")
    W, x = np.ones((2, 3)), np.ones(3)
    einderiv.grad(program, "W", {"W": W, "x": x})
    einderiv.hessian(program, "x", {"W": W, "x": x})
    program.derivative("W")
    infos = caching.cache_infos()
    for name in ("einderiv.numeric.plans.plans", "einderiv.calculus.program.ancestors",
                 "einderiv.calculus.program._parse_cached", "einderiv.numeric.hessian.gradient_program",
                 "einderiv.numeric.hessian.hessian_program", "einderiv.core.ir._all_names_of"):
        assert _size(infos[name]) > 0, name
    einderiv.clear_cache()
    assert {name: _size(info) for name, info in caching.cache_infos().items() if _size(info)} == {}
    assert einderiv.cache_info() == caching.cache_infos()["einderiv.numeric.plans.plans"]


def test_a_bounded_cache_registers_itself_and_errors_are_not_cached():
    calls = []

    @caching.bounded_cache(max_entries=4, max_weight=100, weigh=lambda *_: 1)
    def checked(x):
        calls.append(x)
        if x < 0:
            raise ProgramError(f"negative: {x}")
        return x

    name = f"{__name__}.{checked.__qualname__}"
    assert checked(2) == checked(2) == 2 and caching.cache_infos()[name]["hits"] == 1
    with pytest.raises(ProgramError, match="negative: -1"):
        checked(-1)
    caching.clear_caches()
    assert caching.cache_infos()[name]["size"] == 0 and calls == [2, -1]


def test_a_bounded_cache_wraps_like_lru_cache_and_takes_positional_arguments_only():
    def square(x: int) -> int:
        """The square of x."""
        return x * x

    cached = caching.bounded_cache(max_entries=2, max_weight=100, weigh=lambda *_: 1)(square)
    assert isinstance(cached, caching.BoundedCache)
    assert (cached.__wrapped__, cached.__name__, cached.__doc__) == (square, "square", "The square of x.")
    assert [cached(k) for k in (1, 2, 3)] == [1, 4, 9] and cached.cache_info()["size"] == 2
    cached.max_entries = 1          # read at the next insertion
    cached(4)
    assert cached.cache_info() == {"hits": 0, "misses": 4, "size": 1, "weight": 1, "maxsize": 1, "max_weight": 100}
    with pytest.raises(TypeError, match="positional arguments only; got keyword arguments \\['x'\\]"):
        cached(x=5)
    cached.cache_clear()
    assert cached.cache_info()["size"] == 0
