"""L1's view of the device's interrupt, from ftrace: when the host IRQ handler ran
(irq:irq_handler_entry), when vfio disabled the IRQ in it (disable_irq_nosync) and when
the user's unmask enabled it again (enable_irq). Kprobes on the two core functions work on
any kernel with CONFIG_KPROBE_EVENTS, whatever vfio's internals look like, and a filter
on the IRQ number keeps the buffer to the device's line.

Clock: ftrace's timestamps are L1's. A marker written into the buffer while L0 measures
the SSH round trip maps them onto L0's clock, to within half that round trip.
"""

from __future__ import annotations

import re

from rig.core.shell import guest_script
from rig.trace.path import PathEvent

TRACEFS = "/sys/kernel/tracing"
SYNC = "rig-sync"
KPROBES = ("disable_irq_nosync", "enable_irq")
HANDLER_NAME = "vfio-intx"
KINDS = {"irq_handler_entry": "handler", "disable_irq_nosync": "disable", "enable_irq": "enable"}


def setup_script() -> str:
    """Switch the events on (rig/trace/sh/ftrace_setup.sh); exits non-zero with the reason
    if this kernel cannot (no tracefs, no kprobe events). Armed before the consumer opens
    the device, when L1 may not have given it an IRQ yet (x86 does at enable time): the
    handler is filtered by its name, the two kprobes by nothing (their other callers are
    rare), parse() keeps the device's IRQ."""
    return guest_script("rig.trace", "ftrace_setup.sh", TRACEFS, HANDLER_NAME, *KPROBES)


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
        if name in KINDS and re.search(rf"\birq={irq}\b", args):
            out.append(PathEvent(t - sync + marker_t, "l1_host", KINDS[name], args.split(") ", 1)[-1]))
    return out
