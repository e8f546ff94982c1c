"""Guest images for both arches, from Debian packages, cached by content hash."""

import pytest

from guest_images.build import ImageBuilder
from guest_images.cpio import read_names
from rig.core.cache import Cache
from rig.core.progress import Progress
from rig.core.targets import PROFILES
from rig.debian.packages import Resolver
from rig.host.keys import load_or_create
from rig.kernel.image_file import identify

pytestmark = pytest.mark.integration


def builder(cache_dir) -> ImageBuilder:
    cache = Cache(cache_dir)
    progress = Progress()
    return ImageBuilder(cache, Resolver(cache, progress), load_or_create(cache.root / "keys"), progress)


@pytest.mark.parametrize("prof", PROFILES.values(), ids=lambda p: p.name)
def test_l1_image_holds_what_the_chain_needs(prof, rig_cache_dir):
    with builder(rig_cache_dir) as b:
        l1 = b.l1(prof)
    assert identify(l1.kernel) == prof.name
    # The 6.12 line of bookworm-backports (has the INTx fix), version recorded exactly.
    assert l1.kernel_version.startswith("6.12.") and "bpo12" in l1.meta["kernel_package"]["version"]
    names = set(read_names(l1.initrd.read_bytes()))
    kmod = f"lib/modules/{l1.kernel_version}"
    for needed in ("init", "dev/console", "bin/busybox", "usr/sbin/dropbear", "etc/dropbear/host_key",
                   "root/.ssh/authorized_keys", f"usr/bin/{prof.qemu_system}", "l2/kernel", "l2/initrd",
                   f"{kmod}/modules.dep", f"{kmod}/kernel/drivers/vfio/pci/vfio-pci.ko",
                   f"{kmod}/kernel/drivers/vfio/pci/vfio-pci-core.ko"):
        assert needed in names, f"{needed} missing from the {prof.name} L1 image"
    assert not any(n.startswith("usr/share/doc") for n in names)


@pytest.mark.parametrize("prof", PROFILES.values(), ids=lambda p: p.name)
def test_l2_image_is_small_and_has_ssh(prof, rig_cache_dir):
    with builder(rig_cache_dir) as b:
        l2 = b.l2(prof)
    names = set(read_names(l2.initrd.read_bytes()))
    assert {"init", "bin/busybox", "usr/sbin/dropbear"} <= names
    assert not any("qemu" in n for n in names)


def test_second_build_downloads_and_rebuilds_nothing(rig_cache_dir, monkeypatch):
    with builder(rig_cache_dir) as b:  # make sure everything is there
        for prof in PROFILES.values():
            b.l1(prof)

    def forbidden(*a, **k):
        raise AssertionError("a cached build touched the network or rebuilt an image")
    monkeypatch.setattr("rig.debian.apt.AptContext.update", forbidden)
    monkeypatch.setattr("rig.debian.apt.AptContext.download", forbidden)
    monkeypatch.setattr(ImageBuilder, "_build", forbidden)
    with builder(rig_cache_dir) as b:
        for prof in PROFILES.values():
            assert b.l1(prof).initrd.exists()


def test_modules_dep_lists_vfio_pci_dependencies(rig_cache_dir):
    prof = PROFILES["x86_64"]
    with builder(rig_cache_dir) as b:
        l1 = b.l1(prof)
    # The modules.dep inside the image is what busybox modprobe reads at boot.
    data = l1.initrd.read_bytes()
    marker = b"kernel/drivers/vfio/pci/vfio-pci.ko: "
    line = data[data.index(marker):].split(b"\n", 1)[0].decode()
    assert "vfio-pci-core.ko" in line and "kernel/drivers/vfio/vfio.ko" in line


@pytest.mark.parametrize("prof", PROFILES.values(), ids=lambda p: p.name)
def test_unfixed_l1_differs_only_in_the_vfio_modules_and_its_binary_says_so(prof, rig_cache_dir):
    from guest_images.kmods import read_module
    from rig.kernel.fix_state import module_has_fix
    with builder(rig_cache_dir) as b:
        fixed, unfixed = b.l1(prof, "fixed"), b.l1(prof, "unfixed")
    assert fixed.meta["vfio_intx_fix"] is True and unfixed.meta["vfio_intx_fix"] is False
    assert unfixed.meta["vfio_rebuilt"] == ["vfio-pci-core.ko", "vfio-pci.ko"]
    assert fixed.kernel.read_bytes() == unfixed.kernel.read_bytes()
    rebuilt = sorted(rig_cache_dir.glob("vfio-unfixed/*/vfio-pci-core.ko"))
    assert rebuilt and not any(module_has_fix(read_module(p)) for p in rebuilt)
