"""The benchmark harness (no timing asserts): the group registry, --list, where --quick writes, stale plots."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # the checkout: benchmarks/ is not part of the installed package

benchmarks = pytest.importorskip("benchmarks")
benchmarks_run = pytest.importorskip("benchmarks.run")
common = pytest.importorskip("benchmarks.common")


def test_a_quick_pass_writes_to_a_scratch_folder_not_the_committed_results(monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake_session(**kwargs):
        seen.update(kwargs)
        raise Stop
    monkeypatch.setattr(common, "Session", fake_session)
    with pytest.raises(Stop, match="^$"):
        benchmarks_run.main(["--quick", "--only", "paths", "--keep-blas-env"])
    assert seen["out_dir"] == os.path.join(tempfile.gettempdir(), "einderiv-benchmarks-quick")


def test_a_report_without_a_plot_removes_the_stale_png(tmp_path):
    (tmp_path / "g.png").write_bytes(b"old")
    session = common.Session(quick=True, out_dir=str(tmp_path), plots=False, removed_env="")
    report = common.Report(group="g", title="t", intro="i")
    common.write_report(session, report)
    assert not (tmp_path / "g.png").exists() and (tmp_path / "g.md").exists()


@pytest.mark.parametrize("name", sorted(benchmarks.GROUPS))
def test_every_registered_group_imports_and_has_run(name):
    group = benchmarks.GROUPS[name]
    assert group.module.startswith("benchmarks.") and group.description.strip()
    assert "\n" not in group.description
    module = benchmarks.load(name)
    assert callable(module.run)


def test_list_prints_every_group_with_its_description(capsys):
    assert benchmarks_run.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(benchmarks.GROUPS)
    for line, group in zip(lines, benchmarks.GROUPS.values()):
        assert line.endswith(group.description)


def test_only_refuses_a_group_that_is_not_registered(capsys):
    with pytest.raises(SystemExit, match="2"):
        benchmarks_run.main(["--only", "no-such-group", "--keep-blas-env"])
    assert "invalid choice: 'no-such-group'" in capsys.readouterr().err


def test_listing_the_groups_loads_no_numpy():
    # the runner re-executes itself without the OpenBLAS overrides, which only works before numpy is loaded
    code = ("import sys; from benchmarks import run; run.main(['--list']); "
            "print('numpy' in sys.modules, 'einderiv' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False"


def test_a_quick_group_runs_in_process_and_writes_its_report(monkeypatch, tmp_path):
    core = benchmarks.load("core")
    first = core.cases                     # the cheapest headline only: the tiny two-layer gradient
    monkeypatch.setattr(core, "cases", lambda rng: first(rng)[:1])
    status = benchmarks_run.main(["--quick", "--only", "core", "--no-plots", "--keep-blas-env",
                                  "--out", str(tmp_path)])
    text = (tmp_path / "core.md").read_text(encoding="utf-8")
    assert status == 0
    assert "## Summary" in text and "two-layer network, tiny arrays" in text and "| ok |" in text
    assert "## Failures" not in text


def test_target_ratio_compares_einderiv_with_the_limit():
    def row(name, role, seconds):
        return common.Row(name, role, timing=common.Timing(cold=seconds, min=seconds, median=seconds, repeats=3,
                                                           number=1))
    report = common.Report(group="g", title="t", intro="i")
    report.target_ratio("fast enough", [row("numpy", "limit", 2e-3), row("einderiv", "einderiv", 3e-3)], 1.25)
    report.target_ratio("not run", [row("numpy", "limit", 2e-3), common.Row("einderiv", "einderiv", status="FAILED")],
                        1.25)
    assert report.targets == [("fast enough", "1.50× (3.00 ms vs 2.00 ms)", False), ("not run", "not measured", None)]


def test_wall_times_runs_before_each_call_untimed():
    calls = []
    times = common.wall_times(lambda: calls.append("call"), 3, before=lambda: calls.append("before"))
    assert calls == ["before", "call"] * 3 and len(times) == 3 and min(times) >= 0
