"""A scenario's drive and judge (rig.chain.scenario) against a scripted consumer: what each
line makes the rig do, the verdict from the checks, and the machinery's failures as ERROR.
The scenarios' own steps run for real in tests/test_scenarios_e2e.py."""

import json
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import RESULT_SCHEMA

from rig.chain.scenario import STORM_DELIVERIES_BOUND, ScenarioDrive, judged, parse_check, push_count, storm_bounded
from rig.chain.verdict import ScenarioCheck, Verdict
from rig.core import spec_json, timeouts
from rig.core.errors import InfraError, SpecError, UserError
from rig.core.kinds import DeviceKind, Outcome, Scenario
from rig.core.progress import Progress
from rig.core.spec import MatrixSpec, RunSpec
from rig.matrix.cells import all_cells, select
from rig.reports.html import write_run_report
from rig.reports.ktap import document, run_case
from rig.reports.result import RunResult

pytestmark = pytest.mark.unit
MP = Scenario.MASKED_PENDING


class Script:
    """The consumer's lines, one per call; None once they run out (it says nothing more)."""

    def __init__(self, *lines):
        self.lines = list(lines)
        self.waited: list[float] = []

    def next_line(self, timeout):
        self.waited.append(timeout)
        return self.lines.pop(0) if self.lines else None


class FakeDevice:
    def __init__(self):
        self.pushes = 0

    def push(self, n=1):
        self.pushes += n

    def counters(self):
        return None


class Marks:
    def __init__(self):
        self.kinds = []

    def begin(self):
        return time.monotonic()

    def mark(self, kind, n=1):
        self.kinds += [kind] * n


def drive(*lines, counts=(7, None)):
    device, marks = FakeDevice(), Marks()
    d = ScenarioDrive(MP, Script(*lines), device, lambda: counts, marks, Progress(quiet=True))
    return d.run(), d, device, marks


def test_pushes_on_push_and_passes_when_every_check_held():
    v, d, device, marks = drive("PUSH", "CHECK quiet-while-masked ok", "CHECK delivered-on-unmask ok",
                                "SERVICED", "NOTE the device was reset", "END")
    assert v.outcome == Outcome.PASS and v.reason == "masked-pending: all 2 steps held"
    assert device.pushes == 1 and marks.kinds == ["push", "serviced"]
    assert [c.step for c in v.checks] == ["quiet-while-masked", "delivered-on-unmask"]
    assert d.notes == ["the device was reset"]
    # One sample per check and one at END, the last with the counts after the scenario.
    assert len(d.samples) == 3 and d.samples[-1].sent == 1 and d.samples[-1].serviced == 1
    assert v.stopped_at == {"device_sent": 1, "serviced": 1, "l1_vfio_intx": 7, "l2_irq": None}


def test_a_lost_interrupt_is_a_stall_and_a_spurious_event_a_fail():
    v, *_ = drive("PUSH", "CHECK delivered-on-unmask lost the line was asserted at the unmask", "END")
    assert v.outcome == Outcome.STALL
    assert v.reason == "masked-pending: delivered-on-unmask: the line was asserted at the unmask"
    v, *_ = drive("CHECK quiet-while-masked spurious an event while INTx was masked",
                  "CHECK flow-after-1 lost no event", "END")
    assert v.outcome == Outcome.FAIL and "quiet-while-masked" in v.reason


def test_a_storm_pushes_its_bytes_at_once_and_a_push_the_rig_does_not_make_is_an_error():
    v, d, device, marks = drive("PUSH 16", "SERVICED", "CHECK all-read ok", "END")
    assert device.pushes == 16 and marks.kinds.count("push") == 16 and d.samples[-1].sent == 16
    assert push_count("") == 1 and push_count("3") == 3
    for bad in ("0", "-1", "x", "65", "1000000"):
        with pytest.raises(InfraError, match="does not make"):
            push_count(bad)


def test_a_storm_is_bounded_by_l0_s_deliveries_per_serviced_interrupt():
    """About 2 per serviced interrupt is the lazy disable (delivered once more, then masked);
    more is a line delivered while disabled; no trace leaves the verdict and says so."""
    ok = Verdict(Outcome.PASS, "storm: all 1 steps held", scenario=Scenario.STORM)
    assert storm_bounded(ok, 1.0, 16).reason.endswith("16 times, 1.0 per serviced interrupt")
    assert storm_bounded(ok, 2.0, 32).outcome == Outcome.PASS
    spew = storm_bounded(ok, STORM_DELIVERIES_BOUND + 0.5, 48)
    assert spew.outcome == Outcome.FAIL and "while vfio had it disabled" in spew.reason
    untraced = storm_bounded(ok, None, None)
    assert untraced.outcome == Outcome.PASS and "not checked" in untraced.notes[-1]
    stall = Verdict(Outcome.STALL, "storm: all-read: no event", scenario=Scenario.STORM)
    assert storm_bounded(stall, 9.0, 9) is stall


def test_a_consumer_that_falls_silent_or_never_ends_is_an_error_not_a_stall():
    v, *_ = drive("PUSH", "CHECK first ok")
    assert v.outcome == Outcome.ERROR and "said nothing" in v.reason and "after step first" in v.reason
    v, *_ = drive("END")
    assert v.outcome == Outcome.ERROR and "without a check" in v.reason


def test_the_drive_waits_no_longer_than_the_scenario_allows():
    script = Script("PUSH")
    d = ScenarioDrive(MP, script, FakeDevice(), lambda: (0, None), Marks(), Progress(quiet=True))
    d.run()
    assert all(0 < w <= timeouts.SCENARIO_LINE_S for w in script.waited)


def test_a_check_the_rig_cannot_read_is_the_machinery_s():
    with pytest.raises(InfraError, match="cannot read"):
        parse_check("CHECK delivered maybe", 1.0)
    with pytest.raises(InfraError):
        parse_check("CHECK", 1.0)
    assert parse_check("CHECK a ok", 2.5) == ScenarioCheck("a", "ok", "", 2.5)


def test_the_verdict_keeps_its_scenario_and_checks_in_json_and_the_flow_stays_as_it_was():
    v = judged(MP, [ScenarioCheck("a", "ok", "", 1.0)], {})
    back = Verdict.from_json(v.to_json())
    assert back == v and v.to_json()["checks"] == [{"step": "a", "result": "ok", "what": "", "t": 1.0}]
    flow = Verdict(Outcome.PASS, "fine")
    assert set(flow.to_json()) == {"verdict", "reason", "stopped_at"}


def test_the_spec_names_and_records_the_scenario():
    s = RunSpec("ppc64", consumer="userspace", scenario="reopen").validate()
    assert s.name.endswith("-userspace-reopen") and RunSpec("ppc64").validate().name.endswith("-l2")
    back = spec_json.from_json(spec_json.to_json(s), {})
    assert back.scenario == Scenario.REOPEN
    assert "--scenario" in spec_json.to_argv(s, {}) and "--scenario" not in spec_json.to_argv(RunSpec("ppc64"), {})
    old = spec_json.to_json(RunSpec("ppc64").validate())
    del old["scenario"]                 # an inputs.json written before scenarios existed
    assert spec_json.from_json(old, {}).scenario == Scenario.FLOW


def test_a_scenario_needs_the_userspace_consumer():
    with pytest.raises(SpecError, match="add --consumer userspace"):
        RunSpec("x86_64", scenario="masked-pending").validate()
    with pytest.raises(SpecError, match="--scenario warp"):
        RunSpec("x86_64", consumer="userspace", scenario="warp").validate()


def test_scenario_cells_run_only_when_asked_and_every_one_has_an_expectation():
    cells = all_cells()
    assert all(c.expectation() for c in cells)
    default = select(cells, MatrixSpec())
    assert all(c.scenario == Scenario.FLOW for c in default)
    every = select(cells, MatrixSpec(scenarios=True))
    assert {c.scenario for c in every} == set(Scenario)
    assert all(c.consumer == "userspace" for c in every if c.scenario not in (Scenario.FLOW, Scenario.L2_REBOOT))
    assert {c.consumer for c in every if c.scenario == Scenario.L2_REBOOT} == {"l2-kvm"}   # l2-tcg: --slow
    named = select(cells, MatrixSpec(cells=("*-masked-pending",), scenarios=True))
    assert named and all(c.scenario == MP for c in named)
    with pytest.raises(UserError, match="run with --scenarios"):
        select(cells, MatrixSpec(cells=("*-masked-pending",)))
    # A flow cell's id is the one it always had.
    assert "ppc64-pseries-xive-unfixed-pci-serial-userspace" in {c.id for c in default}


def test_the_2_3_path_runs_the_scenarios_only_and_masked_pending_passes_there_on_xive():
    cells = all_cells()
    two_3 = [c for c in cells if c.intx_path == "2.3"]
    assert two_3 and {c.scenario for c in two_3} == set(Scenario) - {Scenario.FLOW, Scenario.L2_REBOOT}
    assert {c.consumer for c in two_3} == {"userspace"}
    xive = {(c.machine, c.scenario): c.expectation().verdict for c in two_3 if c.ic == "xive" and c.vfio == "fixed"}
    # The contrast the 2.3 path is there for: vfio re-signals a pending interrupt itself.
    assert xive[("pseries", MP)] == xive[("powernv", MP)] == Outcome.PASS
    non_2_3 = next(c for c in cells if c.machine == "pseries" and c.ic == "xive" and c.vfio == "fixed"
                   and c.scenario == MP and c.intx_path == "non-2.3")
    assert non_2_3.expectation().verdict == Outcome.STALL
    # The flow's matrix is what it was: no 2.3 device in it.
    assert not [c for c in select(cells, MatrixSpec()) if c.intx_path == "2.3"]


RECORDED = Path(__file__).parent / "data" / "result-ppc64-xive-fixed-userspace-config-mask.json"


def test_a_recorded_scenario_result_validates_reads_back_and_shows_its_steps(tmp_path):
    """result.json of a real config-mask run on pseries XIVE with the fix (2026-12-07): the
    schema takes it, the type writes it back unchanged, KTAP has each step as a subtest and
    report.html lists them."""
    recorded = json.loads(RECORDED.read_text())
    jsonschema.validate(recorded, json.loads(RESULT_SCHEMA.read_text()))
    r = RunResult.from_json(recorded)
    assert r.to_json() == recorded
    assert r.verdict.outcome == Outcome.STALL and r.verdict.scenario == "config-mask"
    ktap = "\n".join(document([run_case(r, expected=Outcome.STALL)]))
    assert "not ok 2 delivered-on-enable" in ktap and "ok 1 quiet-while-disabled" in ktap
    assert ktap.splitlines()[-1].startswith("ok 1 ")          # the cell expects this STALL
    html = write_run_report(tmp_path, r).read_text()
    assert "scenario config-mask" in html and "delivered-on-enable" in html and ">lost<" in html


def test_the_result_schema_knows_every_device_and_scenario():
    """result.json's schema names each vocabulary's members: a run of a new one validates."""
    props = json.loads(RESULT_SCHEMA.read_text())["properties"]
    assert set(props["device"]["enum"]) - {None} == {d.value for d in DeviceKind}
    assert set(props["verdict"]["properties"]["scenario"]["enum"]) == {s.value for s in Scenario}
    assert set(props["verdict"]["properties"]["verdict"]["enum"]) == {o.value for o in Outcome}


def test_exclusive_needs_a_device_with_a_twin_and_the_matrix_says_why_not():
    with pytest.raises(SpecError, match="no twin"):
        RunSpec("x86_64", device="legacy", consumer="userspace", scenario="exclusive").validate()
    RunSpec("x86_64", device="pci-serial", consumer="userspace", scenario="exclusive").validate()
    cells = {c.id: c for c in all_cells()}
    assert "no twin" in cells["x86_64-q35-ioapic-fixed-legacy-userspace-exclusive"].unavailable()
    assert cells["ppc64-powernv-xive-fixed-virtio-serial-userspace-exclusive"].unavailable() is None
    chosen = select(list(cells.values()), MatrixSpec(cells=("*-exclusive",), scenarios=True))
    assert chosen and not [c for c in chosen if "legacy" in c.device]


def test_the_twin_sits_on_the_device_s_line_on_every_machine():
    """Each machine names two slots whose INTA meet (the consumer checks L1's IRQs agree)."""
    from rig.core.targets import MACHINES
    for m in MACHINES.values():
        assert len(m.shared_line) == 2 and all(o.startswith("addr=") for o in m.shared_line), m.name


def test_the_consumer_is_told_vfio_s_intx_path_and_a_wrong_answer_is_a_fail():
    from rig.chain.bind import Bound
    from rig.chain.reader import consumer_command
    assert Bound("d", "g", False, True, True).non_2_3 and Bound("d", "g", False, False, False).non_2_3
    assert not Bound("d", "g", False, False, True).non_2_3
    assert "-p 2.3 " in consumer_command("0000:00:10.0", "3", "exclusive", non_2_3=False)
    v = judged(Scenario.EXCLUSIVE, [ScenarioCheck("refused-while-held", "wrong", "vfio let a non-2.3 device share",
                                                  1.0)], {})
    assert v.outcome == Outcome.FAIL


def test_l2_reboot_needs_l2_and_runs_in_nested_cells():
    with pytest.raises(SpecError, match="use --consumer l2"):
        RunSpec("ppc64", consumer="userspace", scenario="l2-reboot").validate()
    assert RunSpec("ppc64", scenario="l2-reboot").validate().name.endswith("-l2-l2-reboot")
    cells = [c for c in all_cells() if c.scenario == Scenario.L2_REBOOT]
    assert cells and all(c.consumer.startswith("l2-") for c in cells)
    assert {c.expectation().verdict for c in cells if c.ic == "xive" and c.vfio == "unfixed"} == {Outcome.STALL}


class FakeFlow:
    def __init__(self, verdict, samples):
        self.verdict, self.samples = verdict, samples

    def run(self):
        return self.verdict


def test_l2_reboot_drives_the_flow_reboots_and_drives_again_on_one_clock():
    from rig.chain.reboot import BEFORE_REBOOT, RebootDrive
    from rig.chain.verdict import Sample
    from rig.core.spec import DriveSpec
    made = []

    def drive(cfg, continued):
        made.append((cfg.pass_after, continued))
        return FakeFlow(Verdict(Outcome.PASS, "fine"), [Sample(1.0, 10, 10, 10, 10)])

    d = RebootDrive(DriveSpec(), drive, lambda: 12.5, Progress(quiet=True))
    v = d.run()
    assert v.outcome == Outcome.PASS and v.scenario == Scenario.L2_REBOOT and "(12 s)" in v.reason
    assert made == [(BEFORE_REBOOT, False), (0, True)]
    assert [c.step for c in v.checks] == ["before-reboot", "reboot", "flow-after-reboot"]
    assert d.samples[1].sent == 20 and d.samples[1].t > d.samples[0].t     # continued, not restarted
    stalled = RebootDrive(DriveSpec(), lambda cfg, c: FakeFlow(Verdict(Outcome.STALL, "stuck"), []),
                          lambda: pytest.fail("no reboot after a stall"), Progress(quiet=True)).run()
    assert stalled.outcome == Outcome.STALL and "before L2's reboot: stuck" in stalled.reason


def test_a_scenario_s_junit_has_a_case_per_step(tmp_path):
    import xml.etree.ElementTree as ET

    from rig.reports.result import write_run_junit
    v = judged(MP, [ScenarioCheck("quiet-while-masked", "ok", "", 1.0),
                    ScenarioCheck("delivered-on-unmask", "lost", "no event", 2.0)], {})
    cases = ET.parse(write_run_junit(tmp_path, "cell", v, 3.0, "see rig.log")).getroot().findall("testcase")
    assert [c.get("name") for c in cases] == ["cell", "cell.quiet-while-masked", "cell.delivered-on-unmask"]
    assert cases[2].find("failure") is not None and cases[1].find("failure") is None
