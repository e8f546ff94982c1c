"""Host kinds as data: the host profile of each machine the rig runs on, and what each kind
of host (Intel, AMD, POWER with and without nesting, no KVM) means for L1 and L2. From
cpuinfo files (this CI machine's as recorded: an Intel Xeon that shows no vmx; with vmx or
svm put in for the other x86 kinds; a POWER9 PowerNV host's layout) and module parameters
as /sys/module shows them."""

import pytest
from conftest import ROOT

from rig.core.errors import UserError
from rig.core.targets import PROFILES
from rig.host.profiles import host_profile
from rig.host.qemu import l0_qemu_set, private_binary
from rig.host.virt import kvm_module_for, plan

pytestmark = pytest.mark.unit

DATA = ROOT / "tests" / "data"
NO_VIRT = (DATA / "cpuinfo-x86-host-no-virt.txt").read_text()
INTEL = NO_VIRT.replace("flags\t\t: ", "flags\t\t: vmx ")
AMD = NO_VIRT.replace("GenuineIntel", "AuthenticAMD").replace("flags\t\t: ", "flags\t\t: svm ")
POWER9 = (DATA / "cpuinfo-power9-powernv.txt").read_text()
X86, PPC = PROFILES["x86_64"], PROFILES["ppc64"]
KVM_RAN = (True, "/dev/kvm ran a test guest")


def params(**values):
    """A /sys reader that knows the given modules' nested parameter."""
    return lambda path: next((v for m, v in values.items() if f"/sys/module/{m}/parameters/nested" == path), None)


@pytest.mark.parametrize("machine,name,triplet,loader,kvm", [
    ("x86_64", "amd64", "x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "x86_64"),
    ("aarch64", "arm64", "aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", None),
    ("ppc64le", "ppc64el", "powerpc64le-linux-gnu", "usr/lib/powerpc64le-linux-gnu/ld64.so.2", "ppc64"),
])
def test_host_profiles(machine, name, triplet, loader, kvm, tmp_path):
    host = host_profile(machine)
    assert (host.name, host.triplet, host.loader_path, host.kvm_target) == (name, triplet, loader, kvm)
    assert l0_qemu_set(host).arch == name
    q = private_binary(tmp_path, {"qemu_version": "11.1.3"}, PPC, host)
    assert q.prefix[0] == str(tmp_path / loader) and str(tmp_path / "usr/lib" / triplet) in q.prefix[2]
    assert q.env["QEMU_MODULE_DIR"] == str(tmp_path / "usr/lib" / triplet / "qemu")


def test_compilers_are_native_or_cross_by_host():
    amd64, ppc64el, arm64 = host_profile("x86_64"), host_profile("ppc64le"), host_profile("aarch64")
    assert amd64.gcc_package(X86.triplet) == "gcc-12"
    assert amd64.gcc_package(PPC.triplet) == "gcc-12-powerpc64le-linux-gnu"
    assert ppc64el.gcc_package(PPC.triplet) == "gcc-12"
    assert ppc64el.gcc_package(X86.triplet) == "gcc-12-x86-64-linux-gnu"
    assert arm64.libc_dev(X86.debian_arch, X86.triplet)[0] == "libc6-dev-amd64-cross"
    assert ppc64el.libc_dev(PPC.debian_arch, PPC.triplet) == \
        ("libc6-dev", "/usr/include/powerpc64le-linux-gnu/sys/eventfd.h")


def test_an_unsupported_host_is_one_clear_line():
    with pytest.raises(UserError, match=r"this host is riscv64: the rig runs on x86_64 \(amd64\), aarch64"):
        host_profile("riscv64")


def test_the_kvm_module_follows_the_cpu():
    assert str(kvm_module_for(X86.l2.kvm_modules, INTEL)) == "kvm_intel nested=1"
    assert str(kvm_module_for(X86.l2.kvm_modules, AMD)) == "kvm_amd nested=1"
    assert kvm_module_for(X86.l2.kvm_modules, NO_VIRT) is None
    assert str(kvm_module_for(PPC.l2.kvm_modules, POWER9)) == "kvm-hv"


def test_intel_host_with_nesting_gives_kvm_to_l1_and_l2():
    p = plan(host_profile("x86_64"), X86, INTEL, KVM_RAN, params(kvm_intel="Y"))
    assert (p.l1, p.l2, p.module, p.nested, p.warning) == ("kvm", "kvm", "kvm_intel", "Y", None)


def test_amd_host_without_nesting_says_so_and_how_to_turn_it_on():
    p = plan(host_profile("x86_64"), X86, AMD, KVM_RAN, params(kvm_amd="0"))
    assert (p.l1, p.l2, p.module) == ("kvm", "tcg", "kvm_amd")
    assert "nested=0" in p.warning and "modprobe kvm_amd nested=1" in p.warning


def test_power_host_with_and_without_nesting():
    ppc64el = host_profile("ppc64le")
    on = plan(ppc64el, PPC, POWER9, (True, "/dev/kvm created a VM"), params(kvm_hv="Y"))
    assert (on.l1, on.l2, on.module) == ("kvm", "kvm", "kvm_hv")
    off = plan(ppc64el, PPC, POWER9, (True, "/dev/kvm created a VM"), params(kvm_hv="N"))
    assert (off.l1, off.l2) == ("kvm", "tcg") and "modprobe kvm-hv nested=1" in off.warning
    # its x86 guests are TCG, their L2 KVM inside the emulated CPU
    x86 = plan(ppc64el, X86, POWER9, (False, ""), params())
    assert (x86.l1, x86.l2) == ("tcg", "kvm") and x86.l1_why == "x86_64 guest on a ppc64le host"


def test_no_usable_kvm_is_tcg_with_the_reason_and_l2_still_kvm_inside_l1():
    p = plan(host_profile("x86_64"), X86, NO_VIRT, (False, ""), params())
    assert (p.l1, p.l2) == ("tcg", "kvm") and "no virtualization (vmx, svm)" in p.l1_why
    p = plan(host_profile("x86_64"), X86, INTEL, (False, "/dev/kvm missing or not accessible"), params())
    assert p.l1 == "tcg" and p.l1_why == "/dev/kvm missing or not accessible"
    assert "kvm_intel nested=1 or kvm_amd nested=1 in L1" in p.l2_why


def test_host_packages_follow_the_host():
    from rig.host.needs import host_needs
    arm = {n.package: n.probe for n in host_needs(host_profile("aarch64"))}
    assert arm["gcc-12-x86-64-linux-gnu"] == "x86_64-linux-gnu-gcc-12"
    assert arm["gcc-12-powerpc64le-linux-gnu"] == "powerpc64le-linux-gnu-gcc-12"
    assert arm["libelf1"] == "/usr/lib/aarch64-linux-gnu/libelf.so.1"
    ppc = {n.package for n in host_needs(host_profile("ppc64le"))}
    assert {"gcc-12", "gcc-12-x86-64-linux-gnu", "libc6-dev", "libc6-dev-amd64-cross"} <= ppc
