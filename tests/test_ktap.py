"""KTAP for kernel CI: what the rig writes, read back by an independent reader."""

import json

import pytest
from conftest import ROOT
from ktap_reader import KtapError, parse

from rig.matrix.cells import Cell
from rig.matrix.summary import RunOutcome, write_ktap
from rig.reports.ktap import write_run
from rig.reports.result import RunResult

pytestmark = pytest.mark.unit

RECORDED = ROOT / "tests" / "data" / "result-ppc64-xive-unfixed-userspace.json"


def test_a_stall_is_not_ok_with_the_reason_and_the_interrupt_path(tmp_path):
    r = RunResult.from_json(json.loads(RECORDED.read_text()))
    [test] = parse(write_run(tmp_path, r).read_text())
    assert (test.number, test.name, test.ok, test.directive) == (1, r.name, False, None)
    assert test.diagnostics[0].startswith("STALL: a pushed interrupt was not serviced")
    assert any(d.startswith("interrupt path: the interrupt pushed at") and "P-A" in d for d in test.diagnostics)
    assert any("lacks the INTx fix" in d for d in test.diagnostics)


def test_an_error_carries_the_error_directive_and_its_cause(tmp_path):
    d = json.loads(RECORDED.read_text())
    d["verdict"] = {"verdict": "ERROR", "reason": "l1: QEMU exited (status -9) # oom", "stopped_at": {}}
    [test] = parse(write_run(tmp_path, RunResult.from_json(d)).read_text())
    assert not test.ok and test.directive == "ERROR" and "QEMU exited (status -9)" in test.data


def test_a_pass_is_ok(tmp_path):
    d = json.loads(RECORDED.read_text())
    d["verdict"] = {"verdict": "PASS", "reason": "120 interrupts serviced", "stopped_at": {}}
    [test] = parse(write_run(tmp_path, RunResult.from_json(d)).read_text())
    assert test.ok and test.directive is None


def test_the_matrix_is_one_document_cells_with_their_repeats_as_subtests(tmp_path):
    stall = Cell("ppc64", "pseries", "xive", "unfixed", "pci-serial", "userspace")
    ctrl = Cell("x86_64", "q35", "ioapic", "fixed", "legacy", "l2-kvm")
    runs = {stall.id: [RunOutcome("STALL", 20, "/r/a1", "not serviced", 0, "stopped at L0's XIVE"),
                       RunOutcome("STALL", 21, "/r/a2", "not serviced")],
            ctrl.id: [RunOutcome("PASS", 30, "/r/b1", "100 serviced"),
                      RunOutcome("ERROR", 400, "/r/b2", "L2 did not boot")]}
    path = tmp_path / "results.ktap"
    write_ktap(path, [stall, ctrl], runs)
    cells = parse(path.read_text())
    assert [(c.name, c.ok) for c in cells] == [(stall.id, True), (ctrl.id, False)]
    assert cells[0].diagnostics[0].startswith("expected STALL: lazy disable_irq_nosync()")
    assert [(s.name, s.ok) for s in cells[0].subtests] == [("run1", True), ("run2", True)]
    assert "interrupt path: stopped at L0's XIVE" in cells[0].subtests[0].diagnostics
    error = cells[1].subtests[1]
    assert (error.ok, error.directive, error.data) == (False, "ERROR", "L2 did not boot")


@pytest.mark.parametrize("bad", ["KTAP version 1\n1..2\nok 1 a\n",
                                 "KTAP version 1\n1..1\nok 2 a\n",
                                 "KTAP version 1\n1..1\nok 1 a # ERROR boom\n",
                                 "1..1\nok 1 a\n"])
def test_the_reader_is_strict(bad):
    with pytest.raises(KtapError):
        parse(bad)
