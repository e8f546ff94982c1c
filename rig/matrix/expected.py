"""The expected verdict of every cell, written once, with the reason (docs/mechanism.md for
the flow, docs/scenarios.md for the other INTx paths): the first row that matches a cell is
its expectation. rig.matrix.cells gives each cell its row; the e2e tests and `rig matrix`
compare against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rig.core.kinds import L1Vfio, Outcome, Scenario

OWN = "own"        # the user's kernel on the L1 vfio axis (rig.matrix.cells)


class Axes(Protocol):
    """What a row is matched on: a cell's axes (rig.matrix.cells.Cell)."""

    @property
    def machine(self) -> str: ...
    @property
    def ic(self) -> str: ...
    @property
    def vfio(self) -> str: ...
    @property
    def scenario(self) -> str: ...
    @property
    def intx_path(self) -> str: ...


@dataclass(frozen=True)
class Expectation:
    machine: str       # a machine's name; "*" matches every one
    ic: str
    vfio: str          # "*" matches both
    verdict: Outcome
    reason: str
    scenario: str = Scenario.FLOW    # "*" matches every one
    intx: str = "*"                  # vfio's INTx path: "non-2.3", "2.3" or "*"

    def matches(self, cell: Axes) -> bool:
        return self.machine in ("*", cell.machine) and self.ic in ("*", cell.ic) and \
            self.vfio in ("*", cell.vfio) and self.scenario in ("*", cell.scenario) and \
            self.intx in ("*", cell.intx_path)


# The one table of expected verdicts (docs/mechanism.md, docs/scenarios.md); the first row
# that matches a cell is its expectation. The device and the consumer do not change them:
# every device takes vfio's non-2.3 INTx path, and every consumer unmasks the same way; what
# differs is L0's interrupt controller, whether L1's vfio has the fix, and the scenario.
XIVE_LOSES_AT_PQ_00 = ("QEMU's XIVE re-sends an asserted LSI only at its EOI (xive_source_esb_eoi), not when "
                       "Linux sets its ESB to PQ=00 (xive_do_source_set_mask, xive_irq_startup)")
NON_2_3, TWO_3 = "non-2.3", "2.3"      # vfio-pci's two INTx paths (Cell.intx_path)
NEW_TRIGGER_SWAPS = ("vfio_intx_set_signal() swaps the eventfd under the running IRQ (synchronize_irq() before "
                     "the old one goes): the next interrupts signal the new one")
IOAPIC_XICS_RESEND = ("the IO-APIC and XICS re-deliver a level line still asserted when it is unmasked or its "
                      "IRQ started, and nothing for a line that dropped while masked")
RESET_DROPS_THE_LINE = ("VFIO_DEVICE_RESET (vfio_pci_ioctl_reset -> pci_try_reset_function) drops the device's "
                        "line and leaves vfio's INTx state alone: nothing is pending at the unmask and the flow "
                        "resumes; a device without a reset method is refused (EINVAL) and serviced as in the flow")
EXCLUSIVE_REFUSED = ("vfio_intx_enable() requests the IRQ without IRQF_SHARED on the non-2.3 path: request_irq() "
                     "refuses the line its twin holds (EBUSY) and gives it once the twin let go; the flow resumes")
SCENARIO_EXPECTED = (
    # vfio's 2.3 path masks in the device (the command register's INTx disable), not at the
    # controller, and its unmask re-signals a pending interrupt in software.
    Expectation("*", "*", "*", Outcome.PASS,
                "the user's mask sets the device's INTx disable bit, so the controller never sees the "
                "assertion; the unmask finds it pending in the status register and signals it in software "
                "(vfio_pci_intx_unmask_handler -> pci_check_and_unmask_intx)", Scenario.MASKED_PENDING, TWO_3),
    Expectation("*", "*", "*", Outcome.PASS,
                "the line never reaches the controller while the device's INTx disable bit is set; the unmask "
                "finds nothing pending and clears it", Scenario.DEASSERT_WHILE_MASKED, TWO_3),
    Expectation("*", "*", "*", Outcome.PASS,
                "the virtual INTx disable bit becomes the device's own (vfio_pci_intx_mask() -> pci_intx()); its "
                "clearing finds the interrupt pending and signals it in software", Scenario.CONFIG_MASK, TWO_3),
    Expectation("pseries", "xive", "*", Outcome.STALL,
                "vfio_intx_enable() clears the device's INTx disable bit before request_irq(): the asserted "
                f"line reaches a source masked since free_irq() (PQ=01), started at PQ=00, and {XIVE_LOSES_AT_PQ_00}",
                Scenario.REOPEN, TWO_3),
    Expectation("*", "ioapic", "*", Outcome.STALL,
                "free_irq() deactivates the pin (ioapic_mask_entry(): masked and edge); vfio_intx_enable() clears "
                "the device's INTx disable bit before request_irq(), so the line rises on a masked edge pin, which "
                "QEMU's IO-APIC ignores (ioapic_set_irq()), and the pin made level again is not sampled: lost",
                Scenario.REOPEN, TWO_3),
    Expectation("*", "xics", "*", Outcome.PASS,
                "vfio_intx_enable() clears the device's INTx disable bit before request_irq(); XICS keeps the "
                "asserted LSI and re-sends it when the IRQ starts (ics_write_xive())", Scenario.REOPEN, TWO_3),
    Expectation("powernv", "xive", "*", Outcome.PASS,
                "vfio resets the virtio console between release and open (pci_try_reset_function): nothing "
                "pending", Scenario.REOPEN, TWO_3),
    # What QEMU's XIVE does to a masked LSI holds for every kernel, the user's too.
    Expectation("*", "xive", "*", Outcome.STALL,
                "the user's mask masks the source at XIVE (PQ=01: at once with the fix, at its first delivery "
                f"without); the line asserts, the unmask sets PQ=00 and {XIVE_LOSES_AT_PQ_00}: lost",
                Scenario.MASKED_PENDING, NON_2_3),
    # config-mask is masked-pending with the command register's INTx disable bit: vfio turns it into
    # the same mask and unmask (vfio_basic_config_write() -> vfio_pci_intx_mask() / _unmask()).
    Expectation("*", "xive", "*", Outcome.STALL,
                "the command register's INTx disable bit masks the source at XIVE as ACTION_MASK does; at its "
                f"clearing the unmask sets PQ=00 and {XIVE_LOSES_AT_PQ_00}: lost", Scenario.CONFIG_MASK, NON_2_3),
    Expectation("*", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the first interrupt leaves the source pending without EOI, as in the flow: nothing comes on "
                "the new trigger either", Scenario.NEW_TRIGGER, NON_2_3),
    *(Expectation("*", ic, vfio, Outcome.PASS, NEW_TRIGGER_SWAPS, Scenario.NEW_TRIGGER, NON_2_3)
      for ic, vfio in (("xive", L1Vfio.FIXED), ("xive", OWN), ("xics", "*"), ("ioapic", "*"))),
    Expectation("*", "*", "*", Outcome.PASS, NEW_TRIGGER_SWAPS, Scenario.NEW_TRIGGER, TWO_3),
    Expectation("*", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the mask and unmask go through (nothing is pending at the unmask), then the flow after "
                "it stalls as the flow does without the fix", Scenario.DEASSERT_WHILE_MASKED, NON_2_3),
    Expectation("*", "xive", L1Vfio.FIXED, Outcome.PASS,
                "nothing is pending at the unmask, so PQ=00 loses nothing; the flow after it runs as "
                "the fix makes it", Scenario.DEASSERT_WHILE_MASKED, NON_2_3),
    Expectation("*", "xive", OWN, Outcome.PASS,
                "the contract for a user's kernel, as with the fix", Scenario.DEASSERT_WHILE_MASKED, NON_2_3),
    Expectation("pseries", "xive", "*", Outcome.STALL,
                "pci-serial has no reset method, so vfio's release and open leave its line asserted; the new "
                f"request_irq() starts the source at PQ=00 and {XIVE_LOSES_AT_PQ_00}: the pending interrupt "
                "is lost", Scenario.REOPEN, NON_2_3),
    Expectation("powernv", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "vfio resets the virtio console at release and open (pci_try_reset_function), so nothing is "
                "pending at request_irq(); the flow after it stalls as the flow does without the fix",
                Scenario.REOPEN, NON_2_3),
    *(Expectation("powernv", "xive", vfio, Outcome.PASS,
                  "vfio resets the virtio console at release and open (pci_try_reset_function), so nothing is "
                  "pending at request_irq() to lose; the flow after it runs as the fix makes it",
                  Scenario.REOPEN, NON_2_3)
      for vfio in (L1Vfio.FIXED, OWN)),
    # reset-asserted: vfio_pci_ioctl_reset() leaves INTx as it is; the reset drops the line.
    Expectation("*", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the first interrupt leaves the source pending without EOI, as in the flow; the reset (or its "
                "refusal, for a device without one) changes nothing there", Scenario.RESET_ASSERTED, NON_2_3),
    *(Expectation("*", ic, vfio, Outcome.PASS, RESET_DROPS_THE_LINE, Scenario.RESET_ASSERTED, NON_2_3)
      for ic, vfio in (("xive", L1Vfio.FIXED), ("xive", OWN), ("xics", "*"), ("ioapic", "*"))),
    Expectation("*", "*", "*", Outcome.PASS, RESET_DROPS_THE_LINE, Scenario.RESET_ASSERTED, TWO_3),
    # storm: the line re-asserts while vfio has it disabled.
    Expectation("*", "xive", "*", Outcome.STALL,
                "the line re-asserts while vfio has the source masked (PQ=01: at once with the fix; without it "
                f"the first interrupt already leaves it pending without EOI); the unmask sets PQ=00 and "
                f"{XIVE_LOSES_AT_PQ_00}: lost", Scenario.STORM, NON_2_3),
    *(Expectation("*", ic, "*", Outcome.PASS,
                  "the controller delivers the line re-asserted while masked at the unmask; without the fix the "
                  "lazily disabled line is delivered once more per interrupt and masked then (handle_fasteoi_irq), "
                  "about 2 per serviced, within the bound; with it 1", Scenario.STORM, NON_2_3)
      for ic in ("xics", "ioapic")),
    Expectation("*", "*", "*", Outcome.PASS,
                "the device masks itself (the INTx disable bit) as vfio signals, and the unmask signals a pending "
                "interrupt in software (pci_check_and_unmask_intx): at most one delivery per interrupt",
                Scenario.STORM, TWO_3),
    # exclusive: a twin holds the line; vfio shares it only on the 2.3 path (IRQF_SHARED).
    Expectation("*", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "request_irq() refuses the non-2.3 device the line its twin holds (EBUSY), and takes it once the "
                "twin let go; then the flow stalls as it does without the fix", Scenario.EXCLUSIVE, NON_2_3),
    *(Expectation("*", ic, vfio, Outcome.PASS, EXCLUSIVE_REFUSED, Scenario.EXCLUSIVE, NON_2_3)
      for ic, vfio in (("xive", L1Vfio.FIXED), ("xive", OWN), ("xics", "*"), ("ioapic", "*"))),
    Expectation("*", "*", "*", Outcome.PASS,
                "vfio_intx_enable() requests the IRQ with IRQF_SHARED on the 2.3 path: the device shares the line "
                "its twin holds, and the twin's handler finds its own device idle (IRQ_NONE), so its eventfd stays "
                "quiet", Scenario.EXCLUSIVE, TWO_3),
    # l2-reboot: L2's flow, its QEMU's reset (vfio INTx off and on again in L1), the flow again.
    Expectation("*", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the flow stalls before the reboot, as it does without the fix", Scenario.L2_REBOOT),
    *(Expectation("*", ic, vfio, Outcome.PASS,
                  "L1's QEMU resets the device at L2's reset and turns INTx off and on through vfio "
                  "(vfio_intx_disable(), vfio_intx_enable()): a fresh IRQ, nothing pending; L2's driver probes "
                  "again and the flow resumes", Scenario.L2_REBOOT)
      for ic, vfio in (("xive", L1Vfio.FIXED), ("xive", OWN), ("xics", "*"), ("ioapic", "*"))),
    # The IO-APIC and XICS on the non-2.3 path, alike in every scenario that masks or releases.
    *(Expectation("*", ic, "*", Outcome.PASS, IOAPIC_XICS_RESEND, scenario, NON_2_3)
      for scenario in (Scenario.MASKED_PENDING, Scenario.CONFIG_MASK, Scenario.DEASSERT_WHILE_MASKED, Scenario.REOPEN)
      for ic in ("xics", "ioapic")),
)
FLOW_EXPECTED = (
    # First: it overrides every row below for a user's kernel.
    Expectation("*", "*", OWN, Outcome.PASS,
                "the contract for a user's kernel: no stall anywhere; a STALL is a bug in that kernel "
                "(or a controller it does not handle), whatever its version says"),
    Expectation("pseries", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "lazy disable_irq_nosync() never masks at XIVE; the source stays pending without "
                "EOI and every later assertion is swallowed: one interrupt, then none"),
    Expectation("pseries", "xive", L1Vfio.FIXED, Outcome.PASS,
                "IRQ_DISABLE_UNLAZY masks the source at XIVE; the unmask and EOI let the next one in"),
    Expectation("powernv", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the reporter's platform: XIVE driven natively, the same lazy disable; Linux's "
                "xive_irq_eoi() skips the EOI of the disabled IRQ and the PHB4's source stays pending"),
    Expectation("powernv", "xive", L1Vfio.FIXED, Outcome.PASS,
                "IRQ_DISABLE_UNLAZY masks the PHB4's source through its ESB page; unmask and EOI let the "
                "next one in"),
    Expectation("pseries", "xics", "*", Outcome.PASS,
                "XICS re-sends a still-asserted LSI on unmask and on EOI: no stall, fix or not"),
    Expectation("q35", "ioapic", "*", Outcome.PASS,
                "the IO-APIC re-delivers a still-asserted level interrupt on EOI and unmask"),
)
EXPECTED = FLOW_EXPECTED + SCENARIO_EXPECTED
