"""/proc/interrupts, parsed: per-IRQ total counts and the rest of the line.

The layout differs by interrupt controller (x86 IO-APIC, XIVE, XICS) only after the
per-CPU counts, so one parser serves all: the header gives the number of CPU columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IrqLine:
    irq: str          # "24", "NMI", ...
    count: int        # summed over CPUs
    chip: str         # "IO-APIC", "XIVE-IRQ", "XICS", ...
    rest: str         # hwirq, trigger type and action names, as printed

    @property
    def hwirq(self) -> int | None:
        """The controller's number for the line: "4612 Level" (XIVE, XICS: the LISN),
        "22-fasteoi" (IO-APIC: the pin)."""
        head = self.rest.split()[0] if self.rest.split() else ""
        digits = head.split("-")[0]
        return int(digits) if digits.isdigit() else None


def parse(text: str) -> dict[str, IrqLine]:
    lines = text.splitlines()
    if not lines:
        return {}
    ncpu = len(lines[0].split())
    out: dict[str, IrqLine] = {}
    for line in lines[1:]:
        if ":" not in line:
            continue
        irq, _, tail = line.partition(":")
        fields = tail.split()
        counts = []
        for f in fields[:ncpu]:
            if not f.isdigit():
                break
            counts.append(int(f))
        rest_fields = fields[len(counts):]
        chip = rest_fields[0] if rest_fields else ""
        out[irq.strip()] = IrqLine(irq.strip(), sum(counts), chip, " ".join(rest_fields[1:]))
    return out


def find(table: dict[str, IrqLine], needle: str) -> IrqLine | None:
    """The line whose actions mention needle (e.g. "vfio-intx", "ttyS1"), or whose IRQ is it."""
    if needle in table:
        return table[needle]
    for line in table.values():
        if needle in line.rest.split() or any(needle in a for a in line.rest.split()):
            return line
    return None
