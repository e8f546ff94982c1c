"""The shipped config fragments give a config with every option the rig needs, checked
with `make olddefconfig` on Debian's linux-source tree (the same version as the images)."""

import subprocess

import pytest

from guest_images.build import kernel_package
from guest_images.recipe import guest_packages, kbuild_host_packages
from rig.core.cache import Cache
from rig.core.progress import Progress
from rig.core.targets import PROFILES, kernel_options
from rig.debian.packages import Resolver
from rig.host.profiles import host_profile
from rig.kernel import kconfig
from rig.kernel.kconfig import extract_kconfig_tree, fragment, merged_config, unmet
from rig.kernel.under_test import parse_config

FRAGMENTS = {name: fragment(p) for name, p in PROFILES.items()}


@pytest.mark.unit
@pytest.mark.parametrize("arch", PROFILES)
def test_fragment_covers_what_a_user_kernel_is_checked_for(arch):
    prof = PROFILES[arch]
    for opt in (*kernel_options(prof), prof.kvm_config):
        assert FRAGMENTS[arch].get(opt) == "y", f"{opt} missing from rig/kernel/config/{arch}.config"


@pytest.mark.unit
def test_unmet_reports_what_differs():
    assert unmet({"CONFIG_A": "y", "CONFIG_B": "y"}, parse_config("CONFIG_A=y\nCONFIG_B=m\n")) == \
        ["CONFIG_B=y (got m)"]


@pytest.fixture(scope="module")
def kconfig_tree(rig_cache_dir, tmp_path_factory):
    cache = Cache(rig_cache_dir)
    res = Resolver(cache, Progress())
    prof = PROFILES["x86_64"]
    kver = kernel_package(res.lock(guest_packages(prof)), prof).name.removeprefix("linux-image-")
    pset = kbuild_host_packages(prof, kver, host_profile())
    debs = res.fetch(pset, res.lock(pset))
    deb = next(p for n, p in debs.items() if n.startswith("linux-source-"))
    dest = tmp_path_factory.mktemp("kconfig")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    import tarfile
    with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
        for m in outer:
            if m.name.endswith(".tar.xz"):
                tree = extract_kconfig_tree(outer.extractfile(m), dest)
                break
    proc.stdout.close()
    proc.wait()
    return tree


@pytest.mark.integration
@pytest.mark.parametrize("arch", PROFILES)
def test_fragment_survives_olddefconfig(arch, kconfig_tree, tmp_path):
    config = merged_config(kconfig_tree, PROFILES[arch], tmp_path / "out")
    assert unmet(FRAGMENTS[arch], config) == []


@pytest.mark.integration
@pytest.mark.parametrize("arch", PROFILES)
def test_minimal_configuration_keeps_every_option_asked_for(arch, kconfig_tree, tmp_path):
    """allnoconfig with the minimal base, the arch's boot needs, the chain's fragment and the
    trace's: every option asked for is on in the result (a dependency missing from the
    fragments would silently switch one off)."""
    plan = kconfig.plan("minimal", PROFILES[arch])
    (tmp_path / "out").mkdir()
    config = kconfig.configure(kconfig_tree, tmp_path / "out", PROFILES[arch], plan)
    assert unmet(kconfig.wanted(plan), config) == []
    assert "CONFIG_MODULES" not in config
