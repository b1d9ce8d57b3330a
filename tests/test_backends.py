"""Arrays of other libraries in, the same library out: torch, jax, cupy and dask (numeric/backend.py).

Every check compares against the numpy result of the same call, which the rest of the suite
checks against finite differences and closed forms. Each library's tests are skipped when it
is not installed (the ``torch``, ``jax`` and ``dask`` extras).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import einderiv
from einderiv.errors import BackendError, UnsupportedError
from einderiv.numeric import backend as backends
from helpers import TWO_LAYER

MLP = """\
H[n,h] = relu(sum[d](X[n,d] W1[d,h]) + b1[h])
Z[n,c] = sigmoid(sum[h](H[n,h] W2[h,c])) + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)
"""
WRT = ["W1", "b1", "W2", "b2"]
# the same network a statement per step: numpy's plan writes into dead intermediates here (donations)
STEPS = TWO_LAYER


def _needs(module: str):
    """``module``, or a skip when it or array-api-compat (which einderiv's torch, jax, cupy and dask
    extras bring along) is absent."""
    found = pytest.importorskip(module)
    if module.split(".")[0] in ("torch", "cupy", "dask", "jax"):
        pytest.importorskip("array_api_compat", reason=f"{module} arrays need array-api-compat (the extra brings it)")
    return found


def _inputs(dtype=np.float64) -> dict:
    rng = np.random.default_rng(3)
    arrays = dict(X=rng.standard_normal((6, 3)), W1=rng.standard_normal((3, 5)), b1=rng.standard_normal(5),
                  W2=rng.standard_normal((5, 2)), b2=rng.standard_normal(2), T=rng.standard_normal((6, 2)))
    return {**{k: v.astype(dtype) for k, v in arrays.items()}, "N": 6.0}


def _as(convert, inputs: dict) -> dict:
    """Arrays converted; numbers left as they are (they adopt the arrays' library)."""
    return {k: convert(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "compute"):
        return np.asarray(value.compute())
    return np.asarray(value)


def _close(got, want, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(_numpy(got), want, rtol=rtol, atol=atol)


# every request, as (name, call): the same call on numpy and on another library must agree
def _requests(lib_inputs: dict, vector, numpy_inputs: dict, numpy_vector):
    pairs = []
    for inputs, v in ((lib_inputs, vector), (numpy_inputs, numpy_vector)):
        pairs.append({
            "evaluate": lambda i=inputs: einderiv.evaluate(MLP, i, of="Z"),
            "grad": lambda i=inputs: einderiv.grad(MLP, WRT, i),
            "grad of steps": lambda i=inputs: einderiv.grad(STEPS, WRT, i),
            "jacobian": lambda i=inputs: einderiv.jacobian(MLP, ["W2", "b2"], i, of="Z"),
            "vjp": lambda i=inputs, v=v: einderiv.vjp(MLP, "W1", i, v["Z"], of="Z"),
            "jvp": lambda i=inputs, v=v: einderiv.jvp(MLP, {"W2": v["W2"]}, i, of="Z"),
            "value_and_grad": lambda i=inputs: einderiv.value_and_grad(MLP, "b2", i)[1],
            "hessian": lambda i=inputs: einderiv.hessian(MLP, "b2", i),
            "hvp": lambda i=inputs, v=v: einderiv.hvp(MLP, "W2", i, v["W2"]),
        })
    return pairs


def _check_every_request(convert, is_kind, rtol=1e-10, atol=1e-12, dtype=np.float64, only=None):
    numpy_inputs = _inputs(dtype)
    rng = np.random.default_rng(4)
    numpy_vector = {"Z": rng.standard_normal((6, 2)).astype(dtype), "W2": rng.standard_normal((5, 2)).astype(dtype)}
    theirs, ours = _requests(_as(convert, numpy_inputs), _as(convert, numpy_vector), numpy_inputs, numpy_vector)
    for name in only or theirs:
        got, want = theirs[name](), ours[name]()
        if isinstance(want, dict):
            assert set(got) == set(want), name
            for k in want:
                assert is_kind(got[k]), (name, k, type(got[k]))
                _close(got[k], want[k], rtol, atol)
        else:
            assert is_kind(got), (name, type(got))
            _close(got, want, rtol, atol)


# ---------------------------------------------------------------- choosing the backend

def test_numpy_arrays_numbers_and_lists_choose_numpy():
    assert backends.backend_of([np.ones(2), 2.0, [1, 2], np.float64(3)]) is backends.NUMPY


def _fake(module: str):
    fake = type("FakeArray", (), {})
    fake.__module__ = module
    return fake()


def test_mixing_libraries_is_one_clear_error():
    with pytest.raises(BackendError, match="the inputs mix torch arrays and jax arrays"):
        backends.backend_of([_fake("torch"), _fake("jaxlib.xla_extension")])
    with pytest.raises(BackendError, match="numpy arrays of one or more axes are not"):
        backends.backend_of([_fake("torch"), np.ones(3)])


def test_a_missing_library_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backends, "_MADE", {})
    with pytest.raises(BackendError, match=r"pip install 'cupy'"):
        backends.by_name("cupy")
    with pytest.raises(BackendError, match="unknown array library 'tensorflow'"):
        backends.by_name("tensorflow")


def test_chunks_stay_within_the_limit():
    for shape, limit in (((4, 6), 48), ((10, 10, 10), 800), ((3, 1000), 8), ((7,), 10 ** 9)):
        chunks = backends.chunks_within(shape, np.dtype(np.float64), limit)
        assert all(sum(c) == n for c, n in zip(chunks, shape))
        assert np.prod([max(c) for c in chunks]) * 8 <= max(limit, 8)


# ---------------------------------------------------------------- torch

@pytest.fixture
def torch():
    return _needs("torch")


def test_torch_tensors_in_torch_tensors_out_for_every_request(torch):
    _check_every_request(torch.from_numpy, lambda x: isinstance(x, torch.Tensor))


def test_torch_float32_stays_float32(torch):
    g = einderiv.grad(MLP, "W1", _as(torch.from_numpy, _inputs(np.float32)))
    assert g.dtype == torch.float32
    _close(g, einderiv.grad(MLP, "W1", _inputs(np.float32)), rtol=1e-5, atol=1e-6)


def test_torch_results_never_share_storage_with_inputs(torch):
    x = torch.arange(3.0)
    for result in (einderiv.evaluate("y[i] = x[i]", {"x": x}), einderiv.evaluate("y[i] = x[i]", {"x": x}, of="x"),
                   einderiv.vjp("y[i] = x[i]", "x", {"x": x}, x)):
        assert result.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
        result += 1
    assert x.tolist() == [0.0, 1.0, 2.0]


def test_plans_are_cached_per_backend(torch):
    einderiv.clear_cache()
    numpy_inputs = _inputs()
    einderiv.grad(MLP, "W1", numpy_inputs)
    einderiv.grad(MLP, "W1", _as(torch.from_numpy, numpy_inputs))
    assert einderiv.cache_info()["misses"] == 2       # same shapes and dtypes, another library: another plan
    einderiv.grad(MLP, "W1", numpy_inputs)
    einderiv.grad(MLP, "W1", _as(torch.from_numpy, numpy_inputs))
    assert einderiv.cache_info()["hits"] == 2


def test_a_numpy_array_beside_torch_tensors_is_refused(torch):
    inputs = _as(torch.from_numpy, _inputs())
    inputs["T"] = np.zeros((6, 2))
    with pytest.raises(BackendError, match="the inputs mix numpy arrays and torch arrays"):
        einderiv.grad(MLP, "W1", inputs)
    with pytest.raises(BackendError, match="the inputs mix numpy arrays and torch arrays"):
        einderiv.vjp(MLP, "W1", _inputs(), torch.zeros((6, 2)), of="Z")


def test_lists_and_numbers_adopt_the_torch_inputs(torch):
    got = einderiv.evaluate("y[i] = A[i,j] x[j] + c", {"A": torch.eye(2, dtype=torch.float64), "x": [1, 2], "c": 3})
    assert isinstance(got, torch.Tensor) and got.tolist() == [4.0, 5.0]


def test_matrix_functions_refuse_other_libraries_clearly(torch):
    with pytest.raises(UnsupportedError, match="run on numpy arrays only, not on torch arrays"):
        einderiv.evaluate("L = logdet(A)", {"A": torch.eye(2, dtype=torch.float64)})


# ---------------------------------------------------------------- jax

@pytest.fixture
def jnp():
    _needs("jax")
    import jax.numpy
    return jax.numpy


def test_jax_arrays_in_jax_arrays_out_and_inside_jit(jnp):
    import jax
    inputs, vector = _inputs(np.float32), np.random.default_rng(4).standard_normal((5, 2)).astype(np.float32)

    def requests(i, v):
        return (einderiv.grad(MLP, WRT, i), einderiv.grad(STEPS, WRT, i), einderiv.jacobian(MLP, "b2", i, of="Z"),
                einderiv.vjp(MLP, "W1", i, i["T"], of="Z"), einderiv.hvp(MLP, "W2", i, v))
    # without jax_enable_x64, jax computes in float32: compare float32 against float32. One jit, one
    # compilation (eager jax compiles each operation on first use: seconds)
    inputs["N"] = np.asarray(6.0, np.float32)         # traced too: every step must stay in jax
    got = jax.jit(requests)(_as(jnp.asarray, inputs), jnp.asarray(vector))
    want = requests(inputs, vector)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert isinstance(g, jax.Array)
        _close(g, w, rtol=2e-4, atol=2e-5)


def test_jax_results_stay_on_the_inputs_device(jnp):
    x = jnp.arange(3.0)
    y = einderiv.jacobian("y[i] = tanh(x[i])", "x", {"x": x})
    assert y.devices() == x.devices()
    _close(y, np.diag(1 - np.tanh(np.arange(3.0)) ** 2), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- cupy (a GPU is needed)

def test_cupy_arrays_in_cupy_arrays_out():
    cupy = _needs("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no GPU")
    except Exception:
        pytest.skip("no GPU")
    _check_every_request(cupy.asarray, lambda x: isinstance(x, cupy.ndarray))


# ---------------------------------------------------------------- dask

@pytest.fixture
def da():
    return _needs("dask.array")


pytestmark = pytest.mark.filterwarnings("ignore:Increasing number of chunks")


def _dask(chunks=2):
    da = _needs("dask.array")
    return lambda a: da.from_array(a, chunks=chunks)


def test_dask_arrays_in_dask_arrays_out_for_every_request(da):
    _check_every_request(_dask(), lambda x: isinstance(x, da.Array))


def test_dask_results_are_lazy(da):
    import dask
    from dask.callbacks import Callback

    class Count(Callback):
        tasks = 0

        def _pretask(self, key, dask, state):
            Count.tasks += 1

    with Count():
        g = einderiv.grad(MLP, WRT, _as(_dask(), _inputs()))
        assert Count.tasks == 0
        dask.compute(g)
        assert Count.tasks > 0


def test_a_dask_jacobian_over_the_memory_limit_comes_back_chunked_within_it(da):
    x = np.linspace(-1.0, 1.0, 40)
    A = np.random.default_rng(5).standard_normal((40, 40))
    program = "y[i] = tanh(x[i]) + sum[j](A[i,j] x[j])^2"
    want = einderiv.jacobian(program, "x", {"x": x, "A": A})
    limit = 800                                  # bytes: 100 float64 entries, the Jacobian holds 1,600
    with pytest.raises(einderiv.MemoryLimitError, match="over the memory limit"):
        einderiv.jacobian(program, "x", {"x": x, "A": A}, memory_limit=limit)
    J = einderiv.jacobian(program, "x", {"x": da.from_array(x, chunks=10), "A": da.from_array(A, chunks=10)},
                          memory_limit=limit)
    assert isinstance(J, da.Array) and J.shape == (40, 40)
    assert np.prod([max(c) for c in J.chunks]) * 8 <= limit
    _close(J, want)
    _close(J[7:9, 30:], want[7:9, 30:])          # a slice computes only the chunks it meets


def test_free_deltas_are_written_chunk_by_chunk(da):
    W, X = np.random.default_rng(6).standard_normal((2, 6, 5))
    want = einderiv.jacobian("F[i,k] = W[i,j] X[j,k]", "W", {"W": W, "X": X.T})
    J = einderiv.jacobian("F[i,k] = W[i,j] X[j,k]", "W", {"W": da.from_array(W, chunks=3), "X": da.from_array(X.T, chunks=2)},
                          memory_limit=8 * 7)
    assert np.prod([max(c) for c in J.chunks]) * 8 <= 8 * 7
    _close(J, want)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_dask_gradient_and_jacobian_on_a_two_process_cluster(da):
    distributed = _needs("dask.distributed")
    inputs = _inputs()
    want_grad = einderiv.grad(MLP, WRT, inputs)
    want_jacobian = einderiv.jacobian(MLP, "W1", inputs, of="Z")
    lazy = _as(_dask(3), inputs)
    import dask
    slow_start = {"distributed.comm.timeouts.connect": "120s"}         # two worker processes on a busy machine
    with dask.config.set(slow_start), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                     silence_logs=40, timeout=120) as cluster, \
            distributed.Client(cluster, timeout=120) as client:
        client.wait_for_workers(2, timeout=120)
        grads = einderiv.grad(MLP, WRT, lazy)
        jacobian = einderiv.jacobian(MLP, "W1", lazy, of="Z", memory_limit=8 * 30)
        got_grad, got_jacobian = client.compute([grads, jacobian], sync=True)
        assert len(client.nthreads()) == 2        # asks the scheduler now; scheduler_info() is a cached snapshot
    for k in WRT:
        np.testing.assert_allclose(got_grad[k], want_grad[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_jacobian, want_jacobian, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- the command line

@pytest.mark.parametrize("library", ["torch", "dask"])
@pytest.mark.parametrize("argv", [
    ["jacobian", "y[i] = tanh(sum[j](A[i,j] x[j]))", "--wrt", "x,A", "--sizes", "i=2,j=3"],
    ["grad", "L = sum[i](tanh(sum[j](A[i,j] x[j]))^2)", "--wrt", "x", "--sizes", "i=2,j=3"],
    ["hessian", "L = x[i] x[i] c", "--wrt", "x", "--sizes", "i=3"],
    ["eval", "y[i] = exp(x[i])", "--sizes", "i=3", "--format", "json"],
    ["jacobian", "y[i] = tanh(x[i])", "--wrt", "x", "--sizes", "i=2", "--upstream", "G=[1,2]"],
])
def test_the_command_line_backend_option_prints_what_numpy_prints(capsys, library, argv):
    _needs("dask.array" if library == "dask" else library)
    from einderiv.cli import main
    assert main(argv) == 0
    want = capsys.readouterr().out
    assert main([*argv, "--backend", library]) == 0
    assert capsys.readouterr().out == want


def test_the_command_line_refuses_an_unknown_backend(capsys):
    from einderiv.cli import main
    assert main(["eval", "y[i] = x[i]", "--sizes", "i=2", "--backend", "tensorflow"]) == 2
    assert "--backend: invalid choice: 'tensorflow'" in capsys.readouterr().err


@pytest.mark.parametrize("library", ["torch", "jax", "dask"])
def test_symmetric_inputs_stay_in_their_library(library):
    module = _needs("dask.array" if library == "dask" else library)
    convert = {"torch": lambda a: module.from_numpy(a), "jax": lambda a: module.numpy.asarray(a),
               "dask": lambda a: module.from_array(a, chunks=1)}[library]
    S = np.array([[2.0, 1.0], [1.0, 3.0]], dtype=np.float32)
    x = np.array([1.0, -2.0], dtype=np.float32)
    program = "L = x[i] S[i,j] x[j] + S[i,i] x[i]"
    want = einderiv.grad(program, "S", {"S": S, "x": x}, symmetric=["S"])
    got = einderiv.grad(program, "S", {"S": convert(S), "x": convert(x)}, symmetric=["S"])
    assert backends.kind_of(got) == library
    _close(got, want, rtol=1e-6)
    with pytest.raises(einderiv.ShapeError, match="must be a square matrix"):
        einderiv.grad("L = x[i] S[i,j] x[j]", "x", {"S": convert(np.ones((2, 3), np.float32)), "x": convert(x)},
                      symmetric=["S"])


def test_the_command_line_writes_a_dask_jacobian_to_zarr_chunk_by_chunk(tmp_path, capsys):
    _needs("dask.array")
    zarr = pytest.importorskip("zarr")
    from einderiv.cli import main
    store = str(tmp_path / "J.zarr")
    argv = ["jacobian", "y[i] = tanh(x[i]) + x[j] x[j]", "--wrt", "x", "--sizes", "i=300", "--max-bytes", "64KiB"]
    assert main([*argv, "--backend", "dask", "--zarr", store]) == 0
    assert "dy/dx: shape (300, 300) in" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal(300)        # the CLI's random input, seed 0
    want = np.diag(1 - np.tanh(x) ** 2) + 2 * x[None, :]
    J = zarr.open(store, mode="r")["x"]
    assert np.prod(J.chunks) * 8 <= 64 * 1024              # 720,000 bytes in chunks within --max-bytes
    np.testing.assert_allclose(J[...], want, rtol=1e-12)
    assert main([*argv, "--zarr", store]) == 2
    assert "--zarr writes tensor-layout Jacobians computed with --backend dask" in capsys.readouterr().err


def test_a_sliced_product_on_torch_gives_numpys_numbers(torch):
    import itertools
    bonds = {frozenset(p): f"e{p[0]}{p[1]}" for p in itertools.combinations(range(5), 2)}
    factors = [f"T{k}[{','.join(bonds[frozenset((k, m))] for m in range(5) if m != k)}]" for k in range(5)]
    program = "L = " + " ".join(factors)        # the complete graph K5: every order is sliced under 648 bytes
    rng = np.random.default_rng(7)
    inputs = {f"T{k}": rng.uniform(0.5, 1.0, (3, 3, 3, 3)) for k in range(5)}
    want = einderiv.grad(program, ["T0", "T3"], inputs, memory_limit=648)
    got = einderiv.grad(program, ["T0", "T3"], _as(torch.from_numpy, inputs), memory_limit=648)
    for k in want:
        assert isinstance(got[k], torch.Tensor)
        _close(got[k], want[k])
