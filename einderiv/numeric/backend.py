"""The array-library seam: which library computes a plan's numbers, and how.

A plan's runners never call numpy by name; they call ``ctx.backend.np``, a
namespace with numpy's signatures, chosen once from the input arrays when the
plan is compiled (the backend is part of the plan's cache key):

============  =====================  ==================  =========================================
library       ``np`` namespace       in place?           free-delta diagonal
============  =====================  ==================  =========================================
numpy         numpy itself           yes (donations)     a strided ``ndarray`` view, ``+=``
cupy          cupy itself            no                  ``as_strided`` view of fresh zeros, ``+=``
torch         :class:`_TorchNumpy`   no                  ``Tensor.as_strided`` of fresh zeros, ``add_``
jax           ``jax.numpy``          no                  ``out.at[diagonal].add(value)``
dask          :class:`_DaskNumpy`    no                  built chunk by chunk (:func:`_dask_diagonal`)
============  =====================  ==================  =========================================

For numpy the namespace *is* the numpy module and every runner is the one
einderiv always had, so the numpy path costs nothing extra. Other libraries
take functional steps (no ``out=``, no donated buffers): jax and dask arrays
are immutable, and a fresh zeroed array is the only thing torch and cupy
write into. Contractions go through opt_einsum with ``backend=`` the library.

The library is recognised by :func:`backend_of` from the arrays, through
`array-api-compat <https://data-apis.org/array-api-compat/>`_, the array API
standard's maintained dispatcher (an optional dependency, installed by the
``torch``, ``jax`` and ``dask`` extras). Its namespaces are what elementwise
functions receive (``xp.tanh(x)``). Every input must come from one library;
Python numbers, lists and 0-d numpy values adopt that library (on the device of
its arrays), but a numpy array of one or more axes beside a torch tensor is a
:class:`BackendError`: einderiv never copies between libraries or devices
behind the caller's back.

>>> import numpy as np
>>> backend_of([np.ones(2), 3.0, [1, 2]]).name
'numpy'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from einderiv.core.functions import FUNCTIONS, Named
from einderiv.errors import BackendError, UnsupportedError
from einderiv.numeric.elementwise import NUMPY_FUNCTIONS

__all__ = ["Backend", "NUMPY", "backend_of", "kind_of", "KINDS", "by_name"]

#: The array libraries einderiv computes with, by the name ``--backend`` and opt_einsum use.
KINDS = ("numpy", "torch", "jax", "cupy", "dask")

_MODULES = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "cupy": "cupy", "cupyx": "cupy", "dask": "dask"}
_EXTRAS = {"torch": "einderiv[torch]", "jax": "einderiv[jax]", "dask": "einderiv[dask]", "cupy": "cupy"}


@dataclass(frozen=True)
class Backend:
    """One array library on one device: what a compiled plan computes with.

    ``np`` has numpy's function signatures (``transpose(x, perm)``,
    ``sum(x, axis=...)``, ``tensordot(x, y, axes)``, ``zeros(shape, dtype)`` with
    numpy dtypes); ``xp`` is the array-API namespace elementwise functions get;
    ``in_place`` says whether runners may write into buffers (numpy only). Plans are cached per
    backend: their cache keys hold each array's library and device (``plans.signature``).
    """

    name: str
    np: Any
    xp: Any
    in_place: bool = False
    device: Any = None
    chunk_bytes: int | None = None            # dask: the memory limit applies per chunk
    scatter: Callable | None = field(default=None, compare=False, repr=False)

    def elementwise(self, name: str) -> Callable:
        """The elementwise function ``name`` (:mod:`einderiv.core.functions`) on this library's arrays:
        its registration's ``array`` with this library's namespace bound (numpy: the faster forms
        of :mod:`einderiv.numeric.elementwise`)."""
        if self.name == "numpy":
            return NUMPY_FUNCTIONS[name]
        array = FUNCTIONS[name].array
        if isinstance(array, Named):
            return getattr(self.xp, array.function)
        return functools.partial(array, self.xp)

    def with_chunks(self, chunk_bytes: int) -> "Backend":
        """This backend with the per-chunk memory limit of a call (dask only; others unchanged)."""
        if self.name != "dask" or self.chunk_bytes == chunk_bytes:
            return self
        return Backend("dask", _DaskNumpy(chunk_bytes), self.xp, False, None, chunk_bytes, self.scatter)

    def owned(self, results: dict, given: Sequence) -> dict:
        """``results`` with any array that may share memory with a given one, or another result, copied."""
        if self.name == "torch":
            return _torch_owned(results, given)
        if self.name == "cupy":
            return _cupy_owned(results, given, self.np)
        return results          # jax and dask arrays are immutable: sharing is harmless

    def require(self, what: str, *kinds: str) -> None:
        """Refuse (:class:`UnsupportedError`) a feature this library lacks."""
        if self.name not in kinds:
            raise UnsupportedError(f"{what} run on {' and '.join(kinds)} arrays only, not on {self.name} arrays; "
                                   f"convert the inputs (for example with .numpy() or np.asarray)")


#: numpy: the module itself, so every runner is exactly the numpy code einderiv always ran.
NUMPY = Backend("numpy", np, np, in_place=True)


def np_dtype(dtype) -> np.dtype:
    """A numpy dtype for any library's dtype (``torch.float32`` → ``float32``)."""
    if isinstance(dtype, np.dtype):
        return dtype
    text = str(dtype).rsplit(".", 1)[-1]          # 'torch.float32' → 'float32'
    if text == "bool":
        return np.dtype(bool)
    try:
        return np.dtype(text)
    except TypeError:
        raise UnsupportedError(f"arrays of dtype {dtype} are not supported; use float32 or float64") from None


def kind_of(value: Any) -> str | None:
    """The library of an array (``'torch'``, ``'jax'``, …), or None for numpy arrays, numbers and lists.

    >>> import numpy as np
    >>> kind_of(np.ones(2)) is None, kind_of(2.0) is None
    (True, True)
    """
    top = type(value).__module__.split(".", 1)[0]
    return _MODULES.get(top)


def _adopts(value: Any) -> bool:
    """Whether a value takes the library of the other inputs: Python numbers and lists, 0-d numpy values."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.ndim(value) == 0
    return True


def backend_of(values: Iterable[Any], prefer: str | None = None) -> Backend:
    """The backend of a call's inputs: numpy unless an input comes from another library.

    ``prefer`` names the library plain values go to when no input is an array of
    another library (the CLI's ``--backend``). Mixing libraries is a
    :class:`BackendError`:

    >>> import numpy as np
    >>> class FakeTensor: pass
    >>> FakeTensor.__module__ = "torch"
    >>> backend_of([np.ones(2), FakeTensor()])      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    einderiv.errors.BackendError: the inputs mix numpy arrays and torch arrays; ...
    """
    kinds: dict[str, Any] = {}
    plain_arrays = False
    for value in values:
        kind = kind_of(value)
        if kind is None:
            plain_arrays = plain_arrays or not _adopts(value)
        else:
            kinds.setdefault(kind, value)
    if len(kinds) > 1:
        raise BackendError(f"the inputs mix {' and '.join(f'{k} arrays' for k in kinds)}; "
                           f"give every input from one array library")
    if not kinds:
        return NUMPY if prefer in (None, "numpy") else by_name(prefer)
    (kind, example), = kinds.items()
    if plain_arrays:
        raise BackendError(f"the inputs mix numpy arrays and {kind} arrays; give every input from one array "
                           f"library (numbers and lists are converted, numpy arrays of one or more axes are not)")
    return by_name(kind, example)


def by_name(kind: str, example: Any = None) -> Backend:
    """The backend of library ``kind`` (on ``example``'s device, else the library's default one)."""
    if kind == "numpy":
        return NUMPY
    if kind not in KINDS:
        raise BackendError(f"unknown array library '{kind}'; choose one of {', '.join(KINDS)}")
    device = device_of(example) if example is not None else None
    key = (kind, str(device))
    backend = _MADE.get(key)
    if backend is None:
        backend = _MADE[key] = _make(kind, device)
    return backend


_MADE: dict[tuple[str, str], Backend] = {}


def device_of(array: Any) -> Any:
    """The device an array lives on, or None where it has none yet (a jax tracer inside ``jax.jit``)."""
    try:
        if kind_of(array) == "jax":
            return next(iter(array.devices()))
        return getattr(array, "device", None)
    except Exception:       # jax's ConcretizationTypeError: jit places the arrays itself
        return None


def _make(kind: str, device: Any) -> Backend:
    try:
        import array_api_compat
        if kind == "torch":
            import torch
            device = torch.device("cpu") if device is None else device
            return Backend("torch", _TorchNumpy(device), array_api_compat.array_namespace(torch.zeros(0)),
                           device=device, scatter=_strided_scatter)
        if kind == "jax":
            import jax
            import jax.numpy as jnp
            return Backend("jax", _JaxNumpy(device), jnp, device=device, scatter=_jax_scatter)
        if kind == "cupy":
            import cupy
            device = cupy.cuda.Device() if device is None else device
            return Backend("cupy", cupy, array_api_compat.array_namespace(cupy.zeros(0)), device=device,
                           scatter=_strided_scatter)
        import dask.array as da
        from einderiv.numeric.planning import DEFAULT_MEMORY_LIMIT
        return Backend("dask", _DaskNumpy(DEFAULT_MEMORY_LIMIT), array_api_compat.array_namespace(da.zeros(0)),
                       chunk_bytes=DEFAULT_MEMORY_LIMIT, scatter=_dask_diagonal)
    except ImportError as error:
        raise BackendError(f"{kind} arrays need {error.name}: pip install '{_EXTRAS[kind]}'") from None


def convert(value: Any, backend: Backend, name: str, role: str):
    """``value`` as an array of ``backend``'s library (ints become float64, as for numpy)."""
    if backend.name == "dask":
        import dask.array as da
        array = value if kind_of(value) == "dask" else da.from_array(np.asarray(value))
    elif backend.name == "torch":
        import torch
        array = value if kind_of(value) == "torch" else torch.as_tensor(np.asarray(value), device=backend.device)
    elif backend.name == "jax":
        array = value if kind_of(value) == "jax" else backend.np.asarray(np.asarray(value))
    else:
        import cupy
        array = value if kind_of(value) == "cupy" else cupy.asarray(np.asarray(value))
    kind = np_dtype(array.dtype).kind
    if kind in "biu":
        return backend.np.astype(array, np.dtype(np.float64))
    if kind == "c":
        raise UnsupportedError(f"{role} '{name}' is complex; einderiv supports real float arrays only")
    return array


# ---------------------------------------------------------------- numpy-style namespaces

class _TorchNumpy:
    """numpy's signatures over torch, on one device (numpy dtypes in, torch dtypes used)."""

    def __init__(self, device):
        import torch
        self.torch = torch
        self.device = device
        for name in ("add", "multiply", "negative", "matmul", "reshape", "square", "reciprocal", "sqrt",
                     "broadcast_to", "maximum", "minimum", "swapaxes"):
            setattr(self, name, getattr(torch, name))

    def dtype(self, dtype):
        return getattr(self.torch, np.dtype(dtype).name)

    def zeros(self, shape, dtype):
        return self.torch.zeros(shape, dtype=self.dtype(dtype), device=self.device)

    def asarray(self, value, dtype=None):
        return self.torch.as_tensor(value, dtype=None if dtype is None else self.dtype(dtype), device=self.device)

    def astype(self, x, dtype):
        return x.to(self.dtype(dtype))

    def transpose(self, x, perm):
        return x.permute(perm)

    def sum(self, x, axis):
        return self.torch.sum(x, dim=axis)

    def tensordot(self, x, y, axes):
        return self.torch.tensordot(x, y, dims=axes)

    def expand_dims(self, x, axes):
        for axis in sorted(axes):
            x = x.unsqueeze(axis)
        return x

    def power(self, x, p):
        return self.torch.pow(x, p)


class _JaxNumpy:
    """``jax.numpy`` with arrays created on the inputs' device (inside ``jax.jit``, where jit places them)."""

    def __init__(self, device):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp, self.device = jax, jnp, device

    def __getattr__(self, name):
        return getattr(self.jnp, name)

    def zeros(self, shape, dtype):
        return self._put(self.jnp.zeros(shape, dtype))

    def asarray(self, value, dtype=None):
        return self._put(self.jnp.asarray(value, dtype))

    def _put(self, array):
        return array if self.device is None else self.jax.device_put(array, self.device)

    def astype(self, x, dtype):
        return x.astype(dtype)


class _DaskNumpy:
    """``dask.array`` with new arrays chunked so that no chunk exceeds ``chunk_bytes``."""

    def __init__(self, chunk_bytes: int):
        import dask.array as da
        self.da, self.chunk_bytes = da, chunk_bytes

    def __getattr__(self, name):
        return getattr(self.da, name)

    def chunks(self, shape, dtype):
        return chunks_within(shape, np.dtype(dtype), self.chunk_bytes)

    def zeros(self, shape, dtype):
        return self.da.zeros(shape, dtype=dtype, chunks=self.chunks(shape, dtype))

    def asarray(self, value, dtype=None):
        return self.da.asarray(value, dtype=dtype)

    def astype(self, x, dtype):
        return x.astype(dtype)


def chunks_within(shape: Sequence[int], dtype: np.dtype, limit: int) -> tuple[tuple[int, ...], ...]:
    """Dask chunks for an array of ``shape`` with at most ``limit`` bytes each (at least one element each):
    whole trailing axes first, as C order lays them out.

    >>> chunks_within((4, 6), np.dtype("float64"), 8 * 6)
    ((1, 1, 1, 1), (6,))
    >>> chunks_within((5, 6), np.dtype("float64"), 8 * 15)
    ((2, 2, 1), (6,))
    """
    elements = max(limit // max(dtype.itemsize, 1), 1)
    blocks = []
    for n in reversed(shape):
        size = max(min(n, elements), 1)
        blocks.append(size)
        elements = max(elements // max(n, 1), 1) if size == n else 1
    return tuple(_split(n, b) for n, b in zip(shape, reversed(blocks)))


def _split(n: int, block: int) -> tuple[int, ...]:
    """``n`` in blocks of ``block`` (the last one shorter); ``(0,)`` for an empty axis."""
    if n == 0:
        return (0,)
    return (block,) * (n // block) + ((n % block,) if n % block else ())


# ---------------------------------------------------------------- free-delta diagonals

def _strides(shape: Sequence[int]) -> list[int]:
    """Element strides of a C-contiguous array."""
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    return strides


def _strided_scatter(xnp, out, groups: list[list[int]], shape: tuple[int, ...], dtype, value):
    """torch and cupy: ``value`` added into the strided diagonal view of ``out`` (fresh, contiguous)."""
    if out is None:
        out = xnp.zeros(shape, dtype)
    strides = _strides(shape)
    view_shape = tuple(shape[g[0]] for g in groups)
    view_strides = tuple(sum(strides[a] for a in g) for g in groups)
    if hasattr(out, "as_strided"):     # torch
        out.as_strided(view_shape, view_strides).add_(xnp.broadcast_to(value, view_shape))
    else:                              # cupy: strides in bytes
        from cupy.lib.stride_tricks import as_strided
        view = as_strided(out, view_shape, tuple(s * out.itemsize for s in view_strides))
        view += value
    return out


def _diagonal_index(groups: list[list[int]], shape: tuple[int, ...]) -> tuple:
    """Integer index arrays selecting the diagonal: axis ``a`` of group ``k`` gets ``arange`` along view axis ``k``."""
    index: list[Any] = [None] * len(shape)
    for k, g in enumerate(groups):
        along = np.arange(shape[g[0]]).reshape([-1 if j == k else 1 for j in range(len(groups))])
        for a in g:
            index[a] = along
    return tuple(index)


def _jax_scatter(xnp, out, groups, shape, dtype, value):
    """jax: ``out.at[diagonal].add(value)`` (functional; XLA makes it in place)."""
    if out is None:
        out = xnp.zeros(shape, dtype)
    view_shape = tuple(shape[g[0]] for g in groups)
    return out.at[_diagonal_index(groups, shape)].add(xnp.broadcast_to(value, view_shape))


def _dask_diagonal(xnp, out, groups, shape, dtype, value):
    """dask: ``out +`` an array zero off the diagonal, built chunk by chunk.

    Each output chunk is its own task: zeros, and where the chunk meets the
    diagonal, the matching slice of ``value`` written into a strided view. No
    task holds more than one chunk of the result.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    dtype = np.dtype(dtype)
    view_shape = tuple(shape[g[0]] for g in groups)
    value = da.broadcast_to(da.asarray(value).astype(dtype), view_shape)
    chunks = xnp.chunks(shape, dtype) if out is None else out.chunks
    starts = [np.cumsum((0,) + c).tolist() for c in chunks]
    name = "einderiv-diagonal-" + tokenize(value, groups, shape, chunks)
    graph: dict = {}
    parts = []
    for block in np.ndindex(*[len(c) for c in chunks]):
        lo = [starts[a][b] for a, b in enumerate(block)]
        hi = [starts[a][b + 1] for a, b in enumerate(block)]
        block_shape = tuple(h - l for l, h in zip(lo, hi))
        span = [(max(lo[a] for a in g), min(hi[a] for a in g)) for g in groups]
        if any(a >= b for a, b in span):
            graph[(name,) + tuple(block)] = (np.zeros, block_shape, dtype)
            continue
        part = value[tuple(slice(a, b) for a, b in span)].rechunk(-1)
        parts.append(part)
        local = [[a - lo[axis] for axis in g] for g, (a, _) in zip(groups, span)]
        graph[(name,) + tuple(block)] = (_diagonal_block, (part.name,) + (0,) * len(groups), block_shape, dtype,
                                 groups, local)
    layer = HighLevelGraph.from_collections(name, graph, dependencies=parts)
    diagonal = da.Array(layer, name, chunks, dtype)
    return diagonal if out is None else out + diagonal


def _diagonal_block(part: np.ndarray, block_shape: tuple[int, ...], dtype, groups, local) -> np.ndarray:
    """One chunk: zeros with ``part`` on the diagonal, which starts at ``local`` within the chunk."""
    block = np.zeros(block_shape, dtype)
    strides = [s // block.itemsize for s in block.strides]
    offset = sum(o * strides[a] for g, offsets in zip(groups, local) for a, o in zip(g, offsets))
    view = np.lib.stride_tricks.as_strided(block.reshape(-1)[offset:], part.shape,
                                           tuple(sum(strides[a] for a in g) * block.itemsize for g in groups))
    view[...] = part
    return block


# ---------------------------------------------------------------- returned arrays owned by the caller

def _torch_owned(results: dict, given: Sequence) -> dict:
    """torch: a result sharing storage with an input or an earlier result is cloned."""
    seen = {_storage(a) for a in given if kind_of(a) == "torch"}
    owned = {}
    for name, value in results.items():
        if kind_of(value) == "torch":
            if _storage(value) in seen:
                value = value.clone()
            seen.add(_storage(value))
        owned[name] = value
    return owned


def _storage(tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def _cupy_owned(results: dict, given: Sequence, cupy) -> dict:
    arrays = [a for a in given if kind_of(a) == "cupy"]
    owned = {}
    for name, value in results.items():
        if kind_of(value) == "cupy":
            if any(cupy.may_share_memory(value, other) for other in arrays):
                value = value.copy()
            arrays.append(value)
        owned[name] = value
    return owned


# ---------------------------------------------------------------- the command line's --backend

def to_library(arrays: Mapping[str, np.ndarray], kind: str, chunk_bytes: int | None = None) -> dict[str, Any]:
    """numpy arrays as arrays of library ``kind`` (dask: chunks of at most ``chunk_bytes``).

    >>> to_library({"x": np.ones(2)}, "numpy")["x"].tolist()
    [1.0, 1.0]
    """
    if kind == "numpy":
        return dict(arrays)
    backend = by_name(kind)
    if kind == "jax" and any(a.dtype == np.float64 for a in arrays.values()):
        import jax
        jax.config.update("jax_enable_x64", True)     # else jax computes float64 inputs in float32
    if kind == "dask":
        limit = chunk_bytes or backend.chunk_bytes or 1
        return {n: backend.np.from_array(a, chunks=chunks_within(a.shape, a.dtype, limit)) for n, a in arrays.items()}
    return {n: convert(a, backend, n, "input") for n, a in arrays.items()}


def to_numpy(value: Any) -> Any:
    """A result of any library as numpy (a dict of results, each one): dask computes, torch and
    cupy copy to the host.

    >>> to_numpy({"g": np.ones(1)})["g"].tolist()
    [1.0]
    """
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    kind = kind_of(value)
    if kind == "torch":
        return value.detach().cpu().numpy()
    if kind == "cupy":
        return value.get()
    if kind == "dask":
        return np.asarray(value.compute())
    return np.asarray(value) if kind == "jax" else value
