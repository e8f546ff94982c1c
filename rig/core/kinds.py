"""The rig's vocabularies, each defined once: what a verdict, a device, a consumer, an
accelerator, a scenario, an interrupt controller, a guest's start, an image's role and L1's vfio can be.

StrEnum members are their own spelling on the command line and in result.json, so a
member compares equal to the string a user typed or a file recorded.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PASS = "PASS"
    STALL = "STALL"      # an interrupt the device raised never reached its consumer
    FAIL = "FAIL"        # a scenario saw an event that must not come (one while masked, a double)
    ERROR = "ERROR"      # the machinery failed: never a verdict on the kernel


class DeviceKind(StrEnum):
    PCI_SERIAL = "pci-serial"          # QEMU's 8250 UART (one I/O BAR), PCI 2.3: vfio told nointxmask
    VIRTIO_SERIAL = "virtio-serial"    # a modern virtio console (one MMIO BAR), MSI-X off: INTx
    LEGACY = "legacy"                  # device_models' PCI 2.2 UART over vfio-user
    # The stock devices left to mask INTx themselves (no nointxmask): vfio's 2.3 path.
    PCI_SERIAL_2_3 = "pci-serial-2.3"
    VIRTIO_SERIAL_2_3 = "virtio-serial-2.3"
    LEGACY_2_3 = "legacy-2.3"          # its PCI 2.3 twin


class Consumer(StrEnum):
    L2 = "l2"                  # a nested guest with the device passed through
    USERSPACE = "userspace"    # fast mode: a VFIO program in L1


class Scenario(StrEnum):
    """Which of vfio-pci's INTx paths a run drives (docs/scenarios.md)."""
    FLOW = "flow"                                    # serviced and unmasked, again and again
    MASKED_PENDING = "masked-pending"                # asserted while the user has it masked
    DEASSERT_WHILE_MASKED = "deassert-while-masked"  # asserted and dropped while masked
    REOPEN = "reopen"                                # the device fd released while asserted
    CONFIG_MASK = "config-mask"                      # masked-pending through the command register
    NEW_TRIGGER = "new-trigger"                      # a new trigger eventfd while enabled
    RESET_ASSERTED = "reset-asserted"                # VFIO_DEVICE_RESET with the line asserted
    STORM = "storm"                                  # the device re-asserts at once, unmask slow
    EXCLUSIVE = "exclusive"                          # a twin device holds the same INTx line
    L2_REBOOT = "l2-reboot"                          # L2 reset by its QEMU while interrupts flow


class AccelChoice(StrEnum):
    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class Accelerator(StrEnum):
    """How a guest runs, once chosen (AccelChoice is what a user asks for)."""
    KVM = "kvm"
    TCG = "tcg"


class GuestStart(StrEnum):
    """How a guest of the chain came up (result.json chain.l1_started, chain.l2_started)."""
    BOOTED = "booted"
    RESTORED = "restored"      # from a snapshot (L2: inside L1's, restored with it)


class ImageRole(StrEnum):
    """Which guest an image boots (guest_images): its programs, modules and config differ."""
    L1 = "l1"        # runs the kernel under test, binds the device, runs L2's QEMU
    L2 = "l2"        # the nested guest the device is passed to


class InterruptController(StrEnum):
    XIVE = "xive"
    XICS = "xics"
    IOAPIC = "ioapic"


class L1Vfio(StrEnum):
    FIXED = "fixed"        # Debian's vfio-pci, with the INTx fix
    UNFIXED = "unfixed"    # the same, rebuilt without it


def spellings(kind: type[StrEnum]) -> tuple[str, ...]:
    return tuple(m.value for m in kind)
