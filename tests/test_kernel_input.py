"""Bring-your-own-kernel input checks: arch, version vs modules, config options, .deb."""

import gzip
import struct
import subprocess

import pytest

from rig.core.errors import UserError
from rig.core.targets import PPC64, X86_64, kernel_options
from rig.kernel.under_test import from_deb, from_paths, ikconfig, parse_config

pytestmark = pytest.mark.unit

RELEASE = "6.18.0-rig"
GOOD_X86 = "\n".join(f"{o}=y" for o in kernel_options(X86_64)) + "\nCONFIG_VFIO_PCI=m\nCONFIG_KVM_AMD=m\n"


def bzimage(release: str) -> bytes:
    data = bytearray(0x800)
    data[0x202:0x206] = b"HdrS"
    text = f"{release} (dev@example) #1 SMP".encode() + b"\0"
    struct.pack_into("<H", data, 0x20E, 0x300)
    data[0x500:0x500 + len(text)] = text
    return bytes(data)


def kernel_tree(tmp_path, release=RELEASE, config=GOOD_X86, modules_release=None):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / f"vmlinuz-{release}").write_bytes(bzimage(release))
    if config is not None:
        (boot / f"config-{release}").write_text(config)
    mods = tmp_path / "mods" / "lib/modules" / (modules_release or release)
    (mods / "kernel").mkdir(parents=True)
    (mods / "modules.order").write_text("")
    return boot / f"vmlinuz-{release}", tmp_path / "mods"


def test_a_good_kernel_with_its_modules(tmp_path):
    k, mods = kernel_tree(tmp_path)
    kut = from_paths(str(k), str(mods), X86_64)
    assert kut.release == RELEASE and kut.version_string.startswith(f"Linux version {RELEASE}")
    assert kut.modules_dir.name == RELEASE and kut.option("CONFIG_VFIO_PCI") == "m"
    assert kut.warnings == []
    # lib/modules/<release> itself is accepted too
    assert from_paths(str(k), str(kut.modules_dir), X86_64).modules_dir == kut.modules_dir


def test_modules_of_another_version(tmp_path):
    k, mods = kernel_tree(tmp_path, modules_release="6.17.0-other")
    with pytest.raises(UserError, match="holds modules for 6.17.0-other, not for the kernel's 6.18.0-rig"):
        from_paths(str(k), str(mods), X86_64)


def test_no_modules_where_said(tmp_path):
    k, _ = kernel_tree(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no modules tree for 6.18.0-rig"):
        from_paths(str(k), str(tmp_path / "empty"), X86_64)


def test_modular_vfio_without_modules_is_an_error(tmp_path):
    k, _ = kernel_tree(tmp_path)
    with pytest.raises(UserError, match="CONFIG_VFIO_PCI=m but no modules were given"):
        from_paths(str(k), None, X86_64)


def test_missing_option_is_named(tmp_path):
    k, mods = kernel_tree(tmp_path, config=GOOD_X86.replace("CONFIG_VFIO_IOMMU_TYPE1=y", ""))
    with pytest.raises(UserError, match="lacks CONFIG_VFIO_IOMMU_TYPE1"):
        from_paths(str(k), str(mods), X86_64)


def test_no_kvm_is_a_warning_not_an_error(tmp_path):
    k, mods = kernel_tree(tmp_path, config=GOOD_X86.replace("CONFIG_KVM_AMD=m", ""))
    assert "L2 runs under TCG" in from_paths(str(k), str(mods), X86_64).warnings[0]


def test_no_config_anywhere(tmp_path):
    k, mods = kernel_tree(tmp_path, config=None)
    with pytest.raises(UserError, match="no config found"):
        from_paths(str(k), str(mods), X86_64)


def test_wrong_arch(tmp_path):
    k, mods = kernel_tree(tmp_path)
    with pytest.raises(UserError, match="not a ppc64 kernel"):
        from_paths(str(k), str(mods), PPC64)


def test_ikconfig_is_read_from_the_image(tmp_path):
    blob = b"junk" + b"IKCFG_ST" + gzip.compress(b"CONFIG_VFIO=y\n") + b"IKCFG_ED" + b"more"
    (tmp_path / "vmlinux").write_bytes(blob)
    assert parse_config(ikconfig(tmp_path / "vmlinux")) == {"CONFIG_VFIO": "y"}


def make_deb(tmp_path, arch="amd64") -> str:
    root = tmp_path / "pkg"
    root.mkdir()
    k, _ = kernel_tree(root)
    mods = root / "mods/lib"
    mods.rename(root / "lib")
    (root / "mods").rmdir()
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: linux-image-{RELEASE}\nVersion: 1\nArchitecture: {arch}\n"
        "Maintainer: rig <rig@example.invalid>\nDescription: test\n")
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(tmp_path / "k.deb")],
                   check=True, capture_output=True)
    return str(tmp_path / "k.deb")


def test_kernel_deb(tmp_path):
    kut = from_deb(make_deb(tmp_path), X86_64, tmp_path / "x")
    assert kut.release == RELEASE and kut.modules_dir.name == RELEASE
    assert "linux-image-6.18.0-rig" in kut.source


def test_kernel_deb_wrong_arch_and_truncated(tmp_path):
    deb = make_deb(tmp_path, arch="ppc64el")
    with pytest.raises(UserError, match="is for ppc64el, not amd64"):
        from_deb(deb, X86_64, tmp_path / "x")
    data = open(deb, "rb").read()
    (tmp_path / "cut.deb").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated|not a readable"):
        from_deb(str(tmp_path / "cut.deb"), PPC64, tmp_path / "y")


def _cli(*args, cache):
    from conftest import run_rig
    return run_rig(*args, cache=cache)


@pytest.mark.parametrize("bisect, status", [(False, 2), (True, 125)])
def test_cli_wrong_inputs_are_one_line_and_2_or_125_in_bisect_mode(tmp_path, bisect, status):
    k, mods = kernel_tree(tmp_path, modules_release="6.17.0-other")
    pre = ["--bisect"] if bisect else []
    cases = [
        (["run", "--arch", "x86_64", "--kernel", str(k), "--modules", str(mods)], "holds modules for 6.17.0-other"),
        (["run", "--arch", "ppc64", "--kernel", str(k)], "not a ppc64 kernel"),
        (["run", "--arch", "x86_64", "--kernel-deb", str(tmp_path / "none.deb")], "no such file"),
    ]
    for args, msg in cases:
        r = _cli(*pre, *args, "--out", str(tmp_path / "out"), cache=tmp_path / "c")
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == status and "Traceback" not in r.stderr, r.stderr
        assert lines[-1].startswith("rig: error:") and msg in lines[-1]
    assert not (tmp_path / "out").exists()
