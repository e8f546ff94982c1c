"""The verdict on recorded sample series (the signatures docs/mechanism.md describes)."""

import pytest

from rig.chain.verdict import EXIT_STATUS, Sample, final, judge, unless_paused
from rig.core.kinds import Outcome
from rig.reports.result import write_run_junit
from rig.reports.timeline import write_timeline

pytestmark = pytest.mark.unit
WINDOW, MIN = 5.0, 10


def flowing(seconds: int, rate: int = 25):
    """A healthy chain: every pushed byte serviced, counts at every layer growing."""
    return [Sample(t, rate * t + 1, rate * t, rate * t + 2, rate * t + 1) for t in range(seconds + 1)]


def stalled_after_first(seconds: int):
    """The unfixed XIVE signature: one interrupt through, then nothing moves."""
    return [Sample(0, 1, 0, 0, 0)] + [Sample(t, 2, 1, 1, 1) for t in range(1, seconds + 1)]


def test_flowing_series_passes_and_is_never_stall():
    s = flowing(30)
    for i in range(1, len(s) + 1):
        assert judge(s[:i], WINDOW) is None
    v = final(s, WINDOW, MIN)
    assert v.outcome == Outcome.PASS and v.exit_status == 0


def test_stall_is_decided_as_soon_as_the_window_is_over():
    s = stalled_after_first(60)
    decided = next(i for i in range(1, len(s) + 1) if judge(s[:i], WINDOW))
    assert s[decided - 1].t == 1 + WINDOW  # the first sample where it is certain
    v = judge(s[:decided], WINDOW)
    assert v.outcome == Outcome.STALL and v.exit_status == 1
    assert v.stopped_at["l1_vfio_intx"] == 1 and v.stopped_at["serviced"] == 1


def test_slow_reader_with_moving_counts_is_not_a_stall():
    # The byte is not read yet, but L1 and L2 counts still move: interrupts flow.
    s = [Sample(t, 5, 4, 10 + t, 10 + t) for t in range(0, 12)]
    assert judge(s, WINDOW) is None


def test_no_pending_work_is_not_a_stall():
    s = [Sample(t, 3, 3, 3, 3) for t in range(0, 20)]
    assert judge(s, WINDOW) is None
    assert final(s, WINDOW, MIN).verdict == Outcome.ERROR  # too few to judge, and says so


def test_exit_codes_suit_git_bisect_run():
    assert EXIT_STATUS == {Outcome.PASS: 0, Outcome.STALL: 1, Outcome.FAIL: 1, Outcome.ERROR: 125}


def test_junit_and_timeline(tmp_path):
    s = stalled_after_first(10)
    v = final(s, WINDOW, MIN)
    xml = write_run_junit(tmp_path, "ppc64-xive", v, 12.0, "logs").read_text()
    assert 'failures="1"' in xml and "L1 vfio-intx stopped at 1" in xml
    write_timeline(tmp_path, s, "ppc64-xive: STALL", stall_at=1.0)
    svg = (tmp_path / "timeline.svg").read_text()
    assert "<svg" in svg and "flow stopped" in svg and "L1: vfio-intx count: 1" in svg   # text stays text
    assert "interrupt path" not in svg   # no traced path: no lanes


def test_png_timeline_is_written(tmp_path):
    png = write_timeline(tmp_path, flowing(10), "x86_64: PASS", None)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "timeline.svg").exists()


def test_everything_drawn_is_inside_the_picture(tmp_path):
    """No legend or label cut off at an edge (the hand-drawn canvas cut its legend at the
    right): every text's extent, in the saved (tight) figure, lies within it."""
    from rig.reports.timeline import timeline_figure
    from rig.trace.path import InterruptPath, PathEvent
    path = InterruptPath("xive", events=[PathEvent(0.0, "device", "push"), PathEvent(0.05, "l0_ic", "held")],
                         stopped_layer="l0_ic", pending_from=0.05, explanation="stopped at L0 " * 30)
    fig = timeline_figure(stalled_after_first(10), "ppc64-xive: STALL", 1.0, path)
    fig.canvas.draw()                   # lays the legends out
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    texts = [t for lg in legends for t in lg.get_texts()] + fig.texts + [fig._suptitle] + \
        [t for ax in fig.axes for t in (*ax.texts, ax.title, ax._left_title)] + \
        [t for ax in fig.axes[1:] for t in ax.get_yticklabels()]          # the lanes' names
    texts = [t for t in texts if t.get_text()]
    assert len(texts) > 20
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= tight.x0 * fig.dpi - 1 and box.x1 <= tight.x1 * fig.dpi + 1, t.get_text()
        assert box.y0 >= tight.y0 * fig.dpi - 1 and box.y1 <= tight.y1 * fig.dpi + 1, t.get_text()


def test_nothing_ever_arriving_is_error_not_stall():
    s = [Sample(t, 1, 0, 0, 0) for t in range(0, 10)]
    v = judge(s, WINDOW)
    assert v.outcome == Outcome.ERROR and "ever reached L1" in v.reason and v.exit_status == 125


def test_timeline_with_the_interrupt_path_marks_the_stopped_layer(tmp_path):
    from rig.trace.path import InterruptPath, PathEvent
    events = [PathEvent(0.0, "device", "push"), PathEvent(0.0, "l0_line", "assert"),
              PathEvent(0.0, "l0_ic", "notify"), PathEvent(0.001, "l1_host", "handler"),
              PathEvent(0.03, "consumer", "serviced"), PathEvent(0.05, "device", "push"),
              PathEvent(0.05, "l0_line", "assert"), PathEvent(0.05, "l0_ic", "held", "PQ=10")]
    path = InterruptPath("xive", events=events, stopped_layer="l0_ic", pending_from=0.05,
                         explanation="stopped at L0 QEMU: interrupt controller")
    s = stalled_after_first(10)
    png = write_timeline(tmp_path, s, "ppc64-xive: STALL", 1.0, path)
    svg = (tmp_path / "timeline.svg").read_text()
    assert svg.count("the flow stopped here") == 2          # the whole drive and the zoom
    assert "zoomed on the stop (-0.075 s to 0.175 s)" in svg
    assert "held back by the controller" in svg and "stopped at L0 QEMU" in svg  # legend, explanation
    assert "#d62728" in svg                                  # the held tick's colour
    from PIL import Image
    assert Image.open(png).size[1] > 600


def test_confirm_gives_a_verdict_only_when_every_run_agrees():
    from rig.chain.verdict import confirmed
    assert confirmed([Outcome.STALL] * 3) == (1, "3 of 3 runs STALL")
    assert confirmed([Outcome.PASS, Outcome.PASS]) == (0, "2 of 2 runs PASS")
    status, why = confirmed([Outcome.STALL, Outcome.PASS])        # a flaky kernel, or a flaky rig
    assert status == 125 and "disagree (STALL, PASS)" in why and "skips" in why
    assert confirmed([Outcome.PASS, Outcome.ERROR])[0] == 125
    assert confirmed([])[0] == 125


def test_a_stall_while_a_guest_is_paused_is_an_error_naming_its_state():
    stall = judge(stalled_after_first(10), WINDOW)
    assert stall.verdict == Outcome.STALL
    for state in ("paused", "postmigrate", "inmigrate", "finish-migrate", "suspended"):
        v = unless_paused(stall, {"L1 (L0's QEMU)": "running", "L2 (L1's QEMU)": state})
        assert v.outcome == Outcome.ERROR and v.exit_status == 125
        assert f"L2 (L1's QEMU) is '{state}'" in v.reason and "not a STALL" in v.reason
    assert unless_paused(stall, {"L1 (L0's QEMU)": "running", "L2 (L1's QEMU)": "running"}) is stall


def test_only_a_stall_is_checked_against_the_run_states():
    passed = final(flowing(30), WINDOW, MIN)
    assert unless_paused(passed, {"L1 (L0's QEMU)": "paused"}) is passed


@pytest.mark.parametrize("recorded", ["result-powernv-fixed-pushed-while-masked.json",
                                      "result-pseries-fixed-pushed-while-masked.json"])
def test_a_push_into_xives_model_gap_is_the_rigs_error_not_a_stall(recorded):
    """Recorded STALLs of kernels with the fix: the soak's on PowerNV (the consumer said it had
    read the byte 21 ms before it unmasked) and a consumer made slow to unmask on pseries.
    In both the pushed byte asserted while L1 had the source masked (PQ=01), L1 unmasked it
    after, and QEMU's XIVE never re-sent it: the rig's doing, an ERROR."""
    import json

    from conftest import ROOT

    from rig.chain.verdict import stall_stands
    from rig.reports.result import RunResult
    r = RunResult.from_json(json.loads((ROOT / "tests" / "data" / recorded).read_text()))
    assert r.verdict.outcome == Outcome.STALL
    v = stall_stands(r.verdict, lambda: {"L1 (L0's QEMU)": "running"}, r.interrupt_path)
    assert v.outcome == Outcome.ERROR and "while L1 had the source masked (PQ=01)" in v.reason
    assert "the rig pushed too early" in v.reason


def test_the_bugs_stall_stands():
    """The unfixed XIVE STALL: the push held back at PQ=10 (pending, no EOI): the kernel's."""
    import json

    from conftest import ROOT

    from rig.chain.verdict import stall_stands
    from rig.reports.result import RunResult
    recorded = ROOT / "tests" / "data" / "result-ppc64-xive-unfixed-userspace.json"
    r = RunResult.from_json(json.loads(recorded.read_text()))
    assert stall_stands(r.verdict, lambda: {"L1 (L0's QEMU)": "running"}, r.interrupt_path) == r.verdict


def test_a_source_left_masked_is_a_real_stall():
    """Held at PQ=01 and never unmasked: nobody unmasked it, which is a kernel's (or vfio's) bug."""
    from rig.chain.verdict import unless_pushed_while_masked
    from rig.trace.path import InterruptPath, PathEvent
    stall = judge(stalled_after_first(10), WINDOW)
    events = [PathEvent(1.0, "device", "push"), PathEvent(1.0, "l0_ic", "held", "source not forwarded: PQ=01 (masked)")]
    left_masked = InterruptPath("xive", pending_from=1.0, events=events)
    assert unless_pushed_while_masked(stall, left_masked) is stall
    unmasked = InterruptPath("xive", pending_from=1.0, events=[*events, PathEvent(1.2, "l0_ic", "unmask")])
    assert unless_pushed_while_masked(stall, unmasked).verdict == Outcome.ERROR
