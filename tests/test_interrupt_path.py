"""The interrupt-path timeline's parsers and reading, on trace lines recorded from real runs
(tests/data/qemu-trace-*.log: L0 QEMU 11.1.3 with -msg timestamp=on; l1-ftrace.txt: Debian
6.12 in L1)."""

from pathlib import Path

import pytest

from rig.trace import l1_ftrace as l1_trace
from rig.trace import proc_interrupts as interrupts
from rig.trace.l0_ic import (
    IC_TRACES,
    SourcePQ,
    StartState,
    device_path_events,
    parse_log,
    vfio_user_path_events,
)
from rig.trace.path import PathEvent, explain, lane_summary, stopped_layer, trimmed

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"
LISN = 0x1204


def recorded(name: str):
    lines = parse_log((DATA / name).read_text(), 0.0)
    return lines, lines[0][0]


def kinds(events, lane=None):
    return [e.kind for e in events if lane is None or e.lane == lane]


def test_log_lines_carry_wall_clock_times_and_skip_the_rest():
    text = ("qemu-system-ppc64 -M pseries\n\n"
            "2026-11-25T04:01:09.589139Z spapr_xive_set_irq lisn=0x1204 val=1\n"
            "2026-11-25T04:01:10.589139Z xive_presenter_notify found NVT 0x0/0x400 ring=0x10\n")
    lines = parse_log(text, 0.0)
    assert [n for _, n, _ in lines] == ["spapr_xive_set_irq", "xive_presenter_notify"]
    assert lines[1][0] - lines[0][0] == pytest.approx(1.0)
    assert parse_log(text, lines[1][0]) == lines[1:]


def test_unfixed_xive_forwards_the_first_assertion_and_holds_the_next_with_p_set():
    lines, t0 = recorded("qemu-trace-xive-unfixed.log")
    ev = IC_TRACES["spapr-xive"].path_events(lines, LISN, t0)
    assert kinds(ev) == ["assert", "notify", "deassert", "assert", "held"]
    held = ev[-1]
    assert held.lane == "l0_ic" and "PQ=10 (pending, no EOI yet)" in held.detail
    assert not [k for k in kinds(ev) if k in ("eoi", "unmask", "mask")]   # nothing reset P


def test_a_restored_chain_starts_from_the_pq_bits_info_pic_showed_when_the_trace_began():
    """A chain restored from a snapshot: the unfixed cell's one interrupt came before the
    snapshot, so the trace never sees P set; `info pic` at arm showed "LSI P-" (recorded,
    tests/data): every assertion after is held with PQ=10, pending since before the trace."""
    lines, t0 = recorded("qemu-trace-xive-restored.log")
    start = StartState((DATA / "info-pic-xive-restored-start.txt").read_text(), -0.81)
    ev = IC_TRACES["spapr-xive"].path_events(lines, LISN, t0, start)
    assert kinds(ev, "l0_ic") == ["held"] * 4
    assert all("PQ=10 (pending, no EOI yet) since before the trace began (`info pic` at t=-0.81 s)" in e.detail
               for e in ev if e.lane == "l0_ic")
    unknown = IC_TRACES["spapr-xive"].path_events(lines, LISN, t0)   # what it said without the start
    assert {e.detail for e in unknown if e.lane == "l0_ic"} == {"source not forwarded: PQ unknown"}


def test_start_state_pq_bits_are_read_from_info_pic_and_an_eoi_resets_them():
    assert SourcePQ(StartState("  00001204 LSI P-A   00000013", -1.0)).pq == 0b10
    assert SourcePQ(StartState("  00001204 LSI PQ    00000013", -1.0)).pq == 0b11
    ready = SourcePQ(StartState("  00001204 LSI --    00000013", -1.0))
    assert ready.pq == 0b00 and "since" not in ready.held(0.0).detail
    pending = SourcePQ(StartState("  00001204 LSI P-    00000013", -1.0))
    pending.esb(0.5, "xive_source_esb_read", "@0x26030000 IRQ 0x1204 val=0x2", LISN)   # an EOI load
    assert pending.pq == 0b00 and not pending.inherited
    assert SourcePQ(StartState("", -1.0)).pq is None


def test_fixed_xive_masks_and_unmasks_the_source_each_time():
    lines, t0 = recorded("qemu-trace-xive-fixed.log")
    ev = IC_TRACES["spapr-xive"].path_events(lines, LISN, t0)
    assert kinds(ev) == ["assert", "notify", "mask", "deassert", "unmask", "assert", "notify"]
    assert all(e.t >= 0 for e in ev)


PNV_SOURCE = 0xfdff8     # L1's hwirq of the device's LSI on powernv9's second PHB4 (local 0x7f8)
INFO_PIC_PNV = (DATA / "info-pic-powernv.txt").read_text()


def pnv_xive():
    trace = IC_TRACES["pnv-xive"]
    trace.locate(INFO_PIC_PNV, PNV_SOURCE)
    return trace


def test_powernv_numbers_the_source_within_its_phb_block_which_info_pic_gives():
    # PHB 0's block is 4096 interrupts, PHB 1's 2048: the local number comes from info pic
    trace = pnv_xive()
    assert trace.local[PNV_SOURCE] == 0x7f8
    assert trace.state(INFO_PIC_PNV, PNV_SOURCE).split("\n") == [
        "  000fdff8   end:00/000f data:00000025", "  000007f8 LSI --"]


def test_powernv_unfixed_forwards_one_assertion_then_holds_the_next_pending():
    lines, t0 = recorded("qemu-trace-pnv-xive-unfixed.log")
    ev = pnv_xive().path_events(lines, PNV_SOURCE, t0) + device_path_events(lines, t0)
    ic = [e for e in ev if e.lane == "l0_ic"]
    assert kinds(ic) == ["unmask", "notify", "held"]      # the consumer's enable, one interrupt, then none
    assert "PQ=10 (pending, no EOI yet)" in ic[-1].detail
    assert kinds(ev, "l0_line") == ["assert", "assert"]


def test_powernv_fixed_masks_and_unmasks_the_phb4_source_through_its_esb_page():
    lines, t0 = recorded("qemu-trace-pnv-xive-fixed.log")
    ic = pnv_xive().path_events(lines, PNV_SOURCE, t0)
    assert kinds(ic)[:4] == ["unmask", "notify", "mask", "unmask"]
    assert "held" not in kinds(ic) and kinds(ic).count("notify") == 4
    # the NIC's MSIs on the other PHB (global 0xfe001, local 1) are not the device's: asked
    # for that source, none of the device's notifies or ESB accesses are taken for it
    assert {e.kind for e in pnv_xive().path_events(lines, 0xfe001, t0)} <= {"held"}


def test_other_sources_are_left_out():
    lines, t0 = recorded("qemu-trace-xive-fixed.log")
    assert IC_TRACES["spapr-xive"].path_events(lines, 0x1301, t0)[0].kind == "assert"
    assert IC_TRACES["spapr-xive"].path_events(lines, 0x9999, t0) == []


def test_xics_redelivers_on_eoi_while_the_line_is_high():
    lines, t0 = recorded("qemu-trace-xics.log")
    ev = IC_TRACES["xics"].path_events(lines, LISN, t0)
    assert kinds(ev, "l0_ic")[:6] == ["deliver", "accept", "eoi", "deliver", "accept", "mask"]
    assert kinds(ev, "l0_line") == ["line", "line"]
    assert "unmask" in kinds(ev) and "reject" not in kinds(ev)   # the reject was 0x1302's


def test_ioapic_with_the_vfio_user_device():
    lines, t0 = recorded("qemu-trace-ioapic-legacy.log")
    ev = IC_TRACES["ioapic"].path_events(lines, 22, t0)
    assert kinds(ev) == ["assert", "deliver", "eoi", "deliver", "eoi", "deassert", "assert", "deassert"]
    dev = vfio_user_path_events(lines, t0)
    assert kinds(dev) == ["signal", "unmask-device", "signal", "unmask-device"]


INFO_PIC_XIVE = """\
  LISN         PQ    EISN     CPU/PRIO EQ
  00001203 LSI -Q  M 00000000
  00001204 LSI P-A   00000013   0/6    232/16384 @29e0000 ^1 [ 80000018 ]
  00001205 LSI -Q  M 00000000
"""


def test_info_pic_line_of_the_source():
    assert IC_TRACES["spapr-xive"].state(INFO_PIC_XIVE, LISN).split()[:3] == ["00001204", "LSI", "P-A"]
    xics = "ICS 1000..1fff\n  1203 LSI ff 00\n  1204 LSI 05 00\n"
    assert IC_TRACES["xics"].state(xics, LISN).strip() == "1204 LSI 05 00"
    ioapic = ("ioapic0: ver=0x20 id=0x00 sel=0x3e (redir[23])\n"
              "  pin 2  0x0000000000010000 dest=0 vec=0   active-hi edge  masked fixed  physical\n"
              "  pin 22 0x0021000000008016 dest=0 vec=22  active-hi level        fixed  physical\n"
              "  IRR        22\n  Remote IRR (none)\n")
    got = IC_TRACES["ioapic"].state(ioapic, 22).splitlines()
    assert got[0].split()[:2] == ["pin", "22"] and got[1].split() == ["IRR", "22"] and len(got) == 3


def test_hwirq_is_the_l0_source_number():
    xive = interrupts.parse((DATA / "interrupts-l1-ppc64-xive.txt").read_text())
    x86 = interrupts.parse((DATA / "interrupts-l1-x86_64.txt").read_text())
    assert interrupts.find(xive, "vfio-intx").hwirq == 4612      # the LISN
    assert interrupts.find(x86, "vfio-intx").hwirq == 22         # the IO-APIC pin
    assert interrupts.IrqLine("NMI", 0, "Non-maskable", "interrupts").hwirq is None


FTRACE = """\
# tracer: nop
#
 sshd-190     [000] .....    12.000000: tracing_mark_write: rig-sync
 <idle>-0     [000] d.h..    12.500000: irq_handler_entry: irq=19 name=vfio-intx(0001:00:00.0)
 <idle>-0     [000] d.h..    12.500030: disable_irq_nosync: (disable_irq_nosync+0xc/0x14) irq=19
 rig-vfio-181 [000] d....    12.502000: enable_irq: (enable_irq+0xc/0xd4) irq=19
"""


def test_l1_ftrace_lands_on_l0s_clock_through_the_marker():
    ev = l1_trace.parse(FTRACE, marker_t=-0.25, irq=19)
    assert [(e.kind, round(e.t, 6)) for e in ev] == [("handler", 0.25), ("disable", 0.25003),
                                                     ("enable", 0.252)]
    assert ev[1].detail == "irq=19" and all(e.lane == "l1_host" for e in ev)
    assert l1_trace.parse(FTRACE.replace("rig-sync", "other"), 0.0, 19) == []   # cannot be placed
    assert l1_trace.parse(FTRACE, 0.0, irq=1) == []      # another IRQ's (irq=19 is not irq=1)


def test_recorded_l1_ftrace():
    ev = l1_trace.parse((DATA / "l1-ftrace-x86_64.txt").read_text(), marker_t=0.0, irq=22)
    assert kinds(ev)[:6] == ["handler", "disable", "enable", "handler", "disable", "enable"]
    assert ev[0].t == pytest.approx(16.489118 - 16.481382)


def test_l1_setup_filters_the_handler_by_name_and_fails_loudly_without_kprobes():
    script = l1_trace.setup_script("xive")
    assert script.startswith("set -- /sys/kernel/tracing vfio-intx 'disable_irq_nosync=$arg1:u32' "
                             "'enable_irq=$arg1:u32' -- 'xive_irq_mask=+4($arg1):u32' ")
    assert " vfio_pci_intx_unmask_handler=\n" in script
    assert 'echo "name ~ \\"$handler*\\"" > events/irq/irq_handler_entry/filter' in script
    assert "CONFIG_KPROBE_EVENTS" in script and "\nset -e\n" in script


def test_l1_chip_and_vfio_events_say_who_masked_unmasked_and_eoied():
    """The chip's callbacks (their irq read from the irq_data) and vfio's unmask (no irq:
    vfio has one device in L1) on the device's line; another IRQ's chip events are not."""
    trace = ("  <idle>-0 [000] d.h.. 11.0001: tracing_mark_write: rig-sync\n"
             "  <idle>-0 [000] d.h.. 11.5000: irq_handler_entry: irq=37 name=vfio-intx(0001:01:00.0)\n"
             "  <idle>-0 [000] d.h.. 11.5001: disable_irq_nosync: (disable_irq_nosync+0xc/0x14) irq=37\n"
             "  <idle>-0 [000] d.h.. 11.5002: xive_irq_mask: (xive_irq_mask+0x0/0x80) irq=37\n"
             "  <idle>-0 [000] d.h.. 11.5003: xive_irq_eoi: (xive_irq_eoi+0x0/0x90) irq=41\n"
             "  consumer-199 [000] d.... 11.5300: vfio_pci_intx_unmask_handler: (vfio_pci_intx_unmask_handler+0x0)\n"
             "  consumer-199 [000] d.... 11.5301: enable_irq: (enable_irq+0xc/0xd4) irq=37\n"
             "  consumer-199 [000] d.... 11.5302: xive_irq_unmask: (xive_irq_unmask+0x0/0x80) irq=37\n")
    ev = l1_trace.parse(trace, marker_t=0.0, irq=37)
    assert [(e.kind, e.detail.split(" ")[0]) for e in ev] == [
        ("handler", "irq=37"), ("disable", "irq=37"), ("mask", "chip:"), ("unmask", "vfio:"),
        ("enable", "irq=37"), ("unmask", "chip:")]
    assert ev[2].detail == "chip: xive_irq_mask irq=37" and ev[0].t == pytest.approx(0.4999)


def ev(t, lane, kind):
    return PathEvent(t, lane, kind)


FLOWING = [ev(0.0, "device", "push"), ev(0.001, "l0_line", "assert"), ev(0.001, "l0_ic", "notify"),
           ev(0.002, "l1_host", "handler"), ev(0.003, "l0_ic", "mask"), ev(0.004, "l0_ic", "unmask"),
           ev(0.02, "consumer", "serviced")]


def test_the_stopped_layer_is_the_first_one_the_pending_interrupt_did_not_pass():
    stuck = FLOWING + [ev(0.05, "device", "push"), ev(0.05, "l0_line", "assert"), ev(0.05, "l0_ic", "held")]
    assert stopped_layer(stuck, 0.05) == "l0_ic"
    assert stopped_layer(FLOWING + [ev(0.05, "device", "push")], 0.05) == "l0_line"
    assert stopped_layer(FLOWING, None) is None
    assert stopped_layer([ev(0.06, "l0_line", "assert")], 0.05) is None   # no push: cannot tell


def test_explanation_says_what_the_controller_did():
    stuck = [ev(0.0, "device", "push"), ev(0.0, "l0_line", "assert"), ev(0.0, "l0_ic", "notify"),
             ev(0.001, "l1_host", "handler"), ev(0.05, "device", "push"), ev(0.05, "l0_line", "assert"),
             PathEvent(0.05, "l0_ic", "held", "source not forwarded: PQ=10 (pending, no EOI yet)")]
    text = explain(stuck, "l0_ic", 0.05, "00001204 LSI P-A")
    assert "stopped at L0 QEMU: interrupt controller" in text and "PQ=10" in text
    assert "nothing EOIed or unmasked" in text and "P-A" in text
    assert explain(FLOWING, None, None, "") == "every layer kept passing interrupts on"


def test_lane_summary_and_trimming():
    s = lane_summary(FLOWING)
    assert s["l0_ic"].kinds == {"notify": 1, "mask": 1, "unmask": 1} and s["consumer"].last_forward_t == 0.02
    many = [ev(i, "device", "push") for i in range(100)]
    t = trimmed(many, 10)
    assert len(t) == 10 and t[0].t == 0 and t[-1].t == 99
    assert PathEvent.from_json(FLOWING[2].to_json()) == FLOWING[2]


def tracer(rtt):
    from types import SimpleNamespace

    from rig.chain.tracer import PathTracer
    t = PathTracer(None, "ioapic", SimpleNamespace(l0_trace_events=()), Path("."))
    t.marker_rtt = rtt
    return t


def test_l1_clock_is_shifted_so_the_first_handler_follows_the_first_delivery():
    # The IO-APIC delivers twice per interrupt on the lazy path: only the first pair counts.
    l0 = [ev(0.010, "l0_ic", "deliver"), ev(0.013, "l0_ic", "deliver"), ev(0.030, "l0_ic", "deliver")]
    l1 = [ev(-0.020, "l1_host", "handler"), ev(0.0, "l1_host", "handler")]
    t = tracer(rtt=0.065)
    shifted = t._causal(l0, l1)
    assert [round(e.t, 3) for e in shifted] == [0.010, 0.030] and t.l1_shift == 0.03
    t = tracer(rtt=0.01)                       # more than the round trip: left alone, said
    assert t._causal(l0, l1) == l1 and "more than the marker's round trip" in t.notes[0]
    assert tracer(0.065)._causal(l0, [ev(0.02, "l1_host", "handler")])[0].t == 0.02   # already after


def test_deliveries_per_serviced_interrupt_from_the_lanes():
    """The patch's x86 claim as a figure: the unfixed IO-APIC delivered each interrupt
    twice (the second one masks the lazily disabled line), not a storm; fixed, once."""
    from rig.trace.path import LaneSummary, deliveries

    def lanes(l0_ic: dict[str, int], consumer: dict[str, int]) -> dict[str, LaneSummary]:
        return {"l0_ic": LaneSummary("", l0_ic, None), "consumer": LaneSummary("", consumer, None)}
    unfixed = lanes({"deliver": 424, "eoi": 424}, {"serviced": 212})
    assert deliveries(unfixed) == (424, 2.0)
    xive = lanes({"notify": 197, "mask": 197, "unmask": 198}, {"serviced": 197})
    assert deliveries(xive) == (197, 1.0)
    stalled = lanes({"notify": 1, "held": 1}, {})
    assert deliveries(stalled) == (1, None)            # nothing serviced: no ratio
    assert deliveries({}) == (None, None)              # nothing traced
