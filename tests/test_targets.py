import dataclasses

import pytest

from rig.core.errors import UserError
from rig.core.targets import PPC64, PROFILES, X86_64, profile
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


def test_ppc64_is_pseries_xive_power9_with_nested_hv():
    # POWER8/XICS can never show the bug; ic-mode=dual reboots early (DESIGN.md 4).
    assert PPC64.l1_machine("tcg") == "pseries,ic-mode=xive,cap-nested-hv=on"
    assert PPC64.l1_machine("tcg", "xics") == "pseries,ic-mode=xics,cap-nested-hv=on"
    with pytest.raises(UserError, match="--ic ioapic does not apply to ppc64"):
        PPC64.l1_machine("tcg", "ioapic")
    assert PPC64.cpu == "POWER9" and PPC64.console == "hvc0"
    assert {"vfio_iommu_spapr_tce", "kvm-hv", "vfio-pci"} <= set(PPC64.image_modules)


def test_x86_is_q35_with_intel_iommu():
    assert X86_64.machine == "q35" and X86_64.cpu == "max"
    assert any(d.startswith("intel-iommu") for d in X86_64.l1_devices)
    assert "intel_iommu=on" in kernel_cmdline(X86_64)
    assert {"vfio_iommu_type1", "kvm_amd", "vfio-pci"} <= set(X86_64.image_modules)


@pytest.mark.parametrize("prof", PROFILES.values(), ids=lambda p: p.name)
def test_l1_command_line_comes_from_the_profile(prof):
    args = l1_qemu_args(prof, FakeImage, Accel("tcg", "test"), 2222, GuestConfig())
    assert args[args.index("-M") + 1] == prof.l1_machine("tcg")
    assert args[args.index("-cpu") + 1] == prof.cpu
    assert f"console={prof.console}" in args[args.index("-append") + 1]
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22" in args


def test_kvm_changes_cpu_and_machine_options_only_where_the_profile_says():
    kvm = Accel("kvm", "test")
    x86 = l1_qemu_args(X86_64, FakeImage, kvm, 1, GuestConfig())
    assert x86[x86.index("-M") + 1] == "q35,kernel-irqchip=split"
    assert x86[x86.index("-cpu") + 1] == "host"
    ppc = l1_qemu_args(PPC64, FakeImage, kvm, 1, GuestConfig())
    assert ppc[ppc.index("-M") + 1] == PPC64.l1_machine("kvm") == "pseries,ic-mode=xive,cap-nested-hv=on"


def test_a_kvm_host_that_does_not_nest_gets_no_nested_hv_cap():
    """QEMU refuses cap-nested-hv=on under a KVM that cannot nest: L1 would never start."""
    from rig.host.virt import VirtPlan
    no_nest = Accel("kvm", "test", VirtPlan("kvm", "test", "tcg", "kvm_hv nested=N"))
    ppc = l1_qemu_args(PPC64, FakeImage, no_nest, 1, GuestConfig(ic="xics"))
    assert ppc[ppc.index("-M") + 1] == "pseries,ic-mode=xics"
    x86 = l1_qemu_args(X86_64, FakeImage, no_nest, 1, GuestConfig())
    assert x86[x86.index("-M") + 1] == "q35,kernel-irqchip=split"


def test_profiles_are_plain_data():
    for prof in PROFILES.values():
        assert dataclasses.is_dataclass(prof)
        dataclasses.asdict(prof)  # serialisable: it is part of image keys
