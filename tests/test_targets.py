import dataclasses
from pathlib import Path

import pytest
from conftest import ROOT

from rig.chain.restore_helper import RestoreHelper
from rig.core.errors import UserError
from rig.core.kinds import DeviceKind
from rig.core.targets import MACHINES, POWERNV, PPC64, PROFILES, PSERIES, Q35, X86_64, machine, machines_of, profile
from rig.guests.l1 import GuestConfig, kernel_cmdline, l1_qemu_args
from rig.host.accel import Accel

pytestmark = pytest.mark.unit


class FakeImage:
    kernel = "/img/kernel"
    initrd = "/img/initrd"


def test_profiles_by_name():
    assert profile("x86_64") is X86_64 and profile("ppc64") is PPC64
    with pytest.raises(UserError, match="unknown arch 'arm64'"):
        profile("arm64")


def test_ppc64_is_pseries_xive_power9_with_nested_hv_by_default():
    # POWER8/XICS can never show the bug; ic-mode=dual reboots early (docs/facts.md).
    assert machine("ppc64") is PSERIES
    assert PSERIES.l1_machine("tcg") == "pseries,ic-mode=xive,x-vof=on,cap-nested-hv=on"
    assert PSERIES.l1_machine("tcg", "xics") == "pseries,ic-mode=xics,x-vof=on,cap-nested-hv=on"
    with pytest.raises(UserError, match="--ic ioapic does not apply to ppc64 pseries"):
        PSERIES.l1_machine("tcg", "ioapic")
    assert PSERIES.cpu == "POWER9" and PPC64.console == "hvc0"
    assert {"vfio_iommu_spapr_tce", "kvm-hv", "vfio-pci"} <= set(PPC64.image_modules)


def test_x86_is_q35_with_intel_iommu():
    assert machine("x86_64") is Q35 and Q35.machine == "q35" and Q35.cpu == "max"
    assert any(d.startswith("intel-iommu") for d in Q35.l1_devices)
    assert "intel_iommu=on" in kernel_cmdline(X86_64)
    assert {"vfio_iommu_type1", "kvm_amd", "vfio-pci"} <= set(X86_64.image_modules)


def test_powernv_is_a_second_ppc64_machine_with_native_xive_under_tcg_only():
    assert machines_of("ppc64") == (PSERIES, POWERNV)
    assert machine("ppc64", "powernv") is POWERNV and POWERNV.tcg_only
    assert POWERNV.interrupt_controllers == ("xive",) and POWERNV.trace_of("xive") == "pnv-xive"
    assert POWERNV.devices == (DeviceKind.VIRTIO_SERIAL, DeviceKind.VIRTIO_SERIAL_2_3)
    assert "no I/O space" in POWERNV.device_problem("pci-serial")
    assert "findings" in POWERNV.device_problem("legacy")
    with pytest.raises(UserError, match="--machine powernv: x86_64 runs on q35"):
        machine("x86_64", "powernv")
    args = l1_qemu_args(PPC64, FakeImage, Accel("tcg", "test"), 1, GuestConfig(machine=POWERNV))
    assert args[args.index("-M") + 1] == "powernv9" and "-cpu" not in args
    # -nodefaults drops powernv9's PHBs: the NIC gets one back, on its root port
    assert "pnv-phb,chip-id=0,index=0,id=pcie.0" in args
    assert next(a for a in args if a.startswith("virtio-net-pci")).endswith(",bus=rignicport")


def test_every_machine_runs_an_arch_the_rig_has():
    for m in MACHINES.values():
        assert m.arch in PROFILES and m.devices and m.interrupt_controllers
        assert set(m.traces) == set(m.interrupt_controllers)
        assert not set(m.unsupported_devices) & set(m.devices)


@pytest.mark.parametrize("mach", MACHINES.values(), ids=lambda m: m.key)
def test_l1_command_line_comes_from_the_profiles(mach):
    prof = profile(mach.arch)
    args = l1_qemu_args(prof, FakeImage, Accel("tcg", "test"), 2222, GuestConfig(machine=mach))
    assert args[args.index("-M") + 1] == mach.l1_machine("tcg")
    assert ("-cpu" in args) == bool(mach.cpu) and (not mach.cpu or args[args.index("-cpu") + 1] == mach.cpu)
    assert f"console={prof.console}" in args[args.index("-append") + 1]
    assert "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22" in args


def test_kvm_changes_cpu_and_machine_options_only_where_the_profile_says():
    kvm = Accel("kvm", "test")
    x86 = l1_qemu_args(X86_64, FakeImage, kvm, 1, GuestConfig())
    assert x86[x86.index("-M") + 1] == "q35,kernel-irqchip=split"
    assert x86[x86.index("-cpu") + 1] == "host"
    ppc = l1_qemu_args(PPC64, FakeImage, kvm, 1, GuestConfig())
    assert ppc[ppc.index("-M") + 1] == PSERIES.l1_machine("kvm") == "pseries,ic-mode=xive,x-vof=on,cap-nested-hv=on"


def test_a_kvm_host_that_does_not_nest_gets_no_nested_hv_cap():
    """QEMU refuses cap-nested-hv=on under a KVM that cannot nest: L1 would never start."""
    from rig.host.virt import VirtPlan
    no_nest = Accel("kvm", "test", VirtPlan("kvm", "test", "tcg", "kvm_hv nested=N"))
    ppc = l1_qemu_args(PPC64, FakeImage, no_nest, 1, GuestConfig(ic="xics"))
    assert ppc[ppc.index("-M") + 1] == "pseries,ic-mode=xics,x-vof=on"
    x86 = l1_qemu_args(X86_64, FakeImage, no_nest, 1, GuestConfig())
    assert x86[x86.index("-M") + 1] == "q35,kernel-irqchip=split"


def test_profiles_are_plain_data():
    for prof in (*PROFILES.values(), *MACHINES.values()):
        assert dataclasses.is_dataclass(prof)
        dataclasses.asdict(prof)  # serialisable: it is part of image keys


def test_a_chain_with_a_kvm_l2_is_saved_only_where_it_can_come_back():
    """pseries drops L1's nested partition table in migration (docs/facts.md): a KVM L2 is
    saved in L1 there only with the helper module that registers it again built for L1's
    kernel; a TCG L2 is L1's own memory, so it is everywhere."""
    def problem(machine, accel, helper=None):
        return RestoreHelper(machine, helper).problem(accel)
    assert "H_SET_PARTITION_TABLE" in problem(PSERIES, "kvm") and "own Debian kernel" in problem(PSERIES, "kvm")
    assert problem(PSERIES, "kvm", Path("rig_nested_ptcr.ko")) is None
    assert problem(PSERIES, "tcg") is None
    assert problem(Q35, "kvm") is None
    assert PSERIES.nested_kvm_restore_helper.module == "rig_nested_ptcr"
    assert (ROOT / "guest_images/l1_helper/rig_nested_ptcr.c").is_file()


@pytest.mark.parametrize("arch", ["x86_64", "ppc64"])
def test_l2_reaches_nothing_in_l1_and_its_qemu_is_sandboxed(arch):
    """L2's user network is restricted (L1's QMP for L2's QEMU listens on L1's loopback,
    which 10.0.2.2 would reach), and L2's QEMU runs in QEMU's seccomp sandbox."""
    from rig.guests.l2 import l2_command
    from rig.host.qemu import SANDBOX
    cmd = l2_command(PROFILES[arch], "kvm", "0000:00:01.0")
    assert any(a.startswith("user,") and ",restrict=on," in a for a in cmd)
    assert cmd[cmd.index("-sandbox") + 1] == SANDBOX


def test_doctor_says_which_machines_restore_l1_and_why_not():
    from rig.commands.doctor import restores
    assert restores(Q35) == "L1 restored from a snapshot after its first run (devices that cannot migrate " \
                            "hotplugged on righp)"
    assert restores(PSERIES) == "L1 restored from a snapshot after its first run"
    assert restores(POWERNV).startswith("L1 boots every run: QEMU migrates no state of powernv9's XIVE")
