from pathlib import Path

import pytest

from rig.trace import proc_interrupts as interrupts

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"

TWO_CPUS_XICS = """\
           CPU0       CPU1       
 16:       1520       1811  XICS-IPI   2 Edge      IPI
 17:         12          7      XICS 4097 Level     vfio-intx(0001:00:00.0)
LOC:       9999       8888   Local timer interrupts for timer event device
"""


def test_x86_io_apic_with_interrupt_remapping():
    t = interrupts.parse((DATA / "interrupts-l1-x86_64.txt").read_text())
    line = interrupts.find(t, "vfio-intx")
    assert (line.irq, line.count, line.chip) == ("22", 857, "IR-IO-APIC")
    assert "vfio-intx(0000:00:02.0)" in line.rest


def test_xive_line_in_a_pseries_l1():
    t = interrupts.parse((DATA / "interrupts-l1-ppc64-xive.txt").read_text())
    line = interrupts.find(t, "vfio-intx")
    assert (line.irq, line.count, line.chip) == ("19", 801, "XIVE-IRQ")
    assert line.rest.startswith("4612 Level")


def test_xics_in_l2_by_irq_number():
    t = interrupts.parse((DATA / "interrupts-l2-ppc64-xive.txt").read_text())
    assert interrupts.find(t, "19").count == 799 and interrupts.find(t, "19").chip == "XICS"
    t = interrupts.parse((DATA / "interrupts-l2-x86_64.txt").read_text())
    assert interrupts.find(t, "22").count == 855 and "ttyS4" in interrupts.find(t, "22").rest


def test_counts_are_summed_over_cpus_and_summary_lines_parse():
    t = interrupts.parse(TWO_CPUS_XICS)
    assert t["17"].count == 19 and t["16"].count == 3331
    assert t["LOC"].count == 18887
    assert interrupts.find(t, "vfio-intx").irq == "17"
    assert interrupts.find(t, "nothing-like-this") is None
    assert interrupts.parse("") == {}
