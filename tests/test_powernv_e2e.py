"""PowerNV beyond its matrix cells (tests/test_chain_e2e.py runs those): a Debian kernel
package the rig did not build gives its verdict there, the virtio-serial device gives the
same verdicts on pseries, and the vfio-user hang that keeps the legacy device off PowerNV
is shown by the rig's finding command."""

import pytest
from conftest import load_result, nothing_left, run_rig

pytestmark = pytest.mark.e2e


def test_a_debian_kernel_package_gives_a_verdict_on_powernv(rig_cache_dir, short_tmp):
    """Debian's ppc64el linux-image .deb (6.12.95, with the fix), as a user would pass it."""
    r = run_rig("build", "--arch", "ppc64", cache=rig_cache_dir, timeout=900)   # its .deb is in the cache
    assert r.returncode == 0, r.stderr[-1500:]
    [deb] = (rig_cache_dir / "debs" / "ppc64el").glob("linux-image-*-powerpc64le_*.deb")
    out = short_tmp / "out"
    r = run_rig("run", "--arch", "ppc64", "--machine", "powernv", "--kernel-deb", str(deb),
                "--consumer", "userspace", "--duration", "20", "--pass-after", "30", "--out", str(out),
                cache=rig_cache_dir, env={"RIG_RUN_DIR": str(short_tmp)}, timeout=900)
    result = load_result(out)
    assert r.returncode == 0 and result["verdict"]["verdict"] == "PASS", r.stdout[-1500:] + r.stderr[-1500:]
    assert result["machine"] == "powernv" and result["device"] == "virtio-serial"
    assert result["name"] == "ppc64-powernv-xive-own-kernel-with-fix-userspace"
    assert result["l1_kernel_input"]["source"].startswith(f"--kernel-deb {deb.name}")
    assert result["l1"]["vfio_intx_fix"] is True
    assert nothing_left(short_tmp / "intx-rig")


def test_virtio_serial_stalls_on_pseries_without_the_fix_as_on_powernv(rig_cache_dir, short_tmp):
    """One device on the machines: the virtio console (MMIO, MSI-X off) stalls pseries' XIVE
    just as it stalls PowerNV's (the matrix runs it there)."""
    out = short_tmp / "out"
    r = run_rig("run", "--arch", "ppc64", "--machine", "pseries", "--device", "virtio-serial",
                "--l1-vfio", "unfixed", "--consumer", "userspace", "--duration", "20", "--out", str(out),
                cache=rig_cache_dir, env={"RIG_RUN_DIR": str(short_tmp)}, timeout=900)
    result = load_result(out)
    assert r.returncode == 1 and result["verdict"]["verdict"] == "STALL", r.stdout[-1500:]
    assert result["samples"][-1]["l1"] == 1 and result["interrupt_path"]["stopped_layer"] == "l0_ic"


def test_the_finding_command_shows_the_phb4_vfio_user_hang(rig_cache_dir):
    r = run_rig("finding-vfio-user", "--machine", "powernv", cache=rig_cache_dir, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.startswith("powernv: fails after") and "did not answer within" in r.stdout


def test_the_finding_command_shows_a_restored_powernv_without_routing_or_nic(rig_cache_dir, tmp_path):
    """docs/findings/qemu-powernv-migrates-without-its-controllers.md: booted, the XIVE routes
    the sources and the NIC is behind its root port; restored, neither, and L1 is silent."""
    r = run_rig("finding-powernv-restore", "--out", str(tmp_path), cache=rig_cache_dir, timeout=600)
    assert r.returncode == 0, r.stderr[-1500:]
    booted, restored, then = r.stdout.splitlines()[1:4]
    assert "secondary bus is 1, 1 device(s)" in booted and "XIVE routes 0 " not in booted, r.stdout
    assert "XIVE routes 0 sources to 0 event queue(s); the root port's secondary bus is 0, 0 device(s)" in restored
    assert "SSH did not come up" in then, r.stdout
    assert (tmp_path / "info-pic-restored.txt").is_file() and not list(tmp_path.glob("*.mig"))
