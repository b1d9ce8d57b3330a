"""Entry point: ``python -m benchmarks [--quick] [--only NAME] [--list]`` or ``python benchmarks/run.py``.

Runs the groups registered in ``benchmarks.GROUPS`` (every one, or those named
with ``--only``) and writes each one's report.

The environment of this workplace pins ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` to work around bugs of old OpenBLAS builds. They slow the
current ones down (an older kernel, a wrong cache size), so the runner
re-executes itself once with both unset (``--keep-blas-env`` keeps them) and
records the BLAS kernel that was actually loaded in every result file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):          # python benchmarks/run.py
    sys.path.insert(0, _ROOT)

from benchmarks import GROUPS  # noqa: E402  (after the sys.path fix; imports nothing heavy)

_REEXEC_FLAG = "EINDERIV_BENCH_REMOVED_ENV"
_BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short pass (smaller sizes, fewer repeats; < 2 minutes)")
    p.add_argument("--only", action="append", metavar="NAME", choices=list(GROUPS),
                   help=f"run only this group (repeatable): {', '.join(GROUPS)}")
    p.add_argument("--list", action="store_true", help="print the groups with what each measures, and stop")
    p.add_argument("--out", default=None,
                   help="folder for <group>.md and <group>.png (default: benchmarks/results; with --quick, a "
                        "scratch folder under the system's temporary directory, so committed results stay)")
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="do not re-execute without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    return p


def groups_text() -> str:
    """One line per registered group: its name and what it measures (``--list``)."""
    width = max(map(len, GROUPS))
    return "\n".join(f"{name:<{width}}  {group.description}" for name, group in GROUPS.items())


def _reexec_with_clean_blas_env(argv: list[str]) -> None:
    """Replace this process by one without the OpenBLAS overrides (once; before numpy is imported)."""
    if _REEXEC_FLAG in os.environ or "--keep-blas-env" in argv or "numpy" in sys.modules:
        return
    removed = [k for k in _BLAS_OVERRIDES if k in os.environ]
    if not removed:
        return
    env = {k: v for k, v in os.environ.items() if k not in _BLAS_OVERRIDES}
    env[_REEXEC_FLAG] = " ".join(f"{k}={os.environ[k]}" for k in removed)
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *argv], env)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen groups; returns the exit status (1 if a group failed or a contender disagreed)."""
    from_cli = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.list:
        print(groups_text())
        return 0
    if args.out is None:
        args.out = (os.path.join(tempfile.gettempdir(), "einderiv-benchmarks-quick") if args.quick
                    else os.path.join(_ROOT, "benchmarks", "results"))
    if from_cli:
        _reexec_with_clean_blas_env(argv)
    from benchmarks import load
    from benchmarks.common import Session, write_report

    session = Session(quick=args.quick, out_dir=args.out, plots=not args.no_plots,
                      removed_env=os.environ.get(_REEXEC_FLAG, ""))
    groups = args.only or list(GROUPS)
    session.log(f"groups: {', '.join(groups)}{' (quick)' if args.quick else ''}; results in {args.out}")
    status = 0
    start = time.perf_counter()
    for number, group in enumerate(groups, 1):
        session.group = group
        session.log(f"=== group {number}/{len(groups)}: {group}")
        t0 = time.perf_counter()
        report = load(group).run(session)
        paths = write_report(session, report)
        if report.failures:
            status = 1
        session.log(f"done in {time.perf_counter() - t0:.1f} s -> {', '.join(paths)}")
    session.group = ""
    session.log(f"all done in {time.perf_counter() - start:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
