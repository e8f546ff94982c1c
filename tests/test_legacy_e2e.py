"""The legacy (PCI 2.2) device over vfio-user in the chain, its PCI 2.3 twin, and the two
pseries findings (docs/findings/)."""


import pytest
from conftest import load_result, nothing_left, run_rig


def run_json(out):
    return load_result(out)


def pseries_vfio_user(rig_cache_dir):
    from rig.chain.device_probe import vfio_user_usable
    from rig.chain.session import Session
    from rig.core.targets import machine, profile
    s = Session(rig_cache_dir)
    return vfio_user_usable(machine("ppc64", "pseries"), s.qemu(profile("ppc64")), s.cache)


@pytest.mark.integration
def test_legacy_on_pseries_is_refused_in_one_line_naming_the_qemu_bug(rig_cache_dir, run_base, short_tmp):
    """Pinned to the probe, not to a QEMU version: with a QEMU that has the fix the probe
    says usable and the pseries legacy cell runs by itself (then this test is skipped)."""
    usable, why = pseries_vfio_user(rig_cache_dir)
    if usable:
        pytest.skip(f"this QEMU runs vfio-user on pseries ({why}): nothing to refuse")
    r = run_rig("run", "--arch", "ppc64", "--device", "legacy", "--out", str(short_tmp / "out"),
                cache=rig_cache_dir, env={"RIG_RUN_DIR": str(run_base.parent)}, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("rig:")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert "unsupported by this QEMU" in lines[0] and "vfio-iommu-legacy" in lines[0]
    assert "docs/findings/qemu-spapr-eeh-vfio-user-abort.md" in lines[0]
    assert nothing_left(run_base)


@pytest.mark.integration
def test_default_device_per_machine_with_the_reason(rig_cache_dir, short_tmp):
    """x86: the legacy device (its probe passes); pseries: pci-serial (vfio-user aborts there,
    and Linux would not see a DisINTx- device anyway); PowerNV: virtio-serial (no probe:
    vfio-user would hang its QEMU)."""
    from rig.chain.session import Session
    from rig.chain.setup import choose_device
    from rig.core.targets import machine, profile
    s = Session(rig_cache_dir)
    assert choose_device(None, machine("x86_64"), s.qemu(profile("x86_64")), s)[0] == "legacy"
    ppc = s.qemu(profile("ppc64"))
    assert choose_device(None, machine("ppc64", "pseries"), ppc, s) == ("pci-serial", "default on pseries")
    assert choose_device(None, machine("ppc64", "powernv"), ppc, s) == ("virtio-serial", "default on powernv")


@pytest.mark.integration
def test_x86_linux_probes_intx_masking_and_pseries_linux_never_does(rig_cache_dir):
    """The Linux finding, without the QEMU bug: QEMU's pci_cfg_write trace of the stock
    pci-serial's command register, switched on over QMP before L1 starts."""
    from rig.chain.session import Session
    from rig.commands.finding import intx_probe_writes
    from rig.core.targets import profile
    s = Session(rig_cache_dir)
    x86 = intx_probe_writes(s, profile("x86_64"))
    ppc = intx_probe_writes(s, profile("ppc64"))
    assert x86["probed"] and any(w.endswith("403") or int(w, 16) & 0x400 for w in x86["intx_disable_probe_writes"])
    assert not ppc["probed"] and ppc["intx_disable_probe_writes"] == []


# The legacy device's PASS cells (fixed and unfixed vfio, L2 and userspace) and the evidence
# of vfio's non-2.3 path are checked with every matrix cell in test_chain_e2e.py.


@pytest.mark.e2e
def test_pci_2_3_twin_takes_the_disintx_path(rig_cache_dir, run_base, short_tmp):
    out = short_tmp / "out"
    r = run_rig("run", "--arch", "x86_64", "--device", "legacy-2.3", "--consumer", "userspace",
                "--duration", "10", "--pass-after", "30", "--out", str(out), cache=rig_cache_dir,
                env={"RIG_RUN_DIR": str(run_base.parent)})
    res = run_json(out)
    assert r.returncode == 0, res["verdict"]
    # lspci's DisINTx+/- is the bit's current state; whether it sticks is the 2.3 capability
    assert res["chain"]["l1_disintx_writable"]
    first, last = res["samples"][0]["device"], res["samples"][-1]["device"]
    # vfio's 2.3 path masks INTx in the command register for every interrupt
    assert last["intx_disable_writes"] - first["intx_disable_writes"] >= last["serviced"] - first["serviced"] > 5


@pytest.mark.e2e
def test_a_restored_chain_gets_the_legacy_device_passed_on_with_the_same_verdict_and_trace(rig_cache_dir, run_base,
                                                                                         short_tmp):
    """vfio-user cannot migrate: L1 with L2 running in it is saved without the device, which
    joins the chain once it runs: hotplugged into L1 (rig.chain.device.LegacyDevice.attach),
    bound, then added to L2 by L1's QEMU (Chain._pass_device_on). A restored run gives the
    verdict and the interrupt path of a boot with the device in place from the start: the
    unfixed module's PASS with the IO-APIC delivering about twice per serviced interrupt.
    (Fast mode's L1 alone, restored with the device hotplugged: the legacy userspace cells of
    test_chain_e2e.py.)"""
    results = []
    for i, options in enumerate((["--no-snapshot"], [], [])):
        out = short_tmp / f"out{i}"
        r = run_rig("run", "--arch", "x86_64", "--device", "legacy", "--l1-vfio", "unfixed", "--consumer", "l2",
                    "--duration", "10", "--pass-after", "30", "--out", str(out), *options,
                    cache=rig_cache_dir, env={"RIG_RUN_DIR": str(run_base.parent)})
        assert r.returncode == 0, r.stdout[-1500:]
        results.append(run_json(out))
    cold, restored = results[0], results[2]
    assert cold["chain"]["l1_started"] == "booted" and "device_hotplug_s" not in cold["times"]
    assert any(a.startswith("vfio-pci,host=") for a in cold["chain"]["l2_command"])    # in L2 from its start
    assert restored["chain"]["l1_started"] == restored["chain"]["l2_started"] == "restored"
    assert restored["times"]["device_hotplug_s"] > 0 and restored["times"]["l2_device_add_s"] > 0
    assert not any(a.startswith("vfio-pci") for a in restored["chain"]["l2_command"])  # added once L2 ran
    for res in (cold, restored):
        assert res["verdict"]["verdict"] == "PASS" and res["interrupt_path"]["deliveries_per_serviced"] >= 1.5, res
    assert nothing_left(run_base)
