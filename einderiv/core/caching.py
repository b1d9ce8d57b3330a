"""A least-recently-used cache bounded by entries and by an estimate of bytes.

``functools.lru_cache`` counts entries only, but one entry for a program of
ten thousand statements holds a thousand times what one for a short program
does. :func:`bounded_cache` also weighs each entry (by the length of the
program text, a proxy for the size of what is derived from it) and evicts
the least recently used entries while the total is over ``max_weight``; the
newest entry always stays, whatever its weight. Thread-safe; exceptions are
not cached.

Every cache of the package is in one registry: a bounded cache registers itself,
a ``functools.lru_cache`` is registered with :func:`registered`, and any other
with :func:`register`. :func:`clear_caches` and :func:`cache_infos` walk it, so
``einderiv.clear_cache()`` knows no module's private names.

>>> @bounded_cache(max_entries=2, max_weight=10, weigh=len)
... def shout(text):
...     return text.upper()
>>> shout("abcdef"), shout("ghijkl"), shout.cache_info()["size"]
('ABCDEF', 'GHIJKL', 1)
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, ParamSpec, TypeVar

__all__ = ["bounded_cache", "BoundedCache", "text_weight", "MAX_TEXT", "register", "registered", "clear_caches",
           "cache_infos"]

#: Program text, in characters, each cache keeps at most: derivatives and plans take some
#: 300 bytes per character of their program, so about 30 MB a cache (four programs of 1,000
#: statements; thousands of short ones, where the count of entries is the bound).
MAX_TEXT = 100_000

P = ParamSpec("P")
R = TypeVar("R")


#: name → (clear, info) of every cache of the package (modules not yet imported have none to clear)
_REGISTRY: dict[str, tuple[Callable[[], None], Callable[[], dict[str, int]]]] = {}


def register(name: str, clear: Callable[[], None], info: Callable[[], dict[str, int]]) -> None:
    """Add a cache to the registry under ``name`` (a later registration under the same name replaces it)."""
    _REGISTRY[name] = (clear, info)


def registered(fn: functools._lru_cache_wrapper[R]) -> functools._lru_cache_wrapper[R]:
    """Register a ``functools.lru_cache``-wrapped function under its module and name; returns it.

    >>> @registered
    ... @functools.lru_cache(maxsize=8)
    ... def square(x):
    ...     return x * x
    >>> square(3), cache_infos()[f"{__name__}.square"]["currsize"]
    (9, 1)
    """
    register(f"{fn.__module__}.{fn.__qualname__}", fn.cache_clear, lambda: fn.cache_info()._asdict())
    return fn


def clear_caches() -> None:
    """Empty every registered cache."""
    for clear, _ in list(_REGISTRY.values()):
        clear()


def cache_infos() -> dict[str, dict[str, int]]:
    """Statistics of every registered cache, by name."""
    return {name: info() for name, (_, info) in list(_REGISTRY.items())}


def text_weight(program: Any, *_: Any) -> int:
    """The weight of an entry keyed by a program (or its text) first: the text's length."""
    text = program if isinstance(program, str) else getattr(program, "text", "")
    return len(text) if isinstance(text, str) else 0


class BoundedCache(Generic[P, R]):
    """A function wrapped by :func:`bounded_cache`: call it like the function; it also has
    ``max_entries`` and ``max_weight`` (read at each insertion, so they can be changed later),
    ``cache_clear()``, ``cache_info()`` and ``__wrapped__`` like ``lru_cache``'s."""

    def __init__(self, fn: Callable[P, R], max_entries: int, max_weight: int, weigh: Callable[..., int]) -> None:
        self.__wrapped__ = fn
        functools.update_wrapper(self, fn)
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh
        self._entries: OrderedDict[tuple[Hashable, ...], tuple[R, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._weight = self._hits = self._misses = 0

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs:
            raise TypeError(f"{self.__wrapped__.__qualname__}() is cached by its positional arguments only; "
                            f"got keyword arguments {sorted(kwargs)}")
        with self._lock:
            found = self._entries.get(args)
            if found is not None:
                self._entries.move_to_end(args)
                self._hits += 1
                return found[0]
            self._misses += 1
        value = self.__wrapped__(*args, **kwargs)
        weight = self._weigh(*args)
        with self._lock:
            if args not in self._entries:
                self._entries[args] = (value, weight)
                self._weight += weight
                while len(self._entries) > 1 and (len(self._entries) > self.max_entries
                                                  or self._weight > self.max_weight):
                    _, (_, gone) = self._entries.popitem(last=False)
                    self._weight -= gone
        return value

    def cache_clear(self) -> None:
        """Forget every entry and the hit and miss counts."""
        with self._lock:
            self._entries.clear()
            self._weight = self._hits = self._misses = 0

    def cache_info(self) -> dict[str, int]:
        """Hits, misses, entries held (``size``) and their ``weight``, and the two bounds."""
        with self._lock:
            return {"hits": self._hits, "misses": self._misses, "size": len(self._entries),
                    "weight": self._weight, "maxsize": self.max_entries, "max_weight": self.max_weight}


def bounded_cache(max_entries: int, max_weight: int,
                  weigh: Callable[..., int] = text_weight) -> Callable[[Callable[P, R]], BoundedCache[P, R]]:
    """Decorate a function of hashable positional arguments with a bounded LRU cache.

    The bounds are attributes of the wrapper (``max_entries``, ``max_weight``),
    read at each insertion, so they can be changed later. The wrapper has
    ``cache_clear()``, ``cache_info()`` and ``__wrapped__`` like ``lru_cache``'s.
    """
    def decorate(fn: Callable[P, R]) -> BoundedCache[P, R]:
        cache = BoundedCache(fn, max_entries, max_weight, weigh)
        register(f"{fn.__module__}.{fn.__qualname__}", cache.cache_clear, cache.cache_info)
        return cache
    return decorate
