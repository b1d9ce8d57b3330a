"""The benchmark runner's housekeeping (no timing): where --quick writes, stale plots."""

from __future__ import annotations

import os
import tempfile

import pytest

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
