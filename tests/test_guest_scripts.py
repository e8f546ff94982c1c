"""The shell the rig runs inside guests: every script passes shellcheck, and each gets its
arguments as a script file would."""

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from rig.chain.bind import bind_command
from rig.chain.device import PCI_SERIAL_ID
from rig.core.shell import guest_script
from rig.core.targets import profile

pytestmark = pytest.mark.unit

SCRIPTS = sorted(ROOT.glob("rig/*/sh/*.sh")) + [ROOT / "guest_images" / "init" / "init"]


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_shellcheck_passes(script: Path):
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing: `make host` (or `rig setup --host-only`) installs it")
    r = subprocess.run(["shellcheck", "--severity=info", str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def test_arguments_are_quoted_positional_parameters():
    text = guest_script("rig.chain", "l2_reader.sh", "0x1b36", "it's")
    assert text.startswith("set -- 0x1b36 'it'\"'\"'s'\n# shellcheck shell=sh\n")
    r = subprocess.run(["sh", "-c", guest_script("rig.chain", "l2_reader.sh", "", "", "") .split("\n", 1)[0]
                        + '\necho "[$1][$2][$3]"'], capture_output=True, text=True, timeout=10)
    assert r.stdout == "[][][]\n"


def test_bind_gets_the_profiles_modules_and_nointxmask_only_when_needed():
    ppc = profile("ppc64")
    line = bind_command(ppc, PCI_SERIAL_ID, True, ppc.l2.kvm_modules[0]).split("\n", 1)[0]
    assert line == "set -- 0x1b36 0x0002 nointxmask=1 vfio_iommu_spapr_tce kvm-hv"
    x86 = profile("x86_64")
    amd = next(m for m in x86.l2.kvm_modules if m.name == "kvm_amd")
    line = bind_command(x86, PCI_SERIAL_ID, False, amd).split("\n", 1)[0]
    assert line == "set -- 0x1b36 0x0002 '' vfio_iommu_type1 kvm_amd nested=1"
    assert bind_command(x86, PCI_SERIAL_ID, False, None).split("\n", 1)[0] == "set -- 0x1b36 0x0002 '' vfio_iommu_type1"


@pytest.mark.parametrize("kallsyms, out, status", [
    ("c000000000001000 T _stext\nc0080000002b4500 b pseries_partition_tb\t[kvm_hv]\n", "c0080000002b4500\n", 0),
    ("c000000000001000 T _stext\n", "", 3),                                     # kvm_hv not loaded
    ("0000000000000000 b pseries_partition_tb\t[kvm_hv]\n", "", 4),             # kptr_restrict
])
def test_kallsyms_gives_the_symbols_address_or_says_why_not(tmp_path, kallsyms, out, status):
    """The address the restore helper takes (a fake /proc/kallsyms, the format Linux prints)."""
    fake = tmp_path / "kallsyms"
    fake.write_text(kallsyms)
    r = subprocess.run(["sh", "-c", guest_script("rig.chain", "kallsyms.sh", "pseries_partition_tb", str(fake))],
                       capture_output=True, text=True, timeout=10)
    assert (r.returncode, r.stdout) == (status, out), r.stderr
    assert bool(r.stderr) is (status != 0)


def test_bind_loads_the_modules_alone_before_the_device_is_there(tmp_path):
    """("-", "-"): what a chain saved without its device loads (the device joins it later):
    vfio-pci with its arguments, the IOMMU backend, the KVM module; no device is looked for."""
    log = tmp_path / "modprobe.log"
    (tmp_path / "modprobe").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (tmp_path / "modprobe").chmod(0o755)
    ppc = profile("ppc64")
    r = subprocess.run(["sh", "-c", bind_command(ppc, ("-", "-"), True, ppc.l2.kvm_modules[0])], capture_output=True,
                       text=True, timeout=10, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("kvm=yes", "kvm=no")
    assert log.read_text().splitlines() == ["vfio-pci nointxmask=1", "vfio_iommu_spapr_tce", "kvm-hv"]
