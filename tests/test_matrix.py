"""The matrix: expectations written once, cells, shards, outputs (no QEMU)."""

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest

from rig.core.errors import UserError
from rig.core.progress import Progress
from rig.core.spec import DriveSpec, MatrixSpec
from rig.matrix import cells as matrix
from rig.matrix import runner, summary

pytestmark = pytest.mark.unit


def test_every_cell_has_exactly_one_expectation_with_a_reason():
    for cell in matrix.all_cells():
        hits = [e for e in matrix.EXPECTED if e.matches(cell)]
        assert len(hits) == 1 and hits[0].reason, cell.id


def test_the_bug_cell_is_the_only_stall_of_the_flow():
    stalls = {(c.arch, c.ic, c.vfio) for c in matrix.all_cells()
              if c.expectation().verdict == "STALL" and c.scenario == "flow"}
    assert stalls == {("ppc64", "xive", "unfixed")}


def test_shards_partition_the_cells_deterministically():
    cells = matrix.select(matrix.all_cells(), MatrixSpec(slow=True))
    shards = [matrix.select(matrix.all_cells(), MatrixSpec(slow=True, shard=(k, 3))) for k in (1, 2, 3)]
    assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in cells)
    assert shards == [matrix.select(matrix.all_cells(), MatrixSpec(slow=True, shard=(k, 3))) for k in (1, 2, 3)]
    with pytest.raises(UserError, match="K/N"):
        MatrixSpec.parse_shard("4/3")
    with pytest.raises(UserError, match="this shard has no cell"):
        matrix.select(matrix.all_cells(), MatrixSpec(shard=(40, 40)))


def test_unavailable_and_slow_cells_are_left_out_and_said_why():
    cells = matrix.select(matrix.all_cells(), MatrixSpec())
    assert not any(c.device == "legacy" and c.arch == "ppc64" for c in cells)
    assert not any(c.consumer == "l2-tcg" for c in cells)
    assert "docs/findings" in matrix.Cell("ppc64", "pseries", "xive", "fixed", "legacy", "l2-kvm").unavailable()


def test_summary_and_junit_report_disagreements(tmp_path):
    cell = matrix.Cell("ppc64", "pseries", "xive", "unfixed", "pci-serial", "userspace")
    runs = [summary.RunOutcome("STALL", 20.0, "/r1", "x"), summary.RunOutcome("PASS", 30.0, "/r2", "y")]
    res = summary.CellSummary(cell, runs)
    assert res.agreement == 0.5 and res.disagreements[0].out == "/r2"
    assert res.to_json()["seconds"] == {"median": 25.0, "min": 20.0, "max": 30.0}
    assert res.to_json()["disagreements"][0]["out"] == "/r2"
    summary.write_matrix_junit(tmp_path / "j.xml", [res])
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert "expected STALL" in summary.table([res]) or "STALL" in summary.table([res])


def test_a_run_whose_l2_was_restarted_is_listed_even_when_it_agrees():
    cell = matrix.Cell("x86_64", "q35", "ioapic", "fixed", "pci-serial", "l2-kvm")
    runs = [summary.RunOutcome("PASS", 20.0, "/r1", "x"), summary.RunOutcome("PASS", 150.0, "/r2", "y", 1)]
    res = summary.CellSummary(cell, runs).to_json()
    assert res["agreement"] == 1 and [r["out"] for r in res["l2_restarted"]] == ["/r2"]


def test_run_args_map_the_cell_onto_rig_run():
    args = matrix.Cell("ppc64", "pseries", "xics", "unfixed", "pci-serial", "l2-tcg").run_args(DriveSpec(60, 5, 100))
    assert args[:2] == ["run", "--arch"] and "--ic" in args and "xics" in args
    assert args[args.index("--l2-accel") + 1] == "tcg"
    x86 = matrix.Cell("x86_64", "q35", "ioapic", "fixed", "legacy", "userspace").run_args(DriveSpec(60, 5, 100))
    assert x86[x86.index("--machine") + 1] == "q35" and x86[x86.index("--ic") + 1] == "ioapic"


def test_parallel_chains_fit_cores_and_memory(monkeypatch):
    from rig.host.capacity import parallel_chains
    monkeypatch.delenv("RIG_JOBS", raising=False)
    gib = 1024 * 1024
    assert parallel_chains(f"MemAvailable: {21 * gib} kB\n", cores=2) == 2
    assert parallel_chains(f"MemAvailable: {4 * gib} kB\n", cores=8) == 1    # memory-bound
    assert parallel_chains("MemAvailable: 10 kB\n", cores=1) == 1            # never zero
    monkeypatch.setenv("RIG_JOBS", "3")
    assert parallel_chains("MemAvailable: 10 kB\n", cores=1) == 3


def test_runs_go_round_by_round_never_more_than_jobs_at_once(tmp_path, monkeypatch):
    """The scheduler alone (run_cell replaced: no QEMU here, and no verdict is made)."""
    import threading
    import time
    cells = matrix.select(matrix.all_cells(), MatrixSpec())[:3]
    started, running, peak, lock = [], [0], [0], threading.Lock()

    def fake_run(cell, out, cache_dir, drive, runs, snapshot, hold_unexpected):
        with lock:
            started.append((cell.id, out.name))
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return summary.RunOutcome(cell.expectation().verdict, 0.05, str(out), "fake")

    monkeypatch.setattr(runner, "run_cell", fake_run)
    results = runner.run_matrix(cells, tmp_path, 2, None, DriveSpec(), Progress(quiet=True), jobs=2)
    assert peak[0] == 2 and len(started) == 6
    assert [o for _, o in started[:3]] == ["run1"] * 3       # every cell's first run first
    assert [r.agreement for r in results] == [1.0] * 3 and results[0].jobs == 2
    assert len(json.loads((tmp_path / "matrix.json").read_text())) == 3


def test_ctrl_c_starts_no_new_run_interrupts_the_running_ones_and_keeps_the_finished(tmp_path):
    """Real child processes stand in for `rig run` (a sleep that reports SIGINT), so the
    signal path is the one a terminal's Ctrl-C takes; no verdict is made."""
    import signal
    import sys
    import threading
    cells = matrix.select(matrix.all_cells(), MatrixSpec())[:4]
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
             "time.sleep(0.2 if sys.argv[1].endswith(sys.argv[2]) else 30)\n")
    quick = f"{cells[0].id}/run1"
    started = []
    lock = threading.Lock()
    # Exactly one Ctrl-C, armed once: the two slots start side by side, and a second
    # timer would send its SIGINT into whichever test the worker runs next.
    # To the main thread, where `rig matrix` waits: a process-directed signal may land on a
    # runner thread, and the main thread would see it only when its wait ends.
    ctrl_c = threading.Timer(1.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    real_start = runner.Runs.start

    def start(self, cmd):
        out = cmd[cmd.index("--out") + 1]
        proc = real_start(self, [sys.executable, "-c", child, out, quick])
        with lock:
            if proc is not None:
                started.append(out)
            if len(started) == 2 and not ctrl_c.is_alive() and not ctrl_c.finished.is_set():
                ctrl_c.start()     # both slots busy: the first run ends soon, then Ctrl-C
        return proc

    original = runner.Runs.start
    runner.Runs.start = start
    # What `rig`'s main() installs: the worker may have been started with SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_matrix(cells, tmp_path, 1, None, DriveSpec(), Progress(quiet=True), jobs=2)
    finally:
        runner.Runs.start = original
        ctrl_c.cancel()
        signal.signal(signal.SIGINT, previous)
    assert len(started) == 3           # the quick one ended, one more started, then no more
    kept = json.loads((tmp_path / "matrix.json").read_text())
    assert [r["id"] for r in kept] == [cells[0].id]   # the interrupted ones are not verdicts
    assert kept[0]["verdicts"] == ["ERROR"]            # (the stand-in wrote no result.json)


def test_a_run_that_does_not_end_after_its_interrupt_is_killed():
    """A child that ignores SIGINT stands in for a run whose cleanup hangs: the matrix
    does not wait for it past its bound."""
    import sys
    runs = runner.Runs()
    proc = runs.start([sys.executable, "-c", "import signal, time\n"
                       "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\n"
                       "time.sleep(60)\n"])
    assert proc is not None and proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"     # SIGINT is ignored from here on
    runs.interrupt()
    runs.wait_or_kill(0.5)
    proc.communicate(timeout=10)
    assert proc.returncode == -9
    assert runs.start(["true"]) is None             # and no new run starts


@pytest.mark.parametrize("snapshot", [True, False])
def test_no_snapshot_reaches_every_run(tmp_path, monkeypatch, snapshot):
    cmds = []
    monkeypatch.setattr(runner.Runs, "start", lambda self, cmd: cmds.append(cmd))   # starts nothing
    cells = matrix.select(matrix.all_cells(), MatrixSpec())[:2]
    runner.run_matrix(cells, tmp_path, 1, None, DriveSpec(), Progress(quiet=True), snapshot=snapshot)
    assert len(cmds) == 2 and all(("--no-snapshot" in c) is (not snapshot) for c in cmds)


def test_cells_are_picked_by_glob_and_a_pattern_matching_nothing_is_bad_input():
    picked = matrix.select(matrix.all_cells(), MatrixSpec(cells=MatrixSpec.parse_cells(
        "ppc64-pseries-xive-*-userspace, x86_64-*-fixed-legacy-*")))
    assert [c.id for c in picked] == ["ppc64-pseries-xive-fixed-pci-serial-userspace",
                                      "ppc64-pseries-xive-unfixed-pci-serial-userspace",
                                      "x86_64-q35-ioapic-fixed-legacy-l2-kvm",
                                      "x86_64-q35-ioapic-fixed-legacy-userspace"]
    with pytest.raises(UserError, match="no runnable cell matches"):
        matrix.select(matrix.all_cells(), MatrixSpec(cells=("ppc64-*-legacy-*",)))   # unavailable


def test_every_cell_id_names_its_machine_and_the_old_ids_still_pick_the_same_cells():
    every = matrix.all_cells()
    assert all(c.id.startswith(f"{c.arch}-{c.machine}-") for c in every)
    assert len({c.id for c in every}) == len({c.legacy_id for c in every}) == len(every)

    def ids(patterns: str) -> list[str]:
        return [c.id for c in matrix.select(every, MatrixSpec(cells=MatrixSpec.parse_cells(patterns)))]
    assert ids("ppc64-xive-unfixed-pci-serial-userspace") == ["ppc64-pseries-xive-unfixed-pci-serial-userspace"]
    assert ids("ppc64-xive-*,x86_64-ioapic-*") == ids("ppc64-pseries-xive-*,x86_64-q35-ioapic-*")
    assert ids("ppc64-powernv-*") == [c.id for c in matrix.select(every, MatrixSpec())
                                      if c.machine == "powernv"]


def test_the_tally_counts_wrong_verdicts_and_errors_apart(tmp_path):
    from rig.matrix.tally import TALLY, tally_line, write_tally
    stall = matrix.Cell("ppc64", "pseries", "xive", "unfixed", "pci-serial", "userspace")
    control = matrix.Cell("x86_64", "q35", "ioapic", "fixed", "pci-serial", "userspace")
    results = [summary.CellSummary(stall, [summary.RunOutcome("STALL", 9.0, "/a1", "x"),
                                         summary.RunOutcome("PASS", 10.0, "/a2", "flowed"),
                                         summary.RunOutcome("ERROR", 5.0, "/a3", "QEMU died")]),
               summary.CellSummary(control, [summary.RunOutcome("PASS", 8.0, "/b1", "ok")] * 3)]
    t = write_tally(tmp_path, results)
    assert (t.runs, t.wrong, t.errors) == (6, 1, 1)
    written = json.loads((tmp_path / TALLY).read_text())
    assert written["cells"][0]["wrong_runs"] == [{"verdict": "PASS", "reason": "flowed", "out": "/a2"}]
    assert written["cells"][0]["error_runs"] == [{"reason": "QEMU died", "out": "/a3"}]
    assert (written["runs"], written["wrong"], written["errors"], written["cells"][0]["median_s"]) == (6, 1, 1, 9.0)
    assert tally_line(t) == "6 runs: 1 wrong verdict(s), 1 ERROR(s)\n  ERROR: QEMU died"


def test_a_run_held_only_when_its_verdict_is_unexpected():
    from rig.core.spec import RunSpec
    spec = RunSpec("ppc64", hold=5, expect="STALL", hold_unexpected=True).validate()
    assert not spec.holds("STALL") and spec.holds("PASS") and spec.holds("ERROR")
    assert RunSpec("ppc64", hold=5).validate().holds("STALL")
    with pytest.raises(UserError, match="--hold-unexpected without --expect"):
        RunSpec("ppc64", hold=5, hold_unexpected=True).validate()


def test_an_a_b_pair_of_trees_runs_every_own_cell_once_per_tree_side_by_side(tmp_path):
    """`rig matrix --kernel-tree A --kernel-tree B`: each cell once per tree, named by the
    tree, and a table with the two trees' verdicts beside each other, the cells where they
    differ marked."""
    labels = matrix.tree_labels([tmp_path / "linux-fixed", tmp_path / "linux unfixed!"])
    assert labels == ("linux_fixed", "linux_unfixed_")
    assert matrix.tree_labels([tmp_path / "a" / "linux", tmp_path / "b" / "linux"]) == ("A", "B")
    one = matrix.all_cells(own={})
    pair = matrix.all_cells(own={}, trees=("A", "B"))
    assert len(pair) == 2 * len(one) and {c.tree for c in pair} == {"A", "B"}
    xive = [c for c in pair if c.machine == "pseries" and c.ic == "xive" and c.device == "pci-serial"
            and c.consumer == "userspace" and c.scenario == "flow"]
    assert sorted(c.id for c in xive) == ["ppc64-pseries-xive-own-A-pci-serial-userspace",
                                          "ppc64-pseries-xive-own-B-pci-serial-userspace"]
    assert {c.without_tree for c in xive} == {"ppc64-pseries-xive-own-pci-serial-userspace"}
    assert matrix.all_cells(own={}, trees=("A",)) == one          # one tree: ids as before
    results = [summary.CellSummary(xive[0], [summary.RunOutcome("PASS", 9.0, "/a", "ok")]),
               summary.CellSummary(xive[1], [summary.RunOutcome("STALL", 9.0, "/b", "stalled")])]
    lines = summary.side_by_side(results if xive[0].tree == "A" else results[::-1], ("A", "B")).splitlines()
    assert lines[1].split() == ["ppc64-pseries-xive-own-pci-serial-userspace", "PASS", "STALL", "DIFFER"]


def test_the_report_page_of_an_a_b_puts_the_trees_side_by_side():
    from rig.reports.html import trees_side_by_side
    cell = matrix.Cell("ppc64", "pseries", "xive", "own", "pci-serial", "userspace")
    runs = {"A": [summary.RunOutcome("PASS", 9.0, "/a", "ok")], "B": [summary.RunOutcome("STALL", 9.0, "/b", "x")]}
    results = [summary.CellSummary(dataclasses.replace(cell, tree=t), r).to_json() for t, r in runs.items()]
    html = "".join(trees_side_by_side(results))
    assert "<th>A</th><th>B</th>" in html and html.count('class="disagree"') == 1
    assert "ppc64-pseries-xive-own-pci-serial-userspace" in html
    assert trees_side_by_side(results[:1]) == []                 # one tree: no such table


def test_the_longest_cells_start_first_and_the_report_keeps_the_table_order(tmp_path, monkeypatch):
    """The seconds of the last matrix (kept in the cache) order the next one's starts; cells
    never timed go first; a record that is not {cell id: seconds} counts for nothing."""
    from rig.core.cache import Cache
    from rig.matrix import durations
    cells = matrix.select(matrix.all_cells(), MatrixSpec())[:4]
    cache = Cache(tmp_path / "cache")
    cache.write_json({cells[1].id: 5.0, cells[2].id: 33.0, cells[3].id: 9.0, "x": "long", "y": True,
                      "z": -1}, *durations.RECORD)
    seconds = durations.read(cache)
    assert set(seconds) == {cells[1].id, cells[2].id, cells[3].id}
    order = durations.longest_first(cells, seconds)
    assert [c.id for c in order] == [cells[0].id, cells[2].id, cells[3].id, cells[1].id]
    started = []

    def fake_run(cell, out, *_):
        started.append(cell.id)
        return summary.RunOutcome(cell.expectation().verdict, 7.0, str(out), "fake")
    monkeypatch.setattr(runner, "run_cell", fake_run)
    results = runner.run_matrix(cells, tmp_path, 1, None, DriveSpec(), Progress(quiet=True), jobs=1,
                                start_order=order)
    assert started == [c.id for c in order] and [r.id for r in results] == [c.id for c in cells]
    durations.record(cache, results)
    assert durations.read(cache) == {c.id: 7.0 for c in cells}
    (cache.root / "matrix" / "seconds.json").write_text("[1, 2]")
    assert durations.read(cache) == {}
