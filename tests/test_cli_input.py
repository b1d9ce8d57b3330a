"""Hostile or careless input to the command line: one line on stderr, status 2, no traceback, no hang,
no file half-written.

Most cases run ``main(argv)`` in this process (:func:`run`); one case per issue item also runs the
real ``python -m einderiv`` (:func:`command`), and so do the cases only a real process can show: a
reader that goes away, ``/dev/full``, a file-size limit, a FIFO.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv.cli import app as cli
from einderiv.cli import formats, inputs
from einderiv.cli.app import CommandLineError, main, write_atomically

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """(status, stdout, stderr) of ``main(args)`` in this process, ``stdin`` as standard input."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(args))
    finally:
        sys.stdin = saved
    return status, out.getvalue(), err.getvalue()


def refused(*args: str, stdin: str = "") -> str:
    """The one-line message of a run that must fail cleanly: status 2, nothing on stdout."""
    status, out, err = run(*args, stdin=stdin)
    assert (status, out) == (2, ""), (status, out, err)
    assert err.startswith("einderiv: error: ") and err.count("\n") == 1, err
    return err


def command(*args: str, **options) -> subprocess.CompletedProcess:
    """The real ``python -m einderiv ARGS`` (a second each: only one case per item)."""
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    if "stdout" not in options:
        options["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "einderiv", *args], text=True, encoding="utf-8", cwd=REPO,
                          env=environment, timeout=120, **options)


def assert_refused(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert (result.returncode, result.stdout) == (2, ""), (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("einderiv: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert re.search(pattern, result.stderr), result.stderr


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


# ---------------------------------------------------------------- hessian: every --wrt block


def test_hessian_of_several_names_prints_every_block_mixed_ones_included():
    # L = (x·y)²: d²L/dx dx = 2 y yᵀ, d²L/dx dy = 2 y xᵀ + 2 (x·y) I, and symmetrically for y
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    status, out, err = run("hessian", "s = x[i] y[i]; L = s^2", "--wrt", "x,y", "--input", f"x={x.tolist()}",
                           "--input", f"y={y.tolist()}", "--format", "json")
    assert (status, err) == (0, "")
    blocks = {(r["wrt"], r["wrt2"]): np.array(r["values"]) for r in json.loads(out)["results"]}
    assert list(blocks) == [("x", "x"), ("x", "y"), ("y", "x"), ("y", "y")]
    s = x @ y
    expected = {("x", "x"): 2 * np.outer(y, y), ("x", "y"): 2 * np.outer(y, x) + 2 * s * np.identity(2),
                ("y", "x"): 2 * np.outer(x, y) + 2 * s * np.identity(2), ("y", "y"): 2 * np.outer(x, x)}
    for pair, block in blocks.items():
        np.testing.assert_allclose(block, expected[pair], rtol=1e-12, err_msg=str(pair))


def test_hessian_blocks_with_wrt2_and_in_one_npz(tmp_path):
    archive = tmp_path / "h.npz"
    status, out, err = run("hessian", "L = x[i] y[i]", "--wrt", "x", "--wrt2", "x,y", "--sizes", "i=2",
                           "--format", "npy", "--output", str(archive))
    assert (status, out, err) == (0, "", "")
    with np.load(archive) as saved:
        assert sorted(saved.files) == ["x,x", "x,y"]
        np.testing.assert_array_equal(saved["x,x"], np.zeros((2, 2)))
        np.testing.assert_array_equal(saved["x,y"], [[1.0, 0.0], [0.0, 1.0]])


def test_hessian_refuses_an_unknown_name_among_several():
    assert re.search("'q' is not a tensor of this program", refused("hessian", "L = x[i] y[i]", "--wrt", "x,y,q",
                                                                    "--sizes", "i=2"))


def test_hessian_of_two_names_through_the_real_command():
    result = command("hessian", "L = x[i] y[i]", "--wrt", "x,y", "--sizes", "i=2")
    assert result.returncode == 0 and result.stderr == ""
    assert "d²L/dx[a]dx[b] = 0" in result.stdout and "d²L/dx[a]dy[b] = δ[a,b]" in result.stdout
    assert "d²L/dy[a]dx[b] = δ[a,b]" in result.stdout and "d²L/dy[a]dy[b] = 0" in result.stdout


# ---------------------------------------------------------------- 1. every array checked before it exists


@pytest.mark.parametrize("args, expected", [
    (["eval", "y[i] = x[i]", "--sizes", "i=100000000000"],
     r"the random input 'x' would have shape \(100000000000,\) and take 800,000,000,000 bytes, "
     r"over --max-bytes 67,108,864"),
    (["eval", "y[i] = x[i]", "--sizes", "i=99999999999999999999999"], r"--sizes i: '9+' is too large"),
    (["grad", "L = x[i] x[i]", "--wrt", "x", "--sizes", "i=300000000"], r"random input 'x' .* over --max-bytes"),
    (["eval", "y[i,j] = x[i] z[j]", "--sizes", "i=5000,j=5000"],
     r"the value of 'y' would have shape \(5000, 5000\) .* over --max-bytes"),
    (["hessian", "L = x[i] x[i]", "--wrt", "x", "--sizes", "i=5000"],
     r"the Hessian block d²L/dxdx would have shape \(5000, 5000\)"),
    (["eval", "y[i] = x[i]", "--input", "x=[1,2,3]", "--max-bytes", "16"], r"over --max-bytes 16"),
])
def test_sizes_beyond_max_bytes_are_refused_before_anything_is_allocated(args, expected):
    tracemalloc.start()
    try:
        message = refused(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert re.search(expected, message), message
    assert peak < 16 * 1024 ** 2, f"{peak:,} bytes allocated before the refusal"


def test_the_library_refuses_a_size_beyond_any_axis():
    for size in (10 ** 400, 10 ** 5000, 2 ** 63):
        with pytest.raises(einderiv.ShapeError, match="size of index 'j' is too large"):
            einderiv.evaluate("y = sum[j](1)", {}, sizes={"j": size})


def test_a_huge_size_through_the_real_command():
    assert_refused(command("eval", "y[i] = x[i]", "--sizes", "i=100000000000"),
                   r"random input 'x' would have shape \(100000000000,\).* over --max-bytes")


# ---------------------------------------------------------------- 2. special files


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_are_refused_unopened(tmp_path):
    (tmp_path / "z.csv").symlink_to("/dev/zero")
    (tmp_path / "z.npy").symlink_to("/dev/zero")
    assert "it is a character device, not a regular file" in refused(
        "eval", "y[i] = x[i]", "--input", f"x={tmp_path / 'z.csv'}")
    assert "it is a character device" in refused("eval", "y[i] = x[i]", "--input", f"x={tmp_path / 'z.npy'}")
    assert "cannot read program file '/dev/zero': it is a character device" in refused("eval", "@/dev/zero")
    assert "it is a directory" in refused("eval", f"@{tmp_path}")


def _finishes(call, seconds: float = 60.0):
    """Run ``call`` in a thread: a blocking open of a FIFO would hang it, and fail the test instead."""
    result = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still running after {seconds} s (blocked on a FIFO?)"
    return result[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_input_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "x.csv")
    status, out, err = _finishes(lambda: run("eval", "y[i] = x[i]", "--input", f"x={tmp_path / 'x.csv'}"))
    assert (status, out) == (2, "") and "it is a FIFO (named pipe), not a regular file" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_program_through_the_real_command(tmp_path):
    os.mkfifo(tmp_path / "p.ein")
    assert_refused(command("eval", f"@{tmp_path / 'p.ein'}"), "it is a FIFO")


def test_program_files_and_standard_input_are_read_up_to_a_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "PROGRAM_MAX_BYTES", 64)
    path = tmp_path / "long.ein"
    path.write_text("y[i] = x[i]\n" + "# padding\n" * 10, encoding="utf-8")
    assert "is longer than 64 bytes" in refused("eval", f"@{path}")
    assert "standard input is longer than 64 bytes" in refused("eval", "-", stdin="#" * 65)
    assert run("eval", "-", "--input", "x=[1]", stdin="y[i] = x[i]\n")[0] == 0


def test_a_csv_larger_than_max_bytes_is_refused_unread(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1\n" * 100)
    assert "the file is larger than --max-bytes 64" in refused("eval", "y[i] = x[i]", "--input", f"x={path}",
                                                               "--max-bytes", "64")


# ---------------------------------------------------------------- 3. foreign exceptions


@pytest.mark.parametrize("content, expected", [
    (b"", r"not a \.npy file \(it is empty\)"),
    (bytes(range(256)) * 2, r"does not start with the \.npy signature"),
    (b"PK\x03\x04" + bytes(40), r"an \.npz archive"),
    (npy_header((10 ** 6, 10 ** 6)) + bytes(48),
     r"would have shape \(1000000, 1000000\) and take 8,000,000,000,000 bytes, over --max-bytes"),
    (npy_header((100,)) + bytes(48), r"truncated: its header declares shape \(100,\) \(800 bytes of float64\) "
                                     r"but only 48 bytes of data follow"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': oops}\n", r"its \.npy header is damaged"),
    (npy_header((2,), "|O") + bytes(16), r"holds Python objects \(a pickled array\)"),
])
def test_a_bad_npy_says_what_is_wrong(tmp_path, content, expected):
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    message = refused("eval", "y[i] = x[i]", "--input", f"x={path}")
    assert re.search(expected, message), message
    if "pickled" not in expected:
        assert "pickle" not in message


@pytest.mark.parametrize("args, expected", [
    (["--input", "x=[1e400]"], r"a number in '\[1e400\]' is beyond the range of float64"),
    (["--input", "x=[1" + "0" * 400 + "]"], "is beyond the range of float64"),
    (["--input", "x=[1e39]", "--dtype", "float32"], "beyond the range of float32 .* use --dtype float64"),
    (["--input", "x=" + "[" * 100_000 + "]" * 100_000], "neither a numeric literal|not a number"),
    (["--sizes", "i=²"], r"--sizes: expected NAME=N pairs such as i=2,j=3, got 'i=²'"),
    (["--sizes", "i=2", "--precision", "²"], "argument --precision: expected a non-negative integer"),
    (["--sizes", "i=2", "--max-bytes", "²"], "argument --max-bytes: invalid byte count"),
    (["--sizes", "i=2", "--seed", "-1"], "argument --seed: expected a non-negative integer"),
    (["--sizes", "i=" + "9" * 5000], r"--sizes i: '9+…' is too large"),          # beyond int()'s digit limit
    (["--sizes", "i=2", "--seed", "9" * 5000], r"argument --seed: '9+…' is too large \(5,000 digits\)"),
    (["--sizes", "i=2", "--max-bytes", "9" * 5000], r"argument --max-bytes: '9+…' is too large"),
])
def test_numbers_out_of_range_and_odd_digits_are_refused(args, expected):
    message = refused("eval", "y[i] = x[i]", *args)
    assert re.search(expected, message), message


def test_codegen_shapes_with_odd_digits_are_refused():
    assert "--shapes: expected NAME=AxB" in refused("codegen", "L = x[i] x[i]", "--wrt", "x", "--shapes", "x=²")
    assert "--shapes x: '9" in refused("codegen", "L = x[i] x[i]", "--wrt", "x", "--shapes", "x=" + "9" * 5000)


class _Failing(io.StringIO):
    def __init__(self, error: OSError):
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


def test_a_failing_standard_output_is_one_line_and_a_closed_one_is_quiet(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", _Failing(OSError(errno.ENOSPC, "No space left on device")))
    assert main(["demo"]) == 2
    assert err.getvalue() == "einderiv: error: cannot write to standard output: No space left on device\n"
    monkeypatch.setattr(sys, "stdout", _Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(["eval", "y[i] = x[i]", "--sizes", "i=2"]) == 1
    assert err.getvalue().count("\n") == 1


def test_a_reader_that_goes_away_ends_the_real_command_quietly():
    reader, writer = os.pipe()
    os.close(reader)                       # as `einderiv demo | head -1` once head has exited
    try:
        result = command("demo", stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (1, "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_on_standard_output_through_the_real_command():
    with open("/dev/full", "w") as full:
        result = command("demo", stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 2
    assert result.stderr == "einderiv: error: cannot write to standard output: No space left on device\n"


# ---------------------------------------------------------------- 4. --output is written atomically


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("precious\n")

    def fail(handle):
        handle.write(b"half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CommandLineError, match="No space left on device; '.*result.txt' is unchanged"):
        write_atomically(str(target), fail)
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]      # no temporary file left


def test_a_replaced_file_keeps_its_mode_and_a_link_keeps_pointing_at_it(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert run("eval", "y[i] = x[i]", "--input", "x=[1]", "--format", "json", "--output", str(link))[0] == 0
    assert link.is_symlink() and json.loads(target.read_text())["results"][0]["values"] == [1.0]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize("args", [
    ["eval", "y[i] = x[i]", "--input", "x=[1]", "--format", "npy"],
    ["eval", "y[i] = x[i]", "--input", "x=[1]"],
    ["eval", "y[i] = x[i]", "--input", "x=[1]", "--format", "json"],
    ["grad", "L = x[i] x[i] z[j]", "--wrt", "x,z", "--sizes", "i=2,j=2", "--format", "npy"],
    ["codegen", "L = x[i] x[i]", "--wrt", "x"],
    ["explain", "L = x[i] x[i]", "--wrt", "x"],
])
def test_every_output_goes_through_the_atomic_writer(tmp_path, monkeypatch, args):
    calls = []
    monkeypatch.setattr(cli, "write_atomically", lambda path, write: calls.append(path))
    target = str(tmp_path / ("out.npz" if "x,z" in args else "out"))     # several arrays: an .npz
    assert run(*args, "--output", target)[0] == 0
    assert calls == [target]


@pytest.mark.skipif(not os.path.exists("/dev/null") or sys.platform == "win32", reason="POSIX only")
def test_output_onto_a_device_is_refused():
    assert "it is a character device, not a regular file" in refused("eval", "y = 1", "--output", "/dev/null")


def test_a_file_size_limit_leaves_the_old_file_through_the_real_command(tmp_path):
    resource = pytest.importorskip("resource")
    target = tmp_path / "x.npy"
    target.write_bytes(b"precious")

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = command("eval", "y[i] = x[i]", "--sizes", "i=1000", "--format", "npy", "--output", str(target),
                     preexec_fn=limit_file_size)
    assert_refused(result, r"cannot write '.*x\.npy': .*; '.*x\.npy' is unchanged")
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


# ---------------------------------------------------------------- 5. large results print in summary


def test_a_large_text_result_is_summarised_and_says_so(monkeypatch):
    monkeypatch.setattr(formats, "PRINT_THRESHOLD_BYTES", 4096)
    status, out, err = run("eval", "y[i] = x[i]", "--sizes", "i=5000")
    assert status == 0 and "..." in out and len(out) < 1000
    assert err.startswith("einderiv: note: the result has 5,000 numbers") and "--full" in err
    status, out, err = run("eval", "y[i] = x[i]", "--sizes", "i=5000", "--full")
    assert (status, err) == (0, "") and "..." not in out and len(out.split()) > 5000


def test_a_summarised_jacobian_keeps_the_first_and_last_blocks(monkeypatch):
    monkeypatch.setattr(formats, "PRINT_THRESHOLD_BYTES", 4096)
    status, out, err = run("jacobian", "y[i] = x[i] x[i]", "--wrt", "x", "--sizes", "i=40")
    assert status == 0 and "einderiv: note:" in err
    assert "dy[1]/dx =" in out and "dy[3]/dx =" in out and "dy[40]/dx =" in out and "dy[21]/dx" not in out
    assert "… 34 more blocks …" in out


@pytest.mark.parametrize("options", [["--full"], ["--format", "json"], ["--format", "latex"]])
def test_printed_text_is_checked_against_max_bytes(options):
    message = refused("eval", "y[i] = x[i]", "--sizes", "i=100000", "--max-bytes", "1MiB", *options)
    assert re.search(r"output would take about [0-9,]+ bytes \(100,000 numbers\), over --max-bytes 1,048,576; "
                     r"save the numbers with --format npy --output FILE", message), message


def test_a_large_result_through_the_real_command_prints_in_summary():
    result = command("eval", "y[i] = x[i]", "--sizes", "i=200000")
    assert result.returncode == 0 and len(result.stdout) < 1000 and "..." in result.stdout
    assert result.stderr.startswith("einderiv: note: the result has 200,000 numbers")


# ---------------------------------------------------------------- 6. careless programs and sizes


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "p.ein"
    path.write_text("\ufeffy[i] = 2 x[i]\n", encoding="utf-8")
    status, out, _ = run("eval", f"@{path}", "--input", "x=[1]")
    assert status == 0 and out.endswith("[2.]\n")
    result = command("eval", f"@{path}", "--input", "x=[1]")
    assert result.returncode == 0 and result.stdout.endswith("[2.]\n")


@pytest.mark.parametrize("program", ["", "  \n\n", "# nothing yet\n", "\ufeff", ";"])
def test_an_empty_program_says_so(program):
    assert "the program is empty" in refused("eval", program)
    assert "the program is empty" in refused("diff", "-", "--wrt", "x", stdin=program)


@pytest.mark.parametrize("args, expected", [
    (["eval", "y[i] = x[i]", "--sizes", "q=2"], "--sizes q: the program has no index 'q'; its indices: i"),
    (["eval", "y[row] = x[row]", "--sizes", "rows=2"], "no index 'rows'; did you mean 'row'?"),
    (["codegen", "L = x[i] x[i]", "--wrt", "x", "--sizes", "j=2"], "no index 'j'"),
    (["explain", "L = x[i] x[i]", "--wrt", "x", "--sizes", "j=2"], "no index 'j'"),
    (["eval", "y[i] = x[j]", "--sizes", "i=2", "j=3"],
     "unrecognized arguments: j=3; separate --sizes pairs with commas, as in --sizes i=2,j=3"),
    (["eval", "y[i] = x[j]", "--sizes", "i=2 j=3"], "got 'i=2 j=3'; separate pairs with commas, not spaces"),
])
def test_sizes_typos_are_caught(args, expected):
    assert expected in refused(*args)


# ---------------------------------------------------------------- 7. errors in the command line's terms


@pytest.mark.parametrize("args", [
    ["eval", "A[i,j] = x[i] y[j]; L = A[i,j] A[i,j]", "--sizes", "i=3000,j=3000"],
    ["hessian", "A[i,j] = x[i] y[j]; L = A[i,j] A[i,j] z[k] z[k]", "--wrt", "z", "--sizes", "i=3000,j=3000,k=2"],
])
def test_a_large_intermediate_names_max_bytes_not_the_library(args):
    message = refused(*args)
    assert "over --max-bytes 67,108,864" in message and "raise --max-bytes" in message
    assert not re.search(r"memory_limit|\bhvp\b|\bvjp\b|\bjvp\b", message), message


def test_errors_name_flags_through_the_real_command():
    result = command("hessian", "A[i,j] = x[i] y[j]; L = A[i,j] A[i,j] z[k] z[k]", "--wrt", "z",
                     "--sizes", "i=3000,j=3000,k=2")
    assert_refused(result, r"over --max-bytes 67,108,864; lower --sizes, or raise --max-bytes")


@pytest.mark.parametrize("fmt", ["npy", "text", "json"])
@pytest.mark.parametrize("name", ["nodir/", "nodir/.", "existing", "existing/", "existing/.."])
def test_output_naming_a_directory_is_refused(tmp_path, fmt, name):
    # outside tester: --output /tmp/nodir/ (absent, trailing slash) exited 0 and wrote a file /tmp/nodir
    (tmp_path / "existing").mkdir()
    target = f"{tmp_path}{os.sep}{name}"          # pathlib would drop the trailing slash
    error = refused("grad", "L = x[i]^2", "--wrt", "x", "--input", "x=[1,2]", "--format", fmt, "--output", target)
    assert re.search(r"cannot write '.*': it (names|is) a directory", error), error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]         # nothing written
    assert list((tmp_path / "existing").iterdir()) == []
