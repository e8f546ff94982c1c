"""`rig matrix` end to end: two cells (the STALL cell among them), nothing left behind, and
a second matrix run builds and downloads nothing; Ctrl-C stops a matrix and its runs. Both
run one at a time (--jobs 1): under pytest-xdist another worker runs a chain
beside this one already, and two is what 2 cores hold. (Side by side is measured by
bench/parallel.py and the 5-repeat run in docs/matrix.md.)"""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, load_result, nothing_left, qemu_processes_under, run_rig, wait_for_line
from ktap_reader import parse as parse_ktap

pytestmark = pytest.mark.e2e

CELLS = "ppc64-pseries-xive-unfixed-pci-serial-userspace,x86_64-q35-ioapic-fixed-legacy-userspace"


def cache_state(cache) -> dict[str, int]:
    """Every cache entry's manifest and every package lock, with its mtime: what a build or a
    resolution would add or rewrite."""
    files = list(cache.glob("*/*/manifest.json")) + list(cache.glob("locks/*.json"))
    files += list(cache.glob("debs/*/*.deb"))
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in files}


def matrix_run(cache, out, run_base):
    r = run_rig("matrix", "--cells", CELLS, "--jobs", "1", "--pass-after", "30", "--out", str(out),
                cache=cache, env={"RIG_RUN_DIR": str(run_base.parent)}, timeout=1800)
    results = json.loads((out / "matrix.json").read_text())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert {x["id"]: x["verdicts"] for x in results} == {
        "ppc64-pseries-xive-unfixed-pci-serial-userspace": ["STALL"],
        "x86_64-q35-ioapic-fixed-legacy-userspace": ["PASS"]}
    assert all(x["jobs"] == 1 for x in results)
    for run in out.glob("*/run*"):
        load_result(run)                       # every run's result.json against its schema
    ktap = {c.name: c for c in parse_ktap((out / "results.ktap").read_text())}
    assert set(ktap) == {x["id"] for x in results} and all(c.ok for c in ktap.values())
    assert [s.name for s in ktap["ppc64-pseries-xive-unfixed-pci-serial-userspace"].subtests] == ["run1"]
    return results


def test_matrix_leaves_nothing_and_a_second_run_reuses_the_cache(rig_cache_dir, short_tmp, run_base):
    matrix_run(rig_cache_dir, short_tmp / "m1", run_base)
    assert nothing_left(run_base)
    before = cache_state(rig_cache_dir)
    matrix_run(rig_cache_dir, short_tmp / "m2", run_base)
    assert nothing_left(run_base)
    # Nothing built, resolved or downloaded for it: every entry as it was, and the images
    # its runs used there before (tests on the other worker may add entries of their own).
    after = cache_state(rig_cache_dir)
    assert {k: after.get(k) for k in before} == before
    for run in (short_tmp / "m2").glob("*/run*"):
        assert f"images/{load_result(run)['l1']['image']}/manifest.json" in before
    # each run kept its own logs, the STALL's picture among them
    stall = short_tmp / "m2" / "ppc64-pseries-xive-unfixed-pci-serial-userspace" / "run1"
    assert (stall / "timeline.png").stat().st_size > 0 and (stall / "l1-qemu.log").exists()
    junit = (short_tmp / "m2" / "junit.xml").read_text()
    assert 'tests="2"' in junit and 'failures="0"' in junit
    page = (short_tmp / "m2" / "report.html").read_text()      # opened in a browser: test_report_browser
    assert page.count('src="data:image/png;base64,') == 2 and "2 of 2 cells agree" in page


def test_ctrl_c_stops_the_matrix_and_every_run_in_it(rig_cache_dir, short_tmp, run_base):
    """Ctrl-C as a terminal sends it (to the whole process group) while a run is in flight:
    the matrix starts no more, the run cleans up, the finished one is kept. One at a time,
    as the test above (the signal path with two in flight: tests/test_matrix.py)."""
    out = short_tmp / "m"
    # Each run drives its whole 10 s (--pass-after 0): a run that PASSes at its count, in about
    # 5 s, once ended before a loaded machine let the test send its Ctrl-C (two PASSes kept).
    cmd = [sys.executable, "-m", "rig", "--cache-dir", str(rig_cache_dir), "matrix", "--cells",
           "x86_64-q35-ioapic-fixed-*-userspace", "--repeat", "3", "--jobs", "1", "--pass-after", "0",
           "--duration", "10", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "RIG_RUN_DIR": str(run_base.parent)})
    wait_for_line(proc, "run 1: PASS", 600)      # one run finished: it stays
    wait_for_line(proc, "run 1/3", 120)          # and the next one has started
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert qemu_processes_under(run_base) == [] and nothing_left(run_base)
    kept = json.loads((out / "matrix.json").read_text())
    runs = [v for cell in kept for v in cell["verdicts"]]
    assert runs == ["PASS"]                      # the interrupted run is not counted
