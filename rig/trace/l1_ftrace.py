"""L1's view of the device's interrupt, from ftrace: when the host IRQ handler ran
(irq:irq_handler_entry), when vfio disabled the IRQ in it (disable_irq_nosync) and when
the user's unmask enabled it again (enable_irq). Kprobes on the two core functions work on
any kernel with CONFIG_KPROBE_EVENTS, whatever vfio's internals look like, and a filter
on the IRQ number keeps the buffer to the device's line. Where the kernel has them, also
the interrupt chip's own mask, unmask and EOI (what reaches the controller: with the lazy
disable, no mask) and vfio's INTx unmask (the user's unmask ioctl arriving): who dropped an
unmask, when one is missing.

Clock: ftrace's timestamps are L1's. A marker written into the buffer while L0 measures
the SSH round trip maps them onto L0's clock, to within half that round trip.
"""

from __future__ import annotations

import re

from rig.core.shell import guest_script
from rig.trace.path import Lane, PathEvent

TRACEFS = "/sys/kernel/tracing"
SYNC = "rig-sync"
# Each probe is "function=fetch": how the kprobe reads the IRQ number from the function's
# arguments ("" for none). Without the core ones there is no L1 trace.
KPROBES = ("disable_irq_nosync=$arg1:u32", "enable_irq=$arg1:u32")
# The chip's callbacks take a struct irq_data, whose second u32 is the IRQ number
# (include/linux/irq.h: `u32 mask; unsigned int irq; ...`). Static functions: a kernel that
# inlined or renamed one just lacks that probe (noted, the rest still traced).
CHIP_FUNCTIONS = {
    "xive": ("xive_irq_mask", "xive_irq_unmask", "xive_irq_eoi"),          # arch/powerpc/sysdev/xive/common.c
    "ioapic": ("mask_ioapic_irq", "unmask_ioapic_irq", "ioapic_ack_level", "ioapic_ir_ack_level"),
    "xics": (),
}
# vfio's INTx unmask (drivers/vfio/pci/vfio_pci_intrs.c), the ioctl's and the resample eventfd's alike: no IRQ argument.
VFIO_UNMASK = "vfio_pci_intx_unmask_handler"
HANDLER_NAME = "vfio-intx"
KINDS = {"irq_handler_entry": "handler", "disable_irq_nosync": "disable", "enable_irq": "enable",
         "xive_irq_mask": "mask", "xive_irq_unmask": "unmask", "xive_irq_eoi": "eoi",
         "mask_ioapic_irq": "mask", "unmask_ioapic_irq": "unmask", "ioapic_ack_level": "eoi",
         "ioapic_ir_ack_level": "eoi", VFIO_UNMASK: "unmask"}


def optional_probes(ic: str) -> tuple[str, ...]:
    return (*(f"{f}=+4($arg1):u32" for f in CHIP_FUNCTIONS.get(ic, ())), f"{VFIO_UNMASK}=")


def setup_script(ic: str) -> str:
    """Switch the events on (rig/trace/sh/ftrace_setup.sh); exits non-zero with the reason
    if this kernel cannot (no tracefs, no kprobe events). Armed before the consumer opens
    the device, when L1 may not have given it an IRQ yet (x86 does at enable time): the
    handler is filtered by its name, the kprobes by nothing (their other callers are
    rare), parse() keeps the device's IRQ. The chip's and vfio's probes are optional."""
    return guest_script("rig.trace", "ftrace_setup.sh", TRACEFS, HANDLER_NAME, *KPROBES, "--", *optional_probes(ic))


SYNC_COMMAND = f"echo {SYNC} > {TRACEFS}/trace_marker"
READ_COMMAND = f"echo 0 > {TRACEFS}/tracing_on; cat {TRACEFS}/trace"

# "  <idle>-0  [000] d.h..  18.524895: irq_handler_entry: irq=19 name=vfio-intx(...)"
ENTRY = re.compile(r"\s(\d+\.\d+):\s+(\w+):\s?(.*)$")


def parse(text: str, marker_t: float, irq: int) -> list[PathEvent]:
    """The device's IRQ's events on L0's clock, given when (on that clock) the sync marker
    was written. No marker in the buffer: no events (they could not be placed)."""
    entries = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = ENTRY.search(line)
        if m:
            entries.append((float(m.group(1)), m.group(2), m.group(3)))
    sync = next((t for t, name, args in entries if name == "tracing_mark_write" and SYNC in args), None)
    if sync is None:
        return []
    out = []
    for t, name, args in entries:
        if name == VFIO_UNMASK:          # one device in vfio: its unmask is ours
            out.append(PathEvent(t - sync + marker_t, Lane.L1_HOST, KINDS[name], "vfio: the user's INTx unmask"))
        elif name in KINDS and re.search(rf"\birq={irq}\b", args):
            detail = args.split(") ", 1)[-1]
            if name in CHIP_KINDS:
                detail = f"chip: {name} {detail}"
            out.append(PathEvent(t - sync + marker_t, Lane.L1_HOST, KINDS[name], detail))
    return out


CHIP_KINDS = {f for fs in CHIP_FUNCTIONS.values() for f in fs}
